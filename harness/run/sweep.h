/* sweep.h — sweeps as data (docs/sweeps.md): a named sweep of planned configurations in
 * results.db (tables sweeps + sweep_items, schema/migrations/004_sweeps.sql) and the item
 * lifecycle workers drive:
 *
 *   pending --claim--> running --finish ok--> done
 *                         |  \--finish error--> failed (or pending again while retries last)
 *                         \--release (SIGTERM/SIGUSR1) or stale claim--> pending
 *
 * A claim is one BEGIN IMMEDIATE transaction: it first returns to `pending` every `running` item
 * whose worker is gone (a dead local pid, or a heartbeat older than stale_s), then takes the
 * lowest-seq pending item, so two workers can never hold the same item. Every update of a
 * claimed item repeats "still claimed by this host and pid", so a worker whose claim went stale
 * and was taken over learns it (TP_ESTATE) instead of overwriting the new owner.
 *
 * The Lua binding plans instead of running when the registry holds a tp_sweep_plan_hook under
 * TP_SWEEP_PLAN_KEY (`telepathy plan` sets it; script/lua_run.c checks it). */
#ifndef TP_RUN_SWEEP_H
#define TP_RUN_SWEEP_H

#include <stdint.h>

#include "store/store.h"

#define TP_SWEEP_PLAN_KEY "telepathy.sweep.plan"
#define TP_SWEEP_NAME_MAX 128

/* What tp.run{} hands over in plan mode: the spec as given (models by alias), its resolved
 * config and hash, and {"alias": "/real/path"} of the models it names. *added = 0 when the
 * sweep already had the configuration. */
typedef struct tp_sweep_plan_hook {
    tp_status (*add)(void *ctx, const char *spec_json, const char *config_json,
                     const char *config_hash, const char *models_json, int *added, tp_err *err);
    void *ctx;
} tp_sweep_plan_hook;

typedef struct tp_sweep {
    int64_t id;
    char name[TP_SWEEP_NAME_MAX];
    char uid[33];
    char *script_path, *script_sha256; /* may be NULL */
    char *stopped;                     /* NULL while workers may claim */
} tp_sweep;
void tp_sweep_free(tp_sweep *sw);

/* Checks a sweep name: 1..127 characters of [A-Za-z0-9._-]. */
tp_status tp_sweep_name_check(const char *name, tp_err *err);
/* The sweep called name, created when missing (uid: NULL draws a random one; a given uid must
 * match an existing sweep's, else TP_ESTATE naming both). */
tp_status tp_sweep_ensure(tp_store *s, const char *name, const char *uid, const char *script_path,
                          const char *script_sha256, tp_sweep *out, tp_err *err);
/* Looks a sweep up: TP_EINVAL naming the known sweeps when there is none. */
tp_status tp_sweep_get(tp_store *s, const char *name, tp_sweep *out, tp_err *err);

/* Adds one planned configuration (next seq). A configuration already `done` in runs is added as
 * done (with its run_id), so re-planning a finished sweep queues nothing. *added = 0 when the
 * sweep already had it. */
tp_status tp_sweep_plan_add(tp_store *s, int64_t sweep_id, const char *config_hash,
                            const char *config_json, const char *spec_json, const char *models_json,
                            int *added, tp_err *err);

typedef struct tp_sweep_item {
    int64_t id, sweep_id, seq;
    char config_hash[65];
    char *config_json, *spec_json, *models_json;
    int attempts; /* including this claim */
} tp_sweep_item;
void tp_sweep_item_free(tp_sweep_item *it);

typedef struct tp_sweep_claim_opts {
    const char *worker; /* "gpu 0", "cpu", "slurm 12_3"; may be NULL */
    double stale_s;     /* a heartbeat older than this frees the claim (<= 0: 120 s) */
    /* the db is this worker's alone (a Slurm task's shard): every `running` item is a leftover
     * of an earlier attempt of the same task, and is reclaimed at once */
    int exclusive;
} tp_sweep_claim_opts;

/* Claims the next item. *got = 0 when none is pending (or the sweep was stopped: *stopped = 1,
 * may be NULL). *requeued (may be NULL) counts stale claims returned to pending on the way. */
tp_status tp_sweep_claim(tp_store *s, int64_t sweep_id, const tp_sweep_claim_opts *o,
                         tp_sweep_item *out, int *got, int *stopped, int *requeued, tp_err *err);
/* Returns stale claims to pending without claiming (what `status` and `claim` do first). */
tp_status tp_sweep_requeue_stale(tp_store *s, int64_t sweep_id, double stale_s, int exclusive,
                                 int *requeued, tp_err *err);
/* Refreshes this worker's heartbeat; TP_ESTATE when the claim is no longer this process's. */
tp_status tp_sweep_heartbeat(tp_store *s, int64_t item_id, tp_err *err);

typedef struct tp_sweep_outcome {
    int ok;
    int64_t run_id;          /* 0 = none */
    const char *error;       /* failures */
    const char *error_class; /* tp_sweep_error_class() */
    double seconds;
    int retry; /* failure with retries left: back to pending */
} tp_sweep_outcome;
tp_status tp_sweep_finish(tp_store *s, int64_t item_id, const tp_sweep_outcome *o, tp_err *err);
/* Preemption: the item goes back to pending (this attempt is not counted), with why as its
 * error and class "preempted". */
tp_status tp_sweep_release(tp_store *s, int64_t item_id, const char *why, tp_err *err);
/* --fail-fast: no worker claims from the sweep after this. */
tp_status tp_sweep_stop(tp_store *s, int64_t sweep_id, const char *reason, tp_err *err);

/* Error class of a failed run, for sweep_items.error_class. */
const char *tp_sweep_error_class(tp_status st);

typedef struct tp_sweep_counts {
    int64_t pending, running, done, failed;
    double mean_seconds; /* of done items with a time; NaN when none */
    int workers;         /* distinct host:pid holding running items */
} tp_sweep_counts;
tp_status tp_sweep_count(tp_store *s, int64_t sweep_id, tp_sweep_counts *c, tp_err *err);

#endif
