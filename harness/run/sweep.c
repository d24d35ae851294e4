/* sweep.c — the sweep and item lifecycle of sweep.h: create/look up sweeps, plan items, claim
 * (with stale-claim recovery), heartbeat, finish, release, stop, counts. Each operation is one
 * BEGIN IMMEDIATE transaction on the caller's connection. */
#include "run/sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run/sweep_sql.h"
#include "util/strutil.h"

#define NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

void tp_sweep_free(tp_sweep *sw) {
    if (!sw) return;
    free(sw->script_path);
    free(sw->script_sha256);
    free(sw->stopped);
    memset(sw, 0, sizeof *sw);
}

void tp_sweep_item_free(tp_sweep_item *it) {
    if (!it) return;
    free(it->config_json);
    free(it->spec_json);
    free(it->models_json);
    memset(it, 0, sizeof *it);
}

tp_status tp_sweep_name_check(const char *name, tp_err *err) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= TP_SWEEP_NAME_MAX)
        return tp_errf(err, TP_EINVAL, "sweep name: expected 1..%d characters, got %zu",
                       TP_SWEEP_NAME_MAX - 1, n);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return tp_errf(err, TP_EINVAL,
                           "sweep name '%s': character %zu ('%c') is not allowed; use letters, "
                           "digits, '.', '_' and '-' (it names shard files)",
                           name, i + 1, c);
    }
    return TP_OK;
}

static void random_uid(char out[33]) {
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    if (got != sizeof b) { /* no urandom: time and pid still tell two sweeps apart */
        uint64_t x = (uint64_t)time(NULL) * 6364136223846793005ULL ^ (uint64_t)getpid();
        for (int i = 0; i < 16; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            b[i] = (unsigned char)(x >> 56);
    }
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Reads the sweep row named name; *found = 0 when none. */
static tp_status read_sweep(tp_store *s, const char *name, tp_sweep *out, int *found, tp_err *err) {
    const char *sql =
        "SELECT id, name, uid, script_path, script_sha256, stopped FROM sweeps WHERE name = ?1";
    sqlite3_stmt *st;
    *found = 0;
    TP_TRY(tp_sw_prepare(s, sql, &st, err));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    tp_status ret = TP_OK;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->id = sqlite3_column_int64(st, 0);
        tp_strlcpy(out->name, (const char *)sqlite3_column_text(st, 1), sizeof out->name);
        const char *uid = (const char *)sqlite3_column_text(st, 2);
        tp_strlcpy(out->uid, uid ? uid : "", sizeof out->uid);
        out->script_path = tp_sw_col_dup(st, 3);
        out->script_sha256 = tp_sw_col_dup(st, 4);
        out->stopped = tp_sw_col_dup(st, 5);
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        ret = tp_sw_err(s, rc, sql, err);
    }
    sqlite3_finalize(st);
    return ret;
}

tp_status tp_sweep_get(tp_store *s, const char *name, tp_sweep *out, tp_err *err) {
    int found;
    TP_TRY(read_sweep(s, name, out, &found, err));
    if (found) return TP_OK;
    char names[512] = "";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(tp_store_db(s), "SELECT name FROM sweeps ORDER BY id", -1, &st, NULL) ==
        SQLITE_OK) {
        size_t o = 0;
        while (sqlite3_step(st) == SQLITE_ROW && o + 4 < sizeof names)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "",
                                  (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    return tp_errf(err, TP_EINVAL,
                   "%s: no sweep named '%s' (plan it first: telepathy plan SCRIPT.lua --sweep %s); "
                   "sweeps here: %s",
                   tp_store_path(s), name, name, names[0] ? names : "none");
}

tp_status tp_sweep_ensure(tp_store *s, const char *name, const char *uid, const char *script_path,
                          const char *script_sha256, tp_sweep *out, tp_err *err) {
    memset(out, 0, sizeof *out);
    TP_TRY(tp_sweep_name_check(name, err));
    TP_TRY(tp_sw_begin(s, err));
    int found;
    tp_status st = read_sweep(s, name, out, &found, err);
    if (st == TP_OK && found && uid && strcmp(uid, out->uid) != 0)
        st = tp_errf(err, TP_ESTATE,
                     "%s: sweep '%s' here has uid %s, not %s: that is another sweep of the same "
                     "name (planned in another results db); use another --sweep name",
                     tp_store_path(s), name, out->uid, uid);
    if (st == TP_OK && !found) {
        char fresh[33];
        if (!uid) random_uid(fresh);
        const char *sql = "INSERT INTO sweeps (name, uid, script_path, script_sha256) "
                          "VALUES (?1, ?2, ?3, ?4)";
        sqlite3_stmt *q;
        st = tp_sw_prepare(s, sql, &q, err);
        if (st == TP_OK) {
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, uid ? uid : fresh, -1, SQLITE_STATIC);
            if (script_path) sqlite3_bind_text(q, 3, script_path, -1, SQLITE_STATIC);
            if (script_sha256) sqlite3_bind_text(q, 4, script_sha256, -1, SQLITE_STATIC);
            st = tp_sw_done(s, q, sql, err);
            sqlite3_finalize(q);
        }
        if (st == TP_OK) st = read_sweep(s, name, out, &found, err);
    } else if (st == TP_OK && script_sha256 &&
               (!out->script_sha256 || strcmp(out->script_sha256, script_sha256) != 0)) {
        /* planned again from an edited script: remember the latest */
        const char *sql = "UPDATE sweeps SET script_path = ?2, script_sha256 = ?3 WHERE id = ?1";
        sqlite3_stmt *q;
        st = tp_sw_prepare(s, sql, &q, err);
        if (st == TP_OK) {
            sqlite3_bind_int64(q, 1, out->id);
            if (script_path) sqlite3_bind_text(q, 2, script_path, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, script_sha256, -1, SQLITE_STATIC);
            st = tp_sw_done(s, q, sql, err);
            sqlite3_finalize(q);
        }
        tp_sweep_free(out);
        if (st == TP_OK) st = read_sweep(s, name, out, &found, err);
    }
    if (st == TP_OK) st = tp_sw_commit(s, err);
    tp_sw_rollback(s);
    if (st != TP_OK) tp_sweep_free(out);
    return st;
}

tp_status tp_sweep_plan_add(tp_store *s, int64_t sweep_id, const char *hash,
                            const char *config_json, const char *spec_json, const char *models_json,
                            int *added, tp_err *err) {
    *added = 0;
    if (!hash || strlen(hash) != 64 || !config_json || !spec_json)
        return tp_errf(err, TP_EINVAL,
                       "%s: a planned item needs a 64-hex config hash, its config "
                       "and its spec",
                       tp_store_path(s));
    const char *sql =
        "INSERT OR IGNORE INTO sweep_items (sweep_id, seq, config_hash, config_json, spec_json, "
        "models_json, status, run_id, finished_at) "
        "SELECT ?1, (SELECT coalesce(max(seq), 0) + 1 FROM sweep_items WHERE sweep_id = ?1), ?2, "
        "?3, ?4, coalesce(?5, '{}'), CASE WHEN r.id IS NULL THEN 'pending' ELSE 'done' END, r.id, "
        "CASE WHEN r.id IS NULL THEN NULL ELSE " NOW " END "
        "FROM (SELECT 1) LEFT JOIN runs r ON r.config_hash = ?2 AND r.status = 'done'";
    TP_TRY(tp_sw_begin(s, err));
    sqlite3_stmt *q;
    tp_status st = tp_sw_prepare(s, sql, &q, err);
    if (st == TP_OK) {
        sqlite3_bind_int64(q, 1, sweep_id);
        sqlite3_bind_text(q, 2, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, config_json, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, spec_json, -1, SQLITE_STATIC);
        if (models_json) sqlite3_bind_text(q, 5, models_json, -1, SQLITE_STATIC);
        st = tp_sw_done(s, q, sql, err);
        sqlite3_finalize(q);
        if (st == TP_OK) *added = sqlite3_changes(tp_store_db(s)) > 0;
    }
    if (st == TP_OK) return tp_sw_commit(s, err);
    tp_sw_rollback(s);
    return st;
}

/* ---- claims --------------------------------------------------------------------------------- */

/* Inside a transaction: running items whose worker is gone go back to pending. */
static tp_status requeue_locked(tp_store *s, int64_t sweep_id, double stale_s, int exclusive,
                                int *requeued, tp_err *err) {
    if (stale_s <= 0) stale_s = 120;
    const char *sel =
        "SELECT id, host, pid, pid_start, "
        "(julianday('now') - julianday(coalesce(heartbeat_at, claimed_at))) * 86400.0 "
        "FROM sweep_items WHERE sweep_id = ?1 AND status = 'running'";
    const char *upd =
        "UPDATE sweep_items SET status = 'pending', error_class = ?2, error = ?3 WHERE id = ?1 "
        "AND status = 'running'";
    sqlite3_stmt *q, *u;
    TP_TRY(tp_sw_prepare(s, sel, &q, err));
    tp_status st = tp_sw_prepare(s, upd, &u, err);
    if (st != TP_OK) {
        sqlite3_finalize(q);
        return st;
    }
    sqlite3_bind_int64(q, 1, sweep_id);
    int rc;
    while (st == TP_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *host = (const char *)sqlite3_column_text(q, 1);
        int pid = sqlite3_column_int(q, 2);
        int64_t pstart = sqlite3_column_type(q, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 3);
        double age = sqlite3_column_double(q, 4);
        int local = host && !strcmp(host, tp_sw_host());
        char why[512];
        if (exclusive && !(local && pid == (int)getpid()))
            snprintf(why, sizeof why,
                     "an earlier attempt (pid %d on %s) ended without finishing it; reclaimed by "
                     "the same task",
                     pid, host ? host : "?");
        else if (local && tp_sw_proc_gone(pid, pstart))
            snprintf(why, sizeof why, "worker pid %d on %s died while running it", pid,
                     host ? host : "?");
        else if (age > stale_s)
            snprintf(why, sizeof why,
                     "the claim of pid %d on %s went stale (no heartbeat for %.0f s > %.0f s)", pid,
                     host ? host : "?", age, stale_s);
        else
            continue;
        sqlite3_reset(u);
        sqlite3_bind_int64(u, 1, sqlite3_column_int64(q, 0));
        sqlite3_bind_text(u, 2, "stale", -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 3, why, -1, SQLITE_TRANSIENT);
        st = tp_sw_done(s, u, upd, err);
        if (st == TP_OK && requeued) (*requeued)++;
    }
    if (st == TP_OK && rc != SQLITE_DONE) st = tp_sw_err(s, rc, sel, err);
    sqlite3_finalize(q);
    sqlite3_finalize(u);
    return st;
}

tp_status tp_sweep_requeue_stale(tp_store *s, int64_t sweep_id, double stale_s, int exclusive,
                                 int *requeued, tp_err *err) {
    int dummy = 0;
    if (!requeued) requeued = &dummy;
    *requeued = 0;
    TP_TRY(tp_sw_begin(s, err));
    tp_status st = requeue_locked(s, sweep_id, stale_s, exclusive, requeued, err);
    if (st == TP_OK) return tp_sw_commit(s, err);
    tp_sw_rollback(s);
    return st;
}

static tp_status claim_locked(tp_store *s, int64_t sweep_id, const tp_sweep_claim_opts *o,
                              tp_sweep_item *out, int *got, int *stopped, int *requeued,
                              tp_err *err) {
    const char *sql0 = "SELECT stopped FROM sweeps WHERE id = ?1";
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sql0, &q, err));
    sqlite3_bind_int64(q, 1, sweep_id);
    int rc = sqlite3_step(q);
    int is_stopped = rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return tp_sw_err(s, rc, sql0, err);
    if (rc == SQLITE_DONE)
        return tp_errf(err, TP_EINVAL, "%s: sweep %lld does not exist", tp_store_path(s),
                       (long long)sweep_id);
    if (is_stopped) {
        if (stopped) *stopped = 1;
        return TP_OK;
    }
    TP_TRY(requeue_locked(s, sweep_id, o ? o->stale_s : 0, o && o->exclusive, requeued, err));
    const char *sel = "SELECT id, seq, config_hash, config_json, spec_json, models_json, attempts "
                      "FROM sweep_items WHERE sweep_id = ?1 AND status = 'pending' "
                      "ORDER BY seq LIMIT 1";
    TP_TRY(tp_sw_prepare(s, sel, &q, err));
    sqlite3_bind_int64(q, 1, sweep_id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(q);
        return TP_OK;
    }
    if (rc != SQLITE_ROW) {
        tp_status st = tp_sw_err(s, rc, sel, err);
        sqlite3_finalize(q);
        return st;
    }
    out->id = sqlite3_column_int64(q, 0);
    out->sweep_id = sweep_id;
    out->seq = sqlite3_column_int64(q, 1);
    tp_strlcpy(out->config_hash, (const char *)sqlite3_column_text(q, 2), sizeof out->config_hash);
    out->config_json = tp_sw_col_dup(q, 3);
    out->spec_json = tp_sw_col_dup(q, 4);
    out->models_json = tp_sw_col_dup(q, 5);
    out->attempts = sqlite3_column_int(q, 6) + 1;
    sqlite3_finalize(q);
    if (!out->config_json || !out->spec_json || !out->models_json)
        return tp_errf(err, TP_ENOMEM, "sweep: out of memory reading item %lld",
                       (long long)out->id);
    const char *upd = "UPDATE sweep_items SET status = 'running', attempts = attempts + 1, "
                      "host = ?2, pid = ?3, pid_start = ?4, worker = ?5, claimed_at = " NOW
                      ", heartbeat_at = " NOW ", finished_at = NULL "
                      "WHERE id = ?1 AND status = 'pending'";
    TP_TRY(tp_sw_prepare(s, upd, &q, err));
    int64_t pstart = tp_sw_proc_start((int)getpid());
    sqlite3_bind_int64(q, 1, out->id);
    sqlite3_bind_text(q, 2, tp_sw_host(), -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)getpid());
    if (pstart >= 0) sqlite3_bind_int64(q, 4, pstart);
    if (o && o->worker) sqlite3_bind_text(q, 5, o->worker, -1, SQLITE_STATIC);
    tp_status st = tp_sw_done(s, q, upd, err);
    sqlite3_finalize(q);
    TP_TRY(st);
    /* the write lock is held, so this cannot happen; checked because a double claim would run a
     * configuration twice */
    if (sqlite3_changes(tp_store_db(s)) != 1)
        return tp_errf(err, TP_ESTATE, "%s: item %lld was claimed by another worker meanwhile",
                       tp_store_path(s), (long long)out->id);
    *got = 1;
    return TP_OK;
}

tp_status tp_sweep_claim(tp_store *s, int64_t sweep_id, const tp_sweep_claim_opts *o,
                         tp_sweep_item *out, int *got, int *stopped, int *requeued, tp_err *err) {
    memset(out, 0, sizeof *out);
    *got = 0;
    if (stopped) *stopped = 0;
    if (requeued) *requeued = 0;
    TP_TRY(tp_sw_begin(s, err));
    tp_status st = claim_locked(s, sweep_id, o, out, got, stopped, requeued, err);
    if (st == TP_OK) st = tp_sw_commit(s, err);
    tp_sw_rollback(s);
    if (st != TP_OK) {
        tp_sweep_item_free(out);
        *got = 0;
    }
    return st;
}

/* Runs one UPDATE of an item this process holds; TP_ESTATE when it holds it no longer. */
static tp_status update_mine(tp_store *s, int64_t item_id, const char *sql, const char *what,
                             void (*bind)(sqlite3_stmt *, const void *), const void *ctx,
                             tp_err *err) {
    TP_TRY(tp_sw_begin(s, err));
    sqlite3_stmt *q;
    tp_status st = tp_sw_prepare(s, sql, &q, err);
    if (st == TP_OK) {
        sqlite3_bind_int64(q, 1, item_id);
        sqlite3_bind_text(q, 2, tp_sw_host(), -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 3, (int)getpid());
        if (bind) bind(q, ctx);
        st = tp_sw_done(s, q, sql, err);
        sqlite3_finalize(q);
    }
    if (st == TP_OK && sqlite3_changes(tp_store_db(s)) != 1)
        st = tp_errf(err, TP_ESTATE,
                     "%s: %s item %lld: this worker (pid %d on %s) no longer holds its claim (it "
                     "went stale and was returned to pending, or was released)",
                     tp_store_path(s), what, (long long)item_id, (int)getpid(), tp_sw_host());
    if (st == TP_OK) return tp_sw_commit(s, err);
    tp_sw_rollback(s);
    return st;
}

#define MINE "WHERE id = ?1 AND status = 'running' AND host = ?2 AND pid = ?3"

tp_status tp_sweep_heartbeat(tp_store *s, int64_t item_id, tp_err *err) {
    return update_mine(s, item_id, "UPDATE sweep_items SET heartbeat_at = " NOW " " MINE,
                       "heartbeat of", NULL, NULL, err);
}

static void bind_outcome(sqlite3_stmt *q, const void *ctx) {
    const tp_sweep_outcome *o = ctx;
    sqlite3_bind_text(q, 4, o->ok ? "done" : o->retry ? "pending" : "failed", -1, SQLITE_STATIC);
    if (o->run_id > 0) sqlite3_bind_int64(q, 5, o->run_id);
    if (!o->ok && o->error) sqlite3_bind_text(q, 6, o->error, -1, SQLITE_STATIC);
    if (!o->ok && o->error_class) sqlite3_bind_text(q, 7, o->error_class, -1, SQLITE_STATIC);
    if (isfinite(o->seconds)) sqlite3_bind_double(q, 8, o->seconds);
}

tp_status tp_sweep_finish(tp_store *s, int64_t item_id, const tp_sweep_outcome *o, tp_err *err) {
    return update_mine(s, item_id,
                       "UPDATE sweep_items SET status = ?4, run_id = coalesce(?5, run_id), "
                       "error = ?6, error_class = ?7, seconds = coalesce(?8, seconds), "
                       "finished_at = " NOW " " MINE,
                       "finishing", bind_outcome, o, err);
}

static void bind_why(sqlite3_stmt *q, const void *ctx) {
    sqlite3_bind_text(q, 4, ctx, -1, SQLITE_STATIC);
}

tp_status tp_sweep_release(tp_store *s, int64_t item_id, const char *why, tp_err *err) {
    return update_mine(
        s, item_id,
        "UPDATE sweep_items SET status = 'pending', attempts = max(attempts - 1, 0), "
        "error = ?4, error_class = 'preempted' " MINE,
        "releasing", bind_why, why ? why : "released", err);
}

tp_status tp_sweep_stop(tp_store *s, int64_t sweep_id, const char *reason, tp_err *err) {
    const char *sql = "UPDATE sweeps SET stopped = ?2 WHERE id = ?1 AND stopped IS NULL";
    TP_TRY(tp_sw_begin(s, err));
    sqlite3_stmt *q;
    tp_status st = tp_sw_prepare(s, sql, &q, err);
    if (st == TP_OK) {
        sqlite3_bind_int64(q, 1, sweep_id);
        sqlite3_bind_text(q, 2, reason ? reason : "stopped", -1, SQLITE_STATIC);
        st = tp_sw_done(s, q, sql, err);
        sqlite3_finalize(q);
    }
    if (st == TP_OK) return tp_sw_commit(s, err);
    tp_sw_rollback(s);
    return st;
}

const char *tp_sweep_error_class(tp_status st) {
    switch (st) {
    case TP_EINVAL:
    case TP_ERANGE:
    case TP_EPLUGIN:
    case TP_EUNSUP:
        return "config";
    case TP_EFORMAT:
        return "data";
    case TP_EIO:
        return "io";
    case TP_ENOMEM:
        return "oom";
    case TP_EDB:
        return "db";
    case TP_ECUDA:
        return "cuda";
    case TP_EINTR:
        return "preempted";
    default:
        return "run";
    }
}

tp_status tp_sweep_count(tp_store *s, int64_t sweep_id, tp_sweep_counts *c, tp_err *err) {
    memset(c, 0, sizeof *c);
    c->mean_seconds = NAN;
    const char *sql =
        "SELECT sum(status = 'pending'), sum(status = 'running'), sum(status = 'done'), "
        "sum(status = 'failed'), avg(CASE WHEN status = 'done' THEN seconds END), "
        "count(DISTINCT CASE WHEN status = 'running' THEN host || ':' || pid END) "
        "FROM sweep_items WHERE sweep_id = ?1";
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sql, &q, err));
    sqlite3_bind_int64(q, 1, sweep_id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        c->pending = sqlite3_column_int64(q, 0);
        c->running = sqlite3_column_int64(q, 1);
        c->done = sqlite3_column_int64(q, 2);
        c->failed = sqlite3_column_int64(q, 3);
        if (sqlite3_column_type(q, 4) != SQLITE_NULL) c->mean_seconds = sqlite3_column_double(q, 4);
        c->workers = sqlite3_column_int(q, 5);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? TP_OK : tp_sw_err(s, rc, sql, err);
}
