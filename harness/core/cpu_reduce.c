/* cpu_reduce.c — CPU reference sum/mean over one dim (viewed as outer x len x inner) and masked
 * pooling over T of x (B,T,D) with mask (B,T): mean = sum(m x) / sum(m) (0 if sum(m) = 0),
 * sum = sum(m x), max over positions with m != 0 (0 if none); the row argmax of greedy decoding. */
#include <math.h>

#include "core/cpu.h"

static void split(const tp_tensor *x, int d, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *len = x->shape[d];
}

tp_status tp_cpu_sum_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t O, L, I;
    split(n->in[0], (int)n->ip[0], &O, &L, &I);
    const float *x = F32(n->in[0]);
    float *y = F32(n->out);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            double s = 0;
            for (int64_t l = 0; l < L; l++) s += x[(o * L + l) * I + i];
            y[o * I + i] = (float)(s * n->fp[0]);
        }
    return TP_OK;
}

tp_status tp_cpu_sum_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t O, L, I;
    split(n->in[0], (int)n->ip[0], &O, &L, &I);
    const float *g = F32(n->out->grad);
    float *dx = F32(gx);
    for (int64_t o = 0; o < O; o++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t i = 0; i < I; i++) dx[(o * L + l) * I + i] += g[o * I + i] * n->fp[0];
    return TP_OK;
}

/* per (b, d): the weight each position t gets, written into w[T]; returns the argmax for max */
static int64_t pool_weights(const tp_node *n, int64_t b, int64_t dd, double *w) {
    const tp_tensor *x = n->in[0];
    int64_t T = x->shape[1], D = x->shape[2];
    const float *m = n->in[1] ? F32(n->in[1]) + b * T : NULL;
    const float *xb = F32(x) + b * T * D;
    int kind = (int)n->ip[0];
    if (kind == TP_POOL_MAX) {
        int64_t best = -1;
        for (int64_t t = 0; t < T; t++) {
            w[t] = 0;
            if (m && m[t] == 0.0f) continue;
            if (best < 0 || xb[t * D + dd] > xb[best * D + dd]) best = t;
        }
        if (best >= 0) w[best] = 1;
        return best;
    }
    double tot = 0;
    for (int64_t t = 0; t < T; t++) tot += m ? m[t] : 1.0;
    for (int64_t t = 0; t < T; t++) {
        double mt = m ? m[t] : 1.0;
        w[t] = kind == TP_POOL_SUM ? mt : (tot != 0 ? mt / tot : 0.0);
    }
    return -1;
}

tp_status tp_cpu_pool_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *x = n->in[0];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    double *w = tp_ctx_scratch_bytes(ctx, sizeof(double) * (size_t)(T ? T : 1));
    if (!w) return ctx->status;
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) {
            pool_weights(n, b, d, w);
            double s = 0;
            for (int64_t t = 0; t < T; t++)
                if (w[t] != 0) s += w[t] * F32(x)[(b * T + t) * D + d];
            F32(n->out)[b * D + d] = (float)s;
        }
    return TP_OK;
}

tp_status tp_cpu_pool_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    const tp_tensor *x = n->in[0];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    double *w = tp_ctx_scratch_bytes(ctx, sizeof(double) * (size_t)(T ? T : 1));
    if (!w) return ctx->status;
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) {
            pool_weights(n, b, d, w);
            float g = F32(n->out->grad)[b * D + d];
            for (int64_t t = 0; t < T; t++)
                if (w[t] != 0) F32(gx)[(b * T + t) * D + d] += (float)(w[t] * g);
        }
    return TP_OK;
}

/* The first index of the row maximum; NaN never wins (a row of NaN gives 0), the rule the CUDA
 * kernel's parallel reduction follows too, so greedy decoding picks the same token on both. */
tp_status tp_cpu_argmax_fwd(tp_ctx *ctx, tp_node *n) {
    (void)ctx;
    const tp_tensor *x = n->in[0];
    int64_t V = x->shape[x->ndim - 1], R = V ? tp_numel(x) / V : 0;
    int32_t *o = n->out->data;
    for (int64_t r = 0; r < R; r++) {
        int64_t best = 0;
        float bv = -INFINITY;
        for (int64_t v = 0; v < V; v++) {
            float f = tp_ld(x->data, x->dtype, r * V + v);
            if (f > bv) {
                bv = f;
                best = v;
            }
        }
        o[r] = (int32_t)best;
    }
    return TP_OK;
}
