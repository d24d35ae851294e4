/* baseline_opts.h — the settings of the text baselines that are more than a prompt
 * (text_relay, fewshot), read from the run spec's `baseline_options` table and written into the
 * canonical config, so every one of them is part of the run's identity:
 *
 *   text_relay   labels_in_prompt (true): the receiver reads the task's direct prompt (with the
 *                  label list) around the summary; false = "{summary}\n<receiver primer>", the
 *                  paper's weaker relay (41.3 / 1.0 / 4.0)
 *                summary_tokens (50): greedy new tokens the sender writes
 *                sender_prompt: the sender's instruction with {text}; an override of the
 *                  task's relay_sender_template (task.h, ABI 1.2), which tasks built for ABI
 *                  1.1 lack (then TP_RELAY_SENDER_PROMPT below)
 *   fewshot      k (5): examples per class, balanced, drawn from the train split with the run
 *                  `seed` (42), which is therefore part of a fewshot run's identity
 *
 * The effective sender prompt (override, task template or default) is stored verbatim in the
 * config, so it is part of the identity whichever of the three supplied it, and a run whose
 * prompt did not change keeps its hash; replay passes the stored prompt back as the override,
 * so a replay reads the prompt the original run read even if the task's template changed. */
#ifndef TP_RUN_BASELINE_OPTS_H
#define TP_RUN_BASELINE_OPTS_H

#include <jansson.h>
#include <stdint.h>

#include "telepathy/status.h"
#include "telepathy/task.h"

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
 * (or 42). Unknown keys are errors naming the key and the valid ones. sender_prompt stays NULL
 * unless the spec sets it: tp_baseline_opts_apply_task fills it once the task is open. */
tp_status tp_baseline_opts_resolve(const char *kind_name, const json_t *opts, uint64_t seed,
                                   tp_baseline_opts *out, tp_err *err);
/* The task's share of the options (text_relay only): sender_prompt, unless the spec set it, =
 * info->relay_sender_template, else TP_RELAY_SENDER_PROMPT. A task template without {text} is
 * an error naming the task, as is a relay_receiver_template without it. */
tp_status tp_baseline_opts_apply_task(const char *kind_name, tp_baseline_opts *o,
                                      const char *task_name, const tp_task_info *info, tp_err *err);
/* The receiver's relay prompt with the label list: the task's relay_receiver_template, else its
 * direct_template (NULL if it has neither). */
const char *tp_relay_receiver_template_of(const tp_task_info *info);
/* The canonical JSON part for the kind (NULL for kinds without options). */
json_t *tp_baseline_opts_json(const char *kind_name, const tp_baseline_opts *o);
void tp_baseline_opts_free(tp_baseline_opts *o);

#endif
