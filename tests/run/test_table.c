/* test_table.c — run/table.c on a hand-built results.db: md, LaTeX and CSV output against the
 * golden files in tests/run/golden/ (TP_UPDATE_GOLDEN=1 rewrites them), seeds collapsing to
 * mean ± std with n, config-path keys, McNemar marks vs a baseline (the p-values checked against
 * stats.c directly), and the fidelity flags: mixed schemes, mixed task versions, a stored
 * fairness warning, different example counts; plus bad keys, formats and baselines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/stats.h"
#include "run/table.h"
#include "tp_test.h"
#include "util/strutil.h"

#ifndef TP_SOURCE_DIR
#define TP_SOURCE_DIR "."
#endif

static int64_t add_run(tp_store *s, const char *bridge, int tokens, int64_t seed, const char *tver,
                       const char *scheme, int n, int n_correct, const int *correct, tp_err *err) {
    char cfg[256], hash[80];
    static int k;
    snprintf(cfg, sizeof cfg, "{\"bridge\":{\"name\":\"%s\",\"options\":{\"tokens\":%d}},\"k\":%d}",
             bridge, tokens, k);
    snprintf(hash, sizeof hash, "hash%04d", k++);
    tp_run_meta m = {0};
    m.config_json = cfg;
    m.config_hash = hash;
    m.seed = seed;
    m.task = "toy";
    m.task_version = tver;
    m.bridge = bridge;
    m.git_dirty = -1;
    int64_t id;
    int attempt;
    if (tp_store_run_begin(s, &m, &id, &attempt, err) != TP_OK) return -1;
    tp_result_row r = {"accuracy", (double)n_correct / n, NAN, NAN, NULL, n, scheme, "eval"};
    if (tp_store_results_add(s, id, &r, 1, err) != TP_OK) return -1;
    if (correct) {
        tp_prediction_row *p = calloc((size_t)n, sizeof *p);
        char(*ids)[16] = calloc((size_t)n, sizeof *ids);
        for (int i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "%d", i);
            p[i].split = "eval";
            p[i].example_id = ids[i];
            p[i].example_hash = ids[i];
            p[i].gold = "a";
            p[i].prediction = correct[i] ? "a" : "b";
            p[i].correct = correct[i];
            p[i].score = NAN;
        }
        tp_status st = tp_store_predictions_add(s, id, p, n, err);
        free(p);
        free(ids);
        if (st != TP_OK) return -1;
    }
    if (tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, err) != TP_OK) return -1;
    return id;
}

static int count(const int *c, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += c[i];
    return k;
}

#define N 60
static int base[N], good1[N], good2[N], same[N], fair[N];

/* A store: a baseline (50% of 60), a bridge clearly better with 2 seeds at 8 tokens, a bridge
 * no better at 16 tokens mixing schemes and task versions, a baseline flagged for fairness. */
static tp_store *make_store(const char *name) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", tp_test_tmpdir(), name);
    tp_store *s = NULL;
    tp_err err = {0};
    if (tp_store_open(&s, path, TP_STORE_RW, &err) != TP_OK) {
        fprintf(stderr, "store: %s\n", err.msg);
        return NULL;
    }
    for (int i = 0; i < N; i++) {
        base[i] = i % 2;
        good1[i] = i % 10 != 0;      /* 54/60 */
        good2[i] = i % 6 != 0;       /* 50/60 */
        same[i] = (i + (i < 4)) % 2; /* 30/60, disagrees with the baseline on 4 examples */
        fair[i] = i % 3 != 0;        /* 40/60 */
    }
    int ok = 1;
    ok &=
        add_run(s, "receiver_direct", 8, 0, "1", "first_token", N, count(base, N), base, &err) > 0;
    ok &= add_run(s, "perceiver", 8, 1, "1", "first_token", N, count(good1, N), good1, &err) > 0;
    ok &= add_run(s, "perceiver", 8, 2, "1", "first_token", N, count(good2, N), good2, &err) > 0;
    ok &= add_run(s, "perceiver", 16, 1, "1", "first_token", N, count(same, N), same, &err) > 0;
    ok &= add_run(s, "perceiver", 16, 2, "2", "generate", N, count(same, N), same, &err) > 0;
    ok &=
        add_run(s, "receiver_direct", 16, 0, "1", "first_token", N, count(base, N), base, &err) > 0;
    int64_t f = add_run(s, "text_relay", 8, 0, "1", "first_token", N, count(fair, N), fair, &err);
    ok &= f > 0;
    /* a run without predictions and a different example count */
    ok &= add_run(s, "mlp", 8, 1, "1", "first_token", 200, 150, NULL, &err) > 0;
    tp_result_row fw[2] = {{"fairness_warning", 1, NAN, NAN, NULL, -1, NULL, "eval"},
                           {"fairness_warning/no_label_list", 1, NAN, NAN, NULL, -1, NULL, "eval"}};
    if (ok) ok = tp_store_results_add(s, f, fw, 2, &err) == TP_OK;
    TP_CHECKF(ok, "%s", err.msg);
    return s;
}

static void check_golden(const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/run/golden/%s", TP_SOURCE_DIR, name);
    if (getenv("TP_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        TP_CHECK(f != NULL);
        if (f) {
            fputs(text, f);
            fclose(f);
        }
        return;
    }
    FILE *f = fopen(path, "r");
    TP_CHECKF(f != NULL, "%s missing (run with TP_UPDATE_GOLDEN=1 to create)", path);
    if (!f) return;
    char *want = calloc(1, 1 << 16);
    size_t n = fread(want, 1, (1 << 16) - 1, f);
    fclose(f);
    want[n] = 0;
    TP_CHECKF(!strcmp(want, text), "%s differs:\n--- got\n%s--- want\n%s", name, text, want);
    free(want);
}

static void test_formats_golden(void) {
    tp_store *s = make_store("golden.db");
    if (!s) return;
    const char *fmts[] = {"md", "latex", "csv"},
               *files[] = {"table_vs.md", "table_vs.tex", "table_vs.csv"};
    for (int i = 0; i < 3; i++) {
        tp_table_opts o = {0};
        o.rows = "bridge";
        o.cols = "bridge.options.tokens";
        o.vs = "receiver_direct";
        o.format = fmts[i];
        char *text = NULL;
        tp_err err = {0};
        TP_CHECKF(tp_table_render(s, &o, &text, &err) == TP_OK, "%s", err.msg);
        if (text) check_golden(files[i], text);
        free(text);
    }
    tp_store_close(s);
}

static void test_content(void) {
    tp_store *s = make_store("content.db");
    if (!s) return;
    tp_table_opts o = {0};
    o.rows = "bridge";
    o.cols = "bridge.options.tokens";
    o.vs = "receiver_direct";
    char *t = NULL;
    tp_err err = {0};
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    if (!t) return;
    /* 2 seeds: 54/60 and 50/60 -> 86.7 ± 4.7 (n=2) */
    char want[128];
    double m, sd, v[2] = {54.0 / 60, 50.0 / 60};
    tp_stats_mean_std(v, 2, &m, &sd);
    snprintf(want, sizeof want, "%.1f ± %.1f (n=2)", m * 100, sd * 100);
    TP_CHECKF(strstr(t, want) != NULL, "lacks '%s':\n%s", want, t);
    /* the better bridge is significant after Holm; the same-as-baseline one is not */
    tp_mcnemar a, b;
    tp_stats_mcnemar_pairs(good1, base, N, &a);
    tp_stats_mcnemar_pairs(good2, base, N, &b);
    TP_CHECK(a.p < 0.001 && b.p < 0.01);
    TP_CHECKF(strstr(t, "(n=2)**") != NULL || strstr(t, "(n=2)***") != NULL, "%s", t);
    TP_CHECK(strstr(t, "[schemes: first_token+generate]") != NULL);
    TP_CHECK(strstr(t, "[task versions: 1+2]") != NULL);
    TP_CHECK(strstr(t, "[fairness: no_label_list]") != NULL);
    TP_CHECK(strstr(t, "[N=200]") != NULL);
    TP_CHECK(strstr(t, "[no paired predictions]") != NULL);
    free(t);

    /* csv p-value of the 8-token cell: the larger Holm-adjusted p of its two seeds */
    o.format = "csv";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    double p[4];
    tp_mcnemar c, d;
    tp_stats_mcnemar_pairs(same, base, N, &c);
    tp_stats_mcnemar_pairs(fair, base, N, &d);
    p[0] = a.p, p[1] = b.p, p[2] = c.p, p[3] = d.p; /* the 16-token pair has 2 tests */
    double q[5] = {a.p, b.p, c.p, c.p, d.p}, adj[5];
    (void)p;
    TP_CHECK(tp_stats_holm(q, 5, adj, &err) == TP_OK);
    snprintf(want, sizeof want, "perceiver,8,accuracy,%.6g,%.6g,2,1;2,60,%.6g,", m, sd,
             fmax(adj[0], adj[1]));
    TP_CHECKF(t && strstr(t, want) != NULL, "lacks '%s':\n%s", want, t ? t : "");
    free(t);

    /* one column, no tests, filters */
    tp_table_opts o2 = {0};
    o2.rows = "seed";
    o2.origin = "study";
    TP_CHECK(tp_table_render(s, &o2, &t, &err) == TP_OK);
    TP_CHECK(t && strstr(t, "(no finished runs with this metric)") != NULL);
    free(t);
    tp_store_close(s);
}

static void test_errors(void) {
    tp_store *s = make_store("errors.db");
    if (!s) return;
    tp_err err = {0};
    char *t = NULL;
    tp_table_opts o = {0};
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_EINVAL); /* rows missing */
    o.rows = "bridge; DROP TABLE runs";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "expected a runs column") != NULL);
    o.rows = "bridge";
    o.format = "html";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "expected md, latex or csv") != NULL);
    o.format = NULL;
    o.vs = "nope";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "no row has bridge = nope (rows: receiver_direct, perceiver") != NULL,
              "%s", err.msg);
    TP_CHECK(t == NULL);
    tp_store_close(s);
}

/* "5 seeds" that were fewer: two runs of a cell with one seed are flagged */
static void test_duplicate_seed(void) {
    char path[700];
    snprintf(path, sizeof path, "%s/dup.db", tp_test_tmpdir());
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECK(tp_store_open(&s, path, TP_STORE_RW, &err) == TP_OK);
    if (!s) return;
    TP_CHECK(add_run(s, "mlp", 8, 42, "1", "first_token", N, 40, NULL, &err) > 0);
    TP_CHECK(add_run(s, "mlp", 16, 42, "1", "first_token", N, 45, NULL, &err) > 0);
    TP_CHECK(add_run(s, "mlp", 8, 7, "1", "first_token", N, 42, NULL, &err) > 0);
    tp_table_opts o = {0};
    o.rows = "bridge";
    char *t = NULL;
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    TP_CHECKF(t && strstr(t, "(n=3) [seed 42 used twice]"), "%s", t ? t : "");
    free(t);
    o.format = "csv";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    TP_CHECKF(t && strstr(t, ",3,42;42;7,60,,[seed 42 used twice]"), "%s", t ? t : "");
    free(t);
    o.format = NULL;
    o.cols = "bridge.options.tokens";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    TP_CHECK(t && !strstr(t, "used twice"));
    free(t);
    tp_store_close(s);
}

/* --test bootstrap on the paired predictions, --test ttest over shared seeds */
static void test_other_tests(void) {
    tp_store *s = make_store("tests.db");
    if (!s) return;
    tp_table_opts o = {0};
    o.rows = "bridge";
    o.cols = "bridge.options.tokens";
    o.vs = "receiver_direct";
    o.test = "bootstrap";
    char *t = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_table_render(s, &o, &t, &err) == TP_OK, "%s", err.msg);
    TP_CHECKF(t && strstr(t, "(n=2)*** |") && strstr(t, "paired bootstrap (10000 resamples)"), "%s",
              t ? t : "");
    /* the 16-token bridge agrees with the baseline on 56 of 60 examples: no mark */
    TP_CHECKF(t && strstr(t, "50.0 ± 0.0 (n=2) [schemes"), "%s", t ? t : "");
    free(t);
    /* the baseline has seed 0 only: no seed is shared, the t-test cannot run */
    o.test = "ttest";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    TP_CHECKF(t && strstr(t, "[fewer than 2 seeds paired with the baseline]"), "%s", t ? t : "");
    free(t);
    o.test = "anova";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "expected mcnemar, bootstrap or ttest") != NULL);
    tp_store_close(s);

    char path[700];
    snprintf(path, sizeof path, "%s/ttest.db", tp_test_tmpdir());
    TP_CHECK(tp_store_open(&s, path, TP_STORE_RW, &err) == TP_OK);
    if (!s) return;
    const int a[3] = {40, 42, 45}, b[3] = {48, 47, 53};
    for (int i = 0; i < 3; i++) {
        TP_CHECK(add_run(s, "base", 8, i + 1, "1", "first_token", N, a[i], NULL, &err) > 0);
        TP_CHECK(add_run(s, "new", 8, i + 1, "1", "first_token", N, b[i], NULL, &err) > 0);
    }
    double x[3], y[3];
    for (int i = 0; i < 3; i++) x[i] = (double)b[i] / N, y[i] = (double)a[i] / N;
    tp_ttest tt;
    TP_CHECK(tp_stats_paired_t(x, y, 3, &tt, &err) == TP_OK);
    tp_table_opts o2 = {0};
    o2.rows = "bridge";
    o2.vs = "base";
    o2.test = "ttest";
    o2.format = "csv";
    TP_CHECK(tp_table_render(s, &o2, &t, &err) == TP_OK);
    char want[128];
    snprintf(want, sizeof want, ",3,1;2;3,60,%.6g,", tt.p);
    TP_CHECKF(t && strstr(t, want), "lacks '%s':\n%s", want, t ? t : "");
    free(t);
    tp_store_close(s);
}

TP_TEST_RUN(TP_CASE(test_formats_golden), TP_CASE(test_content), TP_CASE(test_duplicate_seed),
            TP_CASE(test_other_tests), TP_CASE(test_errors))
