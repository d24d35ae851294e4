/* diversity.c — the batch-diversity loss that kept the study's continuous bridges from mode
 * collapse (STUDY.md "Losses": weight 0.1; ablation lambda 0 -> 83.5, 0.1 -> 92.0).
 *
 * What it adds: a loss named "diversity" over the soft tokens in->soft [B,M,D], with option
 * form =
 *   cosine   what the study's code computed (train_telepathy_sst2.py, "batch_div_loss"): flatten
 *            each example's soft-token set to f_b in R^(M*D), S = cosine-similarity matrix [B,B],
 *            loss = mean of the B(B-1) off-diagonal entries of S. Lower = more diverse. A batch
 *            of one has no pairs: the loss is 0 (as in the study's code).
 *   entropy  the paper's -lambda*H(zbar), which no study code computed, defined here as:
 *              u_b  = f_b / RMS(f_b)                     each example's flattened set, RMS 1
 *              ubar = (1/B) sum_b u_b                    batch mean, in R^(M*D)
 *              zbar = softmax(ubar / tau)                a distribution over the M*D coordinates
 *              loss = -H(zbar) = sum_k zbar_k log zbar_k  (nats; lambda is the trainer's weight)
 *            zbar is the normalised geometric mean of the per-example distributions
 *            softmax(u_b / tau). When the examples agree, ubar keeps each example's full spread
 *            and zbar is peaked (low H, high loss); when they differ, their coordinates cancel,
 *            ubar shrinks and zbar flattens towards uniform (H -> log(M*D)). Limits worth
 *            knowing: a batch of one still gets a value (the entropy of its own distribution),
 *            and a set whose coordinates are all equal also gives a uniform zbar, so this form
 *            rewards flatness as well as disagreement — use it as the paper's ablation, not as
 *            a replacement for `cosine`. Option tau (default 1) sharpens (< 1) or softens it.
 * needs() = TP_NEED_SOFT.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/loss.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#define API        tp_plugin_api_
#define DV_COS_EPS 1e-8f
#define DV_RMS_EPS 1e-12f

static const tp_option_spec dv_options[] = {
    {"form", TP_OPT_ENUM, "cosine", 1, 0, "cosine|entropy",
     "cosine: mean off-diagonal cosine of flattened sets; entropy: -H(softmax(batch mean/tau))"},
    {"tau", TP_OPT_FLOAT, "1", 1e-6, 1e6, NULL, "temperature of the entropy form"},
};

typedef struct dv_state {
    int entropy;
    float tau;
} dv_state;

static tp_status dv_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    const char *form = API->opt_string(o, "form");
    int entropy;
    if (form && strcmp(form, "cosine") == 0)
        entropy = 0;
    else if (form && strcmp(form, "entropy") == 0)
        entropy = 1;
    else
        return API->errf(err, TP_EINVAL, "diversity: option form = '%s': expected cosine|entropy",
                         form ? form : "(null)");
    double tau = API->opt_float(o, "tau");
    if (!(tau > 0) || !isfinite(tau))
        return API->errf(err, TP_EINVAL, "diversity: option tau = %g: expected a number > 0", tau);
    dv_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "diversity: out of memory");
    s->entropy = entropy;
    s->tau = (float)tau;
    *state = s;
    return TP_OK;
}

static uint32_t dv_needs(void *state) {
    (void)state;
    return TP_NEED_SOFT;
}

/* Mean off-diagonal cosine similarity of the rows of f [B,K]. */
static tp_tensor *dv_cosine(tp_ctx *c, tp_tensor *f, int64_t b) {
    float *m = malloc((size_t)(b * b) * sizeof *m);
    if (!m) return NULL;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < b; j++) m[i * b + j] = i == j ? 0.0f : 1.0f;
    tp_tensor *off = tp_from_f32(c, TP_DIMS(b, b), m);
    free(m);
    if (!off) return NULL;
    tp_tensor *sim = tp_cosine_matrix(c, f, f, DV_COS_EPS);
    return tp_scale(c, tp_sum_all(c, tp_mul(c, sim, off)), 1.0f / (float)(b * (b - 1)));
}

/* -H(softmax(mean_b(rmsnorm(f_b)) / tau)) for f [B,K]. */
static tp_tensor *dv_entropy(tp_ctx *c, tp_tensor *f, float tau) {
    tp_tensor *u = tp_rmsnorm(c, f, NULL, DV_RMS_EPS);                /* [B,K] */
    tp_tensor *logits = tp_scale(c, tp_mean(c, u, 0, 1), 1.0f / tau); /* [1,K] */
    tp_tensor *p = tp_softmax(c, logits);
    tp_tensor *lp = tp_log_softmax(c, logits);
    return tp_sum_all(c, tp_mul(c, p, lp)); /* sum p log p = -H */
}

static tp_status dv_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    dv_state *s = state;
    *loss = NULL;
    tp_tensor *soft = in->soft;
    if (!soft) return API->errf(err, TP_EINVAL, "diversity: the trainer gave no soft tokens");
    if (soft->ndim != 3)
        return API->errf(err, TP_ESHAPE, "diversity: soft tokens must be [B,M,D]; got %d dims",
                         soft->ndim);
    int64_t b = soft->shape[0], k = soft->shape[1] * soft->shape[2];
    tp_tensor *l;
    if (!s->entropy && b < 2) {
        l = tp_zeros(c, TP_F32, TP_DIMS(1)); /* no pairs: nothing to push apart */
    } else {
        tp_tensor *f = tp_reshape(c, soft, TP_DIMS(b, k));
        l = s->entropy ? dv_entropy(c, f, s->tau) : dv_cosine(c, f, b);
        if (!l && tp_ctx_status(c) == TP_OK)
            return API->errf(err, TP_ENOMEM, "diversity: out of memory (B = %lld)", (long long)b);
    }
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "diversity: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void dv_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable dv_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = dv_create,
    .needs = dv_needs,
    .compute = dv_compute,
    .destroy = dv_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "diversity";
    d->version = "1";
    d->summary = "batch diversity of soft tokens: mean off-diagonal cosine, or -H(zbar)";
    d->options = dv_options;
    d->n_options = (int)(sizeof dv_options / sizeof dv_options[0]);
    d->vtable = &dv_vtable;
    d->vtable_size = sizeof dv_vtable;
    (void)err;
    return TP_OK;
}
