/* baseline_opts.h — the settings of the text baselines that are more than a prompt
 * (text_relay, fewshot), read from the run spec's `baseline_options` table and written into the
 * canonical config, so every one of them is part of the run's identity:
 *
 *   text_relay   labels_in_prompt (true): the receiver reads the task's direct prompt (with the
 *                  label list) around the summary; false = "{summary}\n<receiver primer>", the
 *                  paper's weaker relay (41.3 / 1.0 / 4.0)
 *                summary_tokens (50): greedy new tokens the sender writes
 *                sender_prompt: the sender's instruction with {text} (default below)
 *   fewshot      k (5): examples per class, balanced, drawn from the train split with the run
 *                  `seed` (42), which is therefore part of a fewshot run's identity
 *
 * The relay's sender prompt is harness data rather than task data (task.h has no member for
 * it); it is stored verbatim in the config. */
#ifndef TP_RUN_BASELINE_OPTS_H
#define TP_RUN_BASELINE_OPTS_H

#include <jansson.h>
#include <stdint.h>

#include "telepathy/status.h"

#define TP_RELAY_SENDER_PROMPT                                                                     \
    "Summarize the following text in one sentence.\nText: {text}\nSummary:"

typedef struct tp_baseline_opts {
    int labels_in_prompt;
    int summary_tokens;
    char *sender_prompt; /* malloc'd */
    int k;
    uint64_t seed;
} tp_baseline_opts;

/* kind_name: "text_relay" | "fewshot" (others: options must be absent). seed: the spec's seed
 * (or 42). Unknown keys are errors naming the key and the valid ones. */
tp_status tp_baseline_opts_resolve(const char *kind_name, const json_t *opts, uint64_t seed,
                                   tp_baseline_opts *out, tp_err *err);
/* The canonical JSON part for the kind (NULL for kinds without options). */
json_t *tp_baseline_opts_json(const char *kind_name, const tp_baseline_opts *o);
void tp_baseline_opts_free(tp_baseline_opts *o);

#endif
