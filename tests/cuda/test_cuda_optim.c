/* test_cuda_optim.c — pure-bf16 AdamW on the GPU (bf16 params and moments, f32 grads; the
 * k_adamw_bf16x4 kernel and its scalar tail in kernels/cuda_elem.cu) against the CPU reference
 * (core/cpu_optim.c): from the same params, moments and grads, each step's stored params and
 * moments agree within one bf16 ulp (the GPU forms the denominator in f32, the CPU in double, so
 * a value near a rounding boundary may go the other way) and almost all bit for bit, with weight
 * decay and clipping; warmed-up steps make no cudaMalloc; a param whose moments have another
 * dtype is refused by the op. Also prints the update's bandwidth in f32 and bf16 (information for
 * BENCHMARKS.md, not a check). Exits 77 (skipped) when no GPU is usable. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend.h"
#include "telepathy/optim.h"
#include "telepathy/tensor.h"
#include "tp_cuda.h"
#include "tp_test.h"

static uint64_t g_seed;

/* bf16 bits -> an integer that orders like the value (so a difference counts ulps) */
static int32_t ord(uint16_t b) {
    return b & 0x8000u ? -(int32_t)(b & 0x7fffu) : (int32_t)b;
}

/* host copy of a bf16 tensor's raw bits */
static uint16_t *bits_of(const tp_tensor *t) {
    tp_err e = {0};
    uint16_t *b = calloc((size_t)tp_numel(t) + 1, sizeof *b);
    tp_tensor *h = tp_tensor_wrap(TP_BF16, TP_CPU, t->ndim, t->shape, b, &e);
    if (!h || tp_copy_into(h, t, &e) != TP_OK) fprintf(stderr, "bits_of: %s\n", e.msg);
    tp_tensor_free(h);
    return b;
}

/* counts elements of a and b (n bf16) more than one ulp apart, and those not identical */
static void compare(const uint16_t *a, const uint16_t *b, int64_t n, int64_t *far, int64_t *diff) {
    for (int64_t k = 0; k < n; k++) {
        int32_t d = ord(a[k]) - ord(b[k]);
        *diff += d != 0;
        *far += d > 1 || d < -1;
    }
}

static void test_adamw_bf16_vs_cpu(void) {
    tp_err e = {0};
    /* 1003: the x4 kernel on 1000 elements, the scalar tail on 3; 64x64: x4 only */
    int64_t sh[2][2] = {{1003, 1}, {64, 64}};
    tp_tensor *pc[2], *pg[2];
    for (int i = 0; i < 2; i++) {
        pc[i] = tp_param_alloc_on(i ? "b" : "a", TP_CPU, 2, sh[i], &e);
        pg[i] = tp_param_alloc_on(i ? "b" : "a", TP_CUDA, 2, sh[i], &e);
        TP_CHECKF(pc[i] && pg[i], "%s", e.msg);
        if (!pc[i] || !pg[i]) return;
        tp_rng r = {g_seed, 10 + (uint64_t)i, 0};
        tp_fill_normal(pc[i], i ? 1.0f : 0.0f, 0.5f, &r);
        TP_CHECK(tp_param_set_dtype(pc[i], TP_BF16, &e) == TP_OK);
        TP_CHECKF(tp_param_set_dtype(pg[i], TP_BF16, &e) == TP_OK, "%s", e.msg);
        TP_CHECK(tp_copy_into(pg[i], pc[i], &e) == TP_OK);
    }
    tp_adamw_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f};
    tp_adamw *oc = tp_adamw_new(pc, 2, &cfg, &e), *og = tp_adamw_new(pg, 2, &cfg, &e);
    TP_CHECKF(oc && og, "%s", e.msg);
    if (!oc || !og) return;
    tp_adamw_set_weight_decay(oc, 1, 0.0f, &e);
    tp_adamw_set_weight_decay(og, 1, 0.0f, &e);
    tp_tensor **sc, **sg;
    int ns = tp_adamw_state(oc, &sc);
    TP_CHECK(tp_adamw_state(og, &sg) == ns && sg[0]->dtype == TP_BF16 && sg[0]->device == TP_CUDA);
    int64_t far = 0, diff = 0, total = 0, moved = 0;
    uint64_t mallocs = 0;
    for (int t = 0; t < 6; t++) {
        if (t == 2) mallocs = tp_cuda_malloc_count();
        float scale = t % 2 ? 0.02f : 2.0f; /* norms ~2 and ~140: clipped at 1 on even steps */
        for (int i = 0; i < 2; i++) {
            tp_rng r = {g_seed, 100 + (uint64_t)(t * 2 + i), 0};
            tp_fill_normal(pc[i]->grad, 0.0f, scale, &r);
            TP_CHECK(tp_copy_into(pg[i]->grad, pc[i]->grad, &e) == TP_OK);
        }
        uint16_t *before = bits_of(pc[0]);
        double nc = 0, ng = 0;
        TP_CHECKF(tp_adamw_step_clipped(oc, 0.01f, 1.0, &nc, &e) == TP_OK, "%s", e.msg);
        TP_CHECKF(tp_adamw_step_clipped(og, 0.01f, 1.0, &ng, &e) == TP_OK, "%s", e.msg);
        TP_CHECKF(fabs(nc - ng) <= 1e-5 * nc, "step %d: grad norm cpu %.9g gpu %.9g", t, nc, ng);
        for (int i = 0; i < 2; i++) {
            tp_tensor *pair[3][2] = {
                {pc[i], pg[i]}, {sc[2 * i], sg[2 * i]}, {sc[2 * i + 1], sg[2 * i + 1]}};
            for (int q = 0; q < 3; q++) {
                uint16_t *a = bits_of(pair[q][0]), *b = bits_of(pair[q][1]);
                compare(a, b, tp_numel(pc[i]), &far, &diff);
                total += tp_numel(pc[i]);
                free(a);
                free(b);
                /* the next step starts both sides from the CPU's values: each step is compared
                 * on its own, differences do not compound */
                TP_CHECK(tp_copy_into(pair[q][1], pair[q][0], &e) == TP_OK);
            }
        }
        uint16_t *after = bits_of(pc[0]);
        for (int64_t k = 0; k < tp_numel(pc[0]); k++) moved += after[k] != before[k];
        free(before);
        free(after);
    }
    fprintf(stderr,
            "bf16 adamw: %lld of %lld stored values differ from the cpu (%lld by > 1 ulp)\n",
            (long long)diff, (long long)total, (long long)far);
    TP_CHECKF(far == 0, "%lld values more than one bf16 ulp from the cpu", (long long)far);
    TP_CHECKF(diff <= total / 100, "%lld of %lld values differ from the cpu", (long long)diff,
              (long long)total);
    TP_CHECKF(moved > 3 * tp_numel(pc[0]), "params barely moved (%lld)", (long long)moved);
    TP_CHECKF(tp_cuda_malloc_count() == mallocs, "%llu cudaMalloc calls in warmed-up steps",
              (unsigned long long)(tp_cuda_malloc_count() - mallocs));
    tp_adamw_free(oc);
    tp_adamw_free(og);
    for (int i = 0; i < 2; i++) {
        tp_tensor_free(pc[i]);
        tp_tensor_free(pg[i]);
    }
}

/* the op refuses a bf16 param with f32 moments on the GPU, naming the param */
static void test_adamw_mixed_refused(void) {
    tp_err e = {0};
    tp_ctx *g = tp_ctx_new(TP_CUDA);
    int64_t n = 8;
    tp_tensor *w = tp_tensor_alloc(TP_BF16, TP_CUDA, 1, &n, &e);
    tp_tensor *gr = tp_tensor_alloc(TP_F32, TP_CUDA, 1, &n, &e);
    tp_tensor *m = tp_tensor_alloc(TP_F32, TP_CUDA, 1, &n, &e);
    tp_tensor *v = tp_tensor_alloc(TP_BF16, TP_CUDA, 1, &n, &e);
    snprintf(w->name, sizeof w->name, "gw");
    tp_adamw_hp hp = {1.0f, 0.9f, 0.999f, 1e-8f, 0.1, 1.0, 1.0f};
    tp_node nd = {.op = TP_OP_ADAMW, .n_in = 4, .in = {w, gr, m, v}, .aux = &hp};
    TP_CHECK(tp_dispatch_fwd(g, &nd) == TP_EDTYPE);
    TP_CHECKF(strstr(tp_ctx_error(g), "'gw'") && strstr(tp_ctx_error(g), "moments"), "%s",
              tp_ctx_error(g));
    tp_tensor *all[4] = {w, gr, m, v};
    for (int i = 0; i < 4; i++) tp_tensor_free(all[i]);
    tp_ctx_free(g);
}

/* median of 5 timed steps of a 2^26-element param (information only) */
static void adamw_bandwidth(tp_dtype dt) {
    tp_err e = {0};
    int64_t n = (int64_t)1 << 26;
    tp_tensor *p = tp_param_alloc_on("big", TP_CUDA, 1, &n, &e);
    if (!p || tp_param_set_dtype(p, dt, &e) != TP_OK) {
        fprintf(stderr, "bandwidth: %s\n", e.msg);
        tp_tensor_free(p);
        return;
    }
    tp_fill_value(p->grad, 0.01);
    tp_adamw *o = tp_adamw_new(&p, 1, NULL, &e);
    tp_cuda_timer *tm = NULL;
    double ms[5] = {0};
    if (o && tp_cuda_timer_new(&tm, &e) == TP_OK) {
        tp_adamw_step(o, 1e-4f, &e);
        for (int i = 0; i < 5; i++) {
            tp_cuda_timer_start(tm, &e);
            tp_adamw_step(o, 1e-4f, &e);
            tp_cuda_timer_stop(tm, &ms[i], &e);
        }
    }
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (ms[j] < ms[i]) {
                double x = ms[i];
                ms[i] = ms[j];
                ms[j] = x;
            }
    /* bytes of the update kernel: read p, g, m, v; write p, m, v (plus the grad's norm check) */
    double bytes = (double)n * (dt == TP_F32 ? 28 : 16);
    fprintf(stderr,
            "adamw %s, %lld params: %.3f ms per step (incl. the grad check), %.0f GB/s on the "
            "update's %.0f MB\n",
            tp_dtype_name(dt), (long long)n, ms[2], bytes / (ms[2] * 1e6), bytes / 1e6);
    tp_cuda_timer_free(tm);
    tp_adamw_free(o);
    tp_tensor_free(p);
}

static void test_adamw_bandwidth(void) {
    adamw_bandwidth(TP_F32);
    adamw_bandwidth(TP_BF16);
}

int main(int argc, char **argv) {
    tp_err err = {0};
    if (tp_cuda_backend_register(&err) != TP_OK) {
        printf("SKIP test_cuda_optim: no usable GPU: %s\n", err.msg);
        return 77;
    }
    const char *s = getenv("TP_TEST_SEED");
    g_seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "seed %llu (rerun with TP_TEST_SEED=%llu)\n", (unsigned long long)g_seed,
            (unsigned long long)g_seed);
    static const tp_test_case cases[] = {TP_CASE(test_adamw_bf16_vs_cpu),
                                         TP_CASE(test_adamw_mixed_refused),
                                         TP_CASE(test_adamw_bandwidth)};
    return tp_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
