/* cmd_status.c — `telepathy status [--sweep NAME]`: pending / running / done / failed counts of a
 * sweep (or of every sweep), who holds the running items, the failures, and an ETA from the mean
 * time of the finished configurations. Stale claims are returned to pending first, so a dead
 * worker's item reads pending rather than running. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_store.h"
#include "run/sweep.h"
#include "run/sweep_sql.h"

static const char *USAGE =
    "usage: telepathy status [--sweep NAME] [--db PATH] [--stale S]\n"
    "\n"
    "Shows a sweep's pending / running / done / failed counts, the workers holding running\n"
    "items, the failed items with their error class, and an ETA (mean seconds per finished\n"
    "configuration x remaining / active workers). Without --sweep: one line per sweep.\n"
    "  --stale S   claims without a heartbeat for S seconds count as pending (default 120)\n"
    "\n"
    "exit status: 0 shown, 1 the db or sweep could not be read, 2 usage error\n";

static void fmt_secs(double s, char *out, size_t cap) {
    if (!isfinite(s))
        snprintf(out, cap, "unknown");
    else if (s < 90)
        snprintf(out, cap, "%.0f s", s);
    else if (s < 5400)
        snprintf(out, cap, "%.1f min", s / 60);
    else
        snprintf(out, cap, "%.1f h", s / 3600);
}

static tp_status show_one(tp_store *s, const char *name, double stale, tp_err *err) {
    tp_sweep sw;
    TP_TRY(tp_sweep_get(s, name, &sw, err));
    tp_status st = TP_OK;
    if (!tp_store_readonly(s)) st = tp_sweep_requeue_stale(s, sw.id, stale, 0, NULL, err);
    tp_sweep_counts c;
    if (st == TP_OK) st = tp_sweep_count(s, sw.id, &c, err);
    if (st != TP_OK) {
        tp_sweep_free(&sw);
        return st;
    }
    int64_t total = c.pending + c.running + c.done + c.failed;
    printf("sweep %s (uid %s, %lld configuration(s)%s%s)\n", sw.name, sw.uid, (long long)total,
           sw.script_path ? ", planned from " : "", sw.script_path ? sw.script_path : "");
    printf("  pending %lld  running %lld  done %lld  failed %lld\n", (long long)c.pending,
           (long long)c.running, (long long)c.done, (long long)c.failed);
    char a[32], b[32];
    fmt_secs(c.mean_seconds, a, sizeof a);
    int workers = c.workers > 0 ? c.workers : 1;
    double eta = c.mean_seconds * (double)(c.pending + c.running) / workers;
    fmt_secs(eta, b, sizeof b);
    if (c.pending + c.running == 0)
        printf("  finished (mean %s per configuration)\n", a);
    else
        printf("  mean %s per configuration; ETA %s with %d worker(s)%s\n", a, b, workers,
               c.workers ? "" : " (none running now)");
    if (sw.stopped) printf("  STOPPED: %s\n", sw.stopped);
    const char *sql = "SELECT id, seq, status, host, pid, worker, attempts, error_class, error, "
                      "(julianday('now') - julianday(heartbeat_at)) * 86400.0 FROM sweep_items "
                      "WHERE sweep_id = ?1 AND (status IN ('running', 'failed') OR "
                      "(status = 'pending' AND error IS NOT NULL)) ORDER BY status, seq LIMIT 50";
    sqlite3_stmt *q;
    st = tp_sw_prepare(s, sql, &q, err);
    if (st == TP_OK) {
        sqlite3_bind_int64(q, 1, sw.id);
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *status = (const char *)sqlite3_column_text(q, 2);
            const char *e = (const char *)sqlite3_column_text(q, 8);
            if (!strcmp(status, "running"))
                printf("  running  item %lld (seq %lld) on %s pid %d [%s], attempt %d, heartbeat "
                       "%.0f s ago\n",
                       (long long)sqlite3_column_int64(q, 0), (long long)sqlite3_column_int64(q, 1),
                       (const char *)sqlite3_column_text(q, 3), sqlite3_column_int(q, 4),
                       sqlite3_column_text(q, 5) ? (const char *)sqlite3_column_text(q, 5) : "-",
                       sqlite3_column_int(q, 6), sqlite3_column_double(q, 9));
            else
                printf("  %-8s item %lld (seq %lld), %d attempt(s) [%s]: %.300s\n", status,
                       (long long)sqlite3_column_int64(q, 0), (long long)sqlite3_column_int64(q, 1),
                       sqlite3_column_int(q, 6),
                       sqlite3_column_text(q, 7) ? (const char *)sqlite3_column_text(q, 7) : "-",
                       e ? e : "");
        }
        sqlite3_finalize(q);
    }
    tp_sweep_free(&sw);
    return st;
}

int tp_cmd_status(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "status";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *db = NULL, *sweep = NULL;
    double stale = 120;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--sweep", &missing)))
            sweep = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--stale", &missing))) {
            if (sscanf(v, "%lf", &stale) != 1 || stale <= 0)
                return tp_cli_usage_error(cmd, "--stale '%s': expected seconds > 0", v);
        } else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    tp_err err = {0};
    const char *path;
    tp_store *s = NULL;
    if (tp_cli_db_path(env, db, &path, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    if (access(path, F_OK) != 0) {
        tp_errf(&err, TP_EIO, "%s: no results db there (plan a sweep first)", path);
        return tp_cli_fail(cmd, &err);
    }
    tp_status st =
        tp_store_open(&s, path, access(path, W_OK) == 0 ? TP_STORE_RW : TP_STORE_RO, &err);
    if (st == TP_OK && sweep) st = show_one(s, sweep, stale, &err);
    if (st == TP_OK && !sweep) {
        sqlite3_stmt *q;
        st = tp_sw_prepare(s, "SELECT name FROM sweeps ORDER BY id", &q, &err);
        int n = 0;
        while (st == TP_OK && sqlite3_step(q) == SQLITE_ROW) {
            char name[TP_SWEEP_NAME_MAX];
            snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(q, 0));
            st = show_one(s, name, stale, &err);
            n++;
        }
        if (st == TP_OK) sqlite3_finalize(q);
        if (st == TP_OK && n == 0)
            printf("no sweeps in %s (telepathy plan SCRIPT --sweep NAME)\n", path);
    }
    tp_store_close(s);
    return st == TP_OK ? 0 : tp_cli_fail(cmd, &err);
}
