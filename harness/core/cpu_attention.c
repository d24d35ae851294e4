/* cpu_attention.c — CPU reference scaled-dot-product attention with grouped KV heads, causal
 * mask with q_offset, sliding window and key padding. q (B,H,T,Dh), k/v (B,Hkv,S,Dh),
 * key_mask (B,S) f32 or NULL, out (B,H,T,Dh). k and v may be strided views whose rows are dense
 * (a KV cache's prefix, a head slice of the fused q|k|v output): they are read through their
 * batch/head strides with the row stride as the GEMM leading dimension; q, out and grads are
 * contiguous. Per (b,h) the scores (T,S) come from one GEMM,
 * the masked softmax is a row loop, and P @ V is a second GEMM. Forward saves the row
 * log-sum-exp (B,H,T) (-inf for a row that sees no key: its output is 0); backward recomputes
 * P from it and uses three GEMMs (dQ, dK, dV) accumulating into the grads. */
#include <cblas.h>
#include <math.h>

#include "core/cpu.h"

typedef struct {
    int64_t B, H, Hkv, T, S, Dh;
} adims;

static adims adims_of(const tp_node *n) {
    const tp_tensor *q = n->in[0], *k = n->in[1];
    return (adims){q->shape[0], q->shape[1], k->shape[1], q->shape[2], k->shape[2], q->shape[3]};
}

/* rows of head (b, h) of k or v (input i), and their leading dimension */
static const float *kv_rows(const tp_node *n, int i, adims d, int64_t b, int64_t h, int *ld) {
    const tp_tensor *t = n->in[i];
    *ld = (int)t->stride[2];
    return F32(t) + b * t->stride[0] + (h / (d.H / d.Hkv)) * t->stride[1];
}

static int visible(const tp_attn_cfg *cfg, const float *mask, int64_t t, int64_t s) {
    int64_t qpos = t + cfg->q_offset;
    if (mask && mask[s] == 0.0f) return 0;
    if (cfg->causal && s > qpos) return 0;
    if (cfg->window > 0 && qpos - s >= cfg->window) return 0;
    return 1;
}

/* P (T,S) = softmax over visible keys of scale * q k^T for head (b,h). When lse_in is given
 * the row statistics come from it (backward), else they are computed and written to lse_out. */
static void probs(const tp_node *n, adims d, int64_t b, int64_t h, float *P, const float *lse_in,
                  float *lse_out) {
    const tp_attn_cfg *cfg = n->aux;
    const float *q = F32(n->in[0]) + (b * d.H + h) * d.T * d.Dh;
    int ldk;
    const float *k = kv_rows(n, 1, d, b, h, &ldk);
    const float *mask = n->in[3] ? F32(n->in[3]) + b * d.S : NULL;
    if (d.T == 0 || d.S == 0) return;
    if (d.Dh > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d.T, (int)d.S, (int)d.Dh,
                    cfg->scale, q, (int)d.Dh, k, ldk, 0.0f, P, (int)d.S);
    else
        for (int64_t i = 0; i < d.T * d.S; i++) P[i] = 0.0f;
    for (int64_t t = 0; t < d.T; t++) {
        float *row = P + t * d.S;
        double l;
        if (lse_in) {
            l = lse_in[t];
        } else {
            float mx = -INFINITY;
            for (int64_t s = 0; s < d.S; s++)
                if (visible(cfg, mask, t, s) && row[s] > mx) mx = row[s];
            double sum = 0;
            if (mx != -INFINITY)
                for (int64_t s = 0; s < d.S; s++)
                    if (visible(cfg, mask, t, s)) sum += expf(row[s] - mx);
            l = mx == -INFINITY ? -INFINITY : mx + log(sum);
            if (lse_out) lse_out[t] = (float)l;
        }
        for (int64_t s = 0; s < d.S; s++)
            row[s] = (l != -INFINITY && visible(cfg, mask, t, s)) ? expf(row[s] - (float)l) : 0.0f;
    }
}

tp_status tp_cpu_attention_fwd(tp_ctx *ctx, tp_node *n) {
    adims d = adims_of(n);
    float *P = tp_ctx_scratch_bytes(ctx, sizeof(float) * (size_t)(d.T * d.S + 1));
    if (!P) return ctx->status;
    float *lse = NULL;
    if (n->record) {
        n->saved[0] = tp_ctx_scratch(ctx, TP_F32, 3, (int64_t[]){d.B, d.H, d.T});
        if (!n->saved[0]) return ctx->status;
        lse = F32(n->saved[0]);
    }
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t h = 0; h < d.H; h++) {
            float *o = F32(n->out) + (b * d.H + h) * d.T * d.Dh;
            int ldv;
            const float *v = kv_rows(n, 2, d, b, h, &ldv);
            probs(n, d, b, h, P, NULL, lse ? lse + (b * d.H + h) * d.T : NULL);
            if (d.T == 0 || d.Dh == 0) continue;
            if (d.S == 0) {
                for (int64_t i = 0; i < d.T * d.Dh; i++) o[i] = 0.0f;
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d.T, (int)d.Dh, (int)d.S,
                        1.0f, P, (int)d.S, v, ldv, 0.0f, o, (int)d.Dh);
        }
    return TP_OK;
}

tp_status tp_cpu_attention_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gq = tp_node_grad(ctx, n, 0), *gk = tp_node_grad(ctx, n, 1);
    tp_tensor *gv = tp_node_grad(ctx, n, 2);
    if (ctx->status) return ctx->status;
    adims d = adims_of(n);
    if ((!gq && !gk && !gv) || d.T == 0 || d.S == 0 || d.Dh == 0) return TP_OK;
    const tp_attn_cfg *cfg = n->aux;
    float *P = tp_ctx_scratch_bytes(ctx, sizeof(float) * (size_t)(2 * d.T * d.S));
    if (!P) return ctx->status;
    float *dP = P + d.T * d.S;
    int T = (int)d.T, S = (int)d.S, Dh = (int)d.Dh;
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t h = 0; h < d.H; h++) {
            int64_t qo = (b * d.H + h) * d.T * d.Dh,
                    kvo = (b * d.Hkv + h / (d.H / d.Hkv)) * d.S * d.Dh;
            int ldk, ldv;
            const float *q = F32(n->in[0]) + qo, *k = kv_rows(n, 1, d, b, h, &ldk);
            const float *v = kv_rows(n, 2, d, b, h, &ldv), *go = F32(n->out->grad) + qo;
            probs(n, d, b, h, P, F32(n->saved[0]) + (b * d.H + h) * d.T, NULL);
            if (gv) /* dV += P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, Dh, T, 1.0f, P, S, go, Dh,
                            1.0f, F32(gv) + kvo, Dh);
            if (!gq && !gk) continue;
            /* dP = dO V^T; dS = P * (dP - rowsum(P * dP)) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, Dh, 1.0f, go, Dh, v, ldv,
                        0.0f, dP, S);
            for (int64_t t = 0; t < d.T; t++) {
                float *p = P + t * d.S, *dp = dP + t * d.S;
                double D = 0;
                for (int64_t s = 0; s < d.S; s++) D += (double)p[s] * dp[s];
                for (int64_t s = 0; s < d.S; s++) dp[s] = p[s] * (dp[s] - (float)D);
            }
            if (gq) /* dQ += scale * dS K */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, Dh, S, cfg->scale, dP, S,
                            k, ldk, 1.0f, F32(gq) + qo, Dh);
            if (gk) /* dK += scale * dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, Dh, T, cfg->scale, dP, S, q,
                            Dh, 1.0f, F32(gk) + kvo, Dh);
        }
    return TP_OK;
}
