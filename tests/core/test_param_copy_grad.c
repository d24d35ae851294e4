/* test_param_copy_grad.c — a param used through a copy or dtype cast (the GPU step's f32 master ->
 * bf16 weight) gets its grad summed straight into the param's grad (backend.c tp_node_grad, tape.c
 * skips the copy's backward): the grads must equal the ones of the param used directly, with two
 * consumers of the cast, a direct use beside it, and accumulation over two backward passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "tp_test.h"

static float *host(const tp_tensor *t) {
    float *h = malloc((size_t)tp_numel(t) * sizeof *h);
    tp_err err = {0};
    if (h && tp_to_f32_buffer(t, h, &err) != TP_OK) {
        free(h);
        return NULL;
    }
    return h;
}

static tp_tensor *sum_all(tp_ctx *c, tp_tensor *t) {
    return t ? tp_sum(c, tp_reshape(c, t, TP_DIMS(tp_numel(t))), 0, 0) : NULL;
}

/* loss = sum((x W^T) * r1) + sum((x W^T)^2 * 0.5) [+ sum(x W^T) with W used directly]
 * where W enters as cast(W, dt) (dt = f32: a plain copy); returns W's grad after `passes`
 * backward passes (grads accumulate) */
static float *grad_of(tp_dtype dt, int via_copy, int passes) {
    tp_err err = {0};
    int64_t shw[2] = {3, 4};
    tp_tensor *w = tp_param_alloc("w", 2, shw, &err);
    if (!w) return NULL;
    float *wd = (float *)w->data;
    for (int i = 0; i < 12; i++) wd[i] = 0.125f * (float)(i % 5) - 0.25f; /* exact in bf16 */
    tp_param_zero_grad(w);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float xv[8] = {1, -2, 0.5f, 0.25f, -1, 1.5f, 2, -0.5f}, rv[6] = {1, 2, -1, 0.5f, -2, 3};
    for (int p = 0; p < passes; p++) {
        tp_ctx_reset(c);
        tp_tensor *x = tp_from_f32(c, TP_DIMS(2, 4), xv);
        tp_tensor *wu = w; /* dt f32 with via_copy: f32 -> bf16 -> f32, two copies in a chain */
        if (via_copy) wu = tp_cast(c, w, dt == TP_F32 ? TP_BF16 : dt);
        if (via_copy && dt == TP_F32) wu = tp_cast(c, wu, TP_F32);
        tp_tensor *y1 = tp_linear(c, x, wu, NULL); /* consumer 1 of the copy */
        tp_tensor *y2 = tp_linear(c, x, wu, NULL); /* consumer 2 */
        tp_tensor *y3 = tp_linear(c, x, w, NULL);  /* the param used directly too */
        tp_tensor *l = tp_add(c, sum_all(c, tp_mul(c, y1, tp_from_f32(c, TP_DIMS(2, 3), rv))),
                              tp_add(c, sum_all(c, tp_mul(c, y2, y2)), sum_all(c, y3)));
        if (!l || tp_backward(c, l, NULL) != TP_OK) {
            fprintf(stderr, "grad_of: %s\n", tp_ctx_error(c));
            tp_ctx_free(c);
            tp_tensor_free(w);
            return NULL;
        }
    }
    float *g = host(w->grad);
    tp_ctx_free(c);
    tp_tensor_free(w);
    return g;
}

static void test_cast_grad_matches_direct(void) {
    /* weights and inputs are exact in bf16, and the products are small sums of exact values, so
     * the bf16 cast path must give the direct path's grad to f32 rounding */
    for (int passes = 1; passes <= 2; passes++) {
        float *direct = grad_of(TP_F32, 0, passes), *cast = grad_of(TP_BF16, 1, passes);
        TP_CHECK(direct && cast);
        for (int i = 0; direct && cast && i < 12; i++)
            TP_CHECKF(fabsf(direct[i] - cast[i]) <= 1e-5f * (1.0f + fabsf(direct[i])),
                      "passes %d: grad[%d] %g via the cast, %g direct", passes, i, cast[i],
                      direct[i]);
        free(direct);
        free(cast);
    }
}

static void test_two_casts_chain(void) {
    /* f32 -> bf16 -> f32: only the first copy's input is the param; the second copy's grad is an
     * ordinary buffer, and the sums still reach the param once */
    float *direct = grad_of(TP_F32, 0, 2), *chain = grad_of(TP_F32, 1, 2);
    TP_CHECK(direct && chain);
    for (int i = 0; direct && chain && i < 12; i++)
        TP_CHECKF(fabsf(direct[i] - chain[i]) <= 1e-5f * (1.0f + fabsf(direct[i])),
                  "grad[%d] %g through two casts, %g direct", i, chain[i], direct[i]);
    free(direct);
    free(chain);
}

TP_TEST_RUN(TP_CASE(test_cast_grad_matches_direct), TP_CASE(test_two_casts_chain))
