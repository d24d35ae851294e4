/* cmd_show.c — `telepathy show RUN`: everything results.db knows about one run (identity and
 * status, error and traceback, the resolved config, results with intervals, a per-metric summary
 * of the training curves, predictions per split, latency, artifacts, environment), read through
 * a read-only connection. RUN is a run id or a unique prefix of its config hash. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "store/store.h"

static const char *USAGE =
    "usage: telepathy show RUN [--db PATH]\n"
    "\n"
    "Shows one run: status, identity (task, bridge, models, seed, git, host), error and\n"
    "traceback, the resolved config, results, a summary of each logged metric, predictions,\n"
    "latency, artifacts and environment. RUN is a run id (see `telepathy ls`) or a unique\n"
    "prefix of its config hash.\n"
    "  --db PATH    results database (default: [paths] results)\n";

typedef struct show {
    tp_store *s;
    sqlite3 *db;
    int64_t id;
    tp_err err;
} show;

static const char *col(sqlite3_stmt *st, int c) {
    const char *t = (const char *)sqlite3_column_text(st, c);
    return t ? t : "";
}

/* Runs sql with ?1 = the run id and calls row() per row; 0 or an error status. */
static tp_status each_row(show *sh, const char *sql, void (*row)(sqlite3_stmt *, void *), void *ctx,
                          int *count) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(sh->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return tp_errf(&sh->err, TP_EDB, "%s: %s: %s", tp_store_path(sh->s), sql,
                       sqlite3_errmsg(sh->db));
    sqlite3_bind_int64(st, 1, sh->id);
    int n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row(st, ctx);
        n++;
    }
    tp_status ret = TP_OK;
    if (rc != SQLITE_DONE)
        ret = tp_errf(&sh->err, TP_EDB, "%s: %s: %s", tp_store_path(sh->s), sql,
                      sqlite3_errmsg(sh->db));
    sqlite3_finalize(st);
    if (count) *count = n;
    return ret;
}

/* ---- sections ------------------------------------------------------------------------------- */

static void print_field(const char *name, const char *value) {
    if (value && *value) printf("  %-12s %s\n", name, value);
}

static void run_row(sqlite3_stmt *st, void *ctx) {
    (void)ctx;
    printf("run %s  %s  (attempt %s)\n", col(st, 0), col(st, 1), col(st, 2));
    print_field("config hash", col(st, 3));
    print_field("experiment", col(st, 4));
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s%s", col(st, 5), *col(st, 6) ? " version " : "", col(st, 6));
    print_field("task", sqlite3_column_type(st, 5) == SQLITE_NULL ? NULL : buf);
    snprintf(buf, sizeof buf, "%s%s%s", col(st, 7), *col(st, 8) ? " version " : "", col(st, 8));
    print_field("bridge", sqlite3_column_type(st, 7) == SQLITE_NULL ? NULL : buf);
    print_field("sender", col(st, 9));
    print_field("receiver", col(st, 10));
    print_field("seed", col(st, 11));
    print_field("plugins", col(st, 12));
    if (sqlite3_column_type(st, 13) != SQLITE_NULL) {
        const char *dirty = sqlite3_column_type(st, 14) == SQLITE_NULL ? ""
                            : sqlite3_column_int(st, 14)               ? " (uncommitted changes)"
                                                                       : " (clean)";
        snprintf(buf, sizeof buf, "%s%s", col(st, 13), dirty);
        print_field("git", buf);
    }
    snprintf(buf, sizeof buf, "%s, pid %s", col(st, 15), col(st, 16));
    print_field("host", buf);
    print_field("device", col(st, 17));
    print_field("started", col(st, 18));
    if (sqlite3_column_type(st, 19) != SQLITE_NULL) {
        snprintf(buf, sizeof buf, "%s (%.1f s)", col(st, 19), sqlite3_column_double(st, 22));
        print_field("ended", buf);
    }
    print_field("error", col(st, 20));
    if (sqlite3_column_type(st, 21) != SQLITE_NULL) printf("  traceback:\n%s\n", col(st, 21));
}

static void config_row(sqlite3_stmt *st, void *ctx) {
    (void)ctx;
    json_error_t jerr;
    json_t *j = json_loads(col(st, 0), 0, &jerr);
    char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    printf("config:\n%s\n", pretty ? pretty : col(st, 0));
    free(pretty);
    json_decref(j);
}

static void result_row(sqlite3_stmt *st, void *ctx) {
    int *first = ctx;
    if (*first) {
        printf("results:\n  %-10s %-16s %10s  %-26s %7s  %s\n", "split", "metric", "value",
               "interval", "n", "scheme");
        *first = 0;
    }
    char ci[64] = "-";
    if (sqlite3_column_type(st, 3) != SQLITE_NULL && sqlite3_column_type(st, 4) != SQLITE_NULL)
        snprintf(ci, sizeof ci, "[%.4f, %.4f] %s", sqlite3_column_double(st, 3),
                 sqlite3_column_double(st, 4), col(st, 5));
    printf("  %-10s %-16s %10.4f  %-26s %7s  %s\n", col(st, 0), col(st, 1),
           sqlite3_column_double(st, 2), ci,
           sqlite3_column_type(st, 6) == SQLITE_NULL ? "-" : col(st, 6), col(st, 7));
}

static void metric_row(sqlite3_stmt *st, void *ctx) {
    int *first = ctx;
    if (*first) {
        printf("metrics:\n  %-24s %7s %15s %12s %12s %12s\n", "name", "points", "steps", "last",
               "min", "max");
        *first = 0;
    }
    char steps[48];
    snprintf(steps, sizeof steps, "%s..%s", col(st, 2), col(st, 3));
    printf("  %-24s %7s %15s %12.6g %12.6g %12.6g\n", col(st, 0), col(st, 1), steps,
           sqlite3_column_double(st, 4), sqlite3_column_double(st, 5),
           sqlite3_column_double(st, 6));
}

static void prediction_row(sqlite3_stmt *st, void *ctx) {
    int *first = ctx;
    if (*first) {
        printf("predictions:\n");
        *first = 0;
    }
    if (sqlite3_column_type(st, 2) == SQLITE_NULL)
        printf("  %-10s %s examples\n", col(st, 0), col(st, 1));
    else
        printf("  %-10s %s examples, %s scored, accuracy %.4f\n", col(st, 0), col(st, 1),
               col(st, 2), sqlite3_column_double(st, 3));
}

static void latency_row(sqlite3_stmt *st, void *ctx) {
    int *first = ctx;
    if (*first) {
        printf("latency:\n  %-18s %6s %7s %12s %10s %6s %14s  %s\n", "stage", "batch", "seq_len",
               "ms", "± ms", "reps", "peak bytes", "device");
        *first = 0;
    }
    printf("  %-18s %6s %7s %12.3f %10s %6s %14s  %s\n", col(st, 0), col(st, 1), col(st, 2),
           sqlite3_column_double(st, 3), col(st, 4), col(st, 5), col(st, 6), col(st, 7));
}

static void artifact_row(sqlite3_stmt *st, void *ctx) {
    int *first = ctx;
    if (*first) {
        printf("artifacts:\n");
        *first = 0;
    }
    printf("  %-12s %s  (%s bytes, sha256 %s)\n", col(st, 0), col(st, 1),
           sqlite3_column_type(st, 2) == SQLITE_NULL ? "?" : col(st, 2),
           sqlite3_column_type(st, 3) == SQLITE_NULL ? "?" : col(st, 3));
}

static void env_row(sqlite3_stmt *st, void *ctx) {
    (void)ctx;
    printf("environment:\n");
    for (int c = 0; c < sqlite3_column_count(st); c++)
        if (sqlite3_column_type(st, c) != SQLITE_NULL)
            printf("  %-18s %s\n", sqlite3_column_name(st, c), col(st, c));
}

static tp_status show_run(show *sh) {
    int n = 0, first = 1;
    TP_TRY(each_row(sh,
                    "SELECT r.id, r.status, r.attempt, r.config_hash, "
                    "e.name || ifnull(' (' || e.script_path || ')', ''), r.task, "
                    "ifnull(r.task_version, ''), r.bridge, ifnull(r.bridge_version, ''), "
                    "r.sender, r.receiver, r.seed, r.plugins_json, r.git_commit, r.git_dirty, "
                    "r.host, r.pid, r.device, r.started_at, r.ended_at, r.error, r.traceback, "
                    "(julianday(r.ended_at) - julianday(r.started_at)) * 86400.0 "
                    "FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id "
                    "WHERE r.id = ?1",
                    run_row, NULL, &n));
    TP_TRY(each_row(sh, "SELECT config_json FROM runs WHERE id = ?1", config_row, NULL, NULL));
    TP_TRY(each_row(sh,
                    "SELECT split, metric, value, ci_low, ci_high, ifnull(ci_method, ''), n, "
                    "scheme FROM results WHERE run_id = ?1 ORDER BY split, metric, scheme",
                    result_row, &first, NULL));
    first = 1;
    TP_TRY(each_row(sh,
                    "SELECT name, count(*), min(step), max(step), "
                    "(SELECT value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.name = "
                    "m.name ORDER BY step DESC LIMIT 1), min(value), max(value) "
                    "FROM metrics m WHERE run_id = ?1 GROUP BY name ORDER BY name",
                    metric_row, &first, NULL));
    first = 1;
    TP_TRY(each_row(sh,
                    "SELECT split, count(*), count(correct), avg(correct) FROM predictions "
                    "WHERE run_id = ?1 GROUP BY split ORDER BY split",
                    prediction_row, &first, NULL));
    first = 1;
    TP_TRY(each_row(sh,
                    "SELECT stage, ifnull(batch, '-'), ifnull(seq_len, '-'), ms, "
                    "ifnull(printf('%.3f', ms_std), '-'), ifnull(reps, '-'), "
                    "ifnull(peak_bytes, '-'), ifnull(device, '') FROM latency WHERE run_id = ?1 "
                    "ORDER BY id",
                    latency_row, &first, NULL));
    first = 1;
    TP_TRY(each_row(sh,
                    "SELECT kind, path, bytes, sha256 FROM artifacts WHERE run_id = ?1 "
                    "ORDER BY id",
                    artifact_row, &first, NULL));
    TP_TRY(each_row(sh,
                    "SELECT telepathy_version, compiler, build_type, os, cpu, cuda_version, "
                    "cublas_version, cudnn_version, driver_version, gpu, lua_version, "
                    "sqlite_version, plugins_json, recorded_at FROM environment "
                    "WHERE run_id = ?1",
                    env_row, NULL, NULL));
    return TP_OK;
}

/* RUN as an id, or as a config-hash prefix that must match exactly one run. */
static tp_status resolve_run(show *sh, const char *arg) {
    char *end;
    long long id = strtoll(arg, &end, 10);
    sqlite3_stmt *st;
    const char *sql = (*arg && !*end) ? "SELECT id FROM runs WHERE id = ?1"
                                      : "SELECT id FROM runs WHERE config_hash LIKE ?1 || '%' "
                                        "ESCAPE '\\' LIMIT 2";
    if (sqlite3_prepare_v2(sh->db, sql, -1, &st, NULL) != SQLITE_OK)
        return tp_errf(&sh->err, TP_EDB, "%s: %s", tp_store_path(sh->s), sqlite3_errmsg(sh->db));
    if (*arg && !*end)
        sqlite3_bind_int64(st, 1, id);
    else
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sh->id = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return tp_errf(&sh->err, TP_EDB, "%s: %s", tp_store_path(sh->s), sqlite3_errmsg(sh->db));
    if (n == 0)
        return tp_errf(&sh->err, TP_EINVAL, "no run '%s' in %s (`telepathy ls` lists the runs)",
                       arg, tp_store_path(sh->s));
    if (n > 1)
        return tp_errf(&sh->err, TP_EINVAL,
                       "'%s' matches several config hashes in %s; give more characters or the "
                       "run id",
                       arg, tp_store_path(sh->s));
    return TP_OK;
}

int tp_cmd_show(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "show";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *db = NULL, *run = NULL;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else if (argv[i][0] == '-')
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!run)
            run = argv[i];
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!run) return tp_cli_usage_error(cmd, "missing RUN (a run id from `telepathy ls`)");
    if (strpbrk(run, "%_\\"))
        return tp_cli_usage_error(cmd, "RUN: expected a run id or config hash prefix, got '%s'",
                                  run);
    show sh = {0};
    if (tp_cli_open_ro(env, db, &sh.s, &sh.err) != TP_OK) return tp_cli_fail(cmd, &sh.err);
    sh.db = tp_store_db(sh.s);
    tp_status st = resolve_run(&sh, run);
    if (st == TP_OK) st = show_run(&sh);
    tp_store_close(sh.s);
    return st == TP_OK ? 0 : tp_cli_fail(cmd, &sh.err);
}
