/* api.c — the host's tensor function table for plugins, generated from TP_TENSOR_API so the
 * table and the declarations can never drift. */
#include "telepathy/tensor.h"

static const tp_tensor_api g_api = {
#define TP_X_INIT(ret, name, params, args) .name = tp_##name,
    TP_TENSOR_API(TP_X_INIT)
#undef TP_X_INIT
};

const tp_tensor_api *tp_tensor_api_table(void) {
    return &g_api;
}
