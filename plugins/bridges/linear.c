/* linear.c — the linear bridge of the study's architecture ablation (STUDY.md "Bridges": exp003,
 * SST-2 91.5%).
 *
 * What it adds: a bridge named "linear":
 *   p    = masked mean over the real tokens of h              [B,d_s]
 *   x    = p W^T + b, the same vector in each of the M slots  [B,M,d_r]   W [d_r,d_s]
 *   soft = RMSNorm(x) * alpha                                 each soft token has RMS |alpha|
 * W and b have PyTorch's nn.Linear default init U(+-1/sqrt(d_s)). All M soft tokens are equal:
 * the bridge carries one vector, M only sets how often the receiver reads it.
 *
 * Options: tokens (M), alpha_init (calibrated | number), alpha_learnable, and the normalizer
 * options (normalizer.h). Metrics: alpha.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdint.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "normalizer.h"

#define LIN_NAME        "linear"
#define LIN_STREAM_BASE 0x6c696e0000000000ull /* "lin" */

static const tp_option_spec lin_options[] = {
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M (copies of one vector)"},
    BU_ALPHA_OPTIONS,
    NZ_OPTIONS,
};

typedef struct lin_state {
    int m, d_s, d_r;
    tp_tensor *w, *b;
    bu_alpha alpha;
    nz_state nz;
} lin_state;

static void lin_destroy(void *state) {
    lin_state *s = state;
    if (!s) return;
    nz_free(&s->nz);
    free(s);
}

static tp_status lin_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                            void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(LIN_NAME, dims, err));
    lin_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, LIN_NAME ": out of memory");
    s->m = (int)BU_API->opt_int(o, "tokens");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    bu_init in = {LIN_NAME, dims->seed, LIN_STREAM_BASE, 0};
    tp_status st = TP_OK;
    if (s->m < 1)
        st = BU_API->errf(err, TP_EINVAL, LIN_NAME ": tokens = %d: expected M >= 1", s->m);
    if (st == TP_OK) st = bu_linear(&in, ps, "proj", s->d_s, s->d_r, &s->w, &s->b, err);
    if (st == TP_OK) st = bu_alpha_make(&in, o, dims, ps, &s->alpha, err);
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        lin_destroy(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status lin_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                             tp_bridge_out *out, tp_err *err) {
    lin_state *s = state;
    (void)training;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(LIN_NAME, s->d_s, h, mask, err));
    tp_tensor *x = nz_apply(&s->nz, c, bu_f32(c, h), err);
    if (x) x = bu_mean_pool(LIN_NAME, c, x, mask, err);
    if (!x) return err->code ? err->code : bu_fail(LIN_NAME, c, "forward", err);
    x = bu_repeat(c, tp_linear(c, x, s->w, s->b), s->m);
    tp_tensor *soft = bu_alpha_apply(c, &s->alpha, x);
    if (!soft) return bu_fail(LIN_NAME, c, "forward", err);
    out->soft = soft;
    bu_alpha_metric(&s->alpha, out);
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int lin_num_tokens(void *state) {
    return ((lin_state *)state)->m;
}

static uint32_t lin_flags(void *state) {
    (void)state;
    return 0;
}

static int lin_calibration_examples(void *state) {
    return nz_examples(&((lin_state *)state)->nz);
}

static tp_status lin_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                               tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((lin_state *)state)->nz, c, h, mask, recv_embed, err);
}

static const tp_bridge_vtable lin_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = lin_create,
    .forward = lin_forward,
    .num_tokens = lin_num_tokens,
    .destroy = lin_destroy,
    .flags = lin_flags,
    .calibration_examples = lin_calibration_examples,
    .calibrate = lin_calibrate,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = LIN_NAME;
    d->version = "1";
    d->summary = "linear: masked mean-pool -> Linear(d_s->d_r) copied M times; RMS-normalised x "
                 "alpha";
    d->options = lin_options;
    d->n_options = (int)(sizeof lin_options / sizeof lin_options[0]);
    d->vtable = &lin_vtable;
    d->vtable_size = sizeof lin_vtable;
    (void)err;
    return TP_OK;
}
