/* test_run_sst2.c — SST-2 end to end on the real GLUE files in ../shared/data (read through the
 * runner's data directory, as [paths] data sets it) with the tiny models and a small step count:
 * a bridge run over the full validation split (872 predictions) and a receiver-direct baseline on
 * a seeded stratified sample of 100, each with rows in runs, metrics, predictions and results.
 * Skipped with a message when ../shared is absent.
 * TP_TEST_SLOW: minutes under the sanitizers at -O0, so `make test-asan` leaves it out.
 */
#include "run_fixture.h"

static void test_sst2_end_to_end(void) {
    const char *shared = tp_test_shared_dir("SST-2 data");
    if (!shared) return;
    snprintf(fx_data_dir, sizeof fx_data_dir, "%s/data", shared);
    fx f;
    TP_CHECK(fx_open(&f, "sst2.db"));
    json_t *s = fx_bridge_spec(10, 1);
    json_object_set_new(s, "task", json_string("sst2"));
    json_object_del(s, "task_options");
    tp_run_result res;
    tp_err err = {0};
    TP_CHECKF(tp_runner_run(f.runner, s, &res, &err) == TP_OK, "%s", err.msg);
    printf("sst2 bridge (10 steps): accuracy %.3f n %lld\n", res.accuracy, (long long)res.n);
    TP_CHECK(res.n == 872);
    TP_CHECK(res.n_classes == 2 && res.class_n[0] + res.class_n[1] == 872);
    int64_t id = res.run_id;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld",
             (long long)id);
    TP_CHECK(fx_count(&f, sql) == 872);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM metrics WHERE run_id = %lld AND name = 'train/loss'",
             (long long)id);
    TP_CHECK(fx_count(&f, sql) == 10);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND metric = 'accuracy' AND n = 872",
             (long long)id);
    TP_CHECK(fx_count(&f, sql) == 1);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE task = 'sst2' AND task_version = '1' "
                          "AND bridge = 'perceiver' AND status = 'done'") == 1);
    /* 444 positive / 428 negative in dev.tsv */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND gold = 'positive'",
             (long long)id);
    TP_CHECK(fx_count(&f, sql) == 444);
    json_decref(s);

    json_t *b = json_pack("{s:s, s:s, s:s, s:i, s:i}", "baseline", "receiver_direct", "receiver",
                          "tiny_mistral", "task", "sst2", "eval_n", 100, "eval_seed", 3);
    TP_CHECKF(tp_runner_run(f.runner, b, &res, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(res.n == 100);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld",
             (long long)res.run_id);
    TP_CHECK(fx_count(&f, sql) == 100);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND gold = 'positive'",
             (long long)res.run_id);
    int pos = fx_count(&f, sql);
    TP_CHECKF(pos == 51, "stratified sample of 100 has %d positives (444/872 -> 51)", pos);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE bridge = 'receiver_direct' AND "
                          "config_json LIKE '%\"subset\":\"stratified\"%'") == 1);
    json_decref(b);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_sst2_end_to_end))
