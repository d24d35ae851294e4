/* merge.c — shard -> results.db folding of merge.h, through ATTACH and INSERT ... SELECT with
 * the column lists read from the schema (so tables added by later migrations come along). */
#include "run/merge.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/sweep_sql.h"
#include "store/schema_sql.h"
#include "util/strutil.h"

/* Comma-separated columns of table in schema db, without those listed in skip (NULL-ended). */
static tp_status columns(tp_store *s, const char *db, const char *table, const char *const *skip,
                         char *out, size_t cap, tp_err *err) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s', '%s') ORDER BY cid", table,
             db);
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sql, &q, err));
    size_t o = 0;
    out[0] = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(q, 0);
        int skipped = 0;
        for (int i = 0; skip && skip[i]; i++)
            if (!strcmp(c, skip[i])) skipped = 1;
        if (skipped) continue;
        if (o + strlen(c) + 4 >= cap) {
            sqlite3_finalize(q);
            return tp_errf(err, TP_ERANGE, "merge: table %s has too many columns", table);
        }
        o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", o ? ", " : "", c);
    }
    sqlite3_finalize(q);
    if (!o) return tp_errf(err, TP_EDB, "merge: table %s.%s has no columns", db, table);
    return TP_OK;
}

static tp_status exec_ids(tp_store *s, const char *sql, int64_t a, int64_t b, tp_err *err) {
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sql, &q, err));
    sqlite3_bind_int64(q, 1, a);
    sqlite3_bind_int64(q, 2, b);
    tp_status st = tp_sw_done(s, q, sql, err);
    sqlite3_finalize(q);
    return st;
}

/* Tables other than runs / sweep_items whose rows belong to a run (a run_id column). */
static tp_status child_tables(tp_store *s, char names[][64], int *n, tp_err *err) {
    const char *sql = "SELECT m.name FROM main.sqlite_master m WHERE m.type = 'table' AND "
                      "m.name NOT IN ('runs', 'sweep_items') AND EXISTS (SELECT 1 FROM "
                      "pragma_table_info(m.name) p WHERE p.name = 'run_id') ORDER BY m.name";
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sql, &q, err));
    *n = 0;
    while (sqlite3_step(q) == SQLITE_ROW && *n < 32)
        tp_strlcpy(names[(*n)++], (const char *)sqlite3_column_text(q, 0), 64);
    sqlite3_finalize(q);
    return TP_OK;
}

/* Copies shard run `from` as target run `to_id` (0 = a new id), with its child rows. */
static tp_status copy_run(tp_store *s, int64_t from, int64_t to_id, int64_t *new_id,
                          char children[][64], int nchild, tp_err *err) {
    static const char *const skip_run[] = {"id", "experiment_id", NULL};
    static const char *const skip_child[] = {"id", "run_id", NULL};
    char cols[4096], sql[9000];
    /* experiments are matched by (name, script_sha256) */
    TP_TRY(exec_ids(s,
                    "INSERT OR IGNORE INTO main.experiments (name, script_path, script_sha256, "
                    "created_at) SELECT e.name, e.script_path, e.script_sha256, e.created_at "
                    "FROM shard.experiments e JOIN shard.runs r ON r.experiment_id = e.id "
                    "WHERE r.id = ?1 AND ?2 = ?2",
                    from, 0, err));
    TP_TRY(columns(s, "main", "runs", skip_run, cols, sizeof cols, err));
    snprintf(sql, sizeof sql,
             "INSERT INTO main.runs (id, experiment_id, %s) SELECT CASE WHEN ?2 > 0 THEN ?2 END, "
             "(SELECT m.id FROM main.experiments m JOIN shard.experiments e ON m.name = e.name "
             "AND m.script_sha256 IS e.script_sha256 WHERE e.id = r.experiment_id), %s FROM "
             "shard.runs r WHERE r.id = ?1",
             cols, cols);
    TP_TRY(exec_ids(s, sql, from, to_id, err));
    *new_id = to_id > 0 ? to_id : sqlite3_last_insert_rowid(tp_store_db(s));
    /* a task killed mid-run never counts as finished */
    TP_TRY(exec_ids(s,
                    "UPDATE main.runs SET status = 'interrupted', error = coalesce(error, "
                    "'the task writing this shard ended without finishing the run') WHERE id = "
                    "?1 AND status = 'running' AND ?2 = ?2",
                    *new_id, 0, err));
    for (int i = 0; i < nchild; i++) {
        char chk[256];
        snprintf(chk, sizeof chk, "SELECT 1 FROM shard.sqlite_master WHERE name = '%s'",
                 children[i]);
        sqlite3_stmt *q;
        TP_TRY(tp_sw_prepare(s, chk, &q, err));
        int present = sqlite3_step(q) == SQLITE_ROW;
        sqlite3_finalize(q);
        if (!present) continue;
        TP_TRY(columns(s, "main", children[i], skip_child, cols, sizeof cols, err));
        snprintf(sql, sizeof sql,
                 "INSERT INTO main.\"%s\" (run_id, %s) SELECT ?2, %s FROM shard.\"%s\" WHERE "
                 "run_id = ?1",
                 children[i], cols, cols, children[i]);
        TP_TRY(exec_ids(s, sql, from, *new_id, err));
    }
    return TP_OK;
}

typedef struct run_ref {
    int64_t id;
    char hash[65];
    char status[16];
} run_ref;

static tp_status merge_runs(tp_store *s, tp_merge_stats *stats, tp_err *err) {
    char children[32][64];
    int nchild;
    TP_TRY(child_tables(s, children, &nchild, err));
    const char *sel = "SELECT r.id, r.config_hash, r.status, t.id, t.status FROM shard.runs r "
                      "LEFT JOIN main.runs t ON t.config_hash = r.config_hash ORDER BY r.id";
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sel, &q, err));
    tp_status st = TP_OK;
    int rc;
    while (st == TP_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t from = sqlite3_column_int64(q, 0);
        const char *sstat = (const char *)sqlite3_column_text(q, 2);
        int exists = sqlite3_column_type(q, 3) != SQLITE_NULL;
        int64_t tid = sqlite3_column_int64(q, 3);
        const char *tstat = exists ? (const char *)sqlite3_column_text(q, 4) : "";
        int64_t nid;
        if (!exists) {
            st = copy_run(s, from, 0, &nid, children, nchild, err);
            stats->runs_added++;
        } else if (strcmp(tstat, "done") != 0 && !strcmp(sstat, "done")) {
            /* same id, so sweep items and anything else pointing at it stay valid */
            st = exec_ids(s, "DELETE FROM main.runs WHERE id = ?1 AND ?2 = ?2", tid, 0, err);
            if (st == TP_OK) st = copy_run(s, from, tid, &nid, children, nchild, err);
            stats->runs_replaced++;
        } else {
            stats->runs_skipped++;
        }
    }
    if (st == TP_OK && rc != SQLITE_DONE) st = tp_sw_err(s, rc, sel, err);
    sqlite3_finalize(q);
    return st;
}

/* The shard's sweeps must be the target's (same uid) or new to it. */
static tp_status check_sweeps(tp_store *s, const char *shard, const char *only, tp_err *err) {
    const char *sel = "SELECT x.name, x.uid, x.script_path, x.script_sha256, t.uid FROM "
                      "shard.sweeps x LEFT JOIN main.sweeps t ON t.name = x.name";
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sel, &q, err));
    tp_status st = TP_OK;
    while (st == TP_OK && sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        const char *uid = (const char *)sqlite3_column_text(q, 1);
        const char *tuid = (const char *)sqlite3_column_text(q, 4);
        if (only && strcmp(name, only) != 0)
            st = tp_errf(err, TP_ESTATE,
                         "%s: this shard belongs to sweep '%s', not '%s' (--sweep); it was not "
                         "merged",
                         shard, name, only);
        else if (tuid && strcmp(tuid, uid) != 0)
            st = tp_errf(err, TP_ESTATE,
                         "%s: this shard belongs to another sweep named '%s' (uid %s; %s's sweep "
                         "of that name has uid %s): it was planned in another results db; it was "
                         "not merged",
                         shard, name, uid, tp_store_path(s), tuid);
    }
    sqlite3_finalize(q);
    return st;
}

static tp_status merge_items(tp_store *s, tp_merge_stats *stats, tp_err *err) {
    TP_TRY(exec_ids(s,
                    "INSERT OR IGNORE INTO main.sweeps (name, uid, script_path, script_sha256, "
                    "stopped, created_at) SELECT name, uid, script_path, script_sha256, stopped, "
                    "created_at FROM shard.sweeps WHERE ?1 = ?1 AND ?2 = ?2",
                    0, 0, err));
    /* items: add missing ones, then take the shard's outcome where the target has none better */
    TP_TRY(exec_ids(s,
                    "INSERT OR IGNORE INTO main.sweep_items (sweep_id, seq, config_hash, "
                    "config_json, spec_json, models_json) SELECT t.id, i.seq, i.config_hash, "
                    "i.config_json, i.spec_json, i.models_json FROM shard.sweep_items i JOIN "
                    "shard.sweeps x ON x.id = i.sweep_id JOIN main.sweeps t ON t.name = x.name "
                    "WHERE ?1 = ?1 AND ?2 = ?2",
                    0, 0, err));
    const char *upd =
        "UPDATE main.sweep_items AS m SET status = i.status, attempts = max(m.attempts, "
        "i.attempts), host = i.host, pid = i.pid, pid_start = i.pid_start, worker = i.worker, "
        "claimed_at = i.claimed_at, heartbeat_at = i.heartbeat_at, finished_at = i.finished_at, "
        "seconds = i.seconds, error = i.error, error_class = i.error_class, run_id = (SELECT "
        "r.id FROM main.runs r WHERE r.config_hash = i.config_hash) FROM shard.sweep_items i "
        "JOIN shard.sweeps x ON x.id = i.sweep_id JOIN main.sweeps t ON t.name = x.name "
        "WHERE m.sweep_id = t.id AND m.config_hash = i.config_hash AND m.status <> 'done' AND "
        "i.status IN ('done', 'failed') AND NOT (m.status = 'failed' AND i.status = 'failed' "
        "AND m.attempts >= i.attempts) AND ?1 = ?1 AND ?2 = ?2";
    TP_TRY(exec_ids(s, upd, 0, 0, err));
    stats->items_updated += sqlite3_changes(tp_store_db(s));
    return TP_OK;
}

/* The shard must be a results db of exactly this binary's schema. */
static tp_status check_shard(tp_store *s, const char *shard, tp_err *err) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(shard, &db, SQLITE_OPEN_READONLY, NULL);
    int64_t uv = -1, objs = 0;
    if (rc == SQLITE_OK) {
        sqlite3_stmt *q;
        if ((rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL)) == SQLITE_OK) {
            if ((rc = sqlite3_step(q)) == SQLITE_ROW) uv = sqlite3_column_int64(q, 0), rc = 0;
            sqlite3_finalize(q);
        }
        if (rc == SQLITE_OK && sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &q,
                                                  NULL) == SQLITE_OK) {
            if (sqlite3_step(q) == SQLITE_ROW) objs = sqlite3_column_int64(q, 0);
            sqlite3_finalize(q);
        }
    }
    const char *emsg = db ? sqlite3_errmsg(db) : "out of memory";
    tp_status st = TP_OK;
    if (rc != SQLITE_OK)
        st = tp_errf(err, TP_EDB, "%s: cannot read it as a SQLite db: %s", shard, emsg);
    else if (uv == 0)
        st = tp_errf(err, TP_EDB,
                     "%s: not a telepathy results db (user_version 0, %lld schema objects)", shard,
                     (long long)objs);
    else if (uv < tp_schema_version)
        st = tp_errf(err, TP_EDB,
                     "%s: shard has schema version %lld, older than this telepathy's %d; migrate "
                     "it first (telepathy db migrate --db %s) or merge with the telepathy that "
                     "wrote it",
                     shard, (long long)uv, tp_schema_version, shard);
    else if (uv > tp_schema_version)
        st = tp_errf(err, TP_EDB,
                     "%s: shard has schema version %lld, newer than this telepathy's %d; merge "
                     "with the newer telepathy that wrote it",
                     shard, (long long)uv, tp_schema_version);
    sqlite3_close(db);
    (void)s;
    return st;
}

tp_status tp_merge_shard(tp_store *s, const char *shard, const char *only, tp_merge_stats *stats,
                         tp_err *err) {
    memset(stats, 0, sizeof *stats);
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(shard, a) && realpath(tp_store_path(s), b) && !strcmp(a, b))
        return tp_errf(err, TP_EINVAL, "%s: is the target db itself; nothing to merge", shard);
    if (!realpath(shard, a)) return tp_errf(err, TP_EIO, "%s: no such shard file", shard);
    TP_TRY(check_shard(s, shard, err));
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, "ATTACH DATABASE ?1 AS shard", &q, err));
    sqlite3_bind_text(q, 1, shard, -1, SQLITE_STATIC);
    tp_status st = tp_sw_done(s, q, "ATTACH DATABASE shard", err);
    sqlite3_finalize(q);
    TP_TRY(st);
    st = tp_sw_begin(s, err);
    if (st == TP_OK) st = check_sweeps(s, shard, only, err);
    if (st == TP_OK) st = merge_runs(s, stats, err);
    if (st == TP_OK) st = merge_items(s, stats, err);
    if (st == TP_OK) {
        int64_t bad = 0;
        if (tp_sw_prepare(s, "PRAGMA main.foreign_key_check", &q, err) == TP_OK) {
            while (sqlite3_step(q) == SQLITE_ROW) bad++;
            sqlite3_finalize(q);
        }
        if (bad)
            st = tp_errf(err, TP_EDB,
                         "%s: merging would leave %lld row(s) violating foreign "
                         "keys; nothing was merged",
                         shard, (long long)bad);
    }
    if (st == TP_OK)
        st = tp_sw_commit(s, err);
    else
        tp_sw_rollback(s);
    if (st != TP_OK)
        tp_err_prefix(err, "merge %s (rolled back; results db unchanged by it)", shard);
    sqlite3_exec(tp_store_db(s), "DETACH DATABASE shard", NULL, NULL, NULL);
    if (st != TP_OK) memset(stats, 0, sizeof *stats);
    return st;
}
