/* test_run_scoring.c — the three scoring schemes on every path (bridge, sender_direct,
 * receiver_direct): each run records one prediction per evaluated row with the scheme named in
 * its result; first_token and loglik always predict a label word; generate predicts a label word
 * found in the decoded text, or records the text itself (and counts it wrong); `correct` always
 * agrees with prediction == gold, and the stored accuracy with the predictions. */
#include "run_fixture.h"

static void check_run(fx *f, const char *what, json_t *spec, const char *scheme) {
    tp_run_result res;
    tp_err err = {0};
    tp_status st = tp_runner_run(f->runner, spec, &res, &err);
    TP_CHECKF(st == TP_OK, "%s/%s: %s", what, scheme, err.msg);
    if (st != TP_OK) return;
    printf("%-16s %-12s acc %.3f n %lld\n", what, scheme, res.accuracy, (long long)res.n);
    TP_CHECK(res.n == 16 && !strcmp(res.scheme, scheme));
    char sql[512];
    long long id = (long long)res.run_id;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld", id);
    TP_CHECK(fx_count(f, sql) == 16);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND correct != "
             "(prediction = gold)",
             id);
    TP_CHECK(fx_count(f, sql) == 0);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND prediction NOT IN "
             "('sports', 'music')",
             id);
    int other = fx_count(f, sql);
    if (strcmp(scheme, "generate") != 0) TP_CHECKF(other == 0, "%d non-label predictions", other);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND correct = 1", id);
    TP_CHECK(fx_count(f, sql) == (int)res.n_correct);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND metric = 'accuracy' AND "
             "scheme = '%s' AND abs(value * n - %lld) < 1e-9",
             id, scheme, (long long)res.n_correct);
    TP_CHECK(fx_count(f, sql) == 1);
}

static void test_schemes(void) {
    fx f;
    TP_CHECK(fx_open(&f, "scoring.db"));
    const char *schemes[] = {"first_token", "loglik", "generate"};
    for (int i = 0; i < 3; i++) {
        json_t *b = fx_bridge_spec(3, 1);
        json_object_set_new(b, "task_options",
                            json_pack("{s:i, s:i}", "n_train", 32, "n_eval", 16));
        json_object_set_new(b, "scoring", json_string(schemes[i]));
        check_run(&f, "bridge", b, schemes[i]);
        json_decref(b);
        const char *kinds[] = {"sender_direct", "receiver_direct"};
        for (int k = 0; k < 2; k++) {
            json_t *s = json_pack("{s:s, s:s, s:s, s:{s:i, s:i}, s:s, s:i}", "baseline", kinds[k],
                                  k ? "receiver" : "sender", k ? "tiny_mistral" : "tiny_llama",
                                  "task", "toy", "task_options", "n_train", 32, "n_eval", 16,
                                  "scoring", schemes[i], "max_new_tokens", 4);
            check_run(&f, kinds[k], s, schemes[i]);
            json_decref(s);
        }
    }
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 9);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_schemes))
