/* run_fixture.h — shared setup for the run-area tests: the plugin registry from
 * TELEPATHY_PLUGIN_PATH, the two tiny models of the demo (llama sender seed 1, mistral receiver
 * seed 2, made once per test process with tp_make_tiny), a fresh results.db and a runner, and a
 * small JSON-spec builder. Header-only because every tests/run/test_*.c is its own program. */
#ifndef TP_TEST_RUN_FIXTURE_H
#define TP_TEST_RUN_FIXTURE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/make_tiny.h"
#include "run/run.h"
#include "tp_test.h"

/* [paths] data for the runner (tests that read ../shared set it before fx_open). */
static char fx_data_dir[600];

typedef struct fx {
    tp_registry *reg;
    tp_store *store;
    tp_runner *runner;
    char db[600];
} fx;

static inline const char *fx_models(void) {
    static char dir[600];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s/models", tp_test_tmpdir());
    char p[700];
    tp_err err = {0};
    snprintf(p, sizeof p, "%s/sender", dir);
    if (tp_make_tiny(p, "llama", 1, NULL, &err) != TP_OK)
        fprintf(stderr, "make_tiny: %s\n", err.msg);
    snprintf(p, sizeof p, "%s/receiver", dir);
    if (tp_make_tiny(p, "mistral", 2, NULL, &err) != TP_OK)
        fprintf(stderr, "make_tiny: %s\n", err.msg);
    return dir;
}

/* name: db file name inside the test's tmpdir ("" = no store). */
static inline int fx_open(fx *f, const char *name) {
    memset(f, 0, sizeof *f);
    tp_err err = {0};
    const char *pp = getenv("TELEPATHY_PLUGIN_PATH");
    if (!pp) {
        fprintf(stderr, "TELEPATHY_PLUGIN_PATH is not set\n");
        return 0;
    }
    if (tp_registry_new(&f->reg, &err) != TP_OK || tp_registry_scan(f->reg, pp, &err) != TP_OK) {
        fprintf(stderr, "registry: %s\n", err.msg);
        return 0;
    }
    if (name && name[0]) {
        snprintf(f->db, sizeof f->db, "%s/%s", tp_test_tmpdir(), name);
        if (tp_store_open(&f->store, f->db, TP_STORE_RW, &err) != TP_OK) {
            fprintf(stderr, "store: %s\n", err.msg);
            return 0;
        }
    }
    tp_runner_opts o = {0};
    o.registry = f->reg;
    o.store = f->store;
    o.progress = 0;
    o.git_dirty = -1;
    o.data_dir = fx_data_dir[0] ? fx_data_dir : NULL;
    if (tp_runner_new(&f->runner, &o, &err) != TP_OK) {
        fprintf(stderr, "runner: %s\n", err.msg);
        return 0;
    }
    char p[700];
    const tp_run_model *m;
    snprintf(p, sizeof p, "%s/sender", fx_models());
    if (tp_runner_add_model(f->runner, p, "tiny_llama", &m, &err) != TP_OK) {
        fprintf(stderr, "sender: %s\n", err.msg);
        return 0;
    }
    snprintf(p, sizeof p, "%s/receiver", fx_models());
    if (tp_runner_add_model(f->runner, p, "tiny_mistral", &m, &err) != TP_OK) {
        fprintf(stderr, "receiver: %s\n", err.msg);
        return 0;
    }
    return 1;
}

static inline void fx_close(fx *f) {
    tp_runner_free(f->runner);
    tp_store_close(f->store);
    tp_registry_free(f->reg);
    memset(f, 0, sizeof *f);
}

/* The quick bridge configuration the tests share (overridable key by key with json_object_set). */
static inline json_t *fx_bridge_spec(int steps, int seed) {
    return json_pack("{s:s, s:s, s:s, s:{s:i, s:i}, s:s, s:{s:i, s:i, s:i}, s:i, s:i, s:i, "
                     "s:f, s:i}",
                     "sender", "tiny_llama", "receiver", "tiny_mistral", "task", "toy",
                     "task_options", "n_train", 256, "n_eval", 64, "bridge", "perceiver",
                     "bridge_options", "tokens", 4, "depth", 1, "heads", 4, "steps", steps, "batch",
                     8, "seed", seed, "lr", 2e-3, "eval_batch", 64);
}

static inline int fx_count(fx *f, const char *sql) {
    sqlite3_stmt *q = NULL;
    int n = -1;
    if (sqlite3_prepare_v2(tp_store_db(f->store), sql, -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* Every prediction of the db as one string, in example order (for bitwise comparisons). */
static inline char *fx_preds(fx *f) {
    sqlite3_stmt *q = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(tp_store_db(f->store),
                           "SELECT group_concat(example_id || ':' || prediction || ':' || "
                           "quote(score), ',') FROM (SELECT * FROM predictions ORDER BY "
                           "CAST(example_id AS INTEGER))",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
        out = strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return out;
}

#endif
