/* trec.c — TREC-6 question classification (Li & Roth 2002; STUDY.md "Tasks"), coarse labels.
 *
 * What it adds: a task named "trec" reading the UIUC label files from <data_dir>/trec/ (or option
 * dir): split "train" = train_5500.label (5,452 rows), split "eval" = TREC_10.label (500 rows).
 * Each line is `COARSE:fine question tokens` (LF line endings): the coarse label is one of ABBR,
 * ENTY, DESC, HUM, LOC, NUM, the fine label a lower-case word, the question everything after the
 * first space. The text is HF's `trec` text: the question with the one byte the UIUC original
 * has as Latin-1 0xF0 ("sister\xf0city", stored in ../shared/data as UTF-8 "ð") turned into a
 * space, as HF's loader does — every "ð" (C3 B0) becomes one space; nothing else is changed.
 * A line without "COARSE:fine ", an unknown coarse label, an empty fine label or question, a CR
 * (CRLF line endings) or a NUL byte is an error naming file:line.
 *
 * Task data (versioned with the plugin):
 *   labels           ABBR, ENTY, DESC, HUM, LOC, NUM — the data set's (and HF's) order, not
 *                    alphabetical (STUDY.md: "dataset order!")
 *   sender template  "Question: {text}\nCategory (ABBR, ENTY, DESC, HUM, LOC, or NUM):" (the
 *                    study's corrected prompt; TREC was only run with it)
 *   receiver primer  "Question Type: "
 *   direct template  the sender template
 *   relay prompts    sender: the harness's "Summarize the following text in one sentence.\n
 *                    Text: {text}\nSummary:" (the study does not state its wording);
 *                    receiver: the direct template with the summary as {text}
 *   scoring          first_token; generate uses 5 new tokens
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

#define API  tp_plugin_api_
#define TASK "trec"

static const char *const tr_labels[6] = {"ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"};
static const char tr_tpl[] = "Question: {text}\nCategory (ABBR, ENTY, DESC, HUM, LOC, or NUM):";

static const tp_option_spec tr_options[] = {
    {"max_train", TP_OPT_INT, "0", 0, 1e9, NULL, "keep the first N training rows (0 = all)"},
    {"dir", TP_OPT_STRING, "", 1, 0, NULL,
     "directory with train_5500.label and TREC_10.label (default <data_dir>/trec)"},
};

typedef struct tr_state {
    char dir[4096];
    int64_t max_train;
} tr_state;

static tp_status tr_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    *state = NULL;
    tr_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    s->max_train = API->opt_int(o, "max_train");
    tp_status st = tu_resolve_dir(TASK, API->opt_string(o, "dir"), data_dir,
                                  "train_5500.label and TREC_10.label", s->dir, sizeof s->dir, err);
    if (st != TP_OK) {
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status tr_info(void *state, tp_task_info *out) {
    (void)state;
    memset(out, 0, sizeof *out);
    out->n_labels = 6;
    for (int c = 0; c < 6; c++) out->labels[c] = tr_labels[c];
    out->sender_template = tr_tpl;
    out->receiver_primer = "Question Type: ";
    out->direct_template = tr_tpl;
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = tr_tpl;
    out->default_scoring = "first_token";
    out->max_new_tokens = 5;
    return TP_OK;
}

static void tr_free_dataset(void *state, tp_dataset *ds) {
    (void)state;
    tu_free_dataset(ds);
}

static tp_status tr_bad(const char *path, int64_t line, const char *what, tp_err *err) {
    return API->errf(err, TP_EFORMAT, TASK ": %s:%lld: %s", path, (long long)line, what);
}

static tp_status tr_parse(const char *path, char *buf, size_t len, int64_t limit, tp_dataset *ds,
                          tp_err *err) {
    if (len == 0)
        return API->errf(err, TP_EFORMAT,
                         TASK ": %s: file is empty; expected lines 'COARSE:fine question'", path);
    const char *nul = memchr(buf, 0, len);
    int64_t cap = 0, line = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        if (limit > 0 && ds->n >= limit) break;
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        if (!eol) eol = end;
        line++;
        size_t n = (size_t)(eol - p);
        if (nul && nul >= p && nul < eol) return tr_bad(path, line, "NUL byte (binary file?)", err);
        if (memchr(p, '\r', n))
            return tr_bad(path, line,
                          "carriage return (CRLF line endings?); the TREC label files use LF", err);
        char *colon = memchr(p, ':', n), *sp = memchr(p, ' ', n);
        if (!colon || !sp || sp < colon) {
            char msg[200];
            snprintf(msg, sizeof msg, "'%.*s': expected 'COARSE:fine question'",
                     (int)(n > 40 ? 40 : n), p);
            return tr_bad(path, line, n ? msg : "empty line; expected 'COARSE:fine question'", err);
        }
        int label = -1;
        for (int c = 0; c < 6; c++)
            if ((size_t)(colon - p) == strlen(tr_labels[c]) &&
                !memcmp(p, tr_labels[c], (size_t)(colon - p)))
                label = c;
        if (label < 0) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "coarse label '%.*s': expected ABBR, ENTY, DESC, HUM, LOC or NUM",
                     (int)((colon - p) > 40 ? 40 : colon - p), p);
            return tr_bad(path, line, msg, err);
        }
        if (sp == colon + 1) return tr_bad(path, line, "empty fine label after ':'", err);
        const char *q = sp + 1;
        size_t ql = (size_t)(eol - q);
        if (tu_blank(q, ql)) return tr_bad(path, line, "empty question", err);
        /* HF parity: the original's 0xF0 byte (here UTF-8 "ð") becomes a space */
        char *t = malloc(ql + 1);
        if (!t) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
        size_t k = 0;
        for (size_t i = 0; i < ql; i++) {
            if ((unsigned char)q[i] == 0xC3 && i + 1 < ql && (unsigned char)q[i + 1] == 0xB0) {
                t[k++] = ' ';
                i++;
            } else {
                t[k++] = q[i];
            }
        }
        tp_status st =
            tu_add_row(ds, &cap, t, k, label, tr_labels[label], strlen(tr_labels[label]), line);
        free(t);
        if (st != TP_OK)
            return API->errf(err, TP_ENOMEM, TASK ": out of memory at %s:%lld", path,
                             (long long)line);
        p = next;
    }
    if (ds->n == 0) return API->errf(err, TP_EFORMAT, TASK ": %s: no data rows", path);
    return TP_OK;
}

static tp_status tr_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    tr_state *s = state;
    memset(out, 0, sizeof *out);
    const char *file = NULL;
    int64_t limit;
    TP_TRY(tu_split_file(TASK, s->dir, split, "train_5500.label", "TREC_10.label", s->max_train,
                         out, &file, &limit, err));
    char *buf;
    size_t len;
    TP_TRY(tu_read_file(TASK, out->source, &buf, &len, err));
    tp_status st = tr_parse(out->source, buf, len, limit, out, err);
    free(buf);
    if (st != TP_OK) tu_free_dataset(out);
    return st;
}

static void tr_close(void *state) {
    free(state);
}

static const tp_task_vtable tr_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = tr_open,
    .info = tr_info,
    .load = tr_load,
    .free_dataset = tr_free_dataset,
    .extract = NULL,
    .close = tr_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = TASK;
    d->version = "1";
    d->summary = "TREC-6 question types (ABBR, ENTY, DESC, HUM, LOC, NUM) from the UIUC files";
    d->options = tr_options;
    d->n_options = (int)(sizeof tr_options / sizeof tr_options[0]);
    d->vtable = &tr_vtable;
    d->vtable_size = sizeof tr_vtable;
    (void)err;
    return TP_OK;
}
