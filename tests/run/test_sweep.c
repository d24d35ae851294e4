/* test_sweep.c — the sweep item lifecycle (run/sweep.h): planning is idempotent and marks
 * finished configurations done; 4 processes claiming 40 items concurrently run each exactly once;
 * a claim of a dead worker or with a stale heartbeat returns to pending (attempts counted, class
 * "stale"); a worker that lost its claim cannot finish or heartbeat it; release, retry, and the
 * --fail-fast stop; counts; sweep-name and uid checks. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "sweep_testutil.h"

static tp_store *open_rw(const char *path) {
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, path, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    return s;
}

static void test_names(void) {
    tp_err err = {0};
    TP_CHECK(tp_sweep_name_check("phase3.tokens-v2_a", &err) == TP_OK);
    TP_CHECK(tp_sweep_name_check("", &err) == TP_EINVAL);
    TP_CHECK(tp_sweep_name_check("a/b", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "'/'") != NULL, "%s", err.msg);
    char long_name[200];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    TP_CHECK(tp_sweep_name_check(long_name, &err) == TP_EINVAL);
}

static void test_plan(void) {
    tp_store *s = open_rw(sw_db_path("plan.db"));
    if (!s) return;
    tp_err err = {0};
    int64_t done_run = sw_fake_run(s, 7, 0);
    sw_fake_run(s, 8, 1); /* failed: still to be run */
    tp_sweep sw;
    TP_CHECKF(tp_sweep_ensure(s, "p", NULL, "/x/plan.lua", "abc", &sw, &err) == TP_OK, "%s",
              err.msg);
    TP_CHECK(strlen(sw.uid) == 32);
    sw_plan_n(s, sw.id, 1, 8);
    /* planning again adds nothing */
    sw_cfg c;
    sw_cfg_make(&c, 3);
    int added = 1;
    TP_CHECK(tp_sweep_plan_add(s, sw.id, c.hash, c.json, c.spec, "{}", &added, &err) == TP_OK);
    TP_CHECK(added == 0);
    TP_CHECK(sw_q_int(s, "SELECT count(*) FROM sweep_items") == 8);
    TP_CHECK(sw_q_int(s, "SELECT max(seq) FROM sweep_items") == 8);
    /* the configuration already done in runs is planned as done, with its run */
    char sql[256];
    sw_cfg_make(&c, 7);
    snprintf(sql, sizeof sql,
             "SELECT run_id FROM sweep_items WHERE status = 'done' AND config_hash = '%s'", c.hash);
    TP_CHECK(sw_q_int(s, sql) == done_run);
    tp_sweep_counts n;
    TP_CHECK(tp_sweep_count(s, sw.id, &n, &err) == TP_OK);
    TP_CHECK(n.pending == 7 && n.done == 1 && n.running == 0 && n.failed == 0);
    /* the same name with another uid is another sweep */
    tp_sweep other;
    TP_CHECK(tp_sweep_ensure(s, "p", "00000000000000000000000000000000", NULL, NULL, &other,
                             &err) == TP_ESTATE);
    TP_CHECKF(strstr(err.msg, "another sweep") != NULL, "%s", err.msg);
    /* the same uid is the same sweep */
    TP_CHECK(tp_sweep_ensure(s, "p", sw.uid, NULL, NULL, &other, &err) == TP_OK);
    TP_CHECK(other.id == sw.id);
    tp_sweep_free(&other);
    TP_CHECK(tp_sweep_get(s, "nope", &other, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "sweeps here: p") != NULL, "%s", err.msg);
    tp_sweep_free(&sw);
    tp_store_close(s);
}

/* 4 processes claim and finish until nothing is pending; each reports what it claimed. */
static void test_concurrent_claims(void) {
    const char *path = sw_db_path("claims.db");
    tp_store *s = open_rw(path);
    if (!s) return;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECK(tp_sweep_ensure(s, "c", NULL, NULL, NULL, &sw, &err) == TP_OK);
    enum { N = 40, P = 4 };
    sw_plan_n(s, sw.id, 1, N);
    tp_store_close(s);
    int fds[2];
    TP_CHECK(pipe(fds) == 0);
    pid_t kids[P];
    for (int p = 0; p < P; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            close(fds[0]);
            tp_store *c = NULL;
            tp_err e = {0};
            if (tp_store_open(&c, path, TP_STORE_RW, &e) != TP_OK) _exit(3);
            for (;;) {
                tp_sweep_item it;
                int got = 0;
                tp_sweep_claim_opts o = {"test", 60, 0};
                if (tp_sweep_claim(c, sw.id, &o, &it, &got, NULL, NULL, &e) != TP_OK) _exit(4);
                if (!got) break;
                tp_sweep_outcome out = {1, 0, NULL, NULL, 0.01, 0};
                if (tp_sweep_finish(c, it.id, &out, &e) != TP_OK) _exit(5);
                int64_t id = it.id;
                if (write(fds[1], &id, sizeof id) != sizeof id) _exit(6);
                tp_sweep_item_free(&it);
            }
            tp_store_close(c);
            _exit(0);
        }
    }
    close(fds[1]);
    int seen[N + 1] = {0}, total = 0;
    int64_t id;
    while (read(fds[0], &id, sizeof id) == sizeof id) {
        if (id >= 1 && id <= N) seen[id]++;
        total++;
    }
    close(fds[0]);
    for (int p = 0; p < P; p++) {
        int ws = 0;
        waitpid(kids[p], &ws, 0);
        TP_CHECKF(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "claimer %d: status %d", p, ws);
    }
    TP_CHECKF(total == N, "%d claims for %d items", total, N);
    for (int i = 1; i <= N; i++) TP_CHECKF(seen[i] == 1, "item %d claimed %d times", i, seen[i]);
    s = open_rw(path);
    TP_CHECK(sw_q_int(s, "SELECT count(*) FROM sweep_items WHERE status = 'done' AND "
                         "attempts = 1") == N);
    tp_sweep_free(&sw);
    tp_store_close(s);
}

static void test_stale_and_dead(void) {
    const char *path = sw_db_path("stale.db");
    tp_store *s = open_rw(path);
    if (!s) return;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECK(tp_sweep_ensure(s, "st", NULL, NULL, NULL, &sw, &err) == TP_OK);
    sw_plan_n(s, sw.id, 1, 3);
    /* a worker claims item 1 and dies without finishing it */
    pid_t kid = fork();
    if (kid == 0) {
        tp_store *c = NULL;
        tp_err e = {0};
        tp_sweep_item it;
        int got = 0;
        if (tp_store_open(&c, path, TP_STORE_RW, &e) != TP_OK) _exit(3);
        if (tp_sweep_claim(c, sw.id, NULL, &it, &got, NULL, NULL, &e) != TP_OK || !got) _exit(4);
        _exit(0); /* no finish, no release */
    }
    int ws;
    waitpid(kid, &ws, 0);
    TP_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    TP_CHECK(sw_q_int(s, "SELECT count(*) FROM sweep_items WHERE status = 'running'") == 1);
    tp_sweep_item it;
    int got = 0, requeued = 0;
    tp_sweep_claim_opts o = {"me", 120, 0};
    TP_CHECKF(tp_sweep_claim(s, sw.id, &o, &it, &got, NULL, &requeued, &err) == TP_OK, "%s",
              err.msg);
    TP_CHECK(got && requeued == 1);
    TP_CHECK(it.seq == 1 && it.attempts == 2); /* the dead worker's item first, second attempt */
    TP_CHECK(!strcmp(sw_q_text(s, "SELECT error_class FROM sweep_items WHERE seq = 1"), "stale"));
    TP_CHECKF(strstr(sw_q_text(s, "SELECT error FROM sweep_items WHERE seq = 1"), "died") != NULL,
              "%s", sw_q_text(s, "SELECT error FROM sweep_items WHERE seq = 1"));
    TP_CHECK(tp_sweep_heartbeat(s, it.id, &err) == TP_OK);
    /* a live worker elsewhere (pid 1, another host) whose heartbeat is an hour old */
    TP_CHECK(sqlite3_exec(tp_store_db(s),
                          "UPDATE sweep_items SET status = 'running', host = 'elsewhere', pid = 1, "
                          "heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') "
                          "WHERE seq = 2",
                          NULL, NULL, NULL) == SQLITE_OK);
    int n = 0;
    TP_CHECK(tp_sweep_requeue_stale(s, sw.id, 600, 0, &n, &err) == TP_OK);
    TP_CHECK(n == 1);
    TP_CHECKF(strstr(sw_q_text(s, "SELECT error FROM sweep_items WHERE seq = 2"), "stale") != NULL,
              "%s", sw_q_text(s, "SELECT error FROM sweep_items WHERE seq = 2"));
    /* a fresh heartbeat elsewhere is left alone */
    TP_CHECK(sqlite3_exec(tp_store_db(s),
                          "UPDATE sweep_items SET status = 'running', host = 'elsewhere', pid = 1, "
                          "heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE seq = 2",
                          NULL, NULL, NULL) == SQLITE_OK);
    TP_CHECK(tp_sweep_requeue_stale(s, sw.id, 600, 0, &n, &err) == TP_OK);
    TP_CHECK(n == 0);
    /* ... unless the db is a shard this task owns alone */
    TP_CHECK(tp_sweep_requeue_stale(s, sw.id, 600, 1, &n, &err) == TP_OK);
    TP_CHECK(n == 1);
    /* our own claim taken over: finish and heartbeat refuse */
    TP_CHECK(sqlite3_exec(tp_store_db(s), "UPDATE sweep_items SET pid = 1 WHERE seq = 1", NULL,
                          NULL, NULL) == SQLITE_OK);
    tp_sweep_outcome out = {1, 0, NULL, NULL, 1.0, 0};
    TP_CHECK(tp_sweep_finish(s, it.id, &out, &err) == TP_ESTATE);
    TP_CHECKF(strstr(err.msg, "no longer holds its claim") != NULL, "%s", err.msg);
    TP_CHECK(tp_sweep_heartbeat(s, it.id, &err) == TP_ESTATE);
    TP_CHECK(!strcmp(sw_q_text(s, "SELECT status FROM sweep_items WHERE seq = 1"), "running"));
    tp_sweep_item_free(&it);
    tp_sweep_free(&sw);
    tp_store_close(s);
}

static void test_retry_release_stop(void) {
    tp_store *s = open_rw(sw_db_path("rrs.db"));
    if (!s) return;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECK(tp_sweep_ensure(s, "r", NULL, NULL, NULL, &sw, &err) == TP_OK);
    sw_plan_n(s, sw.id, 1, 3);
    tp_sweep_item it;
    int got, stopped;
    /* a failure with a retry left goes back to pending, then fails for good */
    TP_CHECK(tp_sweep_claim(s, sw.id, NULL, &it, &got, &stopped, NULL, &err) == TP_OK && got);
    tp_sweep_outcome out = {0, 0, "bad option", "config", 0.5, 1};
    TP_CHECK(tp_sweep_finish(s, it.id, &out, &err) == TP_OK);
    TP_CHECK(!strcmp(sw_q_text(s, "SELECT status FROM sweep_items WHERE seq = 1"), "pending"));
    int64_t first = it.id;
    tp_sweep_item_free(&it);
    TP_CHECK(tp_sweep_claim(s, sw.id, NULL, &it, &got, &stopped, NULL, &err) == TP_OK && got);
    TP_CHECK(it.id == first && it.attempts == 2);
    out.retry = 0;
    TP_CHECK(tp_sweep_finish(s, it.id, &out, &err) == TP_OK);
    TP_CHECK(!strcmp(sw_q_text(s, "SELECT status || ':' || error_class || ':' || error FROM "
                                  "sweep_items WHERE seq = 1"),
                     "failed:config:bad option"));
    tp_sweep_item_free(&it);
    /* release (preemption) does not count the attempt */
    TP_CHECK(tp_sweep_claim(s, sw.id, NULL, &it, &got, &stopped, NULL, &err) == TP_OK && got);
    TP_CHECK(it.seq == 2);
    TP_CHECK(tp_sweep_release(s, it.id, "SIGTERM", &err) == TP_OK);
    TP_CHECK(!strcmp(sw_q_text(s, "SELECT status || ':' || attempts || ':' || error_class FROM "
                                  "sweep_items WHERE seq = 2"),
                     "pending:0:preempted"));
    TP_CHECK(tp_sweep_release(s, it.id, "again", &err) == TP_ESTATE);
    tp_sweep_item_free(&it);
    /* --fail-fast: a stopped sweep hands out nothing */
    TP_CHECK(tp_sweep_stop(s, sw.id, "--fail-fast: item 1 failed", &err) == TP_OK);
    TP_CHECK(tp_sweep_claim(s, sw.id, NULL, &it, &got, &stopped, NULL, &err) == TP_OK);
    TP_CHECK(!got && stopped);
    tp_sweep_counts n;
    TP_CHECK(tp_sweep_count(s, sw.id, &n, &err) == TP_OK);
    TP_CHECK(n.pending == 2 && n.failed == 1 && n.done == 0);
    TP_CHECK(!strcmp(tp_sweep_error_class(TP_EIO), "io"));
    TP_CHECK(!strcmp(tp_sweep_error_class(TP_EINVAL), "config"));
    tp_sweep_free(&sw);
    tp_store_close(s);
}

TP_TEST_RUN(TP_CASE(test_names), TP_CASE(test_plan), TP_CASE(test_concurrent_claims),
            TP_CASE(test_stale_and_dead), TP_CASE(test_retry_release_stop))
