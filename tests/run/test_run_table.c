/* test_run_table.c — tp.table's renderer against hand-made results: mean ± sample std over the
 * done runs of a cell with n, a single run shown with n=1, failed runs left out, config paths as
 * keys, a cell mixing scoring schemes flagged with the schemes it mixes, percent for accuracies,
 * and bad keys refused. */
#include <math.h>

#include "run/table.h"
#include "run_fixture.h"

static int64_t add_run(tp_store *s, const char *hash, const char *bridge, const char *task,
                       int tokens, double acc, const char *scheme, tp_run_status status) {
    static int64_t seed = 0;
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"bridge\":{\"options\":{\"tokens\":%d}}}", tokens);
    tp_run_meta m = {0};
    m.config_json = cfg;
    m.config_hash = hash;
    m.bridge = bridge;
    m.task = task;
    m.git_dirty = -1;
    m.seed = ++seed; /* distinct seeds: the table flags a seed used twice in one cell */
    int64_t id;
    int attempt;
    tp_err err = {0};
    TP_CHECKF(tp_store_run_begin(s, &m, &id, &attempt, &err) == TP_OK, "%s", err.msg);
    tp_result_row r = {"accuracy", acc, NAN, NAN, NULL, 64, scheme, "eval"};
    TP_CHECKF(tp_store_results_add(s, id, &r, 1, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_store_run_finish(s, id, status, NULL, NULL, &err) == TP_OK);
    return id;
}

static void test_table(void) {
    char db[700];
    snprintf(db, sizeof db, "%s/table.db", tp_test_tmpdir());
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, db, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return;
    add_run(s, "h1", "perceiver", "toy", 4, 0.9375, "first_token", TP_RUN_DONE);
    add_run(s, "h2", "perceiver", "toy", 4, 0.8125, "first_token", TP_RUN_DONE);
    add_run(s, "h3", "perceiver", "toy", 8, 0.10, "first_token", TP_RUN_FAILED);
    add_run(s, "h4", "receiver_direct", "toy", 0, 0.5, "first_token", TP_RUN_DONE);
    add_run(s, "h5", "mlp", "sst2", 4, 0.7, "first_token", TP_RUN_DONE);
    add_run(s, "h6", "mlp", "sst2", 4, 0.6, "loglik", TP_RUN_DONE);
    char *out = NULL;
    tp_table_opts o = {.rows = "bridge", .cols = "task"};
    TP_CHECKF(tp_table_render(s, &o, &out, &err) == TP_OK, "%s", err.msg);
    printf("%s\n", out ? out : "");
    /* mean 87.5, sample std of (93.75, 81.25) = 8.84 */
    TP_CHECK(out && strstr(out, "| bridge | toy | sst2 |"));
    TP_CHECK(out && strstr(out, "| perceiver | 87.5 ± 8.8 (n=2)"));
    TP_CHECK(out && strstr(out, "| receiver_direct | 50.0 (n=1)"));
    TP_CHECK(out && strstr(out, "| mlp | – | 65.0 ± 7.1 (n=2) [schemes: first_token+loglik]"));
    free(out);
    tp_table_opts o2 = {.rows = "bridge.options.tokens"};
    TP_CHECKF(tp_table_render(s, &o2, &out, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(out && strstr(out, "| 4 | 76.2 ± 14.5 (n=4) [schemes: first_token+loglik]"));
    TP_CHECK(out && strstr(out, "| 0 | 50.0 (n=1)"));
    printf("%s\n", out ? out : "");
    free(out);
    tp_table_opts o3 = {.rows = "bridge'; DROP TABLE runs; --"};
    TP_CHECK(tp_table_render(s, &o3, &out, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "expected a runs column"));
    tp_table_opts o4 = {.rows = "bridge", .metric = "macro_f1"};
    TP_CHECK(tp_table_render(s, &o4, &out, &err) == TP_OK && strstr(out, "no finished runs"));
    free(out);
    tp_store_close(s);
}

TP_TEST_RUN(TP_CASE(test_table))
