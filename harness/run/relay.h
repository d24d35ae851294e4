/* relay.h — the text-relay baseline (STUDY.md "Baselines"): the sender greedily writes a short
 * summary of the example (baseline_options.summary_tokens, 50 by default, from the relay sender
 * prompt: the task's relay_sender_template unless baseline_options.sender_prompt overrides it,
 * see baseline_opts.h), and the receiver classifies that summary alone, scored by the same
 * evaluator as every other run. With labels_in_prompt (default) the receiver reads the task's
 * relay_receiver_template (else its direct prompt; both carry the label list) with the summary
 * in place of {text}; without it "{summary}\n<primer>", which reproduces the paper's weaker
 * relay and is flagged by the fairness check. Both prompts are task data (issue 6). */
#ifndef TP_RUN_RELAY_H
#define TP_RUN_RELAY_H

#include "run/evaluator.h"

typedef struct tp_relay tp_relay;

tp_status tp_relay_new(tp_relay **out, tp_run_cfg *cfg, tp_err *err);
void tp_relay_free(tp_relay *r);
void tp_relay_scorer(tp_relay *r, tp_scorer *s);
tp_ctx *tp_relay_ctx(tp_relay *r);

/* The receiver's prompt template ({text} = the summary); owned by r. */
const char *tp_relay_receiver_template(const tp_relay *r);
/* The summaries of the last scored batch (n rows); owned by r, valid until the next batch. */
int tp_relay_last_summaries(const tp_relay *r, const char *const **out);
/* The summary written for example x in any batch scored so far (the scorer's output hook, so
 * every prediction row keeps it); NULL if x was not summarised. Owned by r. */
const char *tp_relay_summary_of(const tp_relay *r, const tp_example *x);

/* Wall time of the sender's summary generation, per batch: mean and sample std in ms (NaN when
 * fewer than 2 batches), and the batch count and largest batch size. Returns the batch count. */
int tp_relay_latency(const tp_relay *r, double *mean_ms, double *std_ms, int *max_batch);

#endif
