/* cuda_attention.cu — CUDA scaled-dot-product attention with grouped KV heads, causal mask with
 * q_offset, sliding window and key padding (semantics of cpu_attention.c).
 * Forward: a fused flash-style kernel, one warp per query row: the row of q sits in registers
 * (Dh <= 512), keys stream through with an online softmax, so no score matrix is written; the row
 * log-sum-exp is saved for backward (-inf for a row that sees no key: its output is 0).
 * Backward: through GEMMs, since the study's sequences are short: the G = H/Hkv query heads of a
 * KV group are contiguous in q, so q viewed as [B*Hkv, G*T, Dh] against k [B*Hkv, S, Dh] makes
 * every product one strided batch (scores, dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q). */
#include <math.h>
#include <string.h>

#include "cuda_common.h"

struct attn_args {
    const void *q, *k, *v, *mask;
    int qdt, kdt, vdt, mdt;
    void *o;
    int odt;
    float *lse;
    int64_t B, H, Hkv, T, S, Dh;
    int causal, q_offset, window;
    float scale;
};

/* visible key range [lo, hi) of query t, before the padding mask */
__device__ __forceinline__ void key_range(const attn_args &a, int64_t t, int64_t *lo, int64_t *hi) {
    int64_t qpos = t + a.q_offset;
    *hi = a.causal ? min(a.S, qpos + 1) : a.S;
    *lo = a.window > 0 ? max((int64_t)0, qpos - a.window + 1) : 0;
    if (*hi < 0) *hi = 0;
}

template <int NJ> __global__ void k_attn_fwd(attn_args a) {
    int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; /* (b*H + h)*T + t */
    int lane = threadIdx.x & 31;
    if (row >= a.B * a.H * a.T) return;
    int64_t t = row % a.T, bh = row / a.T, h = bh % a.H, b = bh / a.H;
    int64_t kvh = h / (a.H / a.Hkv);
    int64_t kbase = (b * a.Hkv + kvh) * a.S * a.Dh;
    float q[NJ], acc[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        q[j] = d < a.Dh ? ldf(a.q, a.qdt, row * a.Dh + d) * a.scale : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int64_t lo, hi;
    key_range(a, t, &lo, &hi);
    for (int64_t s = lo; s < hi; s++) {
        if (a.mask && ldf(a.mask, a.mdt, b * a.S + s) == 0.0f) continue;
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            if (d < a.Dh) dot += q[j] * ldf(a.k, a.kdt, kbase + s * a.Dh + d);
        }
        dot = warp_sum(dot);
        float mn = fmaxf(m, dot);
        float corr = expf(m - mn), p = expf(dot - mn);
        l = l * corr + p;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            float vv = d < a.Dh ? ldf(a.v, a.vdt, kbase + s * a.Dh + d) : 0.0f;
            acc[j] = acc[j] * corr + p * vv;
        }
        m = mn;
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d < a.Dh) stf(a.o, a.odt, row * a.Dh + d, acc[j] * inv);
    }
    if (a.lse && lane == 0) a.lse[row] = l > 0.0f ? m + logf(l) : -INFINITY;
}

static attn_args args_of(const tp_node *n) {
    const tp_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *mk = n->in[3];
    const tp_attn_cfg *cfg = (const tp_attn_cfg *)n->aux;
    attn_args a;
    memset(&a, 0, sizeof a);
    a.q = q->data;
    a.k = k->data;
    a.v = v->data;
    a.mask = mk ? mk->data : NULL;
    a.qdt = (int)q->dtype;
    a.kdt = (int)k->dtype;
    a.vdt = (int)v->dtype;
    a.mdt = mk ? (int)mk->dtype : 0;
    a.B = q->shape[0];
    a.H = q->shape[1];
    a.T = q->shape[2];
    a.Dh = q->shape[3];
    a.Hkv = k->shape[1];
    a.S = k->shape[2];
    a.causal = cfg->causal;
    a.q_offset = cfg->q_offset;
    a.window = cfg->window;
    a.scale = cfg->scale;
    return a;
}

tp_status tp_cu_attention_fwd(tp_ctx *ctx, tp_node *n) {
    attn_args a = args_of(n);
    a.o = n->out->data;
    a.odt = (int)n->out->dtype;
    if (n->record) {
        int64_t sh[3] = {a.B, a.H, a.T};
        n->saved[0] = tp_ctx_scratch(ctx, TP_F32, 3, sh);
        if (!n->saved[0]) return ctx->status;
        a.lse = (float *)n->saved[0]->data;
    }
    int64_t rows = a.B * a.H * a.T;
    if (!rows) return TP_OK;
    if (a.Dh == 0) {
        if (a.lse) CUDA_CHECK(ctx, cudaMemsetAsync(a.lse, 0, (size_t)rows * 4, tp_cu_stream));
        return TP_OK;
    }
    unsigned blocks = (unsigned)((rows * 32 + 127) / 128);
    if (a.Dh <= 32)
        k_attn_fwd<1><<<blocks, 128, 0, tp_cu_stream>>>(a);
    else if (a.Dh <= 64)
        k_attn_fwd<2><<<blocks, 128, 0, tp_cu_stream>>>(a);
    else if (a.Dh <= 128)
        k_attn_fwd<4><<<blocks, 128, 0, tp_cu_stream>>>(a);
    else if (a.Dh <= 256)
        k_attn_fwd<8><<<blocks, 128, 0, tp_cu_stream>>>(a);
    else if (a.Dh <= 512)
        k_attn_fwd<16><<<blocks, 128, 0, tp_cu_stream>>>(a);
    else
        return tp_ctx_fail(ctx, TP_EUNSUP, "op 'attention' on cuda: head dim %lld > 512",
                           (long long)a.Dh);
    CUDA_LAUNCH_CHECK(ctx, "attention");
    return TP_OK;
}

/* P[bk, r, s] = visible ? exp(P - lse) : 0, with bk = b*Hkv + kvh, r = g*T + t (in place) */
__global__ void k_probs(float *P, const float *lse, attn_args a, int64_t G) {
    int64_t n = a.B * a.Hkv * G * a.T * a.S;
    GRID_LOOP(k, n) {
        int64_t s = k % a.S, rowflat = k / a.S; /* = (bk*G + g)*T + t = (b*H + h)*T + t */
        int64_t t = rowflat % a.T, b = rowflat / (a.H * a.T);
        int64_t lo, hi;
        key_range(a, t, &lo, &hi);
        float l = lse[rowflat];
        bool vis = s >= lo && s < hi && l != -INFINITY &&
                   !(a.mask && ldf(a.mask, a.mdt, b * a.S + s) == 0.0f);
        P[k] = vis ? expf(P[k] - l) : 0.0f;
    }
}

/* dS = P * (dP - rowsum(P * dP)), one warp per row (in place in dP) */
__global__ void k_dsoftmax(const float *P, float *dP, int64_t rows, int64_t S) {
    int lane = threadIdx.x & 31;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += nw) {
        const float *p = P + r * S;
        float *dp = dP + r * S;
        float d = 0;
        for (int64_t s = lane; s < S; s += 32) d += p[s] * dp[s];
        d = warp_sum(d);
        for (int64_t s = lane; s < S; s += 32) dp[s] = p[s] * (dp[s] - d);
    }
}

tp_status tp_cu_attention_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gq = tp_node_grad(ctx, n, 0), *gk = tp_node_grad(ctx, n, 1);
    tp_tensor *gv = tp_node_grad(ctx, n, 2);
    if (ctx->status) return ctx->status;
    attn_args a = args_of(n);
    if ((!gq && !gk && !gv) || !a.T || !a.S || !a.Dh || !a.B) return TP_OK;
    if (!n->saved[0])
        return tp_ctx_fail(ctx, TP_ESTATE, "op 'attention': backward without saved lse");
    int64_t G = a.H / a.Hkv, BK = a.B * a.Hkv, GT = G * a.T;
    tp_tensor *q = tp_cu_as_dtype(ctx, n->in[0], TP_F32);
    tp_tensor *k = tp_cu_as_dtype(ctx, n->in[1], TP_F32);
    tp_tensor *v = tp_cu_as_dtype(ctx, n->in[2], TP_F32);
    int64_t psh[3] = {BK, GT, a.S};
    tp_tensor *P = tp_ctx_scratch(ctx, TP_F32, 3, psh);
    if (!q || !k || !v || !P) return ctx->status;
    const float *dO = (const float *)n->out->grad->data;
    float *p = (float *)P->data;
    /* scores: P = scale * Q K^T */
    TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, q->data, a.Dh, GT * a.Dh, 1, TP_F32, k->data, a.Dh,
                         a.S * a.Dh, p, TP_F32, a.S, GT * a.S, GT, a.S, a.Dh, BK, a.scale, 0.0f));
    int64_t np = BK * GT * a.S;
    k_probs<<<tp_cu_blocks(np), TP_CU_THREADS, 0, tp_cu_stream>>>(
        p, (const float *)n->saved[0]->data, a, G);
    CUDA_LAUNCH_CHECK(ctx, "attention backward probs");
    if (gv) /* dV += P^T dO */
        TP_TRY(tp_cu_gemm_dt(ctx, 1, TP_F32, p, a.S, GT * a.S, 0, TP_F32, dO, a.Dh, GT * a.Dh,
                             gv->data, TP_F32, a.Dh, a.S * a.Dh, a.S, a.Dh, GT, BK, 1.0f, 1.0f));
    if (!gq && !gk) return TP_OK;
    tp_tensor *dPt = tp_ctx_scratch(ctx, TP_F32, 3, psh);
    if (!dPt) return ctx->status;
    float *dp = (float *)dPt->data;
    /* dP = dO V^T; dS = P * (dP - rowsum(P dP)) */
    TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, dO, a.Dh, GT * a.Dh, 1, TP_F32, v->data, a.Dh, a.S * a.Dh,
                         dp, TP_F32, a.S, GT * a.S, GT, a.S, a.Dh, BK, 1.0f, 0.0f));
    int64_t rows = BK * GT;
    k_dsoftmax<<<tp_cu_blocks(rows * 32), TP_CU_THREADS, 0, tp_cu_stream>>>(p, dp, rows, a.S);
    CUDA_LAUNCH_CHECK(ctx, "attention backward dsoftmax");
    if (gq) /* dQ += scale * dS K */
        TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, dp, a.S, GT * a.S, 0, TP_F32, k->data, a.Dh,
                             a.S * a.Dh, gq->data, TP_F32, a.Dh, GT * a.Dh, GT, a.Dh, a.S, BK,
                             a.scale, 1.0f));
    if (gk) /* dK += scale * dS^T Q */
        TP_TRY(tp_cu_gemm_dt(ctx, 1, TP_F32, dp, a.S, GT * a.S, 0, TP_F32, q->data, a.Dh, GT * a.Dh,
                             gk->data, TP_F32, a.Dh, a.S * a.Dh, a.S, a.Dh, GT, BK, a.scale, 1.0f));
    return TP_OK;
}
