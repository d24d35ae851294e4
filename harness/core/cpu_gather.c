/* cpu_gather.c — CPU reference kernels that gather rows by index: the embedding lookup
 * (bf16/f16 tables converted row by row; ids range-checked) and the straight-through
 * nearest-codebook quantiser. */
#include <math.h>

#include "core/cpu.h"

tp_status tp_cpu_embedding_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *w = n->in[0], *ids = n->in[1];
    int64_t V = w->shape[0], D = w->shape[1], N = tp_numel(ids);
    for (int64_t i = 0; i < N; i++) {
        int32_t id = I32(ids)[i];
        if (id < 0 || id >= V)
            return tp_ctx_fail(ctx, TP_ERANGE,
                               "op 'embedding': id %d at flat position %lld of ids %s is outside "
                               "weight %s (vocab %lld) (hint: tokenizer and model do not match?)",
                               (int)id, (long long)i, TP_SHAPE(ids), TP_SHAPE(w), (long long)V);
        float *y = F32(n->out) + i * D;
        if (w->dtype == TP_F32) {
            const float *row = F32(w) + (int64_t)id * D;
            for (int64_t d = 0; d < D; d++) y[d] = row[d];
        } else {
            for (int64_t d = 0; d < D; d++) y[d] = tp_ld(w->data, w->dtype, (int64_t)id * D + d);
        }
    }
    return TP_OK;
}

tp_status tp_cpu_embedding_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gw = tp_node_grad(ctx, n, 0);
    if (!gw) return ctx->status;
    int64_t D = n->in[0]->shape[1], N = tp_numel(n->in[1]);
    for (int64_t i = 0; i < N; i++) {
        float *dw = F32(gw) + (int64_t)I32(n->in[1])[i] * D;
        const float *g = F32(n->out->grad) + i * D;
        for (int64_t d = 0; d < D; d++) dw[d] += g[d];
    }
    return TP_OK;
}

tp_status tp_cpu_vq_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *z = n->in[0], *cb = n->in[1];
    int64_t N = z->shape[0], D = z->shape[1], K = cb->shape[0];
    int cosine = n->ip[0] == TP_VQ_COSINE;
    for (int64_t i = 0; i < N; i++) {
        const float *zi = F32(z) + i * D;
        double zn = 0;
        for (int64_t d = 0; d < D; d++) zn += (double)zi[d] * zi[d];
        zn = sqrt(zn);
        int64_t best = 0;
        double best_v = INFINITY;
        for (int64_t k = 0; k < K; k++) {
            const float *ck = F32(cb) + k * D;
            double dot = 0, cn = 0, dist = 0;
            for (int64_t d = 0; d < D; d++) {
                dot += (double)zi[d] * ck[d];
                cn += (double)ck[d] * ck[d];
                dist += ((double)zi[d] - ck[d]) * ((double)zi[d] - ck[d]);
            }
            double v = cosine ? -dot / fmax(zn * sqrt(cn), 1e-12) : dist;
            if (v < best_v) { /* strict: ties go to the lowest index */
                best_v = v;
                best = k;
            }
        }
        I32(n->saved[0])[i] = (int32_t)best;
        const float *ck = F32(cb) + best * D;
        float *q = F32(n->out) + i * D;
        for (int64_t d = 0; d < D; d++) q[d] = ck[d];
    }
    return TP_OK;
}

/* straight-through: dz += dq; the codebook learns through its own losses (embedding of codes) */
tp_status tp_cpu_vq_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gz = tp_node_grad(ctx, n, 0);
    if (!gz) return ctx->status;
    int64_t m = tp_numel(gz);
    const float *g = F32(n->out->grad);
    for (int64_t i = 0; i < m; i++) F32(gz)[i] += g[i];
    return TP_OK;
}
