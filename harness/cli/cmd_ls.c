/* cmd_ls.c — `telepathy ls`: one line per run in results.db (id, status, task, bridge, seed, the
 * main metric, start time), read through a read-only connection. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "store/store.h"

static const char *USAGE =
    "usage: telepathy ls [--db PATH] [--status S] [--task T] [--limit N]\n"
    "\n"
    "Lists runs, newest last: id, status, task, bridge, seed, main metric, start time (UTC).\n"
    "The main metric is the run's first result on the test split, preferring accuracy and\n"
    "exact_match.\n"
    "  --db PATH    results database (default: [paths] results)\n"
    "  --status S   only runs with status S: running, done, failed or interrupted\n"
    "  --task T     only runs of task T\n"
    "  --limit N    only the N most recent runs\n";

/* The main metric is chosen in SQL so `telepathy ls` and people's queries agree. */
static const char *SQL =
    "SELECT id, status, ifnull(task, '-'), ifnull(bridge, '-'), ifnull(seed, '-'), "
    "ifnull((SELECT metric || '=' || printf('%.4f', value) FROM results r WHERE r.run_id = "
    "runs.id ORDER BY (r.split = 'test') DESC, (r.metric IN ('accuracy', 'exact_match')) DESC, "
    "r.id LIMIT 1), '-'), replace(substr(started_at, 1, 19), 'T', ' ') "
    "FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR task = ?2) "
    "ORDER BY id DESC LIMIT ?3";

enum { NCOL = 7 };
static const char *const HEAD[NCOL] = {"id",   "status",      "task",   "bridge",
                                       "seed", "main metric", "started"};

int tp_cmd_ls(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "ls";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *db = NULL, *status = NULL, *task = NULL;
    long long limit = -1;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--task", &missing)))
            task = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--status", &missing))) {
            tp_run_status rs;
            if (tp_run_status_parse(v, &rs) != 0)
                return tp_cli_usage_error(cmd,
                                          "--status: expected running, done, failed or "
                                          "interrupted, got '%s'",
                                          v);
            status = v;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--limit", &missing))) {
            char *end;
            limit = strtoll(v, &end, 10);
            if (end == v || *end || limit < 1)
                return tp_cli_usage_error(cmd, "--limit: expected a positive integer, got '%s'", v);
        } else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    tp_err err = {0};
    tp_store *s;
    if (tp_cli_open_ro(env, db, &s, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    sqlite3 *h = tp_store_db(s);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(h, SQL, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        tp_errf(&err, TP_EDB, "%s: listing runs: %s", tp_store_path(s), sqlite3_errmsg(h));
        tp_store_close(s);
        return tp_cli_fail(cmd, &err);
    }
    if (status) sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    if (task) sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit);

    /* rows come newest first (for LIMIT); they are printed oldest first */
    char **cells = NULL;
    int nrows = 0, width[NCOL], ret = 0;
    for (int c = 0; c < NCOL; c++) width[c] = (int)strlen(HEAD[c]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **grown = realloc(cells, (size_t)(nrows + 1) * NCOL * sizeof *cells);
        if (!grown) {
            rc = SQLITE_NOMEM;
            break;
        }
        cells = grown;
        for (int c = 0; c < NCOL; c++) {
            const char *t = (const char *)sqlite3_column_text(st, c);
            char *cell = strdup(t ? t : "-");
            cells[nrows * NCOL + c] = cell;
            int w = cell ? (int)strlen(cell) : 0;
            if (w > width[c]) width[c] = w;
        }
        nrows++;
    }
    if (rc != SQLITE_DONE) {
        tp_errf(&err, TP_EDB, "%s: listing runs: %s", tp_store_path(s),
                rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(h));
        ret = tp_cli_fail(cmd, &err);
    } else if (nrows == 0) {
        printf("no runs%s in %s\n", status || task ? " match" : "", tp_store_path(s));
    } else {
        for (int c = 0; c < NCOL; c++)
            printf(c == 0 || c == 4 ? "%s%*s" : "%s%-*s", c ? "  " : "",
                   c == NCOL - 1 ? 0 : width[c], HEAD[c]);
        printf("\n");
        for (int r = nrows - 1; r >= 0; r--) {
            for (int c = 0; c < NCOL; c++) {
                const char *cell = cells[r * NCOL + c] ? cells[r * NCOL + c] : "?";
                printf(c == 0 || c == 4 ? "%s%*s" : "%s%-*s", c ? "  " : "",
                       c == NCOL - 1 ? 0 : width[c], cell);
            }
            printf("\n");
        }
    }
    for (int i = 0; i < nrows * NCOL; i++) free(cells[i]);
    free(cells);
    sqlite3_finalize(st);
    tp_store_close(s);
    return ret;
}
