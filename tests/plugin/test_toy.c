/* test_toy.c — the toy task plugin, loaded as a .so through the real loader: determinism (same
 * options -> same bytes, other seed -> other data), label balance, a learnable signal (the
 * dominant keyword group is the label; a bag-of-words classifier fit on train scores high on
 * eval), options and errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/loader.h"
#include "plugin/options.h"
#include "telepathy/task.h"
#include "tp_test.h"

static tp_registry *reg;
static const tp_plugin *toy;

static int setup(void) {
    if (toy) return 1;
    const char *dir = getenv("TELEPATHY_PLUGIN_PATH");
    if (!dir) dir = TP_PLUGIN_BUILD_DIR;
    char path[4096];
    snprintf(path, sizeof path, "%s/tasks/toy.so", dir);
    tp_err err = {0};
    TP_CHECK(tp_registry_new(&reg, &err) == TP_OK);
    TP_CHECKF(tp_registry_load(reg, path, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_registry_find(reg, TP_PLUGIN_TASK, "toy", &toy, &err) == TP_OK);
    return toy != NULL;
}

typedef struct opened {
    tp_options *o;
    void *st;
    const tp_task_vtable *vt;
} opened;

static int open_toy(opened *t, const char *opts) {
    tp_err err = {0};
    memset(t, 0, sizeof *t);
    if (!setup()) return 0;
    t->vt = toy->desc.vtable;
    if (tp_options_new("task", "toy", toy->desc.options, toy->desc.n_options, &t->o, &err) != TP_OK)
        return 0;
    if (opts && tp_options_set_list(t->o, opts, &err) != TP_OK) {
        TP_CHECKF(0, "%s", err.msg);
        return 0;
    }
    TP_CHECKF(t->vt->open(t->o, NULL, &t->st, &err) == TP_OK, "%s", err.msg);
    return t->st != NULL;
}

static void close_toy(opened *t) {
    if (t->st) t->vt->close(t->st);
    tp_options_free(t->o);
}

static void descriptor(void) {
    if (!setup()) return;
    TP_CHECK(!strcmp(toy->desc.version, "1"));
    opened t;
    if (!open_toy(&t, "n_classes=4")) return;
    tp_task_info info;
    TP_CHECK(t.vt->info(t.st, &info) == TP_OK);
    TP_CHECK(info.n_labels == 4);
    TP_CHECK(!strcmp(info.labels[0], "sports") && !strcmp(info.labels[3], "weather"));
    TP_CHECK(strstr(info.sender_template, "{text}") != NULL);
    TP_CHECKF(!strcmp(info.direct_template, "Text: {text}\nTopic (sports, music, food, weather):"),
              "%s", info.direct_template);
    TP_CHECK(!strcmp(info.default_scoring, "first_token") && !info.is_generation);
    tp_dataset ds;
    tp_err err = {0};
    TP_CHECK(t.vt->load(t.st, "test", &ds, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "unknown split 'test'"), "%s", err.msg);
    close_toy(&t);
    /* option ranges come from the schema */
    tp_options *o = NULL;
    TP_CHECK(tp_options_new("task", "toy", toy->desc.options, toy->desc.n_options, &o, &err) ==
             TP_OK);
    TP_CHECK(tp_options_set(o, "n_classes", "9", &err) == TP_EINVAL);
    TP_CHECK(tp_options_set(o, "n_clases", "3", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "did you mean 'n_classes'"), "%s", err.msg);
    tp_options_free(o);
}

static int same_dataset(const tp_dataset *a, const tp_dataset *b) {
    if (a->n != b->n) return 0;
    for (int64_t i = 0; i < a->n; i++)
        if (a->rows[i].label != b->rows[i].label || strcmp(a->rows[i].text, b->rows[i].text))
            return 0;
    return 1;
}

static void determinism(void) {
    opened a, b, c;
    if (!open_toy(&a, "seed=7,n_classes=3") || !open_toy(&b, "seed=7,n_classes=3") ||
        !open_toy(&c, "seed=8,n_classes=3"))
        return;
    tp_dataset da, db, dc, ea;
    tp_err err = {0};
    TP_CHECK(a.vt->load(a.st, "train", &da, &err) == TP_OK);
    TP_CHECK(b.vt->load(b.st, "train", &db, &err) == TP_OK);
    TP_CHECK(c.vt->load(c.st, "train", &dc, &err) == TP_OK);
    TP_CHECK(a.vt->load(a.st, "eval", &ea, &err) == TP_OK);
    TP_CHECK(same_dataset(&da, &db));
    TP_CHECK(!same_dataset(&da, &dc));
    TP_CHECK(da.n == 512 && ea.n == 128);
    /* train and eval are different draws */
    int same = 0;
    for (int64_t i = 0; i < ea.n; i++) same += !strcmp(ea.rows[i].text, da.rows[i].text);
    TP_CHECK(same < 3);
    TP_CHECK(strstr(da.source, "seed=7") && strstr(da.source, "split=train"));
    /* a fixed sentence pins the generator across platforms and refactors (bump the version
     * if this ever has to change) */
    TP_CHECKF(da.rows[0].label == 2 &&
                  !strcmp(da.rows[0].text, "today it big again they of some small cheese bread "
                                           "melody soup."),
              "label %d '%s'", da.rows[0].label, da.rows[0].text);
    TP_CHECK(da.rows[0].id == 0 && da.rows[0].line == 0);
    TP_CHECK(!strcmp(da.rows[0].answer, da.rows[0].label == 0   ? "sports"
                                        : da.rows[0].label == 1 ? "music"
                                                                : "food"));
    a.vt->free_dataset(a.st, &da);
    a.vt->free_dataset(a.st, &ea);
    b.vt->free_dataset(b.st, &db);
    c.vt->free_dataset(c.st, &dc);
    close_toy(&a);
    close_toy(&b);
    close_toy(&c);
}

static void balance(void) {
    for (int k = 2; k <= 8; k += 3) {
        opened t;
        char opts[64];
        snprintf(opts, sizeof opts, "n_classes=%d,n_train=1001", k);
        if (!open_toy(&t, opts)) return;
        tp_dataset ds;
        tp_err err = {0};
        TP_CHECK(t.vt->load(t.st, "train", &ds, &err) == TP_OK);
        int count[8] = {0};
        for (int64_t i = 0; i < ds.n; i++) {
            TP_CHECK(ds.rows[i].label >= 0 && ds.rows[i].label < k);
            count[ds.rows[i].label]++;
        }
        for (int c = 0; c < k; c++)
            TP_CHECKF(abs(count[c] - 1001 / k) <= 1, "k=%d class %d has %d", k, c, count[c]);
        /* shuffled, not cyclic: the first rows are not 0,1,2,... */
        int cyclic = 1;
        for (int64_t i = 0; i < 16; i++) cyclic &= ds.rows[i].label == (int)(i % k);
        TP_CHECK(!cyclic);
        t.vt->free_dataset(t.st, &ds);
        close_toy(&t);
    }
}

/* Index of a word among all class keywords (class*4+j) or -1; parsed from the text alone. */
static const char *KW[8][4] = {
    {"ball", "goal", "team", "match"},       {"song", "guitar", "melody", "drum"},
    {"bread", "soup", "apple", "cheese"},    {"rain", "snow", "cloud", "storm"},
    {"train", "hotel", "ticket", "airport"}, {"atom", "cell", "laser", "theory"},
    {"bank", "coin", "price", "market"},     {"horse", "tiger", "rabbit", "eagle"}};

static void learnable(void) {
    opened t;
    if (!open_toy(&t, "n_classes=4,noise=0.5,n_train=800,n_eval=400")) return;
    tp_dataset tr, ev;
    tp_err err = {0};
    TP_CHECK(t.vt->load(t.st, "train", &tr, &err) == TP_OK);
    TP_CHECK(t.vt->load(t.st, "eval", &ev, &err) == TP_OK);
    /* 1. the dominant keyword group is the label, on every row */
    int bad = 0, distract = 0;
    for (int64_t i = 0; i < tr.n; i++) {
        int cnt[8] = {0};
        char *s = strdup(tr.rows[i].text), *save = NULL;
        for (char *w = strtok_r(s, " .", &save); w; w = strtok_r(NULL, " .", &save))
            for (int c = 0; c < 8; c++)
                for (int j = 0; j < 4; j++) cnt[c] += !strcmp(w, KW[c][j]);
        free(s);
        int best = 0;
        for (int c = 1; c < 8; c++)
            if (cnt[c] > cnt[best]) best = c;
        for (int c = 0; c < 8; c++) bad += c != best && cnt[c] >= cnt[best];
        bad += best != tr.rows[i].label;
        for (int c = 0; c < 8; c++) distract += c != tr.rows[i].label ? cnt[c] : 0;
    }
    TP_CHECK(bad == 0);
    /* noise 0.5 over 2 slots: about one distractor per sentence */
    TP_CHECKF(distract > tr.n / 2 && distract < 3 * tr.n / 2, "distractors %d", distract);
    /* 2. a word-count classifier learned from train (no knowledge of the groups) generalises */
    enum { MAXW = 128 };
    char *vocab[MAXW];
    int nv = 0;
    static double wc[MAXW][4];
    double cc[4] = {0};
    for (int pass = 0; pass < 2; pass++) {
        const tp_dataset *d = pass ? &ev : &tr;
        int correct = 0;
        for (int64_t i = 0; i < d->n; i++) {
            double score[4] = {0};
            char *s = strdup(d->rows[i].text), *save = NULL;
            for (char *w = strtok_r(s, " .", &save); w; w = strtok_r(NULL, " .", &save)) {
                int v = -1;
                for (int k = 0; k < nv; k++)
                    if (!strcmp(vocab[k], w)) v = k;
                if (v < 0 && !pass && nv < MAXW) {
                    vocab[nv] = strdup(w);
                    v = nv++;
                }
                if (v < 0) continue;
                if (!pass)
                    wc[v][d->rows[i].label] += 1;
                else
                    for (int c = 0; c < 4; c++) score[c] += log((wc[v][c] + 1) / (cc[c] + nv));
            }
            free(s);
            if (!pass) {
                cc[d->rows[i].label] += 1;
                continue;
            }
            int best = 0;
            for (int c = 1; c < 4; c++)
                if (score[c] > score[best]) best = c;
            correct += best == d->rows[i].label;
        }
        if (pass) {
            double acc = (double)correct / (double)d->n;
            fprintf(stderr, "toy: bag-of-words eval accuracy %.3f (chance 0.25)\n", acc);
            TP_CHECKF(acc > 0.9, "accuracy %.3f", acc);
        }
    }
    for (int k = 0; k < nv; k++) free(vocab[k]);
    t.vt->free_dataset(t.st, &tr);
    t.vt->free_dataset(t.st, &ev);
    TP_CHECK(tr.rows == NULL && tr.n == 0);
    close_toy(&t);
}

static void teardown(void) {
    tp_registry_free(reg);
    reg = NULL;
    toy = NULL;
}

TP_TEST_RUN(TP_CASE(descriptor), TP_CASE(determinism), TP_CASE(balance), TP_CASE(learnable),
            TP_CASE(teardown))
