/* meanpool.c — the mean-pool ablation floor (STUDY.md "Bridges": exp003, SST-2 0.0%).
 *
 * What it adds: a bridge named "meanpool" with no weights but alpha:
 *   p    = masked mean over the real tokens of h              [B,d]
 *   soft = RMSNorm(p) * alpha, the same in each of the M slots [B,M,d]
 * The sender state goes into the receiver's embedding space unchanged, so the sender and
 * receiver widths must be equal (an error naming both otherwise). It is a floor: it shows what
 * the receiver makes of raw sender geometry, which the study found to be nothing.
 *
 * Options: tokens (M), alpha_init (calibrated | number), alpha_learnable, and the normalizer
 * options (normalizer.h; whiten_recolour gives the raw states the receiver's statistics).
 * Metrics: alpha.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdint.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "normalizer.h"

#define MP_NAME        "meanpool"
#define MP_STREAM_BASE 0x6d706f6f00000000ull /* "mpoo" */

static const tp_option_spec mp_options[] = {
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M (copies of the mean)"},
    BU_ALPHA_OPTIONS,
    NZ_OPTIONS,
};

typedef struct mp_state {
    int m, d;
    bu_alpha alpha;
    nz_state nz;
} mp_state;

static void mp_destroy(void *state) {
    mp_state *s = state;
    if (!s) return;
    nz_free(&s->nz);
    free(s);
}

static tp_status mp_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(MP_NAME, dims, err));
    if (dims->d_sender != dims->d_receiver)
        return BU_API->errf(err, TP_EINVAL,
                            MP_NAME
                            ": has no weights, so the sender width (%d) must equal the "
                            "receiver width (%d); use the linear or mlp bridge for different "
                            "widths",
                            dims->d_sender, dims->d_receiver);
    mp_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, MP_NAME ": out of memory");
    s->m = (int)BU_API->opt_int(o, "tokens");
    s->d = dims->d_sender;
    bu_init in = {MP_NAME, dims->seed, MP_STREAM_BASE, 0};
    tp_status st = TP_OK;
    if (s->m < 1) st = BU_API->errf(err, TP_EINVAL, MP_NAME ": tokens = %d: expected M >= 1", s->m);
    if (st == TP_OK) st = bu_alpha_make(&in, o, dims, ps, &s->alpha, err);
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        mp_destroy(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status mp_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    mp_state *s = state;
    (void)training;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(MP_NAME, s->d, h, mask, err));
    tp_tensor *x = nz_apply(&s->nz, c, bu_f32(c, h), err);
    if (x) x = bu_mean_pool(MP_NAME, c, x, mask, err);
    if (!x) return err->code ? err->code : bu_fail(MP_NAME, c, "forward", err);
    tp_tensor *soft = bu_alpha_apply(c, &s->alpha, bu_repeat(c, x, s->m));
    if (!soft) return bu_fail(MP_NAME, c, "forward", err);
    out->soft = soft;
    bu_alpha_metric(&s->alpha, out);
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int mp_num_tokens(void *state) {
    return ((mp_state *)state)->m;
}

static uint32_t mp_flags(void *state) {
    (void)state;
    return 0;
}

static int mp_calibration_examples(void *state) {
    return nz_examples(&((mp_state *)state)->nz);
}

static tp_status mp_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                              tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((mp_state *)state)->nz, c, h, mask, recv_embed, err);
}

static const tp_bridge_vtable mp_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = mp_create,
    .forward = mp_forward,
    .num_tokens = mp_num_tokens,
    .destroy = mp_destroy,
    .flags = mp_flags,
    .calibration_examples = mp_calibration_examples,
    .calibrate = mp_calibrate,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = MP_NAME;
    d->version = "1";
    d->summary = "ablation floor: masked mean of sender states repeated M times (no weights); "
                 "RMS-normalised x alpha";
    d->options = mp_options;
    d->n_options = (int)(sizeof mp_options / sizeof mp_options[0]);
    d->vtable = &mp_vtable;
    d->vtable_size = sizeof mp_vtable;
    (void)err;
    return TP_OK;
}
