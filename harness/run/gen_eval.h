/* gen_eval.h — evaluating generation tasks (gsm8k, passkey): the scorer's greedy continuation of
 * each row (scheme generate), the task's extract() on it, and per row
 *   exact     extracted answer == the gold answer (the gold passed through extract() too, so a
 *             worked solution as gold compares by its final number); no answer found = wrong
 *   digits    the fraction of the gold answer's characters matched position by position by the
 *             extracted answer (passkey's "digit accuracy"; a missing character is wrong)
 * Recorded as result rows (split eval, scheme generate): `exact_match` (Wilson 95%), `accuracy`
 * (the same value, so every run has an accuracy row), `digit_accuracy` (mean over rows, no
 * interval); one prediction row per example with the extracted answer as prediction and the
 * row's digit accuracy as score. */
#ifndef TP_RUN_GEN_EVAL_H
#define TP_RUN_GEN_EVAL_H

#include "run/evaluator.h"
#include "store/store.h"

/* exact (0/1) and digit accuracy of pred against gold (both already extracted). */
void tp_answer_compare(const char *pred, const char *gold, int *exact, double *digits);

/* A seeded uniform subset of n rows (n = 0 or n >= ds->n: every row), in dataset order: the
 * evaluation subset of a task without classes. *idx malloc'd. */
tp_status tp_gen_subset(const tp_dataset *ds, int n, uint64_t seed, int64_t **idx, int *count,
                        tp_err *err);

/* Stores sc->output of each row (if the scorer has the hook) as predictions.output of the rows
 * (run_id, "eval", id) already recorded: the text relay's summaries. */
tp_status tp_eval_record_outputs(tp_store *store, int64_t run_id, const tp_scorer *sc,
                                 const tp_example *const *rows, int n, tp_err *err);

/* Scores rows[0..n) with sc (which must use generate scoring), records predictions and results
 * for run_id in store (NULL = nothing recorded) and fills res (accuracy = exact match). */
tp_status tp_gen_evaluate(const tp_run_cfg *cfg, const tp_scorer *sc, tp_ctx *ctx,
                          const tp_example *const *rows, int n, tp_store *store, int64_t run_id,
                          tp_run_result *res, tp_err *err);

#endif
