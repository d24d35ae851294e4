/* test_sweep_merge.c — shards and their faults (run/merge.h, run/slurm.h): merging folds shards
 * by config hash and is idempotent; a done shard run replaces a failed one in place; a shard of
 * another sweep, of --sweep's complement, of an older schema, or the target itself is refused
 * with a message; a merge killed at any moment or failing on a full disk (RLIMIT_FSIZE) leaves
 * the db consistent and merging again completes it exactly once; a shard write that hits a full
 * disk fails clearly and its claim comes back; plan.json reading errors name the field; the
 * sbatch script; sbatch failures (exit status, missing program, garbage answer). */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "run/merge.h"
#include "run/slurm.h"
#include "sweep_testutil.h"
#include "util/fsutil.h"

static tp_store *open_rw(const char *path) {
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, path, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    return s;
}

/* A shard as a Slurm task leaves it: the sweep (name, uid), item i, and its run (done). */
static void make_shard(const char *path, const char *name, const char *uid, int i, int failed) {
    tp_store *s = open_rw(path);
    if (!s) return;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECKF(tp_sweep_ensure(s, name, uid, "/x/s.lua", "sha", &sw, &err) == TP_OK, "%s", err.msg);
    sw_plan_n(s, sw.id, i, 1);
    tp_sweep_item it;
    int got = 0;
    TP_CHECK(tp_sweep_claim(s, sw.id, NULL, &it, &got, NULL, NULL, &err) == TP_OK && got);
    int64_t run = sw_fake_run(s, i, failed);
    tp_sweep_outcome out = {!failed, run, failed ? "boom" : NULL, failed ? "run" : NULL, 2.0, 0};
    TP_CHECK(tp_sweep_finish(s, it.id, &out, &err) == TP_OK);
    tp_sweep_item_free(&it);
    tp_sweep_free(&sw);
    tp_store_close(s);
}

/* The target: sweep planned with items first..first+n-1. */
static tp_store *make_target(const char *path, const char *name, char uid[33], int n) {
    tp_store *s = open_rw(path);
    if (!s) return NULL;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECK(tp_sweep_ensure(s, name, NULL, "/x/s.lua", "sha", &sw, &err) == TP_OK);
    memcpy(uid, sw.uid, 33);
    sw_plan_n(s, sw.id, 1, n);
    tp_sweep_free(&sw);
    return s;
}

static int merge(tp_store *t, const char *shard, const char *only, tp_merge_stats *ms, char *msg) {
    tp_err err = {0};
    tp_merge_stats dummy;
    tp_status st = tp_merge_shard(t, shard, only, ms ? ms : &dummy, &err);
    if (msg) snprintf(msg, TP_ERR_MAX, "%s", err.msg);
    return st;
}

static void test_merge_idempotent(void) {
    char uid[33], msg[TP_ERR_MAX];
    tp_store *t = make_target(sw_db_path("m_target.db"), "m", uid, 3);
    if (!t) return;
    const char *a = sw_db_path("m_a.db"), *b = sw_db_path("m_b.db"), *c = sw_db_path("m_c.db");
    make_shard(a, "m", uid, 1, 0);
    make_shard(b, "m", uid, 2, 1); /* failed in its shard */
    make_shard(c, "m", uid, 2, 0); /* a later attempt of the same config, done */
    tp_merge_stats ms;
    TP_CHECKF(merge(t, a, NULL, &ms, msg) == TP_OK, "%s", msg);
    TP_CHECK(ms.runs_added == 1 && ms.items_updated == 1);
    TP_CHECKF(merge(t, b, "m", &ms, msg) == TP_OK, "%s", msg);
    TP_CHECK(!strcmp(sw_q_text(t, "SELECT group_concat(status, ',') FROM (SELECT status FROM "
                                  "sweep_items ORDER BY seq)"),
                     "done,failed,pending"));
    int64_t failed_id = sw_q_int(t, "SELECT id FROM runs WHERE status = 'failed'");
    TP_CHECKF(merge(t, c, NULL, &ms, msg) == TP_OK, "%s", msg);
    TP_CHECK(ms.runs_replaced == 1 && ms.runs_added == 0);
    /* replaced in place: same id, and the item now points at the done run */
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM runs WHERE status = 'done'") == 2);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM runs") == 2);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)failed_id);
    TP_CHECK(!strcmp(sw_q_text(t, sql), "done"));
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM sweep_items WHERE status = 'done' AND run_id IN "
                         "(SELECT id FROM runs WHERE status = 'done')") == 2);
    /* each run came with its rows, exactly once */
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM results") == 2);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM predictions") == 2);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM metrics") == 2);
    /* merging everything again changes nothing */
    TP_CHECK(merge(t, a, NULL, &ms, msg) == TP_OK && ms.runs_added == 0 && ms.runs_skipped == 1);
    TP_CHECK(merge(t, b, NULL, &ms, msg) == TP_OK && ms.runs_skipped == 1);
    TP_CHECK(merge(t, c, NULL, &ms, msg) == TP_OK && ms.runs_skipped == 1);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM runs") == 2);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM results") == 2);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM sweep_items WHERE status = 'done'") == 2);
    /* the run kept its experiment, matched by name and script hash */
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM experiments") <= 1);
    tp_store_close(t);
}

static void test_merge_refusals(void) {
    char uid[33], msg[TP_ERR_MAX];
    const char *tpath = sw_db_path("r_target.db");
    tp_store *t = make_target(tpath, "r", uid, 2);
    if (!t) return;
    const char *other = sw_db_path("r_other.db"), *named = sw_db_path("r_named.db");
    const char *old = sw_db_path("r_old.db"), *junk = sw_db_path("r_junk.db");
    make_shard(other, "r", "0123456789abcdef0123456789abcdef", 1, 0);
    TP_CHECK(merge(t, other, NULL, NULL, msg) == TP_ESTATE);
    TP_CHECKF(strstr(msg, "another sweep named 'r'") && strstr(msg, "not merged"), "%s", msg);
    make_shard(named, "q", NULL, 1, 0);
    TP_CHECK(merge(t, named, "r", NULL, msg) == TP_ESTATE);
    TP_CHECKF(strstr(msg, "belongs to sweep 'q', not 'r'"), "%s", msg);
    /* an older schema */
    int from, to;
    tp_err err = {0};
    TP_CHECK(tp_store_migrate(old, 3, &from, &to, &err) == TP_OK);
    TP_CHECK(merge(t, old, NULL, NULL, msg) == TP_EDB);
    TP_CHECKF(strstr(msg, "schema version 3, older") && strstr(msg, "db migrate"), "%s", msg);
    /* not a database, and the target itself */
    TP_CHECK(tp_write_file_atomic(junk, "hello, not sqlite", 17, &err) == TP_OK);
    TP_CHECK(merge(t, junk, NULL, NULL, msg) != TP_OK);
    TP_CHECKF(strstr(msg, "r_junk.db"), "%s", msg);
    TP_CHECK(merge(t, tpath, NULL, NULL, msg) == TP_EINVAL);
    TP_CHECK(merge(t, sw_db_path("r_missing.db"), NULL, NULL, msg) == TP_EIO);
    /* nothing of the refused shards arrived */
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM runs") == 0);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM sweeps") == 1);
    tp_store_close(t);
}

/* Six shards; a child merges them and is killed after a random delay, or runs out of file size
 * part-way. Afterwards the target passes integrity and foreign key checks, holds only whole
 * shards, and a second merge completes it with each configuration exactly once. */
static void interrupted_merge(int kill_after_us, long fsize_limit) {
    char uid[33], msg[TP_ERR_MAX];
    const char *tpath = sw_db_path("i_target.db");
    tp_store *t = make_target(tpath, "i", uid, 6);
    if (!t) return;
    tp_store_close(t);
    char shards[6][600];
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "i_%d.db", i);
        snprintf(shards[i], sizeof shards[i], "%s", sw_db_path(name));
        make_shard(shards[i], "i", uid, i + 1, 0);
    }
    pid_t kid = fork();
    if (kid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        tp_store *c = NULL;
        tp_err e = {0};
        if (tp_store_open(&c, tpath, TP_STORE_RW, &e) != TP_OK) _exit(3);
        if (fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        int failed = 0;
        for (int i = 0; i < 6; i++) {
            tp_merge_stats ms;
            if (tp_merge_shard(c, shards[i], NULL, &ms, &e) != TP_OK) {
                failed++;
                if (fsize_limit > 0 && !strstr(e.msg, "rolled back")) _exit(7);
                if (fsize_limit > 0 && !strstr(e.msg, "full") && !strstr(e.msg, "I/O")) _exit(8);
            }
        }
        tp_store_close(c);
        _exit(fsize_limit > 0 && failed == 0 ? 9 : 0);
    }
    if (kill_after_us > 0) {
        usleep((useconds_t)kill_after_us);
        kill(kid, SIGKILL);
    }
    int ws;
    waitpid(kid, &ws, 0);
    if (fsize_limit > 0)
        TP_CHECKF(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "merging child: status %d", ws);
    t = open_rw(tpath);
    if (!t) return;
    TP_CHECK(!strcmp(sw_q_text(t, "PRAGMA integrity_check"), "ok"));
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
    int64_t runs = sw_q_int(t, "SELECT count(*) FROM runs");
    /* whole shards only: every run has its result and prediction, every done item its run */
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM results") == runs);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM predictions") == runs);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM sweep_items WHERE status = 'done'") == runs);
    if (fsize_limit > 0)
        TP_CHECKF(runs < 6, "the size limit never bit (%lld runs)", (long long)runs);
    for (int i = 0; i < 6; i++) TP_CHECKF(merge(t, shards[i], NULL, NULL, msg) == TP_OK, "%s", msg);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM runs") == 6);
    TP_CHECK(sw_q_int(t, "SELECT count(DISTINCT config_hash) FROM runs") == 6);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM results") == 6);
    TP_CHECK(sw_q_int(t, "SELECT count(*) FROM sweep_items WHERE status = 'done' AND run_id IS "
                         "NOT NULL") == 6);
    tp_store_close(t);
}

static void test_merge_killed(void) {
    int delays[] = {1, 3000, 15000, 40000};
    for (size_t i = 0; i < sizeof delays / sizeof *delays; i++) interrupted_merge(delays[i], 0);
}

static void test_merge_disk_full(void) {
    /* the target with its schema and items fits; six merged runs do not */
    interrupted_merge(0, 200 * 1024);
}

/* A task's shard runs out of space while the run writes its predictions. */
static void test_shard_disk_full(void) {
    const char *path = sw_db_path("full_shard.db");
    tp_store *s = open_rw(path);
    if (!s) return;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECK(tp_sweep_ensure(s, "f", NULL, NULL, NULL, &sw, &err) == TP_OK);
    sw_plan_n(s, sw.id, 1, 1);
    tp_store_close(s);
    int fds[2];
    TP_CHECK(pipe(fds) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        tp_store *c = NULL;
        tp_err e = {0};
        if (tp_store_open(&c, path, TP_STORE_RW, &e) != TP_OK) _exit(3);
        tp_sweep_item it;
        int got = 0;
        if (tp_sweep_claim(c, sw.id, NULL, &it, &got, NULL, NULL, &e) != TP_OK || !got) _exit(4);
        struct rlimit rl = {256 * 1024, 256 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        sw_cfg cfg;
        sw_cfg_make(&cfg, 1);
        tp_run_meta m = {0};
        m.config_json = cfg.json;
        m.config_hash = cfg.hash;
        m.git_dirty = -1;
        int64_t id;
        int attempt;
        tp_status st = tp_store_run_begin(c, &m, &id, &attempt, &e);
        enum { N = 4000 };
        static tp_prediction_row rows[N];
        static char ids[N][16];
        for (int i = 0; i < N; i++) {
            snprintf(ids[i], sizeof ids[i], "%d", i);
            const char *h = "0123456789abcdef0123456789abcdef";
            rows[i] = (tp_prediction_row){.split = "eval",
                                          .example_id = ids[i],
                                          .example_hash = h,
                                          .prompt_hash = h,
                                          .target_hash = h,
                                          .gold = "positive",
                                          .prediction = "negative",
                                          .correct = 0,
                                          .score = 0.25};
        }
        for (int k = 0; st == TP_OK && k < 20; k++)
            st = tp_store_predictions_add(c, id, rows, N, &e);
        size_t len = strlen(e.msg);
        if (write(fds[1], e.msg, len) != (ssize_t)len) _exit(6);
        _exit(st == TP_OK ? 5 : 0); /* dies holding the claim */
    }
    close(fds[1]);
    char msg[TP_ERR_MAX + 1] = "";
    ssize_t n = read(fds[0], msg, TP_ERR_MAX);
    if (n > 0) msg[n] = 0;
    close(fds[0]);
    int ws;
    waitpid(kid, &ws, 0);
    TP_CHECKF(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "writer status %d", ws);
    TP_CHECKF(strstr(msg, "full_shard.db") && (strstr(msg, "full") || strstr(msg, "I/O")), "%s",
              msg);
    /* the shard is intact and the configuration is not lost: its claim comes back */
    s = open_rw(path);
    if (!s) return;
    TP_CHECK(!strcmp(sw_q_text(s, "PRAGMA integrity_check"), "ok"));
    TP_CHECK(sw_q_int(s, "SELECT count(*) FROM runs WHERE status = 'done'") == 0);
    tp_sweep_item it;
    int got = 0;
    tp_sweep_claim_opts o = {"retry", 120, 1};
    TP_CHECK(tp_sweep_claim(s, sw.id, &o, &it, &got, NULL, NULL, &err) == TP_OK && got);
    TP_CHECK(it.attempts == 2);
    tp_sweep_item_free(&it);
    tp_sweep_free(&sw);
    tp_store_close(s);
}

static void test_plan_json(void) {
    const char *db = sw_db_path("pj.db");
    tp_store *s = open_rw(db);
    if (!s) return;
    tp_err err = {0};
    tp_sweep sw;
    TP_CHECK(tp_sweep_ensure(s, "pj", NULL, "/x/s.lua", "sha", &sw, &err) == TP_OK);
    sw_plan_n(s, sw.id, 1, 3);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sub_pj", tp_test_tmpdir());
    int n = 0;
    TP_CHECKF(tp_slurm_write_plan(s, &sw, dir, 0, &n, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(n == 3);
    char plan[760];
    snprintf(plan, sizeof plan, "%s/plan.json", dir);
    tp_sweep psw;
    tp_sweep_item it;
    int ni = 0;
    TP_CHECKF(tp_slurm_read_plan_item(plan, 2, &psw, &it, &ni, &err) == TP_OK, "%s", err.msg);
    sw_cfg c;
    sw_cfg_make(&c, 3);
    TP_CHECK(ni == 3 && it.seq == 3 && !strcmp(it.config_hash, c.hash));
    TP_CHECK(!strcmp(psw.uid, sw.uid) && !strcmp(psw.name, "pj"));
    tp_sweep_free(&psw);
    tp_sweep_item_free(&it);
    TP_CHECK(tp_slurm_read_plan_item(plan, 3, &psw, &it, &ni, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "out of range") && strstr(err.msg, "3 item(s)"), "%s", err.msg);
    const char *bad[][2] = {
        {"{\"format\": 1, \"sweep\": {\"name\": \"x\", \"uid\": \"u\"}, \"items\": [{\"seq\": 1}]}",
         "items[0].config_hash"},
        {"{\"format\": 2}", "format"},
        {"{\"format\": 1, \"sweep\": {\"uid\": \"u\"}, \"items\": []}", "sweep.name"},
        {"{not json", "plan.json:1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        TP_CHECK(tp_write_file_atomic(plan, bad[i][0], strlen(bad[i][0]), &err) == TP_OK);
        TP_CHECK(tp_slurm_read_plan_item(plan, 0, &psw, &it, &ni, &err) != TP_OK);
        TP_CHECKF(strstr(err.msg, bad[i][1]) != NULL, "expected '%s' in: %s", bad[i][1], err.msg);
    }
    /* nothing pending: no plan */
    TP_CHECK(sqlite3_exec(tp_store_db(s), "UPDATE sweep_items SET status = 'failed'", NULL, NULL,
                          NULL) == SQLITE_OK);
    TP_CHECK(tp_slurm_write_plan(s, &sw, dir, 0, &n, &err) == TP_OK && n == 0);
    TP_CHECK(tp_slurm_write_plan(s, &sw, dir, 1, &n, &err) == TP_OK && n == 3);
    tp_sweep_free(&sw);
    tp_store_close(s);
}

static void test_sbatch(void) {
    char dir[700], script[800], fake[760];
    snprintf(dir, sizeof dir, "%s/sub 'quoted'", tp_test_tmpdir());
    tp_err err = {0};
    TP_CHECK(tp_mkdir_p(dir, &err) == TP_OK);
    tp_sweep sw = {0};
    snprintf(sw.name, sizeof sw.name, "tokens");
    snprintf(sw.uid, sizeof sw.uid, "abc");
    const char *extra[] = {"--qos=low", NULL};
    tp_slurm_opts o = {0};
    o.dir = dir;
    o.telepathy = "/opt/tp/telepathy";
    o.workdir = "/home/me/exp";
    o.partition = "gpu";
    o.gpus_per_task = 1;
    o.time = "2:00:00";
    o.array_parallel = 8;
    o.retries = 2;
    o.extra = extra;
    TP_CHECKF(tp_slurm_write_script(&o, &sw, 40, script, sizeof script, &err) == TP_OK, "%s",
              err.msg);
    char *text = NULL;
    TP_CHECK(tp_read_file(script, &text, NULL, &err) == TP_OK);
    const char *want[] = {"#SBATCH --array=0-39%8\n",
                          "#SBATCH --partition=gpu\n",
                          "#SBATCH --gpus-per-task=1\n",
                          "#SBATCH --time=2:00:00\n",
                          "#SBATCH --requeue\n",
                          "#SBATCH --signal=B:USR1@",
                          "#SBATCH --qos=low\n",
                          "exec '/opt/tp/telepathy' work --one --plan ",
                          "'\\''quoted'\\''",
                          "--index \"$SLURM_ARRAY_TASK_ID\"",
                          "--retries 2",
                          "--grace 60"};
    for (size_t i = 0; text && i < sizeof want / sizeof *want; i++)
        TP_CHECKF(strstr(text, want[i]) != NULL, "missing '%s' in:\n%s", want[i], text);
    free(text);
    o.gpus_per_task = 0;
    o.array_parallel = 0;
    TP_CHECK(tp_slurm_write_script(&o, &sw, 3, script, sizeof script, &err) == TP_OK);
    text = NULL;
    TP_CHECK(tp_read_file(script, &text, NULL, &err) == TP_OK);
    TP_CHECK(text && !strstr(text, "gpus-per-task") && strstr(text, "--array=0-2\n"));
    free(text);
    o.partition = "gpu\n#SBATCH --evil";
    TP_CHECK(tp_slurm_write_script(&o, &sw, 3, script, sizeof script, &err) == TP_EINVAL);
    o.partition = "gpu";
    /* sbatch itself: failing, missing, answering garbage, answering a job id */
    char job[64];
    const char *fakes[][2] = {
        {"echo 'sbatch: error: invalid partition specified: gpu' >&2; exit 1", "invalid partition"},
        {"echo 'Submitted batch job'", "not a job id"},
        {"echo 'sbatch: warning: something'; echo '4242;cluster1'", NULL},
    };
    snprintf(fake, sizeof fake, "%s/fake_sbatch", tp_test_tmpdir());
    for (size_t i = 0; i < sizeof fakes / sizeof *fakes; i++) {
        char body[512];
        snprintf(body, sizeof body, "#!/bin/sh\n%s\n", fakes[i][0]);
        TP_CHECK(tp_write_file_atomic(fake, body, strlen(body), &err) == TP_OK);
        chmod(fake, 0755);
        tp_status st = tp_slurm_submit(fake, script, job, sizeof job, &err);
        if (fakes[i][1]) {
            TP_CHECK(st != TP_OK);
            TP_CHECKF(strstr(err.msg, fakes[i][1]) != NULL, "%s", err.msg);
        } else {
            TP_CHECKF(st == TP_OK && !strcmp(job, "4242"), "%s / %s", err.msg, job);
        }
    }
    TP_CHECK(tp_slurm_submit("/nonexistent/sbatch", script, job, sizeof job, &err) == TP_EIO);
    TP_CHECKF(strstr(err.msg, "not found") && strstr(err.msg, "submit.sbatch"), "%s", err.msg);
}

TP_TEST_RUN(TP_CASE(test_merge_idempotent), TP_CASE(test_merge_refusals),
            TP_CASE(test_merge_killed), TP_CASE(test_merge_disk_full),
            TP_CASE(test_shard_disk_full), TP_CASE(test_plan_json), TP_CASE(test_sbatch))
