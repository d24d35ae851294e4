/* passkey.c — the synthetic pass-key retrieval task (Mohtashami & Jaggi 2023's format; STUDY.md
 * "inverse token scaling": passkey digit accuracy 23.4 / 22.8 / 18.4 / 9.8 at 16–128 tokens).
 *
 * What it adds: a generation task named "passkey". Each example hides a 5-digit code (10000 to
 * 99999) in filler text: an instruction line, then `filler` repetitions of the block "The grass
 * is green. The sky is blue. The sun is yellow. Here we go. There and back again." with the
 * sentence "The pass key is NNNNN. Remember it. NNNNN is the pass key." inserted before one of
 * the blocks (or after the last). Code and position are a pure function of (seed, split, index)
 * through splitmix64, so the same options give the same data on every machine; train and eval
 * use different streams. The gold answer is the code.
 *
 * Scoring: generate; the `extract` member takes the first run of digits in the generated text
 * (nothing else is read: "The pass key is 7 1 4 3 2" extracts "7"). Exact match compares the
 * extracted digits with the code; digit accuracy (the study's metric) is the fraction of the 5
 * positions where the extracted digit equals the code's (a missing digit is wrong, extra digits
 * are ignored) — the evaluator computes both.
 *
 * Task data (versioned with the plugin):
 *   sender template  "{text}\nWhat is the pass key?"
 *   receiver primer  "The pass key is"
 *   direct template  "{text}\nWhat is the pass key? The pass key is"
 *   relay prompts    sender: the harness's "Summarize the following text in one sentence.\n
 *                    Text: {text}\nSummary:" (the study does not state its wording);
 *                    receiver: the direct template with the summary as {text}
 *   scoring          generate, 8 new tokens
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/plugin.h>
#include <telepathy/task.h>

TP_PLUGIN_DEFINE_API;

/* the text relay's summarise prompt (tp_task_info.relay_sender_template) */
#define TASK_RELAY_SENDER "Summarize the following text in one sentence.\nText: {text}\nSummary:"

#define API  tp_plugin_api_
#define TASK "passkey"

static const char pk_intro[] = "There is an important piece of information hidden inside a lot of "
                               "irrelevant text. Find it and memorize it. I will quiz you about "
                               "it.";
static const char pk_block[] =
    " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

static const tp_option_spec pk_options[] = {
    {"seed", TP_OPT_INT, "1234", 0, 2147483647.0, NULL, "data seed (independent of the run seed)"},
    {"n_train", TP_OPT_INT, "1000", 1, 10000000, NULL, "training examples"},
    {"n_eval", TP_OPT_INT, "200", 1, 10000000, NULL, "evaluation examples"},
    {"filler", TP_OPT_INT, "20", 0, 10000, NULL, "filler blocks around the pass key"},
};

typedef struct pk_state {
    uint64_t seed;
    int64_t n_train, n_eval;
    int filler;
} pk_state;

static uint64_t pk_mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A uniform draw in [0, n) for (seed, split, index, stream). */
static uint64_t pk_draw(const pk_state *s, int split, int64_t i, int stream, uint64_t n) {
    uint64_t h = pk_mix(s->seed ^ pk_mix((uint64_t)split * 0x100000001B3ull + (uint64_t)stream));
    h = pk_mix(h ^ (uint64_t)i);
    return h % n; /* bias below n / 2^64 */
}

static tp_status pk_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    (void)data_dir;
    *state = NULL;
    pk_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    s->seed = (uint64_t)API->opt_int(o, "seed");
    s->n_train = API->opt_int(o, "n_train");
    s->n_eval = API->opt_int(o, "n_eval");
    s->filler = (int)API->opt_int(o, "filler");
    *state = s;
    return TP_OK;
}

static tp_status pk_info(void *state, tp_task_info *out) {
    (void)state;
    memset(out, 0, sizeof *out);
    out->sender_template = "{text}\nWhat is the pass key?";
    out->receiver_primer = "The pass key is";
    out->direct_template = "{text}\nWhat is the pass key? The pass key is";
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = "{text}\nWhat is the pass key? The pass key is";
    out->default_scoring = "generate";
    out->is_generation = 1;
    out->max_new_tokens = 8;
    return TP_OK;
}

static void pk_free_dataset(void *state, tp_dataset *ds) {
    (void)state;
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) {
        free(ds->rows[i].text);
        free(ds->rows[i].answer);
    }
    free(ds->rows);
    ds->rows = NULL;
    ds->n = 0;
}

static tp_status pk_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    pk_state *s = state;
    memset(out, 0, sizeof *out);
    int sp;
    int64_t n;
    if (split && !strcmp(split, "train")) {
        sp = 0;
        n = s->n_train;
    } else if (split && !strcmp(split, "eval")) {
        sp = 1;
        n = s->n_eval;
    } else {
        return API->errf(err, TP_EINVAL, TASK ": split '%s': expected train or eval",
                         split ? split : "(null)");
    }
    snprintf(out->source, sizeof out->source,
             "synthetic(passkey seed=%llu split=%s n=%lld filler=%d)", (unsigned long long)s->seed,
             split, (long long)n, s->filler);
    out->rows = calloc((size_t)n, sizeof *out->rows);
    if (!out->rows) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    size_t cap = sizeof pk_intro + (size_t)s->filler * sizeof pk_block + 96;
    for (int64_t i = 0; i < n; i++) {
        tp_example *e = &out->rows[i];
        unsigned code = 10000u + (unsigned)pk_draw(s, sp, i, 0, 90000);
        int at = (int)pk_draw(s, sp, i, 1, (uint64_t)s->filler + 1);
        e->text = malloc(cap);
        e->answer = malloc(8);
        if (!e->text || !e->answer) {
            out->n = i + 1;
            pk_free_dataset(state, out);
            return API->errf(err, TP_ENOMEM, TASK ": out of memory");
        }
        char *o = e->text;
        o += sprintf(o, "%s", pk_intro);
        for (int b = 0; b <= s->filler; b++) {
            if (b == at)
                o +=
                    sprintf(o, " The pass key is %u. Remember it. %u is the pass key.", code, code);
            if (b < s->filler) o += sprintf(o, "%s", pk_block);
        }
        snprintf(e->answer, 8, "%u", code);
        e->id = i;
        e->line = 0;
        e->label = -1;
        out->n = i + 1;
    }
    return TP_OK;
}

static int pk_extract(void *state, const char *generated, char *out, size_t cap) {
    (void)state;
    if (cap) out[0] = 0;
    if (!generated || cap < 2) return 0;
    const char *p = generated;
    while (*p && !(*p >= '0' && *p <= '9')) p++;
    if (!*p) return 0;
    size_t k = 0;
    while (*p >= '0' && *p <= '9' && k + 1 < cap) out[k++] = *p++;
    out[k] = 0;
    return 1;
}

static void pk_close(void *state) {
    free(state);
}

static const tp_task_vtable pk_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = pk_open,
    .info = pk_info,
    .load = pk_load,
    .free_dataset = pk_free_dataset,
    .extract = pk_extract,
    .close = pk_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = TASK;
    d->version = "1";
    d->summary = "synthetic pass-key retrieval: a seeded 5-digit code hidden in filler text";
    d->options = pk_options;
    d->n_options = (int)(sizeof pk_options / sizeof pk_options[0]);
    d->vtable = &pk_vtable;
    d->vtable_size = sizeof pk_vtable;
    (void)err;
    return TP_OK;
}
