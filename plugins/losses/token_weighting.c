/* token_weighting.c — task cross-entropy with the first label tokens weighted up, the study's
 * GSM8K phase 11 ("first-10-token x100 weighting", STUDY.md "Losses").
 *
 * What it adds: a loss named "token_weighting" over the receiver logits at the label positions
 * in->logits [N,V] and their targets in->targets i32 [N] (-100 = ignore), laid out as the
 * trainer builds them: B rows of L = N/B positions each, row b holding example b's label
 * sequence followed by ignored padding (B is in->labels' length). In each row, the first k
 * targets that are not ignored get weight w, the later ones weight 1:
 *   nll_i = -log softmax(logits[i])[targets[i]]
 *   normalize = count (default):  loss = sum_i w_i nll_i / #{i : targets[i] != -100}
 *   normalize = weights:          loss = sum_i w_i nll_i / sum_i w_i   (a weighted mean)
 * `count` keeps the study's "x100" literal (the first tokens' terms are 100 times larger);
 * `weights` keeps the loss on the scale of a plain CE. No target at all gives 0. With w = 1
 * both equal loss 'ce' mode=sequence. Computed exactly as two tp_cross_entropy means (the first
 * k tokens, the rest), so the gradient is the core's.
 * needs() = TP_NEED_LOGITS.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/loss.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#define API       tp_plugin_api_
#define TW_IGNORE (-100)

static const tp_option_spec tw_options[] = {
    {"k", TP_OPT_INT, "10", 0, 1000000, NULL, "how many leading label tokens of each row weigh w"},
    {"w", TP_OPT_FLOAT, "100", 0, 1e9, NULL, "weight of the first k label tokens"},
    {"normalize", TP_OPT_ENUM, "count", 1, 0, "count|weights",
     "count: divide by the number of label tokens; weights: divide by the sum of weights"},
};

typedef struct tw_state {
    int k;
    float w;
    int by_weights;
} tw_state;

static tp_status tw_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    (void)dims;
    (void)ps;
    *state = NULL;
    int64_t k = API->opt_int(o, "k");
    double w = API->opt_float(o, "w");
    const char *norm = API->opt_string(o, "normalize");
    if (k < 0 || k > 1000000)
        return API->errf(err, TP_EINVAL, "token_weighting: option k = %lld: expected 0..1000000",
                         (long long)k);
    if (!(w >= 0) || !isfinite(w))
        return API->errf(err, TP_EINVAL, "token_weighting: option w = %g: expected a number >= 0",
                         w);
    int by_weights;
    if (norm && !strcmp(norm, "count"))
        by_weights = 0;
    else if (norm && !strcmp(norm, "weights"))
        by_weights = 1;
    else
        return API->errf(err, TP_EINVAL,
                         "token_weighting: option normalize = '%s': expected count|weights",
                         norm ? norm : "(null)");
    tw_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "token_weighting: out of memory");
    s->k = (int)k;
    s->w = (float)w;
    s->by_weights = by_weights;
    *state = s;
    return TP_OK;
}

static uint32_t tw_needs(void *state) {
    (void)state;
    return TP_NEED_LOGITS;
}

static tp_status tw_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    tw_state *s = state;
    *loss = NULL;
    tp_tensor *logits = in->logits, *targets = in->targets;
    if (!logits || !targets)
        return API->errf(err, TP_EINVAL,
                         "token_weighting: the trainer gave no %s (this loss reads logits and "
                         "targets)",
                         !logits ? "logits" : "targets");
    if (!in->labels)
        return API->errf(err, TP_EINVAL,
                         "token_weighting: the trainer gave no labels, so the batch size (rows "
                         "of the label positions) is unknown");
    if (logits->ndim != 2)
        return API->errf(err, TP_ESHAPE, "token_weighting: logits must be 2-D [N,V]; got %d dims",
                         logits->ndim);
    if (targets->dtype != TP_I32)
        return API->errf(err, TP_EDTYPE, "token_weighting: targets must be i32");
    int64_t n = logits->shape[0], b = in->labels->shape[0];
    if (targets->ndim != 1 || targets->shape[0] != n)
        return API->errf(err, TP_ESHAPE, "token_weighting: targets must be [%lld] to match logits",
                         (long long)n);
    if (b < 1 || n % b != 0)
        return API->errf(err, TP_ESHAPE,
                         "token_weighting: %lld label positions do not split into %lld rows of "
                         "equal length",
                         (long long)n, (long long)b);
    int64_t l = n / b;
    int32_t *tf = malloc((size_t)(n > 0 ? n : 1) * sizeof *tf);
    int32_t *tr = malloc((size_t)(n > 0 ? n : 1) * sizeof *tr);
    if (!tf || !tr) {
        free(tf);
        free(tr);
        return API->errf(err, TP_ENOMEM, "token_weighting: out of memory");
    }
    int64_t n_first = 0, n_rest = 0;
    for (int64_t r = 0; r < b; r++) {
        int64_t seen = 0;
        for (int64_t j = 0; j < l; j++) {
            int64_t i = r * l + j;
            int32_t t = (int32_t)tp_item(targets, i);
            tf[i] = tr[i] = TW_IGNORE;
            if (t == TW_IGNORE) continue;
            if (seen++ < s->k) {
                tf[i] = t;
                n_first++;
            } else {
                tr[i] = t;
                n_rest++;
            }
        }
    }
    tp_tensor *t_first = tp_from_i32(c, TP_DIMS(n), tf);
    tp_tensor *t_rest = tp_from_i32(c, TP_DIMS(n), tr);
    free(tf);
    free(tr);
    double denom = s->by_weights ? (double)s->w * (double)n_first + (double)n_rest
                                 : (double)(n_first + n_rest);
    tp_tensor *l_;
    if (!(denom > 0)) {
        /* nothing to weigh (or every weight 0): 0, still on the tape so backward runs */
        l_ = tp_scale(c, tp_cross_entropy(c, logits, t_first, TW_IGNORE, 0.0f), 0.0f);
    } else {
        /* each CE is a mean over its own positions: scale back to sums */
        tp_tensor *lf = tp_cross_entropy(c, logits, t_first, TW_IGNORE, 0.0f);
        tp_tensor *lr = tp_cross_entropy(c, logits, t_rest, TW_IGNORE, 0.0f);
        l_ = tp_add(c, tp_scale(c, lf, (float)((double)s->w * (double)n_first / denom)),
                    tp_scale(c, lr, (float)((double)n_rest / denom)));
    }
    if (!l_) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "token_weighting: %s", tp_ctx_error(c));
    }
    *loss = l_;
    return TP_OK;
}

static void tw_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable tw_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = tw_create,
    .needs = tw_needs,
    .compute = tw_compute,
    .destroy = tw_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "token_weighting";
    d->version = "1";
    d->summary = "label-token CE with the first k tokens of each answer weighted x w";
    d->options = tw_options;
    d->n_options = (int)(sizeof tw_options / sizeof tw_options[0]);
    d->vtable = &tw_vtable;
    d->vtable_size = sizeof tw_vtable;
    (void)err;
    return TP_OK;
}
