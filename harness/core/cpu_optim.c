/* cpu_optim.c — CPU kernels of the optimiser ops: the AdamW update of one param in place (f32
 * param and moments, or bf16 ones for pure-bf16 training; the grad is f32 either way) and the sum
 * of squares used for grad-norm clipping and the non-finite check. */
#include <math.h>

#include "core/cpu.h"

/* One element of the update on f32 values (the denominator in double). The bf16 path runs this
 * same function on the widened values and rounds each result once, so a bf16 step is by
 * construction the f32 step followed by rounding to nearest-even (tests/core/test_optim_bf16.c
 * checks it against the f32 optimiser). */
static inline void adamw_elem(const tp_adamw_hp *h, float g, float *w, float *m, float *v) {
    float gk = g * h->gscale; /* as a clipped grad would have been stored */
    float wk = *w * h->decay;
    float mk = h->beta1 * *m + (1.0f - h->beta1) * gk;
    float vk = h->beta2 * *v + (1.0f - h->beta2) * gk * gk;
    double denom = sqrt((double)vk) / h->bc2_sqrt + h->eps;
    *w = wk - (float)(h->step_size * mk / denom);
    *m = mk;
    *v = vk;
}

tp_status tp_cpu_adamw_fwd(tp_ctx *ctx, tp_node *n) {
    const tp_adamw_hp *h = n->aux;
    tp_tensor *P = n->in[0], *M = n->in[2], *V = n->in[3];
    tp_dtype dt = P->dtype;
    if ((dt != TP_F32 && dt != TP_BF16) || M->dtype != dt || V->dtype != dt ||
        n->in[1]->dtype != TP_F32)
        return tp_ctx_fail(ctx, TP_EDTYPE,
                           "op 'adamw': param '%s' is %s with moments %s/%s and a %s grad; "
                           "expected an f32 or bf16 param, moments of the param's dtype and an "
                           "f32 grad",
                           P->name, tp_dtype_name(dt), tp_dtype_name(M->dtype),
                           tp_dtype_name(V->dtype), tp_dtype_name(n->in[1]->dtype));
    const float *g = F32(n->in[1]);
    int64_t nk = tp_numel(P);
    if (dt == TP_F32) {
        float *w = F32(P), *m = F32(M), *v = F32(V);
        for (int64_t k = 0; k < nk; k++) adamw_elem(h, g[k], &w[k], &m[k], &v[k]);
        return TP_OK;
    }
    uint16_t *w = P->data, *m = M->data, *v = V->data;
    for (int64_t k = 0; k < nk; k++) {
        float wk = tp_bf16_to_f32(w[k]), mk = tp_bf16_to_f32(m[k]), vk = tp_bf16_to_f32(v[k]);
        adamw_elem(h, g[k], &wk, &mk, &vk);
        w[k] = tp_f32_to_bf16(wk);
        m[k] = tp_f32_to_bf16(mk);
        v[k] = tp_f32_to_bf16(vk);
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
