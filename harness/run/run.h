/* run.h — the harness's main job, as a C API the Lua layer (tp.run / tp.model / tp.table) and the
 * tests call: a runner owns a model cache and borrows a plugin registry and a results store; each
 * tp_runner_run takes one run specification (JSON, what a Lua table says), resolves it into the
 * canonical run config (every setting, defaults filled from the task's info), and then
 *   - skips it when its config hash is already `done` (returns the stored result),
 *   - resumes it from its last checkpoint when it was `interrupted` (or `failed` mid-training),
 *   - otherwise trains (bridge runs) and evaluates it, recording runs / metrics / artifacts /
 *     predictions / results / environment rows in the store.
 * A run that fails is recorded `failed` with its error; the call returns that error so the caller
 * (a script) decides whether to go on.
 *
 * Run specification keys (all optional except sender/receiver/task as the kind needs):
 *   baseline        "sender_direct" | "receiver_direct" | "text_relay" | "fewshot" (absent: a
 *                   bridge run); baseline_options{} for text_relay / fewshot (baseline_opts.h)
 *   sender, receiver  model alias (from tp_runner_add_model) or directory path
 *   task, task_options{}          bridge, bridge_options{}   (bridge default "perceiver")
 *   losses          [{name, weight, options{}}...] or {name: weight}; default ce 1 + diversity 0.1
 *   layer           sender hidden_states index (default N/2)      seed (42)
 *   steps (2000) batch (16) lr (2e-4) weight_decay (0.01) clip (1.0) warmup (0)
 *   schedule ("constant" | "cosine") min_lr_ratio (0)
 *   eval_n (0 = full split) eval_seed (0) eval_batch (32) scoring (task default)
 *   max_new_tokens (task default) primer (task default) bos (false) sender_bos (true)
 *   max_sender_len (256) max_receiver_len (receiver max positions)
 *   eval_every (0 = never) quick_eval_n (64) checkpoint_every (0 = ceil(steps/4))
 *   target ("answer" | "question": the text whose receiver embeddings NEEDS_TARGET bridges and
 *           TARGET_EMB losses get)
 * Unknown keys are errors with "did you mean". */
#ifndef TP_RUN_RUN_H
#define TP_RUN_RUN_H

#include <jansson.h>
#include <stdint.h>

#include "model/model.h"
#include "plugin/loader.h"
#include "store/store.h"
#include "telepathy/status.h"
#include "telepathy/task.h"

typedef struct tp_runner tp_runner;

typedef struct tp_runner_opts {
    tp_registry *registry;   /* borrowed; plugins looked up here */
    tp_store *store;         /* borrowed; NULL = nothing recorded (tests of pieces only) */
    const char *data_dir;    /* [paths] data, handed to task plugins (may be NULL) */
    const char *ckpt_dir;    /* checkpoints go to <ckpt_dir>/<config_hash>/; NULL = next to db */
    int64_t experiment_id;   /* 0 = none */
    const char *git_commit;  /* NULL = unknown */
    int git_dirty;           /* -1 unknown */
    int progress;            /* -1 auto (stderr is a terminal), 0 off, 1 on */
    const char *lua_version; /* for the environment row; may be NULL */
} tp_runner_opts;

tp_status tp_runner_new(tp_runner **out, const tp_runner_opts *opts, tp_err *err);
void tp_runner_free(tp_runner *r);

/* A model loaded once and cached for the runner's life (tp.model). */
typedef struct tp_run_model {
    char alias[128];
    char path[4096];       /* as resolved (realpath) */
    char fingerprint[128]; /* "sha256:<hex>" of config.json + weight files, or sampled */
    tp_model *m;
} tp_run_model;

/* Loads path (or returns the cached model for the same real path) and names it alias (NULL =
 * the directory's base name). An alias already bound to another path is an error. */
tp_status tp_runner_add_model(tp_runner *r, const char *path, const char *alias,
                              const tp_run_model **out, tp_err *err);
/* Finds by alias, then by path (loading it). */
tp_status tp_runner_model(tp_runner *r, const char *ref, const tp_run_model **out, tp_err *err);

#define TP_RUN_MAX_CLASSES TP_MAX_LABELS

typedef struct tp_run_result {
    int64_t run_id;
    char config_hash[65];
    char status[16]; /* "done" (ran now) | "skipped" (already done) | "resumed" */
    int resumed_from_step;
    char scheme[16];
    double accuracy, ci_low, ci_high; /* Wilson 95% */
    int64_t n, n_correct;
    int n_classes;
    char class_name[TP_RUN_MAX_CLASSES][64];
    double class_acc[TP_RUN_MAX_CLASSES];
    int64_t class_n[TP_RUN_MAX_CLASSES];
    double first_loss, final_loss; /* NaN for baselines */
    int steps;
} tp_run_result;

tp_status tp_runner_run(tp_runner *r, const json_t *spec, tp_run_result *res, tp_err *err);

/* Resolves spec into the canonical config JSON and its hash without running anything. */
tp_status tp_runner_resolve(tp_runner *r, const json_t *spec, char **canon, char *hash,
                            tp_err *err);

/* Traceback text recorded with the next failed run (the Lua call site); NULL clears it. */
void tp_runner_set_traceback(tp_runner *r, const char *traceback);

/* Tests: the per-step total losses of the last run this runner trained (not of a skipped one). */
int tp_runner_last_losses(const tp_runner *r, const double **losses);

/* The git commit of the source tree the harness was built from into commit, and whether that
 * tree has uncommitted changes (git_info.c). Returns 0 when unknown (no git, not a checkout). */
int tp_source_git_info(char *commit, size_t cap, int *dirty);

#endif
