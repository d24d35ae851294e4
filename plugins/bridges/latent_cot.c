/* latent_cot.c — the latent chain-of-thought bridge of the study's GSM8K phase 19 / exp007
 * (STUDY.md: "GSM8K latent chain-of-thought (4 steps x 8 latents) -> 2.0%").
 *
 * What it adds: a bridge named "latent_cot" that thinks in `steps` rounds of `latents` soft
 * tokens each and hands the receiver all steps*latents of them, in order. One set of
 * perceiver-style blocks is applied recurrently (the same weights every round), so round k can
 * build on round k-1:
 *
 *   kv   = h W_in^T + b_in                          only if d_s != W (internal width)
 *   for k = 0 .. steps-1:
 *     x  = latents + step_emb[k]                    [L,W] learned, broadcast over the batch
 *     p  = LN_prev(x_{k-1})                         (round 0 has no previous round)
 *     repeat depth times (pre-LayerNorm blocks):
 *       x += CrossAttn(LN1(x), kv)                  latents -> sender states, padded keys masked
 *       x += CrossAttn(LN2(x), p)                   latents -> previous round (k >= 1 only)
 *       x += SelfAttn(LN3(x))
 *       x += W2 GELU_erf(W1 LN4(x) + b1) + b2       FFN of ffn_mult * W
 *     x_k = x
 *   y    = [x_0 | x_1 | ... | x_{steps-1}]          [B, steps*L, W]
 *   y    = y W_out^T + b_out                        only if W != d_r; W_out init N(0, 0.01^2)
 *   soft = RMSNorm(y) * alpha
 *
 * Gradients flow through the recurrence (backpropagation through the rounds). Attention blocks
 * are nn.MultiheadAttention's (q/k/v/out projections with biases, scale 1/sqrt(W/heads)) and the
 * initialisation follows perceiver.c (PyTorch defaults; latents and step embeddings N(0, 0.02^2);
 * one Philox stream of dims->seed per parameter). With steps = 1 the previous-round attention
 * is never used and its parameters get no gradient.
 * Options: steps, latents, depth, heads, width (0 = receiver width), ffn_mult, alpha_init
 * ("calibrated" | number), alpha_learnable. Metric: "alpha".
 *
 * Version history: 1 — first version. */
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
#include "resampler.h"

#define LC_NAME        "latent_cot"
#define LC_MAX_DEPTH   6 /* 7 + 36 per block parameters: 223 at most, under TP_MAX_PARAMS */
#define LC_MAX_STEPS   64
#define LC_RMS_EPS     1e-6f
#define LC_STREAM_BASE 0x6c636f7400000000ull /* "lcot" */

static const tp_option_spec lc_options[] = {
    {"steps", TP_OPT_INT, "4", 1, LC_MAX_STEPS, NULL, "reasoning rounds"},
    {"latents", TP_OPT_INT, "8", 1, 4096, NULL, "soft tokens per round"},
    {"depth", TP_OPT_INT, "2", 1, LC_MAX_DEPTH, NULL, "blocks per round (shared by all rounds)"},
    {"heads", TP_OPT_INT, "8", 1, 256, NULL, "attention heads (must divide the internal width)"},
    {"width", TP_OPT_INT, "0", 0, 65536, NULL,
     "internal width; 0 = receiver width, else input/output projections are added"},
    {"ffn_mult", TP_OPT_INT, "4", 1, 16, NULL, "FFN hidden width = ffn_mult * internal width"},
    BU_ALPHA_OPTIONS,
};

typedef struct lc_block {
    tp_tensor *ln_w[4], *ln_b[4]; /* src cross, prev cross, self, ffn */
    rs_attn src, prev, self;
    rs_ffn ffn;
} lc_block;

typedef struct lc_state {
    int steps, lat, depth, heads, width, d_s, d_r, ffn;
    tp_tensor *latents, *step_emb; /* [L,W], [steps,W] */
    tp_tensor *lnp_w, *lnp_b;      /* LN of the previous round */
    tp_tensor *in_w, *in_b;        /* [W,d_s], [W] or NULL */
    tp_tensor *out_w, *out_b;      /* [d_r,W], [d_r] or NULL */
    bu_alpha alpha;
    lc_block blocks[LC_MAX_DEPTH];
} lc_state;

#define LC_P(dst, name, how, a, ...)                                                               \
    do {                                                                                           \
        (dst) = bu_param(in, ps, (name), TP_DIMS(__VA_ARGS__), (how), (a), err);                   \
        if (!(dst)) return bu_code(err);                                                           \
    } while (0)

static tp_status lc_make_block(lc_state *s, bu_init *in, tp_params *ps, int i, lc_block *b,
                               tp_err *err) {
    int64_t w = s->width, f = (int64_t)s->ffn * s->width;
    static const char *const ln_names[4] = {"ln_src", "ln_prev", "ln_self", "ln_ffn"};
    char n[64], pre[32];
    snprintf(pre, sizeof pre, "blocks.%d", i);
    for (int k = 0; k < 4; k++) {
        snprintf(n, sizeof n, "%s.%s.weight", pre, ln_names[k]);
        LC_P(b->ln_w[k], n, BU_VALUE, 1, w);
        snprintf(n, sizeof n, "%s.%s.bias", pre, ln_names[k]);
        LC_P(b->ln_b[k], n, BU_ZERO, 0, w);
    }
    snprintf(n, sizeof n, "%s.cross_src", pre);
    TP_TRY(rs_make_attn(in, ps, n, w, &b->src, err));
    snprintf(n, sizeof n, "%s.cross_prev", pre);
    TP_TRY(rs_make_attn(in, ps, n, w, &b->prev, err));
    snprintf(n, sizeof n, "%s.self", pre);
    TP_TRY(rs_make_attn(in, ps, n, w, &b->self, err));
    snprintf(n, sizeof n, "%s.ffn", pre);
    return rs_make_ffn(in, ps, n, w, f, &b->ffn, err);
}

/* All parameters, in a fixed order (the order fixes each one's init stream). */
static tp_status lc_make_params(lc_state *s, bu_init *in, const tp_options *o, tp_params *ps,
                                tp_err *err) {
    int64_t w = s->width;
    LC_P(s->latents, "latents", BU_NORMAL, 0.02f, s->lat, w);
    LC_P(s->step_emb, "step_emb", BU_NORMAL, 0.02f, s->steps, w);
    LC_P(s->lnp_w, "ln_prev_round.weight", BU_VALUE, 1, w);
    LC_P(s->lnp_b, "ln_prev_round.bias", BU_ZERO, 0, w);
    if (s->d_s != s->width)
        TP_TRY(bu_linear(in, ps, "input_proj", s->d_s, w, &s->in_w, &s->in_b, err));
    for (int i = 0; i < s->depth; i++) TP_TRY(lc_make_block(s, in, ps, i, &s->blocks[i], err));
    if (s->width != s->d_r) TP_TRY(rs_make_out_proj(in, ps, w, s->d_r, &s->out_w, &s->out_b, err));
    return bu_alpha_param(in, o, ps, &s->alpha, err);
}
#undef LC_P

static tp_status lc_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(LC_NAME, dims, err));
    lc_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, LC_NAME ": out of memory");
    s->steps = (int)BU_API->opt_int(o, "steps");
    s->lat = (int)BU_API->opt_int(o, "latents");
    s->depth = (int)BU_API->opt_int(o, "depth");
    s->heads = (int)BU_API->opt_int(o, "heads");
    s->width = (int)BU_API->opt_int(o, "width");
    s->ffn = (int)BU_API->opt_int(o, "ffn_mult");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    if (s->width == 0) s->width = s->d_r;
    tp_status st = TP_OK;
    if (s->steps < 1 || s->steps > LC_MAX_STEPS || s->lat < 1 || (int64_t)s->steps * s->lat > 65536)
        st = BU_API->errf(err, TP_EINVAL,
                          LC_NAME ": options steps = %d, latents = %d: expected steps 1..%d, "
                                  "latents >= 1, steps*latents <= 65536",
                          s->steps, s->lat, LC_MAX_STEPS);
    else if (s->depth < 1 || s->depth > LC_MAX_DEPTH)
        st = BU_API->errf(err, TP_EINVAL, LC_NAME ": option depth = %d: expected 1..%d", s->depth,
                          LC_MAX_DEPTH);
    else if (s->heads < 1 || s->width % s->heads != 0)
        st = BU_API->errf(err, TP_EINVAL,
                          LC_NAME ": option heads = %d does not divide the internal width %d "
                                  "(width option or receiver width); pick heads that divide it",
                          s->heads, s->width);
    if (st == TP_OK) st = bu_alpha_parse(LC_NAME, o, dims, &s->alpha.a0, err);
    bu_init in = {LC_NAME, dims->seed, LC_STREAM_BASE, 0};
    if (st == TP_OK) st = lc_make_params(s, &in, o, ps, err);
    if (st != TP_OK) {
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

/* One round: latents of round k attend to the sender (kv) and the previous round (prev). */
static tp_tensor *lc_round(const lc_state *s, tp_ctx *c, int k, int64_t b, tp_tensor *kv,
                           tp_tensor *mask, tp_tensor *prev) {
    int64_t w = s->width;
    tp_tensor *init = tp_add(c, s->latents, tp_slice(c, s->step_emb, 0, k, 1)); /* [L,W] */
    tp_tensor *x = tp_add(c, tp_zeros(c, TP_F32, TP_DIMS(b, s->lat, w)), init);
    tp_tensor *p = prev ? tp_layernorm(c, prev, s->lnp_w, s->lnp_b, RS_LN_EPS) : NULL;
    for (int i = 0; i < s->depth; i++) {
        const lc_block *bl = &s->blocks[i];
        tp_tensor *xn = tp_layernorm(c, x, bl->ln_w[0], bl->ln_b[0], RS_LN_EPS);
        x = tp_add(c, x, rs_mha(c, &bl->src, w, s->heads, xn, kv, mask));
        if (p) {
            xn = tp_layernorm(c, x, bl->ln_w[1], bl->ln_b[1], RS_LN_EPS);
            x = tp_add(c, x, rs_mha(c, &bl->prev, w, s->heads, xn, p, NULL));
        }
        xn = tp_layernorm(c, x, bl->ln_w[2], bl->ln_b[2], RS_LN_EPS);
        x = tp_add(c, x, rs_mha(c, &bl->self, w, s->heads, xn, xn, NULL));
        xn = tp_layernorm(c, x, bl->ln_w[3], bl->ln_b[3], RS_LN_EPS);
        x = tp_add(c, x, rs_ffn_forward(c, &bl->ffn, xn, TP_GELU_ERF));
    }
    return x;
}

static tp_status lc_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    lc_state *s = state;
    (void)training; /* no dropout, no noise: training and eval are the same function */
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(LC_NAME, s->d_s, h, mask, err));
    int64_t b = h->shape[0];
    tp_tensor *hf = bu_f32(c, h);
    tp_tensor *kv = s->in_w ? tp_linear(c, hf, s->in_w, s->in_b) : hf; /* [B,T,W] */
    tp_tensor *rounds[LC_MAX_STEPS];
    tp_tensor *prev = NULL;
    for (int k = 0; k < s->steps; k++) {
        rounds[k] = lc_round(s, c, k, b, kv, mask, prev);
        prev = rounds[k];
    }
    tp_tensor *y = s->steps == 1 ? rounds[0] : tp_concat(c, rounds, s->steps, 1); /* [B,S*L,W] */
    if (s->out_w) y = tp_linear(c, y, s->out_w, s->out_b);
    tp_tensor *soft = bu_alpha_apply_eps(c, &s->alpha, y, LC_RMS_EPS);
    if (!soft) return bu_fail(LC_NAME, c, "forward", err);
    out->soft = soft;
    bu_alpha_metric(&s->alpha, out);
    return TP_OK;
}

static int lc_num_tokens(void *state) {
    const lc_state *s = state;
    return s->steps * s->lat;
}

/* Parameters belong to the host's tp_params (it frees them); only the state is ours. */
static void lc_destroy(void *state) {
    free(state);
}

static const tp_bridge_vtable lc_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = lc_create,
    .forward = lc_forward,
    .num_tokens = lc_num_tokens,
    .destroy = lc_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = "latent_cot";
    d->version = "1";
    d->summary = "latent chain of thought: steps x latents soft tokens from recurrent "
                 "perceiver-style rounds";
    d->options = lc_options;
    d->n_options = (int)(sizeof lc_options / sizeof lc_options[0]);
    d->vtable = &lc_vtable;
    d->vtable_size = sizeof lc_vtable;
    (void)err;
    return TP_OK;
}
