/* test_argmax.c — tp_argmax_rows (core/ops.h), the row argmax greedy decoding takes on the
 * logits' device: the first index of the maximum, NaN never wins (a row of NaN or of -inf gives
 * 0), bf16 and f32 logits, leading dims kept, not taped, and a clear error for ids or an empty
 * last dim. The CUDA kernel is checked against this reference in tests/cuda/test_cuda_ops.c. */
#include <math.h>
#include <string.h>

#include "core/ops.h"
#include "tp_test.h"

static void test_first_max_and_nan(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float v[5 * 4] = {
        1,         3,         3,         2,         /* tie: the first 3 */
        -1,        -5,        -0.5f,     -0.5f,     /* all negative */
        NAN,       1,         NAN,       0,         /* NaN skipped */
        NAN,       NAN,       NAN,       NAN,       /* all NaN: 0 */
        -INFINITY, -INFINITY, -INFINITY, -INFINITY, /* all -inf: 0 */
    };
    tp_tensor *x = tp_from_f32(c, TP_DIMS(5, 1, 4), v);
    tp_tensor *a = tp_argmax_rows(c, x);
    TP_CHECKF(a != NULL, "%s", tp_ctx_error(c));
    if (a) {
        TP_CHECK(a->dtype == TP_I32 && a->ndim == 2 && a->shape[0] == 5 && a->shape[1] == 1);
        const int32_t *o = a->data, want[5] = {1, 2, 1, 0, 0};
        for (int i = 0; i < 5; i++)
            TP_CHECKF(o[i] == want[i], "row %d: %d, want %d", i, o[i], want[i]);
    }
    tp_ctx_free(c);
}

static void test_bf16_and_grad_free(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    enum { R = 3, V = 1000 };
    float v[R * V];
    for (int i = 0; i < R * V; i++) v[i] = (float)((i * 7919) % 997) / 997.0f;
    v[0 * V + 731] = 5.0f;
    v[1 * V + 2] = 5.0f;
    v[2 * V + 999] = 5.0f;
    tp_tensor *x = tp_cast(c, tp_from_f32(c, TP_DIMS(R, V), v), TP_BF16);
    TP_CHECK(x && tp_requires_grad(c, x) == TP_OK);
    tp_tensor *a = tp_argmax_rows(c, x);
    TP_CHECKF(a != NULL, "%s", tp_ctx_error(c));
    if (a) {
        const int32_t *o = a->data;
        TP_CHECK(o[0] == 731 && o[1] == 2 && o[2] == 999);
        TP_CHECK(a->grad == NULL && !(a->flags & TP_FLAG_REQUIRES_GRAD)); /* an index: no tape */
    }
    tp_ctx_free(c);
}

static void test_bad_input(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    int32_t ids[3] = {1, 2, 3};
    TP_CHECK(tp_argmax_rows(c, tp_from_i32(c, TP_DIMS(3), ids)) == NULL);
    TP_CHECKF(strstr(tp_ctx_error(c), "argmax") && strstr(tp_ctx_error(c), "float"), "%s",
              tp_ctx_error(c));
    tp_ctx_free(c);
}

TP_TEST_RUN(TP_CASE(test_first_max_and_nan), TP_CASE(test_bf16_and_grad_free),
            TP_CASE(test_bad_input))
