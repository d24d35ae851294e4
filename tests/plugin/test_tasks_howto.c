/* test_tasks_howto.c — follows docs/HOWTO-add-a-task.md once: writes a small task the way the
 * checklist says (prose header, preamble, options, open/info/load/free_dataset/close, a bad row
 * named by file:line, tp_plugin_init), builds it with the exact `cc` command printed in the
 * HOWTO (pkg-config replaced by -I<source>/harness/include, as the HOWTO says to do before
 * `make install`), then loads it through the registry and uses it. A HOWTO whose command or
 * checklist stops working fails here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_tasks_common.h"

static const char mytask_c[] =
    "/* mytask.c - the HOWTO's task: <dir>/data.txt, one 'yes|no<TAB>text' row per line.\n"
    " * Version history: 1 - first version. */\n"
    "#define TP_PLUGIN\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <telepathy/plugin.h>\n"
    "#include <telepathy/task.h>\n"
    "TP_PLUGIN_DEFINE_API;\n"
    "static const tp_option_spec opts[] = {\n"
    "    {\"dir\", TP_OPT_STRING, \"\", 1, 0, NULL, \"directory with data.txt\"},\n"
    "};\n"
    "typedef struct st { char path[4200]; } st;\n"
    "static tp_status my_open(const tp_options *o, const char *data_dir, void **s, tp_err *e) {\n"
    "    (void)data_dir;\n"
    "    st *x = calloc(1, sizeof *x);\n"
    "    if (!x) return tp_plugin_api_->errf(e, TP_ENOMEM, \"mytask: out of memory\");\n"
    "    snprintf(x->path, sizeof x->path, \"%s/data.txt\", tp_plugin_api_->opt_string(o, "
    "\"dir\"));\n"
    "    *s = x;\n"
    "    return TP_OK;\n"
    "}\n"
    "static const char *labels[2] = {\"no\", \"yes\"};\n"
    "/* -std=c11 has no strdup */\n"
    "static char *my_dup(const char *s) {\n"
    "    char *d = malloc(strlen(s) + 1);\n"
    "    if (d) strcpy(d, s);\n"
    "    return d;\n"
    "}\n"
    "static tp_status my_info(void *s, tp_task_info *out) {\n"
    "    (void)s;\n"
    "    memset(out, 0, sizeof *out);\n"
    "    out->n_labels = 2;\n"
    "    out->labels[0] = labels[0];\n"
    "    out->labels[1] = labels[1];\n"
    "    out->sender_template = \"Text: {text}\\nAnswer (yes or no):\";\n"
    "    out->receiver_primer = \"Answer:\";\n"
    "    out->direct_template = \"Text: {text}\\nAnswer (yes or no):\";\n"
    "    out->default_scoring = \"first_token\";\n"
    "    out->max_new_tokens = 3;\n"
    "    return TP_OK;\n"
    "}\n"
    "static void my_free(void *s, tp_dataset *ds) {\n"
    "    (void)s;\n"
    "    for (int64_t i = 0; i < ds->n; i++) { free(ds->rows[i].text); "
    "free(ds->rows[i].answer); }\n"
    "    free(ds->rows);\n"
    "    ds->rows = NULL;\n"
    "    ds->n = 0;\n"
    "}\n"
    "static tp_status my_load(void *s, const char *split, tp_dataset *ds, tp_err *e) {\n"
    "    st *x = s;\n"
    "    memset(ds, 0, sizeof *ds);\n"
    "    if (!split || (strcmp(split, \"train\") && strcmp(split, \"eval\")))\n"
    "        return tp_plugin_api_->errf(e, TP_EINVAL, \"mytask: split '%s': expected train or "
    "eval\", split ? split : \"\");\n"
    "    snprintf(ds->source, sizeof ds->source, \"%s\", x->path);\n"
    "    FILE *f = fopen(x->path, \"r\");\n"
    "    if (!f) return tp_plugin_api_->errf(e, TP_EIO, \"mytask: cannot open %s\", x->path);\n"
    "    char line[1024];\n"
    "    int64_t ln = 0;\n"
    "    ds->rows = calloc(64, sizeof *ds->rows);\n"
    "    while (fgets(line, sizeof line, f) && ds->n < 64) {\n"
    "        ln++;\n"
    "        line[strcspn(line, \"\\n\")] = 0;\n"
    "        char *tab = strchr(line, '\\t');\n"
    "        int lab = !tab ? -1 : !strncmp(line, \"yes\\t\", 4) ? 1 : !strncmp(line, \"no\\t\", "
    "3) "
    "? 0 : -1;\n"
    "        if (lab < 0) {\n"
    "            fclose(f);\n"
    "            my_free(s, ds);\n"
    "            return tp_plugin_api_->errf(e, TP_EFORMAT, \"mytask: %s:%lld: expected "
    "'yes|no<TAB>text'\", x->path, (long long)ln);\n"
    "        }\n"
    "        tp_example *r = &ds->rows[ds->n];\n"
    "        r->id = ds->n;\n"
    "        r->line = ln;\n"
    "        r->label = lab;\n"
    "        r->text = my_dup(tab + 1);\n"
    "        r->answer = my_dup(labels[lab]);\n"
    "        ds->n++;\n"
    "    }\n"
    "    fclose(f);\n"
    "    return TP_OK;\n"
    "}\n"
    "static void my_close(void *s) { free(s); }\n"
    "static const tp_task_vtable vt = {\n"
    "    .size = sizeof(tp_task_vtable), .open = my_open, .info = my_info, .load = my_load,\n"
    "    .free_dataset = my_free, .extract = NULL, .close = my_close};\n"
    "TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err "
    "*e) {\n"
    "    TP_PLUGIN_BIND(api);\n"
    "    d->abi_version = TP_ABI_VERSION;\n"
    "    d->size = sizeof *d;\n"
    "    d->kind = TP_PLUGIN_TASK;\n"
    "    d->name = \"mytask\";\n"
    "    d->version = \"1\";\n"
    "    d->summary = \"the HOWTO's yes/no task\";\n"
    "    d->options = opts;\n"
    "    d->n_options = 1;\n"
    "    d->vtable = &vt;\n"
    "    d->vtable_size = sizeof vt;\n"
    "    (void)e;\n"
    "    return TP_OK;\n"
    "}\n";

/* The HOWTO's build command: the line starting with "cc -std=c11" and its continuation lines. */
static int howto_cc(const char *src, char *cmd, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/HOWTO-add-a-task.md", src);
    FILE *f = fopen(path, "r");
    TP_CHECKF(f != NULL, "cannot read %s", path);
    if (!f) return 0;
    char line[1024];
    int on = 0;
    cmd[0] = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ') p++;
        if (!on && strncmp(p, "cc -std=c11", 11) != 0) continue;
        on = 1;
        p[strcspn(p, "\n")] = 0;
        size_t n = strlen(p);
        int cont = n && p[n - 1] == '\\';
        if (cont) p[n - 1] = 0;
        strncat(cmd, p, cap - strlen(cmd) - 1);
        strncat(cmd, " ", cap - strlen(cmd) - 1);
        if (!cont) break;
    }
    fclose(f);
    TP_CHECKF(on, "%s has no 'cc -std=c11 ...' build command", path);
    return on;
}

static void test_howto(void) {
    const char *src = getenv("TP_SOURCE_DIR");
    if (!src) {
        TP_CHECKF(0, "TP_SOURCE_DIR is not set (ctest sets it)");
        return;
    }
    if (system("command -v cc > /dev/null 2>&1") != 0) {
        printf("SKIP no C compiler named cc on PATH\n");
        return;
    }
    char cmd[2048];
    if (!howto_cc(src, cmd, sizeof cmd)) return;
    /* before `make install`: the pkg-config part becomes -I<source>/harness/include */
    const char *pc = "$(pkg-config --cflags telepathy)";
    char *at = strstr(cmd, pc);
    TP_CHECKF(at != NULL, "the HOWTO command '%s' lacks '%s'", cmd, pc);
    if (!at) return;
    char built[4096];
    snprintf(built, sizeof built, "%.*s-I%s/harness/include%s", (int)(at - cmd), cmd, src,
             at + strlen(pc));
    char dir[4096];
    tfx_dir(dir, sizeof dir, "howto");
    char path[4300];
    snprintf(path, sizeof path, "%s/mytask.c", dir);
    tfx_write(path, mytask_c);
    snprintf(path, sizeof path, "%s/data.txt", dir);
    tfx_write(path, "yes\tthe sky is blue\nno\tfish can fly\nyes\twater is wet\n");
    char sh[8600];
    snprintf(sh, sizeof sh, "cd '%s' && %s", dir, built);
    int rc = system(sh);
    TP_CHECKF(rc == 0, "the HOWTO build command failed (rc %d): %s", rc, sh);
    if (rc != 0) return;
    tp_registry *reg = NULL;
    tp_err err = {0};
    const tp_plugin *p = NULL;
    snprintf(path, sizeof path, "%s/mytask.so", dir);
    tp_status st = tp_registry_new(&reg, &err);
    if (st == TP_OK) st = tp_registry_load(reg, path, &err);
    if (st == TP_OK) st = tp_registry_find(reg, TP_PLUGIN_TASK, "mytask", &p, &err);
    TP_CHECKF(st == TP_OK, "loading %s: %s", path, err.msg);
    if (st == TP_OK) {
        const tp_task_vtable *vt = p->desc.vtable;
        tp_options *o = NULL;
        char opt[4400];
        snprintf(opt, sizeof opt, "dir=%s", dir);
        void *state = NULL;
        st = tp_options_new("task", "mytask", p->desc.options, p->desc.n_options, &o, &err);
        if (st == TP_OK) st = tp_options_set_list(o, opt, &err);
        if (st == TP_OK) st = vt->open(o, NULL, &state, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            tp_dataset ds;
            st = vt->load(state, "eval", &ds, &err);
            TP_CHECKF(st == TP_OK, "%s", err.msg);
            if (st == TP_OK) {
                TP_CHECK(ds.n == 3 && ds.rows[1].label == 0 && ds.rows[2].line == 3 &&
                         !strcmp(ds.rows[0].text, "the sky is blue"));
                vt->free_dataset(state, &ds);
            }
            tp_task_info info;
            TP_CHECK(vt->info(state, &info) == TP_OK && info.n_labels == 2 &&
                     !strcmp(info.labels[1], "yes"));
            /* a bad row is an error naming file:line */
            snprintf(path, sizeof path, "%s/data.txt", dir);
            tfx_write(path, "yes\tok\nmaybe\tbad\n");
            st = vt->load(state, "eval", &ds, &err);
            TP_CHECK(st == TP_EFORMAT && strstr(err.msg, "data.txt:2:"));
            vt->close(state);
        }
        tp_options_free(o);
    }
    tp_registry_free(reg);
}

TP_TEST_RUN(TP_CASE(test_howto))
