/* test_run_resume.c — a training run killed with SIGKILL after its first checkpoint resumes from
 * that checkpoint and ends bit-identical to an uninterrupted run (per-step losses, predictions,
 * accuracy); a finished configuration is then skipped on re-run, returning the stored result.
 * The victim is a forked child with its own store connection, as a separate `telepathy run`
 * process would be; the parent opening the db afterwards marks the dead run `interrupted`.
 * TP_TEST_SLOW: minutes under the sanitizers at -O0, so `make test-asan` leaves it out.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run_fixture.h"

#define STEPS 80

static json_t *spec(void) {
    json_t *s = fx_bridge_spec(STEPS, 5);
    json_object_set_new(s, "checkpoint_every", json_integer(10));
    return s;
}

static int count_ro(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    int n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 1000);
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(h);
    return n;
}

static void test_kill_resume_skip(void) {
    fx_models(); /* made before the fork, so the child does not race the parent */
    char db[700];
    snprintf(db, sizeof db, "%s/resume.db", tp_test_tmpdir());
    pid_t pid = fork();
    if (pid == 0) {
        fx f;
        if (!fx_open(&f, "resume.db")) _exit(3);
        json_t *s = spec();
        tp_run_result res;
        tp_err err = {0};
        tp_runner_run(f.runner, s, &res, &err);
        _exit(0); /* finishing means the parent was too slow: it checks */
    }
    TP_CHECK(pid > 0);
    int killed = 0;
    for (int i = 0; i < 6000 && !killed; i++) { /* up to 60 s */
        if (count_ro(db, "SELECT COUNT(*) FROM artifacts WHERE kind = 'checkpoint'") >= 1) {
            kill(pid, SIGKILL);
            killed = 1;
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    int wst = 0;
    waitpid(pid, &wst, 0);
    TP_CHECKF(killed && WIFSIGNALED(wst), "the child was not killed mid-training");
    TP_CHECK(count_ro(db, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 0);

    /* the uninterrupted reference */
    fx g;
    TP_CHECK(fx_open(&g, "straight.db"));
    json_t *s = spec();
    tp_run_result ref;
    tp_err err = {0};
    TP_CHECKF(tp_runner_run(g.runner, s, &ref, &err) == TP_OK, "%s", err.msg);
    const double *l;
    double ref_loss[STEPS];
    TP_CHECK(tp_runner_last_losses(g.runner, &l) == STEPS);
    memcpy(ref_loss, l, sizeof ref_loss);
    char *ref_p = fx_preds(&g);
    fx_close(&g);

    /* resume */
    fx f;
    TP_CHECK(fx_open(&f, "resume.db"));
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'") == 1);
    tp_run_result res;
    TP_CHECKF(tp_runner_run(f.runner, s, &res, &err) == TP_OK, "%s", err.msg);
    printf("resumed from step %d; accuracy %.4f vs uninterrupted %.4f\n", res.resumed_from_step,
           res.accuracy, ref.accuracy);
    TP_CHECKF(!strcmp(res.status, "resumed"), "status %s", res.status);
    TP_CHECK(res.resumed_from_step >= 10 && res.resumed_from_step < STEPS);
    TP_CHECK(tp_runner_last_losses(f.runner, &l) == STEPS);
    TP_CHECKF(memcmp(l, ref_loss, sizeof ref_loss) == 0,
              "losses differ from the uninterrupted run");
    TP_CHECK(res.accuracy == ref.accuracy && res.final_loss == ref.final_loss);
    char *p = fx_preds(&f);
    TP_CHECK(p && ref_p && !strcmp(p, ref_p));
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM metrics WHERE name = 'train/loss'") == STEPS);
    TP_CHECK(fx_count(&f, "SELECT attempt FROM runs") == 2);

    /* finished: skipped, with the stored result */
    tp_run_result again;
    TP_CHECKF(tp_runner_run(f.runner, s, &again, &err) == TP_OK, "%s", err.msg);
    TP_CHECKF(!strcmp(again.status, "skipped"), "status %s", again.status);
    TP_CHECK(again.run_id == res.run_id && again.accuracy == res.accuracy && again.n == res.n);
    TP_CHECK(again.final_loss == res.final_loss && again.steps == STEPS);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs") == 1);
    TP_CHECK(fx_count(&f, "SELECT attempt FROM runs") == 2);
    free(p);
    free(ref_p);
    json_decref(s);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_kill_resume_skip))
