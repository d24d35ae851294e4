/* slurm.h — a sweep as a Slurm job array (docs/sweeps.md). `telepathy submit` writes a submission
 * directory on the shared filesystem:
 *   DIR/plan.json        the sweep (name, uid, script) and its pending items, one per array task
 *   DIR/submit.sbatch    the array job: task i runs `telepathy work --one --plan DIR/plan.json
 *                        --index i --shard DIR/shard_i.db` (exec'd, so Slurm's signals reach it)
 *   DIR/logs/            one log per task
 *   DIR/job_id           the id sbatch answered
 * then runs sbatch. Each task writes only its own shard (SQLite over NFS with many writers is
 * unsafe); `telepathy merge DIR/shard_*.db` folds them into results.db. The array is
 * --requeue-able and asks for SIGUSR1 before its time limit, on which the worker releases its
 * claim so the requeued task resumes from the run's last checkpoint. */
#ifndef TP_RUN_SLURM_H
#define TP_RUN_SLURM_H

#include <stddef.h>

#include "run/sweep.h"

typedef struct tp_slurm_opts {
    const char *dir;          /* submission directory (created) */
    const char *telepathy;    /* absolute path of the binary the tasks run */
    const char *workdir;      /* the tasks cd here first (relative config paths keep working) */
    const char *config;       /* --config FILE for the tasks, or NULL */
    const char *plugin_path;  /* --plugin-path for the tasks, or NULL */
    const char *partition;    /* NULL = the cluster's default */
    int gpus_per_task;        /* 0 = ask for no GPU */
    int cpus_per_task;        /* 0 = default */
    const char *time;         /* --time, NULL = partition default */
    const char *mem;          /* --mem, NULL = default */
    int array_parallel;       /* %K: at most K tasks at once; 0 = no limit */
    int retries;              /* passed to the workers */
    int signal_before_s;      /* SIGUSR1 this many seconds before the time limit (0: 120) */
    const char *const *extra; /* more "#SBATCH" arguments, NULL-terminated, may be NULL */
} tp_slurm_opts;

/* Writes DIR/plan.json with the sweep's pending items (failed ones too when include_failed)
 * and *n their number; nothing is written when there is none (*n = 0). */
tp_status tp_slurm_write_plan(tp_store *s, const tp_sweep *sw, const char *dir, int include_failed,
                              int *n, tp_err *err);
/* Writes DIR/submit.sbatch for an array of n tasks. */
tp_status tp_slurm_write_script(const tp_slurm_opts *o, const tp_sweep *sw, int n, char *path,
                                size_t cap, tp_err *err);
/* Runs `sbatch --parsable SCRIPT` (sbatch: the program, NULL = "sbatch" on PATH); fills
 * job_id. A missing sbatch, a non-zero exit or an unparsable answer is an error quoting what
 * sbatch printed. */
tp_status tp_slurm_submit(const char *sbatch, const char *script, char *job_id, size_t cap,
                          tp_err *err);

/* Reads item `index` (0-based) of a plan.json: the sweep it belongs to and the item. Errors
 * name the file and the field. */
tp_status tp_slurm_read_plan_item(const char *plan_path, int index, tp_sweep *sw, tp_sweep_item *it,
                                  int *n_items, tp_err *err);

#endif
