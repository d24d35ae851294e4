/* cpu_optim.c — CPU kernels of the optimiser ops: the AdamW update of one param in place and
 * the sum of squares used for grad-norm clipping and the non-finite check. */
#include <math.h>

#include "core/cpu.h"

tp_status tp_cpu_adamw_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_adamw_hp *h = n->aux;
    float *w = F32(n->in[0]), *m = F32(n->in[2]), *v = F32(n->in[3]);
    const float *g = F32(n->in[1]);
    for (int64_t k = 0, nk = tp_numel(n->in[0]); k < nk; k++) {
        float gk = g[k] * h->gscale; /* as a clipped grad would have been stored */
        w[k] *= h->decay;
        m[k] = h->beta1 * m[k] + (1.0f - h->beta1) * gk;
        v[k] = h->beta2 * v[k] + (1.0f - h->beta2) * gk * gk;
        double denom = sqrt((double)v[k]) / h->bc2_sqrt + h->eps;
        w[k] -= (float)(h->step_size * m[k] / denom);
    }
    return TP_OK;
}

tp_status tp_cpu_sumsq_fwd(tp_ctx *ctx, tp_node *n) {
    const float *x = F32(n->in[0]);
    double s = 0;
    for (int64_t k = 0, nk = tp_numel(n->in[0]); k < nk; k++) s += (double)x[k] * x[k];
    F32(n->out)[0] = (float)s;
    return TP_OK;
}
