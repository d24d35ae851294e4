/* mlp.c — the MLP bridge of the study's architecture ablation (STUDY.md "Bridges": exp003,
 * SST-2 91.5%).
 *
 * What it adds: a bridge named "mlp":
 *   p    = masked mean over the real tokens of h              [B,d_s]
 *   x    = GELU(p W1^T + b1)                                  [B,hidden]   W1 [hidden,d_s]
 *   x    = GELU(x W2^T + b2)                                  [B,hidden]   W2 [hidden,hidden]
 *   x    = x W3^T + b3, reshaped                              [B,M,d_r]    W3 [M*d_r,hidden]
 *   soft = RMSNorm(x) * alpha                                 each soft token has RMS |alpha|
 * GELU is the exact (erf) form of nn.GELU; every Linear has PyTorch's default init
 * U(+-1/sqrt(fan_in)) for weight and bias. Note the size of W3: M * d_r * hidden floats (16
 * tokens into a 4096-wide receiver with hidden 2048: 134M parameters), as in the study.
 *
 * Options: tokens (M), hidden (2048 in the study), alpha_init (calibrated | number),
 * alpha_learnable, and the normalizer options (normalizer.h). Metrics: alpha.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdint.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "normalizer.h"

#define MLP_NAME        "mlp"
#define MLP_STREAM_BASE 0x6d6c700000000000ull /* "mlp": keeps init streams apart */

static const tp_option_spec mlp_options[] = {
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M"},
    {"hidden", TP_OPT_INT, "2048", 1, 65536, NULL, "width of the two hidden layers"},
    BU_ALPHA_OPTIONS,
    NZ_OPTIONS,
};

typedef struct mlp_state {
    int m, hidden, d_s, d_r;
    tp_tensor *w1, *b1, *w2, *b2, *w3, *b3;
    bu_alpha alpha;
    nz_state nz;
} mlp_state;

static void mlp_destroy(void *state) {
    mlp_state *s = state;
    if (!s) return;
    nz_free(&s->nz);
    free(s);
}

static tp_status mlp_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                            void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(MLP_NAME, dims, err));
    mlp_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, MLP_NAME ": out of memory");
    s->m = (int)BU_API->opt_int(o, "tokens");
    s->hidden = (int)BU_API->opt_int(o, "hidden");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    bu_init in = {MLP_NAME, dims->seed, MLP_STREAM_BASE, 0};
    tp_status st = TP_OK;
    if (s->m < 1 || s->hidden < 1)
        st = BU_API->errf(err, TP_EINVAL, MLP_NAME ": tokens = %d, hidden = %d: both must be >= 1",
                          s->m, s->hidden);
    int64_t out = (int64_t)s->m * s->d_r;
    if (st == TP_OK) st = bu_linear(&in, ps, "fc1", s->d_s, s->hidden, &s->w1, &s->b1, err);
    if (st == TP_OK) st = bu_linear(&in, ps, "fc2", s->hidden, s->hidden, &s->w2, &s->b2, err);
    if (st == TP_OK) st = bu_linear(&in, ps, "fc3", s->hidden, out, &s->w3, &s->b3, err);
    if (st == TP_OK) st = bu_alpha_make(&in, o, dims, ps, &s->alpha, err);
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        mlp_destroy(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status mlp_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                             tp_bridge_out *out, tp_err *err) {
    mlp_state *s = state;
    (void)training;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(MLP_NAME, s->d_s, h, mask, err));
    int64_t b = h->shape[0];
    tp_tensor *x = nz_apply(&s->nz, c, bu_f32(c, h), err);
    if (!x) return err->code ? err->code : bu_fail(MLP_NAME, c, "forward", err);
    x = bu_mean_pool(MLP_NAME, c, x, mask, err);
    if (!x) return err->code ? err->code : bu_fail(MLP_NAME, c, "forward", err);
    x = tp_gelu(c, tp_linear(c, x, s->w1, s->b1), TP_GELU_ERF);
    x = tp_gelu(c, tp_linear(c, x, s->w2, s->b2), TP_GELU_ERF);
    x = tp_reshape(c, tp_linear(c, x, s->w3, s->b3), TP_DIMS(b, s->m, s->d_r));
    tp_tensor *soft = bu_alpha_apply(c, &s->alpha, x);
    if (!soft) return bu_fail(MLP_NAME, c, "forward", err);
    out->soft = soft;
    bu_alpha_metric(&s->alpha, out);
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int mlp_num_tokens(void *state) {
    return ((mlp_state *)state)->m;
}

static uint32_t mlp_flags(void *state) {
    (void)state;
    return 0;
}

static int mlp_calibration_examples(void *state) {
    return nz_examples(&((mlp_state *)state)->nz);
}

static tp_status mlp_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                               tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((mlp_state *)state)->nz, c, h, mask, recv_embed, err);
}

static const tp_bridge_vtable mlp_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = mlp_create,
    .forward = mlp_forward,
    .num_tokens = mlp_num_tokens,
    .destroy = mlp_destroy,
    .flags = mlp_flags,
    .calibration_examples = mlp_calibration_examples,
    .calibrate = mlp_calibrate,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = MLP_NAME;
    d->version = "1";
    d->summary = "MLP: masked mean-pool -> 2 GELU layers -> M*d_r; RMS-normalised x alpha";
    d->options = mlp_options;
    d->n_options = (int)(sizeof mlp_options / sizeof mlp_options[0]);
    d->vtable = &mlp_vtable;
    d->vtable_size = sizeof mlp_vtable;
    (void)err;
    return TP_OK;
}
