/* test_store.c — the results store: fresh schema, results.sql == migrations 001..N, migration
 * from an older user_version, refusal of newer/foreign files, the run lifecycle and records,
 * interrupted-run detection (dead pid, recycled pid, kill -9 during writes), the read-only mode,
 * and 4 processes x 200 writes with no lock failure and no lost row.
 *
 * Helper modes for the shell tests: `test_store --hold-run DB` (tests/store/kill9.sh) begins a
 * run, writes a metric, prints "ready <run id>" and sleeps until killed; `test_store --make-v1
 * DB` (tests/store/cli_store.sh) writes a schema-version-1 database holding one run. */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/schema_sql.h"
#include "store/store.h"
#include "tp_test.h"

static const char *db_path(const char *name) {
    static char buf[8][600];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 600, "%s/%s", tp_test_tmpdir(), name);
    unlink(p);
    char side[640];
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -12345;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "  q_int(%s): %s\n", sql, sqlite3_errmsg(db));
        return v;
    }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* the text of the first column of the first row, copied into a static buffer */
static const char *q_text(sqlite3 *db, const char *sql) {
    static char out[2048];
    sqlite3_stmt *st;
    snprintf(out, sizeof out, "<error>");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return out;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, sizeof out, "%s", t ? t : "<null>");
    } else {
        snprintf(out, sizeof out, "<no row>");
    }
    sqlite3_finalize(st);
    return out;
}

static void raw_exec(const char *path, const char *sql) {
    sqlite3 *db;
    TP_CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *e = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &e);
    TP_CHECKF(rc == SQLITE_OK, "%s: %s", sql, e ? e : "?");
    sqlite3_free(e);
    sqlite3_close(db);
}

static void print_problem(void *ctx, const char *p) {
    (*(int *)ctx)++;
    fprintf(stderr, "  problem: %s\n", p);
}

static int check_problems(const char *path) {
    int n = -1, seen = 0;
    tp_err err = {0};
    tp_status st = tp_store_check(path, print_problem, &seen, &n, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    TP_CHECK(n == seen);
    return n;
}

static tp_run_meta meta(const char *hash) {
    tp_run_meta m = {0};
    m.config_json = "{\"bridge\":\"perceiver\",\"seed\":1}";
    m.config_hash = hash;
    m.seed = 1;
    m.task = "toy";
    m.task_version = "1";
    m.bridge = "perceiver";
    m.bridge_version = "1.0";
    m.sender = "tiny-llama";
    m.receiver = "tiny-mistral";
    m.git_commit = "abc123";
    m.git_dirty = 1;
    m.device = "cpu";
    return m;
}

/* ---- schema ------------------------------------------------------------------------------- */

static void test_fresh_schema(void) {
    const char *p = db_path("fresh.db");
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    sqlite3 *db = tp_store_db(s);
    TP_CHECK(q_int(db, "PRAGMA user_version") == tp_schema_version);
    TP_CHECK(!strcmp(q_text(db, "PRAGMA journal_mode"), "wal"));
    TP_CHECK(q_int(db, "PRAGMA foreign_keys") == 1);
    TP_CHECK(q_int(db, "PRAGMA busy_timeout") == TP_STORE_BUSY_TIMEOUT_MS);
    const char *tables[] = {"experiments", "runs",    "metrics",   "results",
                            "predictions", "latency", "artifacts", "environment"};
    for (int i = 0; i < 8; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE name = '%s'",
                 tables[i]);
        TP_CHECKF(q_int(db, sql) == 1, "table %s", tables[i]);
    }
    tp_store_close(s);
    /* reopening an existing current db changes nothing */
    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    tp_store_close(s);
    TP_CHECK(check_problems(p) == 0);
}

static void test_results_sql_equals_migrations(void) {
    const char *a = db_path("by_results_sql.db"), *b = db_path("by_migrations.db");
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, a, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    tp_store_close(s);
    int from = -1, to = -1;
    TP_CHECKF(tp_store_migrate(b, tp_schema_version, &from, &to, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(from == 0 && to == tp_schema_version);
    sqlite3 *da, *dbb;
    sqlite3_open(a, &da);
    sqlite3_open(b, &dbb);
    int seen = 0;
    TP_CHECK(tp_store_schema_diff(da, dbb, print_problem, &seen) == 0);
    TP_CHECK(tp_store_schema_diff(dbb, da, print_problem, &seen) == 0);
    /* the comparison can fail: a schema missing a column and an index is reported */
    sqlite3_exec(dbb, "ALTER TABLE latency DROP COLUMN device; DROP INDEX latency_run;", NULL, NULL,
                 NULL);
    seen = 0;
    int n = tp_store_schema_diff(da, dbb, NULL, NULL);
    TP_CHECKF(n == 2, "diff reported %d differences, expected 2", n);
    sqlite3_close(da);
    sqlite3_close(dbb);
    TP_CHECK(check_problems(b) == 2);
}

static void test_migrate_from_v1(void) {
    const char *p = db_path("old.db");
    tp_err err = {0};
    int from = -1, to = -1;
    TP_CHECKF(tp_store_migrate(p, 1, &from, &to, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(from == 0 && to == 1);
    /* data written by a version-1 binary */
    raw_exec(p, "INSERT INTO runs (id, config_json, config_hash, status, host, pid) VALUES "
                "(1, '{}', 'h-old', 'done', 'elsewhere', 1);"
                "INSERT INTO results (run_id, metric, value, n, scheme) VALUES "
                "(1, 'accuracy', 0.75, 200, 'first_token');"
                "INSERT INTO predictions (run_id, example_id, gold, prediction, correct) VALUES "
                "(1, 'ex1', 'positive', 'negative', 0);");

    tp_store *s = NULL;
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_EDB && !s);
    TP_CHECKF(strstr(err.msg, "telepathy db migrate") && strstr(err.msg, "old.db") &&
                  strstr(err.msg, "version 1"),
              "%s", err.msg);
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RO, &err) == TP_EDB && !s);
    int seen = 0, n = -1;
    TP_CHECK(tp_store_check(p, print_problem, &seen, &n, &err) == TP_OK && n == 1);

    TP_CHECKF(tp_store_migrate(p, tp_schema_version, &from, &to, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(from == 1 && to == tp_schema_version);
    TP_CHECK(check_problems(p) == 0);
    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    sqlite3 *db = tp_store_db(s);
    TP_CHECK(!strcmp(q_text(db, "SELECT split FROM results WHERE run_id = 1"), "test"));
    TP_CHECK(q_int(db, "SELECT n FROM results WHERE run_id = 1") == 200);
    TP_CHECK(!strcmp(q_text(db, "SELECT prediction FROM predictions WHERE example_id = 'ex1'"),
                     "negative"));
    /* the new unique key admits the same metric on another split */
    tp_result_row r = {"accuracy", 0.8, NAN, NAN, NULL, 50, "first_token", "validation"};
    TP_CHECKF(tp_store_results_add(s, 1, &r, 1, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(q_int(db, "SELECT count(*) FROM results WHERE run_id = 1") == 2);
    tp_environment env = {0};
    env.gpu = "none";
    TP_CHECKF(tp_store_environment_set(s, 1, &env, &err) == TP_OK, "%s", err.msg);
    tp_store_close(s);
    /* migrating a current db is a no-op */
    TP_CHECK(tp_store_migrate(p, tp_schema_version, &from, &to, &err) == TP_OK &&
             from == tp_schema_version && to == tp_schema_version);
}

static void test_refuses_newer_and_foreign(void) {
    const char *p = db_path("newer.db");
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK);
    tp_store_close(s);
    raw_exec(p, "PRAGMA user_version = 99");
    s = NULL;
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_EDB && !s);
    TP_CHECKF(strstr(err.msg, "newer") && strstr(err.msg, "99"), "%s", err.msg);
    TP_CHECK(tp_store_migrate(p, tp_schema_version, NULL, NULL, &err) == TP_EDB);
    TP_CHECKF(strstr(err.msg, "newer"), "%s", err.msg);

    const char *f = db_path("foreign.db");
    raw_exec(f, "CREATE TABLE notes (x TEXT)");
    TP_CHECK(tp_store_open(&s, f, TP_STORE_RW, &err) == TP_EDB && !s);
    TP_CHECKF(strstr(err.msg, "not a telepathy results db") && strstr(err.msg, "foreign.db"), "%s",
              err.msg);
    TP_CHECK(tp_store_migrate(f, tp_schema_version, NULL, NULL, &err) == TP_EDB);
    sqlite3 *db;
    sqlite3_open(f, &db);
    TP_CHECK(q_int(db, "SELECT count(*) FROM sqlite_master") == 1); /* untouched */
    sqlite3_close(db);

    const char *g = db_path("garbage.db");
    FILE *fp = fopen(g, "wb");
    fputs("this is not an sqlite database, just some text that is long enough to have a header "
          "of one hundred bytes or so............................................",
          fp);
    fclose(fp);
    TP_CHECK(tp_store_open(&s, g, TP_STORE_RW, &err) == TP_EDB && !s);
    TP_CHECKF(strstr(err.msg, "garbage.db"), "%s", err.msg);
    int n;
    TP_CHECK(tp_store_check(g, NULL, NULL, &n, &err) != TP_OK);
    TP_CHECK(tp_store_open(&s, db_path("missing.db"), TP_STORE_RO, &err) == TP_EIO);
    TP_CHECKF(strstr(err.msg, "missing.db"), "%s", err.msg);
}

/* ---- runs and records ----------------------------------------------------------------------- */

static void test_run_lifecycle(void) {
    const char *p = db_path("life.db");
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    sqlite3 *db = tp_store_db(s);
    int64_t exp = 0;
    TP_CHECKF(tp_store_experiment_ensure(s, "sweep", "exp.lua", "s1", &exp, &err) == TP_OK, "%s",
              err.msg);
    int64_t exp2 = 0;
    TP_CHECK(tp_store_experiment_ensure(s, "sweep", "exp.lua", "s1", &exp2, &err) == TP_OK &&
             exp2 == exp && exp > 0);
    TP_CHECK(tp_store_experiment_ensure(s, "sweep", "exp.lua", "s2", &exp2, &err) == TP_OK &&
             exp2 != exp);

    tp_run_meta m = meta("hash-a");
    m.experiment_id = exp;
    int64_t id = 0, found = -1;
    int attempt = 0;
    tp_run_status rs;
    TP_CHECK(tp_store_run_find(s, "hash-a", &found, &rs, NULL, &err) == TP_OK && found == 0);
    TP_CHECKF(tp_store_run_begin(s, &m, &id, &attempt, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(id > 0 && attempt == 1);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT status || ' ' || pid || ' ' || git_dirty FROM runs WHERE id = %lld",
             (long long)id);
    char want[64];
    snprintf(want, sizeof want, "running %d 1", (int)getpid());
    TP_CHECKF(!strcmp(q_text(db, sql), want), "%s", q_text(db, sql));
    TP_CHECK(q_int(db, "SELECT count(*) FROM runs WHERE host IS NOT NULL AND started_at "
                       "IS NOT NULL AND ended_at IS NULL") == 1);
    /* a second begin of the same config while it runs (live pid) is refused */
    int64_t id2;
    TP_CHECK(tp_store_run_begin(s, &m, &id2, NULL, &err) == TP_ESTATE);
    TP_CHECKF(strstr(err.msg, "being run by pid"), "%s", err.msg);

    tp_metric_row mr[3] = {{0, "train/loss", 2.5}, {1, "train/loss", 2.0}, {1, "lr", 1e-4}};
    TP_CHECKF(tp_store_metrics_add(s, id, mr, 3, &err) == TP_OK, "%s", err.msg);
    tp_result_row rr = {"accuracy", 0.9, 0.85, 0.94, "wilson", 200, "first_token", NULL};
    TP_CHECKF(tp_store_results_add(s, id, &rr, 1, &err) == TP_OK, "%s", err.msg);
    tp_prediction_row pr[2] = {
        {NULL, "0", "eh0", "ph0", "th0", "positive", "positive", 1, -0.1},
        {NULL, "1", "eh1", "ph1", "th1", "negative", "positive", 0, NAN},
    };
    TP_CHECKF(tp_store_predictions_add(s, id, pr, 2, &err) == TP_OK, "%s", err.msg);
    tp_latency_row lr = {"bridge", 8, 64, 10, 1.5, 0.1, -1, "cpu"};
    TP_CHECKF(tp_store_latency_add(s, id, &lr, 1, &err) == TP_OK, "%s", err.msg);
    TP_CHECKF(tp_store_artifact_add(s, id, "checkpoint", "ckpt/a.safetensors", "00ff", 1234,
                                    &err) == TP_OK,
              "%s", err.msg);
    tp_environment env = {0};
    env.lua_version = "Lua 5.4";
    TP_CHECKF(tp_store_environment_set(s, id, &env, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(q_int(db, "SELECT count(*) FROM metrics") == 3);
    TP_CHECK(q_int(db, "SELECT count(*) FROM predictions WHERE split = 'test' AND score IS NULL") ==
             1);
    TP_CHECK(q_int(db, "SELECT peak_bytes IS NULL FROM latency") == 1);
    TP_CHECK(!strcmp(q_text(db, "SELECT sqlite_version FROM environment"), sqlite3_libversion()));
    TP_CHECK(strcmp(q_text(db, "SELECT compiler FROM environment"), "<null>"));

    TP_CHECK(tp_store_run_finish(s, id, TP_RUN_RUNNING, NULL, NULL, &err) == TP_EINVAL);
    TP_CHECKF(tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, &err) == TP_ESTATE);
    TP_CHECK(tp_store_run_find(s, "hash-a", &found, &rs, &attempt, &err) == TP_OK && found == id &&
             rs == TP_RUN_DONE && attempt == 1);
    TP_CHECK(tp_store_run_begin(s, &m, &id2, NULL, &err) == TP_ESTATE);
    TP_CHECKF(strstr(err.msg, "already done"), "%s", err.msg);

    /* a failed run keeps its error and traceback, and a new attempt starts clean */
    tp_run_meta mb = meta("hash-b");
    int64_t b = 0;
    TP_CHECK(tp_store_run_begin(s, &mb, &b, &attempt, &err) == TP_OK && b != id);
    TP_CHECK(tp_store_metrics_add(s, b, mr, 3, &err) == TP_OK);
    TP_CHECK(tp_store_results_add(s, b, &rr, 1, &err) == TP_OK);
    TP_CHECK(tp_store_predictions_add(s, b, pr, 2, &err) == TP_OK);
    TP_CHECK(tp_store_run_finish(s, b, TP_RUN_FAILED, "exp.lua:12: boom",
                                 "stack traceback:\n\texp.lua:12: in main chunk", &err) == TP_OK);
    snprintf(sql, sizeof sql,
             "SELECT status || '|' || error || '|' || traceback FROM runs WHERE id = %lld",
             (long long)b);
    TP_CHECKF(strstr(q_text(db, sql), "failed|exp.lua:12: boom|stack traceback:"), "%s",
              q_text(db, sql));
    int64_t b2 = 0;
    TP_CHECKF(tp_store_run_begin(s, &mb, &b2, &attempt, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(b2 == b && attempt == 2);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM results WHERE run_id = %lld) || ' ' || "
             "(SELECT count(*) FROM predictions WHERE run_id = %lld) || ' ' || "
             "(SELECT count(*) FROM metrics WHERE run_id = %lld) || ' ' || "
             "(SELECT ifnull(error, 'nil') || ' ' || status FROM runs WHERE id = %lld)",
             (long long)b, (long long)b, (long long)b, (long long)b);
    TP_CHECKF(!strcmp(q_text(db, sql), "0 0 3 nil running"), "%s", q_text(db, sql));
    /* re-logging a step replaces it */
    tp_metric_row again = {1, "train/loss", 1.0};
    TP_CHECK(tp_store_metrics_add(s, b, &again, 1, &err) == TP_OK);
    TP_CHECK(q_int(db, "SELECT count(*) FROM metrics WHERE name = 'train/loss' AND step = 1 AND "
                       "value = 1.0") == 1);
    TP_CHECK(tp_store_run_finish(s, b, TP_RUN_DONE, NULL, NULL, &err) == TP_OK);
    tp_store_close(s);
    TP_CHECK(check_problems(p) == 0);
}

static void test_record_errors(void) {
    const char *p = db_path("errors.db");
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    tp_run_meta m = meta("h");
    int64_t id;
    TP_CHECK(tp_store_run_begin(s, &m, &id, NULL, &err) == TP_OK);
    tp_metric_row bad[2] = {{0, "ok", 1}, {1, NULL, 2}};
    TP_CHECK(tp_store_metrics_add(s, id, bad, 2, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "metrics row 1") && strstr(err.msg, "errors.db"), "%s", err.msg);
    /* the batch is one transaction: its good first row was rolled back too */
    TP_CHECK(q_int(tp_store_db(s), "SELECT count(*) FROM metrics") == 0);
    /* a row for a run that does not exist: SQLite's error, naming file and statement */
    tp_metric_row good = {0, "loss", 1};
    TP_CHECK(tp_store_metrics_add(s, 9999, &good, 1, &err) == TP_EDB);
    TP_CHECKF(strstr(err.msg, "errors.db") && strstr(err.msg, "INSERT OR REPLACE INTO metrics") &&
                  strstr(err.msg, "FOREIGN KEY"),
              "%s", err.msg);
    tp_latency_row lr = {"bridge", 1, 1, 1, NAN, NAN, -1, NULL};
    TP_CHECK(tp_store_latency_add(s, id, &lr, 1, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "ms must be"), "%s", err.msg);
    TP_CHECK(tp_store_artifact_add(s, id, "checkpoint", "", NULL, -1, &err) == TP_EINVAL);
    m.config_hash = "";
    TP_CHECK(tp_store_run_begin(s, &m, &id, NULL, &err) == TP_EINVAL);
    tp_store_close(s);
}

/* ---- interrupted runs ----------------------------------------------------------------------- */

static void test_dead_process_marked_interrupted(void) {
    const char *p = db_path("dead.db");
    tp_err err = {0};
    tp_store *s = NULL;
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK);
    tp_store_close(s);
    pid_t child = fork();
    if (child == 0) {
        tp_store *cs;
        tp_err e;
        tp_run_meta m = meta("dies");
        int64_t id;
        if (tp_store_open(&cs, p, TP_STORE_RW, &e) || tp_store_run_begin(cs, &m, &id, NULL, &e))
            _exit(3);
        _exit(0); /* gone without finishing */
    }
    int status;
    waitpid(child, &status, 0);
    TP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* our own live run, and one on another host, must stay `running` */
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK);
    if (!s) return;
    tp_run_meta mine = meta("mine");
    int64_t mine_id;
    TP_CHECK(tp_store_run_begin(s, &mine, &mine_id, NULL, &err) == TP_OK);
    sqlite3_exec(tp_store_db(s),
                 "INSERT INTO runs (config_json, config_hash, status, host, pid) VALUES "
                 "('{}', 'remote', 'running', 'some-other-host', 1)",
                 NULL, NULL, NULL);
    TP_CHECK(tp_store_swept(s) == 1);
    sqlite3 *db = tp_store_db(s);
    TP_CHECK(
        !strcmp(q_text(db, "SELECT status FROM runs WHERE config_hash = 'dies'"), "interrupted"));
    char want[64];
    snprintf(want, sizeof want, "process %d on", (int)child);
    TP_CHECKF(strstr(q_text(db, "SELECT error FROM runs WHERE config_hash = 'dies'"), want), "%s",
              q_text(db, "SELECT error FROM runs WHERE config_hash = 'dies'"));
    TP_CHECK(q_int(db, "SELECT ended_at IS NOT NULL FROM runs WHERE config_hash = 'dies'") == 1);
    tp_store *s2;
    TP_CHECK(tp_store_open(&s2, p, TP_STORE_RW, &err) == TP_OK);
    TP_CHECK(tp_store_swept(s2) == 0);
    tp_store_close(s2);
    TP_CHECK(!strcmp(q_text(db, "SELECT status FROM runs WHERE config_hash = 'mine'"), "running"));
    TP_CHECK(
        !strcmp(q_text(db, "SELECT status FROM runs WHERE config_hash = 'remote'"), "running"));
    /* an interrupted run resumes as attempt 2 */
    tp_run_meta m = meta("dies");
    int64_t id;
    int attempt;
    TP_CHECKF(tp_store_run_begin(s, &m, &id, &attempt, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(attempt == 2);
    tp_store_close(s);
}

static void test_recycled_pid(void) {
    /* a `running` row whose pid is alive (ours) but whose process started at another time */
    if (access("/proc/self/stat", R_OK) != 0) {
        fprintf(stderr, "SKIP recycled pid: no /proc\n");
        return;
    }
    const char *p = db_path("recycled.db");
    tp_err err = {0};
    tp_store *s = NULL;
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK);
    tp_store_close(s);
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    char sql[768];
    snprintf(sql, sizeof sql,
             "INSERT INTO runs (config_json, config_hash, status, host, pid, pid_start) VALUES "
             "('{}', 'old', 'running', '%s', %d, 1)",
             host, (int)getpid());
    raw_exec(p, sql);
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK);
    if (!s) return;
    TP_CHECK(tp_store_swept(s) == 1);
    TP_CHECK(!strcmp(q_text(tp_store_db(s), "SELECT status FROM runs"), "interrupted"));
    tp_store_close(s);
}

/* A child writes 50-row metric batches as fast as it can; it is SIGKILLed mid-stream. The file
 * must pass integrity_check, hold whole batches only, and the run must read `interrupted`. */
static void test_kill9_during_writes(void) {
    const char *p = db_path("kill9.db");
    tp_err err = {0};
    int pipefd[2];
    TP_CHECK(pipe(pipefd) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(pipefd[0]);
        tp_store *cs;
        tp_err e;
        tp_run_meta m = meta("killed");
        int64_t id;
        if (tp_store_open(&cs, p, TP_STORE_RW, &e) || tp_store_run_begin(cs, &m, &id, NULL, &e))
            _exit(3);
        tp_metric_row rows[50];
        for (int64_t step = 0;; step++) {
            for (int i = 0; i < 50; i++) rows[i] = (tp_metric_row){step, "m", (double)i};
            char name[50][16];
            for (int i = 0; i < 50; i++) {
                snprintf(name[i], sizeof name[i], "m%d", i);
                rows[i].name = name[i];
            }
            if (tp_store_metrics_add(cs, id, rows, 50, &e)) _exit(4);
            if (step == 20 && write(pipefd[1], "r", 1) != 1) _exit(5);
        }
    }
    close(pipefd[1]);
    char c;
    TP_CHECK(read(pipefd[0], &c, 1) == 1);
    close(pipefd[0]);
    struct timespec ts = {0, 30 * 1000000L};
    nanosleep(&ts, NULL);
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    TP_CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    TP_CHECK(check_problems(p) == 0);
    tp_store *s = NULL;
    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    sqlite3 *db = tp_store_db(s);
    TP_CHECK(tp_store_swept(s) == 1);
    TP_CHECK(!strcmp(q_text(db, "SELECT status FROM runs"), "interrupted"));
    int64_t n = q_int(db, "SELECT count(*) FROM metrics");
    TP_CHECKF(n >= 21 * 50 && n % 50 == 0, "%lld metric rows", (long long)n);
    tp_store_close(s);
    TP_CHECK(check_problems(p) == 0);
}

/* ---- read-only mode ------------------------------------------------------------------------- */

static void test_readonly(void) {
    const char *p = db_path("ro.db");
    tp_err err = {0};
    tp_store *s = NULL;
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RW, &err) == TP_OK);
    tp_run_meta m = meta("ro");
    int64_t id;
    TP_CHECK(tp_store_run_begin(s, &m, &id, NULL, &err) == TP_OK);
    TP_CHECK(tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, &err) == TP_OK);
    tp_store_close(s);

    TP_CHECKF(tp_store_open(&s, p, TP_STORE_RO, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    TP_CHECK(tp_store_readonly(s));
    sqlite3 *db = tp_store_db(s);
    TP_CHECK(q_int(db, "SELECT count(*) FROM runs") == 1);
    TP_CHECK(q_int(db, "PRAGMA user_version") == tp_schema_version);
    const char *writes[] = {
        "DELETE FROM runs",
        "UPDATE runs SET status = 'failed'",
        "PRAGMA query_only = 0",
        "PRAGMA user_version = 7",
        "CREATE TABLE evil (x)",
        "DROP TABLE runs",
        "ATTACH DATABASE 'other.db' AS o",
        "PRAGMA journal_mode = DELETE",
        "UPDATE sqlite_master SET sql = 'x'",
        "PRAGMA writable_schema = 1",
    };
    for (size_t i = 0; i < sizeof writes / sizeof *writes; i++) {
        char *e = NULL;
        int rc = sqlite3_exec(db, writes[i], NULL, NULL, &e);
        TP_CHECKF(rc != SQLITE_OK, "read-only connection accepted: %s", writes[i]);
        sqlite3_free(e);
    }
    TP_CHECK(q_int(db, "SELECT count(*) FROM runs") == 1);
    TP_CHECK(q_int(db, "SELECT count(*) FROM pragma_table_info('runs')") > 10);
    int64_t found;
    tp_run_status rs;
    TP_CHECK(tp_store_run_find(s, "ro", &found, &rs, NULL, &err) == TP_OK && rs == TP_RUN_DONE);
    TP_CHECK(tp_store_run_begin(s, &m, &id, NULL, &err) == TP_ESTATE);
    tp_store_close(s);
    TP_CHECK(check_problems(p) == 0);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

enum { NPROC = 4, NWRITES = 200 };

static int writer(const char *path, int k, int start_fd) {
    char c;
    if (read(start_fd, &c, 1) != 1) return 10; /* all children start together */
    tp_store *s;
    tp_err e = {0};
    if (tp_store_open(&s, path, TP_STORE_RW, &e)) {
        fprintf(stderr, "writer %d: %s\n", k, e.msg);
        return 11;
    }
    char hash[32];
    snprintf(hash, sizeof hash, "conc-%d", k);
    tp_run_meta m = meta(hash);
    int64_t id;
    if (tp_store_run_begin(s, &m, &id, NULL, &e)) {
        fprintf(stderr, "writer %d: %s\n", k, e.msg);
        return 12;
    }
    for (int i = 0; i < NWRITES; i++) {
        tp_metric_row r = {i, "loss", (double)i};
        char ex[32];
        snprintf(ex, sizeof ex, "%d", i);
        tp_prediction_row pr = {NULL, ex, NULL, NULL, NULL, "a", "b", 0, NAN};
        tp_status st = (i % 2) ? tp_store_metrics_add(s, id, &r, 1, &e)
                               : tp_store_predictions_add(s, id, &pr, 1, &e);
        if (st) {
            fprintf(stderr, "writer %d write %d: %s\n", k, i, e.msg);
            return 13;
        }
    }
    if (tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, &e)) {
        fprintf(stderr, "writer %d: %s\n", k, e.msg);
        return 14;
    }
    tp_store_close(s);
    return 0;
}

static void test_concurrent_writers(void) {
    /* the file does not exist yet: the four processes also race to create the schema */
    const char *p = db_path("concurrent.db");
    int go[2];
    TP_CHECK(pipe(go) == 0);
    pid_t kids[NPROC];
    for (int k = 0; k < NPROC; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            close(go[1]);
            _exit(writer(p, k, go[0]));
        }
    }
    close(go[0]);
    TP_CHECK(write(go[1], "gggg", NPROC) == NPROC);
    close(go[1]);
    for (int k = 0; k < NPROC; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        TP_CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d status %d", k, status);
    }
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECK(tp_store_open(&s, p, TP_STORE_RO, &err) == TP_OK);
    if (!s) return;
    sqlite3 *db = tp_store_db(s);
    TP_CHECK(q_int(db, "SELECT count(*) FROM runs WHERE status = 'done'") == NPROC);
    int64_t rows = q_int(db, "SELECT count(*) FROM metrics") + q_int(db, "SELECT count(*) FROM "
                                                                         "predictions");
    TP_CHECKF(rows == NPROC * NWRITES, "%lld rows, expected %d", (long long)rows, NPROC * NWRITES);
    tp_store_close(s);
    TP_CHECK(check_problems(p) == 0);
}

/* ---- helper mode for kill9.sh --------------------------------------------------------------- */

static int hold_run(const char *path) {
    tp_store *s;
    tp_err e = {0};
    tp_run_meta m = meta("held-by-helper");
    int64_t id;
    if (tp_store_open(&s, path, TP_STORE_RW, &e) || tp_store_run_begin(s, &m, &id, NULL, &e)) {
        fprintf(stderr, "hold-run: %s\n", e.msg);
        return 1;
    }
    tp_metric_row r = {0, "train/loss", 1.25};
    if (tp_store_metrics_add(s, id, &r, 1, &e)) {
        fprintf(stderr, "hold-run: %s\n", e.msg);
        return 1;
    }
    printf("ready %lld\n", (long long)id);
    fflush(stdout);
    for (;;) pause();
}

/* An old (schema version 1) database with one finished run and its accuracy, for the CLI's
 * migrate test. */
static int make_v1(const char *path) {
    tp_err e = {0};
    if (tp_store_migrate(path, 1, NULL, NULL, &e)) {
        fprintf(stderr, "make-v1: %s\n", e.msg);
        return 1;
    }
    sqlite3 *db;
    char *msg = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "INSERT INTO runs (id, config_json, config_hash, status, task, bridge, "
                          "seed, host, pid, started_at) VALUES (1, '{\"task\":\"toy\"}', "
                          "'cafe0123', 'done', 'toy', 'perceiver', 3, 'old-host', 1, "
                          "'2026-01-02T03:04:05.000Z');"
                          "INSERT INTO results (run_id, metric, value, n, scheme) VALUES "
                          "(1, 'accuracy', 0.8125, 64, 'first_token');",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "make-v1: %s\n", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc != SQLITE_OK;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--hold-run")) return hold_run(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--make-v1")) return make_v1(argv[2]);
    static const tp_test_case cases[] = {
        TP_CASE(test_fresh_schema),
        TP_CASE(test_results_sql_equals_migrations),
        TP_CASE(test_migrate_from_v1),
        TP_CASE(test_refuses_newer_and_foreign),
        TP_CASE(test_run_lifecycle),
        TP_CASE(test_record_errors),
        TP_CASE(test_dead_process_marked_interrupted),
        TP_CASE(test_recycled_pid),
        TP_CASE(test_kill9_during_writes),
        TP_CASE(test_readonly),
        TP_CASE(test_concurrent_writers),
    };
    return tp_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
