/* test_badinput.c — bad input gets a sticky ctx error naming the op and the shapes (never a
 * crash): shape mismatch, dtype mismatch, out-of-range ids and targets, bad views, NULL
 * propagation through a chain of ops, and clearing the error. */
#include <string.h>

#include "core/backend.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

#define HAS(s) (strstr(tp_ctx_error(c), (s)) != NULL)

static void test_shape_mismatch(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *a = tp_zeros(c, TP_F32, TP_DIMS(2, 3)), *b = tp_zeros(c, TP_F32, TP_DIMS(4));
    TP_CHECK(tp_add(c, a, b) == NULL);
    TP_CHECK(tp_ctx_status(c) == TP_ESHAPE);
    TP_CHECKF(HAS("'add'") && HAS("[2,3]") && HAS("[4]"), "%s", tp_ctx_error(c));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_matmul(c, a, a, 0, 0) == NULL && HAS("'matmul'") && HAS("[2,3]"));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_reshape(c, a, TP_DIMS(4, 2)) == NULL && HAS("'reshape'") && HAS("[2,3]"));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_slice(c, a, 1, 2, 2) == NULL && tp_ctx_status(c) == TP_ERANGE && HAS("'slice'"));
    tp_ctx_clear_error(c);
    tp_tensor *q = tp_zeros(c, TP_F32, TP_DIMS(1, 3, 2, 4)),
              *k = tp_zeros(c, TP_F32, TP_DIMS(1, 2, 2, 4));
    TP_CHECK(tp_attention(c, q, k, k, NULL, NULL) == NULL && HAS("'attention'") &&
             HAS("[1,3,2,4]"));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_linear(c, a, tp_zeros(c, TP_F32, TP_DIMS(5, 4)), NULL) == NULL && HAS("'linear'"));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_transpose(c, a, 0, 2) == NULL && HAS("'transpose'"));
    tp_ctx_free(c);
}

static void test_dtype_mismatch(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *a = tp_zeros(c, TP_F32, TP_DIMS(2, 3)), *i = tp_zeros(c, TP_I32, TP_DIMS(3, 2));
    TP_CHECK(tp_matmul(c, a, i, 0, 0) == NULL);
    TP_CHECK(tp_ctx_status(c) == TP_EDTYPE);
    TP_CHECKF(HAS("'matmul'") && HAS("[3,2]i32"), "%s", tp_ctx_error(c));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_embedding(c, a, a) == NULL && tp_ctx_status(c) == TP_EDTYPE && HAS("'embedding'"));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_requires_grad(c, i) == TP_EDTYPE);
    tp_ctx_free(c);
}

static void test_out_of_range_ids(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *w = tp_zeros(c, TP_F32, TP_DIMS(10, 4));
    tp_tensor *ids = tp_from_i32(c, TP_DIMS(3), ((int32_t[]){1, 11, 2}));
    TP_CHECK(tp_embedding(c, w, ids) == NULL);
    TP_CHECK(tp_ctx_status(c) == TP_ERANGE);
    TP_CHECKF(HAS("'embedding'") && HAS("id 11") && HAS("[10,4]") && HAS("[3]i32"), "%s",
              tp_ctx_error(c));
    tp_ctx_clear_error(c);
    tp_tensor *neg = tp_from_i32(c, TP_DIMS(1), ((int32_t[]){-1}));
    TP_CHECK(tp_embedding(c, w, neg) == NULL && HAS("id -1"));
    tp_ctx_clear_error(c);
    tp_tensor *tg = tp_from_i32(c, TP_DIMS(2), ((int32_t[]){4, 0}));
    TP_CHECK(tp_cross_entropy(c, tp_zeros(c, TP_F32, TP_DIMS(2, 4)), tg, -100, 0) == NULL);
    TP_CHECKF(HAS("'cross_entropy'") && HAS("target 4") && HAS("[2,4]"), "%s", tp_ctx_error(c));
    tp_ctx_free(c);
}

static void test_null_propagation(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *a = tp_zeros(c, TP_F32, TP_DIMS(2, 3)), *bad = tp_zeros(c, TP_F32, TP_DIMS(7));
    tp_tensor *x = tp_add(c, a, bad);        /* fails: the cause */
    tp_tensor *y = tp_silu(c, x);            /* NULL in, NULL out */
    tp_tensor *z = tp_matmul(c, y, a, 0, 1); /* still NULL */
    TP_CHECK(!x && !y && !z);
    TP_CHECK(HAS("'add'"));          /* the first error is kept */
    TP_CHECK(tp_silu(c, a) == NULL); /* sticky: nothing runs until cleared */
    TP_CHECK(tp_backward(c, NULL, NULL) != TP_OK);
    tp_ctx_clear_error(c);
    TP_CHECK(tp_ctx_status(c) == TP_OK && tp_silu(c, a) != NULL);
    TP_CHECK(tp_add(NULL, a, a) == NULL && tp_ctx_status(NULL) == TP_EINVAL);
    tp_tensor *arr[2] = {a, NULL};
    TP_CHECK(tp_concat(c, arr, 2, 0) == NULL);
    /* rope without a cfg, dropout with p out of range, backward on a non-grad output */
    TP_CHECK(tp_rope(c, a, a, NULL) == NULL && HAS("'rope'"));
    tp_ctx_clear_error(c);
    tp_rng r = {0, 0, 0};
    TP_CHECK(tp_dropout(c, a, 1.5f, &r) == NULL && HAS("'dropout'"));
    tp_ctx_clear_error(c);
    TP_CHECK(tp_backward(c, tp_sum_all(c, a), NULL) == TP_ESTATE && HAS("does not require grad"));
    tp_ctx_clear_error(c);
    tp_rope_cfg cfg;
    TP_CHECK(tp_rope_init(&cfg, 7, 1e4, 0, 0, 0, 0, 0) == TP_EINVAL); /* odd head_dim */
    tp_err e = {0};
    TP_CHECK(tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(-1), &e) == NULL && e.code == TP_ESHAPE);
    tp_ctx_free(c);
}

/* A cuda context without a registered CUDA backend fails ops clearly instead of crashing. */
static void test_no_cuda_backend(void) {
    if (tp_backend_get(TP_CUDA)) {
        fprintf(stderr, "SKIP test_no_cuda_backend: a CUDA backend is registered here\n");
        return;
    }
    tp_ctx *c = tp_ctx_new(TP_CUDA);
    TP_CHECK(tp_zeros(c, TP_F32, TP_DIMS(2)) == NULL);
    TP_CHECK(tp_ctx_status(c) == TP_EUNSUP && HAS("no CUDA backend"));
    tp_ctx_free(c);
    tp_err e = {0};
    TP_CHECK(tp_tensor_alloc(TP_F32, TP_CUDA, TP_DIMS(2), &e) == NULL && e.code == TP_EUNSUP);
}

TP_TEST_RUN(TP_CASE(test_shape_mismatch), TP_CASE(test_dtype_mismatch),
            TP_CASE(test_out_of_range_ids), TP_CASE(test_null_propagation),
            TP_CASE(test_no_cuda_backend))
