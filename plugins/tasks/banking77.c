/* banking77.c — Banking77 intent classification (Casanueva et al. 2020; STUDY.md "Tasks").
 *
 * What it adds: a task named "banking77" reading the authors' files from <data_dir>/banking77/
 * (or option dir): categories.json (a JSON array of the 77 intent names; their order is the
 * label order here), split "train" = train.csv (10,003 rows), split "eval" = test.csv (3,080
 * rows). The CSVs have the header `text,category`, CRLF line endings and RFC-4180 quoting;
 * quoted texts may hold line feeds, which are kept byte for byte (as HF keeps them). A row whose
 * category is not one of the 77 names (exact, case-sensitive: `Refund_not_showing_up` is
 * capitalised), a row without exactly 2 columns, an empty text, bad quoting, a line ending with
 * LF only or a lone CR, or a NUL byte is an error naming file:line; so is a categories.json that
 * is not an array of distinct non-empty strings.
 *
 * Label ids follow categories.json (card_arrival = 0), NOT HF's `banking77` ids (the names in
 * case-insensitive alphabetical order); predictions and results store the names, so tables do
 * not depend on either numbering.
 *
 * Task data (versioned with the plugin):
 *   labels           the 77 names as written; each also matches with `_` read as a space
 *                    (synonym "card arrival") and without a trailing '?' (`reverted_card_payment?`)
 *   sender template  "Query: {text}\nIntent:"
 *   receiver primer  "Intent: "
 *   direct template  "Query: {text}\nIntent (one of: card_arrival, card_linking, …):" — the
 *                    label list, so the text baselines know the answer space
 *   relay prompts    sender: the harness's "Summarize the following text in one sentence.\n
 *                    Text: {text}\nSummary:" (the study does not state its wording);
 *                    receiver: the direct template with the summary as {text}
 *   scoring          generate (20 new tokens; many intents share their first token, so
 *                    first_token cannot tell them apart — loglik is the other choice)
 * Option max_train keeps the first N training rows (0 = all).
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
#include "task_util.h"

#define API      tp_plugin_api_
#define TASK     "banking77"
#define B77_N    77
#define NAME_MAX 96

static const tp_option_spec bk_options[] = {
    {"max_train", TP_OPT_INT, "0", 0, 1e9, NULL, "keep the first N training rows (0 = all)"},
    {"dir", TP_OPT_STRING, "", 1, 0, NULL,
     "directory with categories.json, train.csv and test.csv (default <data_dir>/banking77)"},
};

typedef struct bk_state {
    char dir[4096];
    int64_t max_train;
    int n;
    char names[B77_N][NAME_MAX];
    char syn[B77_N][3 * NAME_MAX];
    char *direct; /* direct template with the label list */
} bk_state;

static tp_status bk_categories(bk_state *s, tp_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/categories.json", s->dir);
    char *buf;
    size_t len;
    TP_TRY(tu_read_file(TASK, path, &buf, &len, err));
    char *tmp = malloc(len + 1);
    tp_status st = TP_OK;
    const char *p = buf, *end = buf + len, *why = NULL;
    if (!tmp) st = API->errf(err, TP_ENOMEM, TASK ": out of memory");
    p = tu_json_ws(p, end);
    if (st == TP_OK && (p >= end || *p != '[')) why = "expected a JSON array of intent names";
    if (st == TP_OK && !why) p = tu_json_ws(p + 1, end);
    while (st == TP_OK && !why && p < end && *p != ']') {
        size_t n;
        why = tu_json_string(&p, end, tmp, &n);
        if (why) break;
        if (n == 0 || n >= NAME_MAX) {
            why = "intent name empty or too long";
            break;
        }
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->names[i], tmp)) why = "intent name listed twice";
        if (why) break;
        if (s->n == B77_N) {
            why = "more than 77 intent names";
            break;
        }
        strcpy(s->names[s->n++], tmp);
        p = tu_json_ws(p, end);
        if (p < end && *p == ',')
            p = tu_json_ws(p + 1, end);
        else if (p < end && *p != ']')
            why = "expected ',' or ']' after an intent name";
    }
    if (st == TP_OK && !why && (p >= end || *p != ']')) why = "unterminated array";
    if (st == TP_OK && !why && s->n != B77_N) why = "expected exactly 77 intent names";
    if (st == TP_OK && !why && *tu_json_ws(p + 1, end) != 0) why = "text after the array";
    if (st == TP_OK && why) {
        int64_t line = 1;
        for (const char *q = buf; q < p && q < end; q++) line += *q == '\n';
        st = API->errf(err, TP_EFORMAT, TASK ": %s:%lld: %s (found %d so far)", path,
                       (long long)line, why, s->n);
    }
    free(tmp);
    free(buf);
    return st;
}

/* Synonyms and the direct template from the names. */
static tp_status bk_derive(bk_state *s, tp_err *err) {
    size_t cap = 128;
    for (int c = 0; c < s->n; c++) {
        char sp[NAME_MAX], bare[NAME_MAX];
        size_t n = strlen(s->names[c]);
        for (size_t i = 0; i <= n; i++) sp[i] = s->names[c][i] == '_' ? ' ' : s->names[c][i];
        if (n > 1 && s->names[c][n - 1] == '?') {
            memcpy(bare, s->names[c], n - 1);
            bare[n - 1] = 0;
            sp[n - 1] = 0;
            snprintf(s->syn[c], sizeof s->syn[c], "%s|%s?|%s", bare, sp, sp);
        } else {
            snprintf(s->syn[c], sizeof s->syn[c], "%s", sp);
        }
        cap += n + 2;
    }
    s->direct = malloc(cap);
    if (!s->direct) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    char *o = s->direct;
    o += sprintf(o, "Query: {text}\nIntent (one of: ");
    for (int c = 0; c < s->n; c++) o += sprintf(o, "%s%s", c ? ", " : "", s->names[c]);
    strcpy(o, "):");
    return TP_OK;
}

static void bk_close(void *state) {
    bk_state *s = state;
    if (!s) return;
    free(s->direct);
    free(s);
}

static tp_status bk_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    *state = NULL;
    bk_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    s->max_train = API->opt_int(o, "max_train");
    tp_status st =
        tu_resolve_dir(TASK, API->opt_string(o, "dir"), data_dir,
                       "categories.json, train.csv and test.csv", s->dir, sizeof s->dir, err);
    /* the label list is task data the info needs, so it is read here (2 KB) */
    if (st == TP_OK) st = bk_categories(s, err);
    if (st == TP_OK) st = bk_derive(s, err);
    if (st != TP_OK) {
        bk_close(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status bk_info(void *state, tp_task_info *out) {
    bk_state *s = state;
    memset(out, 0, sizeof *out);
    out->n_labels = s->n;
    for (int c = 0; c < s->n; c++) {
        out->labels[c] = s->names[c];
        out->synonyms[c] = s->syn[c];
    }
    out->sender_template = "Query: {text}\nIntent:";
    out->receiver_primer = "Intent: ";
    out->direct_template = s->direct;
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = s->direct;
    out->default_scoring = "generate";
    out->max_new_tokens = 20;
    return TP_OK;
}

static void bk_free_dataset(void *state, tp_dataset *ds) {
    (void)state;
    tu_free_dataset(ds);
}

static tp_status bk_parse(bk_state *s, tu_csv *c, int64_t limit, tp_dataset *ds, tp_err *err) {
    int64_t cap = 0;
    int eof, first = 1;
    for (;;) {
        if (limit > 0 && ds->n >= limit) break;
        TP_TRY(tu_csv_next(c, &eof, err));
        if (eof) break;
        if (first) {
            first = 0;
            if (c->nf != 2 || strcmp(c->field[0], "text") || strcmp(c->field[1], "category"))
                return tu_csv_bad(c, c->rec_line, "header: expected 'text,category'", err);
            continue;
        }
        if (c->nf != 2) {
            char msg[120];
            snprintf(msg, sizeof msg, "found %d column(s); expected 2 (text, category)", c->nf);
            return tu_csv_bad(c, c->rec_line, msg, err);
        }
        if (tu_blank(c->field[0], c->flen[0])) return tu_csv_bad(c, c->rec_line, "empty text", err);
        int label = -1;
        for (int k = 0; k < s->n; k++)
            if (!strcmp(c->field[1], s->names[k])) label = k;
        if (label < 0) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "category '%.60s' is not one of the 77 names in categories.json", c->field[1]);
            return tu_csv_bad(c, c->rec_line, msg, err);
        }
        if (tu_add_row(ds, &cap, c->field[0], c->flen[0], label, s->names[label],
                       strlen(s->names[label]), c->rec_line) != TP_OK)
            return API->errf(err, TP_ENOMEM, TASK ": out of memory at %s:%lld", c->path,
                             (long long)c->rec_line);
    }
    if (first) return API->errf(err, TP_EFORMAT, TASK ": %s: file is empty", c->path);
    if (ds->n == 0)
        return API->errf(err, TP_EFORMAT, TASK ": %s: no data rows after the header", c->path);
    return TP_OK;
}

static tp_status bk_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    bk_state *s = state;
    memset(out, 0, sizeof *out);
    const char *file = NULL;
    int64_t limit;
    TP_TRY(tu_split_file(TASK, s->dir, split, "train.csv", "test.csv", s->max_train, out, &file,
                         &limit, err));
    char *buf;
    size_t len;
    TP_TRY(tu_read_file(TASK, out->source, &buf, &len, err));
    tu_csv c;
    tp_status st = tu_csv_init(&c, TASK, out->source, buf, len, 1, err);
    if (st == TP_OK) st = bk_parse(s, &c, limit, out, err);
    tu_csv_free(&c);
    free(buf);
    if (st != TP_OK) tu_free_dataset(out);
    return st;
}

static const tp_task_vtable bk_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = bk_open,
    .info = bk_info,
    .load = bk_load,
    .free_dataset = bk_free_dataset,
    .extract = NULL,
    .close = bk_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = TASK;
    d->version = "1";
    d->summary = "Banking77 intents (77 classes, categories.json order) from CSV";
    d->options = bk_options;
    d->n_options = (int)(sizeof bk_options / sizeof bk_options[0]);
    d->vtable = &bk_vtable;
    d->vtable_size = sizeof bk_vtable;
    (void)err;
    return TP_OK;
}
