/* run_config.h — a run specification resolved into every setting that can change a result: the
 * C struct the trainer and evaluator read, and its canonical JSON (sorted keys) whose sha256 is
 * the run's identity (config_hash). Defaults that depend on the task (primer, scoring,
 * max_new_tokens) or on the models (layer, max receiver length) are filled in before hashing,
 * so a spec that omits them still hashes everything it runs with. */
#ifndef TP_RUN_RUN_CONFIG_H
#define TP_RUN_RUN_CONFIG_H

#include <jansson.h>

#include "run/baseline_opts.h"
#include "run/run.h"
#include "telepathy/bridge.h"
#include "telepathy/loss.h"
#include "telepathy/task.h"

/* Bumped whenever the trainer / evaluator / receiver-input behaviour changes, so results of
 * different harness behaviour never share a hash. */
#define TP_RUN_FORMAT 1

typedef enum tp_run_kind {
    TP_KIND_BRIDGE = 0,
    TP_KIND_SENDER_DIRECT = 1,
    TP_KIND_RECEIVER_DIRECT = 2,
    TP_KIND_TEXT_RELAY = 3, /* run/relay.h */
    TP_KIND_FEWSHOT = 4,    /* run/fewshot.h */
} tp_run_kind;

typedef enum tp_scoring {
    TP_SCORE_FIRST_TOKEN = 0,
    TP_SCORE_GENERATE = 1,
    TP_SCORE_LOGLIK = 2,
} tp_scoring;

const char *tp_scoring_name(tp_scoring s);
/* "bridge" | "sender_direct" | "receiver_direct" | "text_relay" | "fewshot" */
const char *tp_run_kind_name(tp_run_kind k);

#define TP_RUN_MAX_LOSSES 8

typedef struct tp_run_loss {
    const tp_plugin *plugin;
    tp_options *opts;
    double weight;
} tp_run_loss;

typedef struct tp_run_cfg {
    tp_run_kind kind;
    const tp_run_model *sender, *receiver; /* a baseline uses only one of them */
    const tp_plugin *task;
    tp_options *task_opts;
    const tp_plugin *bridge; /* NULL for baselines */
    tp_options *bridge_opts;
    int n_losses;
    tp_run_loss losses[TP_RUN_MAX_LOSSES];
    int layer;
    int steps, batch, warmup;
    double lr, weight_decay, clip, min_lr_ratio;
    int cosine;
    uint64_t seed;
    int eval_n; /* 0 = full split */
    uint64_t eval_seed;
    int eval_batch;
    tp_scoring scoring;
    int max_new_tokens;
    char *primer;
    int bos, sender_bos;
    int target_question; /* target text of NEEDS_TARGET bridges / TARGET_EMB losses: 0 answer,
                          * 1 question (the example's text) */
    int max_sender_len, max_receiver_len;
    int eval_every, quick_eval_n, checkpoint_every;
    int bf16_params; /* spec "precision" (train.precision): 1 = "bf16", the bridge's trainable
                        params and their AdamW moments stored in bf16 (the study's pure-bf16
                        training; grads f32); 0 = "f32" (default, left out of the hash) */
    tp_baseline_opts bopts; /* text_relay / fewshot settings (baseline_options) */
    /* task data, resolved once (strings owned by the task plugin state) */
    void *task_state;
    tp_task_info info;
    /* identity */
    char *canon; /* canonical JSON */
    char hash[65];
} tp_run_cfg;

/* Resolves spec (and opens the task, reading its info). On failure cfg is freed-safe. */
tp_status tp_run_cfg_resolve(tp_runner *r, const json_t *spec, tp_run_cfg *cfg, tp_err *err);
void tp_run_cfg_free(tp_run_cfg *cfg);

/* The learning rate at step s (0-based), Hugging Face semantics: linear warmup from 0 over
 * `warmup` steps, then constant, or cosine decay to lr * min_lr_ratio at the last step. */
double tp_run_lr_at(const tp_run_cfg *cfg, int step);

/* Runner internals shared by the run/ files. */
const char *tp_runner_data_dir(const tp_runner *r);
tp_registry *tp_runner_registry(const tp_runner *r);

#endif
