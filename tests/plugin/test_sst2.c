/* test_sst2.c — the sst2 task plugin, loaded as the real .so: the real GLUE files from
 * ../shared/data/sst2 (row counts, label counts, first rows; skipped with a message when
 * ../shared is absent), task data (templates, primer, labels, prompt option), max_train, and
 * malformed fixture files written here, each an error naming file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/loader.h"
#include "plugin/options.h"
#include "telepathy/task.h"
#include "tp_test.h"

typedef struct fixture {
    tp_registry *reg;
    const tp_plugin *plugin;
    const tp_task_vtable *vt;
    tp_options *opts;
    void *state;
} fixture;

/* Loads tasks/sst2.so and opens it with options (k=v list) and data_dir; returns the open
 * status (err filled), or TP_EPLUGIN if the plugin itself could not be loaded. */
static tp_status fx_open(fixture *f, const char *opts, const char *data_dir, tp_err *err) {
    memset(f, 0, sizeof *f);
    const char *dir = getenv("TELEPATHY_PLUGIN_PATH");
    if (!dir) {
        TP_CHECKF(0, "TELEPATHY_PLUGIN_PATH is not set (ctest sets it)");
        return TP_EPLUGIN;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tasks/sst2.so", dir);
    if (tp_registry_new(&f->reg, err) != TP_OK || tp_registry_load(f->reg, path, err) != TP_OK ||
        tp_registry_find(f->reg, TP_PLUGIN_TASK, "sst2", &f->plugin, err) != TP_OK) {
        TP_CHECKF(0, "loading %s: %s", path, err->msg);
        return TP_EPLUGIN;
    }
    f->vt = f->plugin->desc.vtable;
    const tp_plugin_desc *d = &f->plugin->desc;
    TP_TRY(tp_options_new("task", "sst2", d->options, d->n_options, &f->opts, err));
    if (opts && *opts) TP_TRY(tp_options_set_list(f->opts, opts, err));
    return f->vt->open(f->opts, data_dir, &f->state, err);
}

static void fx_close(fixture *f) {
    if (f->state) f->vt->close(f->state);
    tp_options_free(f->opts);
    tp_registry_free(f->reg);
}

static void test_real_data(void) {
    const char *shared = tp_test_shared_dir("sst2 real data");
    if (!shared) return;
    char data[4096];
    snprintf(data, sizeof data, "%s/data", shared);
    fixture f;
    tp_err err = {0};
    tp_status st = fx_open(&f, "", data, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto out;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    tp_dataset ds;
    st = f.vt->load(f.state, "eval", &ds, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECKF(ds.n == 872, "dev rows %lld", (long long)ds.n);
        int64_t pos = 0;
        for (int64_t i = 0; i < ds.n; i++) pos += ds.rows[i].label == 1;
        TP_CHECKF(pos == 444 && ds.n - pos == 428, "dev positives %lld", (long long)pos);
        /* GLUE keeps a trailing space before the tab; so do we (and HF) */
        TP_CHECK(strcmp(ds.rows[0].text, "it 's a charming and often affecting journey . ") == 0);
        TP_CHECK(ds.rows[0].label == 1 && strcmp(ds.rows[0].answer, "positive") == 0);
        TP_CHECK(ds.rows[0].line == 2 && ds.rows[0].id == 0);
        TP_CHECK(strcmp(ds.rows[1].text, "unflinchingly bleak and desperate ") == 0);
        TP_CHECK(ds.rows[1].label == 0 && strcmp(ds.rows[1].answer, "negative") == 0);
        TP_CHECK(ds.rows[871].line == 873 && ds.rows[871].id == 871);
        TP_CHECK(strstr(ds.source, "sst2/dev.tsv") != NULL);
        f.vt->free_dataset(f.state, &ds);
        TP_CHECK(ds.rows == NULL && ds.n == 0);
    }
    st = f.vt->load(f.state, "train", &ds, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECKF(ds.n == 67349, "train rows %lld", (long long)ds.n);
        int64_t pos = 0;
        for (int64_t i = 0; i < ds.n; i++) pos += ds.rows[i].label == 1;
        TP_CHECKF(pos == 37569, "train positives %lld", (long long)pos);
        f.vt->free_dataset(f.state, &ds);
    }
    fx_close(&f);

    /* max_train keeps the first N rows of train, never cuts eval */
    st = fx_open(&f, "max_train=100", data, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(f.vt->load(f.state, "train", &ds, &err) == TP_OK);
        TP_CHECK(ds.n == 100 && ds.rows[99].line == 101);
        f.vt->free_dataset(f.state, &ds);
        TP_CHECK(f.vt->load(f.state, "eval", &ds, &err) == TP_OK);
        TP_CHECK(ds.n == 872);
        f.vt->free_dataset(f.state, &ds);
    }
    fx_close(&f);

    /* option dir overrides the data directory */
    char dir[4096];
    snprintf(dir, sizeof dir, "dir=%s/sst2", data);
    st = fx_open(&f, dir, NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(f.vt->load(f.state, "eval", &ds, &err) == TP_OK);
        TP_CHECK(ds.n == 872);
        f.vt->free_dataset(f.state, &ds);
    }
out:
    fx_close(&f);
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    TP_CHECKF(fp != NULL, "cannot write %s", path);
    if (!fp) return;
    fputs(text, fp);
    fclose(fp);
}

/* Writes dev.tsv = text into a fresh fixture dir and loads "eval". */
static tp_status load_fixture(const char *name, const char *text, tp_dataset *ds, tp_err *err,
                              char *dir, size_t cap) {
    snprintf(dir, cap, "%s/%s", tp_test_tmpdir(), name);
    mkdir(dir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/dev.tsv", dir);
    write_file(path, text);
    char opt[4200];
    snprintf(opt, sizeof opt, "dir=%s", dir);
    fixture f;
    tp_status st = fx_open(&f, opt, NULL, err);
    if (st == TP_OK) {
        st = f.vt->load(f.state, "eval", ds, err);
        if (st == TP_OK) f.vt->free_dataset(f.state, ds);
    }
    fx_close(&f);
    return st;
}

static void expect_bad(const char *name, const char *text, const char *where, const char *what) {
    tp_dataset ds;
    tp_err err = {0};
    char dir[4096];
    tp_status st = load_fixture(name, text, &ds, &err, dir, sizeof dir);
    TP_CHECKF(st == TP_EFORMAT, "%s: status %d (%s)", name, (int)st, err.msg);
    char loc[4200];
    snprintf(loc, sizeof loc, "%s/dev.tsv%s", dir, where);
    TP_CHECKF(strstr(err.msg, loc) != NULL, "%s: message '%s' does not name '%s'", name, err.msg,
              loc);
    TP_CHECKF(strstr(err.msg, what) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, what);
}

static void test_malformed(void) {
    const char *h = "sentence\tlabel\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%sgood movie \t1\nbad movie \t2\n", h);
    expect_bad("bad_label", buf, ":3:", "label '2'");
    snprintf(buf, sizeof buf, "%sgood movie \t1\nfine \t0\nno label column here\n", h);
    expect_bad("no_column", buf, ":4:", "found 1 column");
    snprintf(buf, sizeof buf, "%sa\tb\t1\n", h);
    expect_bad("three_columns", buf, ":2:", "found 3 column");
    snprintf(buf, sizeof buf, "sentence\tlabel\r\ngood \t1\r\n");
    expect_bad("crlf", buf, ":1:", "CRLF");
    snprintf(buf, sizeof buf, "%sgood \t1\r\n", h);
    expect_bad("crlf_row", buf, ":2:", "carriage return");
    snprintf(buf, sizeof buf, "%sgood \t1\n\t0\n", h);
    expect_bad("empty_sentence", buf, ":3:", "empty sentence");
    snprintf(buf, sizeof buf, "%sgood \t1\n\nbad \t0\n", h);
    expect_bad("blank_line", buf, ":3:", "column");
    snprintf(buf, sizeof buf, "index\tsentence\n0\tgood\n");
    expect_bad("test_header", buf, ":1:", "expected 'sentence<TAB>label'");
    snprintf(buf, sizeof buf, "%sgood \t 1\n", h);
    expect_bad("label_space", buf, ":2:", "label ' 1'");
    expect_bad("empty", "", ": file is empty", "header");
    expect_bad("header_only", h, ": no data rows", "header");
}

static void test_fixture_ok_and_info(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ok", tp_test_tmpdir());
    mkdir(dir, 0755);
    char path[4200];
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    write_file(path, "sentence\tlabel\nfun \t1\ndull \t0\nwarm \t1"); /* no final newline */
    char opt[4200];
    snprintf(opt, sizeof opt, "dir=%s", dir);
    fixture f;
    tp_err err = {0};
    tp_status st = fx_open(&f, opt, NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_dataset ds;
        st = f.vt->load(f.state, "train", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 3);
            TP_CHECK(strcmp(ds.rows[2].text, "warm ") == 0 && ds.rows[2].label == 1);
            TP_CHECK(ds.rows[1].label == 0 && ds.rows[1].line == 3);
            f.vt->free_dataset(f.state, &ds);
        }
        /* no dev.tsv here: a clear i/o error naming the file */
        st = f.vt->load(f.state, "eval", &ds, &err);
        TP_CHECK(st == TP_EIO && strstr(err.msg, "dev.tsv") != NULL);
        st = f.vt->load(f.state, "test", &ds, &err);
        TP_CHECK(st == TP_EINVAL && strstr(err.msg, "train or eval") != NULL);
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        TP_CHECK(info.n_labels == 2 && strcmp(info.labels[0], "negative") == 0 &&
                 strcmp(info.labels[1], "positive") == 0);
        TP_CHECK(
            strcmp(info.sender_template, "Review: {text}\nSentiment (positive or negative):") == 0);
        TP_CHECK(strcmp(info.receiver_primer, "Sentiment:") == 0);
        TP_CHECK(strstr(info.direct_template, "{text}") &&
                 strstr(info.direct_template, "positive or negative"));
        TP_CHECK(strcmp(info.default_scoring, "first_token") == 0 && !info.is_generation);
        TP_CHECK(f.vt->extract == NULL);
    }
    fx_close(&f);
    snprintf(opt, sizeof opt, "dir=%s,prompt=old", dir);
    st = fx_open(&f, opt, NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        TP_CHECK(strcmp(info.sender_template, "Review: {text}\nSentiment:") == 0);
        TP_CHECK(strcmp(info.receiver_primer, "Sentiment:") == 0);
    }
    fx_close(&f);
    /* a missing directory and no directory at all are errors at open */
    st = fx_open(&f, "dir=/nonexistent/sst2", NULL, &err);
    TP_CHECK(st == TP_EIO && strstr(err.msg, "/nonexistent/sst2") != NULL);
    fx_close(&f);
    st = fx_open(&f, "", NULL, &err);
    TP_CHECK(st == TP_EINVAL && strstr(err.msg, "no data directory") != NULL);
    fx_close(&f);
    st = fx_open(&f, "prompt=new", NULL, &err);
    TP_CHECK(st != TP_OK && strstr(err.msg, "prompt") != NULL);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_real_data), TP_CASE(test_malformed), TP_CASE(test_fixture_ok_and_info))
