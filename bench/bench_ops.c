/* bench_ops.c — CPU tensor-core benchmark: our tp_matmul against raw cblas_sgemm at 512^3 (the
 * issue's bar: >= 80% of OpenBLAS's own rate) and a few transformer ops forward (+backward).
 * Median of repeated runs after warm-up (ours and raw sgemm timed alternately, so a shared
 * machine's load hits both alike); prints a Markdown table for BENCHMARKS.md.
 * Usage: bench_ops [reps]  */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telepathy/tensor.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAXR 200
typedef void (*bench_fn)(void *arg);

static double median_time(bench_fn f, void *arg, int reps) {
    double t[MAXR];
    for (int i = 0; i < 3; i++) f(arg); /* warm-up: arena, BLAS threads, caches */
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        f(arg);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp);
    return t[reps / 2];
}

/* Times f and g alternately (same load on a shared machine for both); medians into tf, tg. */
static void median_pair(bench_fn f, void *fa, bench_fn g, void *ga, int reps, double *tf,
                        double *tg) {
    double a[MAXR], b[MAXR];
    for (int i = 0; i < 3; i++) f(fa), g(ga);
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        f(fa);
        double t1 = now();
        g(ga);
        a[i] = t1 - t0;
        b[i] = now() - t1;
    }
    qsort(a, (size_t)reps, sizeof a[0], cmp);
    qsort(b, (size_t)reps, sizeof b[0], cmp);
    *tf = a[reps / 2];
    *tg = b[reps / 2];
}

typedef struct {
    int n;
    float *a, *b, *c;
} raw_arg;
static void raw_sgemm(void *p) {
    raw_arg *r = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r->n, r->n, r->n, 1.0f, r->a, r->n, r->b,
                r->n, 0.0f, r->c, r->n);
}

typedef struct {
    tp_ctx *ctx;
    tp_tensor *a, *b, *c, *d, *e;
    int kind;
    tp_attn_cfg attn;
} op_arg;

static void op_run(void *p) {
    op_arg *o = p;
    tp_ctx *c = o->ctx;
    tp_ctx_reset(c);
    tp_tensor *y = NULL;
    switch (o->kind) {
    case 0:
        y = tp_matmul(c, o->a, o->b, 0, 0);
        break;
    case 1:
        y = tp_matmul(c, o->a, o->b, 0, 1);
        break;
    case 2:
        y = tp_rmsnorm(c, o->a, o->b, 1e-5f);
        break;
    case 3:
        y = tp_softmax(c, o->a);
        break;
    case 4:
        y = tp_attention(c, o->a, o->b, o->c, NULL, &o->attn);
        break;
    case 5: { /* linear forward + backward (weights trainable) */
        y = tp_linear(c, o->a, o->b, NULL);
        if (y && tp_backward(c, tp_sum_all(c, y), NULL) != TP_OK) y = NULL;
        break;
    }
    case 6: {
        y = tp_attention(c, o->a, o->b, o->c, NULL, &o->attn);
        if (y && tp_backward(c, tp_sum_all(c, y), NULL) != TP_OK) y = NULL;
        break;
    }
    }
    if (!y) {
        fprintf(stderr, "bench_ops: op failed: %s\n", tp_ctx_error(c));
        exit(1);
    }
}

static tp_tensor *persistent(tp_rng *r, int ndim, const int64_t *shape, int param) {
    tp_err e = {0};
    tp_tensor *t = param ? tp_param_alloc("w", ndim, shape, &e)
                         : tp_tensor_alloc(TP_F32, TP_CPU, ndim, shape, &e);
    if (!t) {
        fprintf(stderr, "bench_ops: %s\n", e.msg);
        exit(1);
    }
    tp_fill_normal(t, 0, 0.5f, r);
    return t;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (reps < 1 || reps > MAXR) reps = 30;
    tp_rng r = {1, 0, 0};
    const int n = 512;
    raw_arg ra = {n, malloc(sizeof(float) * n * n), malloc(sizeof(float) * n * n),
                  malloc(sizeof(float) * n * n)};
    for (int i = 0; i < n * n; i++) ra.a[i] = tp_rng_normal(&r), ra.b[i] = tp_rng_normal(&r);
    double flop = 2.0 * n * n * n;

    op_arg o = {.ctx = tp_ctx_new(TP_CPU)};
    o.a = tp_tensor_wrap(TP_F32, TP_CPU, TP_DIMS(n, n), ra.a, NULL);
    o.b = tp_tensor_wrap(TP_F32, TP_CPU, TP_DIMS(n, n), ra.b, NULL);
    o.kind = 0;
    double t_raw, t_mm, t_raw2, t_mmt;
    median_pair(raw_sgemm, &ra, op_run, &o, reps, &t_raw, &t_mm);
    o.kind = 1;
    median_pair(raw_sgemm, &ra, op_run, &o, reps, &t_raw2, &t_mmt);

    printf("| op | shape | median ms | GFLOP/s | vs cblas_sgemm |\n|---|---|---|---|---|\n");
    printf("| cblas_sgemm (raw) | 512x512x512 | %.3f | %.1f | 100%% |\n", t_raw * 1e3,
           flop / t_raw * 1e-9);
    printf("| tp_matmul | 512x512x512 | %.3f | %.1f | %.1f%% |\n", t_mm * 1e3, flop / t_mm * 1e-9,
           100.0 * t_raw / t_mm);
    printf("| tp_matmul tb=1 | 512x512x512 | %.3f | %.1f | %.1f%% |\n", t_mmt * 1e3,
           flop / t_mmt * 1e-9, 100.0 * t_raw2 / t_mmt);

    op_arg x = {.ctx = o.ctx};
    x.a = persistent(&r, TP_DIMS(512, 4096), 0);
    x.b = persistent(&r, TP_DIMS(4096), 0);
    x.kind = 2;
    printf("| rmsnorm | [512,4096] | %.3f | | |\n", median_time(op_run, &x, reps) * 1e3);
    x.kind = 3;
    printf("| softmax | [512,4096] | %.3f | | |\n", median_time(op_run, &x, reps) * 1e3);

    op_arg l = {.ctx = o.ctx, .kind = 5};
    l.a = persistent(&r, TP_DIMS(256, 1024), 0);
    l.b = persistent(&r, TP_DIMS(1024, 1024), 1);
    double t_lin = median_time(op_run, &l, reps);
    printf("| linear fwd+bwd | x[256,1024] w[1024,1024] | %.3f | %.1f | |\n", t_lin * 1e3,
           3 * 2.0 * 256 * 1024 * 1024 / t_lin * 1e-9);

    op_arg a = {.ctx = o.ctx, .kind = 4, .attn = {1, 0, 0, 0}};
    a.a = persistent(&r, TP_DIMS(1, 8, 128, 64), 1);
    a.b = persistent(&r, TP_DIMS(1, 2, 128, 64), 1);
    a.c = persistent(&r, TP_DIMS(1, 2, 128, 64), 1);
    tp_set_grad_enabled(o.ctx, 0);
    printf("| attention fwd (causal, GQA 8/2) | q[1,8,128,64] | %.3f | | |\n",
           median_time(op_run, &a, reps) * 1e3);
    tp_set_grad_enabled(o.ctx, 1);
    a.kind = 6;
    printf("| attention fwd+bwd | q[1,8,128,64] | %.3f | | |\n",
           median_time(op_run, &a, reps) * 1e3);
    printf("\nheap allocations by the core: %llu; arena peak %zu bytes\n",
           (unsigned long long)tp_heap_alloc_count(), tp_ctx_peak_bytes(o.ctx));
    tp_ctx_free(o.ctx);
    return 0;
}
