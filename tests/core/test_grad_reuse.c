/* test_grad_reuse.c — grad reuse in tp_backward (core/pool.c): a stack of Llama-style layers
 * (RMSNorm, GQA attention with RoPE and padding, SwiGLU, residuals, reshape/transpose/slice views;
 * frozen weights, grads flowing to an input like the receiver's soft tokens) gives bit-identical
 * input and param grads with reuse on and off; the backward's extra memory stays flat in depth
 * with reuse and grows with depth without it; warm steps still allocate nothing; grads the caller
 * marked with tp_requires_grad survive, and unmarked intermediate grads read NULL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "telepathy/plugin.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

enum { D = 32, H = 4, HKV = 2, DH = 8, F = 64, B = 2, T = 8, LMAX = 16 };

typedef struct {
    int L;
    tp_tensor *ln1[LMAX], *ln2[LMAX]; /* params (grads kept) */
    tp_tensor *wq[LMAX], *wk[LMAX], *wv[LMAX], *wo[LMAX], *wg[LMAX], *wu[LMAX],
        *wd[LMAX]; /* frozen */
    tp_rope_cfg rope;
} stack;

static tp_tensor *frozen(int nd, const int64_t *shape, tp_rng *r) {
    tp_err e = {0};
    tp_tensor *t = tp_tensor_alloc(TP_F32, TP_CPU, nd, shape, &e);
    if (t) tp_fill_normal(t, 0, 0.25f, r);
    return t;
}

static void stack_init(stack *s, int L) {
    memset(s, 0, sizeof *s);
    s->L = L;
    tp_rng r = {11, 0, 0};
    tp_err e = {0};
    for (int l = 0; l < L; l++) {
        s->ln1[l] = tp_param_alloc("ln1", TP_DIMS(D), &e);
        s->ln2[l] = tp_param_alloc("ln2", TP_DIMS(D), &e);
        tp_fill_uniform(s->ln1[l], 0.5f, 1.5f, &r);
        tp_fill_uniform(s->ln2[l], 0.5f, 1.5f, &r);
        s->wq[l] = frozen(TP_DIMS(H * DH, D), &r);
        s->wk[l] = frozen(TP_DIMS(HKV * DH, D), &r);
        s->wv[l] = frozen(TP_DIMS(HKV * DH, D), &r);
        s->wo[l] = frozen(TP_DIMS(D, H * DH), &r);
        s->wg[l] = frozen(TP_DIMS(F, D), &r);
        s->wu[l] = frozen(TP_DIMS(F, D), &r);
        s->wd[l] = frozen(TP_DIMS(D, F), &r);
    }
    tp_rope_init(&s->rope, DH, 10000.0, 0, 0, 0, 0, 0);
}

static void stack_free(stack *s) {
    for (int l = 0; l < s->L; l++) {
        tp_tensor *ts[] = {s->ln1[l], s->ln2[l], s->wq[l], s->wk[l], s->wv[l],
                           s->wo[l],  s->wg[l],  s->wu[l], s->wd[l]};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tp_tensor_free(ts[i]);
    }
}

static void zero_param_grads(stack *s) {
    for (int l = 0; l < s->L; l++) {
        tp_param_zero_grad(s->ln1[l]);
        tp_param_zero_grad(s->ln2[l]);
    }
}

static tp_tensor *heads(tp_ctx *c, tp_tensor *x, int nh) { /* [B,T,nh*DH] -> [B,nh,T,DH] */
    return tp_transpose(c, tp_reshape(c, x, TP_DIMS(B, T, nh, DH)), 1, 2);
}

typedef struct {
    tp_tensor *x;   /* input [B,T,D], requires grad (the soft tokens' role) */
    tp_tensor *mid; /* the residual after layer 0 */
    tp_tensor *loss;
} fwd_out;

/* The input is fixed per test; loss = mean(slice(h, T, 1, T-1) * w) so a view's backward and
 * a seed grad are on the path. */
static fwd_out forward(tp_ctx *c, const stack *s, int mark_mid) {
    fwd_out o = {0};
    float xs[B * T * D], ws[B * (T - 1) * D], mask[B * T];
    int32_t pos[B * T];
    for (int i = 0; i < B * T * D; i++) xs[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < B * (T - 1) * D; i++) ws[i] = (float)((i * 13 % 29) - 14) / 7.0f;
    for (int i = 0; i < B * T; i++) {
        mask[i] = (i / T == 1 && i % T < 2) ? 0.0f : 1.0f; /* row 1 left-padded by 2 */
        pos[i] = i / T == 1 ? (i % T < 2 ? 0 : i % T - 2) : i % T;
    }
    o.x = tp_from_f32(c, TP_DIMS(B, T, D), xs);
    if (!o.x || tp_requires_grad(c, o.x) != TP_OK) return o;
    tp_tensor *p = tp_from_i32(c, TP_DIMS(B, T), pos), *km = tp_from_f32(c, TP_DIMS(B, T), mask);
    tp_attn_cfg ac = {1, 0, 0, 0};
    tp_tensor *x = o.x;
    for (int l = 0; l < s->L; l++) {
        tp_tensor *h = tp_rmsnorm(c, x, s->ln1[l], 1e-5f);
        tp_tensor *q = tp_rope(c, heads(c, tp_linear(c, h, s->wq[l], NULL), H), p, &s->rope);
        tp_tensor *k = tp_rope(c, heads(c, tp_linear(c, h, s->wk[l], NULL), HKV), p, &s->rope);
        tp_tensor *v = heads(c, tp_linear(c, h, s->wv[l], NULL), HKV);
        tp_tensor *a = tp_attention(c, q, k, v, km, &ac);
        a = tp_reshape(c, tp_transpose(c, a, 1, 2), TP_DIMS(B, T, H * DH));
        x = tp_add(c, x, tp_linear(c, a, s->wo[l], NULL));
        h = tp_rmsnorm(c, x, s->ln2[l], 1e-5f);
        tp_tensor *g =
            tp_swiglu(c, tp_linear(c, h, s->wg[l], NULL), tp_linear(c, h, s->wu[l], NULL));
        x = tp_add(c, x, tp_linear(c, g, s->wd[l], NULL));
        if (l == 0) {
            o.mid = x;
            if (mark_mid && x) tp_requires_grad(c, x);
        }
    }
    tp_tensor *w = tp_from_f32(c, TP_DIMS(B, T - 1, D), ws);
    o.loss = tp_mean_all(c, tp_mul(c, tp_slice(c, x, 1, 1, T - 1), w));
    return o;
}

static int same_bytes(const tp_tensor *a, const tp_tensor *b) {
    return a && b && tp_numel(a) == tp_numel(b) &&
           !memcmp(a->data, b->data, (size_t)tp_numel(a) * sizeof(float));
}

/* Grads (input, params, and the marked mid residual) with reuse on equal those with it off, bit
 * for bit; unmarked intermediates have no grad after backward with reuse, and keep it without. */
static void test_bit_identical(void) {
    stack s;
    stack_init(&s, 3);
    float *pg[2][2 * LMAX] = {{0}};
    tp_ctx *c[2] = {tp_ctx_new(TP_CPU), tp_ctx_new(TP_CPU)};
    tp_ctx_set_grad_reuse(c[0], 1);
    tp_ctx_set_grad_reuse(c[1], 0);
    fwd_out o[2];
    for (int r = 0; r < 2; r++) {
        zero_param_grads(&s);
        tp_ctx_reset(c[r]);
        o[r] = forward(c[r], &s, 1);
        TP_CHECKF(o[r].loss && tp_backward(c[r], o[r].loss, NULL) == TP_OK, "%s",
                  tp_ctx_error(c[r]));
        for (int l = 0; l < s.L; l++) {
            size_t n = D * sizeof(float);
            pg[r][2 * l] = malloc(n);
            pg[r][2 * l + 1] = malloc(n);
            memcpy(pg[r][2 * l], s.ln1[l]->grad->data, n);
            memcpy(pg[r][2 * l + 1], s.ln2[l]->grad->data, n);
        }
    }
    TP_CHECK(o[0].x && o[1].x && o[0].x->grad && o[1].x->grad);
    TP_CHECKF(o[0].x->grad && same_bytes(o[0].x->grad, o[1].x->grad),
              "input grad differs with reuse");
    TP_CHECKF(o[0].mid && o[0].mid->grad && same_bytes(o[0].mid->grad, o[1].mid->grad),
              "a grad marked with tp_requires_grad was not kept intact");
    double norm = 0;
    for (int i = 0; o[1].x->grad && i < B * T * D; i++)
        norm += fabsf(((float *)o[1].x->grad->data)[i]);
    TP_CHECKF(norm > 0, "the input got a zero grad: the comparison would prove nothing");
    for (int l = 0; l < 2 * s.L; l++)
        TP_CHECKF(!memcmp(pg[0][l], pg[1][l], D * sizeof(float)), "param grad %d differs", l);
    /* the loss is a node output nobody marked: released with reuse, kept without */
    TP_CHECK(o[0].loss->grad == NULL);
    TP_CHECK(o[1].loss->grad != NULL);
    for (int r = 0; r < 2; r++) {
        for (int l = 0; l < 2 * s.L; l++) free(pg[r][l]);
        tp_ctx_free(c[r]);
    }
    stack_free(&s);
}

/* Two backward calls in one step (an aux loss after the main loss): the input grad accumulates
 * the same sums with and without reuse, and the pool carried over from the first call is safe. */
static void test_two_backwards(void) {
    stack s;
    stack_init(&s, 2);
    float *gx[2] = {0};
    for (int r = 0; r < 2; r++) {
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_ctx_set_grad_reuse(c, r == 0);
        zero_param_grads(&s);
        fwd_out o = forward(c, &s, 0);
        TP_CHECK(o.loss && tp_backward(c, o.loss, NULL) == TP_OK);
        tp_tensor *aux = o.mid ? tp_sum_all(c, tp_mul(c, o.mid, o.mid)) : NULL;
        TP_CHECKF(aux && tp_backward(c, aux, NULL) == TP_OK, "%s", tp_ctx_error(c));
        if (o.x && o.x->grad) {
            gx[r] = malloc(sizeof(float) * B * T * D);
            memcpy(gx[r], o.x->grad->data, sizeof(float) * B * T * D);
        }
        tp_ctx_free(c);
    }
    TP_CHECK(gx[0] && gx[1] && !memcmp(gx[0], gx[1], sizeof(float) * B * T * D));
    free(gx[0]);
    free(gx[1]);
    stack_free(&s);
}

/* Bytes the backward adds to the data arena's high-water mark on top of the forward's. */
static size_t backward_extra(int L, int reuse) {
    stack s;
    stack_init(&s, L);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_set_grad_reuse(c, reuse);
    size_t extra = 0;
    for (int step = 0; step < 2; step++) { /* the second step runs in the coalesced arena */
        tp_ctx_reset(c);
        zero_param_grads(&s);
        fwd_out o = forward(c, &s, 0);
        size_t before = tp_ctx_step_peak_bytes(c);
        TP_CHECKF(o.loss && tp_backward(c, o.loss, NULL) == TP_OK, "%s", tp_ctx_error(c));
        extra = tp_ctx_step_peak_bytes(c) - before;
    }
    tp_ctx_free(c);
    stack_free(&s);
    return extra;
}

static void test_memory_flat_in_depth(void) {
    size_t on4 = backward_extra(4, 1), on16 = backward_extra(16, 1);
    size_t off4 = backward_extra(4, 0), off16 = backward_extra(16, 0);
    fprintf(stderr,
            "  backward extra bytes: reuse 4 layers %zu, 16 layers %zu; no reuse %zu, %zu\n", on4,
            on16, off4, off16);
    TP_CHECKF(on16 < on4 + on4 / 2, "with reuse 16 layers took %zu > 1.5 x %zu (4 layers)", on16,
              on4);
    TP_CHECKF(off16 > 3 * off4,
              "without reuse 16 layers took only %zu vs %zu: the measure is "
              "blind",
              off16, off4);
    TP_CHECKF(on16 * 4 < off16, "reuse saved too little at 16 layers: %zu vs %zu", on16, off16);
}

/* With reuse the pool lives in the step's arenas: warm steps make no heap call, and a step that
 * spilled coalesces into one chunk. */
static void test_warm_steps_allocate_nothing(void) {
    stack s;
    stack_init(&s, 16);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_set_grad_reuse(c, 1);
    uint64_t before = 0;
    for (int step = 0; step < 5; step++) {
        if (step == 3) before = tp_heap_alloc_count();
        tp_ctx_reset(c);
        zero_param_grads(&s);
        fwd_out o = forward(c, &s, 0);
        TP_CHECKF(o.loss && tp_backward(c, o.loss, NULL) == TP_OK, "%s", tp_ctx_error(c));
    }
    uint64_t n = tp_heap_alloc_count() - before;
    TP_CHECKF(n == 0, "%llu heap allocations in 2 warm steps", (unsigned long long)n);
    TP_CHECK(c->data.n_chunks == 1 && c->host.n_chunks == 1);
    TP_CHECKF(tp_ctx_arena_bytes(c) > ((size_t)1 << 20),
              "the step fit the first chunk: coalescing was not exercised");
    tp_ctx_free(c);
    stack_free(&s);
}

/* A step that outgrows the previous step's coalesced chunk holds little more than it needs until
 * the reset coalesces (the device's peak memory counts every chunk held). */
static void test_arena_spill_overshoot(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    for (int step = 0; step < 2; step++) {
        tp_ctx_reset(c);
        for (int i = 0; i < 40; i++) TP_CHECK(tp_new(c, TP_F32, TP_DIMS(256, 256)) != NULL);
    }
    size_t coalesced = tp_arena_capacity(&c->data);
    TP_CHECK(c->data.n_chunks == 1 && coalesced >= 40u * 256 * 256 * 4);
    tp_ctx_reset(c);
    for (int i = 0; i < 48; i++) TP_CHECK(tp_new(c, TP_F32, TP_DIMS(256, 256)) != NULL);
    size_t need = 48u * 256 * 256 * 4, held = tp_arena_capacity(&c->data);
    TP_CHECKF(c->data.n_chunks > 1 && held * 10 <= need * 13,
              "a step needing %zu B past a %zu B chunk holds %zu B (> 1.3x)", need, coalesced,
              held);
    tp_ctx_reset(c);
    TP_CHECK(c->data.n_chunks == 1 && tp_arena_capacity(&c->data) >= need);
    tp_ctx_free(c);
}

static void test_env_switch(void) {
    setenv("TP_GRAD_REUSE", "0", 1);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    TP_CHECK(c && c->grad_reuse == 0);
    tp_ctx_free(c);
    setenv("TP_GRAD_REUSE", "1", 1);
    c = tp_ctx_new(TP_CPU);
    TP_CHECK(c && c->grad_reuse == 1);
    tp_ctx_free(c);
    unsetenv("TP_GRAD_REUSE");
    c = tp_ctx_new(TP_CPU);
    TP_CHECK(c && c->grad_reuse == 1);
    tp_ctx_free(c);
}

TP_TEST_RUN(TP_CASE(test_bit_identical), TP_CASE(test_two_backwards),
            TP_CASE(test_memory_flat_in_depth), TP_CASE(test_warm_steps_allocate_nothing),
            TP_CASE(test_arena_spill_overshoot), TP_CASE(test_env_switch))
