/* test_loader.c — plugin ABI and loader: fixture plugins (tests/plugin/fixtures/, one .c each) are
 * compiled at test time with `cc -shared -fPIC`, then loaded: a good plugin registers; each
 * broken one (ABI version, struct size, missing entry point, duplicate name, bad option schema,
 * bad vtable, failing init, unresolved symbol) is refused with a clear message and no crash;
 * options given to a loaded plugin are validated ("did you mean"). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/loader.h"
#include "plugin/options.h"
#include "telepathy/task.h"
#include "tp_test.h"
#include "util/fsutil.h"
#include "util/sha256.h"

static char so_dir[600];
static int built;

/* Compiles fixtures/<src>.c (with extra flags) into <so_dir>/<sub>/<out>.so. */
static int build(const char *src, const char *extra, const char *sub, const char *out) {
    const char *root = getenv("TP_SOURCE_DIR");
    if (!root) root = TP_SOURCE_DIR;
    char dir[800], cmd[4096];
    snprintf(dir, sizeof dir, "%s/%s", so_dir, sub);
    tp_err err;
    if (tp_mkdir_p(dir, &err) != TP_OK) fprintf(stderr, "%s\n", err.msg);
    snprintf(cmd, sizeof cmd,
             "cc -shared -fPIC %s -I'%s/harness/include' -o '%s/%s.so' "
             "'%s/tests/plugin/fixtures/%s.c'",
             extra, root, dir, out, root, src);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "fixture build failed: %s\n", cmd);
    return rc == 0;
}

static void build_all(void) {
    if (built) return;
    built = 1;
    snprintf(so_dir, sizeof so_dir, "%s/fixtures", tp_test_tmpdir());
    mkdir(so_dir, 0755);
    TP_CHECK(build("good", "", "good", "good"));
    TP_CHECK(build("good", "", "scan/tasks", "good"));
    TP_CHECK(build("dup", "", "dup", "dup"));
    TP_CHECK(build("bad_abi", "-DCASE=1", "bad", "bad_abi"));
    TP_CHECK(build("bad_abi", "-DCASE=2", "bad", "bad_abi_minor"));
    TP_CHECK(build("bad_size", "", "bad", "bad_size"));
    TP_CHECK(build("no_entry", "", "bad", "no_entry"));
    TP_CHECK(build("init_fails", "", "bad", "init_fails"));
    TP_CHECK(build("undefined_sym", "", "bad", "undefined_sym"));
    char flag[32], name[64];
    for (int c = 1; c <= 5; c++) {
        snprintf(flag, sizeof flag, "-DCASE=%d", c);
        snprintf(name, sizeof name, "bad_schema%d", c);
        TP_CHECK(build("bad_schema", flag, "bad", name));
    }
    for (int c = 1; c <= 6; c++) {
        snprintf(flag, sizeof flag, "-DCASE=%d", c);
        snprintf(name, sizeof name, "bad_vtable%d", c);
        TP_CHECK(build("bad_vtable", flag, "bad", name));
    }
}

static void path_of(char *out, size_t cap, const char *sub, const char *name) {
    snprintf(out, cap, "%s/%s/%s.so", so_dir, sub, name);
}

static void good_plugin_loads(void) {
    build_all();
    tp_registry *r;
    tp_err err = {0};
    TP_CHECK(tp_registry_new(&r, &err) == TP_OK);
    char p[1024];
    path_of(p, sizeof p, "good", "good");
    TP_CHECKF(tp_registry_load(r, p, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_registry_count(r) == 1);
    const tp_plugin *pl = NULL;
    TP_CHECK(tp_registry_find(r, TP_PLUGIN_TASK, "fixture_good", &pl, &err) == TP_OK);
    if (pl) {
        TP_CHECK(!strcmp(pl->desc.version, "1"));
        TP_CHECK(pl->desc.n_options == 3);
        TP_CHECK(!strcmp(pl->path, p));
        char hex[TP_SHA256_HEX];
        TP_CHECK(tp_sha256_file_hex(p, hex, &err) == TP_OK);
        TP_CHECK(!strcmp(hex, pl->sha256));
        const tp_task_vtable *vt = pl->desc.vtable;
        void *st = (void *)1;
        TP_CHECK(vt->open(NULL, NULL, &st, &err) == TP_OK && st == NULL);
    }
    /* lookups that miss */
    TP_CHECK(tp_registry_find(r, TP_PLUGIN_TASK, "fixture_goo", &pl, &err) == TP_EPLUGIN);
    TP_CHECKF(strstr(err.msg, "did you mean 'fixture_good'") && strstr(err.msg, "available"), "%s",
              err.msg);
    TP_CHECK(tp_registry_find(r, TP_PLUGIN_BRIDGE, "perceiver", &pl, &err) == TP_EPLUGIN);
    TP_CHECKF(strstr(err.msg, "no bridge plugins"), "%s", err.msg);
    /* loading the same file again is a no-op, not a duplicate */
    TP_CHECK(tp_registry_load(r, p, &err) == TP_OK && tp_registry_count(r) == 1);
    tp_registry_free(r);
}

/* Loads the fixture and expects refusal with all substrings in the message. */
static void expect_refused(const char *sub, const char *name, const char *s1, const char *s2) {
    tp_registry *r;
    tp_err err = {0};
    tp_registry_new(&r, &err);
    char p[1024];
    path_of(p, sizeof p, sub, name);
    tp_status st = tp_registry_load(r, p, &err);
    TP_CHECKF(st == TP_EPLUGIN, "%s: status %d", name, (int)st);
    TP_CHECKF(strstr(err.msg, p) != NULL, "%s: message does not name the file: %s", name, err.msg);
    TP_CHECKF(!s1 || strstr(err.msg, s1), "%s: missing '%s' in: %s", name, s1, err.msg);
    TP_CHECKF(!s2 || strstr(err.msg, s2), "%s: missing '%s' in: %s", name, s2, err.msg);
    TP_CHECK(tp_registry_count(r) == 0);
    tp_registry_free(r);
}

static void bad_plugins_refused(void) {
    build_all();
    expect_refused("bad", "bad_abi", "ABI version 2.0", "tp_plugin_init");
    char minor_up[32]; /* the fixture claims the host's minor + 1 */
    snprintf(minor_up, sizeof minor_up, "ABI version %d.%d", TP_ABI_MAJOR, TP_ABI_MINOR + 1);
    expect_refused("bad", "bad_abi_minor", minor_up, "minor <= host");
    expect_refused("bad", "bad_size", "descriptor size", NULL);
    expect_refused("bad", "no_entry", "symbol 'tp_plugin_init' not found", "dlerror");
    expect_refused("bad", "init_fails", "missing resource", "tp_plugin_init");
    expect_refused("bad", "undefined_sym", "dlopen failed", "tp_fixture_symbol_nobody_defines");
    expect_refused("bad", "bad_schema1", "option 'tokens'", "out of range");
    expect_refused("bad", "bad_schema2", "declared twice", NULL);
    expect_refused("bad", "bad_schema3", "enum without choices", NULL);
    expect_refused("bad", "bad_schema4", "bad name 'Tokens'", NULL);
    expect_refused("bad", "bad_schema5", "expected a number", NULL);
    expect_refused("bad", "bad_vtable1", "'load' is NULL", NULL);
    expect_refused("bad", "bad_vtable2", "vtable_size 8", NULL);
    expect_refused("bad", "bad_vtable3", "vtable is NULL", NULL);
    expect_refused("bad", "bad_vtable4", "unknown plugin kind 7", NULL);
    expect_refused("bad", "bad_vtable5", "bad task name 'Bad-Name'", NULL);
    expect_refused("bad", "bad_vtable6", "empty version", NULL);
    expect_refused("bad", "missing_file", "No such file", NULL);
}

static void duplicate_refused(void) {
    build_all();
    tp_registry *r;
    tp_err err = {0};
    tp_registry_new(&r, &err);
    char good[1024], dup[1024];
    path_of(good, sizeof good, "good", "good");
    path_of(dup, sizeof dup, "dup", "dup");
    TP_CHECK(tp_registry_load(r, good, &err) == TP_OK);
    TP_CHECK(tp_registry_load(r, dup, &err) == TP_EPLUGIN);
    TP_CHECKF(strstr(err.msg, "duplicate task 'fixture_good'") && strstr(err.msg, good) &&
                  strstr(err.msg, dup),
              "%s", err.msg);
    TP_CHECK(tp_registry_count(r) == 1);
    tp_registry_free(r);
}

static void scan_path(void) {
    build_all();
    tp_registry *r;
    tp_err err = {0};
    tp_registry_new(&r, &err);
    char list[2400];
    /* the scan dir holds good.so one level down (tasks/); listing it twice loads it once */
    snprintf(list, sizeof list, "%s/scan:%s/scan", so_dir, so_dir);
    TP_CHECKF(tp_registry_scan(r, list, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_registry_count(r) == 1);
    /* the same plugin from another file is a duplicate */
    snprintf(list, sizeof list, "%s/dup", so_dir);
    TP_CHECK(tp_registry_scan(r, list, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "duplicate") != NULL);
    tp_registry_free(r);
    tp_registry_new(&r, &err);
    snprintf(list, sizeof list, "%s/no-such-dir", so_dir);
    TP_CHECK(tp_registry_scan(r, list, &err) == TP_EIO);
    TP_CHECKF(strstr(err.msg, "no-such-dir") && strstr(err.msg, "not a directory"), "%s", err.msg);
    /* a directory of broken plugins stops at the first, naming it */
    snprintf(list, sizeof list, "%s/bad", so_dir);
    TP_CHECK(tp_registry_scan(r, list, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "/bad/bad_abi.so") != NULL);
    tp_registry_free(r);
}

static void unknown_option(void) {
    build_all();
    tp_registry *r;
    tp_err err = {0};
    tp_registry_new(&r, &err);
    char p[1024];
    path_of(p, sizeof p, "good", "good");
    TP_CHECK(tp_registry_load(r, p, &err) == TP_OK);
    const tp_plugin *pl = NULL;
    tp_registry_find(r, TP_PLUGIN_TASK, "fixture_good", &pl, &err);
    if (pl) {
        tp_options *o = NULL;
        TP_CHECK(tp_options_new("task", pl->desc.name, pl->desc.options, pl->desc.n_options, &o,
                                &err) == TP_OK);
        TP_CHECK(tp_options_set(o, "tokns", "8", &err) == TP_EINVAL);
        TP_CHECKF(strstr(err.msg, "unknown option 'tokns' for task 'fixture_good'; did you mean "
                                  "'tokens'?"),
                  "%s", err.msg);
        TP_CHECK(tp_options_set(o, "tokens", "8", &err) == TP_OK);
        /* the host table's accessors read the same values */
        const tp_host_api *api = tp_host_api_table();
        TP_CHECK(api->opt_int(o, "tokens") == 8);
        TP_CHECK(!strcmp(api->opt_string(o, "mode"), "fast"));
        tp_options_free(o);
    }
    tp_registry_free(r);
}

static void host_table(void) {
    const tp_host_api *api = tp_host_api_table();
    TP_CHECK(api->abi_version == TP_ABI_VERSION);
    TP_CHECK(api->size == sizeof(tp_host_api));
    TP_CHECK(api->t && api->log && api->opt_int && api->opt_float && api->opt_bool &&
             api->opt_string && api->errf && api->param_add);
    tp_params ps = {0};
    tp_err err = {0};
    tp_tensor *w = api->param_add(&ps, "w", TP_DIMS(2, 3), &err);
    TP_CHECKF(w != NULL, "%s", err.msg);
    TP_CHECK(ps.n == 1 && ps.p[0] == w);
    TP_CHECK(api->param_add(&ps, "w", TP_DIMS(2), &err) == NULL);
    TP_CHECK(strstr(err.msg, "already exists") != NULL && ps.n == 1);
    if (w) api->t->tensor_free(w);
}

static void desc_validate_direct(void) {
    tp_plugin_desc d = {0};
    tp_err err = {0};
    d.abi_version = (TP_ABI_MAJOR << 16) | (TP_ABI_MINOR + 1);
    TP_CHECK(tp_plugin_desc_validate(&d, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "not compatible") != NULL);
    TP_CHECK(tp_plugin_kind_parse("bridge") == TP_PLUGIN_BRIDGE);
    TP_CHECK(tp_plugin_kind_parse("nope") == 0);
    TP_CHECK(!strcmp(tp_plugin_kind_name(TP_PLUGIN_LOSS), "loss"));
}

TP_TEST_RUN(TP_CASE(good_plugin_loads), TP_CASE(bad_plugins_refused), TP_CASE(duplicate_refused),
            TP_CASE(scan_path), TP_CASE(unknown_option), TP_CASE(host_table),
            TP_CASE(desc_validate_direct))
