/* agnews.c — the AG News 4-class topic task (Zhang et al. 2015; STUDY.md "Tasks", exp004/006).
 *
 * What it adds: a task named "agnews" reading CSV files from <data_dir>/agnews/ (or option dir):
 * split "eval" = eval_file (default test.csv, the standard 7,600-row test split), split "train"
 * = train_file (default train.csv, the 120,000-row train split; ../shared/data only has the
 * 5,000-row sample train_sample5000.csv, so set train_file=train_sample5000.csv there).
 * Two layouts are read, recognised by the first line (both UTF-8, LF only, RFC-4180 quoting):
 *   with a header `title,description,class`, class = World | Sports | Business | Sci/Tech;
 *   Zhang's original: no header, every row `"class index 1-4","title","description"`.
 * The example text is HF's: title + " " + description, byte for byte (the `\` escapes and
 * HTML entities of the original are kept, as HF keeps them). A wrong header, a row without
 * exactly 3 columns, an unknown class, an empty title and description, bad quoting, a CR (CRLF
 * line endings) or a NUL byte is an error naming file:line; an empty file or one without rows
 * is an error too.
 *
 * Task data (versioned with the plugin):
 *   labels           world, sports, business, science (dataset order = HF ids 0..3);
 *                    science also accepts sci/tech and technology when generated text is matched
 *   sender template  prompt = corrected (exp006+): "Article: {text[:256]}\nTopic (world, sports,
 *                    business, or science):" — the text cut to its first 256 characters as the
 *                    study's {text[:256]} did; prompt = old (exp004): "Article: {text[:256]}\n
 *                    Topic:" (the study's correction added the label list, as for SST-2; the
 *                    old AG News wording is inferred from that pattern, no file records it)
 *   receiver primer  "Topic:"
 *   direct template  the corrected sender prompt (text baselines always listed the labels)
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
#define TASK "agnews"

static const char *const ag_labels[4] = {"world", "sports", "business", "science"};
static const char *const ag_names[4] = {"World", "Sports", "Business", "Sci/Tech"};
static const char ag_tpl_corrected[] =
    "Article: {text[:256]}\nTopic (world, sports, business, or science):";
static const char ag_tpl_old[] = "Article: {text[:256]}\nTopic:";

static const tp_option_spec ag_options[] = {
    {"prompt", TP_OPT_ENUM, "corrected", 1, 0, "corrected|old",
     "sender prompt: corrected (with the label list, exp006+) or old (exp004)"},
    {"train_file", TP_OPT_STRING, "train.csv", 1, 0, NULL,
     "training CSV inside dir (train_sample5000.csv = the 5,000-row sample in ../shared/data)"},
    {"eval_file", TP_OPT_STRING, "test.csv", 1, 0, NULL, "evaluation CSV inside dir"},
    {"max_train", TP_OPT_INT, "0", 0, 1e9, NULL, "keep the first N training rows (0 = all)"},
    {"dir", TP_OPT_STRING, "", 1, 0, NULL,
     "directory with the CSV files (default <data_dir>/agnews)"},
};

typedef struct ag_state {
    char dir[4096];
    char train_file[512], eval_file[512];
    int old_prompt;
    int64_t max_train;
} ag_state;

static tp_status ag_file_opt(const tp_options *o, const char *name, char *out, size_t cap,
                             tp_err *err) {
    const char *v = API->opt_string(o, name);
    if (!v || !v[0] || strchr(v, '/'))
        return API->errf(err, TP_EINVAL,
                         TASK ": option %s = '%s': expected a file name inside dir (no '/')", name,
                         v ? v : "");
    if (strlen(v) >= cap) return API->errf(err, TP_EINVAL, TASK ": option %s is too long", name);
    strcpy(out, v);
    return TP_OK;
}

static tp_status ag_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    *state = NULL;
    const char *prompt = API->opt_string(o, "prompt");
    int old;
    if (prompt && !strcmp(prompt, "corrected"))
        old = 0;
    else if (prompt && !strcmp(prompt, "old"))
        old = 1;
    else
        return API->errf(err, TP_EINVAL, TASK ": option prompt = '%s': expected corrected|old",
                         prompt ? prompt : "(null)");
    ag_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    s->old_prompt = old;
    s->max_train = API->opt_int(o, "max_train");
    tp_status st = ag_file_opt(o, "train_file", s->train_file, sizeof s->train_file, err);
    if (st == TP_OK) st = ag_file_opt(o, "eval_file", s->eval_file, sizeof s->eval_file, err);
    if (st == TP_OK)
        st = tu_resolve_dir(TASK, API->opt_string(o, "dir"), data_dir,
                            "AG News CSV files (test.csv, train.csv)", s->dir, sizeof s->dir, err);
    if (st != TP_OK) {
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status ag_info(void *state, tp_task_info *out) {
    ag_state *s = state;
    memset(out, 0, sizeof *out);
    out->n_labels = 4;
    for (int c = 0; c < 4; c++) out->labels[c] = ag_labels[c];
    out->synonyms[3] = "sci/tech|technology";
    out->sender_template = s->old_prompt ? ag_tpl_old : ag_tpl_corrected;
    out->receiver_primer = "Topic:";
    out->direct_template = ag_tpl_corrected;
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = ag_tpl_corrected;
    out->default_scoring = "first_token";
    out->max_new_tokens = 5;
    return TP_OK;
}

static void ag_free_dataset(void *state, tp_dataset *ds) {
    (void)state;
    tu_free_dataset(ds);
}

static tp_status ag_row(tu_csv *c, tp_dataset *ds, int64_t *cap, int label, const char *title,
                        size_t tl, const char *desc, size_t dl, tp_err *err) {
    if (tu_blank(title, tl) && tu_blank(desc, dl))
        return tu_csv_bad(c, c->rec_line, "empty title and description", err);
    char *text = malloc(tl + dl + 2);
    if (!text) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    memcpy(text, title, tl);
    text[tl] = ' ';
    memcpy(text + tl + 1, desc, dl);
    tp_status st = tu_add_row(ds, cap, text, tl + 1 + dl, label, ag_labels[label],
                              strlen(ag_labels[label]), c->rec_line);
    free(text);
    if (st != TP_OK)
        return API->errf(err, TP_ENOMEM, TASK ": out of memory at %s:%lld", c->path,
                         (long long)c->rec_line);
    return TP_OK;
}

static tp_status ag_parse(tu_csv *c, int64_t limit, tp_dataset *ds, tp_err *err) {
    int64_t cap = 0;
    int eof, header = -1;
    for (;;) {
        if (limit > 0 && ds->n >= limit) break;
        TP_TRY(tu_csv_next(c, &eof, err));
        if (eof) break;
        if (header < 0) {
            header = c->nf == 3 && !c->quoted[0] && !strcmp(c->field[0], "title") &&
                     !strcmp(c->field[1], "description") && !strcmp(c->field[2], "class");
            if (header) continue;
            if (c->nf != 3 || c->flen[0] != 1 || c->field[0][0] < '1' || c->field[0][0] > '4')
                return tu_csv_bad(c, c->rec_line,
                                  "first line is neither the header 'title,description,class' "
                                  "nor a row \"1-4\",\"title\",\"description\" (Zhang's AG News "
                                  "CSV)",
                                  err);
        }
        if (c->nf != 3) {
            char msg[160];
            snprintf(msg, sizeof msg, "found %d column(s); expected 3 (%s)", c->nf,
                     header ? "title, description, class" : "class index, title, description");
            return tu_csv_bad(c, c->rec_line, msg, err);
        }
        int label = -1;
        if (header) {
            for (int k = 0; k < 4; k++)
                if (!strcmp(c->field[2], ag_names[k])) label = k;
            if (label < 0) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "class '%.40s': expected World, Sports, Business or Sci/Tech",
                         c->field[2]);
                return tu_csv_bad(c, c->rec_line, msg, err);
            }
            TP_TRY(
                ag_row(c, ds, &cap, label, c->field[0], c->flen[0], c->field[1], c->flen[1], err));
        } else {
            if (c->flen[0] == 1 && c->field[0][0] >= '1' && c->field[0][0] <= '4')
                label = c->field[0][0] - '1';
            if (label < 0) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "class index '%.40s': expected 1 (World), 2 (Sports), 3 (Business) or "
                         "4 (Sci/Tech)",
                         c->field[0]);
                return tu_csv_bad(c, c->rec_line, msg, err);
            }
            TP_TRY(
                ag_row(c, ds, &cap, label, c->field[1], c->flen[1], c->field[2], c->flen[2], err));
        }
    }
    if (ds->n == 0)
        return API->errf(err, TP_EFORMAT, TASK ": %s: no data rows%s", c->path,
                         header == 1 ? " after the header" : " (file is empty)");
    return TP_OK;
}

static tp_status ag_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    ag_state *s = state;
    memset(out, 0, sizeof *out);
    const char *file = NULL;
    int64_t limit;
    TP_TRY(tu_split_file(TASK, s->dir, split, s->train_file, s->eval_file, s->max_train, out, &file,
                         &limit, err));
    char *buf;
    size_t len;
    tp_status st = tu_read_file(TASK, out->source, &buf, &len, err);
    if (st != TP_OK) {
        if (!strcmp(file, "train.csv")) {
            char why[600];
            snprintf(why, sizeof why, "%s", err->msg);
            return API->errf(err, st,
                             "%s (the full AG News train split, 120,000 rows; with "
                             "../shared/data set the task option "
                             "train_file=train_sample5000.csv)",
                             why);
        }
        return st;
    }
    tu_csv c;
    st = tu_csv_init(&c, TASK, out->source, buf, len, 0, err);
    if (st == TP_OK) st = ag_parse(&c, limit, out, err);
    tu_csv_free(&c);
    free(buf);
    if (st != TP_OK) tu_free_dataset(out);
    return st;
}

static void ag_close(void *state) {
    free(state);
}

static const tp_task_vtable ag_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = ag_open,
    .info = ag_info,
    .load = ag_load,
    .free_dataset = ag_free_dataset,
    .extract = NULL,
    .close = ag_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = TASK;
    d->version = "1";
    d->summary = "AG News topics (world/sports/business/science) from CSV";
    d->options = ag_options;
    d->n_options = (int)(sizeof ag_options / sizeof ag_options[0]);
    d->vtable = &ag_vtable;
    d->vtable_size = sizeof ag_vtable;
    (void)err;
    return TP_OK;
}
