/* cuda_norm.cu — CUDA RMSNorm (fused: statistics, scale and weight in one pass per row),
 * LayerNorm and L2-normalise over the last dim: one block per row, f32 statistics, any input
 * dtype, output in the dtype the front end chose. Backward recomputes the row statistics from
 * x (cheaper than a second buffer at these widths); weight/bias grads add with atomics. */
#include "cuda_common.h"

__global__ void k_rmsnorm(const void *x, int xdt, const void *w, int wdt, void *y, int ydt,
                          int64_t D, float eps) {
    __shared__ float sh[32];
    int64_t r = blockIdx.x;
    const int64_t base = r * D;
    float ss = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ldf(x, xdt, base + i);
        ss += v * v;
    }
    ss = block_sum(ss, sh);
    float rs = rsqrtf(ss / (float)(D ? D : 1) + eps);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ldf(x, xdt, base + i) * rs;
        stf(y, ydt, base + i, w ? v * ldf(w, wdt, i) : v);
    }
}

/* 8 bf16 per thread in one 16-byte load: x, w, y bf16, D % 8 == 0. */
__global__ void k_rmsnorm_bf16(const uint4 *x, const uint4 *w, uint4 *y, int64_t D8, float eps,
                               float invD) {
    tp_cu_pdl_trigger(); /* the next GEMV may stream its weights meanwhile */
    __shared__ float sh[32];
    const uint4 *xr = x + blockIdx.x * D8;
    uint4 *yr = y + blockIdx.x * D8;
    float ss = 0;
    for (int64_t i = threadIdx.x; i < D8; i += blockDim.x) {
        uint4 u = xr[i];
        const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f = __bfloat1622float2(h[j]);
            ss += f.x * f.x + f.y * f.y;
        }
    }
    ss = block_sum(ss, sh);
    float rs = rsqrtf(ss * invD + eps);
    for (int64_t i = threadIdx.x; i < D8; i += blockDim.x) {
        uint4 u = xr[i], wv = w[i], o;
        const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u, *hw = (const __nv_bfloat162 *)&wv;
        __nv_bfloat162 *ho = (__nv_bfloat162 *)&o;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f = __bfloat1622float2(h[j]), g = __bfloat1622float2(hw[j]);
            ho[j] = __floats2bfloat162_rn(f.x * rs * g.x, f.y * rs * g.y);
        }
        yr[i] = o;
    }
}

tp_status tp_cu_rmsnorm_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *x = n->in[0], *w = n->in[1];
    int64_t R = tp_rows(x), D = tp_cols(x);
    if (!R || !D) return TP_OK;
    if (x->dtype == TP_BF16 && w && w->dtype == TP_BF16 && n->out->dtype == TP_BF16 && D % 8 == 0 &&
        (uintptr_t)x->data % 16 == 0 && (uintptr_t)w->data % 16 == 0 &&
        (uintptr_t)n->out->data % 16 == 0) {
        k_rmsnorm_bf16<<<(unsigned)R, tp_cu_row_threads(D / 8), 0, tp_cu_stream>>>(
            (const uint4 *)x->data, (const uint4 *)w->data, (uint4 *)n->out->data, D / 8, n->fp[0],
            1.0f / (float)D);
    } else {
        k_rmsnorm<<<(unsigned)R, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
            x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0, n->out->data,
            (int)n->out->dtype, D, n->fp[0]);
    }
    CUDA_LAUNCH_CHECK(ctx, "rmsnorm");
    return TP_OK;
}

__global__ void k_rmsnorm_bwd(const void *x, int xdt, const void *w, int wdt, const float *dy,
                              float *dx, float *dw, int64_t D, float eps) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * D;
    float ss = 0, dot = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ldf(x, xdt, base + i);
        ss += v * v;
        dot += dy[base + i] * (w ? ldf(w, wdt, i) : 1.0f) * v;
    }
    ss = block_sum(ss, sh);
    dot = block_sum(dot, sh);
    float rs = rsqrtf(ss / (float)D + eps);
    dot = dot * rs / (float)D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ldf(x, xdt, base + i), g = dy[base + i];
        if (dx) dx[base + i] += rs * (g * (w ? ldf(w, wdt, i) : 1.0f) - v * rs * dot);
        if (dw) atomicAdd(dw + i, g * v * rs);
    }
}

tp_status tp_cu_rmsnorm_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0), *gw = tp_node_grad(ctx, n, 1);
    if (ctx->status) return ctx->status;
    const tp_tensor *x = n->in[0], *w = n->in[1];
    int64_t R = tp_rows(x), D = tp_cols(x);
    if ((!gx && !gw) || !R || !D) return TP_OK;
    k_rmsnorm_bwd<<<(unsigned)R, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0,
        (const float *)n->out->grad->data, gx ? (float *)gx->data : NULL,
        gw ? (float *)gw->data : NULL, D, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "rmsnorm backward");
    return TP_OK;
}

/* ---- LayerNorm ---- */
__device__ void ln_stats(const void *x, int xdt, int64_t base, int64_t D, float eps, float *sh,
                         float *mean, float *rstd) {
    float s = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += ldf(x, xdt, base + i);
    float m = block_sum(s, sh) / (float)(D ? D : 1);
    float v = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float d = ldf(x, xdt, base + i) - m;
        v += d * d;
    }
    v = block_sum(v, sh) / (float)(D ? D : 1);
    *mean = m;
    *rstd = rsqrtf(v + eps);
}

__global__ void k_layernorm(const void *x, int xdt, const void *w, int wdt, const void *b, int bdt,
                            void *y, int ydt, int64_t D, float eps) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * D;
    float m, rs;
    ln_stats(x, xdt, base, D, eps, sh, &m, &rs);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = (ldf(x, xdt, base + i) - m) * rs;
        if (w) v *= ldf(w, wdt, i);
        if (b) v += ldf(b, bdt, i);
        stf(y, ydt, base + i, v);
    }
}

__global__ void k_layernorm_bwd(const void *x, int xdt, const void *w, int wdt, const float *dy,
                                float *dx, float *dw, float *db, int64_t D, float eps) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * D;
    float m, rs;
    ln_stats(x, xdt, base, D, eps, sh, &m, &rs);
    float s1 = 0, s2 = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float xh = (ldf(x, xdt, base + i) - m) * rs, dxh = dy[base + i] * (w ? ldf(w, wdt, i) : 1);
        s1 += dxh;
        s2 += dxh * xh;
    }
    s1 = block_sum(s1, sh) / (float)D;
    s2 = block_sum(s2, sh) / (float)D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float xh = (ldf(x, xdt, base + i) - m) * rs, g = dy[base + i];
        float dxh = g * (w ? ldf(w, wdt, i) : 1);
        if (dx) dx[base + i] += rs * (dxh - s1 - xh * s2);
        if (dw) atomicAdd(dw + i, g * xh);
        if (db) atomicAdd(db + i, g);
    }
}

tp_status tp_cu_layernorm_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t R = tp_rows(x), D = tp_cols(x);
    if (!R || !D) return TP_OK;
    k_layernorm<<<(unsigned)R, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0, b ? b->data : NULL,
        b ? (int)b->dtype : 0, n->out->data, (int)n->out->dtype, D, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "layernorm");
    return TP_OK;
}

tp_status tp_cu_layernorm_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0), *gw = tp_node_grad(ctx, n, 1);
    tp_tensor *gb = tp_node_grad(ctx, n, 2);
    if (ctx->status) return ctx->status;
    const tp_tensor *x = n->in[0], *w = n->in[1];
    int64_t R = tp_rows(x), D = tp_cols(x);
    if ((!gx && !gw && !gb) || !R || !D) return TP_OK;
    k_layernorm_bwd<<<(unsigned)R, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0,
        (const float *)n->out->grad->data, gx ? (float *)gx->data : NULL,
        gw ? (float *)gw->data : NULL, gb ? (float *)gb->data : NULL, D, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "layernorm backward");
    return TP_OK;
}

/* ---- L2 normalise: y = x / max(|x|, eps) ---- */
__global__ void k_l2norm(const void *x, int xdt, void *y, int ydt, int64_t D, float eps) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * D;
    float ss = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ldf(x, xdt, base + i);
        ss += v * v;
    }
    float nr = fmaxf(sqrtf(block_sum(ss, sh)), eps);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        stf(y, ydt, base + i, ldf(x, xdt, base + i) / nr);
}

__global__ void k_l2norm_bwd(const void *x, int xdt, const float *dy, float *dx, int64_t D,
                             float eps) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * D;
    float ss = 0, dot = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ldf(x, xdt, base + i);
        ss += v * v;
        dot += dy[base + i] * v;
    }
    ss = block_sum(ss, sh);
    dot = block_sum(dot, sh);
    float nrm = sqrtf(ss);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float g = dy[base + i];
        if (nrm > eps)
            dx[base + i] += g / nrm - ldf(x, xdt, base + i) * dot / (nrm * nrm * nrm);
        else
            dx[base + i] += g / eps;
    }
}

tp_status tp_cu_l2norm_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *x = n->in[0];
    int64_t R = tp_rows(x), D = tp_cols(x);
    if (!R || !D) return TP_OK;
    k_l2norm<<<(unsigned)R, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, n->out->data, (int)n->out->dtype, D, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "l2norm");
    return TP_OK;
}

tp_status tp_cu_l2norm_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    const tp_tensor *x = n->in[0];
    int64_t R = tp_rows(x), D = tp_cols(x);
    if (!R || !D) return TP_OK;
    k_l2norm_bwd<<<(unsigned)R, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, (const float *)n->out->grad->data, (float *)gx->data, D, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "l2norm backward");
    return TP_OK;
}
