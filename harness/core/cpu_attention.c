/* cpu_attention.c — CPU reference scaled-dot-product attention with grouped KV heads, causal
 * mask with q_offset, sliding window and key padding. q (B,H,T,Dh), k/v (B,Hkv,S,Dh),
 * key_mask (B,S) f32 or NULL, out (B,H,T,Dh). Forward saves the row log-sum-exp (B,H,T)
 * (-inf for a row that sees no key: its output is 0); backward recomputes probabilities. */
#include <math.h>

#include "core/cpu.h"

static int visible(const tp_attn_cfg *cfg, const float *mask, int64_t t, int64_t s) {
    int64_t qpos = t + cfg->q_offset;
    if (mask && mask[s] == 0.0f) return 0;
    if (cfg->causal && s > qpos) return 0;
    if (cfg->window > 0 && qpos - s >= cfg->window) return 0;
    return 1;
}

typedef struct {
    int64_t B, H, Hkv, T, S, Dh;
} adims;

static adims adims_of(const tp_node *n) {
    const tp_tensor *q = n->in[0], *k = n->in[1];
    return (adims){q->shape[0], q->shape[1], k->shape[1], q->shape[2], k->shape[2], q->shape[3]};
}

/* scores of one query row into sc[S]; returns the row's lse (-inf if nothing visible) */
static double row_scores(const tp_node *n, adims d, int64_t b, int64_t h, int64_t t, float *sc) {
    const tp_attn_cfg *cfg = n->aux;
    const float *q = F32(n->in[0]) + ((b * d.H + h) * d.T + t) * d.Dh;
    const float *k = F32(n->in[1]) + (b * d.Hkv + h / (d.H / d.Hkv)) * d.S * d.Dh;
    const float *mask = n->in[3] ? F32(n->in[3]) + b * d.S : NULL;
    double mx = -INFINITY;
    for (int64_t s = 0; s < d.S; s++) {
        if (!visible(cfg, mask, t, s)) {
            sc[s] = -INFINITY;
            continue;
        }
        double dot = 0;
        for (int64_t i = 0; i < d.Dh; i++) dot += (double)q[i] * k[s * d.Dh + i];
        sc[s] = (float)(dot * cfg->scale);
        if (sc[s] > mx) mx = sc[s];
    }
    if (mx == -INFINITY) return -INFINITY;
    double sum = 0;
    for (int64_t s = 0; s < d.S; s++)
        if (sc[s] != -INFINITY) sum += exp(sc[s] - mx);
    return mx + log(sum);
}

tp_status tp_cpu_attention_fwd(tp_ctx *ctx, tp_node *n) {
    adims d = adims_of(n);
    float *sc = tp_ctx_scratch_bytes(ctx, (size_t)(d.S ? d.S : 1) * sizeof(float));
    if (!sc) return ctx->status;
    float *lse = NULL;
    if (n->record) {
        n->saved[0] = tp_ctx_scratch(ctx, TP_F32, 3, (int64_t[]){d.B, d.H, d.T});
        if (!n->saved[0]) return ctx->status;
        lse = F32(n->saved[0]);
    }
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t h = 0; h < d.H; h++) {
            const float *v = F32(n->in[2]) + (b * d.Hkv + h / (d.H / d.Hkv)) * d.S * d.Dh;
            for (int64_t t = 0; t < d.T; t++) {
                double l = row_scores(n, d, b, h, t, sc);
                if (lse) lse[(b * d.H + h) * d.T + t] = (float)l;
                float *o = F32(n->out) + ((b * d.H + h) * d.T + t) * d.Dh;
                double acc[1024];
                double *a = d.Dh <= 1024 ? acc : NULL;
                for (int64_t i = 0; i < d.Dh; i++) o[i] = 0.0f;
                if (l == -INFINITY) continue;
                if (a)
                    for (int64_t i = 0; i < d.Dh; i++) a[i] = 0.0;
                for (int64_t s = 0; s < d.S; s++) {
                    if (sc[s] == -INFINITY) continue;
                    double p = exp(sc[s] - l);
                    for (int64_t i = 0; i < d.Dh; i++) {
                        if (a)
                            a[i] += p * v[s * d.Dh + i];
                        else
                            o[i] += (float)(p * v[s * d.Dh + i]);
                    }
                }
                if (a)
                    for (int64_t i = 0; i < d.Dh; i++) o[i] = (float)a[i];
            }
        }
    return TP_OK;
}

tp_status tp_cpu_attention_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gq = tp_node_grad(ctx, n, 0), *gk = tp_node_grad(ctx, n, 1);
    tp_tensor *gv = tp_node_grad(ctx, n, 2);
    if (ctx->status) return ctx->status;
    if (!gq && !gk && !gv) return TP_OK;
    adims d = adims_of(n);
    const tp_attn_cfg *cfg = n->aux;
    float *sc = tp_ctx_scratch_bytes(ctx, (size_t)(d.S ? d.S : 1) * sizeof(float) * 2);
    if (!sc) return ctx->status;
    float *dp = sc + (d.S ? d.S : 1);
    const float *lse = F32(n->saved[0]);
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t h = 0; h < d.H; h++) {
            int64_t kvo = (b * d.Hkv + h / (d.H / d.Hkv)) * d.S * d.Dh;
            const float *k = F32(n->in[1]) + kvo, *v = F32(n->in[2]) + kvo;
            for (int64_t t = 0; t < d.T; t++) {
                int64_t ro = ((b * d.H + h) * d.T + t) * d.Dh;
                double l = lse[(b * d.H + h) * d.T + t];
                if (l == -INFINITY) continue; /* output was a constant 0 */
                row_scores(n, d, b, h, t, sc);
                const float *q = F32(n->in[0]) + ro, *go = F32(n->out->grad) + ro;
                double D = 0;
                for (int64_t s = 0; s < d.S; s++) {
                    if (sc[s] == -INFINITY) continue;
                    double p = exp(sc[s] - l), g = 0;
                    for (int64_t i = 0; i < d.Dh; i++) g += (double)go[i] * v[s * d.Dh + i];
                    dp[s] = (float)g;
                    D += p * g;
                }
                for (int64_t s = 0; s < d.S; s++) {
                    if (sc[s] == -INFINITY) continue;
                    double p = exp(sc[s] - l), ds = p * (dp[s] - D) * cfg->scale;
                    for (int64_t i = 0; i < d.Dh; i++) {
                        if (gq) F32(gq)[ro + i] += (float)(ds * k[s * d.Dh + i]);
                        if (gk) F32(gk)[kvo + s * d.Dh + i] += (float)(ds * q[i]);
                        if (gv) F32(gv)[kvo + s * d.Dh + i] += (float)(p * go[i]);
                    }
                }
            }
        }
    return TP_OK;
}
