/* replay.h — `telepathy replay RUN_ID`: re-run a stored run from its recorded configuration and
 * compare. The stored canonical config is turned back into a run specification (tp_replay_spec),
 * which must resolve to the same config hash (a difference is reported path by path: a plugin
 * version or TP_RUN_FORMAT changed, or a setting replay does not know); the plugin versions and
 * .so hashes, the model weight fingerprints, the data (example hashes of the predictions) and the
 * code commit are checked, each mismatch a warning; the run is re-run through the runner into a
 * separate results db, and the old and new results are compared: accuracy, the per-step training
 * losses and the per-example predictions bit for bit, and McNemar on the paired outcomes. On the
 * same machine and backend a replay is bit-identical. */
#ifndef TP_RUN_REPLAY_H
#define TP_RUN_REPLAY_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "plugin/loader.h"
#include "run/stats.h"
#include "store/store.h"

typedef void (*tp_replay_warn_fn)(void *ctx, const char *msg);

typedef struct tp_replay_opts {
    tp_store *src; /* the db holding the run */
    int64_t run_id;
    tp_registry *reg;
    const char *into;          /* results db the replay is recorded in (must not be src's file) */
    const char *data_dir;      /* [paths] data */
    const char *sender_path;   /* override the stored model path (moved weights); NULL = stored */
    const char *receiver_path; /* same for the receiver (or the baseline's model) */
    const char *git_commit;    /* this build's commit, NULL unknown */
    int git_dirty;
    tp_replay_warn_fn warn; /* called once per mismatch; may be NULL */
    void *warn_ctx;
} tp_replay_opts;

typedef struct tp_replay_report {
    int64_t new_run_id;
    int warnings;
    int hash_match;          /* the rebuilt config hashes to the stored hash */
    double old_acc, new_acc; /* NaN when absent */
    int64_t old_n, new_n;
    int loss_steps, loss_same; /* steps present in both, bit-identical ones */
    int loss_only_one;         /* steps logged by one side only */
    int pairs, pred_same;      /* examples in both; identical prediction, correct and score */
    int only_old, only_new;    /* examples scored by one side only */
    tp_mcnemar mc;             /* old (b: only old correct) vs new (c: only new correct) */
    int identical;             /* accuracy, every loss and every prediction bit-identical */
} tp_replay_report;

/* The run specification that reproduces a stored canonical config (kind bridge, sender_direct,
 * receiver_direct, text_relay or fewshot). Models are referenced by the aliases given (the caller
 * loads them). */
tp_status tp_replay_spec(const char *config_json, const char *sender_alias,
                         const char *receiver_alias, json_t **spec, tp_err *err);

tp_status tp_replay(const tp_replay_opts *o, tp_replay_report *rep, tp_err *err);

/* Old vs new, side by side, and the verdict. */
void tp_replay_print(const tp_replay_report *rep, int64_t old_id, FILE *f);

#endif
