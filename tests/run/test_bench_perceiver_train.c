/* test_bench_perceiver_train.c — the bench's Perceiver (run/bench_perceiver.c) trained the way
 * `telepathy bench` train_step trains it, on the CPU at small widths, in both precisions: with
 * train dtype bf16 the params are bf16 (no f32 master), AdamW keeps bf16 moments and the grads
 * are f32; a fixed regression (the soft tokens towards a random target, from fixed sender states)
 * learns in bf16 about as well as in f32 from the same initialisation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "run/bench.h"
#include "telepathy/optim.h"
#include "tp_test.h"

enum { D = 32, M = 4, B = 2, T = 6 };

/* loss after each of `steps` steps into hist (hist[0]: before any update) */
static int train(tp_dtype dt, int steps, double *hist) {
    tp_err e = {0};
    tp_bench_perceiver *p = NULL;
    if (tp_bench_perceiver_new(&p, D, M, 1, 2, 2, TP_CPU, dt, 99, &e) != TP_OK) {
        fprintf(stderr, "perceiver: %s\n", e.msg);
        return 0;
    }
    tp_tensor **ps;
    int np = tp_bench_perceiver_params(p, &ps);
    int ok = tp_bench_perceiver_train_dtype(p) == dt;
    for (int i = 0; i < np; i++)
        ok &= ps[i]->dtype == dt && ps[i]->grad && ps[i]->grad->dtype == TP_F32;
    TP_CHECKF(ok, "params not stored in %s with f32 grads", tp_dtype_name(dt));
    tp_adamw *opt = tp_adamw_new(ps, np, NULL, &e);
    tp_tensor **st;
    int ns = opt ? tp_adamw_state(opt, &st) : 0;
    TP_CHECK(ns == 2 * np + 1 && st[0]->dtype == dt && st[1]->dtype == dt);
    float h[B * T * D], y[B * M * D], mask[B * T];
    tp_rng r = {7, 0, 0};
    for (int k = 0; k < B * T * D; k++) h[k] = tp_rng_normal(&r);
    for (int k = 0; k < B * M * D; k++) y[k] = 0.05f * tp_rng_normal(&r);
    for (int k = 0; k < B * T; k++) mask[k] = k % T < T - 1 || k < T; /* one padded key */
    tp_ctx *c = tp_ctx_new(TP_CPU);
    int done = 0;
    for (int s = 0; opt && s <= steps; s++) {
        tp_ctx_reset(c);
        tp_tensor *ht = tp_from_f32(c, TP_DIMS(B, T, D), h);
        tp_tensor *mt = tp_from_f32(c, TP_DIMS(B, T), mask);
        tp_tensor *out = tp_bench_perceiver_forward(p, c, ht, mt, 1);
        tp_tensor *l = tp_mse(c, out, tp_from_f32(c, TP_DIMS(B, M, D), y));
        if (!l || tp_backward(c, l, NULL) != TP_OK) {
            fprintf(stderr, "train %s: %s\n", tp_dtype_name(dt), tp_ctx_error(c));
            break;
        }
        hist[s] = tp_item(l, 0);
        if (s == steps) {
            done = 1;
            break;
        }
        if (tp_adamw_step_clipped(opt, 3e-3f, 1.0, NULL, &e) != TP_OK) {
            fprintf(stderr, "train %s: %s\n", tp_dtype_name(dt), e.msg);
            break;
        }
        tp_adamw_zero_grad(opt);
    }
    tp_ctx_free(c);
    tp_adamw_free(opt);
    tp_bench_perceiver_free(p);
    return done;
}

static void test_bf16_learns_like_f32(void) {
    enum { S = 60 };
    double f[S + 1], b[S + 1];
    int okf = train(TP_F32, S, f), okb = train(TP_BF16, S, b);
    TP_CHECK(okf && okb);
    if (!okf || !okb) return;
    fprintf(stderr, "mse f32 %.4g -> %.4g, bf16 %.4g -> %.4g\n", f[0], f[S], b[0], b[S]);
    /* the same initialisation up to rounding to bf16 */
    TP_CHECKF(fabs(b[0] - f[0]) < 0.02 * f[0], "initial loss f32 %g bf16 %g", f[0], b[0]);
    TP_CHECKF(f[S] < 0.5 * f[0], "f32 did not learn: %g -> %g", f[0], f[S]);
    TP_CHECKF(b[S] < 0.5 * b[0], "bf16 did not learn: %g -> %g", b[0], b[S]);
    TP_CHECKF(fabs(b[S] - f[S]) < 0.1 * (f[0] - f[S]), "bf16 %g vs f32 %g after %d steps", b[S],
              f[S], S);
}

/* train dtypes other than f32/bf16 are refused */
static void test_bad_dtype(void) {
    tp_err e = {0};
    tp_bench_perceiver *p = NULL;
    TP_CHECK(tp_bench_perceiver_new(&p, D, M, 1, 2, 2, TP_CPU, TP_F16, 1, &e) == TP_EDTYPE);
    TP_CHECK(p == NULL && strstr(e.msg, "f32 or bf16"));
}

TP_TEST_RUN(TP_CASE(test_bf16_learns_like_f32), TP_CASE(test_bad_dtype))
