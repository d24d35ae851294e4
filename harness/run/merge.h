/* merge.h — `telepathy merge`: folds shard databases (one per Slurm array task, each a complete
 * results db) into results.db by config hash (docs/sweeps.md):
 *   - a run the target lacks is copied with every row that references it (metrics, results,
 *     predictions, latency, artifacts, environment, and any later table with a run_id column);
 *   - a run the target has `done` is left alone (merging the same shard twice adds nothing);
 *   - a shard's `done` run replaces the target's failed / interrupted one in place (same id);
 *   - a shard's `running` run (a task killed mid-run) is copied as `interrupted`, never as done;
 *   - the sweep and its items follow: the target's item becomes done/failed with the run's id.
 * Each shard is one transaction: an interrupted merge leaves results.db as it was after the
 * last whole shard, and running it again finishes the job. A shard of an older or newer schema,
 * or of another sweep (same name, another uid; or not --sweep), is refused with a message. */
#ifndef TP_RUN_MERGE_H
#define TP_RUN_MERGE_H

#include "store/store.h"

typedef struct tp_merge_stats {
    int runs_added;    /* new configurations */
    int runs_replaced; /* failed/interrupted in the target, done in the shard */
    int runs_skipped;  /* already in the target (done, or not better in the shard) */
    int items_updated; /* sweep items whose status changed */
} tp_merge_stats;

/* Merges one shard into the open target (one transaction). only_sweep: refuse a shard whose
 * sweep has another name (NULL = any). */
tp_status tp_merge_shard(tp_store *target, const char *shard_path, const char *only_sweep,
                         tp_merge_stats *stats, tp_err *err);

#endif
