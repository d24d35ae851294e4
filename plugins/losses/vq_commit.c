/* vq_commit.c — the vector-quantisation commitment loss (STUDY.md "Bridges: VQ" and phase 15:
 * ||sg(z) - q||^2 + beta ||z - sg(q)||^2, with the optional entropy bonus).
 *
 * What it adds: a loss named "vq_commit" that returns the bridge's aux output "vq_commit" — a
 * scalar the quantising bridge (vq) computes itself, because only it holds z, q and the
 * codebook (and its beta and entropy-bonus options). The trainer weights it like any loss; the
 * study used weight 1. A bridge without that output is refused with a message naming it, and a
 * "vq_commit" with more than one element is a shape error (it must be the batch's scalar).
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

#define API     tp_plugin_api_
#define VC_NAME "vq_commit"

static tp_status vc_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    (void)o;
    (void)dims;
    (void)ps;
    (void)err;
    *state = NULL; /* stateless */
    return TP_OK;
}

static uint32_t vc_needs(void *state) {
    (void)state;
    return TP_NEED_AUX;
}

static tp_status vc_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    (void)state;
    *loss = NULL;
    const tp_bridge_out *bo = in->bridge;
    char have[256] = "";
    tp_tensor *v = NULL;
    for (int i = 0; bo && i < bo->n_aux && i < TP_BRIDGE_MAX_AUX; i++) {
        if (bo->aux_name[i] && !strcmp(bo->aux_name[i], VC_NAME)) {
            v = bo->aux[i];
            break;
        }
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
    tp_tensor *l = v->ndim == 1 ? v : tp_reshape(c, v, TP_DIMS(1));
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "vq_commit: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void vc_destroy(void *state) {
    (void)state;
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
    d->summary = "the quantising bridge's commitment loss (aux output vq_commit)";
    d->options = NULL;
    d->n_options = 0;
    d->vtable = &vc_vtable;
    d->vtable_size = sizeof vc_vtable;
    (void)err;
    return TP_OK;
}
