/* test_tasks_common.h — loading a task plugin .so by name for the tests/plugin/test_tasks_*.c
 * programs (each its own executable, hence static functions in a header): open with an option
 * list and a data dir, load a split, write fixture files, and check that a malformed file fails
 * with TP_EFORMAT naming file:line. */
#ifndef TP_TEST_TASKS_COMMON_H
#define TP_TEST_TASKS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/loader.h"
#include "plugin/options.h"
#include "telepathy/task.h"
#include "tp_test.h"

typedef struct tfx {
    tp_registry *reg;
    const tp_plugin *plugin;
    const tp_task_vtable *vt;
    tp_options *opts;
    void *state;
} tfx;

/* Loads tasks/<name>.so and opens it; TP_EPLUGIN if the plugin itself could not be loaded. */
static inline tp_status tfx_open(tfx *f, const char *name, const char *opts, const char *data_dir,
                                 tp_err *err) {
    memset(f, 0, sizeof *f);
    const char *dir = getenv("TELEPATHY_PLUGIN_PATH");
    if (!dir) {
        TP_CHECKF(0, "TELEPATHY_PLUGIN_PATH is not set (ctest sets it)");
        return TP_EPLUGIN;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tasks/%s.so", dir, name);
    if (tp_registry_new(&f->reg, err) != TP_OK || tp_registry_load(f->reg, path, err) != TP_OK ||
        tp_registry_find(f->reg, TP_PLUGIN_TASK, name, &f->plugin, err) != TP_OK) {
        TP_CHECKF(0, "loading %s: %s", path, err->msg);
        return TP_EPLUGIN;
    }
    f->vt = f->plugin->desc.vtable;
    const tp_plugin_desc *d = &f->plugin->desc;
    TP_TRY(tp_options_new("task", name, d->options, d->n_options, &f->opts, err));
    if (opts && *opts) TP_TRY(tp_options_set_list(f->opts, opts, err));
    return f->vt->open(f->opts, data_dir, &f->state, err);
}

static inline void tfx_close(tfx *f) {
    if (f->state) f->vt->close(f->state);
    tp_options_free(f->opts);
    tp_registry_free(f->reg);
    memset(f, 0, sizeof *f);
}

static inline void tfx_write(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    TP_CHECKF(fp != NULL, "cannot write %s", path);
    if (!fp) return;
    fputs(text, fp);
    fclose(fp);
}

/* A fresh fixture directory <tmp>/<name>; returns its path (static buffer per call site). */
static inline void tfx_dir(char *dir, size_t cap, const char *name) {
    snprintf(dir, cap, "%s/%s", tp_test_tmpdir(), name);
    mkdir(dir, 0755);
}

/* Class counts of ds into cnt[0..C). */
static inline void tfx_counts(const tp_dataset *ds, int C, int64_t *cnt) {
    for (int c = 0; c < C; c++) cnt[c] = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->rows[i].label >= 0 && ds->rows[i].label < C) cnt[ds->rows[i].label]++;
}

/* Writes `file` = text into a fresh dir <case>, opens task with "dir=<dir>" + extra options,
 * loads split and expects TP_EFORMAT whose message names <dir>/<file><where> and contains what. */
static inline void tfx_expect_bad(const char *task, const char *cname, const char *extra_files[][2],
                                  const char *file, const char *text, const char *split,
                                  const char *extra_opts, const char *where, const char *what) {
    char dir[4096];
    tfx_dir(dir, sizeof dir, cname);
    char path[4300];
    for (int i = 0; extra_files && extra_files[i][0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, extra_files[i][0]);
        tfx_write(path, extra_files[i][1]);
    }
    snprintf(path, sizeof path, "%s/%s", dir, file);
    tfx_write(path, text);
    char opt[4400];
    snprintf(opt, sizeof opt, "dir=%s%s%s", dir, extra_opts && *extra_opts ? "," : "",
             extra_opts ? extra_opts : "");
    tfx f;
    tp_err err = {0};
    tp_status st = tfx_open(&f, task, opt, NULL, &err);
    if (st == TP_OK) {
        tp_dataset ds;
        st = f.vt->load(f.state, split, &ds, &err);
        if (st == TP_OK) f.vt->free_dataset(f.state, &ds);
    }
    tfx_close(&f);
    TP_CHECKF(st == TP_EFORMAT, "%s/%s: status %d (%s)", task, cname, (int)st, err.msg);
    char loc[4400];
    snprintf(loc, sizeof loc, "%s%s", path, where);
    TP_CHECKF(strstr(err.msg, loc) != NULL, "%s/%s: message '%s' does not name '%s'", task, cname,
              err.msg, loc);
    TP_CHECKF(strstr(err.msg, what) != NULL, "%s/%s: message '%s' lacks '%s'", task, cname, err.msg,
              what);
}

#endif
