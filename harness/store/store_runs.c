/* store_runs.c — the run lifecycle in results.db: begin (insert or restart a failed/interrupted
 * run, recording host + pid), finish (done/failed/interrupted with error and traceback), lookup
 * by config hash, and experiment rows. Each operation is one BEGIN IMMEDIATE transaction. */
#include "store/store_internal.h"

#include <string.h>
#include <unistd.h>

static const char *const status_names[] = {"running", "done", "failed", "interrupted"};

const char *tp_run_status_name(tp_run_status st) {
    return (unsigned)st < 4 ? status_names[st] : "unknown";
}

int tp_run_status_parse(const char *name, tp_run_status *out) {
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, status_names[i])) {
            *out = (tp_run_status)i;
            return 0;
        }
    return -1;
}

static tp_status step_done(tp_store *s, sqlite3_stmt *st, const char *sql, tp_err *err) {
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? TP_OK : tp_sql_err(s, rc, sql, err);
}

/* Binds the columns common to INSERT and restart: ?1 config_json .. ?15 device, ?16 pid_start,
 * ?17 host, ?18 pid, ?19 experiment_id. */
static int bind_meta(tp_store *s, sqlite3_stmt *st, const tp_run_meta *m) {
    int rc = 0;
    rc |= tp_bind_text(st, 1, m->config_json);
    rc |= tp_bind_text(st, 2, m->config_hash);
    rc |= sqlite3_bind_int64(st, 3, m->seed);
    rc |= tp_bind_text(st, 4, m->task);
    rc |= tp_bind_text(st, 5, m->task_version);
    rc |= tp_bind_text(st, 6, m->bridge);
    rc |= tp_bind_text(st, 7, m->bridge_version);
    rc |= tp_bind_text(st, 8, m->sender);
    rc |= tp_bind_text(st, 9, m->receiver);
    rc |= tp_bind_text(st, 10, m->plugins_json);
    rc |= tp_bind_text(st, 11, m->git_commit);
    rc |= m->git_dirty < 0 ? sqlite3_bind_null(st, 12) : sqlite3_bind_int(st, 12, !!m->git_dirty);
    rc |= tp_bind_text(st, 13, m->device);
    int64_t start = tp_proc_start_time((int)getpid());
    rc |= start < 0 ? sqlite3_bind_null(st, 16) : sqlite3_bind_int64(st, 16, start);
    rc |= sqlite3_bind_text(st, 17, s->host, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int(st, 18, (int)getpid());
    rc |= m->experiment_id > 0 ? sqlite3_bind_int64(st, 19, m->experiment_id)
                               : sqlite3_bind_null(st, 19);
    return rc;
}

static const char *const sql_insert =
    "INSERT INTO runs (config_json, config_hash, seed, task, task_version, bridge, "
    "bridge_version, sender, receiver, plugins_json, git_commit, git_dirty, device, pid_start, "
    "host, pid, experiment_id, status, attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
    "?11, ?12, ?13, ?16, ?17, ?18, ?19, 'running', 1)";

static const char *const sql_restart =
    "UPDATE runs SET config_json = ?1, seed = ?3, task = ?4, task_version = ?5, bridge = ?6, "
    "bridge_version = ?7, sender = ?8, receiver = ?9, plugins_json = ?10, git_commit = ?11, "
    "git_dirty = ?12, device = ?13, pid_start = ?16, host = ?17, pid = ?18, "
    "experiment_id = coalesce(?19, experiment_id), status = 'running', attempt = attempt + 1, "
    "started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ended_at = NULL, error = NULL, "
    "traceback = NULL WHERE config_hash = ?2";

/* A new attempt produces its own final numbers: drop those of the failed one. */
static tp_status clear_outputs(tp_store *s, int64_t id, tp_err *err) {
    static const char *const del[] = {"DELETE FROM results WHERE run_id = ?1",
                                      "DELETE FROM predictions WHERE run_id = ?1",
                                      "DELETE FROM latency WHERE run_id = ?1"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st;
        TP_TRY(tp_sql_prepare(s, del[i], &st, err));
        tp_status ret = tp_sql_bound(s, sqlite3_bind_int64(st, 1, id), del[i], err);
        if (ret == TP_OK) ret = step_done(s, st, del[i], err);
        sqlite3_finalize(st);
        TP_TRY(ret);
    }
    return TP_OK;
}

static tp_status begin_locked(tp_store *s, const tp_run_meta *m, int64_t *run_id, int *attempt,
                              tp_err *err) {
    const char *sel = "SELECT id, status, host, pid, pid_start, attempt, started_at FROM runs "
                      "WHERE config_hash = ?1";
    sqlite3_stmt *st;
    TP_TRY(tp_sql_prepare(s, sel, &st, err));
    int rc = sqlite3_bind_text(st, 1, m->config_hash, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        tp_sql_err(s, rc, sel, err);
        sqlite3_finalize(st);
        return TP_EDB;
    }
    int exists = rc == SQLITE_ROW;
    tp_status ret = TP_OK;
    if (exists) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 1);
        const char *host = (const char *)sqlite3_column_text(st, 2);
        int pid = sqlite3_column_int(st, 3);
        int64_t pstart =
            sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
        const char *started = (const char *)sqlite3_column_text(st, 6);
        *run_id = id;
        *attempt = sqlite3_column_int(st, 5) + 1;
        if (status && !strcmp(status, "done"))
            ret = tp_errf(err, TP_ESTATE,
                          "%s: run %lld (config %.12s) is already done; skip it or change the "
                          "config",
                          s->path, (long long)id, m->config_hash);
        else if (status && !strcmp(status, "running") &&
                 !(host && !strcmp(host, s->host) && tp_proc_gone(pid, pstart)))
            ret = tp_errf(err, TP_ESTATE,
                          "%s: run %lld (config %.12s) is being run by pid %d on %s since %s; "
                          "wait for it or stop that process",
                          s->path, (long long)id, m->config_hash, pid, host ? host : "?",
                          started ? started : "?");
    }
    sqlite3_finalize(st);
    TP_TRY(ret);

    const char *sql = exists ? sql_restart : sql_insert;
    TP_TRY(tp_sql_prepare(s, sql, &st, err));
    ret = tp_sql_bound(s, bind_meta(s, st, m), sql, err);
    if (ret == TP_OK) ret = step_done(s, st, sql, err);
    sqlite3_finalize(st);
    TP_TRY(ret);
    if (!exists) {
        *run_id = sqlite3_last_insert_rowid(s->db);
        *attempt = 1;
        return TP_OK;
    }
    return clear_outputs(s, *run_id, err);
}

tp_status tp_store_run_begin(tp_store *s, const tp_run_meta *m, int64_t *run_id, int *attempt,
                             tp_err *err) {
    int dummy;
    if (!attempt) attempt = &dummy;
    *run_id = 0;
    if (s->readonly)
        return tp_errf(err, TP_ESTATE, "%s: cannot begin a run on a read-only connection", s->path);
    if (!m->config_json || !*m->config_json || !m->config_hash || !*m->config_hash)
        return tp_errf(err, TP_EINVAL, "%s: a run needs config_json and config_hash", s->path);
    TP_TRY(tp_store_begin(s, err));
    tp_status st = begin_locked(s, m, run_id, attempt, err);
    if (st == TP_OK)
        st = tp_store_commit(s, err);
    else
        tp_store_rollback(s);
    if (st != TP_OK && st != TP_ESTATE) *run_id = 0;
    return st;
}

tp_status tp_store_run_finish(tp_store *s, int64_t run_id, tp_run_status status, const char *error,
                              const char *traceback, tp_err *err) {
    if (status == TP_RUN_RUNNING || (unsigned)status > TP_RUN_INTERRUPTED)
        return tp_errf(err, TP_EINVAL,
                       "%s: run %lld: finish status must be done, failed or interrupted", s->path,
                       (long long)run_id);
    const char *sql = "UPDATE runs SET status = ?1, error = ?2, traceback = ?3, "
                      "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                      "WHERE id = ?4 AND status = 'running' AND host = ?5 AND pid = ?6";
    TP_TRY(tp_store_begin(s, err));
    sqlite3_stmt *st;
    tp_status ret = tp_sql_prepare(s, sql, &st, err);
    if (ret == TP_OK) {
        int rc = sqlite3_bind_text(st, 1, tp_run_status_name(status), -1, SQLITE_STATIC);
        rc |= tp_bind_text(st, 2, error);
        rc |= tp_bind_text(st, 3, traceback);
        rc |= sqlite3_bind_int64(st, 4, run_id);
        rc |= sqlite3_bind_text(st, 5, s->host, -1, SQLITE_STATIC);
        rc |= sqlite3_bind_int(st, 6, (int)getpid());
        ret = tp_sql_bound(s, rc, sql, err);
        if (ret == TP_OK) ret = step_done(s, st, sql, err);
        sqlite3_finalize(st);
    }
    if (ret == TP_OK && sqlite3_changes(s->db) != 1)
        ret = tp_errf(err, TP_ESTATE,
                      "%s: run %lld is not running in this process (pid %d on %s); it was never "
                      "begun, already finished, or marked interrupted",
                      s->path, (long long)run_id, (int)getpid(), s->host);
    if (ret == TP_OK) return tp_store_commit(s, err);
    tp_store_rollback(s);
    return ret;
}

tp_status tp_store_run_find(tp_store *s, const char *config_hash, int64_t *run_id,
                            tp_run_status *status, int *attempt, tp_err *err) {
    const char *sql = "SELECT id, status, attempt FROM runs WHERE config_hash = ?1";
    *run_id = 0;
    sqlite3_stmt *st;
    TP_TRY(tp_sql_prepare(s, sql, &st, err));
    int rc = tp_bind_text(st, 1, config_hash);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    tp_status ret = TP_OK;
    if (rc == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(st, 0);
        tp_run_status parsed = TP_RUN_RUNNING;
        if (tp_run_status_parse((const char *)sqlite3_column_text(st, 1), &parsed) != 0)
            ret = tp_errf(err, TP_EDB, "%s: run %lld has an unknown status '%s'", s->path,
                          (long long)*run_id, (const char *)sqlite3_column_text(st, 1));
        if (status) *status = parsed;
        if (attempt) *attempt = sqlite3_column_int(st, 2);
    } else if (rc != SQLITE_DONE) {
        ret = tp_sql_err(s, rc, sql, err);
    }
    sqlite3_finalize(st);
    return ret;
}

tp_status tp_store_experiment_ensure(tp_store *s, const char *name, const char *script_path,
                                     const char *script_sha256, int64_t *id, tp_err *err) {
    *id = 0;
    if (!name || !*name) return tp_errf(err, TP_EINVAL, "%s: an experiment needs a name", s->path);
    const char *sha = script_sha256 ? script_sha256 : "";
    const char *ins = "INSERT OR IGNORE INTO experiments (name, script_path, script_sha256) "
                      "VALUES (?1, ?2, ?3)";
    const char *sel = "SELECT id FROM experiments WHERE name = ?1 AND script_sha256 = ?2";
    TP_TRY(tp_store_begin(s, err));
    sqlite3_stmt *st;
    tp_status ret = tp_sql_prepare(s, ins, &st, err);
    if (ret == TP_OK) {
        int rc = tp_bind_text(st, 1, name);
        rc |= tp_bind_text(st, 2, script_path);
        rc |= tp_bind_text(st, 3, sha);
        ret = tp_sql_bound(s, rc, ins, err);
        if (ret == TP_OK) ret = step_done(s, st, ins, err);
        sqlite3_finalize(st);
    }
    if (ret == TP_OK) ret = tp_sql_prepare(s, sel, &st, err);
    if (ret == TP_OK) {
        int rc = tp_bind_text(st, 1, name);
        rc |= tp_bind_text(st, 2, sha);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *id = sqlite3_column_int64(st, 0);
        else
            ret = tp_sql_err(s, rc, sel, err);
        sqlite3_finalize(st);
    }
    if (ret == TP_OK) return tp_store_commit(s, err);
    tp_store_rollback(s);
    return ret;
}
