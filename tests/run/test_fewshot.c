/* test_fewshot.c — the k-shot baseline and the pieces of prompt building it shares: the
 * {text[:N]} placeholder (code points, like Python), the balanced seeded shots (k per class,
 * distinct train rows, same seed = same shots, another seed = others), the prompt head, a
 * recorded fewshot run on the tiny receiver, a clear error when a class has fewer than k rows;
 * and the fairness rule's check on hand-made configurations (no_text, text_cut, no_label_list,
 * relay_no_labels, none for a fair one). */
#include "run/batch.h"
#include "run/fairness.h"
#include "run/fewshot.h"
#include "run/run_config.h"
#include "run_fixture.h"

static void test_fill_template(void) {
    char *s = tp_fill_template("a {text} b {text[:3]}|{text[:0]}|{text[:99]}", "h\xc3\xa9llo");
    TP_CHECKF(s && !strcmp(s, "a h\xc3\xa9llo b h\xc3\xa9l||h\xc3\xa9llo"), "'%s'", s);
    free(s);
    /* not placeholders: kept as written */
    s = tp_fill_template("{text[:x]} {text[:-1]} {text[3]} {tex}", "zz");
    TP_CHECKF(s && !strcmp(s, "{text[:x]} {text[:-1]} {text[3]} {tex}"), "'%s'", s);
    free(s);
    s = tp_fill_template("Article: {text[:256]}\nTopic:", "short");
    TP_CHECK(s && !strcmp(s, "Article: short\nTopic:"));
    free(s);
    TP_CHECK(tp_template_text_limit("x {text} y") == -1);
    TP_CHECK(tp_template_text_limit("x {text[:256]} {text[:9]}") == 9);
    TP_CHECK(tp_template_text_limit("none") == -2 && tp_template_text_limit(NULL) == -2);
}

static json_t *fewshot_spec(int k, int seed) {
    return json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:i}, s:{s:i}, s:i, s:s, s:i}", "baseline",
                     "fewshot", "receiver", "tiny_mistral", "task", "toy", "task_options",
                     "n_train", 30, "n_eval", 9, "n_classes", 3, "baseline_options", "k", k, "seed",
                     seed, "scoring", "first_token", "eval_batch", 9);
}

static int shots_of(fx *f, int k, int seed, int64_t *ids, int *labels, char **head) {
    json_t *spec = fewshot_spec(k, seed);
    tp_run_cfg c;
    tp_err err = {0};
    int n = -1;
    tp_status st = tp_run_cfg_resolve(f->runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    tp_fewshot *fs = NULL;
    if (st == TP_OK) st = tp_fewshot_new(&fs, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        const int64_t *pi;
        const int *pl;
        n = tp_fewshot_shots(fs, &pi, &pl);
        if (n > 0) { /* k = 0 has no shots (and NULL arrays) */
            memcpy(ids, pi, (size_t)n * sizeof *ids);
            memcpy(labels, pl, (size_t)n * sizeof *labels);
        }
        if (head) *head = strdup(tp_fewshot_head(fs));
        /* the shots are real training rows with their own labels */
        const tp_task_vtable *tv = c.task->desc.vtable;
        tp_dataset ds;
        if (tv->load(c.task_state, "train", &ds, &err) == TP_OK) {
            for (int i = 0; i < n; i++) {
                TP_CHECK(ids[i] >= 0 && ids[i] < ds.n && ds.rows[ids[i]].label == labels[i]);
                char *one = tp_fill_template(c.info.direct_template, ds.rows[ids[i]].text);
                TP_CHECK(one && strstr(tp_fewshot_head(fs), one));
                free(one);
            }
            tv->free_dataset(c.task_state, &ds);
        }
    }
    tp_fewshot_free(fs);
    tp_run_cfg_free(&c);
    json_decref(spec);
    return n;
}

static void test_shots(void) {
    fx f;
    TP_CHECK(fx_open(&f, ""));
    int64_t a[64], b[64], d[64];
    int la[64], lb[64], ld[64];
    char *head = NULL;
    int n = shots_of(&f, 2, 42, a, la, &head);
    TP_CHECK(n == 6);
    int per[3] = {0, 0, 0}, distinct = 1;
    for (int i = 0; i < n; i++) {
        if (la[i] >= 0 && la[i] < 3) per[la[i]]++;
        for (int j = 0; j < i; j++) distinct &= a[i] != a[j];
    }
    TP_CHECK(per[0] == 2 && per[1] == 2 && per[2] == 2 && distinct);
    /* head: "<direct prompt> <label>\n\n" per shot */
    TP_CHECK(head && strstr(head, "):") && strstr(head, "\n\n"));
    int blocks = 0;
    for (const char *p = head; p && (p = strstr(p, "\n\n")); p += 2) blocks++;
    TP_CHECK(blocks == 6);
    free(head);
    TP_CHECK(shots_of(&f, 2, 42, b, lb, NULL) == 6);
    TP_CHECK(!memcmp(a, b, sizeof(int64_t) * 6) && !memcmp(la, lb, sizeof(int) * 6));
    TP_CHECK(shots_of(&f, 2, 7, d, ld, NULL) == 6);
    TP_CHECK(memcmp(a, d, sizeof(int64_t) * 6) != 0);
    /* k = 0 is the zero-shot prompt */
    TP_CHECK(shots_of(&f, 0, 42, d, ld, &head) == 0 && head && head[0] == 0);
    free(head);
    fx_close(&f);
}

static void test_fewshot_run(void) {
    fx f;
    TP_CHECK(fx_open(&f, "fewshot.db"));
    tp_run_result r1, r2;
    tp_err err = {0};
    json_t *s = fewshot_spec(1, 42);
    tp_status st = tp_runner_run(f.runner, s, &r1, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    json_decref(s);
    s = fewshot_spec(1, 43);
    st = tp_runner_run(f.runner, s, &r2, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    json_decref(s);
    /* the seed picks the shots, so it is part of a fewshot run's identity */
    TP_CHECK(strcmp(r1.config_hash, r2.config_hash) != 0);
    TP_CHECK(r1.n == 9 && r1.n_classes == 3);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE bridge = 'fewshot' AND status = 'done' "
                          "AND receiver = 'tiny_mistral' AND sender IS NULL") == 2);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM predictions") == 18);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE bridge = 'fewshot' AND seed IN (42, "
                          "43)") == 2);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM results WHERE metric LIKE 'accuracy/%'") == 6);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM results WHERE metric LIKE 'fairness%'") == 0);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE json_extract(config_json, "
                          "'$.baseline_options.k') = 1 AND json_extract(config_json, "
                          "'$.baseline_options.seed') = 43") == 1);
    /* more shots than a class has rows: an error naming the class */
    s = fewshot_spec(20, 42);
    st = tp_runner_run(f.runner, s, &r1, &err);
    TP_CHECKF(st == TP_EINVAL && strstr(err.msg, "k = 20") && strstr(err.msg, "class '"), "%d %s",
              (int)st, err.msg);
    json_decref(s);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'failed'") == 1);
    fx_close(&f);
}

/* A hand-made configuration: kind, templates and two labels a/b. */
static void cfg_of(tp_run_cfg *c, tp_run_kind kind, const char *sender, const char *direct,
                   int labels) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->info.n_labels = 2;
    c->info.labels[0] = "alpha";
    c->info.labels[1] = "beta_gamma";
    c->info.synonyms[0] = "first|a1";
    c->info.sender_template = sender;
    c->info.direct_template = direct;
    c->info.receiver_primer = "Label:";
    c->bopts.labels_in_prompt = labels;
    c->bopts.sender_prompt = (char *)"Summarize: {text}";
}

static int has(const tp_fairness *f, const char *code) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->code[i], code)) return 1;
    return 0;
}

static void test_fairness_rules(void) {
    tp_run_cfg c;
    tp_fairness f;
    cfg_of(&c, TP_KIND_RECEIVER_DIRECT, "T: {text}\nL:", "T: {text}\nL (alpha or beta gamma):", 1);
    tp_fairness_check(&c, &f);
    TP_CHECKF(f.n == 0, "fair config flagged: %s", f.n ? f.msg[0] : "");
    /* a synonym names the label too */
    cfg_of(&c, TP_KIND_SENDER_DIRECT, "{text}", "{text} (FIRST or beta_gamma)", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 0);
    cfg_of(&c, TP_KIND_RECEIVER_DIRECT, "T: {text}", "T: {text}\nL (alpha):", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 1 && has(&f, "no_label_list") && strstr(f.msg[0], "beta_gamma"));
    cfg_of(&c, TP_KIND_FEWSHOT, "T: {text}", "Label it (alpha, beta gamma):", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 1 && has(&f, "no_text"));
    cfg_of(&c, TP_KIND_RECEIVER_DIRECT, "T: {text[:256]}", "T: {text[:100]} alpha beta_gamma", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 1 && has(&f, "text_cut") && strstr(f.msg[0], "100") && strstr(f.msg[0], "256"));
    cfg_of(&c, TP_KIND_RECEIVER_DIRECT, "T: {text}", "T: {text[:256]} alpha beta_gamma", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 1 && has(&f, "text_cut"));
    cfg_of(&c, TP_KIND_RECEIVER_DIRECT, "T: {text[:256]}", "T: {text} alpha beta_gamma", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 0); /* the baseline may see more than the bridge */
    cfg_of(&c, TP_KIND_TEXT_RELAY, "T: {text}", "T: {text} alpha beta_gamma", 0);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 1 && has(&f, "relay_no_labels"));
    cfg_of(&c, TP_KIND_TEXT_RELAY, "T: {text}", "T: {text} alpha beta_gamma", 1);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 0);
    c.bopts.sender_prompt = (char *)"Summarize: {text[:10]}";
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 1 && has(&f, "text_cut"));
    /* bridge runs are the reference, never flagged */
    cfg_of(&c, TP_KIND_BRIDGE, "T: {text[:5]}", "nothing", 0);
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 0);
    /* generation tasks have no label list to check */
    cfg_of(&c, TP_KIND_RECEIVER_DIRECT, "Q: {text}", "Q: {text}", 1);
    c.info.n_labels = 0;
    c.info.is_generation = 1;
    tp_fairness_check(&c, &f);
    TP_CHECK(f.n == 0);
}

TP_TEST_RUN(TP_CASE(test_fill_template), TP_CASE(test_shots), TP_CASE(test_fewshot_run),
            TP_CASE(test_fairness_rules))
