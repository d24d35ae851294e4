/* cpu_softmax.c — CPU reference softmax, log-softmax (last dim, rows x V contiguous) and
 * cross-entropy (mean over non-ignored targets, optional label smoothing as in PyTorch:
 * (1-e) * nll + e * mean_v(-log p_v)). Row statistics in double. */
#include <math.h>

#include "core/cpu.h"

/* float exponentials (the speed of a row), summed in double (the accuracy of a long row) */
static double row_lse(const float *x, int64_t V) {
    float mx = -INFINITY;
    double s = 0;
    for (int64_t i = 0; i < V; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) return -INFINITY;
    for (int64_t i = 0; i < V; i++) s += expf(x[i] - mx);
    return mx + log(s);
}

tp_status tp_cpu_softmax_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t R = tp_rows(n->in[0]), V = tp_cols(n->in[0]);
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(n->in[0]) + r * V;
        float *y = F32(n->out) + r * V;
        float mx = -INFINITY;
        for (int64_t i = 0; i < V; i++)
            if (x[i] > mx) mx = x[i];
        double s = 0;
        for (int64_t i = 0; i < V; i++) s += (y[i] = expf(x[i] - mx)); /* one exp per element */
        float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < V; i++) y[i] *= inv;
    }
    return TP_OK;
}

tp_status tp_cpu_softmax_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t R = tp_rows(n->in[0]), V = tp_cols(n->in[0]);
    for (int64_t r = 0; r < R; r++) {
        const float *y = F32(n->out) + r * V, *dy = F32(n->out->grad) + r * V;
        float *dx = F32(gx) + r * V;
        double dot = 0;
        for (int64_t i = 0; i < V; i++) dot += (double)dy[i] * y[i];
        for (int64_t i = 0; i < V; i++) dx[i] += (float)(y[i] * (dy[i] - dot));
    }
    return TP_OK;
}

tp_status tp_cpu_log_softmax_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t R = tp_rows(n->in[0]), V = tp_cols(n->in[0]);
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(n->in[0]) + r * V;
        float *y = F32(n->out) + r * V;
        double l = row_lse(x, V);
        for (int64_t i = 0; i < V; i++) y[i] = (float)(x[i] - l);
    }
    return TP_OK;
}

tp_status tp_cpu_log_softmax_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t R = tp_rows(n->in[0]), V = tp_cols(n->in[0]);
    for (int64_t r = 0; r < R; r++) {
        const float *y = F32(n->out) + r * V, *dy = F32(n->out->grad) + r * V;
        float *dx = F32(gx) + r * V;
        double s = 0;
        for (int64_t i = 0; i < V; i++) s += dy[i];
        for (int64_t i = 0; i < V; i++) dx[i] += dy[i] - expf(y[i]) * (float)s;
    }
    return TP_OK;
}

static tp_status ce_check(tp_ctx *ctx, tp_node *n, int64_t *count) {
    int64_t N = n->in[0]->shape[0], V = n->in[0]->shape[1], c = 0;
    int ignore = (int)n->ip[0];
    for (int64_t r = 0; r < N; r++) {
        int32_t t = I32(n->in[1])[r];
        if (t == ignore) continue;
        if (t < 0 || t >= V)
            return tp_ctx_fail(ctx, TP_ERANGE,
                               "op 'cross_entropy': target %d at row %lld outside logits %s "
                               "(classes 0..%lld, ignore_index %d)",
                               (int)t, (long long)r, TP_SHAPE(n->in[0]), (long long)V - 1, ignore);
        c++;
    }
    *count = c;
    return TP_OK;
}

tp_status tp_cpu_cross_entropy_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t N = n->in[0]->shape[0], V = n->in[0]->shape[1], count;
    TP_TRY(ce_check(ctx, n, &count));
    double eps = n->fp[0], total = 0;
    for (int64_t r = 0; r < N; r++) {
        int32_t t = I32(n->in[1])[r];
        if (t == (int)n->ip[0]) continue;
        const float *x = F32(n->in[0]) + r * V;
        double l = row_lse(x, V), mean_x = 0;
        if (eps > 0) {
            for (int64_t i = 0; i < V; i++) mean_x += x[i];
            mean_x /= (double)V;
        }
        total += (1.0 - eps) * (l - x[t]) + eps * (l - mean_x);
    }
    F32(n->out)[0] = count ? (float)(total / (double)count) : 0.0f;
    return TP_OK;
}

tp_status tp_cpu_cross_entropy_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t N = n->in[0]->shape[0], V = n->in[0]->shape[1], count;
    TP_TRY(ce_check(ctx, n, &count));
    if (!count) return TP_OK;
    double eps = n->fp[0], g = F32(n->out->grad)[0] / (double)count;
    for (int64_t r = 0; r < N; r++) {
        int32_t t = I32(n->in[1])[r];
        if (t == (int)n->ip[0]) continue;
        const float *x = F32(n->in[0]) + r * V;
        float *dx = F32(gx) + r * V;
        double l = row_lse(x, V);
        for (int64_t i = 0; i < V; i++)
            dx[i] +=
                (float)(g * (expf(x[i] - (float)l) - (i == t ? 1.0 - eps : 0.0) - eps / (double)V));
    }
    return TP_OK;
}
