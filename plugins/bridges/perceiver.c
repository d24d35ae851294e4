/* perceiver.c — the Perceiver-resampler bridge, the study's main bridge (STUDY.md "Bridges").
 *
 * What it adds: a bridge named "perceiver" that turns the sender's layer-l hidden states
 * h [B,T,d_s] (with a key padding mask [B,T]) into M soft tokens [B,M,d_r] for the receiver:
 *
 *   kv  = h W_in^T + b_in                     only if d_s != W (internal width)
 *   x   = latents                             M learned vectors, init N(0, 0.02^2), [M,W]
 *   repeat depth times (pre-LayerNorm blocks, no positional encodings):
 *     x += CrossAttn(LN1(x), kv)              latents -> sender states, padded keys masked
 *     x += SelfAttn(LN2(x))                   latents <-> latents
 *     x += W2 GELU_erf(W1 LN3(x) + b1) + b2   FFN of ffn_mult * W
 *   x   = x W_out^T + b_out                   only if W != d_r; W_out init N(0, 0.01^2)
 *   soft = RMSNorm(x) * alpha                 each soft token has RMS |alpha|
 *
 * As in the study's PyTorch code (LatentWire telepathy/latent_bridge_v15.py PerceiverResampler),
 * only the queries are layer-normed: keys and values of the cross-attention are the (projected)
 * sender states themselves. Each attention is nn.MultiheadAttention's: separate q/k/v/out
 * projections with biases, `heads` heads of W/heads, scale 1/sqrt(W/heads), no causal mask.
 * Initialisation follows PyTorch's defaults: q/k/v weights xavier-uniform over the stacked
 * [3W,W] in_proj (bound sqrt(6/(4W))), attention biases 0, out/FFN/input-projection weights and
 * FFN/input biases U(+-1/sqrt(fan_in)), LayerNorm 1/0. Every parameter draws from its own
 * Philox stream of dims->seed, so adding an option never changes another parameter's init.
 *
 * Options: tokens (M), depth, heads, width (0 = receiver width; e.g. 512 gives the narrower
 * projected variant the paper text describes), ffn_mult, alpha_init ("calibrated" = the median
 * row RMS of the receiver's embedding matrix, dims->recv_embed_rms, or a number — some study
 * scripts hard-coded 0.03), alpha_learnable, dropout (on each residual branch, training only),
 * and the normalizer options (normalizer.h: per-dimension whitening of the sender states from
 * statistics of N training examples, as in the study's phase 1; off by default).
 * The bridge reports alpha as the metric "alpha". With dropout > 0 the dropout RNG's position
 * is its checkpointed state (bridge.h, ABI 1.2), so a resumed run draws the masks the
 * uninterrupted one would have.
 *
 * Version history: 1 — first version (the normalizer options came later, off by default, with
 * outputs unchanged when off; so did the checkpointed dropout state, which changes only what a
 * resumed run computes — it now equals the uninterrupted run). */
#define TP_PLUGIN
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "bridge_state.h"
#include "normalizer.h"
#include "resampler.h"

#define PV_NAME         "perceiver"
#define PV_RMS_EPS      1e-6f
#define PV_STREAM_BASE  0x7065726300000000ull /* "perc": keeps streams apart from other plugins */
#define PV_DROPOUT_SALT 0xd20900ull
#define PV_STATE_MAGIC  0x53565050u /* "PPVS" */

static const tp_option_spec pv_options[] = {
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M (learned latents)"},
    {"depth", TP_OPT_INT, "2", 1, RS_MAX_DEPTH, NULL, "number of Perceiver blocks"},
    {"heads", TP_OPT_INT, "8", 1, 256, NULL, "attention heads (must divide the internal width)"},
    {"width", TP_OPT_INT, "0", 0, 65536, NULL,
     "internal width; 0 = receiver width, else input/output projections are added"},
    {"ffn_mult", TP_OPT_INT, "4", 1, 16, NULL, "FFN hidden width = ffn_mult * internal width"},
    BU_ALPHA_OPTIONS,
    {"dropout", TP_OPT_FLOAT, "0", 0, 0.9, NULL, "dropout on residual branches (training only)"},
    NZ_OPTIONS,
};

/* The encoder is resampler.h's with unprefixed names ("latents", "blocks.0.ln1.weight", ...). */
typedef struct pv_state {
    rs_enc enc;
    int d_s, d_r;
    float dropout;
    tp_tensor *out_w, *out_b; /* [d_r,W], [d_r] or NULL */
    bu_alpha alpha;
    tp_rng drop_rng;
    nz_state nz;
} pv_state;

static tp_status pv_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(PV_NAME, dims, err));
    pv_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, PV_NAME ": out of memory");
    s->dropout = (float)BU_API->opt_float(o, "dropout");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    /* every parameter in a fixed order (the order fixes each one's init stream): encoder,
     * output projection, alpha, then the normalizer, so it never shifts the others' streams */
    bu_init in = {PV_NAME, dims->seed, PV_STREAM_BASE, 0};
    tp_status st = rs_configure(&s->enc, &in, o, dims, err);
    if (st == TP_OK) st = bu_alpha_parse(PV_NAME, o, dims, &s->alpha.a0, err);
    s->drop_rng = (tp_rng){dims->seed ^ PV_DROPOUT_SALT, PV_STREAM_BASE - 1, 0};
    if (st == TP_OK) st = rs_make_params(&s->enc, &in, "", ps, err);
    if (st == TP_OK && s->enc.width != s->d_r)
        st = rs_make_out_proj(&in, ps, s->enc.width, s->d_r, &s->out_w, &s->out_b, err);
    if (st == TP_OK) st = bu_alpha_param(&in, o, ps, &s->alpha, err);
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        nz_free(&s->nz);
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status pv_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    pv_state *s = state;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(PV_NAME, s->d_s, h, mask, err));
    tp_tensor *hf = nz_apply(&s->nz, c, bu_f32(c, h), err); /* identity when normalizer = off */
    if (!hf) return err->code ? err->code : bu_fail(PV_NAME, c, "normalizer", err);
    float p = training ? s->dropout : 0.0f;
    tp_tensor *x = rs_forward_dropout(&s->enc, c, hf, mask, p, &s->drop_rng); /* [B,M,W] */
    if (s->out_w) x = tp_linear(c, x, s->out_w, s->out_b);                    /* [B,M,d_r] */
    tp_tensor *soft = bu_alpha_apply_eps(c, &s->alpha, x, PV_RMS_EPS);
    if (!soft) return bu_fail(PV_NAME, c, "forward", err);
    out->soft = soft;
    bu_alpha_metric(&s->alpha, out);
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int pv_num_tokens(void *state) {
    return ((pv_state *)state)->enc.m;
}

/* Parameters belong to the host's tp_params (it frees them); only the state is ours. */
static void pv_destroy(void *state) {
    pv_state *s = state;
    if (s) nz_free(&s->nz);
    free(s);
}

static int pv_calibration_examples(void *state) {
    return nz_examples(&((pv_state *)state)->nz);
}

static tp_status pv_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                              tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((pv_state *)state)->nz, c, h, mask, recv_embed, err);
}

/* Checkpointed state: the dropout RNG's position, the only thing that changes in training
 * besides the parameters. Without dropout it never moves, so there is nothing to save (and
 * checkpoints of dropout-0 runs stay as they were before ABI 1.2). */
static size_t pv_state_size(void *state) {
    return ((pv_state *)state)->dropout > 0 ? BS_HEADER + BS_RNG : 0;
}

static tp_status pv_save_state(void *state, void *buf, size_t n, tp_err *err) {
    pv_state *s = state;
    bs_cur c = bs_begin_write(buf, n, PV_STATE_MAGIC, 1);
    bs_put_rng(&c, &s->drop_rng);
    return bs_end_write(&c, PV_NAME, err);
}

static tp_status pv_load_state(void *state, const void *buf, size_t n, tp_err *err) {
    pv_state *s = state;
    bs_cur c;
    tp_rng rng;
    TP_TRY(bs_begin_read(&c, buf, n, PV_STATE_MAGIC, 1, PV_NAME, err));
    TP_TRY(bs_get_rng(&c, &s->drop_rng, &rng, PV_NAME, "dropout", err));
    TP_TRY(bs_end_read(&c, PV_NAME, err));
    s->drop_rng = rng;
    return TP_OK;
}

static const tp_bridge_vtable pv_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = pv_create,
    .forward = pv_forward,
    .num_tokens = pv_num_tokens,
    .destroy = pv_destroy,
    .calibration_examples = pv_calibration_examples,
    .calibrate = pv_calibrate,
    .state_size = pv_state_size,
    .save_state = pv_save_state,
    .load_state = pv_load_state,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = "perceiver";
    d->version = "1";
    d->summary = "Perceiver resampler: M learned latents cross-attend to sender states; "
                 "RMS-normalised x alpha";
    d->options = pv_options;
    d->n_options = (int)(sizeof pv_options / sizeof pv_options[0]);
    d->vtable = &pv_vtable;
    d->vtable_size = sizeof pv_vtable;
    (void)err;
    return TP_OK;
}
