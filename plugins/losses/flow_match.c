/* flow_match.c — the rectified-flow loss of the diffusion bridge (STUDY.md "Bridges: Diffusion",
 * phases 12-14: loss MSE(v, target - noise)).
 *
 * What it adds: a loss named "flow_match" that reads two aux outputs of the bridge
 * (in->bridge, see bridge.h) — "flow_pred", the predicted velocity v(x_t, t, source), and
 * "flow_target", target - noise — and returns
 *   loss = mean over every element of (flow_pred - flow_target)^2
 * (F.mse_loss). flow_target is treated as a constant (stop-gradient): only the prediction
 * learns. Only bridge 'diffusion' with mode = flow makes these outputs, and only in training
 * forwards; any other bridge is refused with a message naming the missing output.
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

#define API tp_plugin_api_

static tp_status fm_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    (void)o;
    (void)dims;
    (void)ps;
    (void)err;
    *state = NULL; /* stateless */
    return TP_OK;
}

static uint32_t fm_needs(void *state) {
    (void)state;
    return TP_NEED_AUX;
}

/* The aux output called name, or NULL; have lists what the bridge did give (for messages). */
static tp_tensor *fm_aux(const tp_bridge_out *bo, const char *name, char *have, size_t cap) {
    have[0] = 0;
    if (!bo) return NULL;
    for (int i = 0; i < bo->n_aux && i < TP_BRIDGE_MAX_AUX; i++) {
        if (bo->aux_name[i] && !strcmp(bo->aux_name[i], name)) return bo->aux[i];
        size_t n = strlen(have);
        snprintf(have + n, cap - n, "%s%s", n ? ", " : "", bo->aux_name[i] ? bo->aux_name[i] : "?");
    }
    return NULL;
}

static tp_status fm_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    (void)state;
    *loss = NULL;
    char have[256];
    const char *names[2] = {"flow_pred", "flow_target"};
    tp_tensor *t[2];
    for (int i = 0; i < 2; i++) {
        t[i] = fm_aux(in->bridge, names[i], have, sizeof have);
        if (!t[i])
            return API->errf(err, TP_EINVAL,
                             "flow_match: the bridge gave no aux output '%s' (it gave: %s); only "
                             "bridge 'diffusion' with mode = flow makes it, in training",
                             names[i], have[0] ? have : "none");
    }
    tp_tensor *pred = t[0], *tgt = t[1];
    int same = pred->ndim == tgt->ndim;
    for (int d = 0; same && d < pred->ndim; d++) same = pred->shape[d] == tgt->shape[d];
    if (!same)
        return API->errf(err, TP_ESHAPE,
                         "flow_match: flow_pred (%d dims) and flow_target (%d dims) differ in "
                         "shape",
                         pred->ndim, tgt->ndim);
    tp_tensor *l = tp_mse(c, pred, tp_detach(c, tgt));
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "flow_match: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void fm_destroy(void *state) {
    (void)state;
}

static const tp_loss_vtable fm_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = fm_create,
    .needs = fm_needs,
    .compute = fm_compute,
    .destroy = fm_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "flow_match";
    d->version = "1";
    d->summary = "rectified-flow MSE between the bridge's flow_pred and flow_target aux outputs";
    d->options = NULL;
    d->n_options = 0;
    d->vtable = &fm_vtable;
    d->vtable_size = sizeof fm_vtable;
    (void)err;
    return TP_OK;
}
