/* vq_commit.c — the vector-quantisation commitment loss (STUDY.md "Bridges: VQ" and phase 15:
 * ||sg(z) - q||^2 + beta ||z - sg(q)||^2, with the optional entropy bonus).
 *
 * What it adds: a loss named "vq_commit" that returns the bridge's aux output "vq_commit" — a
 * scalar the quantising bridge (vq) computes itself, because only it holds z, q and the
 * codebook (and its beta option) — plus, when the bridge gives one and include_entropy = true
 * (default), its aux "vq_entropy_bonus" (the already weighted -w H(usage)/log K of bridge vq
 * with entropy_weight = w > 0):
 *   loss = vq_commit [+ vq_entropy_bonus]
 * The trainer weights it like any loss; the study used weight 1. A bridge without "vq_commit" is
 * refused with a message naming it, and a "vq_commit" or "vq_entropy_bonus" with more than one
 * element is a shape error (each must be the batch's scalar).
 * needs() = TP_NEED_AUX.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/loss.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#define API      tp_plugin_api_
#define VC_NAME  "vq_commit"
#define VC_BONUS "vq_entropy_bonus"

static const tp_option_spec vc_options[] = {
    {"include_entropy", TP_OPT_BOOL, "true", 1, 0, NULL,
     "add the bridge's aux vq_entropy_bonus when it gives one (vq entropy_weight > 0)"},
};

typedef struct vc_state {
    int include_entropy;
} vc_state;

static tp_status vc_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    (void)dims;
    (void)ps;
    vc_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "vq_commit: out of memory");
    s->include_entropy = API->opt_bool(o, "include_entropy");
    *state = s;
    return TP_OK;
}

static uint32_t vc_needs(void *state) {
    (void)state;
    return TP_NEED_AUX;
}

static tp_status vc_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    const vc_state *s = state;
    *loss = NULL;
    const tp_bridge_out *bo = in->bridge;
    char have[256] = "";
    tp_tensor *v = NULL, *bonus = NULL;
    for (int i = 0; bo && i < bo->n_aux && i < TP_BRIDGE_MAX_AUX; i++) {
        if (bo->aux_name[i] && !strcmp(bo->aux_name[i], VC_NAME)) v = bo->aux[i];
        if (bo->aux_name[i] && !strcmp(bo->aux_name[i], VC_BONUS)) bonus = bo->aux[i];
        size_t n = strlen(have);
        snprintf(have + n, sizeof have - n, "%s%s", n ? ", " : "",
                 bo->aux_name[i] ? bo->aux_name[i] : "?");
    }
    if (!v)
        return API->errf(err, TP_EINVAL,
                         "vq_commit: the bridge gave no aux output '" VC_NAME "' (it gave: %s); "
                         "use a quantising bridge such as 'vq'",
                         have[0] ? have : "none");
    if (tp_numel(v) != 1)
        return API->errf(err, TP_ESHAPE,
                         "vq_commit: the bridge's '" VC_NAME "' has %lld elements; expected a "
                         "scalar [1]",
                         (long long)tp_numel(v));
    if (s->include_entropy && bonus && tp_numel(bonus) != 1)
        return API->errf(err, TP_ESHAPE,
                         "vq_commit: the bridge's '" VC_BONUS "' has %lld elements; expected a "
                         "scalar [1]",
                         (long long)tp_numel(bonus));
    tp_tensor *l = v->ndim == 1 ? v : tp_reshape(c, v, TP_DIMS(1));
    if (s->include_entropy && bonus)
        l = tp_add(c, l, bonus->ndim == 1 ? bonus : tp_reshape(c, bonus, TP_DIMS(1)));
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "vq_commit: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void vc_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable vc_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = vc_create,
    .needs = vc_needs,
    .compute = vc_compute,
    .destroy = vc_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "vq_commit";
    d->version = "1";
    d->summary = "the quantising bridge's commitment loss (aux vq_commit [+ vq_entropy_bonus])";
    d->options = vc_options;
    d->n_options = (int)(sizeof vc_options / sizeof vc_options[0]);
    d->vtable = &vc_vtable;
    d->vtable_size = sizeof vc_vtable;
    (void)err;
    return TP_OK;
}
