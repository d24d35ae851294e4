/* baselines.h — the text baselines on the same scoring path as the bridge (DESIGN.md
 * "Baselines reuse it"): sender_direct and receiver_direct read the task's direct prompt (the
 * example's text with the label list, task data) with their own tokenizer and are scored with
 * the run's scheme, so every number in a table comes from the same evaluator. */
#ifndef TP_RUN_BASELINES_H
#define TP_RUN_BASELINES_H

#include "run/evaluator.h"

typedef struct tp_baseline tp_baseline;

tp_status tp_baseline_new(tp_baseline **out, tp_run_cfg *cfg, tp_err *err);
void tp_baseline_free(tp_baseline *b);
void tp_baseline_scorer(tp_baseline *b, tp_scorer *s);
tp_ctx *tp_baseline_ctx(tp_baseline *b);

#endif
