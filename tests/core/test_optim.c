/* test_optim.c — AdamW against hand-computed steps (PyTorch formula written out in double),
 * global-norm clipping, the warmup+cosine schedule, and state export/import (what a checkpoint
 * round trip does). */
#include <math.h>
#include <string.h>

#include "telepathy/optim.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

static tp_tensor *param2(float a, float b) {
    tp_err e = {0};
    tp_tensor *p = tp_param_alloc("w", TP_DIMS(2), &e);
    ((float *)p->data)[0] = a;
    ((float *)p->data)[1] = b;
    return p;
}
static void set_grad(tp_tensor *p, float a, float b) {
    ((float *)p->grad->data)[0] = a;
    ((float *)p->grad->data)[1] = b;
}

static void test_adamw_first_step(void) {
    /* step 1 moves by lr * sign(g) after decay: 1 -> 1*(1-0.1*0.01) - 0.1 = 0.899 */
    tp_tensor *p = param2(1.0f, -2.0f);
    tp_err e = {0};
    tp_adamw_cfg cfg = tp_adamw_defaults();
    tp_adamw *o = tp_adamw_new(&p, 1, &cfg, &e);
    set_grad(p, 0.5f, 0.1f);
    TP_CHECK(tp_adamw_step(o, 0.1f, &e) == TP_OK);
    TP_CHECK_NEAR(tp_item(p, 0), 0.899, 1e-6);
    TP_CHECK_NEAR(tp_item(p, 1), -2.098, 1e-6);
    TP_CHECK(tp_adamw_steps(o) == 1);
    tp_adamw_free(o);
    tp_tensor_free(p);
}

static void test_adamw_vs_reference(void) {
    const double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
    const float gs[4][2] = {{0.3f, -1.2f}, {-0.7f, 0.4f}, {0.05f, 0.05f}, {2.0f, -0.01f}};
    tp_tensor *p = param2(0.5f, 1.5f);
    tp_err e = {0};
    tp_adamw_cfg cfg = {(float)b1, (float)b2, (float)eps, (float)wd};
    tp_adamw *o = tp_adamw_new(&p, 1, &cfg, &e);
    double w[2] = {0.5, 1.5}, m[2] = {0}, v[2] = {0};
    for (int t = 1; t <= 4; t++) {
        set_grad(p, gs[t - 1][0], gs[t - 1][1]);
        TP_CHECK(tp_adamw_step(o, (float)lr, &e) == TP_OK);
        for (int k = 0; k < 2; k++) {
            double g = gs[t - 1][k];
            w[k] -= lr * wd * w[k];
            m[k] = b1 * m[k] + (1 - b1) * g;
            v[k] = b2 * v[k] + (1 - b2) * g * g;
            double mh = m[k] / (1 - pow(b1, t)), vh = v[k] / (1 - pow(b2, t));
            w[k] -= lr * mh / (sqrt(vh) + eps);
            TP_CHECK_NEAR(tp_item(p, k), w[k], 2e-6);
        }
    }
    tp_adamw_free(o);
    tp_tensor_free(p);
}

/* A param with weight decay 0 (its own group) moves by exactly lr on step 1; others decay. */
static void test_per_param_decay(void) {
    tp_tensor *p = param2(1.0f, 1.0f), *q = param2(1.0f, 1.0f);
    tp_tensor *ps[2] = {p, q};
    tp_err e = {0};
    tp_adamw_cfg cfg = tp_adamw_defaults();
    cfg.weight_decay = 0.5f;
    tp_adamw *o = tp_adamw_new(ps, 2, &cfg, &e);
    TP_CHECK(tp_adamw_set_weight_decay(o, 1, 0.0f, &e) == TP_OK);
    TP_CHECK(tp_adamw_set_weight_decay(o, 2, 0.0f, &e) == TP_ERANGE);
    set_grad(p, 1, 1);
    set_grad(q, 1, 1);
    tp_adamw_step(o, 0.1f, &e);
    TP_CHECK_NEAR(tp_item(p, 0), 1.0 * (1 - 0.05) - 0.1, 1e-6);
    TP_CHECK_NEAR(tp_item(q, 0), 0.9, 1e-6);
    tp_adamw_free(o);
    tp_tensor_free(p);
    tp_tensor_free(q);
}

static void test_adamw_rejects_nan(void) {
    tp_tensor *p = param2(1.0f, 1.0f);
    tp_err e = {0};
    tp_adamw *o = tp_adamw_new(&p, 1, NULL, &e);
    set_grad(p, NAN, 0.0f);
    TP_CHECK(tp_adamw_step(o, 0.1f, &e) == TP_ERANGE);
    TP_CHECK(strstr(e.msg, "'w'") != NULL);
    TP_CHECK(tp_item(p, 1) == 1.0 && tp_adamw_steps(o) == 0);
    tp_adamw_free(o);
    tp_tensor_free(p);
    /* non-param refused with a message */
    tp_tensor *t = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(2), &e);
    TP_CHECK(tp_adamw_new(&t, 1, NULL, &e) == NULL && strstr(e.msg, "tp_param_alloc"));
    tp_tensor_free(t);
}

static void test_clip(void) {
    tp_tensor *p = param2(0, 0), *q = param2(0, 0);
    tp_tensor *ps[2] = {p, q};
    set_grad(p, 3, 0);
    set_grad(q, 0, 4);
    TP_CHECK_NEAR(tp_clip_grad_norm(ps, 2, 10.0), 5.0, 1e-9);
    TP_CHECK(tp_item(p->grad, 0) == 3.0); /* under the limit: untouched */
    TP_CHECK_NEAR(tp_clip_grad_norm(ps, 2, 1.0), 5.0, 1e-9);
    TP_CHECK_NEAR(tp_item(p->grad, 0), 3.0 / (5 + 1e-6), 1e-6);
    TP_CHECK_NEAR(tp_item(q->grad, 1), 4.0 / (5 + 1e-6), 1e-6);
    TP_CHECK_NEAR(tp_clip_grad_norm(ps, 2, 0), 1.0, 1e-5); /* 0 = measure only */
    tp_tensor_free(p);
    tp_tensor_free(q);
}

static void test_schedule(void) {
    tp_lr_schedule s = {TP_LR_WARMUP_COSINE, 1.0, 0.1, 10, 110};
    tp_err e = {0};
    TP_CHECK(tp_lr_check(&s, &e) == TP_OK);
    TP_CHECK_NEAR(tp_lr_at(&s, 0), 0.0, 1e-12);
    TP_CHECK_NEAR(tp_lr_at(&s, 5), 0.5, 1e-12);
    TP_CHECK_NEAR(tp_lr_at(&s, 10), 1.0, 1e-12);
    TP_CHECK_NEAR(tp_lr_at(&s, 60), 0.55, 1e-12);
    TP_CHECK_NEAR(tp_lr_at(&s, 35), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI * 0.25)), 1e-12);
    TP_CHECK_NEAR(tp_lr_at(&s, 110), 0.1, 1e-12);
    TP_CHECK_NEAR(tp_lr_at(&s, 500), 0.1, 1e-12);
    tp_lr_schedule c = {TP_LR_CONSTANT, 3e-4, 0, 0, 0};
    TP_CHECK(tp_lr_at(&c, 12345) == 3e-4);
    tp_lr_schedule bad = {TP_LR_WARMUP_COSINE, 1.0, 2.0, 10, 5};
    TP_CHECK(tp_lr_check(&bad, &e) == TP_EINVAL && strstr(e.msg, "min_lr"));
}

/* Exporting the state after 3 steps and importing it into a fresh optimiser gives the same
 * 4th step as continuing. */
static void test_state_round_trip(void) {
    tp_tensor *p = param2(0.3f, -0.6f), *p2 = param2(0, 0);
    tp_err e = {0};
    tp_adamw *a = tp_adamw_new(&p, 1, NULL, &e);
    for (int t = 0; t < 3; t++) {
        set_grad(p, 0.1f * (float)(t + 1), -0.2f);
        tp_adamw_step(a, 0.05f, &e);
    }
    tp_tensor **sa, **sb;
    int na = tp_adamw_state(a, &sa);
    TP_CHECK(na == 3 && !strcmp(sa[0]->name, "w.exp_avg") && !strcmp(sa[1]->name, "w.exp_avg_sq") &&
             !strcmp(sa[2]->name, "step") && tp_item(sa[2], 0) == 3.0);
    tp_copy_into(p2, p, &e);
    tp_adamw *b = tp_adamw_new(&p2, 1, NULL, &e);
    int nb = tp_adamw_state(b, &sb);
    TP_CHECK(nb == na);
    for (int i = 0; i < nb; i++) tp_copy_into(sb[i], sa[i], &e); /* what checkpoint load does */
    set_grad(p, 0.7f, 0.3f);
    set_grad(p2, 0.7f, 0.3f);
    tp_adamw_step(a, 0.05f, &e);
    tp_adamw_step(b, 0.05f, &e);
    TP_CHECK(tp_adamw_steps(b) == 4);
    TP_CHECK(tp_item(p, 0) == tp_item(p2, 0) && tp_item(p, 1) == tp_item(p2, 1));
    tp_adamw_free(a);
    tp_adamw_free(b);
    tp_tensor_free(p);
    tp_tensor_free(p2);
}

static void test_ema(void) {
    tp_tensor *p = param2(1.0f, 2.0f), *e = param2(0.0f, 0.0f);
    tp_err err = {0};
    TP_CHECK(tp_ema_update(&e, &p, 1, 0.9f, &err) == TP_OK);
    TP_CHECK_NEAR(tp_item(e, 0), 0.1, 1e-7);
    TP_CHECK(tp_ema_update(&e, &p, 1, 0.9f, &err) == TP_OK);
    TP_CHECK_NEAR(tp_item(e, 1), 0.9 * 0.2 + 0.2, 1e-6);
    TP_CHECK(tp_ema_update(&e, &p, 1, 1.5f, &err) == TP_EINVAL);
    tp_tensor *q = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(3), &err);
    TP_CHECK(tp_ema_update(&q, &p, 1, 0.5f, &err) == TP_ESHAPE && strstr(err.msg, "'w'"));
    tp_tensor_free(q);
    tp_tensor_free(p);
    tp_tensor_free(e);
}

/* tp_adamw_step_clipped == tp_clip_grad_norm + tp_adamw_step, bit for bit, with the clip active
 * on some steps and not others, over two params; the grads are left unscaled; NaN is refused */
static void test_step_clipped(void) {
    const float gs[3][4] = {
        {3.0f, -4.0f, 1.0f, 0.5f}, {0.01f, 0.02f, -0.03f, 0.0f}, {-7.0f, 2.0f, 0.25f, 9.0f}};
    tp_tensor *a[2] = {param2(0.5f, -1.0f), param2(2.0f, 0.25f)};
    tp_tensor *b[2] = {param2(0.5f, -1.0f), param2(2.0f, 0.25f)};
    tp_err e = {0};
    tp_adamw_cfg cfg = tp_adamw_defaults();
    tp_adamw *oa = tp_adamw_new(a, 2, &cfg, &e), *ob = tp_adamw_new(b, 2, &cfg, &e);
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < 2; i++) {
            set_grad(a[i], gs[t][2 * i], gs[t][2 * i + 1]);
            set_grad(b[i], gs[t][2 * i], gs[t][2 * i + 1]);
        }
        double na = tp_clip_grad_norm(a, 2, 1.0), nb = 0;
        TP_CHECK(tp_adamw_step(oa, 0.05f, &e) == TP_OK);
        TP_CHECK(tp_adamw_step_clipped(ob, 0.05f, 1.0, &nb, &e) == TP_OK);
        TP_CHECKF(na == nb, "step %d: norm %.9g vs %.9g", t, na, nb);
        for (int i = 0; i < 2; i++) {
            TP_CHECK(memcmp(a[i]->data, b[i]->data, 2 * sizeof(float)) == 0);
            TP_CHECK(tp_item(b[i]->grad, 0) == gs[t][2 * i]); /* unscaled */
        }
    }
    set_grad(b[1], NAN, 0.0f);
    double nn = 0;
    TP_CHECK(tp_adamw_step_clipped(ob, 0.05f, 1.0, &nn, &e) == TP_ERANGE);
    TP_CHECK(strstr(e.msg, "not finite") != NULL);
    tp_adamw_free(oa);
    tp_adamw_free(ob);
    for (int i = 0; i < 2; i++) {
        tp_tensor_free(a[i]);
        tp_tensor_free(b[i]);
    }
}

TP_TEST_RUN(TP_CASE(test_step_clipped), TP_CASE(test_ema), TP_CASE(test_per_param_decay),
            TP_CASE(test_adamw_first_step), TP_CASE(test_adamw_vs_reference),
            TP_CASE(test_adamw_rejects_nan), TP_CASE(test_clip), TP_CASE(test_schedule),
            TP_CASE(test_state_round_trip))
