/* test_learn.c — end-to-end learning through the ops, tape and AdamW: a 2-16-2 tanh MLP learns
 * XOR (cross-entropy < 0.05, all four right), and linear regression recovers its weights to
 * 1e-2 (MSE loss, noise-free data). */
#include <math.h>

#include "telepathy/optim.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

static void test_xor(void) {
    tp_err e = {0};
    tp_tensor *w1 = tp_param_alloc("w1", TP_DIMS(16, 2), &e),
              *b1 = tp_param_alloc("b1", TP_DIMS(16), &e);
    tp_tensor *w2 = tp_param_alloc("w2", TP_DIMS(2, 16), &e),
              *b2 = tp_param_alloc("b2", TP_DIMS(2), &e);
    tp_rng r = {2024, 0, 0};
    tp_fill_normal(w1, 0, 1.0f, &r);
    tp_fill_normal(w2, 0, 0.5f, &r);
    tp_tensor *ps[4] = {w1, b1, w2, b2};
    tp_adamw_cfg cfg = tp_adamw_defaults();
    cfg.weight_decay = 0;
    tp_adamw *o = tp_adamw_new(ps, 4, &cfg, &e);
    const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    const int32_t Y[4] = {0, 1, 1, 0};
    tp_ctx *c = tp_ctx_new(TP_CPU);
    double loss = 1e9;
    for (int step = 0; step < 400; step++) {
        tp_ctx_reset(c);
        tp_adamw_zero_grad(o);
        tp_tensor *x = tp_from_f32(c, TP_DIMS(4, 2), X);
        tp_tensor *h = tp_tanh(c, tp_linear(c, x, w1, b1));
        tp_tensor *l =
            tp_cross_entropy(c, tp_linear(c, h, w2, b2), tp_from_i32(c, TP_DIMS(4), Y), -100, 0);
        TP_CHECK(tp_backward(c, l, NULL) == TP_OK);
        loss = tp_item(l, 0);
        TP_CHECK(tp_adamw_step(o, 0.05f, &e) == TP_OK);
    }
    tp_ctx_reset(c);
    tp_set_grad_enabled(c, 0);
    tp_tensor *logits =
        tp_linear(c, tp_tanh(c, tp_linear(c, tp_from_f32(c, TP_DIMS(4, 2), X), w1, b1)), w2, b2);
    int right = 0;
    for (int i = 0; i < 4; i++)
        right += (tp_item(logits, i * 2 + 1) > tp_item(logits, i * 2)) == Y[i];
    fprintf(stderr, "  xor: final loss %.4g, %d/4 right\n", loss, right);
    TP_CHECK(loss < 0.05);
    TP_CHECK(right == 4);
    tp_ctx_free(c);
    tp_adamw_free(o);
    for (int i = 0; i < 4; i++) tp_tensor_free(ps[i]);
}

static void test_linear_regression(void) {
    tp_err e = {0};
    const float wt[3] = {1.5f, -2.0f, 0.25f}, bt = 0.7f;
    float X[64 * 3], Y[64];
    tp_rng r = {5, 5, 0};
    for (int i = 0; i < 64; i++) {
        Y[i] = bt;
        for (int k = 0; k < 3; k++) {
            X[i * 3 + k] = tp_rng_normal(&r);
            Y[i] += wt[k] * X[i * 3 + k];
        }
    }
    tp_tensor *w = tp_param_alloc("w", TP_DIMS(1, 3), &e), *b = tp_param_alloc("b", TP_DIMS(1), &e);
    tp_tensor *ps[2] = {w, b};
    tp_adamw_cfg cfg = tp_adamw_defaults();
    cfg.weight_decay = 0;
    tp_adamw *o = tp_adamw_new(ps, 2, &cfg, &e);
    tp_lr_schedule s = {TP_LR_WARMUP_COSINE, 0.1, 0.001, 20, 800};
    tp_ctx *c = tp_ctx_new(TP_CPU);
    double loss = 0;
    for (int step = 0; step < 800; step++) {
        tp_ctx_reset(c);
        tp_adamw_zero_grad(o);
        tp_tensor *pred = tp_linear(c, tp_from_f32(c, TP_DIMS(64, 3), X), w, b);
        tp_tensor *l = tp_mse(c, pred, tp_from_f32(c, TP_DIMS(64, 1), Y));
        TP_CHECK(tp_backward(c, l, NULL) == TP_OK);
        loss = tp_item(l, 0);
        tp_adamw_step(o, (float)tp_lr_at(&s, step), &e);
    }
    fprintf(stderr, "  regression: final mse %.3g, w = (%.4f, %.4f, %.4f), b = %.4f\n", loss,
            tp_item(w, 0), tp_item(w, 1), tp_item(w, 2), tp_item(b, 0));
    for (int k = 0; k < 3; k++) TP_CHECK_NEAR(tp_item(w, k), wt[k], 1e-2);
    TP_CHECK_NEAR(tp_item(b, 0), bt, 1e-2);
    tp_ctx_free(c);
    tp_adamw_free(o);
    tp_tensor_free(w);
    tp_tensor_free(b);
}

TP_TEST_RUN(TP_CASE(test_xor), TP_CASE(test_linear_regression))
