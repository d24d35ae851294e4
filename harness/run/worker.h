/* worker.h — a sweep worker (docs/sweeps.md): claims the sweep's items one at a time from a
 * results db (or a Slurm task's shard), runs each through the runner (models loaded once per
 * worker and reused across configurations), and marks it done or failed. A heartbeat thread with
 * its own connection refreshes the claim; SIGTERM / SIGUSR1 / SIGINT make the worker wait up to
 * grace_s for the training's next checkpoint, mark the run `interrupted` (its checkpoints stay
 * recorded), release the claim back to pending and exit, so a requeued task resumes the run. */
#ifndef TP_RUN_WORKER_H
#define TP_RUN_WORKER_H

#include "plugin/loader.h"
#include "run/sweep.h"

/* Exit status of a worker process that was told to stop by a signal (EX_TEMPFAIL). */
#define TP_WORKER_EXIT_PREEMPTED 75

typedef struct tp_worker_opts {
    const char *db_path; /* results.db, or the shard of a Slurm task */
    const char *sweep;   /* sweep name */
    tp_registry *registry;
    const char *data_dir; /* [paths] data */
    const char *worker;   /* label stored with claims: "gpu 0", "cpu", "slurm 12_3" */
    int max_items;        /* 0 = until none is pending; `--one` = 1 */
    int retries;          /* extra attempts of a failed configuration (0 = none) */
    int fail_fast;        /* a final failure stops the whole sweep */
    double heartbeat_s;   /* <= 0: 10 s */
    double grace_s;       /* on a stop signal, wait up to this long for the running training's
                           * next checkpoint before releasing (0: release at once) */
    double stale_s;       /* <= 0: 120 s */
    int exclusive;        /* the db is this worker's alone (a shard) */
    int progress;         /* runner progress output: -1 auto, 0 off, 1 on */
} tp_worker_opts;

typedef struct tp_worker_stats {
    int done, failed, retried, skipped, requeued;
    int stopped;   /* the sweep was (or got) stopped by --fail-fast */
    int preempted; /* a stop signal arrived between items */
} tp_worker_stats;

/* Installs the SIGTERM / SIGUSR1 / SIGINT handlers that request a stop (process-wide). */
void tp_worker_install_signals(void);
/* 1 once a stop was requested (signal or tp_worker_request_stop). */
int tp_worker_stop_requested(void);
void tp_worker_request_stop(int sig);

/* Runs the worker loop. Returns TP_OK when it ran out of items, hit max_items or the sweep was
 * stopped (stats say which, and how many failed); an error when the db itself failed. */
tp_status tp_worker_run(const tp_worker_opts *o, tp_worker_stats *stats, tp_err *err);

#endif
