/* plugin.h — the plugin ABI: what a bridge, task or loss .so exports and what the host hands it.
 *
 * A plugin is one C file compiled with -DTP_PLUGIN into a .so that links against nothing of the
 * host (SQLite's loadable-extension pattern): it exports one symbol, TP_PLUGIN_ENTRY, which the
 * loader calls with the host's function table; the plugin keeps the table and fills a
 * descriptor. The loader checks the descriptor's abi_version and size before reading anything
 * else, then validates name, kind, version, option schema and vtable, and only then registers.
 * Both tables are append-only: new members go at the end and bump TP_ABI_MINOR, never MAJOR.
 * Minors: 1.1 appended the bridge flags / calibration / target hooks and tp_bridge_dims
 * .n_classes; 1.2 the task's text-relay templates (task.h) and the bridge's checkpointed hidden
 * state (bridge.h). Each header marks its appended members "appended in ABI 1.x".
 *
 * Minimal plugin:
 *     #define TP_PLUGIN
 *     #include <telepathy/plugin.h>
 *     TP_PLUGIN_DEFINE_API;
 *     static const tp_option_spec opts[] = {{"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "M"}};
 *     TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d,
 *                                               tp_err *err) {
 *         TP_PLUGIN_BIND(api);
 *         d->kind = TP_PLUGIN_BRIDGE; d->name = "mine"; ... return TP_OK;
 *     }
 */
#ifndef TELEPATHY_PLUGIN_H
#define TELEPATHY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"
#include "telepathy/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_ABI_MAJOR     1 /* incompatible change: loader refuses a different major */
#define TP_ABI_MINOR     2 /* appended members: a plugin built for minor m runs on host minor >= m */
#define TP_ABI_VERSION   ((TP_ABI_MAJOR << 16) | TP_ABI_MINOR)
#define TP_PLUGIN_ENTRY  "tp_plugin_init"
#define TP_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef enum tp_plugin_kind {
    TP_PLUGIN_BRIDGE = 1,
    TP_PLUGIN_TASK = 2,
    TP_PLUGIN_LOSS = 3,
} tp_plugin_kind;

typedef enum tp_opt_type {
    TP_OPT_INT = 1,
    TP_OPT_FLOAT = 2,
    TP_OPT_BOOL = 3,
    TP_OPT_STRING = 4,
    TP_OPT_ENUM = 5, /* one of choices "a|b|c" */
} tp_opt_type;

/* One option a plugin accepts. def is the default as text (parsed with the type's rules);
 * min/max bound INT and FLOAT (min > max means unbounded); choices only for ENUM. A FLOAT option
 * may also accept words listed in choices (e.g. alpha_init = "calibrated" | number). */
typedef struct tp_option_spec {
    const char *name; /* [a-z][a-z0-9_]* */
    tp_opt_type type;
    const char *def;
    double min, max;
    const char *choices;
    const char *doc; /* one line */
} tp_option_spec;

/* Validated option values, resolved against the schema (defaults filled in). Opaque. */
typedef struct tp_options tp_options;

/* A plugin's trainable parameters, as plain data the host reads for the optimiser and
 * checkpoints. Names are unique within a plugin instance. */
#define TP_MAX_PARAMS 256
typedef struct tp_params {
    int n;
    tp_tensor *p[TP_MAX_PARAMS];
} tp_params;

typedef enum tp_log_level {
    TP_LOG_DEBUG = 0,
    TP_LOG_INFO = 1,
    TP_LOG_WARN = 2,
    TP_LOG_ERROR = 3
} tp_log_level;

/* The host's function table. Append only. */
typedef struct tp_host_api {
    uint32_t abi_version;
    uint32_t size; /* sizeof(tp_host_api) in the host */
    const tp_tensor_api *t;
    void (*log)(tp_log_level level, const char *plugin, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    int64_t (*opt_int)(const tp_options *o, const char *name);
    double (*opt_float)(const tp_options *o, const char *name); /* NAN if a word was given */
    int (*opt_bool)(const tp_options *o, const char *name);
    const char *(*opt_string)(const tp_options *o, const char *name); /* raw text, any type */
    tp_status (*errf)(tp_err *err, tp_status code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* parameter registration: allocates an f32 param with grad and appends it to ps */
    tp_tensor *(*param_add)(tp_params *ps, const char *name, int ndim, const int64_t *shape,
                            tp_err *err);
} tp_host_api;

/* What the plugin fills in. abi_version and size are set by the plugin (TP_ABI_VERSION,
 * sizeof(tp_plugin_desc)) and checked first. */
typedef struct tp_plugin_desc {
    uint32_t abi_version;
    uint32_t size;
    tp_plugin_kind kind;
    const char *name;    /* [a-z][a-z0-9_]*, unique across the loaded set */
    const char *version; /* bumped on any change of behaviour; stored with every run */
    const char *summary; /* one line for `telepathy plugins` */
    const tp_option_spec *options;
    int n_options;
    const void *vtable; /* tp_bridge_vtable / tp_task_vtable / tp_loss_vtable */
    uint32_t vtable_size;
} tp_plugin_desc;

typedef tp_status (*tp_plugin_init_fn)(const tp_host_api *api, tp_plugin_desc *desc, tp_err *err);

#ifdef TP_PLUGIN
/* In a plugin, tp_<op>(...) calls go through the host's table. */
extern const tp_host_api *tp_plugin_api_;
#define TP_PLUGIN_DEFINE_API const tp_host_api *tp_plugin_api_ = 0
#define TP_PLUGIN_BIND(api)  (tp_plugin_api_ = (api))
#define TP_X_WRAP(ret, name, params, args)                                                         \
    static inline ret tp_##name params {                                                           \
        return tp_plugin_api_->t->name args;                                                       \
    }
TP_TENSOR_API(TP_X_WRAP)
#undef TP_X_WRAP
#endif

#ifdef __cplusplus
}
#endif
#endif
