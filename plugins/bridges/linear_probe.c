/* linear_probe.c — the linear-probe baseline (STUDY.md "Bridges"/"Baselines": a classifier on
 * the sender's states, no receiver; study: layer 16, first 5,000 train rows, sklearn
 * LogisticRegression; SST-2 92.1, AG News 86.8, TREC 95.0).
 *
 * What it adds: a bridge named "linear_probe" that makes no soft tokens:
 *   v      = h[b, last non-pad token]  (pool = last; pool = mean: masked mean)   [B,d_s]
 *   v      = v / ||v||_2                                     (l2_normalize = true)
 *   logits = v W^T + b                                       [B,C]   W [C,d_s], zero init
 * returned as the aux output "class_logits" (f32 [B,C], C = dims->n_classes). Trained with a
 * cross-entropy over those logits this is multinomial logistic regression (a convex problem;
 * zero init as sklearn's solver starts), optimised by the tensor core like any bridge.
 *
 * Host contract (bridge.h, ABI 1.1): flags() = TP_BRIDGE_CLASSIFIER and num_tokens() = 0, so
 * the host skips the receiver; it fills dims.n_classes from the task's labels, feeds
 * class_logits to the loss as first_logits with the class labels (loss 'ce' mode=first_token),
 * and predicts argmax(class_logits). out->soft stays NULL.
 *
 * Options: pool (last | mean), l2_normalize, and the normalizer options (normalizer.h; the
 * study standardised features before its probe in some scripts: normalizer = whiten).
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdint.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "normalizer.h"

#define LP_NAME        "linear_probe"
#define LP_STREAM_BASE 0x6c70726f00000000ull /* "lpro" */
#define LP_L2_EPS      1e-12f

static const tp_option_spec lp_options[] = {
    {"pool", TP_OPT_ENUM, "last", 1, 0, "last|mean",
     "which sender state: the last non-pad token's (study) or the masked mean"},
    {"l2_normalize", TP_OPT_BOOL, "true", 1, 0, NULL, "L2-normalise the feature vector"},
    NZ_OPTIONS,
};

typedef struct lp_state {
    int d_s, n_classes, mean_pool, l2;
    tp_tensor *w, *b;
    nz_state nz;
} lp_state;

static void lp_destroy(void *state) {
    lp_state *s = state;
    if (!s) return;
    nz_free(&s->nz);
    free(s);
}

static tp_status lp_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(LP_NAME, dims, err));
    if (dims->n_classes < 2)
        return BU_API->errf(err, TP_EINVAL,
                            LP_NAME
                            ": the task has %d classes (dims.n_classes); the probe is a "
                            "classifier and needs a classification task with >= 2 labels (the "
                            "host sets n_classes from the task's labels)",
                            dims->n_classes);
    lp_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, LP_NAME ": out of memory");
    s->d_s = dims->d_sender;
    s->n_classes = dims->n_classes;
    const char *pool = BU_API->opt_string(o, "pool");
    s->mean_pool = pool && !strcmp(pool, "mean");
    s->l2 = BU_API->opt_bool(o, "l2_normalize");
    bu_init in = {LP_NAME, dims->seed, LP_STREAM_BASE, 0};
    tp_status st = TP_OK;
    s->w = bu_param(&in, ps, "weight", TP_DIMS(s->n_classes, s->d_s), BU_ZERO, 0, err);
    if (!s->w) st = bu_code(err);
    if (st == TP_OK) {
        s->b = bu_param(&in, ps, "bias", TP_DIMS(s->n_classes), BU_ZERO, 0, err);
        if (!s->b) st = bu_code(err);
    }
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        lp_destroy(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status lp_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    lp_state *s = state;
    (void)training;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(LP_NAME, s->d_s, h, mask, err));
    tp_tensor *x = nz_apply(&s->nz, c, bu_f32(c, h), err);
    if (x)
        x = s->mean_pool ? bu_mean_pool(LP_NAME, c, x, mask, err)
                         : bu_last_token(LP_NAME, c, x, mask, err);
    if (!x) return err->code ? err->code : bu_fail(LP_NAME, c, "forward", err);
    if (s->l2) x = tp_l2_normalize(c, x, LP_L2_EPS);
    tp_tensor *logits = tp_linear(c, x, s->w, s->b);
    if (!logits) return bu_fail(LP_NAME, c, "forward", err);
    bu_aux(out, "class_logits", logits);
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int lp_num_tokens(void *state) {
    (void)state;
    return 0;
}

static uint32_t lp_flags(void *state) {
    (void)state;
    return TP_BRIDGE_CLASSIFIER;
}

static int lp_calibration_examples(void *state) {
    return nz_examples(&((lp_state *)state)->nz);
}

static tp_status lp_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                              tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((lp_state *)state)->nz, c, h, mask, recv_embed, err);
}

static const tp_bridge_vtable lp_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = lp_create,
    .forward = lp_forward,
    .num_tokens = lp_num_tokens,
    .destroy = lp_destroy,
    .flags = lp_flags,
    .calibration_examples = lp_calibration_examples,
    .calibrate = lp_calibrate,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = LP_NAME;
    d->version = "1";
    d->summary = "linear-probe baseline: logistic regression on the sender's L2-normalised "
                 "last-token state; no receiver (flag CLASSIFIER, aux class_logits)";
    d->options = lp_options;
    d->n_options = (int)(sizeof lp_options / sizeof lp_options[0]);
    d->vtable = &lp_vtable;
    d->vtable_size = sizeof lp_vtable;
    (void)err;
    return TP_OK;
}
