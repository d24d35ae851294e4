/* sweep_testutil.h — what the sweep tests share: fresh db paths in the test's scratch dir, one
 * value queries, and a fake configuration (hash, config, spec) numbered i. */
#ifndef TP_TESTS_SWEEP_TESTUTIL_H
#define TP_TESTS_SWEEP_TESTUTIL_H

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run/sweep.h"
#include "store/store.h"
#include "tp_test.h"
#include "util/sha256.h"

static inline const char *sw_db_path(const char *name) {
    static char buf[8][600];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 600, "%s/%s", tp_test_tmpdir(), name);
    char side[640];
    unlink(p);
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

static inline int64_t sw_q_int(tp_store *s, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -12345;
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "  sw_q_int(%s): %s\n", sql, sqlite3_errmsg(tp_store_db(s)));
        return v;
    }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static inline const char *sw_q_text(tp_store *s, const char *sql) {
    static char out[2048];
    sqlite3_stmt *st;
    snprintf(out, sizeof out, "<error>");
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return out;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, sizeof out, "%s", t ? t : "<null>");
    } else {
        snprintf(out, sizeof out, "<no row>");
    }
    sqlite3_finalize(st);
    return out;
}

typedef struct sw_cfg {
    char hash[TP_SHA256_HEX];
    char json[128];
    char spec[128];
} sw_cfg;

static inline void sw_cfg_make(sw_cfg *c, int i) {
    snprintf(c->json, sizeof c->json, "{\"fake\":%d}", i);
    snprintf(c->spec, sizeof c->spec, "{\"seed\":%d}", i);
    tp_sha256_hex(c->json, strlen(c->json), c->hash);
}

/* Plans n fake configurations into sweep sw_id. */
static inline void sw_plan_n(tp_store *s, int64_t sw_id, int first, int n) {
    for (int i = first; i < first + n; i++) {
        sw_cfg c;
        sw_cfg_make(&c, i);
        int added = 0;
        tp_err err = {0};
        TP_CHECKF(tp_sweep_plan_add(s, sw_id, c.hash, c.json, c.spec, "{}", &added, &err) == TP_OK,
                  "%s", err.msg);
        TP_CHECK(added == 1);
    }
}

/* Records fake configuration i as a finished run (status done unless failed). */
static inline int64_t sw_fake_run(tp_store *s, int i, int failed) {
    sw_cfg c;
    sw_cfg_make(&c, i);
    tp_run_meta m = {0};
    m.config_json = c.json;
    m.config_hash = c.hash;
    m.seed = i;
    m.task = "toy";
    m.git_dirty = -1;
    int64_t id = 0;
    int attempt;
    tp_err err = {0};
    TP_CHECKF(tp_store_run_begin(s, &m, &id, &attempt, &err) == TP_OK, "%s", err.msg);
    tp_metric_row mr = {0, "train/loss", 1.5};
    TP_CHECK(tp_store_metrics_add(s, id, &mr, 1, &err) == TP_OK);
    tp_result_row rr = {.metric = "accuracy",
                        .value = 0.5 + 0.01 * i,
                        .ci_low = 0.4,
                        .ci_high = 0.6,
                        .ci_method = "wilson",
                        .n = 16,
                        .scheme = "first_token",
                        .split = "eval"};
    TP_CHECK(tp_store_results_add(s, id, &rr, 1, &err) == TP_OK);
    tp_prediction_row pr = {.split = "eval",
                            .example_id = "1",
                            .example_hash = "a",
                            .prompt_hash = "b",
                            .target_hash = "c",
                            .gold = "pos",
                            .prediction = "pos",
                            .correct = 1,
                            .score = 0.9};
    TP_CHECK(tp_store_predictions_add(s, id, &pr, 1, &err) == TP_OK);
    TP_CHECKF(tp_store_run_finish(s, id, failed ? TP_RUN_FAILED : TP_RUN_DONE,
                                  failed ? "boom" : NULL, NULL, &err) == TP_OK,
              "%s", err.msg);
    return id;
}

#endif
