/* bridge_util.h — pieces shared by the study's bridges (mlp, linear, meanpool, identity,
 * linear_probe, vq, fsq, prompt_tuning, perceiver, latent_cot, diffusion): the alpha options and
 * the closing RMS-normalise x alpha (STUDY.md "Bridges": all end with it), parameter creation with
 * one Philox stream per parameter, input checks, masked mean-pool, last-non-pad-token selection and
 * repetition over the M soft tokens.
 *
 * Static functions in a header on purpose: each bridge stays one self-contained .so that links
 * nothing of the host (the loadable-extension rule), while the shared logic is written once.
 * Include after <telepathy/bridge.h> and <telepathy/plugin.h>, in a file that has
 * `#define TP_PLUGIN` and `TP_PLUGIN_DEFINE_API`. */
#ifndef TP_BRIDGE_UTIL_H
#define TP_BRIDGE_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BU_API tp_plugin_api_
/* not every bridge uses every helper */
#define BU_STATIC  static __attribute__((unused))
#define BU_RMS_EPS 1e-8f /* the study: sqrt(mean(x^2) + 1e-8) */

/* The two alpha options, spelled as in perceiver.c. */
#define BU_ALPHA_OPTIONS                                                                           \
    {"alpha_init",                                                                                 \
     TP_OPT_FLOAT,                                                                                 \
     "calibrated",                                                                                 \
     1,                                                                                            \
     0,                                                                                            \
     "calibrated",                                                                                 \
     "output scale: 'calibrated' (median receiver embedding row RMS) or a number"},                \
    {                                                                                              \
        "alpha_learnable", TP_OPT_BOOL, "true", 1, 0, NULL, "train the output scale alpha"         \
    }

/* Parameter factory: every parameter draws from its own stream (base + creation index) of
 * dims->seed, so adding an option never changes another parameter's initial values. */
typedef struct bu_init {
    const char *bridge; /* for messages */
    uint64_t seed, stream_base;
    int n;
} bu_init;

/* The status an allocation-type failure left in err. */
BU_STATIC tp_status bu_code(const tp_err *err) {
    return err && err->code ? err->code : TP_ENOMEM;
}

typedef enum { BU_ZERO, BU_VALUE, BU_NORMAL, BU_UNIFORM } bu_how;

/* how = BU_VALUE: fill with a; BU_NORMAL: N(0, a^2); BU_UNIFORM: U(-a, a). */
BU_STATIC tp_tensor *bu_param(bu_init *in, tp_params *ps, const char *name, int ndim,
                              const int64_t *shape, bu_how how, float a, tp_err *err) {
    tp_tensor *t = BU_API->param_add(ps, name, ndim, shape, err);
    if (!t) return NULL;
    tp_rng rng = {in->seed, in->stream_base + (uint64_t)in->n++, 0};
    tp_status st = TP_OK;
    switch (how) {
    case BU_ZERO:
        st = tp_fill_value(t, 0.0);
        break;
    case BU_VALUE:
        st = tp_fill_value(t, a);
        break;
    case BU_NORMAL:
        st = tp_fill_normal(t, 0.0f, a, &rng);
        break;
    case BU_UNIFORM:
        st = tp_fill_uniform(t, -a, a, &rng);
        break;
    }
    if (st != TP_OK) {
        BU_API->errf(err, st, "%s: initialising parameter '%s' failed", in->bridge, name);
        return NULL;
    }
    return t;
}

/* nn.Linear(in, out) with PyTorch's default init (weight and bias U(+-1/sqrt(in))). */
BU_STATIC tp_status bu_linear(bu_init *in, tp_params *ps, const char *prefix, int64_t n_in,
                              int64_t n_out, tp_tensor **w, tp_tensor **b, tp_err *err) {
    char name[64];
    float bound = 1.0f / sqrtf((float)n_in);
    snprintf(name, sizeof name, "%s.weight", prefix);
    *w = bu_param(in, ps, name, TP_DIMS(n_out, n_in), BU_UNIFORM, bound, err);
    if (!*w) return bu_code(err);
    snprintf(name, sizeof name, "%s.bias", prefix);
    *b = bu_param(in, ps, name, TP_DIMS(n_out), BU_UNIFORM, bound, err);
    if (!*b) return bu_code(err);
    return TP_OK;
}

/* The output scale: a parameter "alpha" [1] (alpha_learnable) or a fixed number. */
typedef struct bu_alpha {
    tp_tensor *p; /* NULL when fixed */
    float a0;
} bu_alpha;

BU_STATIC tp_status bu_dims_ok(const char *bridge, const tp_bridge_dims *dims, tp_err *err) {
    if (!dims || dims->d_sender <= 0 || dims->d_receiver <= 0)
        return BU_API->errf(err, TP_EINVAL,
                            "%s: sender width %d / receiver width %d: both must be > 0", bridge,
                            dims ? dims->d_sender : 0, dims ? dims->d_receiver : 0);
    return TP_OK;
}

/* Reads alpha_init ("calibrated" = dims->recv_embed_rms, or a finite number) into *a0. */
BU_STATIC tp_status bu_alpha_parse(const char *bridge, const tp_options *o,
                                   const tp_bridge_dims *dims, float *a0, tp_err *err) {
    double a = BU_API->opt_float(o, "alpha_init");
    if (isnan(a)) {
        const char *word = BU_API->opt_string(o, "alpha_init");
        if (!word || strcmp(word, "calibrated") != 0)
            return BU_API->errf(err, TP_EINVAL,
                                "%s: option alpha_init = '%s': expected 'calibrated' or a number",
                                bridge, word ? word : "(null)");
        a = dims->recv_embed_rms;
        if (!(a > 0) || !isfinite(a))
            return BU_API->errf(err, TP_EINVAL,
                                "%s: alpha_init = calibrated needs the receiver embedding RMS, "
                                "but dims.recv_embed_rms = %g; give alpha_init a number instead",
                                bridge, a);
    } else if (!isfinite(a)) {
        return BU_API->errf(err, TP_EINVAL, "%s: option alpha_init = %g: expected a finite number",
                            bridge, a);
    }
    *a0 = (float)a;
    return TP_OK;
}

/* When alpha_learnable, registers the parameter "alpha" [1] = al->a0 (al->a0 already parsed);
 * for bridges that must read the options before creating any parameter. */
BU_STATIC tp_status bu_alpha_param(bu_init *in, const tp_options *o, tp_params *ps, bu_alpha *al,
                                   tp_err *err) {
    al->p = NULL;
    if (BU_API->opt_bool(o, "alpha_learnable")) {
        al->p = bu_param(in, ps, "alpha", TP_DIMS(1), BU_VALUE, al->a0, err);
        if (!al->p) return bu_code(err);
    }
    return TP_OK;
}

/* Reads alpha_init / alpha_learnable (same rules and messages as perceiver.c) and, when
 * learnable, registers the parameter "alpha". */
BU_STATIC tp_status bu_alpha_make(bu_init *in, const tp_options *o, const tp_bridge_dims *dims,
                                  tp_params *ps, bu_alpha *al, tp_err *err) {
    memset(al, 0, sizeof *al);
    TP_TRY(bu_alpha_parse(in->bridge, o, dims, &al->a0, err));
    return bu_alpha_param(in, o, ps, al, err);
}

/* RMSNorm(x) * alpha over the last dim with the given epsilon: each soft token gets RMS
 * |alpha|. */
BU_STATIC tp_tensor *bu_alpha_apply_eps(tp_ctx *c, const bu_alpha *al, tp_tensor *x, float eps) {
    tp_tensor *alpha = al->p ? al->p : tp_full(c, TP_F32, TP_DIMS(1), al->a0);
    return tp_mul(c, tp_rmsnorm(c, x, NULL, eps), alpha);
}

/* RMSNorm(x) * alpha over the last dim: each soft token gets RMS |alpha|. */
BU_STATIC tp_tensor *bu_alpha_apply(tp_ctx *c, const bu_alpha *al, tp_tensor *x) {
    return bu_alpha_apply_eps(c, al, x, BU_RMS_EPS);
}

BU_STATIC void bu_metric(tp_bridge_out *out, const char *name, double v) {
    if (out->n_metrics >= TP_BRIDGE_MAX_AUX) return;
    out->metric_name[out->n_metrics] = name;
    out->metric[out->n_metrics++] = v;
}

BU_STATIC void bu_alpha_metric(const bu_alpha *al, tp_bridge_out *out) {
    bu_metric(out, "alpha", al->p ? tp_item(al->p, 0) : al->a0);
}

BU_STATIC void bu_aux(tp_bridge_out *out, const char *name, tp_tensor *t) {
    if (out->n_aux >= TP_BRIDGE_MAX_AUX) return;
    out->aux_name[out->n_aux] = name;
    out->aux[out->n_aux++] = t;
}

/* h [B,T,d_s], mask [B,T] f32 or NULL. */
BU_STATIC tp_status bu_check_input(const char *bridge, int d_s, const tp_tensor *h,
                                   const tp_tensor *mask, tp_err *err) {
    if (!h || h->ndim != 3 || h->shape[2] != d_s)
        return BU_API->errf(err, TP_ESHAPE,
                            "%s: sender states must be [B,T,%d]; got %s with ndim %d (last dim "
                            "%lld)",
                            bridge, d_s, h ? "a tensor" : "no tensor", h ? h->ndim : 0,
                            h && h->ndim > 0 ? (long long)h->shape[h->ndim - 1] : 0LL);
    if (mask && (mask->ndim != 2 || mask->shape[0] != h->shape[0] || mask->shape[1] != h->shape[1]))
        return BU_API->errf(err, TP_ESHAPE, "%s: sender mask must be [B,T] = [%lld,%lld]", bridge,
                            (long long)h->shape[0], (long long)h->shape[1]);
    if (mask && mask->dtype != TP_F32)
        return BU_API->errf(err, TP_EDTYPE, "%s: sender mask must be f32 (1 = token)", bridge);
    return TP_OK;
}

/* The error of a forward that produced NULL somewhere. */
BU_STATIC tp_status bu_fail(const char *bridge, tp_ctx *c, const char *what, tp_err *err) {
    tp_status st = tp_ctx_status(c);
    return BU_API->errf(err, st ? st : TP_EINVAL, "%s: %s failed: %s", bridge, what,
                        tp_ctx_error(c));
}

/* bf16 sender states (GPU path) meet f32 bridge weights. */
BU_STATIC tp_tensor *bu_f32(tp_ctx *c, tp_tensor *h) {
    return h && h->dtype != TP_F32 ? tp_cast(c, h, TP_F32) : h;
}

/* v [B,D] -> [B,M,D], the same vector in each of the M slots (grads sum back onto v). */
BU_STATIC tp_tensor *bu_repeat(tp_ctx *c, tp_tensor *v, int64_t m) {
    if (!v) return NULL;
    int64_t b = v->shape[0], d = v->shape[1];
    return tp_add(c, tp_zeros(c, TP_F32, TP_DIMS(b, m, d)), tp_reshape(c, v, TP_DIMS(b, 1, d)));
}

/* p [M,D] parameter -> [B,M,D]. */
BU_STATIC tp_tensor *bu_broadcast(tp_ctx *c, tp_tensor *p, int64_t b) {
    return tp_add(c, tp_zeros(c, TP_F32, TP_DIMS(b, p->shape[0], p->shape[1])), p);
}

/* Masked mean over real tokens: h [B,T,D] -> [B,D]; an example without tokens is an error
 * (its mean is undefined), not a silent zero. */
BU_STATIC tp_tensor *bu_mean_pool(const char *bridge, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                                  tp_err *err) {
    if (mask) {
        int64_t b = mask->shape[0], t = mask->shape[1];
        float *m = malloc((size_t)(b * t) * sizeof *m);
        if (!m) {
            BU_API->errf(err, TP_ENOMEM, "%s: out of memory", bridge);
            return NULL;
        }
        tp_status st = tp_to_f32_buffer(mask, m, err);
        for (int64_t i = 0; i < b && st == TP_OK; i++) {
            double n = 0;
            for (int64_t j = 0; j < t; j++) n += m[i * t + j];
            if (!(n > 0))
                st = BU_API->errf(err, TP_EINVAL,
                                  "%s: example %lld of the batch has no tokens (mask all 0)",
                                  bridge, (long long)i);
        }
        free(m);
        if (st != TP_OK) return NULL;
    }
    return tp_pool(c, h, mask, TP_POOL_MEAN);
}

/* The state of each example's last non-pad token (the highest t with mask 1; T-1 without a
 * mask): h [B,T,D] -> [B,D]. Selected by a one-hot weighting, so any backend and dtype works. */
BU_STATIC tp_tensor *bu_last_token(const char *bridge, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                                   tp_err *err) {
    int64_t b = h->shape[0], t = h->shape[1];
    float *m = calloc((size_t)(b * t), sizeof *m);
    float *sel = calloc((size_t)(b * t), sizeof *sel);
    tp_status st = TP_OK;
    if (!m || !sel) st = BU_API->errf(err, TP_ENOMEM, "%s: out of memory", bridge);
    if (st == TP_OK && mask) st = tp_to_f32_buffer(mask, m, err);
    for (int64_t i = 0; i < b && st == TP_OK; i++) {
        int64_t last = -1;
        for (int64_t j = 0; j < t; j++)
            if (!mask || m[i * t + j] != 0.0f) last = j;
        if (last < 0)
            st = BU_API->errf(err, TP_EINVAL,
                              "%s: example %lld of the batch has no tokens (mask all 0)", bridge,
                              (long long)i);
        else
            sel[i * t + last] = 1.0f;
    }
    tp_tensor *out = NULL;
    if (st == TP_OK) {
        tp_tensor *w = tp_from_f32(c, TP_DIMS(b, t), sel);
        out = tp_pool(c, h, w, TP_POOL_SUM);
        if (!out) bu_fail(bridge, c, "last-token selection", err);
    }
    free(m);
    free(sel);
    return out;
}

#endif
