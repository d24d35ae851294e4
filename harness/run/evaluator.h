/* evaluator.h — scoring a classification task through any prefix (bridge soft tokens or a text
 * prompt) with one of the study's three schemes, named in every result:
 *   first_token  argmax over the first receiver token of each label word at the answer position
 *   generate     greedy decoding of max_new_tokens, lower-cased, the label word (or synonym) that
 *                occurs first as a whole word; no label found = wrong (prediction "")
 *   loglik       the label whose tokens have the highest summed log-likelihood after the prefix
 * plus the seeded stratified evaluation subset and the Wilson interval. */
#ifndef TP_RUN_EVALUATOR_H
#define TP_RUN_EVALUATOR_H

#include "run/receiver_input.h"
#include "run/run_config.h"

/* Builds the prefix of B examples in ctx. */
typedef tp_status (*tp_prefix_fn)(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                                  tp_prefix *out, tp_err *err);

/* A classifier bridge's class logits [B,C] (f32, in ctx) for B examples. */
typedef tp_status (*tp_classify_fn)(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                                    tp_tensor **logits, tp_err *err);

typedef struct tp_scorer {
    tp_model *m; /* the model that answers */
    const tp_label_set *ls;
    const tp_task_info *info;
    tp_scoring scoring;
    int max_new_tokens;
    int batch;
    int max_len;
    tp_prefix_fn prefix;
    void *user;
    /* set for classifier bridges: predictions are argmax of these logits, scheme "classifier" */
    tp_classify_fn classify;
    /* optional: the intermediate text behind x's prediction, recorded as predictions.output
     * (text_relay: the sender's summary the receiver read); NULL or a NULL return = none. Valid
     * until the scorer's owner is freed. */
    const char *(*output)(void *user, const tp_example *x);
} tp_scorer;

/* The scheme name a scorer records: "classifier" or the scoring scheme's. */
const char *tp_scorer_scheme(const tp_scorer *s);

typedef struct tp_eval_out {
    int n;
    int *pred;     /* class index, -1 = no label found (generate) */
    double *score; /* first_token: restricted softmax prob; loglik: summed log-lik; else NaN */
    char **text;   /* generate: the decoded continuation; NULL otherwise */
} tp_eval_out;

/* Scores rows[0..n) in batches; ctx is reset before each batch and grad is off throughout. */
tp_status tp_score(const tp_scorer *s, tp_ctx *ctx, const tp_example *const *rows, int n,
                   tp_eval_out *out, tp_err *err);
void tp_eval_out_free(tp_eval_out *o);

/* The class whose label word or synonym occurs first in text (lower-cased, whole words), or -1. */
int tp_match_label(const tp_task_info *info, const char *text);

/* Seeded stratified subset of n rows (n = 0 or n >= ds->n: every row), in dataset order.
 * Per class, quota = n * n_c / N by largest remainder (ties to the lower class index); rows are
 * drawn by a Philox Fisher-Yates shuffle (stream = class index). *idx is malloc'd. */
tp_status tp_eval_subset(const tp_dataset *ds, int n_labels, int n, uint64_t seed, int64_t **idx,
                         int *count, tp_err *err);

/* Wilson score interval at 95% for k successes of n (n = 0: [0, 1]). */
void tp_wilson95(int64_t k, int64_t n, double *lo, double *hi);

#endif
