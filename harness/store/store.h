/* store.h — the SQLite results store (results.db): opening with the right pragmas and schema
 * version, migrations, consistency checks, the run lifecycle and the per-run records (metrics,
 * results, predictions, latency, artifacts, environment). Every table and column is described in
 * docs/results-schema.md; the schema itself lives in schema/ and is embedded at build time.
 *
 * Concurrency model: WAL mode, a busy timeout, and short write transactions taken with BEGIN
 * IMMEDIATE (one per logical write), so several processes (one worker per GPU, a Lua query, a
 * `telepathy ls`) can share one file. A connection must not cross fork(): open one per process.
 *
 * Every function returns a tp_status and, on failure, fills err with a message naming the db
 * file and the statement that failed. */
#ifndef TP_STORE_STORE_H
#define TP_STORE_STORE_H

#include <stdint.h>

#include "telepathy/status.h"

typedef struct sqlite3 sqlite3;
typedef struct tp_store tp_store;

typedef enum tp_store_mode {
    /* Read-write: creates a missing/empty file with the current schema, refuses an older or newer
     * user_version, and marks `running` runs of dead local processes `interrupted`. */
    TP_STORE_RW = 0,
    /* Read-only (SQLITE_OPEN_READONLY + PRAGMA query_only + an authorizer that allows only
     * reads): what Lua's tp.query and `telepathy ls/show` use. The file must exist. */
    TP_STORE_RO = 1,
} tp_store_mode;

#define TP_STORE_BUSY_TIMEOUT_MS 30000

tp_status tp_store_open(tp_store **out, const char *path, tp_store_mode mode, tp_err *err);
/* Safe on NULL. */
void tp_store_close(tp_store *s);

sqlite3 *tp_store_db(tp_store *s);
const char *tp_store_path(const tp_store *s);
int tp_store_readonly(const tp_store *s);
/* Runs this open found `running` whose process was gone and marked `interrupted`. */
int tp_store_swept(const tp_store *s);

/* Brings the file at path to schema version `target` (tp_schema_version for the real command;
 * tests pass 1 to build an old database), one transaction per migration. An empty file gets
 * migrations 1..target. *from / *to receive the versions before and after (either may be NULL).
 * Refuses a file that is newer than target or not a telepathy results db. */
tp_status tp_store_migrate(const char *path, int target, int *from, int *to, tp_err *err);

/* Checks the file at path without changing it: PRAGMA integrity_check, foreign_key_check,
 * journal_mode, user_version, and every table/column/index against the embedded schema. Calls
 * problem(ctx, text) once per problem found and stores their count in *n_problems. Returns an
 * error only when the check itself could not run (file missing, not a database). */
typedef void (*tp_store_problem_fn)(void *ctx, const char *problem);
tp_status tp_store_check(const char *path, tp_store_problem_fn problem, void *ctx, int *n_problems,
                         tp_err *err);
/* Compares the schema of db against ref (tables, columns in order with type/notnull/default/pk,
 * indexes with their columns and uniqueness); returns the number of differences reported. */
int tp_store_schema_diff(sqlite3 *ref, sqlite3 *db, tp_store_problem_fn problem, void *ctx);

/* ---- runs ----------------------------------------------------------------------------------- */
typedef enum tp_run_status {
    TP_RUN_RUNNING = 0,
    TP_RUN_DONE = 1,
    TP_RUN_FAILED = 2,
    TP_RUN_INTERRUPTED = 3,
} tp_run_status;

const char *tp_run_status_name(tp_run_status st);
/* Returns 0 and sets *out for "running" | "done" | "failed" | "interrupted", else -1. */
int tp_run_status_parse(const char *name, tp_run_status *out);

/* What a run is, recorded when it begins. config_json and config_hash are required; any other
 * string may be NULL (stored as NULL). */
typedef struct tp_run_meta {
    int64_t experiment_id;   /* 0 = not part of a recorded experiment */
    const char *config_json; /* the fully resolved config, canonical JSON */
    const char *config_hash; /* the run's identity (sha256 hex of config_json); UNIQUE */
    int64_t seed;
    const char *task, *task_version;
    const char *bridge, *bridge_version;
    const char *sender, *receiver; /* model names or aliases */
    const char *plugins_json;      /* {"loss/ce": "1.0", ...}: every plugin used, with version */
    const char *git_commit;
    int git_dirty; /* -1 unknown, 0 clean tree, 1 uncommitted changes */
    const char *device;
} tp_run_meta;

/* Starts the run with meta->config_hash in this process (host + pid are recorded):
 * - no such run: inserts it as `running`, *attempt = 1;
 * - `failed` or `interrupted` (or `running` by a dead local process): restarts it as `running`
 *   with attempt + 1, clearing its error and deleting its results, predictions and latency rows
 *   (metrics and artifacts stay, so a trainer can resume from a checkpoint);
 * - `done`: TP_ESTATE (callers skip finished configs with tp_store_run_find first);
 * - `running` by a live process: TP_ESTATE naming host and pid. */
tp_status tp_store_run_begin(tp_store *s, const tp_run_meta *meta, int64_t *run_id, int *attempt,
                             tp_err *err);
/* Ends a run this process began: status DONE, FAILED or INTERRUPTED, with error text and the
 * Lua/C traceback for failures (either may be NULL). */
tp_status tp_store_run_finish(tp_store *s, int64_t run_id, tp_run_status status, const char *error,
                              const char *traceback, tp_err *err);
/* Looks a run up by config hash: *run_id = 0 when there is none. status/attempt may be NULL. */
tp_status tp_store_run_find(tp_store *s, const char *config_hash, int64_t *run_id,
                            tp_run_status *status, int *attempt, tp_err *err);
/* The experiment row for (name, script sha256), created if missing. */
tp_status tp_store_experiment_ensure(tp_store *s, const char *name, const char *script_path,
                                     const char *script_sha256, int64_t *id, tp_err *err);

/* ---- per-run records: each call is one transaction -------------------------------------------
 * Optional numbers use NaN (doubles) or a negative value (counts) for "unknown" (stored NULL). */
typedef struct tp_metric_row {
    int64_t step;
    const char *name; /* "train/loss", "eval/accuracy", ... */
    double value;
} tp_metric_row;
/* Re-logging (run, name, step) replaces the value (a resumed run may repeat steps). */
tp_status tp_store_metrics_add(tp_store *s, int64_t run_id, const tp_metric_row *rows, int n,
                               tp_err *err);

typedef struct tp_result_row {
    const char *metric; /* "accuracy", "macro_f1", "exact_match", ... */
    double value;
    double ci_low, ci_high; /* NaN when no interval */
    const char *ci_method;  /* "wilson" | "bootstrap" | "std" | NULL */
    int64_t n;              /* examples scored; < 0 unknown */
    const char *scheme;     /* scoring scheme: "first_token" | "generate" | "loglik"; NULL = "" */
    const char *split;      /* NULL = "test" */
} tp_result_row;
/* (run, split, metric, scheme) is unique; re-scoring replaces. */
tp_status tp_store_results_add(tp_store *s, int64_t run_id, const tp_result_row *rows, int n,
                               tp_err *err);

typedef struct tp_prediction_row {
    const char *split; /* NULL = "test" */
    const char *example_id;
    const char *example_hash, *prompt_hash, *target_hash;
    const char *gold, *prediction;
    int correct;  /* 1, 0, or -1 when not applicable */
    double score; /* NaN when none */
} tp_prediction_row;
tp_status tp_store_predictions_add(tp_store *s, int64_t run_id, const tp_prediction_row *rows,
                                   int n, tp_err *err);
/* Sets predictions.output (schema version 5: the intermediate text behind an answer, e.g. the
 * text relay's summary) of the rows (run_id, split, example_ids[i]) already added; outputs[i]
 * NULL leaves NULL. A row that does not exist is an error. One transaction. */
tp_status tp_store_prediction_outputs_set(tp_store *s, int64_t run_id, const char *split,
                                          const char *const *example_ids,
                                          const char *const *outputs, int n, tp_err *err);

typedef struct tp_latency_row {
    const char *stage; /* "sender_encode" | "bridge" | "receiver_decode" | "text_relay" | ... */
    int64_t batch, seq_len, reps; /* < 0 unknown */
    double ms;                    /* mean milliseconds per call (required) */
    double ms_std;                /* NaN unknown */
    int64_t peak_bytes;           /* < 0 unknown */
    const char *device;
} tp_latency_row;
tp_status tp_store_latency_add(tp_store *s, int64_t run_id, const tp_latency_row *rows, int n,
                               tp_err *err);

/* kind: "checkpoint" | "table" | "plot" | "log" | ...; sha256 may be NULL, bytes < 0 unknown.
 * (run, path) is unique; re-adding replaces. */
tp_status tp_store_artifact_add(tp_store *s, int64_t run_id, const char *kind, const char *path,
                                const char *sha256, int64_t bytes, tp_err *err);

typedef struct tp_environment {
    const char *telepathy_version; /* NULL: this build's TP_VERSION */
    const char *compiler;          /* NULL: the compiler that built the store */
    const char *build_type;
    const char *os; /* NULL: uname sysname release machine */
    const char *cpu;
    const char *cuda_version, *cublas_version, *cudnn_version, *driver_version;
    const char *gpu;
    const char *lua_version;
    const char *sqlite_version; /* NULL: the linked SQLite */
    const char *plugins_json;   /* {"bridges/perceiver.so": "<sha256>", ...} */
} tp_environment;
/* One row per run; setting it again replaces it. */
tp_status tp_store_environment_set(tp_store *s, int64_t run_id, const tp_environment *env,
                                   tp_err *err);

#endif
