/* cpu_norm.c — CPU reference kernels for RMSNorm, LayerNorm and L2-normalise over the last dim
 * (rows x D, contiguous). Statistics accumulate in double; backward recomputes them from x
 * (cheaper than saving on CPU). */
#include <math.h>

#include "core/cpu.h"

static double rstd_rms(const float *x, int64_t D, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += (double)x[i] * x[i];
    return 1.0 / sqrt(ss / (double)(D ? D : 1) + eps);
}

tp_status tp_cpu_rmsnorm_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *xt = n->in[0];
    int64_t R = tp_rows(xt), D = tp_cols(xt);
    const float *w = n->in[1] ? F32(n->in[1]) : NULL;
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(xt) + r * D;
        float *y = F32(n->out) + r * D;
        float rs = (float)rstd_rms(x, D, n->fp[0]);
        for (int64_t i = 0; i < D; i++) y[i] = (x[i] * rs) * (w ? w[i] : 1.0f);
    }
    return TP_OK;
}

tp_status tp_cpu_rmsnorm_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0), *gw = tp_node_grad(ctx, n, 1);
    if (ctx->status) return ctx->status;
    const tp_tensor *xt = n->in[0];
    int64_t R = tp_rows(xt), D = tp_cols(xt);
    const float *w = n->in[1] ? F32(n->in[1]) : NULL;
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(xt) + r * D, *dy = F32(n->out->grad) + r * D;
        double rs = rstd_rms(x, D, n->fp[0]), dot = 0;
        for (int64_t i = 0; i < D; i++) dot += (double)dy[i] * (w ? w[i] : 1.0f) * x[i] * rs;
        dot /= (double)D;
        if (gx) {
            float *dx = F32(gx) + r * D;
            for (int64_t i = 0; i < D; i++)
                dx[i] += (float)(rs * ((double)dy[i] * (w ? w[i] : 1.0f) - x[i] * rs * dot));
        }
        if (gw) {
            float *dw = F32(gw);
            for (int64_t i = 0; i < D; i++) dw[i] += (float)(dy[i] * x[i] * rs);
        }
    }
    return TP_OK;
}

static void ln_stats(const float *x, int64_t D, float eps, double *mean, double *rstd) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < D; i++) m += x[i];
    m /= (double)(D ? D : 1);
    for (int64_t i = 0; i < D; i++) v += (x[i] - m) * (x[i] - m);
    v /= (double)(D ? D : 1);
    *mean = m;
    *rstd = 1.0 / sqrt(v + eps);
}

tp_status tp_cpu_layernorm_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_tensor *xt = n->in[0];
    int64_t R = tp_rows(xt), D = tp_cols(xt);
    const float *w = n->in[1] ? F32(n->in[1]) : NULL, *b = n->in[2] ? F32(n->in[2]) : NULL;
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(xt) + r * D;
        float *y = F32(n->out) + r * D;
        double m, rs;
        ln_stats(x, D, n->fp[0], &m, &rs);
        for (int64_t i = 0; i < D; i++)
            y[i] = (float)((x[i] - m) * rs) * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
    }
    return TP_OK;
}

tp_status tp_cpu_layernorm_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0), *gw = tp_node_grad(ctx, n, 1);
    tp_tensor *gb = tp_node_grad(ctx, n, 2);
    if (ctx->status) return ctx->status;
    const tp_tensor *xt = n->in[0];
    int64_t R = tp_rows(xt), D = tp_cols(xt);
    const float *w = n->in[1] ? F32(n->in[1]) : NULL;
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(xt) + r * D, *dy = F32(n->out->grad) + r * D;
        double m, rs, s1 = 0, s2 = 0;
        ln_stats(x, D, n->fp[0], &m, &rs);
        for (int64_t i = 0; i < D; i++) {
            double dxh = (double)dy[i] * (w ? w[i] : 1.0f), xh = (x[i] - m) * rs;
            s1 += dxh;
            s2 += dxh * xh;
        }
        s1 /= (double)D;
        s2 /= (double)D;
        for (int64_t i = 0; i < D; i++) {
            double xh = (x[i] - m) * rs, dxh = (double)dy[i] * (w ? w[i] : 1.0f);
            if (gx) F32(gx)[r * D + i] += (float)(rs * (dxh - s1 - xh * s2));
            if (gw) F32(gw)[i] += (float)(dy[i] * xh);
            if (gb) F32(gb)[i] += dy[i];
        }
    }
    return TP_OK;
}

/* y = x / max(|x|, eps) (F.normalize) */
tp_status tp_cpu_l2norm_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t R = tp_rows(n->in[0]), D = tp_cols(n->in[0]);
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(n->in[0]) + r * D;
        float *y = F32(n->out) + r * D;
        double ss = 0;
        for (int64_t i = 0; i < D; i++) ss += (double)x[i] * x[i];
        double nr = fmax(sqrt(ss), (double)n->fp[0]);
        for (int64_t i = 0; i < D; i++) y[i] = (float)(x[i] / nr);
    }
    return TP_OK;
}

tp_status tp_cpu_l2norm_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t R = tp_rows(n->in[0]), D = tp_cols(n->in[0]);
    for (int64_t r = 0; r < R; r++) {
        const float *x = F32(n->in[0]) + r * D, *dy = F32(n->out->grad) + r * D;
        float *dx = F32(gx) + r * D;
        double ss = 0, dot = 0;
        for (int64_t i = 0; i < D; i++) ss += (double)x[i] * x[i];
        double nrm = sqrt(ss);
        if (nrm > n->fp[0]) {
            for (int64_t i = 0; i < D; i++) dot += (double)dy[i] * x[i];
            for (int64_t i = 0; i < D; i++)
                dx[i] += (float)(dy[i] / nrm - x[i] * dot / (nrm * nrm * nrm));
        } else {
            for (int64_t i = 0; i < D; i++) dx[i] += (float)(dy[i] / n->fp[0]);
        }
    }
    return TP_OK;
}
