/* fewshot.h — the k-shot baseline (STUDY.md "Baselines", exp009's 5-shot): k solved examples of
 * every class, drawn from the train split (balanced, seeded with the run seed, in a seeded order),
 * written as the task's direct prompt followed by " <label word>" and a blank line, then the
 * example's own direct prompt; the receiver model answers, scored like every other run. */
#ifndef TP_RUN_FEWSHOT_H
#define TP_RUN_FEWSHOT_H

#include "run/evaluator.h"

typedef struct tp_fewshot tp_fewshot;

tp_status tp_fewshot_new(tp_fewshot **out, tp_run_cfg *cfg, tp_err *err);
void tp_fewshot_free(tp_fewshot *f);
void tp_fewshot_scorer(tp_fewshot *f, tp_scorer *s);
tp_ctx *tp_fewshot_ctx(tp_fewshot *f);

/* The solved examples in prompt order: train-split ids and labels (n = k * classes), and the
 * text that precedes every query; owned by f. */
int tp_fewshot_shots(const tp_fewshot *f, const int64_t **ids, const int **labels);
const char *tp_fewshot_head(const tp_fewshot *f);

#endif
