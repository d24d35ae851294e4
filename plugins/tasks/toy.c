/* toy.c — the synthetic, seeded classification task that makes the offline demo and the tests
 * real without any download (DESIGN.md "Offline default").
 *
 * What it adds: a task named "toy". Each example is a sentence of `length` words drawn from a
 * fixed vocabulary: neutral filler words, exactly 3 keywords of the example's class, and up to 2
 * distractor keywords of other classes (each present with probability `noise`, never 2 from the
 * same other class). So the class whose keyword group dominates the sentence is always the
 * label: a model that reads the text can learn it perfectly, one that does not stays at chance.
 * Labels are balanced (cyclic, then shuffled) and every draw is a pure function of (seed, split,
 * index), so the same options give the same data on every machine.
 *
 * Task data (versioned with the plugin):
 *   classes (n_classes first of) sports, music, food, weather, travel, science, money, animals
 *   sender template  "Text: {text}\nTopic:"
 *   receiver primer  "Topic:"
 *   direct template  "Text: {text}\nTopic (<the label words, comma-separated>):"
 *   relay prompts    sender: the harness's "Summarize the following text in one sentence.\n
 *                    Text: {text}\nSummary:" (the study does not state its wording);
 *                    receiver: the direct template with the summary as {text}
 *   scoring          first_token
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/plugin.h>
#include <telepathy/task.h>

TP_PLUGIN_DEFINE_API;

/* the text relay's summarise prompt (tp_task_info.relay_sender_template) */
#define TASK_RELAY_SENDER "Summarize the following text in one sentence.\nText: {text}\nSummary:"

#define API             tp_plugin_api_
#define TOY_MAX_CLASSES 8
#define TOY_KEYWORDS    4 /* per class */
#define TOY_TRUE_KW     3 /* keywords of the label class in each sentence */
#define TOY_DISTRACT    2 /* distractor slots */
#define TOY_MAX_LEN     64

static const char *const toy_labels[TOY_MAX_CLASSES] = {"sports", "music",   "food",  "weather",
                                                        "travel", "science", "money", "animals"};

static const char *const toy_keywords[TOY_MAX_CLASSES][TOY_KEYWORDS] = {
    {"ball", "goal", "team", "match"},       {"song", "guitar", "melody", "drum"},
    {"bread", "soup", "apple", "cheese"},    {"rain", "snow", "cloud", "storm"},
    {"train", "hotel", "ticket", "airport"}, {"atom", "cell", "laser", "theory"},
    {"bank", "coin", "price", "market"},     {"horse", "tiger", "rabbit", "eagle"},
};

static const char *const toy_filler[] = {
    "the",  "a",    "of",    "and",   "today", "people", "said",  "very",
    "some", "with", "new",   "about", "many",  "there",  "was",   "it",
    "we",   "they", "after", "then",  "our",   "big",    "small", "again",
};
#define TOY_N_FILLER ((int)(sizeof toy_filler / sizeof toy_filler[0]))

static const tp_option_spec toy_options[] = {
    {"seed", TP_OPT_INT, "1234", 0, 2147483647.0, NULL, "data seed (independent of the run seed)"},
    {"n_train", TP_OPT_INT, "512", 1, 1000000, NULL, "training examples"},
    {"n_eval", TP_OPT_INT, "128", 1, 1000000, NULL, "evaluation examples"},
    {"n_classes", TP_OPT_INT, "2", 2, TOY_MAX_CLASSES, NULL, "number of classes"},
    {"noise", TP_OPT_FLOAT, "0.3", 0, 1, NULL, "probability of each of 2 distractor keywords"},
    {"length", TP_OPT_INT, "12", TOY_TRUE_KW + TOY_DISTRACT, TOY_MAX_LEN, NULL,
     "words per sentence"},
};
#define TOY_N_OPTIONS ((int)(sizeof toy_options / sizeof toy_options[0]))

typedef struct toy_state {
    uint64_t seed;
    int64_t n_train, n_eval;
    int n_classes, length;
    double noise;
    char direct[512];
} toy_state;

/* splitmix64: tiny, well mixed, and the same everywhere */
typedef struct toy_rng {
    uint64_t s;
} toy_rng;

static uint64_t toy_next(toy_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t toy_below(toy_rng *r, uint32_t n) {
    return (uint32_t)(toy_next(r) % n);
}
static double toy_unit(toy_rng *r) {
    return (double)(toy_next(r) >> 11) * 0x1.0p-53;
}

static toy_rng toy_stream(uint64_t seed, uint64_t split, uint64_t index) {
    toy_rng r = {seed * 0x100000001b3ull ^ (split << 56) ^ index};
    toy_next(&r);
    r.s ^= (split + 1) * 0xd6e8feb86659fd93ull + index * 0x9e3779b97f4a7c15ull;
    return r;
}

static tp_status toy_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    *state = NULL;
    toy_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "toy: out of memory");
    s->seed = (uint64_t)API->opt_int(o, "seed");
    s->n_train = API->opt_int(o, "n_train");
    s->n_eval = API->opt_int(o, "n_eval");
    s->n_classes = (int)API->opt_int(o, "n_classes");
    s->length = (int)API->opt_int(o, "length");
    s->noise = API->opt_float(o, "noise");
    if (s->n_classes < 2 || s->n_classes > TOY_MAX_CLASSES || s->length > TOY_MAX_LEN) {
        free(s);
        return API->errf(err, TP_EINVAL, "toy: n_classes must be 2..%d and length <= %d",
                         TOY_MAX_CLASSES, TOY_MAX_LEN);
    }
    int n = snprintf(s->direct, sizeof s->direct, "Text: {text}\nTopic (");
    for (int c = 0; c < s->n_classes; c++)
        n += snprintf(s->direct + n, sizeof s->direct - (size_t)n, "%s%s", c ? ", " : "",
                      toy_labels[c]);
    snprintf(s->direct + n, sizeof s->direct - (size_t)n, "):");
    *state = s;
    return TP_OK;
}

static tp_status toy_info(void *state, tp_task_info *out) {
    toy_state *s = state;
    memset(out, 0, sizeof *out);
    out->n_labels = s->n_classes;
    for (int c = 0; c < s->n_classes; c++) out->labels[c] = toy_labels[c];
    out->sender_template = "Text: {text}\nTopic:";
    out->receiver_primer = "Topic:";
    out->direct_template = s->direct;
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = s->direct;
    out->default_scoring = "first_token";
    out->is_generation = 0;
    out->max_new_tokens = 0;
    return TP_OK;
}

/* One sentence for class y from its own stream. */
static char *toy_sentence(const toy_state *s, toy_rng *r, int y) {
    const char *words[TOY_MAX_LEN];
    int n = 0;
    /* 3 distinct keywords of the label class */
    int pick[TOY_KEYWORDS] = {0, 1, 2, 3};
    for (int i = TOY_KEYWORDS - 1; i > 0; i--) {
        int j = (int)toy_below(r, (uint32_t)i + 1), t = pick[i];
        pick[i] = pick[j];
        pick[j] = t;
    }
    for (int i = 0; i < TOY_TRUE_KW; i++) words[n++] = toy_keywords[y][pick[i]];
    /* distractors: each slot from a different other class, so none reaches 3 */
    int used = -1;
    for (int k = 0; k < TOY_DISTRACT; k++) {
        if (toy_unit(r) >= s->noise) continue;
        int c;
        do c = (int)toy_below(r, (uint32_t)s->n_classes);
        while (c == y || (c == used && s->n_classes > 2));
        used = c;
        words[n++] = toy_keywords[c][toy_below(r, TOY_KEYWORDS)];
    }
    while (n < s->length) words[n++] = toy_filler[toy_below(r, TOY_N_FILLER)];
    for (int i = n - 1; i > 0; i--) {
        int j = (int)toy_below(r, (uint32_t)i + 1);
        const char *t = words[i];
        words[i] = words[j];
        words[j] = t;
    }
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(words[i]) + 1;
    char *text = malloc(len + 1);
    if (!text) return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t w = strlen(words[i]);
        memcpy(text + at, words[i], w);
        at += w;
        text[at++] = i + 1 < n ? ' ' : '.';
    }
    text[at] = 0;
    return text;
}

static void toy_free_dataset(void *state, tp_dataset *ds) {
    if (!ds) return;
    for (int64_t i = 0; i < ds->n && ds->rows; i++) {
        free(ds->rows[i].text);
        free(ds->rows[i].answer);
    }
    free(ds->rows);
    ds->rows = NULL;
    ds->n = 0;
}

static tp_status toy_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    toy_state *s = state;
    memset(out, 0, sizeof *out);
    uint64_t sid;
    int64_t n;
    if (!strcmp(split, "train")) {
        sid = 1;
        n = s->n_train;
    } else if (!strcmp(split, "eval")) {
        sid = 2;
        n = s->n_eval;
    } else {
        return API->errf(err, TP_EINVAL, "toy: unknown split '%s' (expected train or eval)", split);
    }
    out->rows = calloc((size_t)n, sizeof *out->rows);
    if (!out->rows)
        return API->errf(err, TP_ENOMEM, "toy: out of memory for %lld rows", (long long)n);
    /* balanced labels: cyclic, then a seeded shuffle of the order */
    int *labels = malloc((size_t)n * sizeof *labels);
    if (!labels) {
        free(out->rows);
        out->rows = NULL;
        return API->errf(err, TP_ENOMEM, "toy: out of memory");
    }
    for (int64_t i = 0; i < n; i++) labels[i] = (int)(i % s->n_classes);
    toy_rng order = toy_stream(s->seed, sid, UINT64_MAX);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(toy_next(&order) % (uint64_t)(i + 1));
        int t = labels[i];
        labels[i] = labels[j];
        labels[j] = t;
    }
    for (int64_t i = 0; i < n; i++) {
        toy_rng r = toy_stream(s->seed, sid, (uint64_t)i);
        tp_example *e = &out->rows[i];
        e->id = i;
        e->line = 0;
        e->label = labels[i];
        e->text = toy_sentence(s, &r, labels[i]);
        size_t L = strlen(toy_labels[labels[i]]) + 1;
        e->answer = malloc(L);
        out->n = i + 1;
        if (!e->text || !e->answer) {
            free(labels);
            toy_free_dataset(state, out);
            return API->errf(err, TP_ENOMEM, "toy: out of memory");
        }
        memcpy(e->answer, toy_labels[labels[i]], L);
    }
    free(labels);
    snprintf(out->source, sizeof out->source,
             "synthetic(toy v1, seed=%llu, split=%s, n=%lld, classes=%d, noise=%g, length=%d)",
             (unsigned long long)s->seed, split, (long long)n, s->n_classes, s->noise, s->length);
    return TP_OK;
}

static void toy_close(void *state) {
    free(state);
}

static const tp_task_vtable toy_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = toy_open,
    .info = toy_info,
    .load = toy_load,
    .free_dataset = toy_free_dataset,
    .extract = NULL,
    .close = toy_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = "toy";
    d->version = "1";
    d->summary = "synthetic seeded topic classification (keyword groups; offline demo and tests)";
    d->options = toy_options;
    d->n_options = TOY_N_OPTIONS;
    d->vtable = &toy_vtable;
    d->vtable_size = sizeof toy_vtable;
    return TP_OK;
}
