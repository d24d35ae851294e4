/* host_api.c — the tp_host_api instance every plugin receives: the tensor core's table plus
 * logging, option accessors, error formatting and parameter registration. Append only, in the
 * order of telepathy/plugin.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plugin/loader.h"
#include "plugin/options.h"
#include "util/log.h"

static void host_log(tp_log_level level, const char *plugin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tp_vlog(level, plugin, fmt, ap);
    va_end(ap);
}

static tp_tensor *host_param_add(tp_params *ps, const char *name, int ndim, const int64_t *shape,
                                 tp_err *err) {
    if (!ps || !name || !*name) {
        tp_errf(err, TP_EINVAL, "param_add: %s", !ps ? "params is NULL" : "empty parameter name");
        return NULL;
    }
    if (ps->n >= TP_MAX_PARAMS) {
        tp_errf(err, TP_ERANGE, "param_add('%s'): more than %d parameters in one plugin instance",
                name, TP_MAX_PARAMS);
        return NULL;
    }
    /* names key the checkpoint, so a repeat would silently overwrite one tensor with another */
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i] && !strcmp(ps->p[i]->name, name)) {
            tp_errf(err, TP_EINVAL, "param_add('%s'): a parameter of that name already exists",
                    name);
            return NULL;
        }
    if (strlen(name) >= sizeof ps->p[0]->name) {
        tp_errf(err, TP_EINVAL, "param_add('%s'): name longer than %zu characters", name,
                sizeof ps->p[0]->name - 1);
        return NULL;
    }
    tp_tensor *t = tp_param_alloc(name, ndim, shape, err);
    if (!t) return NULL;
    ps->p[ps->n++] = t;
    return t;
}

const tp_host_api *tp_host_api_table(void) {
    static tp_host_api api;
    if (!api.size) {
        api.abi_version = TP_ABI_VERSION;
        api.t = tp_tensor_api_table();
        api.log = host_log;
        api.opt_int = tp_options_int;
        api.opt_float = tp_options_float;
        api.opt_bool = tp_options_bool;
        api.opt_string = tp_options_string;
        api.errf = tp_errf;
        api.param_add = host_param_add;
        api.size = sizeof api; /* last: marks the table complete */
    }
    return &api;
}
