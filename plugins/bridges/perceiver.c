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
 * The bridge reports alpha as the metric "alpha".
 *
 * Version history: 1 — first version (the normalizer options came later, off by default, with
 * outputs unchanged when off). */
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
#include "normalizer.h"

#define API             tp_plugin_api_
#define PV_MAX_DEPTH    8
#define PV_LN_EPS       1e-5f /* nn.LayerNorm default */
#define PV_RMS_EPS      1e-6f
#define PV_STREAM_BASE  0x7065726300000000ull /* "perc": keeps streams apart from other plugins */
#define PV_DROPOUT_SALT 0xd20900ull

static const tp_option_spec pv_options[] = {
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M (learned latents)"},
    {"depth", TP_OPT_INT, "2", 1, PV_MAX_DEPTH, NULL, "number of Perceiver blocks"},
    {"heads", TP_OPT_INT, "8", 1, 256, NULL, "attention heads (must divide the internal width)"},
    {"width", TP_OPT_INT, "0", 0, 65536, NULL,
     "internal width; 0 = receiver width, else input/output projections are added"},
    {"ffn_mult", TP_OPT_INT, "4", 1, 16, NULL, "FFN hidden width = ffn_mult * internal width"},
    {"alpha_init", TP_OPT_FLOAT, "calibrated", 1, 0, "calibrated",
     "output scale: 'calibrated' (median receiver embedding row RMS) or a number"},
    {"alpha_learnable", TP_OPT_BOOL, "true", 1, 0, NULL, "train the output scale alpha"},
    {"dropout", TP_OPT_FLOAT, "0", 0, 0.9, NULL, "dropout on residual branches (training only)"},
    NZ_OPTIONS,
};

typedef struct pv_attn {
    tp_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
} pv_attn;

typedef struct pv_block {
    tp_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b, *ln3_w, *ln3_b;
    pv_attn cross, self;
    tp_tensor *ff1_w, *ff1_b, *ff2_w, *ff2_b;
} pv_block;

typedef struct pv_state {
    int m, depth, heads, width, d_s, d_r, ffn;
    float dropout;
    int alpha_learnable;
    float alpha0;
    tp_tensor *latents;       /* [M,W] */
    tp_tensor *in_w, *in_b;   /* [W,d_s], [W] or NULL */
    tp_tensor *out_w, *out_b; /* [d_r,W], [d_r] or NULL */
    tp_tensor *alpha;         /* [1] param, or NULL when fixed */
    pv_block blocks[PV_MAX_DEPTH];
    tp_rng drop_rng;
    uint64_t seed;
    int n_init; /* parameters created so far: the init stream of the next one */
    nz_state nz;
} pv_state;

/* Which distribution a new parameter starts from. */
typedef enum { PV_ZERO, PV_ONE, PV_NORMAL, PV_UNIFORM } pv_init;

static tp_tensor *pv_param(pv_state *s, tp_params *ps, const char *name, int ndim,
                           const int64_t *shape, pv_init how, float a, tp_err *err) {
    tp_tensor *t = API->param_add(ps, name, ndim, shape, err);
    if (!t) return NULL;
    tp_rng rng = {s->seed, PV_STREAM_BASE + (uint64_t)s->n_init++, 0};
    tp_status st = TP_OK;
    switch (how) {
    case PV_ZERO:
        st = tp_fill_value(t, 0.0);
        break;
    case PV_ONE:
        st = tp_fill_value(t, 1.0);
        break;
    case PV_NORMAL:
        st = tp_fill_normal(t, 0.0f, a, &rng);
        break;
    case PV_UNIFORM:
        st = tp_fill_uniform(t, -a, a, &rng);
        break;
    }
    if (st != TP_OK) {
        API->errf(err, st, "perceiver: initialising parameter '%s' failed", name);
        return NULL;
    }
    return t;
}

#define PV_P(dst, name, how, a, ...)                                                               \
    do {                                                                                           \
        (dst) = pv_param(s, ps, (name), TP_DIMS(__VA_ARGS__), (how), (a), err);                    \
        if (!(dst)) return (err && err->code) ? err->code : TP_ENOMEM;                             \
    } while (0)

static tp_status pv_make_attn(pv_state *s, tp_params *ps, const char *prefix, pv_attn *a,
                              tp_err *err) {
    int64_t w = s->width;
    float xav = sqrtf(6.0f / (float)(4 * w)); /* xavier over the stacked [3W,W] in_proj */
    float lin = 1.0f / sqrtf((float)w);
    char n[64];
#define PV_N(suffix) (snprintf(n, sizeof n, "%s.%s", prefix, suffix), n)
    PV_P(a->wq, PV_N("q.weight"), PV_UNIFORM, xav, w, w);
    PV_P(a->bq, PV_N("q.bias"), PV_ZERO, 0, w);
    PV_P(a->wk, PV_N("k.weight"), PV_UNIFORM, xav, w, w);
    PV_P(a->bk, PV_N("k.bias"), PV_ZERO, 0, w);
    PV_P(a->wv, PV_N("v.weight"), PV_UNIFORM, xav, w, w);
    PV_P(a->bv, PV_N("v.bias"), PV_ZERO, 0, w);
    PV_P(a->wo, PV_N("out.weight"), PV_UNIFORM, lin, w, w);
    PV_P(a->bo, PV_N("out.bias"), PV_ZERO, 0, w);
#undef PV_N
    return TP_OK;
}

static tp_status pv_make_block(pv_state *s, tp_params *ps, int i, pv_block *b, tp_err *err) {
    int64_t w = s->width, f = (int64_t)s->ffn * s->width;
    char n[64], pre[32];
    snprintf(pre, sizeof pre, "blocks.%d", i);
#define PV_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
    PV_P(b->ln1_w, PV_N("ln1.weight"), PV_ONE, 0, w);
    PV_P(b->ln1_b, PV_N("ln1.bias"), PV_ZERO, 0, w);
    snprintf(n, sizeof n, "%s.cross", pre);
    TP_TRY(pv_make_attn(s, ps, n, &b->cross, err));
    PV_P(b->ln2_w, PV_N("ln2.weight"), PV_ONE, 0, w);
    PV_P(b->ln2_b, PV_N("ln2.bias"), PV_ZERO, 0, w);
    snprintf(n, sizeof n, "%s.self", pre);
    TP_TRY(pv_make_attn(s, ps, n, &b->self, err));
    PV_P(b->ln3_w, PV_N("ln3.weight"), PV_ONE, 0, w);
    PV_P(b->ln3_b, PV_N("ln3.bias"), PV_ZERO, 0, w);
    PV_P(b->ff1_w, PV_N("ffn.0.weight"), PV_UNIFORM, 1.0f / sqrtf((float)w), f, w);
    PV_P(b->ff1_b, PV_N("ffn.0.bias"), PV_UNIFORM, 1.0f / sqrtf((float)w), f);
    PV_P(b->ff2_w, PV_N("ffn.2.weight"), PV_UNIFORM, 1.0f / sqrtf((float)f), w, f);
    PV_P(b->ff2_b, PV_N("ffn.2.bias"), PV_UNIFORM, 1.0f / sqrtf((float)f), w);
#undef PV_N
    return TP_OK;
}

/* All parameters, in a fixed order (the order fixes each one's init stream). */
static tp_status pv_make_params(pv_state *s, tp_params *ps, tp_err *err) {
    int64_t w = s->width;
    PV_P(s->latents, "latents", PV_NORMAL, 0.02f, s->m, w);
    if (s->d_s != s->width) {
        float b = 1.0f / sqrtf((float)s->d_s);
        PV_P(s->in_w, "input_proj.weight", PV_UNIFORM, b, w, s->d_s);
        PV_P(s->in_b, "input_proj.bias", PV_UNIFORM, b, w);
    }
    for (int i = 0; i < s->depth; i++) TP_TRY(pv_make_block(s, ps, i, &s->blocks[i], err));
    if (s->width != s->d_r) {
        PV_P(s->out_w, "output_proj.weight", PV_NORMAL, 0.01f, s->d_r, w);
        PV_P(s->out_b, "output_proj.bias", PV_ZERO, 0, s->d_r);
    }
    if (s->alpha_learnable) {
        PV_P(s->alpha, "alpha", PV_ZERO, 0, 1);
        tp_status st = tp_fill_value(s->alpha, s->alpha0);
        if (st != TP_OK) return API->errf(err, st, "perceiver: setting alpha failed");
    }
    return TP_OK;
}
#undef PV_P

static tp_status pv_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    if (!dims || dims->d_sender <= 0 || dims->d_receiver <= 0)
        return API->errf(err, TP_EINVAL,
                         "perceiver: sender width %d / receiver width %d: both must be > 0",
                         dims ? dims->d_sender : 0, dims ? dims->d_receiver : 0);
    pv_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "perceiver: out of memory");
    s->m = (int)API->opt_int(o, "tokens");
    s->depth = (int)API->opt_int(o, "depth");
    s->heads = (int)API->opt_int(o, "heads");
    s->width = (int)API->opt_int(o, "width");
    s->ffn = (int)API->opt_int(o, "ffn_mult");
    s->dropout = (float)API->opt_float(o, "dropout");
    s->alpha_learnable = API->opt_bool(o, "alpha_learnable");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    s->seed = dims->seed;
    if (s->width == 0) s->width = s->d_r;
    tp_status st = TP_OK;
    if (s->m < 1) {
        st = API->errf(err, TP_EINVAL, "perceiver: option tokens = %d: expected M >= 1", s->m);
        goto fail;
    }
    if (s->depth < 1 || s->depth > PV_MAX_DEPTH) {
        st = API->errf(err, TP_EINVAL, "perceiver: option depth = %d: expected 1..%d", s->depth,
                       PV_MAX_DEPTH);
        goto fail;
    }
    if (s->heads < 1 || s->width % s->heads != 0) {
        st = API->errf(err, TP_EINVAL,
                       "perceiver: option heads = %d does not divide the internal width %d "
                       "(width option or receiver width); pick heads that divide it",
                       s->heads, s->width);
        goto fail;
    }
    double a = API->opt_float(o, "alpha_init");
    if (isnan(a)) {
        const char *word = API->opt_string(o, "alpha_init");
        if (!word || strcmp(word, "calibrated") != 0) {
            st = API->errf(err, TP_EINVAL,
                           "perceiver: option alpha_init = '%s': expected 'calibrated' or a number",
                           word ? word : "(null)");
            goto fail;
        }
        a = dims->recv_embed_rms;
        if (!(a > 0) || !isfinite(a)) {
            st = API->errf(err, TP_EINVAL,
                           "perceiver: alpha_init = calibrated needs the receiver embedding RMS, "
                           "but dims.recv_embed_rms = %g; give alpha_init a number instead",
                           a);
            goto fail;
        }
    } else if (!isfinite(a)) {
        st = API->errf(err, TP_EINVAL,
                       "perceiver: option alpha_init = %g: expected a finite number", a);
        goto fail;
    }
    s->alpha0 = (float)a;
    s->drop_rng = (tp_rng){s->seed ^ PV_DROPOUT_SALT, PV_STREAM_BASE - 1, 0};
    if ((st = pv_make_params(s, ps, err)) != TP_OK) goto fail;
    /* after every other parameter, so the normalizer never shifts their init streams */
    bu_init nz_in = {"perceiver", s->seed, PV_STREAM_BASE + (uint64_t)s->n_init, 0};
    if ((st = nz_create(&s->nz, &nz_in, o, dims, ps, err)) != TP_OK) goto fail;
    *state = s;
    return TP_OK;
fail:
    nz_free(&s->nz);
    free(s);
    return st;
}

/* [B,T,W] -> [B,H,T,Dh] (contiguous, as the attention kernels want it). */
static tp_tensor *pv_split_heads(tp_ctx *c, tp_tensor *x, int64_t b, int64_t t, int h, int64_t dh) {
    tp_tensor *r = tp_reshape(c, x, TP_DIMS(b, t, h, dh));
    return tp_contiguous(c, tp_transpose(c, r, 1, 2));
}

/* nn.MultiheadAttention(q_in -> kv_in), key_mask [B,S] or NULL. */
static tp_tensor *pv_attention(pv_state *s, tp_ctx *c, const pv_attn *a, tp_tensor *q_in,
                               tp_tensor *kv_in, tp_tensor *key_mask) {
    if (!q_in || !kv_in) return NULL;
    int64_t b = q_in->shape[0], tq = q_in->shape[1], tk = kv_in->shape[1];
    int64_t dh = s->width / s->heads;
    tp_tensor *q = pv_split_heads(c, tp_linear(c, q_in, a->wq, a->bq), b, tq, s->heads, dh);
    tp_tensor *k = pv_split_heads(c, tp_linear(c, kv_in, a->wk, a->bk), b, tk, s->heads, dh);
    tp_tensor *v = pv_split_heads(c, tp_linear(c, kv_in, a->wv, a->bv), b, tk, s->heads, dh);
    tp_attn_cfg cfg = {0, 0, 0, 0.0f};
    tp_tensor *o = tp_attention(c, q, k, v, key_mask, &cfg); /* [B,H,Tq,Dh] */
    o = tp_reshape(c, tp_transpose(c, o, 1, 2), TP_DIMS(b, tq, s->width));
    return tp_linear(c, o, a->wo, a->bo);
}

static tp_tensor *pv_residual(pv_state *s, tp_ctx *c, tp_tensor *x, tp_tensor *branch,
                              int training) {
    if (training && s->dropout > 0) branch = tp_dropout(c, branch, s->dropout, &s->drop_rng);
    return tp_add(c, x, branch);
}

static tp_status pv_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    pv_state *s = state;
    memset(out, 0, sizeof *out);
    if (!h || h->ndim != 3 || h->shape[2] != s->d_s)
        return API->errf(err, TP_ESHAPE,
                         "perceiver: sender states must be [B,T,%d]; got %s with ndim %d", s->d_s,
                         h ? "a tensor" : "no tensor", h ? h->ndim : 0);
    int64_t b = h->shape[0], t = h->shape[1];
    if (mask && (mask->ndim != 2 || mask->shape[0] != b || mask->shape[1] != t))
        return API->errf(err, TP_ESHAPE, "perceiver: sender mask must be [B,T] = [%lld,%lld]",
                         (long long)b, (long long)t);
    if (mask && mask->dtype != TP_F32)
        return API->errf(err, TP_EDTYPE, "perceiver: sender mask must be f32 (1 = token)");

    /* bf16 sender states (GPU path) meet f32 bridge weights */
    tp_tensor *hf = h->dtype == TP_F32 ? h : tp_cast(c, h, TP_F32);
    hf = nz_apply(&s->nz, c, hf, err); /* identity when normalizer = off */
    if (!hf) return err->code ? err->code : bu_fail("perceiver", c, "normalizer", err);
    tp_tensor *kv = s->in_w ? tp_linear(c, hf, s->in_w, s->in_b) : hf; /* [B,T,W] */
    tp_tensor *x = tp_add(c, tp_zeros(c, TP_F32, TP_DIMS(b, s->m, s->width)), s->latents);
    for (int i = 0; i < s->depth; i++) {
        const pv_block *bl = &s->blocks[i];
        tp_tensor *xn = tp_layernorm(c, x, bl->ln1_w, bl->ln1_b, PV_LN_EPS);
        x = pv_residual(s, c, x, pv_attention(s, c, &bl->cross, xn, kv, mask), training);
        xn = tp_layernorm(c, x, bl->ln2_w, bl->ln2_b, PV_LN_EPS);
        x = pv_residual(s, c, x, pv_attention(s, c, &bl->self, xn, xn, NULL), training);
        xn = tp_layernorm(c, x, bl->ln3_w, bl->ln3_b, PV_LN_EPS);
        tp_tensor *f = tp_gelu(c, tp_linear(c, xn, bl->ff1_w, bl->ff1_b), TP_GELU_ERF);
        x = pv_residual(s, c, x, tp_linear(c, f, bl->ff2_w, bl->ff2_b), training);
    }
    if (s->out_w) x = tp_linear(c, x, s->out_w, s->out_b); /* [B,M,d_r] */
    tp_tensor *alpha = s->alpha ? s->alpha : tp_full(c, TP_F32, TP_DIMS(1), s->alpha0);
    tp_tensor *soft = tp_mul(c, tp_rmsnorm(c, x, NULL, PV_RMS_EPS), alpha);
    if (!soft) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "perceiver: forward failed: %s",
                         tp_ctx_error(c));
    }
    out->soft = soft;
    out->n_metrics = 1;
    out->metric_name[0] = "alpha";
    out->metric[0] = s->alpha ? tp_item(s->alpha, 0) : s->alpha0;
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int pv_num_tokens(void *state) {
    return ((pv_state *)state)->m;
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

static const tp_bridge_vtable pv_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = pv_create,
    .forward = pv_forward,
    .num_tokens = pv_num_tokens,
    .destroy = pv_destroy,
    .calibration_examples = pv_calibration_examples,
    .calibrate = pv_calibrate,
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
