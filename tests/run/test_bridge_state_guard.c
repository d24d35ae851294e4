/* test_bridge_state_guard.c — a bridge that declares hidden state (state_size > 0, bridge.h
 * ABI 1.2) without save_state / load_state could never put it in a checkpoint: the trainer
 * refuses it at creation with a message naming the bridge, before any training. The fixture
 * bridge is written into the tmp dir and built with `cc`, like the loader tests' fixtures. */
#include "run/trainer.h"
#include "run_fixture.h"

static const char bridge_c[] =
    "#define TP_PLUGIN\n"
    "#include <telepathy/bridge.h>\n"
    "TP_PLUGIN_DEFINE_API;\n"
    "static tp_status b_create(const tp_options *o, const tp_bridge_dims *d, tp_params *p,\n"
    "                          void **s, tp_err *e) { (void)o; (void)d; (void)p; (void)e;\n"
    "    static int dummy; *s = &dummy; return TP_OK; }\n"
    "static tp_status b_forward(void *s, tp_ctx *c, tp_tensor *h, tp_tensor *m, int t,\n"
    "                           tp_bridge_out *out, tp_err *e) { (void)s; (void)c; (void)h;\n"
    "    (void)m; (void)t; (void)out; (void)e; return TP_EINVAL; }\n"
    "static int b_tokens(void *s) { (void)s; return 2; }\n"
    "static void b_destroy(void *s) { (void)s; }\n"
    "static size_t b_state_size(void *s) { (void)s; return 8; }\n"
    "static const tp_bridge_vtable vt = {.size = sizeof(tp_bridge_vtable), .create = b_create,\n"
    "    .forward = b_forward, .num_tokens = b_tokens, .destroy = b_destroy,\n"
    "    .state_size = b_state_size};\n"
    "TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d,\n"
    "                                          tp_err *e) {\n"
    "    (void)e; TP_PLUGIN_BIND(api);\n"
    "    d->abi_version = TP_ABI_VERSION; d->size = sizeof *d; d->kind = TP_PLUGIN_BRIDGE;\n"
    "    d->name = \"state_no_io\"; d->version = \"1\"; d->summary = \"guard fixture\";\n"
    "    d->vtable = &vt; d->vtable_size = sizeof vt; return TP_OK;\n"
    "}\n";

static void test_state_without_io_refused(void) {
    const char *root = getenv("TP_SOURCE_DIR");
    if (!root) root = TP_SOURCE_DIR;
    char c_path[700], so[700], cmd[4096];
    snprintf(c_path, sizeof c_path, "%s/state_no_io.c", tp_test_tmpdir());
    snprintf(so, sizeof so, "%s/state_no_io.so", tp_test_tmpdir());
    FILE *f = fopen(c_path, "w");
    TP_CHECK(f != NULL);
    if (!f) return;
    fputs(bridge_c, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -I'%s/harness/include' -o '%s' "
             "'%s' -Wl,--no-undefined",
             root, so, c_path);
    TP_CHECKF(system(cmd) == 0, "fixture build failed: %s", cmd);
    fx x;
    if (!fx_open(&x, "")) return;
    tp_err err = {0};
    TP_CHECKF(tp_registry_load(x.reg, so, &err) == TP_OK, "%s", err.msg);
    json_t *spec = fx_bridge_spec(4, 1);
    json_object_set_new(spec, "bridge", json_string("state_no_io"));
    json_object_set_new(spec, "bridge_options", json_object());
    tp_run_cfg cfg;
    tp_status st = tp_run_cfg_resolve(x.runner, spec, &cfg, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_trainer *t = NULL;
        st = tp_trainer_new(&t, &cfg, &err);
        TP_CHECKF(st == TP_EPLUGIN && strstr(err.msg, "bridge 'state_no_io'") &&
                      strstr(err.msg, "lacks save_state or load_state"),
                  "%d %s", (int)st, err.msg);
        tp_trainer_free(t);
    }
    tp_run_cfg_free(&cfg);
    json_decref(spec);
    fx_close(&x);
}

TP_TEST_RUN(TP_CASE(test_state_without_io_refused))
