/* cuda_gather.cu — CUDA kernels that gather or reduce rows: the embedding lookup (one block
 * per id; ids checked on the device, an out-of-range id fails the op with the CPU's message),
 * its scatter-add backward, sum/mean over one dim (outer x len x inner), masked pooling over T
 * and the straight-through nearest-codebook quantiser (VQ). */
#include <math.h>

#include "cuda_common.h"

__global__ void k_embedding(const void *w, int wdt, const int32_t *ids, void *y, int ydt, int64_t V,
                            int64_t D, tp_cu_range_err *rerr) {
    int64_t i = blockIdx.x;
    int32_t id = ids[i];
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0 &&
            atomicCAS(&rerr->index1, 0ull, (unsigned long long)i + 1ull) == 0ull)
            rerr->value = id;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) stf(y, ydt, i * D + d, 0.0f);
        return;
    }
    if (wdt == ydt && wdt == TP_BF16 && D % 8 == 0 && ((uintptr_t)w % 16) == 0 &&
        ((uintptr_t)y % 16) == 0) {
        const uint4 *src = (const uint4 *)((const __nv_bfloat16 *)w + (int64_t)id * D);
        uint4 *dst = (uint4 *)((__nv_bfloat16 *)y + i * D);
        for (int64_t d = threadIdx.x; d < D / 8; d += blockDim.x) dst[d] = src[d];
        return;
    }
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        stf(y, ydt, i * D + d, ldf(w, wdt, (int64_t)id * D + d));
}

tp_status tp_cu_embedding_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *w = n->in[0], *ids = n->in[1];
    int64_t V = w->shape[0], D = w->shape[1], N = tp_numel(ids);
    if (!N || !D) return TP_OK;
    k_embedding<<<(unsigned)N, tp_cu_row_threads(D >= 8 ? D / 8 : D), 0, tp_cu_stream>>>(
        w->data, (int)w->dtype, (const int32_t *)ids->data, n->out->data, (int)n->out->dtype, V, D,
        tp_cu_range_err_ptr());
    CUDA_LAUNCH_CHECK(ctx, "embedding");
    int64_t bad;
    int32_t val;
    TP_TRY(tp_cu_take_range_error(ctx, &bad, &val));
    if (bad >= 0)
        return tp_ctx_fail(ctx, TP_ERANGE,
                           "op 'embedding': id %d at flat position %lld of ids is outside weight "
                           "[%lld,%lld] (vocab %lld) (hint: tokenizer and model do not match?)",
                           (int)val, (long long)bad, (long long)V, (long long)D, (long long)V);
    return TP_OK;
}

__global__ void k_embedding_bwd(const int32_t *ids, const float *g, float *dw, int64_t D) {
    int64_t i = blockIdx.x;
    int64_t row = (int64_t)ids[i] * D;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) atomicAdd(dw + row + d, g[i * D + d]);
}

tp_status tp_cu_embedding_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gw = tp_node_grad(ctx, n, 0);
    if (!gw) return ctx->status;
    int64_t D = n->in[0]->shape[1], N = tp_numel(n->in[1]);
    if (!N || !D) return TP_OK;
    k_embedding_bwd<<<(unsigned)N, tp_cu_row_threads(D), 0, tp_cu_stream>>>(
        (const int32_t *)n->in[1]->data, (const float *)n->out->grad->data, (float *)gw->data, D);
    CUDA_LAUNCH_CHECK(ctx, "embedding backward");
    return TP_OK;
}

/* ---- sum / mean over one dim ---- */
static void split(const tp_tensor *x, int d, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *len = x->shape[d];
}

/* one warp per output element: lanes stride over len */
__global__ void k_sum(const void *x, int xdt, void *y, int ydt, int64_t O, int64_t L, int64_t I,
                      float scale) {
    int lane = threadIdx.x & 31;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; warp < O * I;
         warp += nw) {
        int64_t o = warp / I, i = warp % I;
        double s = 0;
        for (int64_t l = lane; l < L; l += 32) s += ldf(x, xdt, (o * L + l) * I + i);
        s = warp_sum_d(s);
        if (lane == 0) stf(y, ydt, warp, (float)(s * scale));
    }
}

__global__ void k_sum_bwd(const float *g, float *dx, int64_t O, int64_t L, int64_t I, float scale) {
    GRID_LOOP(k, O * L * I) {
        int64_t i = k % I, o = k / (L * I);
        dx[k] += g[o * I + i] * scale;
    }
}

tp_status tp_cu_sum_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t O, L, I;
    split(n->in[0], (int)n->ip[0], &O, &L, &I);
    if (!O || !I) return TP_OK;
    k_sum<<<tp_cu_blocks(O * I * 32), TP_CU_THREADS, 0, tp_cu_stream>>>(
        n->in[0]->data, (int)n->in[0]->dtype, n->out->data, (int)n->out->dtype, O, L, I, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "sum");
    return TP_OK;
}

tp_status tp_cu_sum_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t O, L, I;
    split(n->in[0], (int)n->ip[0], &O, &L, &I);
    if (!O || !L || !I) return TP_OK;
    k_sum_bwd<<<tp_cu_blocks(O * L * I), TP_CU_THREADS, 0, tp_cu_stream>>>(
        (const float *)n->out->grad->data, (float *)gx->data, O, L, I, n->fp[0]);
    CUDA_LAUNCH_CHECK(ctx, "sum backward");
    return TP_OK;
}

/* ---- masked pooling over T: one thread per (b, d), as cpu_reduce.c ---- */
__global__ void k_pool(const void *x, int xdt, const void *m, int mdt, void *y, int ydt,
                       const float *g, float *dx, int64_t B, int64_t T, int64_t D, int kind) {
    GRID_LOOP(k, B * D) {
        int64_t b = k / D, d = k % D;
        if (kind == TP_POOL_MAX) {
            int64_t best = -1;
            float bv = 0;
            for (int64_t t = 0; t < T; t++) {
                if (m && ldf(m, mdt, b * T + t) == 0.0f) continue;
                float v = ldf(x, xdt, (b * T + t) * D + d);
                if (best < 0 || v > bv) best = t, bv = v;
            }
            if (dx) {
                if (best >= 0) dx[(b * T + best) * D + d] += g[k];
            } else {
                stf(y, ydt, k, best >= 0 ? bv : 0.0f);
            }
            continue;
        }
        double tot = 0;
        for (int64_t t = 0; t < T; t++) tot += m ? ldf(m, mdt, b * T + t) : 1.0;
        double s = 0;
        for (int64_t t = 0; t < T; t++) {
            double mt = m ? ldf(m, mdt, b * T + t) : 1.0;
            double w = kind == TP_POOL_SUM ? mt : (tot != 0 ? mt / tot : 0.0);
            if (w == 0) continue;
            if (dx)
                dx[(b * T + t) * D + d] += (float)(w * g[k]);
            else
                s += w * ldf(x, xdt, (b * T + t) * D + d);
        }
        if (!dx) stf(y, ydt, k, (float)s);
    }
}

static tp_status pool(tp_ctx *ctx, tp_node *n, tp_tensor *gx) {
    const tp_tensor *x = n->in[0], *m = n->in[1];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    if (!B || !D) return TP_OK;
    k_pool<<<tp_cu_blocks(B * D), TP_CU_THREADS, 0, tp_cu_stream>>>(
        x->data, (int)x->dtype, m ? m->data : NULL, m ? (int)m->dtype : 0, gx ? NULL : n->out->data,
        (int)n->out->dtype, gx ? (const float *)n->out->grad->data : NULL,
        gx ? (float *)gx->data : NULL, B, T, D, (int)n->ip[0]);
    CUDA_LAUNCH_CHECK(ctx, gx ? "pool backward" : "pool");
    return TP_OK;
}

tp_status tp_cu_pool_fwd(tp_ctx *ctx, tp_node *n) {
    return pool(ctx, n, NULL);
}

tp_status tp_cu_pool_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    return pool(ctx, n, gx);
}

/* ---- VQ: one warp per row, codes scanned in order (ties to the lowest index) ---- */
__device__ void vq_row(const void *z, int zdt, const void *cb, int cdt, int32_t *codes, void *q,
                       int qdt, int64_t row, int lane, int64_t D, int64_t K, int cosine);

__global__ void k_vq(const void *z, int zdt, const void *cb, int cdt, int32_t *codes, void *q,
                     int qdt, int64_t N, int64_t D, int64_t K, int cosine) {
    int lane = threadIdx.x & 31;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; row < N; row += nw)
        vq_row(z, zdt, cb, cdt, codes, q, qdt, row, lane, D, K, cosine);
}

__device__ void vq_row(const void *z, int zdt, const void *cb, int cdt, int32_t *codes, void *q,
                       int qdt, int64_t row, int lane, int64_t D, int64_t K, int cosine) {
    double zn = 0;
    for (int64_t d = lane; d < D; d += 32) {
        double v = ldf(z, zdt, row * D + d);
        zn += v * v;
    }
    zn = sqrt(warp_sum_d(zn));
    int64_t best = 0;
    double best_v = INFINITY;
    for (int64_t k = 0; k < K; k++) {
        double dot = 0, cn = 0, dist = 0;
        for (int64_t d = lane; d < D; d += 32) {
            double a = ldf(z, zdt, row * D + d), c = ldf(cb, cdt, k * D + d);
            dot += a * c;
            cn += c * c;
            dist += (a - c) * (a - c);
        }
        dot = warp_sum_d(dot);
        cn = warp_sum_d(cn);
        dist = warp_sum_d(dist);
        double v = cosine ? -dot / fmax(zn * sqrt(cn), 1e-12) : dist;
        if (v < best_v) {
            best_v = v;
            best = k;
        }
    }
    if (lane == 0) codes[row] = (int32_t)best;
    for (int64_t d = lane; d < D; d += 32) stf(q, qdt, row * D + d, ldf(cb, cdt, best * D + d));
}

tp_status tp_cu_vq_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *z = n->in[0], *cb = n->in[1];
    int64_t N = z->shape[0], D = z->shape[1], K = cb->shape[0];
    if (!N) return TP_OK;
    k_vq<<<tp_cu_blocks(N * 32), TP_CU_THREADS, 0, tp_cu_stream>>>(
        z->data, (int)z->dtype, cb->data, (int)cb->dtype, (int32_t *)n->saved[0]->data,
        n->out->data, (int)n->out->dtype, N, D, K, n->ip[0] == TP_VQ_COSINE);
    CUDA_LAUNCH_CHECK(ctx, "vq");
    return TP_OK;
}

__global__ void k_add_f32(const float *g, float *d, int64_t n) {
    GRID_LOOP(k, n) d[k] += g[k];
}

/* straight-through: dz += dq */
tp_status tp_cu_vq_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gz = tp_node_grad(ctx, n, 0);
    if (!gz) return ctx->status;
    int64_t m = tp_numel(gz);
    if (!m) return TP_OK;
    k_add_f32<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        (const float *)n->out->grad->data, (float *)gz->data, m);
    CUDA_LAUNCH_CHECK(ctx, "vq backward");
    return TP_OK;
}
