/* cuda_softmax.cu — CUDA softmax / log-softmax over the last dim and the fused softmax
 * cross-entropy (mean over non-ignored targets, PyTorch label smoothing), one block per row with
 * f32 row statistics. Cross-entropy saves each row's log-sum-exp and the target count on the
 * device for its backward; a target outside the logits sets the device range-error word, which
 * the op reads back (one small synchronisation per loss) to fail with the CPU's message. Also
 * the row argmax of greedy decoding. */
#include <math.h>

#include "cuda_common.h"

/* row max and log-sum-exp (every thread gets both) */
__device__ float row_lse(const void *x, int xdt, int64_t base, int64_t V, float *sh) {
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, ldf(x, xdt, base + i));
    mx = block_max(mx, sh);
    if (mx == -INFINITY) return -INFINITY;
    float s = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += expf(ldf(x, xdt, base + i) - mx);
    s = block_sum(s, sh);
    return mx + logf(s);
}

__global__ void k_softmax(const void *x, int xdt, void *y, int ydt, int64_t V, int logmode) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * V;
    float l = row_lse(x, xdt, base, V, sh);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float v = ldf(x, xdt, base + i);
        stf(y, ydt, base + i, logmode ? v - l : expf(v - l));
    }
}

__global__ void k_softmax_bwd(const void *y, int ydt, const float *dy, float *dx, int64_t V,
                              int logmode) {
    __shared__ float sh[32];
    int64_t base = (int64_t)blockIdx.x * V;
    float s = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        s += logmode ? dy[base + i] : dy[base + i] * ldf(y, ydt, base + i);
    s = block_sum(s, sh);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float yv = ldf(y, ydt, base + i), g = dy[base + i];
        dx[base + i] += logmode ? g - expf(yv) * s : yv * (g - s);
    }
}

static tp_status softmax_fwd(tp_ctx *ctx, tp_node *n, int logmode) {
    int64_t R = tp_rows(n->in[0]), V = tp_cols(n->in[0]);
    if (!R || !V) return TP_OK;
    k_softmax<<<(unsigned)R, tp_cu_row_threads(V), 0, tp_cu_stream>>>(
        n->in[0]->data, (int)n->in[0]->dtype, n->out->data, (int)n->out->dtype, V, logmode);
    CUDA_LAUNCH_CHECK(ctx, logmode ? "log_softmax" : "softmax");
    return TP_OK;
}

static tp_status softmax_bwd(tp_ctx *ctx, tp_node *n, int logmode) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t R = tp_rows(n->in[0]), V = tp_cols(n->in[0]);
    if (!R || !V) return TP_OK;
    k_softmax_bwd<<<(unsigned)R, tp_cu_row_threads(V), 0, tp_cu_stream>>>(
        n->out->data, (int)n->out->dtype, (const float *)n->out->grad->data, (float *)gx->data, V,
        logmode);
    CUDA_LAUNCH_CHECK(ctx, logmode ? "log_softmax backward" : "softmax backward");
    return TP_OK;
}

tp_status tp_cu_softmax_fwd(tp_ctx *ctx, tp_node *n) {
    return softmax_fwd(ctx, n, 0);
}
tp_status tp_cu_softmax_bwd(tp_ctx *ctx, tp_node *n) {
    return softmax_bwd(ctx, n, 0);
}
tp_status tp_cu_log_softmax_fwd(tp_ctx *ctx, tp_node *n) {
    return softmax_fwd(ctx, n, 1);
}
tp_status tp_cu_log_softmax_bwd(tp_ctx *ctx, tp_node *n) {
    return softmax_bwd(ctx, n, 1);
}

/* ---- cross-entropy ---- */
/* acc[0] total loss (double), acc[1] target count */
__global__ void k_ce(const void *x, int xdt, const int32_t *tg, int64_t V, int ignore, float eps,
                     double *acc, float *lse_out, tp_cu_range_err *rerr) {
    __shared__ float sh[32];
    int64_t r = blockIdx.x, base = r * V;
    int32_t t = tg[r];
    if (t == ignore) {
        if (lse_out && threadIdx.x == 0) lse_out[r] = 0.0f;
        return;
    }
    if (t < 0 || t >= V) {
        if (threadIdx.x == 0 &&
            atomicCAS(&rerr->index1, 0ull, (unsigned long long)r + 1ull) == 0ull)
            rerr->value = t;
        return;
    }
    float l = row_lse(x, xdt, base, V, sh);
    float mean_x = 0;
    if (eps > 0) {
        float s = 0;
        for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += ldf(x, xdt, base + i);
        mean_x = block_sum(s, sh) / (float)V;
    }
    if (threadIdx.x == 0) {
        double loss =
            (1.0 - eps) * ((double)l - ldf(x, xdt, base + t)) + eps * ((double)l - mean_x);
        atomicAdd(&acc[0], loss);
        atomicAdd(&acc[1], 1.0);
        if (lse_out) lse_out[r] = l;
    }
}

__global__ void k_ce_final(const double *acc, float *out, float *count_out) {
    out[0] = acc[1] > 0 ? (float)(acc[0] / acc[1]) : 0.0f;
    if (count_out) count_out[0] = (float)acc[1];
}

__global__ void k_ce_bwd(const void *x, int xdt, const int32_t *tg, const float *lse,
                         const float *count, const float *gout, float *dx, int64_t V, int ignore,
                         float eps) {
    int64_t r = blockIdx.x, base = r * V;
    int32_t t = tg[r];
    if (t == ignore || count[0] == 0.0f) return;
    float g = gout[0] / count[0], l = lse[r];
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        dx[base + i] +=
            g * (expf(ldf(x, xdt, base + i) - l) - (i == t ? 1.0f - eps : 0.0f) - eps / (float)V);
}

tp_status tp_cu_cross_entropy_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *x = n->in[0];
    int64_t N = x->shape[0], V = x->shape[1];
    double *acc = (double *)tp_ctx_scratch_bytes(ctx, 2 * sizeof(double));
    if (!acc) return ctx->status;
    float *lse = NULL, *count = NULL;
    if (n->record) {
        int64_t rows = N > 0 ? N : 1, one = 1;
        n->saved[0] = tp_ctx_scratch(ctx, TP_F32, 1, &rows);
        n->saved[1] = tp_ctx_scratch(ctx, TP_F32, 1, &one);
        if (!n->saved[0] || !n->saved[1]) return ctx->status;
        lse = (float *)n->saved[0]->data;
        count = (float *)n->saved[1]->data;
    }
    CUDA_CHECK(ctx, cudaMemsetAsync(acc, 0, 2 * sizeof(double), tp_cu_stream));
    if (N > 0 && V > 0) {
        k_ce<<<(unsigned)N, tp_cu_row_threads(V), 0, tp_cu_stream>>>(
            x->data, (int)x->dtype, (const int32_t *)n->in[1]->data, V, (int)n->ip[0], n->fp[0],
            acc, lse, tp_cu_range_err_ptr());
        CUDA_LAUNCH_CHECK(ctx, "cross_entropy");
    }
    k_ce_final<<<1, 1, 0, tp_cu_stream>>>(acc, (float *)n->out->data, count);
    CUDA_LAUNCH_CHECK(ctx, "cross_entropy");
    int64_t bad;
    int32_t val;
    TP_TRY(tp_cu_take_range_error(ctx, &bad, &val));
    if (bad >= 0)
        return tp_ctx_fail(ctx, TP_ERANGE,
                           "op 'cross_entropy': target %d at row %lld outside logits [%lld,%lld] "
                           "(classes 0..%lld, ignore_index %d)",
                           (int)val, (long long)bad, (long long)N, (long long)V, (long long)V - 1,
                           (int)n->ip[0]);
    return TP_OK;
}

tp_status tp_cu_cross_entropy_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    const tp_tensor *x = n->in[0];
    int64_t N = x->shape[0], V = x->shape[1];
    if (!N || !V) return TP_OK;
    if (!n->saved[0] || !n->saved[1])
        return tp_ctx_fail(ctx, TP_ESTATE, "op 'cross_entropy': backward without saved state");
    k_ce_bwd<<<(unsigned)N, tp_cu_row_threads(V), 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, (const int32_t *)n->in[1]->data, (const float *)n->saved[0]->data,
        (const float *)n->saved[1]->data, (const float *)n->out->grad->data, (float *)gx->data, V,
        (int)n->ip[0], n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "cross_entropy backward");
    return TP_OK;
}

/* ---- argmax over the last dim (greedy decoding): one block per row ----
 * (value, index) pairs reduce to the larger value, the smaller index on ties; NaN never wins,
 * as in cpu_reduce.c, so both backends pick the same token. */
__device__ __forceinline__ void amax_merge(float &bv, int &bi, float v, int i) {
    if (v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

__global__ void k_argmax(const void *x, int dt, int64_t V, int32_t *out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const int64_t r = blockIdx.x;
    float bv = -INFINITY;
    int bi = 0;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
        amax_merge(bv, bi, ldf(x, dt, r * V + v), (int)v);
    for (int o = 16; o > 0; o >>= 1)
        amax_merge(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o),
                   __shfl_xor_sync(0xffffffffu, bi, o));
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (w == 0) {
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0;
        for (int o = 16; o > 0; o >>= 1)
            amax_merge(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o),
                       __shfl_xor_sync(0xffffffffu, bi, o));
        if (lane == 0) out[r] = bi;
    }
}

tp_status tp_cu_argmax_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *x = n->in[0];
    int64_t V = x->shape[x->ndim - 1], R = V ? tp_numel(x) / V : 0;
    if (!R) return TP_OK;
    if (V > 0x7fffffff)
        return tp_ctx_fail(ctx, TP_EUNSUP, "op 'argmax' on cuda: rows of %lld exceed int32",
                           (long long)V);
    k_argmax<<<(unsigned)R, 1024, 0, tp_cu_stream>>>(x->data, (int)x->dtype, V,
                                                     (int32_t *)n->out->data);
    CUDA_LAUNCH_CHECK(ctx, "argmax");
    return TP_OK;
}

tp_status tp_cu_argmax_bwd(tp_ctx *ctx, tp_node *n) {
    (void)n;
    return tp_ctx_fail(ctx, TP_EUNSUP, "op 'argmax' has no backward");
}
