/* test_ini.c — telepathy.ini: values and their origins, unknown section/key with file:line and
 * the keys that exist, bad value types, missing file, duplicate keys, precedence (default < file
 * < env < command line), search order (--config, $TELEPATHY_CONFIG, ./telepathy.ini), relative
 * paths, model aliases, long lines and continued plugin paths. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/config.h"
#include "tp_test.h"
#include "util/fsutil.h"

static const char *write_ini(const char *name, const char *text) {
    static char path[8][700];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 700, "%s/%s", tp_test_tmpdir(), name);
    tp_err err;
    TP_CHECK(tp_write_file_atomic(p, text, strlen(text), &err) == TP_OK);
    return p;
}

static tp_status load(const char *text, tp_config **c, tp_err *err) {
    const char *p = write_ini("t.ini", text);
    return tp_config_load(p, c, err);
}

static void good_file(void) {
    unsetenv("TELEPATHY_PLUGIN_PATH");
    tp_config *c = NULL;
    tp_err err = {0};
    TP_CHECKF(load("; comment\n[paths]\nmodels = /m\nresults = out/results.db\n\n[device]\n"
                   "device = cuda\ndtype = bf16\nthreads = 4\n[models]\nsender = llama31_8b\n"
                   "receiver = ./weights/mistral\n[run]\nseed = 7\n",
                   &c, &err) == TP_OK,
              "%s", err.msg);
    if (!c) return;
    TP_CHECK(!strcmp(tp_config_get(c, "device.device"), "cuda"));
    TP_CHECK(tp_config_get_int(c, "device.threads") == 4);
    TP_CHECK(tp_config_get_int(c, "run.seed") == 7);
    TP_CHECK(!strcmp(tp_config_get(c, "paths.models"), "/m"));
    /* relative paths are relative to the file's directory */
    char want[800];
    snprintf(want, sizeof want, "%s/out/results.db", tp_test_tmpdir());
    TP_CHECKF(!strcmp(tp_config_get(c, "paths.results"), want), "%s",
              tp_config_get(c, "paths.results"));
    TP_CHECK(!strcmp(tp_config_get(c, "paths.data"), "data")); /* default, untouched */
    TP_CHECK(tp_config_get(c, "device.nope") == NULL);
    char o[256];
    TP_CHECK(!strcmp(tp_config_origin_str(c, "paths.data", o, sizeof o), "default"));
    snprintf(want, sizeof want, "%s/t.ini:7", tp_test_tmpdir());
    TP_CHECKF(!strcmp(tp_config_origin_str(c, "device.device", o, sizeof o), want), "%s", o);
    /* model aliases: a name resolves under paths.models, a path stays a path */
    char path[1024];
    TP_CHECK(tp_config_resolve_model(c, "sender", path, sizeof path, &err) == TP_OK);
    TP_CHECKF(!strcmp(path, "/m/llama31_8b"), "%s", path);
    TP_CHECK(tp_config_resolve_model(c, "receiver", path, sizeof path, &err) == TP_OK);
    snprintf(want, sizeof want, "%s/./weights/mistral", tp_test_tmpdir());
    TP_CHECKF(!strcmp(path, want), "%s", path);
    TP_CHECK(tp_config_resolve_model(c, "/abs/model", path, sizeof path, &err) == TP_OK);
    TP_CHECK(!strcmp(path, "/abs/model"));
    /* iteration: schema keys first, then aliases sorted */
    int n = tp_config_count(c);
    TP_CHECK(n >= 11);
    TP_CHECK(!strcmp(tp_config_key_at(c, 0), "paths.models"));
    TP_CHECK(!strcmp(tp_config_key_at(c, n - 2), "models.receiver"));
    TP_CHECK(!strcmp(tp_config_key_at(c, n - 1), "models.sender"));
    char *js = tp_config_to_json(c);
    TP_CHECKF(js && strstr(js, "\"device\":{\"device\":\"cuda\",\"dtype\":\"bf16\",\"threads\":4}"),
              "%s", js ? js : "(null)");
    free(js);
    tp_config_free(c);
}

static void expect_error(const char *text, tp_status code, const char *s1, const char *s2) {
    tp_config *c = NULL;
    tp_err err = {0};
    tp_status st = load(text, &c, &err);
    TP_CHECKF(st == code, "status %d for: %s", (int)st, text);
    TP_CHECK(c == NULL);
    TP_CHECKF(strstr(err.msg, "t.ini"), "no file name in: %s", err.msg);
    TP_CHECKF(!s1 || strstr(err.msg, s1), "missing '%s' in: %s", s1, err.msg);
    TP_CHECKF(!s2 || strstr(err.msg, s2), "missing '%s' in: %s", s2, err.msg);
    tp_config_free(c);
}

static void bad_files(void) {
    expect_error("[device]\ndevice = cpu\ndtyp = bf16\n", TP_EINVAL, "t.ini:3: unknown key 'dtyp'",
                 "did you mean 'dtype'?; keys in [device]: device, dtype, threads");
    expect_error("[paths]\nmodels=/m\n[devices]\n", TP_EINVAL, "t.ini:3: unknown section [devices]",
                 "did you mean [device]?");
    expect_error("[bogus]\nx = 1\n", TP_EINVAL, "t.ini:1", "sections: paths, device, models, run");
    expect_error("[device]\nthreads = many\n", TP_EINVAL, "t.ini:2",
                 "expected an integer, got 'many'");
    expect_error("[device]\nthreads = -1\n", TP_EINVAL, "out of range", NULL);
    expect_error("[device]\ndevice = gpu\n", TP_EINVAL, "t.ini:2", "'gpu' is not one of cpu|cuda");
    expect_error("[run]\nseed = 1\nseed = 2\n", TP_EFORMAT, "t.ini:3: duplicate key 'seed'",
                 "line 2");
    expect_error("seed = 1\n", TP_EFORMAT, "t.ini:1", "outside any section");
    expect_error("[run]\nthis line has no equals sign\n", TP_EFORMAT, "t.ini:2", NULL);
    expect_error("[paths\n", TP_EFORMAT, "t.ini:1", "without ']'");
    expect_error("[paths]\nmodels =\n", TP_EINVAL, "t.ini:2", "empty");
}

static void missing_file(void) {
    tp_config *c = NULL;
    tp_err err = {0};
    TP_CHECK(tp_config_load("/nonexistent/telepathy.ini", &c, &err) == TP_EIO && !c);
    TP_CHECKF(strstr(err.msg, "/nonexistent/telepathy.ini") && strstr(err.msg, "cannot open"), "%s",
              err.msg);
    setenv("TELEPATHY_CONFIG", "/nonexistent/env.ini", 1);
    TP_CHECK(tp_config_load(NULL, &c, &err) == TP_EIO && !c);
    TP_CHECKF(strstr(err.msg, "$TELEPATHY_CONFIG") && strstr(err.msg, "/nonexistent/env.ini"), "%s",
              err.msg);
    unsetenv("TELEPATHY_CONFIG");
}

static void precedence(void) {
    tp_config *c = NULL;
    tp_err err = {0};
    char o[256];
    const char *p = write_ini("p.ini", "[paths]\nplugins = /from/file\n[device]\ndtype = bf16\n");
    /* file over default */
    unsetenv("TELEPATHY_PLUGIN_PATH");
    TP_CHECK(tp_config_load(p, &c, &err) == TP_OK);
    TP_CHECK(c && !strcmp(tp_config_get(c, "paths.plugins"), "/from/file"));
    tp_config_free(c);
    /* env over file */
    setenv("TELEPATHY_PLUGIN_PATH", "/from/env:/second", 1);
    TP_CHECK(tp_config_load(p, &c, &err) == TP_OK);
    if (!c) return;
    TP_CHECK(!strcmp(tp_config_get(c, "paths.plugins"), "/from/env:/second"));
    TP_CHECK(!strcmp(tp_config_origin_str(c, "paths.plugins", o, sizeof o),
                     "env TELEPATHY_PLUGIN_PATH"));
    /* command line over env */
    TP_CHECK(tp_config_set(c, "paths.plugins", "/from/cli", TP_ORIGIN_CLI, "--plugin-path", &err) ==
             TP_OK);
    TP_CHECK(!strcmp(tp_config_get(c, "paths.plugins"), "/from/cli"));
    TP_CHECK(!strcmp(tp_config_origin_str(c, "paths.plugins", o, sizeof o),
                     "command line --plugin-path"));
    TP_CHECK(tp_config_set_arg(c, "device.dtype=f32", &err) == TP_OK);
    TP_CHECK(!strcmp(tp_config_get(c, "device.dtype"), "f32"));
    TP_CHECK(!strcmp(tp_config_origin_str(c, "device.dtype", o, sizeof o), "command line --set"));
    /* --set is validated like the file */
    TP_CHECK(tp_config_set_arg(c, "device.dtype=f64", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "not one of f32|bf16"), "%s", err.msg);
    TP_CHECK(tp_config_set_arg(c, "device.dtyp=f32", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "did you mean 'dtype'"), "%s", err.msg);
    TP_CHECK(tp_config_set_arg(c, "dtype=f32", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "section.key") && strstr(err.msg, "device.dtype"), "%s", err.msg);
    TP_CHECK(tp_config_set_arg(c, "novalue", &err) == TP_EINVAL);
    TP_CHECK(tp_config_set_arg(c, "models.tiny=/x/tiny", &err) == TP_OK);
    TP_CHECK(!strcmp(tp_config_get(c, "models.tiny"), "/x/tiny"));
    tp_config_free(c);
    unsetenv("TELEPATHY_PLUGIN_PATH");
}

static void search_order(void) {
    tp_config *c = NULL;
    tp_err err = {0};
    char cwd[1024];
    TP_CHECK(getcwd(cwd, sizeof cwd) != NULL);
    char dir[800];
    snprintf(dir, sizeof dir, "%s/search", tp_test_tmpdir());
    TP_CHECK(tp_mkdir_p(dir, &err) == TP_OK);
    TP_CHECK(chdir(dir) == 0);
    /* no file anywhere: defaults */
    TP_CHECK(tp_config_load(NULL, &c, &err) == TP_OK && c && tp_config_file(c) == NULL);
    tp_config_free(c);
    /* ./telepathy.ini */
    TP_CHECK(tp_write_file_atomic("telepathy.ini", "[run]\nseed = 3\n", 15, &err) == TP_OK);
    TP_CHECK(tp_config_load(NULL, &c, &err) == TP_OK && c);
    if (c) TP_CHECK(tp_config_get_int(c, "run.seed") == 3);
    tp_config_free(c);
    /* $TELEPATHY_CONFIG beats ./telepathy.ini */
    const char *e = write_ini("env.ini", "[run]\nseed = 4\n");
    setenv("TELEPATHY_CONFIG", e, 1);
    TP_CHECK(tp_config_load(NULL, &c, &err) == TP_OK && c);
    if (c) TP_CHECK(tp_config_get_int(c, "run.seed") == 4);
    tp_config_free(c);
    /* --config beats both */
    const char *x = write_ini("explicit.ini", "[run]\nseed = 5\n");
    TP_CHECK(tp_config_load(x, &c, &err) == TP_OK && c);
    if (c) {
        TP_CHECK(tp_config_get_int(c, "run.seed") == 5);
        TP_CHECK(!strcmp(tp_config_file(c), x));
    }
    tp_config_free(c);
    unsetenv("TELEPATHY_CONFIG");
    TP_CHECK(chdir(cwd) == 0);
}

static void long_lines(void) {
    tp_config *c = NULL;
    tp_err err = {0};
    /* a line past inih's buffer is an error, not two half-lines */
    char text[1200];
    int n = snprintf(text, sizeof text, "[paths]\nplugins = ");
    for (int i = 0; i < 30; i++) n += snprintf(text + n, sizeof text - (size_t)n, "/dir/%02d:", i);
    snprintf(text + n, sizeof text - (size_t)n, "/last\n");
    TP_CHECK(load(text, &c, &err) == TP_EFORMAT && !c);
    TP_CHECKF(strstr(err.msg, "t.ini:2: line is") && strstr(err.msg, "continue"), "%s", err.msg);
    /* the plugin path may continue on indented lines; each adds directories */
    TP_CHECK(load("[paths]\nplugins = /a\n    /b:/c\n\t/d\n[run]\n  seed = 9\n", &c, &err) ==
             TP_OK);
    if (c) {
        TP_CHECKF(!strcmp(tp_config_get(c, "paths.plugins"), "/a:/b:/c:/d"), "%s",
                  tp_config_get(c, "paths.plugins"));
        /* an indented first key of a section is just a key */
        TP_CHECK(tp_config_get_int(c, "run.seed") == 9);
        char o[256];
        TP_CHECK(strstr(tp_config_origin_str(c, "paths.plugins", o, sizeof o), "t.ini:2") != NULL);
    }
    tp_config_free(c);
    c = NULL;
    /* any other key continued is ambiguous: an error naming the line */
    TP_CHECK(load("[run]\nseed = 1\n  log_level = warn\n", &c, &err) == TP_EFORMAT && !c);
    TP_CHECKF(strstr(err.msg, "t.ini:3: indented line continues 'run.seed'"), "%s", err.msg);
}

static void alias_cycle(void) {
    tp_config *c = NULL;
    tp_err err = {0};
    TP_CHECK(load("[models]\na = b\nb = a\nc = a\n", &c, &err) == TP_OK);
    if (!c) return;
    char path[512];
    TP_CHECK(tp_config_resolve_model(c, "c", path, sizeof path, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "cycle"), "%s", err.msg);
    tp_config_free(c);
}

TP_TEST_RUN(TP_CASE(good_file), TP_CASE(bad_files), TP_CASE(missing_file), TP_CASE(precedence),
            TP_CASE(search_order), TP_CASE(long_lines), TP_CASE(alias_cycle))
