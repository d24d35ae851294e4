/* test_options.c — plugin option schemas and values: defaults filled in, types and ranges
 * enforced, enum choices with "did you mean", word choices for floats, JSON and k=v input,
 * canonical JSON output (stable across input order), schema validation errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/options.h"
#include "tp_test.h"

static const tp_option_spec SPEC[] = {
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens"},
    {"lr", TP_OPT_FLOAT, "0.001", 0, 1, NULL, "learning rate"},
    {"alpha_init", TP_OPT_FLOAT, "calibrated", 1, 0, "calibrated", "output scale or a word"},
    {"tied", TP_OPT_BOOL, "false", 0, 0, NULL, "tie the weights"},
    {"init", TP_OPT_ENUM, "normal", 0, 0, "normal|uniform|zeros", "init scheme"},
    {"note", TP_OPT_STRING, "", 0, 0, NULL, "free text"},
};
#define NSPEC 6

static tp_options *make(void) {
    tp_options *o = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_options_new("bridge", "perceiver", SPEC, NSPEC, &o, &err) == TP_OK, "%s", err.msg);
    return o;
}

static void defaults(void) {
    tp_options *o = make();
    if (!o) return;
    TP_CHECK(tp_options_int(o, "tokens") == 16);
    TP_CHECK_NEAR(tp_options_float(o, "lr"), 0.001, 1e-15);
    TP_CHECK(isnan(tp_options_float(o, "alpha_init")));
    TP_CHECK(!strcmp(tp_options_string(o, "alpha_init"), "calibrated"));
    TP_CHECK(tp_options_bool(o, "tied") == 0);
    TP_CHECK(!strcmp(tp_options_string(o, "init"), "normal"));
    TP_CHECK(!strcmp(tp_options_string(o, "note"), ""));
    TP_CHECK(!tp_options_is_set(o, "tokens"));
    /* an accessor with an undeclared name is a plugin bug: zero, not a crash */
    TP_CHECK(tp_options_int(o, "nope") == 0);
    TP_CHECK(tp_options_string(o, "nope") == NULL);
    tp_options_free(o);
}

static void set_and_validate(void) {
    tp_options *o = make();
    if (!o) return;
    tp_err err = {0};
    TP_CHECK(tp_options_set(o, "tokens", "64", &err) == TP_OK && tp_options_int(o, "tokens") == 64);
    TP_CHECK(tp_options_is_set(o, "tokens"));
    TP_CHECK(tp_options_set(o, "tokens", "0", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "out of range [1, 4096]"), "%s", err.msg);
    TP_CHECK(tp_options_set(o, "tokens", "12x", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "expected an integer, got '12x'"), "%s", err.msg);
    TP_CHECK(tp_options_int(o, "tokens") == 64); /* a failed set changes nothing */
    TP_CHECK(tp_options_set(o, "lr", "2", &err) == TP_EINVAL);
    TP_CHECK(tp_options_set(o, "lr", "nan", &err) == TP_EINVAL);
    TP_CHECK(tp_options_set(o, "lr", "1e-4", &err) == TP_OK);
    TP_CHECK_NEAR(tp_options_float(o, "lr"), 1e-4, 1e-18);
    TP_CHECK(tp_options_set(o, "alpha_init", "0.5", &err) == TP_OK); /* unbounded float */
    TP_CHECK_NEAR(tp_options_float(o, "alpha_init"), 0.5, 0);
    TP_CHECK(tp_options_set(o, "alpha_init", "calibrate", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "or one of calibrated"), "%s", err.msg);
    TP_CHECK(tp_options_set(o, "tied", "yes", &err) == TP_OK && tp_options_bool(o, "tied") == 1);
    TP_CHECK(!strcmp(tp_options_string(o, "tied"), "true"));
    TP_CHECK(tp_options_set(o, "tied", "maybe", &err) == TP_EINVAL);
    TP_CHECK(tp_options_set(o, "init", "unifrom", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "not one of normal|uniform|zeros; did you mean 'uniform'?"), "%s",
              err.msg);
    TP_CHECK(tp_options_set(o, "tokns", "8", &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "unknown option 'tokns' for bridge 'perceiver'; did you mean "
                              "'tokens'?"),
              "%s", err.msg);
    TP_CHECK(tp_options_set(o, "completely_else", "8", &err) == TP_EINVAL);
    TP_CHECKF(!strstr(err.msg, "did you mean") && strstr(err.msg, "options: tokens, lr"), "%s",
              err.msg);
    tp_options_free(o);
}

static void json_input_and_output(void) {
    tp_options *a = make(), *b = make();
    if (!a || !b) return;
    tp_err err = {0};
    json_error_t je;
    json_t *in =
        json_loads("{\"tokens\": 32.0, \"tied\": true, \"lr\": 0.01, \"init\": \"zeros\"}", 0, &je);
    TP_CHECKF(tp_options_set_object(a, in, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_options_int(a, "tokens") == 32);
    TP_CHECK(tp_options_set_list(b, "init=zeros, lr=0.01,tied=true,tokens=32", &err) == TP_OK);
    char *ca = NULL, *cb = NULL;
    TP_CHECK(tp_options_canon(a, &ca, &err) == TP_OK);
    TP_CHECK(tp_options_canon(b, &cb, &err) == TP_OK);
    TP_CHECKF(ca && cb && !strcmp(ca, cb), "%s vs %s", ca, cb);
    TP_CHECKF(ca && !strcmp(ca, "{\"alpha_init\":\"calibrated\",\"init\":\"zeros\",\"lr\":0.01,"
                                "\"note\":\"\",\"tied\":true,\"tokens\":32}"),
              "%s", ca);
    free(ca);
    free(cb);
    json_decref(in);
    /* wrong JSON types */
    json_t *bad = json_loads("{\"tokens\": 2.5}", 0, &je);
    TP_CHECK(tp_options_set_object(a, bad, &err) == TP_EINVAL);
    json_decref(bad);
    bad = json_loads("{\"tied\": 1}", 0, &je);
    TP_CHECK(tp_options_set_object(a, bad, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "expected true or false"), "%s", err.msg);
    json_decref(bad);
    bad = json_loads("{\"init\": 3}", 0, &je);
    TP_CHECK(tp_options_set_object(a, bad, &err) == TP_EINVAL);
    json_decref(bad);
    bad = json_loads("{\"note\": [1]}", 0, &je);
    TP_CHECK(tp_options_set_object(a, bad, &err) == TP_EINVAL);
    json_decref(bad);
    TP_CHECK(tp_options_set_list(b, "tokens", &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "expected name=value") != NULL);
    tp_options_free(a);
    tp_options_free(b);
}

static void schema_errors(void) {
    tp_err err = {0};
    tp_option_spec s[2];
    memset(s, 0, sizeof s);
    s[0] = (tp_option_spec){"depth", TP_OPT_INT, "2", 1, 8, NULL, "layers"};
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_OK);
    s[0].def = "9";
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_EPLUGIN);
    TP_CHECKF(strstr(err.msg, "bridge 'x'") && strstr(err.msg, "out of range"), "%s", err.msg);
    s[0].def = NULL;
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "no default") != NULL);
    s[0] = (tp_option_spec){"mode", TP_OPT_ENUM, "a", 0, 0, "a||b", "m"};
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "empty choice") != NULL);
    s[0] = (tp_option_spec){"mode", TP_OPT_ENUM, "c", 0, 0, "a|b", "m"};
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_EPLUGIN);
    s[0] = (tp_option_spec){"mode", (tp_opt_type)9, "c", 0, 0, NULL, "m"};
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "unknown type 9") != NULL);
    s[0] = (tp_option_spec){"mode", TP_OPT_INT, "1", 0, 2, NULL, ""};
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 1, &err) == TP_EPLUGIN);
    TP_CHECK(strstr(err.msg, "doc") != NULL);
    s[0] = (tp_option_spec){"a", TP_OPT_INT, "1", 0, 2, NULL, "d"};
    s[1] = (tp_option_spec){"a", TP_OPT_INT, "1", 0, 2, NULL, "d"};
    TP_CHECK(tp_option_schema_validate("bridge 'x'", s, 2, &err) == TP_EPLUGIN);
    TP_CHECK(tp_option_schema_validate("bridge 'x'", NULL, 2, &err) == TP_EPLUGIN);
    TP_CHECK(tp_option_schema_validate("bridge 'x'", NULL, 0, &err) == TP_OK);
    tp_options *o = NULL;
    TP_CHECK(tp_options_new("bridge", "x", s, 2, &o, &err) == TP_EPLUGIN && o == NULL);
}

TP_TEST_RUN(TP_CASE(defaults), TP_CASE(set_and_validate), TP_CASE(json_input_and_output),
            TP_CASE(schema_errors))
