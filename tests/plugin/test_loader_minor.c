/* test_loader_minor.c — plugins built for an older ABI minor still load on this host: a bridge
 * whose vtable ends where ABI 1.0 ended (before `flags`), a bridge of ABI 1.1 (ends before the
 * 1.2 state hooks) and a task of ABI 1.1. The loader keeps a zero-extended copy of the vtable,
 * so members past the plugin's vtable_size read as absent (TP_BRIDGE_HAS is false) even when
 * the plugin's own memory holds something there. The fixtures are written into the test's tmp
 * dir and built with `cc -shared -fPIC`, as test_loader.c builds its fixtures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/loader.h"
#include "telepathy/bridge.h"
#include "telepathy/task.h"
#include "tp_test.h"

/* One bridge source; -DMINOR=0|1 picks which prefix of the vtable it declares. The full struct
 * is filled (flags and state_size point at functions returning 999) to prove that the host
 * reads only vtable_size bytes of it. */
static const char bridge_c[] =
    "#define TP_PLUGIN\n"
    "#include <stddef.h>\n"
    "#include <telepathy/bridge.h>\n"
    "TP_PLUGIN_DEFINE_API;\n"
    "static tp_status b_create(const tp_options *o, const tp_bridge_dims *d, tp_params *p,\n"
    "                          void **s, tp_err *e) { (void)o; (void)d; (void)p; (void)e;\n"
    "    *s = 0; return TP_OK; }\n"
    "static tp_status b_forward(void *s, tp_ctx *c, tp_tensor *h, tp_tensor *m, int t,\n"
    "                           tp_bridge_out *out, tp_err *e) { (void)s; (void)c; (void)h;\n"
    "    (void)m; (void)t; (void)out; (void)e; return TP_OK; }\n"
    "static int b_tokens(void *s) { (void)s; return 3; }\n"
    "static void b_destroy(void *s) { (void)s; }\n"
    "static uint32_t b_flags(void *s) { (void)s; return 999; }\n"
    "static size_t b_state_size(void *s) { (void)s; return 999; }\n"
    "static const tp_bridge_vtable vt = {\n"
    "    .size = MINOR == 0 ? offsetof(tp_bridge_vtable, flags)\n"
    "                       : offsetof(tp_bridge_vtable, state_size),\n"
    "    .create = b_create, .forward = b_forward, .num_tokens = b_tokens,\n"
    "    .destroy = b_destroy, .flags = b_flags, .state_size = b_state_size};\n"
    "TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d,\n"
    "                                          tp_err *e) {\n"
    "    (void)e; TP_PLUGIN_BIND(api);\n"
    "    d->abi_version = (TP_ABI_MAJOR << 16) | MINOR;\n"
    "    d->size = sizeof *d; d->kind = TP_PLUGIN_BRIDGE; d->name = NAME; d->version = \"1\";\n"
    "    d->summary = \"old-minor fixture\"; d->options = 0; d->n_options = 0;\n"
    "    d->vtable = &vt; d->vtable_size = vt.size; return TP_OK;\n"
    "}\n";

/* A task of ABI 1.1: its info() clears and fills only the 1.1 part of tp_task_info. */
static const char task_c[] =
    "#define TP_PLUGIN\n"
    "#include <stddef.h>\n"
    "#include <string.h>\n"
    "#include <telepathy/task.h>\n"
    "TP_PLUGIN_DEFINE_API;\n"
    "static tp_status t_open(const tp_options *o, const char *dir, void **s, tp_err *e) {\n"
    "    (void)o; (void)dir; (void)e; *s = 0; return TP_OK; }\n"
    "static tp_status t_info(void *s, tp_task_info *out) { (void)s;\n"
    "    memset(out, 0, offsetof(tp_task_info, relay_sender_template));\n"
    "    out->n_labels = 2; out->labels[0] = \"a\"; out->labels[1] = \"b\";\n"
    "    out->direct_template = \"{text}\"; return TP_OK; }\n"
    "static tp_status t_load(void *s, const char *sp, tp_dataset *o, tp_err *e) {\n"
    "    (void)s; (void)sp; (void)o; (void)e; return TP_OK; }\n"
    "static void t_free(void *s, tp_dataset *d) { (void)s; (void)d; }\n"
    "static void t_close(void *s) { (void)s; }\n"
    "static const tp_task_vtable vt = {sizeof(tp_task_vtable), t_open, t_info, t_load, t_free,\n"
    "                                  0, t_close};\n"
    "TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d,\n"
    "                                          tp_err *e) {\n"
    "    (void)e; TP_PLUGIN_BIND(api);\n"
    "    d->abi_version = (TP_ABI_MAJOR << 16) | 1;\n"
    "    d->size = sizeof *d; d->kind = TP_PLUGIN_TASK; d->name = \"old_task\";\n"
    "    d->version = \"1\"; d->summary = \"old-minor fixture\";\n"
    "    d->vtable = &vt; d->vtable_size = sizeof vt; return TP_OK;\n"
    "}\n";

static int build(const char *src, const char *name, const char *flags, char *so, size_t cap) {
    const char *root = getenv("TP_SOURCE_DIR");
    if (!root) root = TP_SOURCE_DIR;
    char c_path[700], cmd[4096];
    snprintf(c_path, sizeof c_path, "%s/%s.c", tp_test_tmpdir(), name);
    snprintf(so, cap, "%s/%s.so", tp_test_tmpdir(), name);
    FILE *f = fopen(c_path, "w");
    if (!f) return 0;
    fputs(src, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror -shared -fPIC %s -I'%s/harness/include' -o '%s' "
             "'%s' -Wl,--no-undefined",
             flags, root, so, c_path);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "fixture build failed: %s\n", cmd);
    return rc == 0;
}

static const tp_plugin *load(tp_registry *r, const char *so, tp_plugin_kind kind,
                             const char *name) {
    tp_err err = {0};
    TP_CHECKF(tp_registry_load(r, so, &err) == TP_OK, "%s", err.msg);
    const tp_plugin *p = NULL;
    TP_CHECKF(tp_registry_find(r, kind, name, &p, &err) == TP_OK, "%s", err.msg);
    return p;
}

static void old_bridges_load(void) {
    char so0[800], so1[800];
    TP_CHECK(build(bridge_c, "old_bridge0", "-DMINOR=0 -DNAME='\"old_bridge0\"'", so0, sizeof so0));
    TP_CHECK(build(bridge_c, "old_bridge1", "-DMINOR=1 -DNAME='\"old_bridge1\"'", so1, sizeof so1));
    tp_registry *r = NULL;
    tp_err err = {0};
    TP_CHECK(tp_registry_new(&r, &err) == TP_OK);
    const tp_plugin *p0 = load(r, so0, TP_PLUGIN_BRIDGE, "old_bridge0");
    const tp_plugin *p1 = load(r, so1, TP_PLUGIN_BRIDGE, "old_bridge1");
    if (p0) {
        const tp_bridge_vtable *vt = p0->desc.vtable;
        TP_CHECK(vt->num_tokens(NULL) == 3);
        TP_CHECK(!TP_BRIDGE_HAS(vt, flags) && !TP_BRIDGE_HAS(vt, calibrate));
        TP_CHECK(!TP_BRIDGE_HAS(vt, state_size) && !TP_BRIDGE_HAS(vt, load_state));
    }
    if (p1) {
        const tp_bridge_vtable *vt = p1->desc.vtable;
        /* a 1.1 vtable ends before the state hooks: flags is read, state_size is not */
        TP_CHECK(TP_BRIDGE_HAS(vt, flags) && vt->flags(NULL) == 999);
        TP_CHECK(!TP_BRIDGE_HAS(vt, state_size) && !TP_BRIDGE_HAS(vt, save_state));
    }
    tp_registry_free(r);
}

static void old_task_loads(void) {
    char so[800];
    TP_CHECK(build(task_c, "old_task", "", so, sizeof so));
    tp_registry *r = NULL;
    tp_err err = {0};
    TP_CHECK(tp_registry_new(&r, &err) == TP_OK);
    const tp_plugin *p = load(r, so, TP_PLUGIN_TASK, "old_task");
    if (p) {
        const tp_task_vtable *vt = p->desc.vtable;
        /* the host zero-fills the struct before info(); a 1.1 task leaves the 1.2 part alone */
        tp_task_info info;
        memset(&info, 0, sizeof info);
        TP_CHECK(vt->info(NULL, &info) == TP_OK && info.n_labels == 2);
        TP_CHECK(info.relay_sender_template == NULL && info.relay_receiver_template == NULL);
    }
    tp_registry_free(r);
}

TP_TEST_RUN(TP_CASE(old_bridges_load), TP_CASE(old_task_loads))
