/* test_run_resume.c — a training run killed with SIGKILL after its first checkpoint resumes from
 * that checkpoint and ends bit-identical to an uninterrupted run (per-step losses, predictions,
 * accuracy); a finished configuration is then skipped on re-run, returning the stored result.
 * The victim is a forked child with its own store connection, as a separate `telepathy run`
 * process would be; the parent opening the db afterwards marks the dead run `interrupted`.
 * The same for bridges with hidden state in their checkpoints (bridge.h, ABI 1.2): perceiver
 * with dropout 0.1 (its dropout RNG) and diffusion in flow mode with EMA (its noise RNG and EMA
 * weights, which the eval reads), and vq (its dead-code counters: bridge/vq_dead_codes after the
 * resume equals the uninterrupted run's). And a checkpoint whose bridge state is missing,
 * corrupted, of another size or of another layout is refused on resume with an error naming the
 * file. TP_TEST_SLOW: minutes under the sanitizers at -O0, so `make test-asan` leaves it out.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "run/trainer.h"
#include "run_fixture.h"
#include "util/sha256.h"

#define STEPS 80

/* variant 0: perceiver, no dropout (no bridge state); 1: perceiver, dropout 0.1; 2: diffusion,
 * flow + ce, EMA on with a decay short enough that the eval's EMA weights differ from the live
 * ones */
static json_t *spec(int variant) {
    json_t *s = fx_bridge_spec(STEPS, 5);
    json_object_set_new(s, "checkpoint_every", json_integer(10));
    if (variant == 1)
        json_object_set_new(json_object_get(s, "bridge_options"), "dropout", json_real(0.1));
    if (variant == 3) { /* a dead-code window longer than the checkpoint interval: counts after
                         * the resume depend on the uses before it */
        json_object_set_new(s, "bridge", json_string("vq"));
        json_object_set_new(s, "bridge_options",
                            json_pack("{s:i, s:i, s:i, s:i, s:i}", "tokens", 4, "depth", 1, "heads",
                                      4, "codebook", 16, "dead_window", 50));
        json_object_set_new(s, "losses", json_pack("{s:i, s:i}", "ce", 1, "vq_commit", 1));
    }
    if (variant == 2) {
        json_object_set_new(s, "bridge", json_string("diffusion"));
        json_object_set_new(s, "bridge_options",
                            json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:f}", "mode", "flow",
                                      "tokens", 4, "width", 32, "depth", 1, "heads", 4, "steps", 2,
                                      "ema", "on", "ema_decay", 0.9));
        json_object_set_new(s, "losses", json_pack("{s:i, s:i}", "ce", 1, "flow_match", 1));
    }
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

/* Every bridge/<metric> row of the db's run as one string (for bitwise comparison). */
static char *bridge_metrics(fx *f) {
    sqlite3_stmt *q = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(tp_store_db(f->store),
                           "SELECT group_concat(name || '@' || step || '=' || quote(value), ',') "
                           "FROM (SELECT * FROM metrics WHERE name LIKE 'bridge/%' ORDER BY name, "
                           "step)",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        out = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
    return out;
}

/* Kill, resume, compare with an uninterrupted run, skip. Returns the last checkpoint's path of
 * the resumed run in ckpt (for the corruption checks). */
static void kill_resume_skip(int variant, char *ckpt, size_t cap) {
    fx_models(); /* made before the fork, so the child does not race the parent */
    char db[700], dbname[64], straight[64];
    snprintf(dbname, sizeof dbname, "resume%d.db", variant);
    snprintf(straight, sizeof straight, "straight%d.db", variant);
    snprintf(db, sizeof db, "%s/%s", tp_test_tmpdir(), dbname);
    pid_t pid = fork();
    if (pid == 0) {
        fx f;
        if (!fx_open(&f, dbname)) _exit(3);
        json_t *s = spec(variant);
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
    TP_CHECK(fx_open(&g, straight));
    json_t *s = spec(variant);
    tp_run_result ref;
    tp_err err = {0};
    TP_CHECKF(tp_runner_run(g.runner, s, &ref, &err) == TP_OK, "%s", err.msg);
    const double *l;
    double ref_loss[STEPS];
    TP_CHECK(tp_runner_last_losses(g.runner, &l) == STEPS);
    memcpy(ref_loss, l, sizeof ref_loss);
    char *ref_p = fx_preds(&g);
    char *ref_m = bridge_metrics(&g);
    fx_close(&g);

    /* resume */
    fx f;
    TP_CHECK(fx_open(&f, dbname));
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'") == 1);
    tp_run_result res;
    TP_CHECKF(tp_runner_run(f.runner, s, &res, &err) == TP_OK, "%s", err.msg);
    printf("variant %d: resumed from step %d; accuracy %.4f vs uninterrupted %.4f\n", variant,
           res.resumed_from_step, res.accuracy, ref.accuracy);
    TP_CHECKF(!strcmp(res.status, "resumed"), "status %s", res.status);
    TP_CHECK(res.resumed_from_step >= 10 && res.resumed_from_step < STEPS);
    TP_CHECK(tp_runner_last_losses(f.runner, &l) == STEPS);
    TP_CHECKF(memcmp(l, ref_loss, sizeof ref_loss) == 0,
              "losses differ from the uninterrupted run");
    TP_CHECK(res.accuracy == ref.accuracy && res.final_loss == ref.final_loss);
    char *p = fx_preds(&f);
    TP_CHECK(p && ref_p && !strcmp(p, ref_p));
    /* the bridge's own metrics too (vq_dead_codes reads the checkpointed counters) */
    char *m_res = bridge_metrics(&f);
    TP_CHECKF(m_res && ref_m && !strcmp(m_res, ref_m), "bridge metrics differ");
    free(m_res);
    free(ref_m);
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
    /* the checkpoint holds the bridge's state exactly when the bridge keeps one */
    sqlite3_stmt *q = NULL;
    ckpt[0] = 0;
    if (sqlite3_prepare_v2(tp_store_db(f.store),
                           "SELECT path FROM artifacts WHERE kind = 'checkpoint' ORDER BY id DESC "
                           "LIMIT 1",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        snprintf(ckpt, cap, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    tp_st_model *m = NULL;
    tp_err e2 = {0};
    TP_CHECKF(ckpt[0] && tp_st_open(&m, ckpt, &e2) == TP_OK, "%s: %s", ckpt, e2.msg);
    if (m) TP_CHECK((tp_st_find(m, TP_CKPT_BLOB_TENSOR) != NULL) == (variant != 0));
    tp_st_close(m);
    free(p);
    free(ref_p);
    json_decref(s);
    fx_close(&f);
}

static void test_kill_resume_skip(void) {
    char ckpt[4096];
    kill_resume_skip(0, ckpt, sizeof ckpt);
}

static char dropout_ckpt[4096]; /* the dropout run's last checkpoint, for test_damaged_state */

static void test_kill_resume_dropout(void) {
    kill_resume_skip(1, dropout_ckpt, sizeof dropout_ckpt);
}

static void test_kill_resume_diffusion_ema(void) {
    char ckpt[4096];
    kill_resume_skip(2, ckpt, sizeof ckpt);
}

static void test_kill_resume_vq_counters(void) {
    char ckpt[4096];
    kill_resume_skip(3, ckpt, sizeof ckpt);
}

/* ---- damaged bridge state ------------------------------------------------------------------- */

enum { DROP, FLIP, SHORT, MAGIC };

/* Copies checkpoint src to dst with its bridge state damaged as `how` says. */
static int rewrite(const char *src, const char *dst, int how) {
    tp_st_model *m = NULL;
    tp_err err = {0};
    if (tp_st_open(&m, src, &err) != TP_OK) return 0;
    tp_st_writer *w = tp_st_writer_new();
    int ok = w != NULL;
    const tp_st_tensor *b = tp_st_find(m, TP_CKPT_BLOB_TENSOR);
    unsigned char *bytes = NULL;
    size_t n = 0;
    const char *nb = tp_st_metadata(m, "bridge_state_bytes");
    if (b && nb) {
        n = (size_t)strtoull(nb, NULL, 10);
        bytes = calloc(1, b->nbytes);
        if (bytes) memcpy(bytes, b->data, b->nbytes);
        ok = ok && bytes;
    }
    for (int i = 0; ok && i < tp_st_count(m); i++) {
        const tp_st_tensor *t = tp_st_at(m, i);
        if (t == b) continue;
        ok = tp_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err) == TP_OK;
    }
    char *meta = tp_st_metadata_json(m);
    json_t *j = meta ? json_loads(meta, 0, NULL) : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (!ok) break;
        if (!strncmp(k, "bridge_state_", 13)) continue;
        ok = tp_st_writer_meta(w, k, json_string_value(v), &err) == TP_OK;
    }
    if (ok && how != DROP && bytes) {
        if (how == FLIP) bytes[n / 2] ^= 0x40; /* the recorded sha256 no longer matches */
        if (how == SHORT) n = 16;              /* a consistent blob of another size */
        if (how == MAGIC) bytes[0] ^= 0xff;    /* consistent, but not this bridge's layout */
        char num[32], hex[65];
        snprintf(num, sizeof num, "%zu", n);
        tp_sha256_hex(bytes, n, hex);
        if (how == FLIP) tp_sha256_hex(b->data, n, hex);
        int64_t shape[1] = {(int64_t)((n + 3) / 4)};
        ok = tp_st_writer_add(w, TP_CKPT_BLOB_TENSOR, TP_I32, 1, shape, bytes, &err) == TP_OK &&
             tp_st_writer_meta(w, "bridge_state_bytes", num, &err) == TP_OK &&
             tp_st_writer_meta(w, "bridge_state_sha256", hex, &err) == TP_OK;
    }
    ok = ok && tp_st_writer_write(w, dst, &err) == TP_OK;
    if (!ok) fprintf(stderr, "rewrite %s: %s\n", dst, err.msg);
    json_decref(j);
    free(meta);
    free(bytes);
    tp_st_writer_free(w);
    tp_st_close(m);
    return ok;
}

static void test_damaged_state(void) {
    if (!dropout_ckpt[0]) test_kill_resume_dropout(); /* when run alone (argv filter) */
    const char *ckpt = dropout_ckpt; /* perceiver with dropout: 40 bytes of state */
    fx f;
    TP_CHECK(fx_open(&f, ""));
    json_t *s = spec(1);
    tp_run_cfg cfg;
    tp_err err = {0};
    TP_CHECKF(tp_run_cfg_resolve(f.runner, s, &cfg, &err) == TP_OK, "%s", err.msg);
    static double prior[STEPS + 1];
    static const struct {
        int how;
        const char *want1, *want2;
    } cases[] = {
        {DROP, "holds no bridge state", "Remove the file"},
        {FLIP, "corrupted", "sha256"},
        {SHORT, "the bridge state is 16 bytes", "keeps 40"},
        {MAGIC, "not this bridge's magic", "perceiver"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dst[4200];
        snprintf(dst, sizeof dst, "%s/damaged%zu.safetensors", tp_test_tmpdir(), i);
        TP_CHECK(rewrite(ckpt, dst, cases[i].how));
        tp_trainer *t = NULL;
        TP_CHECKF(tp_trainer_new(&t, &cfg, &err) == TP_OK, "%s", err.msg);
        if (!t) continue;
        int step = -1;
        tp_status st = tp_trainer_resume(t, dst, prior, STEPS, &step, &err);
        TP_CHECKF(st != TP_OK && strstr(err.msg, dst) && strstr(err.msg, cases[i].want1) &&
                      strstr(err.msg, cases[i].want2),
                  "case %zu: %d %s", i, (int)st, err.msg);
        tp_trainer_free(t);
    }
    /* the undamaged one resumes */
    tp_trainer *t = NULL;
    TP_CHECKF(tp_trainer_new(&t, &cfg, &err) == TP_OK, "%s", err.msg);
    int step = -1;
    if (t)
        TP_CHECKF(tp_trainer_resume(t, ckpt, prior, STEPS, &step, &err) == TP_OK && step > 0, "%s",
                  err.msg);
    tp_trainer_free(t);
    tp_run_cfg_free(&cfg);
    json_decref(s);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_kill_resume_skip), TP_CASE(test_kill_resume_dropout),
            TP_CASE(test_kill_resume_diffusion_ema), TP_CASE(test_kill_resume_vq_counters),
            TP_CASE(test_damaged_state))
