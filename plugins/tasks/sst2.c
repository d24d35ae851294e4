/* sst2.c — the SST-2 sentiment task (GLUE), the study's signal check (STUDY.md "Tasks").
 *
 * What it adds: a task named "sst2" that reads GLUE's own TSV files from <data_dir>/sst2/ (or
 * the directory given by option dir): split "train" = train.tsv (67,349 rows), split "eval" =
 * dev.tsv (872 rows; HF's `validation`). Each file is UTF-8 with LF line endings, a header line
 * `sentence<TAB>label`, then one `sentence<TAB>label` row per line, label 0 = negative,
 * 1 = positive. Sentences are kept byte for byte, including the one trailing space GLUE leaves
 * before the tab (HF keeps it too, so prompts match the study's). Anything else is an error that
 * names file:line: a wrong header, a row without exactly two columns, an empty sentence, a label
 * other than 0/1, a CR (CRLF line endings), a NUL byte, an empty file or one with no rows.
 *
 * Task data (versioned with the plugin):
 *   labels           negative, positive (dataset order)
 *   sender template  prompt = corrected (exp005+): "Review: {text}\nSentiment (positive or
 *                    negative):"; prompt = old (exp001-exp004): "Review: {text}\nSentiment:"
 *   receiver primer  "Sentiment:"
 *   direct template  "Review: {text}\nSentiment (positive or negative):" (the study's text
 *                    baselines always listed the labels)
 *   relay prompts    sender: the harness's "Summarize the following text in one sentence.\n
 *                    Text: {text}\nSummary:" (the study does not state its wording);
 *                    receiver: the direct template with the summary as {text}
 *   scoring          first_token by default; generate uses 5 new tokens (the study's quick eval)
 * Option max_train keeps the first N training rows (0 = all); the eval split is never cut here
 * (the evaluator samples it and records how).
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <telepathy/plugin.h>
#include <telepathy/task.h>

TP_PLUGIN_DEFINE_API;

/* the text relay's summarise prompt (tp_task_info.relay_sender_template) */
#define TASK_RELAY_SENDER "Summarize the following text in one sentence.\nText: {text}\nSummary:"

#include "task_util.h"

#define API tp_plugin_api_

static const char *const st_labels[2] = {"negative", "positive"};
static const char st_tpl_corrected[] = "Review: {text}\nSentiment (positive or negative):";
static const char st_tpl_old[] = "Review: {text}\nSentiment:";
static const char st_header[] = "sentence\tlabel";

static const tp_option_spec st_options[] = {
    {"prompt", TP_OPT_ENUM, "corrected", 1, 0, "corrected|old",
     "sender prompt: corrected (with the label list, exp005+) or old (exp001-exp004)"},
    {"max_train", TP_OPT_INT, "0", 0, 1e9, NULL, "keep the first N training rows (0 = all)"},
    {"dir", TP_OPT_STRING, "", 1, 0, NULL,
     "directory with train.tsv and dev.tsv "
     "(default: <data_dir>/sst2)"},
};

typedef struct st_state {
    char dir[4096];
    int old_prompt;
    int64_t max_train;
} st_state;

static tp_status st_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    *state = NULL;
    const char *prompt = API->opt_string(o, "prompt");
    const char *dir = API->opt_string(o, "dir");
    int64_t max_train = API->opt_int(o, "max_train");
    int old;
    if (prompt && strcmp(prompt, "corrected") == 0)
        old = 0;
    else if (prompt && strcmp(prompt, "old") == 0)
        old = 1;
    else
        return API->errf(err, TP_EINVAL, "sst2: option prompt = '%s': expected corrected|old",
                         prompt ? prompt : "(null)");
    if (max_train < 0)
        return API->errf(err, TP_EINVAL, "sst2: option max_train = %lld: expected >= 0",
                         (long long)max_train);
    st_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "sst2: out of memory");
    s->old_prompt = old;
    s->max_train = max_train;
    tp_status st =
        tu_resolve_dir("sst2", dir, data_dir,
                       "GLUE SST-2's train.tsv and dev.tsv; scripts/fetch-data.sh gets them",
                       s->dir, sizeof s->dir, err);
    if (st != TP_OK) {
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status st_info(void *state, tp_task_info *out) {
    st_state *s = state;
    memset(out, 0, sizeof *out);
    out->n_labels = 2;
    out->labels[0] = st_labels[0];
    out->labels[1] = st_labels[1];
    out->sender_template = s->old_prompt ? st_tpl_old : st_tpl_corrected;
    out->receiver_primer = "Sentiment:";
    out->direct_template = st_tpl_corrected;
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = st_tpl_corrected;
    out->default_scoring = "first_token";
    out->is_generation = 0;
    out->max_new_tokens = 5;
    return TP_OK;
}

static void st_free_dataset(void *state, tp_dataset *ds) {
    (void)state;
    tu_free_dataset(ds);
}

/* Parses buf (the file at path) into ds; every problem names path:line. */
static tp_status st_parse(const char *path, char *buf, size_t len, int64_t limit, tp_dataset *ds,
                          tp_err *err) {
    if (len == 0)
        return API->errf(err, TP_EFORMAT,
                         "sst2: %s: file is empty; expected the header 'sentence<TAB>label' "
                         "and one row per line",
                         path);
    const char *nul = memchr(buf, 0, len);
    int64_t cap = 0, line = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        if (!eol) eol = end;
        line++;
        size_t n = (size_t)(eol - p);
        if (nul && nul >= p && nul < eol)
            return API->errf(err, TP_EFORMAT, "sst2: %s:%lld: NUL byte in the line (binary file?)",
                             path, (long long)line);
        if (memchr(p, '\r', n))
            return API->errf(err, TP_EFORMAT,
                             "sst2: %s:%lld: carriage return (CRLF line endings?); GLUE SST-2 TSV "
                             "uses LF only",
                             path, (long long)line);
        if (line == 1) {
            if (n != sizeof st_header - 1 || memcmp(p, st_header, n) != 0)
                return API->errf(err, TP_EFORMAT,
                                 "sst2: %s:1: header '%.*s': expected 'sentence<TAB>label' "
                                 "(GLUE SST-2 train.tsv / dev.tsv; test.tsv has no labels)",
                                 path, (int)(n > 80 ? 80 : n), p);
            p = next;
            continue;
        }
        if (limit > 0 && ds->n >= limit) break;
        int tabs = 0;
        char *tab = NULL;
        for (char *q = p; q < eol; q++)
            if (*q == '\t') {
                if (!tab) tab = q;
                tabs++;
            }
        if (tabs != 1)
            return API->errf(err, TP_EFORMAT,
                             "sst2: %s:%lld: found %d column(s); expected 2 tab-separated columns "
                             "(sentence, label)",
                             path, (long long)line, tabs + 1);
        size_t tlen = (size_t)(tab - p);
        size_t k = 0;
        while (k < tlen && (p[k] == ' ' || p[k] == '\t')) k++;
        if (k == tlen)
            return API->errf(err, TP_EFORMAT, "sst2: %s:%lld: empty sentence", path,
                             (long long)line);
        const char *lab = tab + 1;
        size_t llen = (size_t)(eol - lab);
        int label;
        if (llen == 1 && lab[0] == '0')
            label = 0;
        else if (llen == 1 && lab[0] == '1')
            label = 1;
        else
            return API->errf(err, TP_EFORMAT,
                             "sst2: %s:%lld: label '%.*s': expected 0 (negative) or 1 (positive)",
                             path, (long long)line, (int)(llen > 40 ? 40 : llen), lab);
        if (tu_add_row(ds, &cap, p, tlen, label, st_labels[label], strlen(st_labels[label]),
                       line) != TP_OK)
            return API->errf(err, TP_ENOMEM, "sst2: out of memory at %s:%lld", path,
                             (long long)line);
        p = next;
    }
    if (ds->n == 0)
        return API->errf(err, TP_EFORMAT, "sst2: %s: no data rows after the header", path);
    return TP_OK;
}

static tp_status st_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    st_state *s = state;
    memset(out, 0, sizeof *out);
    const char *file = NULL;
    int64_t limit;
    TP_TRY(tu_split_file("sst2", s->dir, split, "train.tsv", "dev.tsv", s->max_train, out, &file,
                         &limit, err));
    char *buf = NULL;
    size_t len = 0;
    TP_TRY(
        tu_read_file_hint("sst2", out->source, " (expected GLUE SST-2 TSV here)", &buf, &len, err));
    tp_status st = st_parse(out->source, buf, len, limit, out, err);
    free(buf);
    if (st != TP_OK) st_free_dataset(state, out);
    return st;
}

static void st_close(void *state) {
    free(state);
}

static const tp_task_vtable st_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = st_open,
    .info = st_info,
    .load = st_load,
    .free_dataset = st_free_dataset,
    .extract = NULL, /* classification: the evaluator matches label words */
    .close = st_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = "sst2";
    d->version = "1";
    d->summary = "GLUE SST-2 sentiment (negative/positive) from train.tsv / dev.tsv";
    d->options = st_options;
    d->n_options = (int)(sizeof st_options / sizeof st_options[0]);
    d->vtable = &st_vtable;
    d->vtable_size = sizeof st_vtable;
    (void)err;
    return TP_OK;
}
