/* test_plot.c — run/plot.c on a hand-built results.db: every kind writes a non-empty file in the
 * format its name asks for (PNG magic, an <svg> document, %PDF), and bad kinds, extensions, keys,
 * a missing gnuplot and empty selections are clear errors. Skips (with a message) when gnuplot
 * is not installed: scripts/install-deps.sh installs gnuplot-nox. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/plot.h"
#include "tp_test.h"

static int have_gnuplot(void) {
    int rc = system("gnuplot --version >/dev/null 2>&1");
    if (rc != 0) fprintf(stderr, "SKIP: gnuplot is not installed (apt-get install gnuplot-nox)\n");
    return rc == 0;
}

static tp_store *make_store(void) {
    char path[700];
    static int made;
    snprintf(path, sizeof path, "%s/plot%d.db", tp_test_tmpdir(), made++);
    tp_store *s = NULL;
    tp_err err = {0};
    if (tp_store_open(&s, path, TP_STORE_RW, &err) != TP_OK) return NULL;
    const char *tasks[] = {"sst2", "agnews"};
    int k = 0;
    for (int t = 0; t < 2; t++)
        for (int m = 2; m <= 32; m *= 2)
            for (int seed = 1; seed <= 2; seed++) {
                char cfg[256], hash[32];
                snprintf(cfg, sizeof cfg,
                         "{\"bridge\":{\"name\":\"perceiver\",\"options\":{\"tokens\":%d}},"
                         "\"layer\":%d,\"seed\":%d,\"t\":\"%s\"}",
                         m, 4 * seed + m % 3, seed, tasks[t]);
                snprintf(hash, sizeof hash, "h%d", k++);
                tp_run_meta meta = {0};
                meta.config_json = cfg;
                meta.config_hash = hash;
                meta.seed = seed;
                meta.task = tasks[t];
                meta.bridge = "perceiver";
                meta.git_dirty = -1;
                int64_t id;
                int att;
                if (tp_store_run_begin(s, &meta, &id, &att, &err) != TP_OK) return NULL;
                double acc = 0.9 - 0.05 * log2(m) / 5 - 0.01 * seed - 0.1 * t;
                tp_result_row r = {"accuracy", acc, NAN, NAN, NULL, 100, "first_token", "eval"};
                tp_metric_row ms[20];
                for (int i = 0; i < 20; i++)
                    ms[i] = (tp_metric_row){i, "train/loss", 2.0 / (1 + i)};
                tp_latency_row l = {"bridge", 1, 64, 10, 1.5 + m * 0.01, 0.1, -1, "cpu"};
                if (tp_store_results_add(s, id, &r, 1, &err) != TP_OK ||
                    tp_store_metrics_add(s, id, ms, 20, &err) != TP_OK ||
                    tp_store_latency_add(s, id, &l, 1, &err) != TP_OK ||
                    tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, &err) != TP_OK)
                    return NULL;
            }
    return s;
}

static int file_starts(const char *path, const char *magic, size_t n, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[512] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fclose(f);
    if (n == 0) return strstr(buf, magic) != NULL; /* text formats: a marker near the top */
    return got >= n && memcmp(buf, magic, n) == 0;
}

static void test_kinds(void) {
    if (!have_gnuplot()) return;
    tp_store *s = make_store();
    TP_CHECK(s != NULL);
    if (!s) return;
    struct {
        const char *kind, *ext, *magic;
        size_t n;
    } cases[] = {{"scaling", "png", "\x89PNG\r\n\x1a\n", 8},
                 {"layers", "svg", "<svg", 0},
                 {"curve", "pdf", "%PDF", 4},
                 {"latency", "png", "\x89PNG", 4},
                 {"xy", "svg", "<svg", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[800];
        snprintf(out, sizeof out, "%s/%s.%s", tp_test_tmpdir(), cases[i].kind, cases[i].ext);
        tp_plot_opts o = {0};
        o.kind = cases[i].kind;
        o.out = out;
        o.x = "layer";
        tp_err err = {0};
        TP_CHECKF(tp_plot(s, &o, &err) == TP_OK, "%s: %s", cases[i].kind, err.msg);
        long size = 0;
        TP_CHECKF(file_starts(out, cases[i].magic, cases[i].n, &size) && size > 200,
                  "%s: %s is not a %s file (%ld bytes)", cases[i].kind, out, cases[i].ext, size);
    }
    tp_store_close(s);
}

static void test_errors(void) {
    char path[700];
    snprintf(path, sizeof path, "%s/empty.db", tp_test_tmpdir());
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECK(tp_store_open(&s, path, TP_STORE_RW, &err) == TP_OK);
    if (!s) return;
    char out[800];
    snprintf(out, sizeof out, "%s/x.png", tp_test_tmpdir());
    tp_plot_opts o = {0};
    o.kind = "pie";
    o.out = out;
    TP_CHECK(tp_plot(s, &o, &err) == TP_EINVAL && strstr(err.msg, "expected scaling, layers"));
    o.kind = "scaling";
    o.out = "fig.gif";
    TP_CHECK(tp_plot(s, &o, &err) == TP_EINVAL && strstr(err.msg, ".png, .svg or .pdf"));
    o.out = out;
    o.kind = "xy";
    TP_CHECK(tp_plot(s, &o, &err) == TP_EINVAL && strstr(err.msg, "needs an x key"));
    o.x = "layer; DROP TABLE runs";
    TP_CHECK(tp_plot(s, &o, &err) == TP_EINVAL);
    o.kind = "scaling";
    o.x = NULL;
    TP_CHECKF(tp_plot(s, &o, &err) == TP_EINVAL && strstr(err.msg, "no finished runs"), "%s",
              err.msg);
    o.kind = "latency";
    TP_CHECK(tp_plot(s, &o, &err) == TP_EINVAL && strstr(err.msg, "no latency rows"));
    o.kind = "curve";
    TP_CHECK(tp_plot(s, &o, &err) == TP_EINVAL && strstr(err.msg, "no run has metric"));
    tp_store_close(s);
    s = make_store();
    if (!s) return;
    o.kind = "scaling";
    o.gnuplot = "/nonexistent/gnuplot";
    TP_CHECKF(tp_plot(s, &o, &err) == TP_EUNSUP && strstr(err.msg, "gnuplot-nox"), "%s", err.msg);
    tp_store_close(s);
}

TP_TEST_RUN(TP_CASE(test_kinds), TP_CASE(test_errors))
