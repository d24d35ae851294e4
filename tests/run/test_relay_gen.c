/* test_relay_gen.c — generation tasks through the runner (gen_eval.h): exact match and digit
 * accuracy by hand, the seeded uniform subset, receiver_direct and text_relay on passkey with the
 * tiny models (one prediction per row whose score is its digit accuracy, result rows
 * exact_match / accuracy / digit_accuracy that agree with the predictions; the relay's summaries
 * stored as predictions.output), a GSM8K
 * receiver_direct run on the real file (skipped without ../shared), and the refusals: a
 * non-generate scheme or few-shot on a generation task. */
#include <math.h>

#include "run/gen_eval.h"
#include "run_fixture.h"

static void test_compare_and_subset(void) {
    int ex;
    double dg;
    tp_answer_compare("71432", "71432", &ex, &dg);
    TP_CHECK(ex == 1 && dg == 1.0);
    tp_answer_compare("71442", "71432", &ex, &dg);
    TP_CHECK(ex == 0 && fabs(dg - 0.8) < 1e-12);
    tp_answer_compare("714", "71432", &ex, &dg);
    TP_CHECK(ex == 0 && fabs(dg - 0.6) < 1e-12);
    tp_answer_compare("7143299", "71432", &ex, &dg);
    TP_CHECK(ex == 0 && dg == 1.0); /* extra digits: not exact, every gold digit matched */
    tp_answer_compare("", "18", &ex, &dg);
    TP_CHECK(ex == 0 && dg == 0.0);
    tp_answer_compare("", "", &ex, &dg);
    TP_CHECK(ex == 0);
    tp_dataset ds = {0};
    tp_example rows[50];
    memset(rows, 0, sizeof rows);
    ds.rows = rows;
    ds.n = 50;
    int64_t *a, *b, *c;
    int na, nb, nc;
    tp_err err = {0};
    TP_CHECK(tp_gen_subset(&ds, 10, 5, &a, &na, &err) == TP_OK && na == 10);
    TP_CHECK(tp_gen_subset(&ds, 10, 5, &b, &nb, &err) == TP_OK && !memcmp(a, b, 10 * sizeof *a));
    TP_CHECK(tp_gen_subset(&ds, 10, 6, &c, &nc, &err) == TP_OK && memcmp(a, c, 10 * sizeof *a));
    int sorted = 1;
    for (int i = 1; i < na; i++) sorted &= a[i] > a[i - 1];
    TP_CHECK(sorted && a[0] >= 0 && a[9] < 50);
    free(a), free(b), free(c);
    TP_CHECK(tp_gen_subset(&ds, 0, 5, &a, &na, &err) == TP_OK && na == 50 && a[49] == 49);
    free(a);
}

/* Checks the stored rows of a generation run against its predictions. */
static void check_gen_run(fx *f, const tp_run_result *res, int n) {
    char sql[512];
    long long id = (long long)res->run_id;
    TP_CHECK(res->n == n && !strcmp(res->scheme, "generate") && res->n_classes == 0);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld", id);
    TP_CHECK(fx_count(f, sql) == n);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND (correct != (prediction = "
             "gold) OR length(gold) != 5 OR score < 0 OR score > 1 OR (correct = 1 AND score != "
             "1))",
             id);
    TP_CHECK(fx_count(f, sql) == 0);
    /* digit accuracy by hand from the stored strings equals the stored score */
    sqlite3_stmt *q = NULL;
    double sum = 0;
    int rows = 0;
    snprintf(sql, sizeof sql, "SELECT gold, prediction, score FROM predictions WHERE run_id = %lld",
             id);
    if (sqlite3_prepare_v2(tp_store_db(f->store), sql, -1, &q, NULL) == SQLITE_OK)
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *g = (const char *)sqlite3_column_text(q, 0);
            const char *p = (const char *)sqlite3_column_text(q, 1);
            p = p ? p : "";
            int k = 0;
            for (int i = 0; i < 5; i++) k += i < (int)strlen(p) && p[i] == g[i];
            TP_CHECK(fabs(k / 5.0 - sqlite3_column_double(q, 2)) < 1e-12);
            sum += k / 5.0;
            rows++;
        }
    sqlite3_finalize(q);
    TP_CHECK(rows == n);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND metric = 'digit_accuracy' AND "
             "scheme = 'generate' AND n = %d AND abs(value - %.17g) < 1e-12",
             id, n, rows ? sum / rows : 0);
    TP_CHECK(fx_count(f, sql) == 1);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND metric IN ('exact_match', "
             "'accuracy') AND abs(value * n - %lld) < 1e-9 AND ci_method = 'wilson'",
             id, (long long)res->n_correct);
    TP_CHECK(fx_count(f, sql) == 2);
}

static void test_passkey_runs(void) {
    fx f;
    TP_CHECK(fx_open(&f, "gen.db"));
    tp_run_result res;
    tp_err err = {0};
    json_t *s =
        json_pack("{s:s, s:s, s:s, s:{s:i, s:i}, s:i, s:i, s:i}", "baseline", "receiver_direct",
                  "receiver", "tiny_mistral", "task", "passkey", "task_options", "n_eval", 12,
                  "filler", 2, "eval_n", 6, "eval_seed", 3, "max_new_tokens", 6);
    tp_status st = tp_runner_run(f.runner, s, &res, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) check_gen_run(&f, &res, 6);
    json_decref(s);
    s = json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:{s:i}, s:i}", "baseline", "text_relay",
                  "sender", "tiny_llama", "receiver", "tiny_mistral", "task", "passkey",
                  "task_options", "n_eval", 5, "filler", 1, "baseline_options", "summary_tokens", 5,
                  "max_new_tokens", 4);
    st = tp_runner_run(f.runner, s, &res, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        check_gen_run(&f, &res, 5);
        /* what the sender wrote is kept per example (predictions.output) */
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND output IS NOT NULL",
                 (long long)res.run_id);
        TP_CHECK(fx_count(&f, sql) == 5);
        /* attaching an output to a prediction that does not exist is an error, not a no-op */
        const char *id = "no-such-example", *out = "x";
        st = tp_store_prediction_outputs_set(f.store, res.run_id, "eval", &id, &out, 1, &err);
        TP_CHECK(st == TP_EINVAL && strstr(err.msg, "no-such-example"));
    }
    json_decref(s);
    /* refusals (bridges on generation tasks: test_run_gen_bridge.c) */
    s = json_pack("{s:s, s:s, s:s, s:s}", "baseline", "receiver_direct", "receiver", "tiny_mistral",
                  "task", "passkey", "scoring", "first_token");
    st = tp_runner_run(f.runner, s, &res, &err);
    TP_CHECK(st == TP_EINVAL && strstr(err.msg, "generate"));
    json_decref(s);
    s = json_pack("{s:s, s:s, s:s}", "baseline", "fewshot", "receiver", "tiny_mistral", "task",
                  "passkey");
    st = tp_runner_run(f.runner, s, &res, &err);
    TP_CHECK(st == TP_EUNSUP && strstr(err.msg, "not a classification task"));
    json_decref(s);
    fx_close(&f);
}

static void test_gsm8k_direct(void) {
    const char *shared = tp_test_shared_dir("gsm8k receiver_direct");
    if (!shared) return;
    snprintf(fx_data_dir, sizeof fx_data_dir, "%s/data", shared);
    fx f;
    TP_CHECK(fx_open(&f, "gsm8k.db"));
    tp_run_result res;
    tp_err err = {0};
    json_t *s = json_pack("{s:s, s:s, s:s, s:i, s:i}", "baseline", "receiver_direct", "receiver",
                          "tiny_mistral", "task", "gsm8k", "eval_n", 3, "max_new_tokens", 8);
    tp_status st = tp_runner_run(f.runner, s, &res, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(res.n == 3 && !strcmp(res.scheme, "generate"));
        TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM predictions WHERE gold GLOB '[0-9-]*' AND "
                              "gold NOT LIKE '%,%'") == 3);
        TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM results WHERE metric = 'exact_match'") == 1);
    }
    json_decref(s);
    fx_close(&f);
    fx_data_dir[0] = 0;
}

TP_TEST_RUN(TP_CASE(test_compare_and_subset), TP_CASE(test_passkey_runs),
            TP_CASE(test_gsm8k_direct))
