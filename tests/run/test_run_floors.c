/* test_run_floors.c — the ablation floors recorded, and the bridges' own metrics logged.
 *
 * meanpool and identity hand raw sender states to the receiver, so they need d_sender ==
 * d_receiver: the pair here is two tiny llama models (width 64) made with different seeds
 * (`make-tiny` semantics: the same shape, different weights). Each floor trains briefly on toy and
 * must be recorded as a done run with an accuracy between 0 and 1 and one prediction per
 * evaluation row. No level is asserted: the study saw 0% on SST-2 (the receiver makes nothing of
 * raw sender geometry), and on a random tiny receiver any value is chance-level noise.
 *
 * Bridge metrics: the bridge_out's scalar metrics (alpha, vq perplexity / dead codes / commit,
 * fsq unique fraction / perplexity) are logged to the metrics table under bridge/<name>, one row
 * per training step. TP_TEST_SLOW (four short trainings; ~20 s under ASan). */
#include "run_fixture.h"

static int add_llama_b(fx *f) {
    char p[700];
    snprintf(p, sizeof p, "%s/llama_b", tp_test_tmpdir());
    tp_err err = {0};
    if (tp_make_tiny(p, "llama", 3, NULL, &err) != TP_OK) {
        fprintf(stderr, "make_tiny: %s\n", err.msg);
        return 0;
    }
    const tp_run_model *m;
    if (tp_runner_add_model(f->runner, p, "tiny_llama_b", &m, &err) != TP_OK) {
        fprintf(stderr, "llama_b: %s\n", err.msg);
        return 0;
    }
    return 1;
}

static json_t *floor_spec(const char *bridge) {
    return json_pack("{s:s, s:s, s:s, s:{s:i, s:i}, s:s, s:{s:i}, s:i, s:i, s:i, s:f, s:i}",
                     "sender", "tiny_llama", "receiver", "tiny_llama_b", "task", "toy",
                     "task_options", "n_train", 64, "n_eval", 32, "bridge", bridge,
                     "bridge_options", "tokens", 4, "steps", 8, "batch", 8, "seed", 5, "lr", 2e-3,
                     "eval_batch", 32);
}

static void test_floors_recorded(void) {
    fx f;
    TP_CHECK(fx_open(&f, "floors.db"));
    TP_CHECK(add_llama_b(&f));
    const char *names[2] = {"meanpool", "identity"};
    for (int i = 0; i < 2; i++) {
        tp_run_result res;
        tp_err err = {0};
        json_t *s = floor_spec(names[i]);
        tp_status st = tp_runner_run(f.runner, s, &res, &err);
        TP_CHECKF(st == TP_OK, "%s: %s", names[i], err.msg);
        if (st == TP_OK) {
            TP_CHECKF(res.accuracy >= 0 && res.accuracy <= 1 && res.n == 32, "%s: %g of %lld",
                      names[i], res.accuracy, (long long)res.n);
            char sql[512];
            snprintf(sql, sizeof sql,
                     "SELECT COUNT(*) FROM runs r JOIN results x ON x.run_id = r.id WHERE r.id = "
                     "%lld AND r.status = 'done' AND r.bridge = '%s' AND x.metric = 'accuracy' "
                     "AND x.split = 'eval' AND x.value BETWEEN 0 AND 1",
                     (long long)res.run_id, names[i]);
            TP_CHECK(fx_count(&f, sql) == 1);
            snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld",
                     (long long)res.run_id);
            TP_CHECK(fx_count(&f, sql) == 32);
        }
        json_decref(s);
    }
    /* the widths must match: the 64-wide llama into the 96-wide mistral is a recorded failure */
    tp_run_result res;
    tp_err err = {0};
    json_t *s = floor_spec("identity");
    json_object_set_new(s, "receiver", json_string("tiny_mistral"));
    tp_status st = tp_runner_run(f.runner, s, &res, &err);
    TP_CHECKF(st != TP_OK && strstr(err.msg, "64") && strstr(err.msg, "96"), "%s", err.msg);
    json_decref(s);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'failed'") == 1);
    fx_close(&f);
}

static void test_bridge_metrics(void) {
    fx f;
    TP_CHECK(fx_open(&f, "bmetrics.db"));
    struct {
        const char *bridge;
        json_t *opts;
        const char *metrics[3];
    } cases[2] = {
        {"vq",
         json_pack("{s:i, s:i, s:i, s:i}", "tokens", 4, "codebook", 16, "depth", 1, "heads", 4),
         {"bridge/alpha", "bridge/vq_perplexity", "bridge/vq_dead_codes"}},
        {"fsq",
         json_pack("{s:i, s:s, s:i, s:i}", "tokens", 4, "levels", "5,3", "depth", 1, "heads", 4),
         {"bridge/alpha", "bridge/fsq_unique", "bridge/fsq_perplexity"}},
    };
    for (int i = 0; i < 2; i++) {
        json_t *s = fx_bridge_spec(6, 3);
        json_object_set_new(s, "bridge", json_string(cases[i].bridge));
        json_object_set_new(s, "bridge_options", cases[i].opts);
        if (i == 0)
            json_object_set_new(s, "losses", json_pack("{s:f, s:f}", "ce", 1.0, "vq_commit", 1.0));
        tp_run_result res;
        tp_err err = {0};
        tp_status st = tp_runner_run(f.runner, s, &res, &err);
        TP_CHECKF(st == TP_OK, "%s: %s", cases[i].bridge, err.msg);
        for (int k = 0; k < 3 && st == TP_OK; k++) {
            char sql[512];
            snprintf(sql, sizeof sql,
                     "SELECT COUNT(DISTINCT step) FROM metrics WHERE run_id = %lld AND name = '%s' "
                     "AND step BETWEEN 0 AND 5",
                     (long long)res.run_id, cases[i].metrics[k]);
            TP_CHECKF(fx_count(&f, sql) == 6, "%s: %s", cases[i].bridge, cases[i].metrics[k]);
        }
        json_decref(s);
    }
    /* values that mean what they say: perplexity within [1, K], dead codes within [0, K] */
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM metrics WHERE name = 'bridge/vq_perplexity' AND "
                          "value BETWEEN 1 AND 16") == 6);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM metrics WHERE name = 'bridge/vq_dead_codes' AND "
                          "value BETWEEN 0 AND 16") == 6);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM metrics WHERE name = 'bridge/fsq_unique' AND "
                          "value > 0 AND value <= 1") == 6); /* distinct codes / N */
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_floors_recorded), TP_CASE(test_bridge_metrics))
