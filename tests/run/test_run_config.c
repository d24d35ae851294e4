/* test_run_config.c — the run config and the evaluator's pure parts: the config hash covers
 * every setting with defaults filled in (an explicit default hashes like an omitted one, any
 * change is a new hash, key order does not matter), baselines do not depend on training keys,
 * spec errors name the key, the Wilson interval against reference values, label matching for
 * generate scoring, and the stratified evaluation subset. */
#include <math.h>

#include "run/evaluator.h"
#include "run/run_config.h"
#include "run_fixture.h"

static char *hash_of(fx *f, json_t *spec, char *hash) {
    char *canon = NULL;
    tp_err err = {0};
    tp_status st = tp_runner_resolve(f->runner, spec, &canon, hash, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    return canon;
}

static void test_hash_defaults(void) {
    fx f;
    TP_CHECK(fx_open(&f, ""));
    char h1[65], h2[65], h3[65], h4[65];
    json_t *a = fx_bridge_spec(10, 1);
    char *c1 = hash_of(&f, a, h1);
    /* explicit defaults (lr is set by the fixture; these are the runner's and the task's) */
    json_t *b = json_deep_copy(a);
    json_object_set_new(b, "weight_decay", json_real(0.01));
    json_object_set_new(b, "primer", json_string("Topic:"));
    json_object_set_new(b, "scoring", json_string("first_token"));
    json_object_set_new(b, "bos", json_false());
    free(hash_of(&f, b, h2));
    TP_CHECKF(!strcmp(h1, h2), "explicit defaults changed the hash");
    json_t *c = json_deep_copy(a);
    json_object_set_new(c, "lr", json_real(1e-3));
    free(hash_of(&f, c, h3));
    TP_CHECK(strcmp(h1, h3) != 0);
    json_t *d = json_deep_copy(a);
    json_object_set_new(json_object_get(d, "bridge_options"), "tokens", json_integer(5));
    free(hash_of(&f, d, h4));
    TP_CHECK(strcmp(h1, h4) != 0);
    /* the canonical config names every setting, including the task-derived ones */
    const char *want[] = {"\"primer\":\"Topic:\"",     "\"scoring\":\"first_token\"",
                          "\"fingerprint\":\"sha256:", "\"layer\":2",
                          "\"weight_decay\":0.01",     "\"schedule\":\"constant\"",
                          "\"checkpoint_every\":3",    "\"bos\":false",
                          "\"version\":\"1\"",         "\"mode\":\"first_token\""};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        TP_CHECKF(c1 && strstr(c1, want[i]), "config lacks %s: %s", want[i], c1 ? c1 : "");
    free(c1);
    json_decref(a), json_decref(b), json_decref(c), json_decref(d);
    fx_close(&f);
}

static void test_baseline_identity(void) {
    fx f;
    TP_CHECK(fx_open(&f, ""));
    char h1[65], h2[65];
    json_t *a = json_pack("{s:s, s:s, s:s, s:i}", "baseline", "receiver_direct", "receiver",
                          "tiny_mistral", "task", "toy", "seed", 1);
    json_t *b = json_pack("{s:s, s:s, s:s, s:i}", "baseline", "receiver_direct", "receiver",
                          "tiny_mistral", "task", "toy", "seed", 2);
    free(hash_of(&f, a, h1));
    free(hash_of(&f, b, h2));
    TP_CHECKF(!strcmp(h1, h2), "a baseline's seed must not change its identity");
    json_object_set_new(b, "steps", json_integer(10));
    char *canon;
    tp_err err = {0};
    TP_CHECK(tp_runner_resolve(f.runner, b, &canon, h2, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "'steps' has no meaning"), "%s", err.msg);
    json_decref(a), json_decref(b);
    fx_close(&f);
}

static void test_spec_errors(void) {
    fx f;
    TP_CHECK(fx_open(&f, ""));
    struct {
        const char *key, *json, *want;
    } cases[] = {
        {"lrr", "0.1", "did you mean 'lr'"},
        {"steps", "-1", "'steps'"},
        {"batch", "1.5", "must be an integer"},
        {"scoring", "\"argmax\"", "expected first_token, generate or loglik"},
        {"schedule", "\"linear\"", "expected constant or cosine"},
        {"bridge", "\"percevier\"", "did you mean 'perceiver'"},
        {"losses", "{\"cee\": 1}", "did you mean 'ce'"},
        {"sender", "\"nosuchmodel\"", "tp.model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *s = fx_bridge_spec(10, 1);
        json_object_set_new(s, cases[i].key, json_loads(cases[i].json, JSON_DECODE_ANY, NULL));
        char *canon = NULL, h[65];
        tp_err err = {0};
        TP_CHECKF(tp_runner_resolve(f.runner, s, &canon, h, &err) != TP_OK, "%s accepted",
                  cases[i].key);
        TP_CHECKF(strstr(err.msg, cases[i].want), "%s: '%s' lacks '%s'", cases[i].key, err.msg,
                  cases[i].want);
        json_decref(s);
    }
    fx_close(&f);
}

static void test_wilson(void) {
    double lo, hi;
    tp_wilson95(815, 872, &lo, &hi); /* the study's exp001 */
    TP_CHECK_NEAR(lo, 0.916246604437, 1e-9);
    TP_CHECK_NEAR(hi, 0.949206831645, 1e-9);
    tp_wilson95(0, 10, &lo, &hi);
    TP_CHECK_NEAR(lo, 0.0, 1e-12);
    TP_CHECK_NEAR(hi, 0.277532799863, 1e-9);
    tp_wilson95(0, 0, &lo, &hi);
    TP_CHECK(lo == 0 && hi == 1);
}

static void test_match_label(void) {
    tp_task_info info = {0};
    info.n_labels = 4;
    info.labels[0] = "world";
    info.labels[1] = "sports";
    info.labels[2] = "business";
    info.labels[3] = "science";
    info.synonyms[3] = "sci/tech|technology";
    TP_CHECK(tp_match_label(&info, " Sports, then world") == 1);
    TP_CHECK(tp_match_label(&info, "It is about TECHNOLOGY.") == 3);
    TP_CHECK(tp_match_label(&info, "sci/tech news") == 3);
    TP_CHECK(tp_match_label(&info, "worldwide sportsmen") == -1); /* whole words only */
    TP_CHECK(tp_match_label(&info, "") == -1);
}

static void test_subset(void) {
    tp_dataset ds = {0};
    tp_example rows[100];
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 100; i++) {
        rows[i].id = i;
        rows[i].label = i < 70 ? 0 : (i < 90 ? 1 : 2); /* 70 / 20 / 10 */
    }
    ds.rows = rows;
    ds.n = 100;
    strcpy(ds.source, "synthetic");
    int64_t *a = NULL, *b = NULL, *c = NULL;
    int na, nb, nc;
    tp_err err = {0};
    TP_CHECK(tp_eval_subset(&ds, 3, 20, 7, &a, &na, &err) == TP_OK);
    TP_CHECK(tp_eval_subset(&ds, 3, 20, 7, &b, &nb, &err) == TP_OK);
    TP_CHECK(tp_eval_subset(&ds, 3, 20, 8, &c, &nc, &err) == TP_OK);
    TP_CHECK(na == 20 && nb == 20 && nc == 20);
    int per[3] = {0}, same = 1, diff = 0;
    for (int i = 0; i < na; i++) {
        per[rows[a[i]].label]++;
        same &= a[i] == b[i];
        diff |= a[i] != c[i];
        if (i) TP_CHECK(a[i] > a[i - 1]); /* dataset order */
    }
    TP_CHECKF(per[0] == 14 && per[1] == 4 && per[2] == 2, "strata %d/%d/%d", per[0], per[1],
              per[2]);
    TP_CHECK(same);
    TP_CHECK(diff);
    free(a), free(b), free(c);
    TP_CHECK(tp_eval_subset(&ds, 3, 0, 7, &a, &na, &err) == TP_OK && na == 100);
    free(a);
    ds.n = 0;
    TP_CHECK(tp_eval_subset(&ds, 3, 5, 7, &a, &na, &err) == TP_EINVAL);
}

TP_TEST_RUN(TP_CASE(test_hash_defaults), TP_CASE(test_baseline_identity), TP_CASE(test_spec_errors),
            TP_CASE(test_wilson), TP_CASE(test_match_label), TP_CASE(test_subset))
