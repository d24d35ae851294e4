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

#define API            tp_plugin_api_
#define LC_MAX_DEPTH   6 /* 7 + 36 per block parameters: 223 at most, under TP_MAX_PARAMS */
#define LC_MAX_STEPS   64
#define LC_LN_EPS      1e-5f /* nn.LayerNorm default */
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
    {"alpha_init", TP_OPT_FLOAT, "calibrated", 1, 0, "calibrated",
     "output scale: 'calibrated' (median receiver embedding row RMS) or a number"},
    {"alpha_learnable", TP_OPT_BOOL, "true", 1, 0, NULL, "train the output scale alpha"},
};

typedef struct lc_attn {
    tp_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
} lc_attn;

typedef struct lc_block {
    tp_tensor *ln_w[4], *ln_b[4]; /* src cross, prev cross, self, ffn */
    lc_attn src, prev, self;
    tp_tensor *ff1_w, *ff1_b, *ff2_w, *ff2_b;
} lc_block;

typedef struct lc_state {
    int steps, lat, depth, heads, width, d_s, d_r, ffn;
    int alpha_learnable;
    float alpha0;
    tp_tensor *latents, *step_emb; /* [L,W], [steps,W] */
    tp_tensor *lnp_w, *lnp_b;      /* LN of the previous round */
    tp_tensor *in_w, *in_b;        /* [W,d_s], [W] or NULL */
    tp_tensor *out_w, *out_b;      /* [d_r,W], [d_r] or NULL */
    tp_tensor *alpha;              /* [1] or NULL when fixed */
    lc_block blocks[LC_MAX_DEPTH];
    uint64_t seed;
    int n_init;
} lc_state;

typedef enum { LC_ZERO, LC_ONE, LC_NORMAL, LC_UNIFORM } lc_init;

static tp_tensor *lc_param(lc_state *s, tp_params *ps, const char *name, int ndim,
                           const int64_t *shape, lc_init how, float a, tp_err *err) {
    tp_tensor *t = API->param_add(ps, name, ndim, shape, err);
    if (!t) return NULL;
    tp_rng rng = {s->seed, LC_STREAM_BASE + (uint64_t)s->n_init++, 0};
    tp_status st = TP_OK;
    switch (how) {
    case LC_ZERO:
        st = tp_fill_value(t, 0.0);
        break;
    case LC_ONE:
        st = tp_fill_value(t, 1.0);
        break;
    case LC_NORMAL:
        st = tp_fill_normal(t, 0.0f, a, &rng);
        break;
    case LC_UNIFORM:
        st = tp_fill_uniform(t, -a, a, &rng);
        break;
    }
    if (st != TP_OK) {
        API->errf(err, st, "latent_cot: initialising parameter '%s' failed", name);
        return NULL;
    }
    return t;
}

#define LC_P(dst, name, how, a, ...)                                                               \
    do {                                                                                           \
        (dst) = lc_param(s, ps, (name), TP_DIMS(__VA_ARGS__), (how), (a), err);                    \
        if (!(dst)) return (err && err->code) ? err->code : TP_ENOMEM;                             \
    } while (0)

static tp_status lc_make_attn(lc_state *s, tp_params *ps, const char *prefix, lc_attn *a,
                              tp_err *err) {
    int64_t w = s->width;
    float xav = sqrtf(6.0f / (float)(4 * w)); /* xavier over the stacked [3W,W] in_proj */
    float lin = 1.0f / sqrtf((float)w);
    char n[64];
#define LC_N(suffix) (snprintf(n, sizeof n, "%s.%s", prefix, suffix), n)
    LC_P(a->wq, LC_N("q.weight"), LC_UNIFORM, xav, w, w);
    LC_P(a->bq, LC_N("q.bias"), LC_ZERO, 0, w);
    LC_P(a->wk, LC_N("k.weight"), LC_UNIFORM, xav, w, w);
    LC_P(a->bk, LC_N("k.bias"), LC_ZERO, 0, w);
    LC_P(a->wv, LC_N("v.weight"), LC_UNIFORM, xav, w, w);
    LC_P(a->bv, LC_N("v.bias"), LC_ZERO, 0, w);
    LC_P(a->wo, LC_N("out.weight"), LC_UNIFORM, lin, w, w);
    LC_P(a->bo, LC_N("out.bias"), LC_ZERO, 0, w);
#undef LC_N
    return TP_OK;
}

static tp_status lc_make_block(lc_state *s, tp_params *ps, int i, lc_block *b, tp_err *err) {
    int64_t w = s->width, f = (int64_t)s->ffn * s->width;
    static const char *const ln_names[4] = {"ln_src", "ln_prev", "ln_self", "ln_ffn"};
    char n[64], pre[32];
    snprintf(pre, sizeof pre, "blocks.%d", i);
    for (int k = 0; k < 4; k++) {
        snprintf(n, sizeof n, "%s.%s.weight", pre, ln_names[k]);
        LC_P(b->ln_w[k], n, LC_ONE, 0, w);
        snprintf(n, sizeof n, "%s.%s.bias", pre, ln_names[k]);
        LC_P(b->ln_b[k], n, LC_ZERO, 0, w);
    }
    snprintf(n, sizeof n, "%s.cross_src", pre);
    TP_TRY(lc_make_attn(s, ps, n, &b->src, err));
    snprintf(n, sizeof n, "%s.cross_prev", pre);
    TP_TRY(lc_make_attn(s, ps, n, &b->prev, err));
    snprintf(n, sizeof n, "%s.self", pre);
    TP_TRY(lc_make_attn(s, ps, n, &b->self, err));
#define LC_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
    LC_P(b->ff1_w, LC_N("ffn.0.weight"), LC_UNIFORM, 1.0f / sqrtf((float)w), f, w);
    LC_P(b->ff1_b, LC_N("ffn.0.bias"), LC_UNIFORM, 1.0f / sqrtf((float)w), f);
    LC_P(b->ff2_w, LC_N("ffn.2.weight"), LC_UNIFORM, 1.0f / sqrtf((float)f), w, f);
    LC_P(b->ff2_b, LC_N("ffn.2.bias"), LC_UNIFORM, 1.0f / sqrtf((float)f), w);
#undef LC_N
    return TP_OK;
}

/* All parameters, in a fixed order (the order fixes each one's init stream). */
static tp_status lc_make_params(lc_state *s, tp_params *ps, tp_err *err) {
    int64_t w = s->width;
    LC_P(s->latents, "latents", LC_NORMAL, 0.02f, s->lat, w);
    LC_P(s->step_emb, "step_emb", LC_NORMAL, 0.02f, s->steps, w);
    LC_P(s->lnp_w, "ln_prev_round.weight", LC_ONE, 0, w);
    LC_P(s->lnp_b, "ln_prev_round.bias", LC_ZERO, 0, w);
    if (s->d_s != s->width) {
        float b = 1.0f / sqrtf((float)s->d_s);
        LC_P(s->in_w, "input_proj.weight", LC_UNIFORM, b, w, s->d_s);
        LC_P(s->in_b, "input_proj.bias", LC_UNIFORM, b, w);
    }
    for (int i = 0; i < s->depth; i++) TP_TRY(lc_make_block(s, ps, i, &s->blocks[i], err));
    if (s->width != s->d_r) {
        LC_P(s->out_w, "output_proj.weight", LC_NORMAL, 0.01f, s->d_r, w);
        LC_P(s->out_b, "output_proj.bias", LC_ZERO, 0, s->d_r);
    }
    if (s->alpha_learnable) {
        LC_P(s->alpha, "alpha", LC_ZERO, 0, 1);
        tp_status st = tp_fill_value(s->alpha, s->alpha0);
        if (st != TP_OK) return API->errf(err, st, "latent_cot: setting alpha failed");
    }
    return TP_OK;
}
#undef LC_P

static tp_status lc_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    if (!dims || dims->d_sender <= 0 || dims->d_receiver <= 0)
        return API->errf(err, TP_EINVAL,
                         "latent_cot: sender width %d / receiver width %d: both must be > 0",
                         dims ? dims->d_sender : 0, dims ? dims->d_receiver : 0);
    lc_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "latent_cot: out of memory");
    s->steps = (int)API->opt_int(o, "steps");
    s->lat = (int)API->opt_int(o, "latents");
    s->depth = (int)API->opt_int(o, "depth");
    s->heads = (int)API->opt_int(o, "heads");
    s->width = (int)API->opt_int(o, "width");
    s->ffn = (int)API->opt_int(o, "ffn_mult");
    s->alpha_learnable = API->opt_bool(o, "alpha_learnable");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    s->seed = dims->seed;
    if (s->width == 0) s->width = s->d_r;
    tp_status st = TP_OK;
    if (s->steps < 1 || s->steps > LC_MAX_STEPS || s->lat < 1 ||
        (int64_t)s->steps * s->lat > 65536) {
        st = API->errf(err, TP_EINVAL,
                       "latent_cot: options steps = %d, latents = %d: expected steps 1..%d, "
                       "latents >= 1, steps*latents <= 65536",
                       s->steps, s->lat, LC_MAX_STEPS);
        goto fail;
    }
    if (s->depth < 1 || s->depth > LC_MAX_DEPTH) {
        st = API->errf(err, TP_EINVAL, "latent_cot: option depth = %d: expected 1..%d", s->depth,
                       LC_MAX_DEPTH);
        goto fail;
    }
    if (s->heads < 1 || s->width % s->heads != 0) {
        st = API->errf(err, TP_EINVAL,
                       "latent_cot: option heads = %d does not divide the internal width %d "
                       "(width option or receiver width); pick heads that divide it",
                       s->heads, s->width);
        goto fail;
    }
    double a = API->opt_float(o, "alpha_init");
    if (isnan(a)) {
        const char *word = API->opt_string(o, "alpha_init");
        if (!word || strcmp(word, "calibrated") != 0) {
            st = API->errf(err, TP_EINVAL,
                           "latent_cot: option alpha_init = '%s': expected 'calibrated' or a "
                           "number",
                           word ? word : "(null)");
            goto fail;
        }
        a = dims->recv_embed_rms;
        if (!(a > 0) || !isfinite(a)) {
            st = API->errf(err, TP_EINVAL,
                           "latent_cot: alpha_init = calibrated needs the receiver embedding "
                           "RMS, but dims.recv_embed_rms = %g; give alpha_init a number instead",
                           a);
            goto fail;
        }
    } else if (!isfinite(a)) {
        st = API->errf(err, TP_EINVAL,
                       "latent_cot: option alpha_init = %g: expected a finite number", a);
        goto fail;
    }
    s->alpha0 = (float)a;
    if ((st = lc_make_params(s, ps, err)) != TP_OK) goto fail;
    *state = s;
    return TP_OK;
fail:
    free(s);
    return st;
}

/* [B,T,W] -> [B,H,T,Dh] (contiguous, as the attention kernels want it). */
static tp_tensor *lc_split_heads(tp_ctx *c, tp_tensor *x, int64_t b, int64_t t, int h, int64_t dh) {
    tp_tensor *r = tp_reshape(c, x, TP_DIMS(b, t, h, dh));
    return tp_contiguous(c, tp_transpose(c, r, 1, 2));
}

/* nn.MultiheadAttention(q_in -> kv_in), key_mask [B,S] or NULL. */
static tp_tensor *lc_attention(const lc_state *s, tp_ctx *c, const lc_attn *a, tp_tensor *q_in,
                               tp_tensor *kv_in, tp_tensor *key_mask) {
    if (!q_in || !kv_in) return NULL;
    int64_t b = q_in->shape[0], tq = q_in->shape[1], tk = kv_in->shape[1];
    int64_t dh = s->width / s->heads;
    tp_tensor *q = lc_split_heads(c, tp_linear(c, q_in, a->wq, a->bq), b, tq, s->heads, dh);
    tp_tensor *k = lc_split_heads(c, tp_linear(c, kv_in, a->wk, a->bk), b, tk, s->heads, dh);
    tp_tensor *v = lc_split_heads(c, tp_linear(c, kv_in, a->wv, a->bv), b, tk, s->heads, dh);
    tp_attn_cfg cfg = {0, 0, 0, 0.0f};
    tp_tensor *o = tp_attention(c, q, k, v, key_mask, &cfg); /* [B,H,Tq,Dh] */
    o = tp_reshape(c, tp_transpose(c, o, 1, 2), TP_DIMS(b, tq, s->width));
    return tp_linear(c, o, a->wo, a->bo);
}

/* One round: latents of round k attend to the sender (kv) and the previous round (prev). */
static tp_tensor *lc_round(const lc_state *s, tp_ctx *c, int k, int64_t b, tp_tensor *kv,
                           tp_tensor *mask, tp_tensor *prev) {
    tp_tensor *init = tp_add(c, s->latents, tp_slice(c, s->step_emb, 0, k, 1)); /* [L,W] */
    tp_tensor *x = tp_add(c, tp_zeros(c, TP_F32, TP_DIMS(b, s->lat, s->width)), init);
    tp_tensor *p = prev ? tp_layernorm(c, prev, s->lnp_w, s->lnp_b, LC_LN_EPS) : NULL;
    for (int i = 0; i < s->depth; i++) {
        const lc_block *bl = &s->blocks[i];
        tp_tensor *xn = tp_layernorm(c, x, bl->ln_w[0], bl->ln_b[0], LC_LN_EPS);
        x = tp_add(c, x, lc_attention(s, c, &bl->src, xn, kv, mask));
        if (p) {
            xn = tp_layernorm(c, x, bl->ln_w[1], bl->ln_b[1], LC_LN_EPS);
            x = tp_add(c, x, lc_attention(s, c, &bl->prev, xn, p, NULL));
        }
        xn = tp_layernorm(c, x, bl->ln_w[2], bl->ln_b[2], LC_LN_EPS);
        x = tp_add(c, x, lc_attention(s, c, &bl->self, xn, xn, NULL));
        xn = tp_layernorm(c, x, bl->ln_w[3], bl->ln_b[3], LC_LN_EPS);
        tp_tensor *f = tp_gelu(c, tp_linear(c, xn, bl->ff1_w, bl->ff1_b), TP_GELU_ERF);
        x = tp_add(c, x, tp_linear(c, f, bl->ff2_w, bl->ff2_b));
    }
    return x;
}

static tp_status lc_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    lc_state *s = state;
    (void)training; /* no dropout, no noise: training and eval are the same function */
    memset(out, 0, sizeof *out);
    if (!h || h->ndim != 3 || h->shape[2] != s->d_s)
        return API->errf(err, TP_ESHAPE,
                         "latent_cot: sender states must be [B,T,%d]; got %s with ndim %d", s->d_s,
                         h ? "a tensor" : "no tensor", h ? h->ndim : 0);
    int64_t b = h->shape[0], t = h->shape[1];
    if (mask && (mask->ndim != 2 || mask->shape[0] != b || mask->shape[1] != t))
        return API->errf(err, TP_ESHAPE, "latent_cot: sender mask must be [B,T] = [%lld,%lld]",
                         (long long)b, (long long)t);
    if (mask && mask->dtype != TP_F32)
        return API->errf(err, TP_EDTYPE, "latent_cot: sender mask must be f32 (1 = token)");
    tp_tensor *hf = h->dtype == TP_F32 ? h : tp_cast(c, h, TP_F32);
    tp_tensor *kv = s->in_w ? tp_linear(c, hf, s->in_w, s->in_b) : hf; /* [B,T,W] */
    tp_tensor *rounds[LC_MAX_STEPS];
    tp_tensor *prev = NULL;
    for (int k = 0; k < s->steps; k++) {
        rounds[k] = lc_round(s, c, k, b, kv, mask, prev);
        prev = rounds[k];
    }
    tp_tensor *y = s->steps == 1 ? rounds[0] : tp_concat(c, rounds, s->steps, 1); /* [B,S*L,W] */
    if (s->out_w) y = tp_linear(c, y, s->out_w, s->out_b);
    tp_tensor *alpha = s->alpha ? s->alpha : tp_full(c, TP_F32, TP_DIMS(1), s->alpha0);
    tp_tensor *soft = tp_mul(c, tp_rmsnorm(c, y, NULL, LC_RMS_EPS), alpha);
    if (!soft) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "latent_cot: forward failed: %s",
                         tp_ctx_error(c));
    }
    out->soft = soft;
    out->n_metrics = 1;
    out->metric_name[0] = "alpha";
    out->metric[0] = s->alpha ? tp_item(s->alpha, 0) : s->alpha0;
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
