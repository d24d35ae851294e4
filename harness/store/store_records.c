/* store_records.c — what a run writes besides its own row: per-step metrics, final results with
 * intervals, per-example predictions, latency breakdowns, artifacts and the environment. Each
 * call is one transaction over all its rows (a batch of 1,000 predictions costs one fsync). */
#include "store/store_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

/* The row binder fills statement parameters for row i and returns an SQLite code; a row missing a
 * required field sets *bad to a description instead. */
typedef int (*bind_row_fn)(sqlite3_stmt *st, const void *rows, int i, const char **bad);

static tp_status insert_rows(tp_store *s, const char *what, const char *sql, int64_t run_id,
                             const void *rows, int n, bind_row_fn bind, tp_err *err) {
    if (n < 0 || (n > 0 && !rows))
        return tp_errf(err, TP_EINVAL, "%s: %s: bad row count %d", s->path, what, n);
    if (n == 0) return TP_OK;
    TP_TRY(tp_store_begin(s, err));
    sqlite3_stmt *st;
    tp_status ret = tp_sql_prepare(s, sql, &st, err);
    for (int i = 0; ret == TP_OK && i < n; i++) {
        const char *bad = NULL;
        int rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = bind(st, rows, i, &bad);
        if (bad) {
            ret = tp_errf(err, TP_EINVAL, "%s: run %lld: %s row %d: %s", s->path, (long long)run_id,
                          what, i, bad);
        } else if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
        }
        if (!bad && rc != SQLITE_DONE) {
            ret = tp_sql_err(s, rc, sql, err);
            tp_err_prefix(err, "run %lld: %s row %d", (long long)run_id, what, i);
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(st);
    if (ret == TP_OK) return tp_store_commit(s, err);
    tp_store_rollback(s);
    return ret;
}

static int bind_metric(sqlite3_stmt *st, const void *rows, int i, const char **bad) {
    const tp_metric_row *r = (const tp_metric_row *)rows + i;
    if (!r->name || !*r->name) return *bad = "metric name is empty", SQLITE_OK;
    int rc = sqlite3_bind_int64(st, 2, r->step);
    rc |= tp_bind_text(st, 3, r->name);
    rc |= tp_bind_real(st, 4, r->value);
    return rc;
}

tp_status tp_store_metrics_add(tp_store *s, int64_t run_id, const tp_metric_row *rows, int n,
                               tp_err *err) {
    return insert_rows(s, "metrics",
                       "INSERT OR REPLACE INTO metrics (run_id, step, name, value) "
                       "VALUES (?1, ?2, ?3, ?4)",
                       run_id, rows, n, bind_metric, err);
}

static int bind_result(sqlite3_stmt *st, const void *rows, int i, const char **bad) {
    const tp_result_row *r = (const tp_result_row *)rows + i;
    if (!r->metric || !*r->metric) return *bad = "metric name is empty", SQLITE_OK;
    int rc = tp_bind_text(st, 2, r->metric);
    rc |= tp_bind_real(st, 3, r->value);
    rc |= tp_bind_real(st, 4, r->ci_low);
    rc |= tp_bind_real(st, 5, r->ci_high);
    rc |= tp_bind_text(st, 6, r->ci_method);
    rc |= tp_bind_count(st, 7, r->n);
    rc |= tp_bind_text(st, 8, r->scheme ? r->scheme : "");
    rc |= tp_bind_text(st, 9, r->split ? r->split : "test");
    return rc;
}

tp_status tp_store_results_add(tp_store *s, int64_t run_id, const tp_result_row *rows, int n,
                               tp_err *err) {
    return insert_rows(s, "results",
                       "INSERT OR REPLACE INTO results (run_id, metric, value, ci_low, ci_high, "
                       "ci_method, n, scheme, split) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       run_id, rows, n, bind_result, err);
}

static int bind_prediction(sqlite3_stmt *st, const void *rows, int i, const char **bad) {
    const tp_prediction_row *r = (const tp_prediction_row *)rows + i;
    if (!r->example_id) return *bad = "example_id is missing", SQLITE_OK;
    int rc = tp_bind_text(st, 2, r->split ? r->split : "test");
    rc |= tp_bind_text(st, 3, r->example_id);
    rc |= tp_bind_text(st, 4, r->example_hash);
    rc |= tp_bind_text(st, 5, r->prompt_hash);
    rc |= tp_bind_text(st, 6, r->target_hash);
    rc |= tp_bind_text(st, 7, r->gold);
    rc |= tp_bind_text(st, 8, r->prediction);
    rc |= r->correct < 0 ? sqlite3_bind_null(st, 9) : sqlite3_bind_int(st, 9, !!r->correct);
    rc |= tp_bind_real(st, 10, r->score);
    return rc;
}

tp_status tp_store_predictions_add(tp_store *s, int64_t run_id, const tp_prediction_row *rows,
                                   int n, tp_err *err) {
    return insert_rows(s, "predictions",
                       "INSERT OR REPLACE INTO predictions (run_id, split, example_id, "
                       "example_hash, prompt_hash, target_hash, gold, prediction, correct, score) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                       run_id, rows, n, bind_prediction, err);
}

tp_status tp_store_prediction_outputs_set(tp_store *s, int64_t run_id, const char *split,
                                          const char *const *example_ids,
                                          const char *const *outputs, int n, tp_err *err) {
    if (n < 0 || (n > 0 && (!example_ids || !outputs)))
        return tp_errf(err, TP_EINVAL, "%s: prediction outputs: bad row count %d", s->path, n);
    if (n == 0) return TP_OK;
    const char *sql = "UPDATE predictions SET output = ?1 WHERE run_id = ?2 AND split = ?3 AND "
                      "example_id = ?4";
    TP_TRY(tp_store_begin(s, err));
    sqlite3_stmt *st;
    tp_status ret = tp_sql_prepare(s, sql, &st, err);
    for (int i = 0; ret == TP_OK && i < n; i++) {
        if (!example_ids[i]) {
            ret =
                tp_errf(err, TP_EINVAL, "%s: run %lld: prediction output %d: example_id is missing",
                        s->path, (long long)run_id, i);
            break;
        }
        int rc = tp_bind_text(st, 1, outputs[i]);
        rc |= sqlite3_bind_int64(st, 2, run_id);
        rc |= tp_bind_text(st, 3, split ? split : "test");
        rc |= tp_bind_text(st, 4, example_ids[i]);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            ret = tp_sql_err(s, rc, sql, err);
        } else if (sqlite3_changes(s->db) != 1) {
            ret = tp_errf(err, TP_EINVAL,
                          "%s: run %lld: no prediction for example '%s' (split %s) to attach an "
                          "output to",
                          s->path, (long long)run_id, example_ids[i], split ? split : "test");
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(st);
    if (ret == TP_OK) return tp_store_commit(s, err);
    tp_store_rollback(s);
    return ret;
}

static int bind_latency(sqlite3_stmt *st, const void *rows, int i, const char **bad) {
    const tp_latency_row *r = (const tp_latency_row *)rows + i;
    if (!r->stage || !*r->stage) return *bad = "stage is empty", SQLITE_OK;
    if (r->ms != r->ms || r->ms < 0) return *bad = "ms must be a number >= 0", SQLITE_OK;
    int rc = tp_bind_text(st, 2, r->stage);
    rc |= tp_bind_count(st, 3, r->batch);
    rc |= tp_bind_count(st, 4, r->seq_len);
    rc |= tp_bind_count(st, 5, r->reps);
    rc |= sqlite3_bind_double(st, 6, r->ms);
    rc |= tp_bind_real(st, 7, r->ms_std);
    rc |= tp_bind_count(st, 8, r->peak_bytes);
    rc |= tp_bind_text(st, 9, r->device);
    return rc;
}

tp_status tp_store_latency_add(tp_store *s, int64_t run_id, const tp_latency_row *rows, int n,
                               tp_err *err) {
    return insert_rows(s, "latency",
                       "INSERT INTO latency (run_id, stage, batch, seq_len, reps, ms, ms_std, "
                       "peak_bytes, device) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       run_id, rows, n, bind_latency, err);
}

typedef struct artifact_row {
    const char *kind, *path, *sha256;
    int64_t bytes;
} artifact_row;

static int bind_artifact(sqlite3_stmt *st, const void *rows, int i, const char **bad) {
    const artifact_row *r = (const artifact_row *)rows + i;
    if (!r->kind || !*r->kind) return *bad = "kind is empty", SQLITE_OK;
    if (!r->path || !*r->path) return *bad = "path is empty", SQLITE_OK;
    int rc = tp_bind_text(st, 2, r->kind);
    rc |= tp_bind_text(st, 3, r->path);
    rc |= tp_bind_text(st, 4, r->sha256);
    rc |= tp_bind_count(st, 5, r->bytes);
    return rc;
}

tp_status tp_store_artifact_add(tp_store *s, int64_t run_id, const char *kind, const char *path,
                                const char *sha256, int64_t bytes, tp_err *err) {
    artifact_row r = {kind, path, sha256, bytes};
    return insert_rows(s, "artifacts",
                       "INSERT OR REPLACE INTO artifacts (run_id, kind, path, sha256, bytes) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
                       run_id, &r, 1, bind_artifact, err);
}

static int bind_env(sqlite3_stmt *st, const void *rows, int i, const char **bad) {
    (void)bad;
    const tp_environment *e = (const tp_environment *)rows + i;
    const char *v[] = {e->telepathy_version,
                       e->compiler,
                       e->build_type,
                       e->os,
                       e->cpu,
                       e->cuda_version,
                       e->cublas_version,
                       e->cudnn_version,
                       e->driver_version,
                       e->gpu,
                       e->lua_version,
                       e->sqlite_version,
                       e->plugins_json};
    int rc = 0;
    for (int k = 0; k < 13; k++) rc |= tp_bind_text(st, k + 2, v[k]);
    return rc;
}

#ifndef TP_VERSION
#define TP_VERSION "unknown"
#endif

tp_status tp_store_environment_set(tp_store *s, int64_t run_id, const tp_environment *env,
                                   tp_err *err) {
    tp_environment e = *env;
    /* what the store itself knows about the build fills the gaps the caller left */
    char os[256];
    struct utsname u;
    if (!e.os && uname(&u) == 0) {
        snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
        e.os = os;
    }
    if (!e.telepathy_version) e.telepathy_version = TP_VERSION;
    if (!e.compiler) {
#if defined(__clang__)
        e.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
        e.compiler = "gcc " __VERSION__;
#endif
    }
    if (!e.sqlite_version) e.sqlite_version = sqlite3_libversion();
    return insert_rows(s, "environment",
                       "INSERT OR REPLACE INTO environment (run_id, telepathy_version, compiler, "
                       "build_type, os, cpu, cuda_version, cublas_version, cudnn_version, "
                       "driver_version, gpu, lua_version, sqlite_version, plugins_json) VALUES "
                       "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                       run_id, &e, 1, bind_env, err);
}
