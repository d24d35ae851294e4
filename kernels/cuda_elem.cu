/* cuda_elem.cu — CUDA kernels for the layout and elementwise families (COPY with dtype
 * conversion, ACCUM, CONCAT, add/sub/mul with broadcasting, scale, add_scalar, silu, gelu, tanh,
 * swiglu, dropout with the CPU's Philox stream, so masks match bit for bit), plus dtype
 * conversion for other kernels, Philox fills and the AdamW step of tp_cuda.h. Inputs are read
 * through 4-dim strides; outputs and grads are contiguous (flat index k). */
#include <math.h>
#include <stdio.h>

#include "cuda_common.h"
#include "tp_cuda.h"

/* ---- strided copy with conversion (ints copied exactly) ---- */
__global__ void k_copy(tp_cu_t4 d, tp_cu_t4 s, int64_t n) {
    GRID_LOOP(k, n) {
        int64_t od = vidx(k, d.sh, d), os = vidx(k, s.sh, s);
        if (d.dt == TP_I32 && s.dt == TP_I32)
            ((int32_t *)d.p)[od] = ((const int32_t *)s.p)[os];
        else
            stf((void *)d.p, d.dt, od, ldf(s.p, s.dt, os));
    }
}

/* dst += src (both f32, any strides; dst's shape drives) */
__global__ void k_accum(tp_cu_t4 d, tp_cu_t4 s, int64_t n) {
    GRID_LOOP(k, n) {
        int64_t od = vidx(k, d.sh, d), os = vidx(k, s.sh, s);
        ((float *)d.p)[od] += ldf(s.p, s.dt, os);
    }
}

/* Contiguous f32 <-> bf16 casts and f32 accumulation, four elements per thread: the strided
 * kernels above pay 4-dim index arithmetic per element and ran at ~1 TB/s; the training step
 * casts its 537M f32 master weights to bf16 every step (device run 6 profile: 5.1 ms of copies
 * in the bench's train_step). */
__global__ void k_f32_to_bf16(const float4 *s, __nv_bfloat162 *d, int64_t n4) {
    GRID_LOOP(k, n4) {
        float4 v = s[k];
        d[2 * k] = __floats2bfloat162_rn(v.x, v.y);
        d[2 * k + 1] = __floats2bfloat162_rn(v.z, v.w);
    }
}
__global__ void k_bf16_to_f32(const __nv_bfloat162 *s, float4 *d, int64_t n4) {
    GRID_LOOP(k, n4) {
        float2 a = __bfloat1622float2(s[2 * k]), b = __bfloat1622float2(s[2 * k + 1]);
        d[k] = make_float4(a.x, a.y, b.x, b.y);
    }
}
__global__ void k_accum_f32x4(float4 *d, const float4 *s, int64_t n4) {
    GRID_LOOP(k, n4) {
        float4 a = d[k], b = s[k];
        d[k] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
}

static int vec4_ok(const tp_tensor *t, int64_t n) {
    return tp_is_contiguous(t) && (n & 3) == 0 && ((uintptr_t)t->data & 15) == 0;
}

static tp_status copy_view(tp_ctx *ctx, const tp_tensor *dst, const tp_tensor *src) {
    int64_t n = tp_numel(dst);
    if (n == 0) return TP_OK;
    if (dst->dtype == src->dtype && tp_is_contiguous(dst) && tp_is_contiguous(src)) {
        CUDA_CHECK(ctx, cudaMemcpyAsync(dst->data, src->data, (size_t)n * tp_dtype_size(dst->dtype),
                                        cudaMemcpyDeviceToDevice, tp_cu_stream));
        return TP_OK;
    }
    if (vec4_ok(dst, n) && vec4_ok(src, n)) {
        if (src->dtype == TP_F32 && dst->dtype == TP_BF16) {
            k_f32_to_bf16<<<tp_cu_blocks(n / 4), TP_CU_THREADS, 0, tp_cu_stream>>>(
                (const float4 *)src->data, (__nv_bfloat162 *)dst->data, n / 4);
            CUDA_LAUNCH_CHECK(ctx, "copy f32 -> bf16");
            return TP_OK;
        }
        if (src->dtype == TP_BF16 && dst->dtype == TP_F32) {
            k_bf16_to_f32<<<tp_cu_blocks(n / 4), TP_CU_THREADS, 0, tp_cu_stream>>>(
                (const __nv_bfloat162 *)src->data, (float4 *)dst->data, n / 4);
            CUDA_LAUNCH_CHECK(ctx, "copy bf16 -> f32");
            return TP_OK;
        }
    }
    tp_cu_t4 d = tp_cu_view(dst), s = tp_cu_view(src);
    k_copy<<<tp_cu_blocks(n), TP_CU_THREADS, 0, tp_cu_stream>>>(d, s, n);
    CUDA_LAUNCH_CHECK(ctx, "copy");
    return TP_OK;
}

static tp_status accum_view(tp_ctx *ctx, const tp_tensor *dst, const tp_tensor *src) {
    int64_t n = tp_numel(dst);
    if (n == 0) return TP_OK;
    if (dst->dtype == TP_F32 && src->dtype == TP_F32 && vec4_ok(dst, n) && vec4_ok(src, n) &&
        tp_numel(src) == n) {
        k_accum_f32x4<<<tp_cu_blocks(n / 4), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (float4 *)dst->data, (const float4 *)src->data, n / 4);
        CUDA_LAUNCH_CHECK(ctx, "accum");
        return TP_OK;
    }
    tp_cu_t4 d = tp_cu_view(dst), s = tp_cu_view(src);
    k_accum<<<tp_cu_blocks(n), TP_CU_THREADS, 0, tp_cu_stream>>>(d, s, n);
    CUDA_LAUNCH_CHECK(ctx, "accum");
    return TP_OK;
}

__global__ void k_fill(tp_cu_t4 d, float v, int32_t iv, int64_t n) {
    GRID_LOOP(k, n) {
        int64_t od = vidx(k, d.sh, d);
        if (d.dt == TP_I32)
            ((int32_t *)d.p)[od] = iv;
        else
            stf((void *)d.p, d.dt, od, v);
    }
}

/* backend hooks used by tp_copy_into / tp_fill_value (no ctx: errors print and return) */
tp_status tp_cu_copy_strided_hook(const tp_tensor *dst, const tp_tensor *src) {
    int64_t n = tp_numel(dst);
    if (!n) return TP_OK;
    k_copy<<<tp_cu_blocks(n), TP_CU_THREADS, 0, tp_cu_stream>>>(tp_cu_view(dst), tp_cu_view(src),
                                                                n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        fprintf(stderr, "telepathy: cuda: %s:%d: strided copy: %s\n", __FILE__, __LINE__,
                cudaGetErrorString(e));
        return TP_ECUDA;
    }
    return TP_OK;
}

tp_status tp_cu_fill_hook(const tp_tensor *t, double v) {
    int64_t n = tp_numel(t);
    if (!n) return TP_OK;
    cudaError_t e;
    if (v == 0.0 && tp_is_contiguous(t)) /* zeroing grads (k_fill wrote ~1.6 TB/s on the H100) */
        e = cudaMemsetAsync(t->data, 0, (size_t)n * tp_dtype_size(t->dtype), tp_cu_stream);
    else {
        k_fill<<<tp_cu_blocks(n), TP_CU_THREADS, 0, tp_cu_stream>>>(tp_cu_view(t), (float)v,
                                                                    (int32_t)v, n);
        e = cudaGetLastError();
    }
    if (e != cudaSuccess) {
        fprintf(stderr, "telepathy: cuda: %s:%d: fill: %s\n", __FILE__, __LINE__,
                cudaGetErrorString(e));
        return TP_ECUDA;
    }
    return TP_OK;
}

tp_tensor *tp_cu_as_dtype(tp_ctx *ctx, tp_tensor *src, tp_dtype dt) {
    if (!src || src->dtype == dt) return src;
    tp_tensor *o = tp_ctx_scratch(ctx, dt, src->ndim, src->shape);
    if (!o) return NULL;
    if (copy_view(ctx, o, src) != TP_OK) return NULL;
    return o;
}

tp_status tp_cu_copy_fwd(tp_ctx *ctx, tp_node *n) {
    return copy_view(ctx, n->out, n->in[0]);
}

tp_status tp_cu_copy_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0);
    if (!ga) return ctx->status;
    return accum_view(ctx, ga, n->out->grad);
}

tp_status tp_cu_accum_fwd(tp_ctx *ctx, tp_node *n) {
    return accum_view(ctx, n->in[0], n->in[1]);
}

static tp_tensor slab(const tp_tensor *full, int d, int64_t start, int64_t len) {
    tp_tensor v = *full;
    v.data = (char *)full->data + start * full->stride[d] * (int64_t)tp_dtype_size(full->dtype);
    v.shape[d] = len;
    return v;
}

tp_status tp_cu_concat_fwd(tp_ctx *ctx, tp_node *n) {
    int d = (int)n->ip[0];
    int64_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        tp_tensor v = slab(n->out, d, at, n->in[i]->shape[d]);
        TP_TRY(copy_view(ctx, &v, n->in[i]));
        at += n->in[i]->shape[d];
    }
    return TP_OK;
}

tp_status tp_cu_concat_bwd(tp_ctx *ctx, tp_node *n) {
    int d = (int)n->ip[0];
    int64_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        tp_tensor *ga = tp_node_grad(ctx, n, i);
        if (ctx->status) return ctx->status;
        if (ga) {
            tp_tensor v = slab(n->out->grad, d, at, n->in[i]->shape[d]);
            TP_TRY(accum_view(ctx, ga, &v));
        }
        at += n->in[i]->shape[d];
    }
    return TP_OK;
}

/* ---- binary with broadcasting of b ---- */
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

__global__ void k_binary(int op, tp_cu_t4 a, tp_cu_t4 b, void *o, int odt, int64_t n) {
    GRID_LOOP(k, n) {
        float x = ldf(a.p, a.dt, vidx(k, a.sh, a)), y = ldf(b.p, b.dt, vidx(k, a.sh, b));
        stf(o, odt, k, op == OP_ADD ? x + y : op == OP_SUB ? x - y : op == OP_MUL ? x * y : x / y);
    }
}

/* da[k] += g * (d out/d a); db[bcast(k)] += g * (d out/d b) (atomic when b is broadcast) */
__global__ void k_binary_bwd(int op, tp_cu_t4 a, tp_cu_t4 b, const float *g, float *da, float *db,
                             tp_cu_t4 gb, int db_atomic, int64_t n) {
    GRID_LOOP(k, n) {
        float gk = g[k];
        float bv = (op == OP_MUL || op == OP_DIV) ? ldf(b.p, b.dt, vidx(k, a.sh, b)) : 0.0f;
        if (da) da[k] += op == OP_MUL ? gk * bv : op == OP_DIV ? gk / bv : gk;
        if (db) {
            float av = (op == OP_MUL || op == OP_DIV) ? ldf(a.p, a.dt, vidx(k, a.sh, a)) : 0.0f;
            float d = op == OP_MUL   ? gk * av
                      : op == OP_DIV ? -gk * av / (bv * bv)
                      : op == OP_SUB ? -gk
                                     : gk;
            int64_t o = vidx(k, a.sh, gb);
            if (db_atomic)
                atomicAdd(db + o, d);
            else
                db[o] += d;
        }
    }
}

static int op_code(tp_op op) {
    return op == TP_OP_ADD ? OP_ADD : op == TP_OP_SUB ? OP_SUB : op == TP_OP_MUL ? OP_MUL : OP_DIV;
}

static tp_status binary_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t m = tp_numel(n->out);
    if (!m) return TP_OK;
    tp_cu_t4 a = tp_cu_view(n->in[0]), b = tp_cu_view(n->in[1]);
    tp_bcast_strides(n->in[0], n->in[1], b.st);
    b.contig = tp_cu_is_rowmajor(a.sh, b.st);
    k_binary<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        op_code(n->op), a, b, n->out->data, (int)n->out->dtype, m);
    CUDA_LAUNCH_CHECK(ctx, tp_op_names[n->op]);
    return TP_OK;
}

static tp_status binary_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0), *gb = tp_node_grad(ctx, n, 1);
    if (ctx->status) return ctx->status;
    int64_t m = tp_numel(n->out);
    if ((!ga && !gb) || !m) return TP_OK;
    tp_cu_t4 a = tp_cu_view(n->in[0]), b = tp_cu_view(n->in[1]), g4;
    tp_bcast_strides(n->in[0], n->in[1], b.st);
    b.contig = tp_cu_is_rowmajor(a.sh, b.st);
    memset(&g4, 0, sizeof g4);
    int atomic = 0;
    if (gb) {
        tp_bcast_strides(n->in[0], gb, g4.st);
        g4.contig = tp_cu_is_rowmajor(a.sh, g4.st);
        atomic = tp_numel(gb) != m;
    }
    k_binary_bwd<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        op_code(n->op), a, b, (const float *)n->out->grad->data, ga ? (float *)ga->data : NULL,
        gb ? (float *)gb->data : NULL, g4, atomic, m);
    CUDA_LAUNCH_CHECK(ctx, tp_op_names[n->op]);
    return TP_OK;
}

tp_status tp_cu_add_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(ctx, n);
}
tp_status tp_cu_add_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}
tp_status tp_cu_sub_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(ctx, n);
}
tp_status tp_cu_sub_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}
tp_status tp_cu_mul_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(ctx, n);
}
tp_status tp_cu_mul_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}
tp_status tp_cu_div_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(ctx, n);
}
tp_status tp_cu_div_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}

/* ---- unary: value and derivative in one place (as cpu_elem.c) ---- */
enum { U_SCALE, U_ADDS, U_SILU, U_TANH, U_GELU_ERF, U_GELU_TANH, U_EXP, U_LN, U_SIGM, U_RELU };
#define SQRT_2_OVER_PI 0.7978845608028654f

__device__ __forceinline__ float sigm(float x) {
    return 1.0f / (1.0f + expf(-x));
}

__device__ float act(int u, float s, float x) {
    switch (u) {
    case U_SCALE:
        return x * s;
    case U_ADDS:
        return x + s;
    case U_SILU:
        return x * sigm(x);
    case U_TANH:
        return tanhf(x);
    case U_GELU_ERF:
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case U_EXP:
        return expf(x);
    case U_LN:
        return logf(x);
    case U_SIGM:
        return sigm(x);
    case U_RELU:
        return x > 0.0f ? x : 0.0f;
    default:
        return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    }
}

__device__ float dact(int u, float s, float x) {
    switch (u) {
    case U_SCALE:
        return s;
    case U_ADDS:
        return 1.0f;
    case U_SILU: {
        float g = sigm(x);
        return g * (1.0f + x * (1.0f - g));
    }
    case U_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case U_GELU_ERF:
        return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
               x * expf(-0.5f * x * x) * 0.3989422804014327f;
    case U_EXP:
        return expf(x);
    case U_LN:
        return 1.0f / x;
    case U_SIGM: {
        float g = sigm(x);
        return g * (1.0f - g);
    }
    case U_RELU:
        return x > 0.0f ? 1.0f : 0.0f;
    default: {
        float v = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
        float t = tanhf(v);
        return 0.5f * (1.0f + t) +
               0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    }
    }
}

__global__ void k_unary(int u, float s, tp_cu_t4 a, void *o, int odt, int64_t n) {
    GRID_LOOP(k, n) stf(o, odt, k, act(u, s, ldf(a.p, a.dt, vidx(k, a.sh, a))));
}
__global__ void k_unary_bwd(int u, float s, tp_cu_t4 a, const float *g, float *d, int64_t n) {
    GRID_LOOP(k, n) d[k] += g[k] * dact(u, s, ldf(a.p, a.dt, vidx(k, a.sh, a)));
}

static int ucode(const tp_node *n) {
    switch (n->op) {
    case TP_OP_SCALE:
        return U_SCALE;
    case TP_OP_ADD_SCALAR:
        return U_ADDS;
    case TP_OP_SILU:
        return U_SILU;
    case TP_OP_TANH:
        return U_TANH;
    case TP_OP_EXP:
        return U_EXP;
    case TP_OP_LN:
        return U_LN;
    case TP_OP_SIGMOID:
        return U_SIGM;
    case TP_OP_RELU:
        return U_RELU;
    default:
        return n->ip[0] == TP_GELU_ERF ? U_GELU_ERF : U_GELU_TANH;
    }
}

static tp_status unary_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t m = tp_numel(n->out);
    if (!m) return TP_OK;
    k_unary<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        ucode(n), n->fp[0], tp_cu_view(n->in[0]), n->out->data, (int)n->out->dtype, m);
    CUDA_LAUNCH_CHECK(ctx, tp_op_names[n->op]);
    return TP_OK;
}

static tp_status unary_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0);
    if (!ga) return ctx->status;
    int64_t m = tp_numel(ga);
    if (!m) return TP_OK;
    k_unary_bwd<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        ucode(n), n->fp[0], tp_cu_view(n->in[0]), (const float *)n->out->grad->data,
        (float *)ga->data, m);
    CUDA_LAUNCH_CHECK(ctx, tp_op_names[n->op]);
    return TP_OK;
}

tp_status tp_cu_scale_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cu_scale_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cu_add_scalar_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cu_add_scalar_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cu_silu_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cu_silu_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cu_gelu_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cu_gelu_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cu_tanh_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cu_tanh_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
#define UNARY_PAIR(name)                                                                           \
    tp_status tp_cu_##name##_fwd(tp_ctx *ctx, tp_node *n) {                                        \
        return unary_fwd(ctx, n);                                                                  \
    }                                                                                              \
    tp_status tp_cu_##name##_bwd(tp_ctx *ctx, tp_node *n) {                                        \
        return unary_bwd(ctx, n);                                                                  \
    }
UNARY_PAIR(exp)
UNARY_PAIR(ln)
UNARY_PAIR(sigmoid)
UNARY_PAIR(relu)

/* ---- swiglu: silu(gate) * up; contiguous bf16 pairs take a vectorised path ---- */
__global__ void k_swiglu(tp_cu_t4 g, tp_cu_t4 u, void *o, int odt, int64_t n) {
    GRID_LOOP(k, n) {
        float x = ldf(g.p, g.dt, vidx(k, g.sh, g));
        stf(o, odt, k, x * sigm(x) * ldf(u.p, u.dt, vidx(k, u.sh, u)));
    }
}

__global__ void k_swiglu_bf16x2(const __nv_bfloat162 *g, const __nv_bfloat162 *u, __nv_bfloat162 *o,
                                int64_t n2) {
    tp_cu_pdl_trigger(); /* the down GEMV may stream its weights meanwhile */
    GRID_LOOP(k, n2) {
        float2 x = __bfloat1622float2(g[k]), y = __bfloat1622float2(u[k]);
        o[k] = __floats2bfloat162_rn(x.x * sigm(x.x) * y.x, x.y * sigm(x.y) * y.y);
    }
}

/* gate and up as row blocks of one wider tensor (the stacked gate|up GEMM's output halves): rows
 * of n2 bf16 pairs, pitch2 pairs apart; the output is contiguous. */
__global__ void k_swiglu_rows_bf16x2(const __nv_bfloat162 *g, const __nv_bfloat162 *u,
                                     __nv_bfloat162 *o, int64_t rows, int64_t n2, int64_t gp2,
                                     int64_t up2) {
    tp_cu_pdl_trigger();
    GRID_LOOP(k, rows * n2) {
        int64_t r = k / n2, c = k - r * n2;
        float2 x = __bfloat1622float2(g[r * gp2 + c]), y = __bfloat1622float2(u[r * up2 + c]);
        o[k] = __floats2bfloat162_rn(x.x * sigm(x.x) * y.x, x.y * sigm(x.y) * y.y);
    }
}

/* Row pitch (elements) of t when its last dim is dense and every leading dim steps by whole rows
 * of that pitch; 0 otherwise. */
static int64_t row_pitch(const tp_tensor *t) {
    int nd = t->ndim;
    if (nd < 2 || t->stride[nd - 1] != 1) return 0;
    for (int i = 0; i < nd - 2; i++)
        if (t->shape[i] != 1 && t->stride[i] != t->shape[i + 1] * t->stride[i + 1]) return 0;
    return t->stride[nd - 2];
}

__global__ void k_swiglu_bwd(tp_cu_t4 g, tp_cu_t4 u, const float *dy, float *dg, float *du,
                             int64_t n) {
    GRID_LOOP(k, n) {
        float x = ldf(g.p, g.dt, vidx(k, g.sh, g)), s = sigm(x);
        if (dg) dg[k] += dy[k] * ldf(u.p, u.dt, vidx(k, u.sh, u)) * s * (1.0f + x * (1.0f - s));
        if (du) du[k] += dy[k] * x * s;
    }
}

tp_status tp_cu_swiglu_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t m = tp_numel(n->out);
    if (!m) return TP_OK;
    const tp_tensor *g = n->in[0], *u = n->in[1];
    if (g->dtype == TP_BF16 && u->dtype == TP_BF16 && n->out->dtype == TP_BF16 && m % 2 == 0 &&
        tp_is_contiguous(g) && tp_is_contiguous(u) && ((uintptr_t)g->data % 4 == 0) &&
        ((uintptr_t)u->data % 4 == 0)) {
        k_swiglu_bf16x2<<<tp_cu_blocks(m / 2), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (const __nv_bfloat162 *)g->data, (const __nv_bfloat162 *)u->data,
            (__nv_bfloat162 *)n->out->data, m / 2);
    } else if (g->dtype == TP_BF16 && u->dtype == TP_BF16 && n->out->dtype == TP_BF16 &&
               g->ndim >= 2 && g->shape[g->ndim - 1] % 2 == 0 && row_pitch(g) % 2 == 0 &&
               row_pitch(u) % 2 == 0 && row_pitch(g) && row_pitch(u) &&
               ((uintptr_t)g->data % 4 == 0) && ((uintptr_t)u->data % 4 == 0)) {
        int64_t n2 = g->shape[g->ndim - 1] / 2;
        k_swiglu_rows_bf16x2<<<tp_cu_blocks(m / 2), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (const __nv_bfloat162 *)g->data, (const __nv_bfloat162 *)u->data,
            (__nv_bfloat162 *)n->out->data, m / 2 / n2, n2, row_pitch(g) / 2, row_pitch(u) / 2);
    } else {
        k_swiglu<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
            tp_cu_view(g), tp_cu_view(u), n->out->data, (int)n->out->dtype, m);
    }
    CUDA_LAUNCH_CHECK(ctx, "swiglu");
    return TP_OK;
}

tp_status tp_cu_swiglu_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gg = tp_node_grad(ctx, n, 0), *gu = tp_node_grad(ctx, n, 1);
    if (ctx->status) return ctx->status;
    int64_t m = tp_numel(n->out);
    if ((!gg && !gu) || !m) return TP_OK;
    k_swiglu_bwd<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        tp_cu_view(n->in[0]), tp_cu_view(n->in[1]), (const float *)n->out->grad->data,
        gg ? (float *)gg->data : NULL, gu ? (float *)gu->data : NULL, m);
    CUDA_LAUNCH_CHECK(ctx, "swiglu backward");
    return TP_OK;
}

/* ---- Philox4x32-10, the same function as core/rng.c ---- */
__device__ void philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

__device__ uint32_t rng_at(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t blk = index >> 2;
    uint32_t c[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
    philox(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    return c[index & 3];
}

__device__ float keep_scale(uint64_t seed, uint64_t stream, uint64_t off, float p, int64_t k) {
    float u = (float)(rng_at(seed, stream, off + (uint64_t)k) >> 8) * (1.0f / 16777216.0f);
    return u >= p ? 1.0f / (1.0f - p) : 0.0f;
}

__global__ void k_dropout(tp_cu_t4 a, void *o, int odt, uint64_t seed, uint64_t stream,
                          uint64_t off, float p, int64_t n) {
    GRID_LOOP(k, n)
    stf(o, odt, k, ldf(a.p, a.dt, vidx(k, a.sh, a)) * keep_scale(seed, stream, off, p, k));
}
__global__ void k_dropout_bwd(const float *g, float *d, uint64_t seed, uint64_t stream,
                              uint64_t off, float p, int64_t n) {
    GRID_LOOP(k, n) d[k] += g[k] * keep_scale(seed, stream, off, p, k);
}

tp_status tp_cu_dropout_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t m = tp_numel(n->out);
    if (!m) return TP_OK;
    k_dropout<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        tp_cu_view(n->in[0]), n->out->data, (int)n->out->dtype, (uint64_t)n->ip[0],
        (uint64_t)n->ip[1], (uint64_t)n->ip[2], n->fp[0], m);
    CUDA_LAUNCH_CHECK(ctx, "dropout");
    return TP_OK;
}

tp_status tp_cu_dropout_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0);
    if (!ga) return ctx->status;
    int64_t m = tp_numel(ga);
    if (!m) return TP_OK;
    k_dropout_bwd<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        (const float *)n->out->grad->data, (float *)ga->data, (uint64_t)n->ip[0],
        (uint64_t)n->ip[1], (uint64_t)n->ip[2], n->fp[0], m);
    CUDA_LAUNCH_CHECK(ctx, "dropout backward");
    return TP_OK;
}

/* ---- optimiser ops (core/optim.c): AdamW in place, sum of squares ---- */
/* f32 arithmetic (the CPU reference forms the denominator in double; the difference is a few
 * ulps per step, and double division/sqrt over 500M params would dominate the update) */
struct adamw_args {
    float decay, b1, b2, eps, step_size, inv_bc2, gscale;
};
__device__ __forceinline__ void adamw_elem(const adamw_args &a, float g, float &w, float &m,
                                           float &v) {
    float gk = __fmul_rn(g, a.gscale); /* rounded as a stored clipped grad (no FMA fusion) */
    float wk = w * a.decay;
    m = a.b1 * m + (1.0f - a.b1) * gk;
    v = a.b2 * v + (1.0f - a.b2) * gk * gk;
    w = wk - a.step_size * m / (sqrtf(v) * a.inv_bc2 + a.eps);
}
__global__ void k_adamw_op(float *w, const float *g, float *m, float *v, int64_t n, adamw_args a) {
    GRID_LOOP(k, n) {
        float wk = w[k], mk = m[k], vk = v[k];
        adamw_elem(a, g[k], wk, mk, vk);
        m[k] = mk;
        v[k] = vk;
        w[k] = wk;
    }
}
/* Pure-bf16 training (bf16 param and moments, f32 grad): the same f32 update on the widened
 * values, each stored value rounded once to nearest-even. 16 bytes of traffic per element
 * against the f32 path's 28 (plus the per-step f32 -> bf16 cast of the weights it then needs).
 * Four elements per thread from index `from` on (8-byte bf16 and 16-byte grad loads); the
 * scalar kernel does unaligned tensors and the tail. */
__global__ void k_adamw_bf16x4(__nv_bfloat162 *w, const float4 *g, __nv_bfloat162 *m,
                               __nv_bfloat162 *v, int64_t n4, adamw_args a) {
    GRID_LOOP(k, n4) {
        float4 gk = g[k];
        float gg[4] = {gk.x, gk.y, gk.z, gk.w};
        float ww[4], mm[4], vv[4];
        for (int h = 0; h < 2; h++) {
            float2 w2 = __bfloat1622float2(w[2 * k + h]), m2 = __bfloat1622float2(m[2 * k + h]),
                   v2 = __bfloat1622float2(v[2 * k + h]);
            ww[2 * h] = w2.x, ww[2 * h + 1] = w2.y;
            mm[2 * h] = m2.x, mm[2 * h + 1] = m2.y;
            vv[2 * h] = v2.x, vv[2 * h + 1] = v2.y;
        }
        for (int j = 0; j < 4; j++) adamw_elem(a, gg[j], ww[j], mm[j], vv[j]);
        for (int h = 0; h < 2; h++) {
            w[2 * k + h] = __floats2bfloat162_rn(ww[2 * h], ww[2 * h + 1]);
            m[2 * k + h] = __floats2bfloat162_rn(mm[2 * h], mm[2 * h + 1]);
            v[2 * k + h] = __floats2bfloat162_rn(vv[2 * h], vv[2 * h + 1]);
        }
    }
}
__global__ void k_adamw_bf16(__nv_bfloat16 *w, const float *g, __nv_bfloat16 *m, __nv_bfloat16 *v,
                             int64_t from, int64_t n, adamw_args a) {
    GRID_LOOP(j, n - from) {
        int64_t k = from + j;
        float wk = __bfloat162float(w[k]), mk = __bfloat162float(m[k]), vk = __bfloat162float(v[k]);
        adamw_elem(a, g[k], wk, mk, vk);
        w[k] = __float2bfloat16_rn(wk);
        m[k] = __float2bfloat16_rn(mk);
        v[k] = __float2bfloat16_rn(vk);
    }
}

tp_status tp_cu_adamw_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_adamw_hp *h = (const tp_adamw_hp *)n->aux;
    tp_tensor *P = n->in[0], *G = n->in[1], *M = n->in[2], *V = n->in[3];
    tp_dtype dt = P->dtype;
    if ((dt != TP_F32 && dt != TP_BF16) || M->dtype != dt || V->dtype != dt || G->dtype != TP_F32)
        return tp_ctx_fail(ctx, TP_EDTYPE,
                           "op 'adamw' on cuda: param '%s' is %s with moments %s/%s and a %s "
                           "grad; expected an f32 or bf16 param, moments of the param's dtype and "
                           "an f32 grad",
                           P->name, tp_dtype_name(dt), tp_dtype_name(M->dtype),
                           tp_dtype_name(V->dtype), tp_dtype_name(G->dtype));
    for (int i = 0; i < 4; i++)
        if (!tp_is_contiguous(n->in[i]))
            return tp_ctx_fail(ctx, TP_EINVAL, "op 'adamw' on cuda: input %d must be contiguous",
                               i);
    int64_t m = tp_numel(P);
    if (!m) return TP_OK;
    adamw_args a = {
        h->decay, h->beta1, h->beta2, h->eps, (float)h->step_size, (float)(1.0 / h->bc2_sqrt),
        h->gscale};
    if (dt == TP_F32) {
        k_adamw_op<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (float *)P->data, (const float *)G->data, (float *)M->data, (float *)V->data, m, a);
        CUDA_LAUNCH_CHECK(ctx, "adamw");
        return TP_OK;
    }
    int aligned = 1;
    for (int i = 0; i < 4; i++) aligned &= ((uintptr_t)n->in[i]->data & (i == 1 ? 15 : 7)) == 0;
    int64_t n4 = aligned ? m / 4 : 0;
    if (n4) {
        k_adamw_bf16x4<<<tp_cu_blocks(n4), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (__nv_bfloat162 *)P->data, (const float4 *)G->data, (__nv_bfloat162 *)M->data,
            (__nv_bfloat162 *)V->data, n4, a);
        CUDA_LAUNCH_CHECK(ctx, "adamw bf16 x4");
    }
    if (4 * n4 < m) {
        k_adamw_bf16<<<tp_cu_blocks(m - 4 * n4), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (__nv_bfloat16 *)P->data, (const float *)G->data, (__nv_bfloat16 *)M->data,
            (__nv_bfloat16 *)V->data, 4 * n4, m, a);
        CUDA_LAUNCH_CHECK(ctx, "adamw bf16");
    }
    return TP_OK;
}
tp_status tp_cu_adamw_bwd(tp_ctx *ctx, tp_node *n) {
    return tp_ctx_fail(ctx, TP_EUNSUP, "op 'adamw' has no backward");
}

__global__ void k_sumsq(tp_cu_t4 x, int64_t n, double *acc) {
    __shared__ double sh[32];
    double s = 0;
    GRID_LOOP(k, n) {
        double v = ldf(x.p, x.dt, vidx(k, x.sh, x));
        s += v * v;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) atomicAdd(acc, s);
}
/* contiguous f32: float4 loads, no index arithmetic (the strided kernel ran the bench's grad
 * norm checks at ~1.2 TB/s) */
__global__ void k_sumsq_f32x4(const float4 *x, int64_t n4, double *acc) {
    __shared__ double sh[32];
    double s = 0;
    GRID_LOOP(k, n4) {
        float4 v = x[k];
        s += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z + (double)v.w * v.w;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) atomicAdd(acc, s);
}
__global__ void k_d2f(const double *a, float *o) {
    *o = (float)*a;
}

tp_status tp_cu_sumsq_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t m = tp_numel(n->in[0]);
    double *acc = (double *)tp_ctx_scratch_bytes(ctx, sizeof(double));
    if (!acc) return ctx->status;
    CUDA_CHECK(ctx, cudaMemsetAsync(acc, 0, sizeof(double), tp_cu_stream));
    if (m) {
        unsigned b = tp_cu_blocks(m);
        if (b > 1024) b = 1024;
        if (n->in[0]->dtype == TP_F32 && vec4_ok(n->in[0], m)) {
            unsigned b4 = tp_cu_blocks(m / 4);
            if (b4 > 1024) b4 = 1024;
            k_sumsq_f32x4<<<b4, TP_CU_THREADS, 0, tp_cu_stream>>>((const float4 *)n->in[0]->data,
                                                                  m / 4, acc);
        } else
            k_sumsq<<<b, TP_CU_THREADS, 0, tp_cu_stream>>>(tp_cu_view(n->in[0]), m, acc);
        CUDA_LAUNCH_CHECK(ctx, "sumsq");
    }
    k_d2f<<<1, 1, 0, tp_cu_stream>>>(acc, (float *)n->out->data);
    CUDA_LAUNCH_CHECK(ctx, "sumsq");
    return TP_OK;
}
tp_status tp_cu_sumsq_bwd(tp_ctx *ctx, tp_node *n) {
    return tp_ctx_fail(ctx, TP_EUNSUP, "op 'sumsq' has no backward");
}

/* ---- tp_cuda.h: fills and AdamW ---- */
__global__ void k_fill_normal(void *o, int dt, float mean, float std, uint64_t seed,
                              uint64_t stream, int64_t n) {
    GRID_LOOP(k, n) {
        uint32_t x1 = rng_at(seed, stream, 2 * (uint64_t)k);
        uint32_t x2 = rng_at(seed, stream, 2 * (uint64_t)k + 1);
        float u1 = ((float)(x1 >> 8) + 0.5f) * (1.0f / 16777216.0f);
        float u2 = (float)(x2 >> 8) * (1.0f / 16777216.0f);
        float r = sqrtf(-2.0f * logf(u1));
        stf(o, dt, k, mean + std * r * cospif(2.0f * u2));
    }
}

extern "C" tp_status tp_cuda_fill_normal(tp_tensor *t, float mean, float std, uint64_t seed,
                                         uint64_t stream, tp_err *err) {
    if (!t || t->device != TP_CUDA || t->dtype == TP_I32 || !tp_is_contiguous(t))
        return tp_errf(err, TP_EINVAL, "cuda fill_normal: need a contiguous float tensor on cuda");
    int64_t n = tp_numel(t);
    if (!n) return TP_OK;
    k_fill_normal<<<tp_cu_blocks(n), TP_CU_THREADS, 0, tp_cu_stream>>>(t->data, (int)t->dtype, mean,
                                                                       std, seed, stream, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return tp_errf(err, TP_ECUDA, "%s:%d: fill_normal: %s", __FILE__, __LINE__,
                       cudaGetErrorString(e));
    return TP_OK;
}

__global__ void k_adamw(float *p, float *g, float *m, float *v, int64_t n, float lr, float b1,
                        float b2, float eps, float wd, float bc1, float bc2, float clip) {
    GRID_LOOP(k, n) {
        float gk = g[k] * clip;
        float mk = b1 * m[k] + (1.0f - b1) * gk;
        float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
        m[k] = mk;
        v[k] = vk;
        float pk = p[k] * (1.0f - lr * wd);
        p[k] = pk - lr * (mk / bc1) / (sqrtf(vk / bc2) + eps);
    }
}

extern "C" tp_status tp_cuda_adamw_step(tp_tensor *const *params, tp_tensor *const *m,
                                        tp_tensor *const *v, int n, const tp_cuda_adamw *cfg,
                                        float clip_scale, tp_err *err) {
    if (!cfg || cfg->step < 1) return tp_errf(err, TP_EINVAL, "cuda adamw: step must be >= 1");
    float bc1 = 1.0f - powf(cfg->beta1, (float)cfg->step);
    float bc2 = 1.0f - powf(cfg->beta2, (float)cfg->step);
    for (int i = 0; i < n; i++) {
        tp_tensor *p = params[i];
        if (!p || p->device != TP_CUDA || p->dtype != TP_F32 || !p->grad || !m[i] || !v[i])
            return tp_errf(err, TP_EINVAL,
                           "cuda adamw: param %d ('%s') must be an f32 cuda tensor with a grad "
                           "and moment buffers",
                           i, p ? p->name : "(null)");
        int64_t k = tp_numel(p);
        if (!k) continue;
        k_adamw<<<tp_cu_blocks(k), TP_CU_THREADS, 0, tp_cu_stream>>>(
            (float *)p->data, (float *)p->grad->data, (float *)m[i]->data, (float *)v[i]->data, k,
            cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, bc1, bc2, clip_scale);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return tp_errf(err, TP_ECUDA, "%s:%d: adamw: %s", __FILE__, __LINE__,
                       cudaGetErrorString(e));
    return TP_OK;
}

__global__ void k_sqnorm(const float *g, int64_t n, double *out) {
    __shared__ double sh[32];
    double s = 0;
    GRID_LOOP(k, n) s += (double)g[k] * g[k];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) atomicAdd(out, s);
}

extern "C" tp_status tp_cuda_grad_sqnorm(tp_tensor *const *params, int n, double *out,
                                         tp_err *err) {
    *out = 0;
    double *d = NULL;
    cudaError_t e = cudaMallocAsync((void **)&d, sizeof(double), tp_cu_stream);
    if (e == cudaSuccess) e = cudaMemsetAsync(d, 0, sizeof(double), tp_cu_stream);
    for (int i = 0; e == cudaSuccess && i < n; i++) {
        if (!params[i] || !params[i]->grad) continue;
        int64_t k = tp_numel(params[i]);
        if (!k) continue;
        unsigned b = tp_cu_blocks(k);
        if (b > 1024) b = 1024;
        k_sqnorm<<<b, TP_CU_THREADS, 0, tp_cu_stream>>>((const float *)params[i]->grad->data, k, d);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(out, d, sizeof(double), cudaMemcpyDeviceToHost, tp_cu_stream);
    if (d) cudaFreeAsync(d, tp_cu_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(tp_cu_stream);
    if (e != cudaSuccess)
        return tp_errf(err, TP_ECUDA, "%s:%d: grad_sqnorm: %s", __FILE__, __LINE__,
                       cudaGetErrorString(e));
    return TP_OK;
}
