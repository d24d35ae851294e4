/* test_cuda_ops.c — every CUDA op against the CPU reference, per dtype (f32, bf16, f16):
 * fresh random inputs each run (the seed is printed), the same values (rounded to the dtype) fed
 * to both backends, GPU outputs written into arena memory poisoned with NaN bits first (an
 * unwritten element shows as NaN), normalised error ||gpu - cpu|| / ||cpu|| of the output and of
 * every input gradient (loss = sum(out * W) with random W), thresholds per dtype. Also: range
 * errors from device-checked ids and targets, strided device copies and fills (KV-cache
 * writes), dropout masks equal to the CPU's, AdamW on device params, and no cudaMalloc in a
 * warmed-up step. Cases are chosen to reach each kernel variant: the small-M GEMV and its GEMM
 * fall-back, the tensor-core GEMV (3..16 rows, opt-in), the row attention kernel (T <= 32, bf16
 * K/V) and the tiled one. Exits 77 (skipped) when no GPU is usable. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend.h"
#include "core/ops.h"
#include "telepathy/optim.h"
#include "telepathy/tensor.h"
#include "tp_cuda.h"
#include "tp_test.h"

#define MAXIN        4
#define POISON_BYTES ((size_t)96 << 20)

enum { F_FLOAT = 0, F_IDS, F_MASK, F_POS, F_POSITIVE, F_TARGETS };

typedef struct ospec {
    int ndim;
    int64_t shape[4];
    int kind;     /* F_* */
    int grad;     /* requires grad */
    int keep_f32; /* stays f32 whatever the case dtype (mixed-dtype cases) */
    int range;    /* ids/targets: values in [0, range) */
} ospec;

typedef tp_tensor *(*build_fn)(tp_ctx *c, tp_tensor **x, const int *iarg);

typedef struct ocase {
    const char *name;
    int n_in;
    ospec in[MAXIN];
    build_fn build;
    int iarg[4];
    double tol_scale; /* multiplies the dtype's threshold (long reductions) */
} ocase;

static uint64_t g_seed;
static tp_rope_cfg g_rope;

/* ---- builders ---- */
static tp_tensor *b_add(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_add(c, x[0], x[1]);
}
static tp_tensor *b_sub(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_sub(c, x[0], x[1]);
}
static tp_tensor *b_mul(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_mul(c, x[0], x[1]);
}
static tp_tensor *b_div(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_div(c, x[0], x[1]);
}
static tp_tensor *b_add_t(tp_ctx *c, tp_tensor **x, const int *a) { /* strided a */
    return tp_add(c, tp_transpose(c, x[0], 0, 1), x[1]);
}
static tp_tensor *b_unary(tp_ctx *c, tp_tensor **x, const int *a) {
    switch (a[0]) {
    case 0:
        return tp_scale(c, x[0], 0.37f);
    case 1:
        return tp_add_scalar(c, x[0], -1.25f);
    case 2:
        return tp_silu(c, x[0]);
    case 3:
        return tp_gelu(c, x[0], TP_GELU_ERF);
    case 4:
        return tp_gelu(c, x[0], TP_GELU_TANH);
    case 5:
        return tp_tanh(c, x[0]);
    case 6:
        return tp_exp(c, x[0]);
    case 7:
        return tp_ln(c, x[0]);
    case 8:
        return tp_sigmoid(c, x[0]);
    default:
        return tp_relu(c, x[0]);
    }
}
static tp_tensor *b_swiglu(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_swiglu(c, x[0], x[1]);
}
static tp_tensor *b_swiglu_halves(tp_ctx *c, tp_tensor **x, const int *a) {
    int64_t h = x[0]->shape[x[0]->ndim - 1] / 2; /* gate|up stacked on the last dim */
    return tp_swiglu(c, tp_slice(c, x[0], x[0]->ndim - 1, 0, h),
                     tp_slice(c, x[0], x[0]->ndim - 1, h, h));
}
static tp_tensor *b_matmul(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_matmul(c, x[0], x[1], a[0], a[1]);
}
static tp_tensor *b_matmul_tview(tp_ctx *c, tp_tensor **x, const int *a) { /* col-major view */
    return tp_matmul(c, tp_transpose(c, x[0], 0, 1), x[1], 0, 0);
}
static tp_tensor *b_linear(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_linear(c, x[0], x[1], a[0] ? x[2] : NULL);
}
static tp_tensor *b_linear_add(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_linear_add(c, x[0], x[1], x[2]);
}
static tp_tensor *b_embedding(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_embedding(c, x[0], x[1]);
}
static tp_tensor *b_rmsnorm(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_rmsnorm(c, x[0], a[0] ? x[1] : NULL, 1e-5f);
}
static tp_tensor *b_layernorm(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_layernorm(c, x[0], x[1], x[2], 1e-5f);
}
static tp_tensor *b_l2(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_l2_normalize(c, x[0], 1e-6f);
}
static tp_tensor *b_rope(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_rope(c, x[0], x[1], &g_rope);
}
static tp_tensor *b_attention(tp_ctx *c, tp_tensor **x, const int *a) {
    tp_attn_cfg cfg = {a[0], a[1], a[2], 0.0f};
    return tp_attention(c, x[0], x[1], x[2], a[3] ? x[3] : NULL, &cfg);
}
static tp_tensor *b_softmax(tp_ctx *c, tp_tensor **x, const int *a) {
    return a[0] ? tp_log_softmax(c, x[0]) : tp_softmax(c, x[0]);
}
static tp_tensor *b_sum(tp_ctx *c, tp_tensor **x, const int *a) {
    return a[1] ? tp_mean(c, x[0], a[0], 1) : tp_sum(c, x[0], a[0], 0);
}
static tp_tensor *b_pool(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_pool(c, x[0], x[1], (tp_pool_kind)a[0]);
}
static tp_tensor *b_ce(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_cross_entropy(c, x[0], x[1], 3, a[0] ? 0.1f : 0.0f);
}
static tp_tensor *b_concat(tp_ctx *c, tp_tensor **x, const int *a) {
    tp_tensor *ts[3] = {x[0], tp_transpose(c, x[1], 0, 1), x[2]};
    return tp_concat(c, ts, 3, 1);
}
static tp_tensor *b_contig(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_contiguous(c, tp_slice(c, tp_transpose(c, x[0], 1, 2), 2, 1, 3));
}
static tp_tensor *b_vq(tp_ctx *c, tp_tensor **x, const int *a) {
    return tp_vq_nearest(c, x[0], x[1], (tp_vq_dist)a[0], NULL);
}

#define SP(nd, ...)                                                                                \
    { nd, {__VA_ARGS__}, F_FLOAT, 1, 0, 0 }
#define SPK(nd, kind, grad, range, ...)                                                            \
    { nd, {__VA_ARGS__}, kind, grad, 0, range }
#define SPF(nd, grad, ...)                                                                         \
    { nd, {__VA_ARGS__}, F_FLOAT, grad, 1, 0 }

static const ocase g_cases[] = {
    {"add bcast", 2, {SP(3, 3, 5, 7), SP(2, 5, 1)}, b_add, {0}, 1},
    {"add strided a", 2, {SP(3, 5, 3, 7), SP(1, 7)}, b_add_t, {0}, 1},
    {"add strided a, full b", 2, {SP(3, 5, 3, 7), SP(3, 3, 5, 7)}, b_add_t, {0}, 1},
    {"mul 2-D rows bcast", 2, {SP(2, 9, 130), SP(2, 1, 130)}, b_mul, {0}, 1},
    {"sub", 2, {SP(2, 33, 65), SP(2, 33, 65)}, b_sub, {0}, 1},
    {"mul bcast", 2, {SP(3, 4, 6, 9), SP(3, 4, 1, 9)}, b_mul, {0}, 1},
    {"div", 2, {SP(2, 17, 31), SPK(2, F_POSITIVE, 1, 0, 17, 31)}, b_div, {0}, 1},
    {"scale", 1, {SP(2, 40, 50)}, b_unary, {0}, 1},
    {"add_scalar", 1, {SP(2, 40, 50)}, b_unary, {1}, 1},
    {"silu", 1, {SP(2, 40, 50)}, b_unary, {2}, 1},
    {"gelu erf", 1, {SP(2, 40, 50)}, b_unary, {3}, 1},
    {"gelu tanh", 1, {SP(2, 40, 50)}, b_unary, {4}, 1},
    {"tanh", 1, {SP(2, 40, 50)}, b_unary, {5}, 1},
    {"exp", 1, {SP(2, 40, 50)}, b_unary, {6}, 1},
    {"ln", 1, {SPK(2, F_POSITIVE, 1, 0, 40, 50)}, b_unary, {7}, 1},
    {"sigmoid", 1, {SP(2, 40, 50)}, b_unary, {8}, 1},
    {"relu", 1, {SP(2, 40, 50)}, b_unary, {9}, 1},
    {"swiglu", 2, {SP(3, 2, 7, 64), SP(3, 2, 7, 64)}, b_swiglu, {0}, 1},
    {"swiglu odd", 2, {SP(2, 3, 37), SP(2, 3, 37)}, b_swiglu, {0}, 1},
    {"swiglu halves of one tensor", 1, {SP(3, 2, 7, 128)}, b_swiglu_halves, {0}, 1},
    {"swiglu halves odd", 1, {SP(3, 2, 3, 74)}, b_swiglu_halves, {0}, 1},
    {"matmul", 2, {SP(2, 37, 64), SP(2, 64, 29)}, b_matmul, {0, 0}, 1},
    {"matmul ta tb", 2, {SP(2, 64, 37), SP(2, 29, 64)}, b_matmul, {1, 1}, 1},
    {"matmul batched", 2, {SP(4, 2, 3, 9, 16), SP(4, 2, 3, 16, 11)}, b_matmul, {0, 0}, 1},
    {"matmul shared b tb", 2, {SP(3, 4, 9, 16), SP(2, 11, 16)}, b_matmul, {0, 1}, 1},
    {"matmul view a", 2, {SP(2, 24, 13), SP(2, 24, 10)}, b_matmul_tview, {0}, 1},
    {"linear f32 x, weight in dtype", 2, {SPF(3, 1, 2, 5, 64), SP(2, 48, 64)}, b_linear, {0}, 1},
    {"linear bias", 3, {SP(2, 6, 32), SP(2, 40, 32), SP(1, 40)}, b_linear, {1}, 1},
    {"linear_add (residual as the GEMM's C)",
     3,
     {SP(3, 2, 6, 32), SP(2, 40, 32), SP(3, 2, 6, 40)},
     b_linear_add,
     {0},
     1},
    /* M <= 8 rows against a [N, K] weight: the GEMV path (K % 8 == 0) and its fall-back */
    {"linear gemv M=1", 2, {SP(3, 1, 1, 512), SP(2, 300, 512)}, b_linear, {0}, 1},
    {"linear gemv M=4", 2, {SP(3, 2, 2, 1024), SP(2, 257, 1024)}, b_linear, {0}, 1},
    /* 3..8 rows: cuBLASLt by default; test_gemv_paths repeats every linear case under each GEMV */
    {"linear M=8", 2, {SP(3, 2, 4, 1024), SP(2, 257, 1024)}, b_linear, {0}, 1},
    {"linear gemv f32 x", 2, {SPF(3, 1, 1, 3, 64), SP(2, 48, 64)}, b_linear, {0}, 1},
    /* 3..16 rows: the tensor-core GEMV (K % 32 == 0; opt-in, covered by test_gemv_paths), the
     * bridge's 16 latents at batch 1 */
    {"linear gemv mma M=16", 2, {SP(3, 1, 16, 512), SP(2, 72, 512)}, b_linear, {0}, 1},
    {"linear gemv mma M=12 N tail", 2, {SP(3, 2, 6, 256), SP(2, 101, 256)}, b_linear, {0}, 1},
    {"linear_add gemv mma M=16",
     3,
     {SP(3, 1, 16, 1024), SP(2, 40, 1024), SP(3, 1, 16, 40)},
     b_linear_add,
     {0},
     1},
    {"linear gemv K=37 (GEMM fall-back)", 2, {SP(3, 1, 2, 37), SP(2, 20, 37)}, b_linear, {0}, 1},
    {"linear_add gemv M=3",
     3,
     {SP(3, 1, 3, 256), SP(2, 100, 256), SP(3, 1, 3, 100)},
     b_linear_add,
     {0},
     1},
    /* a trainable table must be f32 (front-end rule); tables in the dtype are frozen */
    {"embedding f32 table grad",
     2,
     {SPF(2, 1, 50, 64), SPK(2, F_IDS, 0, 50, 3, 7)},
     b_embedding,
     {0},
     1},
    {"embedding table in dtype",
     2,
     {SPK(2, F_FLOAT, 0, 0, 50, 64), SPK(2, F_IDS, 0, 50, 3, 7)},
     b_embedding,
     {0},
     1},
    {"embedding odd D",
     2,
     {SPK(2, F_FLOAT, 0, 0, 20, 13), SPK(1, F_IDS, 0, 20, 9)},
     b_embedding,
     {0},
     1},
    {"rmsnorm w", 2, {SP(3, 2, 5, 256), SP(1, 256)}, b_rmsnorm, {1}, 1},
    {"rmsnorm no w", 1, {SP(2, 7, 100)}, b_rmsnorm, {0}, 1},
    {"rmsnorm wide", 2, {SP(2, 3, 4096), SP(1, 4096)}, b_rmsnorm, {1}, 1},
    {"layernorm", 3, {SP(2, 6, 96), SP(1, 96), SP(1, 96)}, b_layernorm, {0}, 1},
    {"l2norm", 1, {SP(2, 6, 40)}, b_l2, {0}, 1},
    {"rope llama3", 2, {SP(4, 2, 3, 5, 64), SPK(2, F_POS, 0, 9000, 2, 5)}, b_rope, {0}, 1},
    {"attention gqa causal mask",
     4,
     {SP(4, 2, 8, 6, 64), SP(4, 2, 2, 6, 64), SP(4, 2, 2, 6, 64), SPK(2, F_MASK, 0, 0, 2, 6)},
     b_attention,
     {1, 0, 0, 1},
     1},
    {"attention window q_offset",
     3,
     {SP(4, 1, 4, 3, 128), SP(4, 1, 2, 9, 128), SP(4, 1, 2, 9, 128)},
     b_attention,
     {1, 6, 4, 0},
     1},
    {"attention decode T=1",
     4,
     {SP(4, 3, 4, 1, 32), SP(4, 3, 1, 11, 32), SP(4, 3, 1, 11, 32), SPK(2, F_MASK, 0, 0, 3, 11)},
     b_attention,
     {1, 10, 0, 1},
     1},
    /* the decode kernel (T = 1, bf16 K/V, Dh a power of two <= 256) at the models' head dims */
    {"attention decode Dh=128 gqa S=300",
     4,
     {SP(4, 2, 8, 1, 128), SP(4, 2, 2, 300, 128), SP(4, 2, 2, 300, 128),
      SPK(2, F_MASK, 0, 0, 2, 300)},
     b_attention,
     {1, 299, 0, 1},
     1},
    {"attention decode window Dh=64",
     3,
     {SP(4, 1, 4, 1, 64), SP(4, 1, 2, 40, 64), SP(4, 1, 2, 40, 64)},
     b_attention,
     {1, 39, 16, 0},
     1},
    {"attention decode Dh=256 mid-cache",
     3,
     {SP(4, 1, 2, 1, 256), SP(4, 1, 1, 20, 256), SP(4, 1, 1, 20, 256)},
     b_attention,
     {1, 12, 0, 0},
     1},
    /* the row kernel (T <= 32) at the Perceiver's cross-attention shape, and the tiled one past it
     */
    {"attention rows Dh=512 T=16 (bridge)",
     4,
     {SP(4, 1, 8, 16, 512), SP(4, 1, 8, 67, 512), SP(4, 1, 8, 67, 512),
      SPK(2, F_MASK, 0, 0, 1, 67)},
     b_attention,
     {0, 0, 0, 1},
     1},
    {"attention tiled T=40 gqa causal mask",
     4,
     {SP(4, 2, 4, 40, 64), SP(4, 2, 2, 40, 64), SP(4, 2, 2, 40, 64), SPK(2, F_MASK, 0, 0, 2, 40)},
     b_attention,
     {1, 0, 0, 1},
     1},
    {"attention full Dh=40",
     3,
     {SP(4, 2, 2, 5, 40), SP(4, 2, 2, 7, 40), SP(4, 2, 2, 7, 40)},
     b_attention,
     {0, 0, 0, 0},
     1},
    {"softmax", 1, {SP(2, 7, 300)}, b_softmax, {0}, 1},
    {"log_softmax", 1, {SP(3, 2, 3, 1000)}, b_softmax, {1}, 1},
    {"sum dim1", 1, {SP(3, 3, 40, 5)}, b_sum, {1, 0}, 1},
    {"mean dim2 keepdim", 1, {SP(3, 3, 4, 70)}, b_sum, {2, 1}, 1},
    {"pool mean", 2, {SP(3, 3, 7, 16), SPK(2, F_MASK, 0, 0, 3, 7)}, b_pool, {0}, 1},
    {"pool max", 2, {SP(3, 3, 7, 16), SPK(2, F_MASK, 0, 0, 3, 7)}, b_pool, {2}, 1},
    {"cross_entropy", 2, {SP(2, 9, 500), SPK(1, F_TARGETS, 0, 500, 9)}, b_ce, {0}, 1},
    {"cross_entropy smooth", 2, {SP(2, 9, 77), SPK(1, F_TARGETS, 0, 77, 9)}, b_ce, {1}, 1},
    {"concat with view", 3, {SP(2, 3, 2), SP(2, 4, 3), SP(2, 3, 5)}, b_concat, {0}, 1},
    {"contiguous of view", 1, {SP(3, 2, 4, 6)}, b_contig, {0}, 1},
    {"vq l2", 2, {SP(2, 9, 8), SPK(2, F_FLOAT, 0, 0, 6, 8)}, b_vq, {0}, 1},
    {"vq cosine", 2, {SP(2, 9, 8), SPK(2, F_FLOAT, 0, 0, 6, 8)}, b_vq, {1}, 1},
};

/* ---- data ---- */
static int64_t count_of(const ospec *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static float round_to(float v, tp_dtype dt) {
    if (dt == TP_BF16) return tp_bf16_to_f32(tp_f32_to_bf16(v));
    if (dt == TP_F16) return tp_f16_to_f32(tp_f32_to_f16(v));
    return v;
}

typedef struct {
    float *f[MAXIN];
    int32_t *i[MAXIN];
} hostdata;

static void make_data(const ocase *oc, tp_dtype dt, uint64_t seed, hostdata *h) {
    tp_rng r = {seed, 7, 0};
    for (int k = 0; k < oc->n_in; k++) {
        const ospec *s = &oc->in[k];
        int64_t n = count_of(s);
        h->f[k] = calloc((size_t)n, sizeof(float));
        h->i[k] = calloc((size_t)n, sizeof(int32_t));
        for (int64_t j = 0; j < n; j++) {
            float u = tp_rng_uniform(&r), g = tp_rng_normal(&r);
            switch (s->kind) {
            case F_IDS:
            case F_TARGETS:
                h->i[k][j] = (int32_t)(u * (float)s->range) % s->range;
                break;
            case F_POS:
                h->i[k][j] = (int32_t)(u * (float)s->range);
                break;
            case F_MASK: /* mostly ones, never an all-zero row in practice (first kept) */
                h->f[k][j] = (j % s->shape[s->ndim - 1] == 0 || u > 0.3f) ? 1.0f : 0.0f;
                break;
            case F_POSITIVE:
                h->f[k][j] = round_to(0.5f + 2.0f * u, s->keep_f32 ? TP_F32 : dt);
                break;
            default:
                h->f[k][j] = round_to(g, s->keep_f32 ? TP_F32 : dt);
            }
        }
    }
}

static void free_data(const ocase *oc, hostdata *h) {
    for (int k = 0; k < oc->n_in; k++) {
        free(h->f[k]);
        free(h->i[k]);
    }
}

/* Inputs on ctx c: floats in dt (leaves are f32; the cast is taped so grads reach the leaf). */
static int make_inputs(tp_ctx *c, const ocase *oc, const hostdata *h, tp_dtype dt, tp_tensor **leaf,
                       tp_tensor **x) {
    for (int k = 0; k < oc->n_in; k++) {
        const ospec *s = &oc->in[k];
        if (s->kind == F_IDS || s->kind == F_POS || s->kind == F_TARGETS) {
            leaf[k] = x[k] = tp_from_i32(c, s->ndim, s->shape, h->i[k]);
        } else {
            leaf[k] = tp_from_f32(c, s->ndim, s->shape, h->f[k]);
            if (leaf[k] && s->grad) tp_requires_grad(c, leaf[k]);
            tp_dtype want = (s->keep_f32 || s->kind == F_MASK) ? TP_F32 : dt;
            x[k] = tp_cast(c, leaf[k], want);
        }
        if (!x[k]) return 0;
    }
    return 1;
}

static double nerr(const float *a, const float *ref, int64_t n, int *nan) {
    double num = 0, den = 0;
    *nan = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) && isfinite(ref[i])) *nan = 1;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static float *fetch(const tp_tensor *t) {
    int64_t n = tp_numel(t);
    float *b = calloc((size_t)(n ? n : 1), sizeof(float));
    tp_err e = {0};
    if (tp_to_f32_buffer(t, b, &e) != TP_OK) {
        fprintf(stderr, "fetch: %s\n", e.msg);
        for (int64_t i = 0; i < n; i++) b[i] = NAN;
    }
    return b;
}

/* Fills the GPU ctx's arena with all-ones bits (NaN in f32/bf16/f16, -1 in i32), then rewinds:
 * the next step's tensors land on the poison. */
static void poison(tp_ctx *g) {
    tp_ctx_reset(g);
    int64_t n = (int64_t)(POISON_BYTES / 4);
    tp_tensor *p = tp_new(g, TP_I32, 1, &n);
    TP_CHECK(p && tp_fill_value(p, -1.0) == TP_OK);
    tp_ctx_reset(g);
}

static double thresh(tp_dtype dt) {
    return dt == TP_F32 ? 1e-5 : dt == TP_BF16 ? 2e-2 : 4e-3;
}

static void run_case(const ocase *oc, tp_dtype dt, tp_ctx *cc, tp_ctx *gc, uint64_t seed) {
    hostdata h;
    make_data(oc, dt, seed, &h);
    tp_tensor *lc[MAXIN] = {0}, *xc[MAXIN] = {0}, *lg[MAXIN] = {0}, *xg[MAXIN] = {0};
    tp_ctx_reset(cc);
    poison(gc);
    int okc = make_inputs(cc, oc, &h, TP_F32, lc, xc);
    int okg = make_inputs(gc, oc, &h, dt, lg, xg);
    tp_tensor *oc_ = okc ? oc->build(cc, xc, oc->iarg) : NULL;
    tp_tensor *og = okg ? oc->build(gc, xg, oc->iarg) : NULL;
    TP_CHECKF(oc_ != NULL, "%s: cpu: %s", oc->name, tp_ctx_error(cc));
    TP_CHECKF(og != NULL, "%s [%s]: cuda: %s", oc->name, tp_dtype_name(dt), tp_ctx_error(gc));
    double lim = thresh(dt) * oc->tol_scale, fe = 0, ge = 0;
    int nan = 0;
    if (oc_ && og) {
        TP_CHECKF(tp_numel(og) == tp_numel(oc_), "%s: output numel %lld vs %lld", oc->name,
                  (long long)tp_numel(og), (long long)tp_numel(oc_));
        float *a = fetch(og), *r = fetch(oc_);
        fe = nerr(a, r, tp_numel(oc_), &nan);
        TP_CHECKF(!nan && fe <= lim, "%s [%s]: forward error %.3g (limit %.3g)%s", oc->name,
                  tp_dtype_name(dt), fe, lim, nan ? ", unwritten/NaN elements" : "");
        /* backward: loss = sum(out * W) */
        if (oc_->flags & TP_FLAG_REQUIRES_GRAD) {
            int64_t n = tp_numel(oc_);
            float *w = malloc((size_t)n * sizeof *w);
            tp_rng rw = {seed, 99, 0};
            for (int64_t i = 0; i < n; i++) w[i] = tp_rng_normal(&rw);
            tp_tensor *wc = tp_from_f32(cc, oc_->ndim, oc_->shape, w);
            tp_tensor *wg = tp_from_f32(gc, og->ndim, og->shape, w);
            TP_CHECKF(tp_backward(cc, tp_sum_all(cc, tp_mul(cc, oc_, wc)), NULL) == TP_OK,
                      "%s: cpu backward: %s", oc->name, tp_ctx_error(cc));
            TP_CHECKF(tp_backward(gc, tp_sum_all(gc, tp_mul(gc, og, wg)), NULL) == TP_OK,
                      "%s [%s]: cuda backward: %s", oc->name, tp_dtype_name(dt), tp_ctx_error(gc));
            for (int k = 0; k < oc->n_in; k++) {
                int fl = oc->in[k].kind == F_FLOAT || oc->in[k].kind == F_POSITIVE;
                if (!oc->in[k].grad || !fl) continue;
                if (!lc[k] || !lc[k]->grad) continue;
                TP_CHECKF(lg[k] && lg[k]->grad, "%s [%s]: input %d got no grad on cuda", oc->name,
                          tp_dtype_name(dt), k);
                if (!lg[k] || !lg[k]->grad) continue;
                float *ga = fetch(lg[k]->grad), *gr = fetch(lc[k]->grad);
                int gn = 0;
                double e = nerr(ga, gr, tp_numel(lc[k]), &gn);
                if (e > ge) ge = e;
                TP_CHECKF(!gn && e <= 2 * lim, "%s [%s]: grad of input %d error %.3g (limit %.3g)",
                          oc->name, tp_dtype_name(dt), k, e, 2 * lim);
                free(ga);
                free(gr);
            }
            free(w);
        }
        free(a);
        free(r);
    }
    fprintf(stderr, "  %-32s %-5s fwd %.2e  grad %.2e\n", oc->name, tp_dtype_name(dt), fe, ge);
    tp_ctx_clear_error(cc);
    tp_ctx_clear_error(gc);
    free_data(oc, &h);
}

static void test_ops_vs_cpu(void) {
    tp_ctx *cc = tp_ctx_new(TP_CPU), *gc = tp_ctx_new(TP_CUDA);
    tp_rope_init(&g_rope, 64, 500000.0, 1, 8.0, 1.0, 4.0, 8192);
    const tp_dtype dts[3] = {TP_F32, TP_BF16, TP_F16};
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++)
        for (int d = 0; d < 3; d++) run_case(&g_cases[i], dts[d], cc, gc, g_seed + i * 3 + d);
    tp_ctx_free(cc);
    tp_ctx_free(gc);
}

/* The linear cases again under each GEMV path: cuBLASLt only, the FMA GEMV up to 8 rows, the
 * tensor-core GEMV up to 16 rows (the defaults take only some of them). */
static void test_gemv_paths(void) {
    tp_ctx *cc = tp_ctx_new(TP_CPU), *gc = tp_ctx_new(TP_CUDA);
    const int rows[3][2] = {{0, 0}, {8, 0}, {0, 16}};
    const tp_dtype dts[3] = {TP_F32, TP_BF16, TP_F16};
    for (int p = 0; p < 3; p++) {
        tp_cuda_set_gemv_rows(rows[p][0], rows[p][1]);
        fprintf(stderr, "  gemv rows: fma <= %d, mma <= %d\n", rows[p][0], rows[p][1]);
        for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++)
            if (!strncmp(g_cases[i].name, "linear", 6))
                for (int d = 0; d < 3; d++)
                    run_case(&g_cases[i], dts[d], cc, gc, g_seed + 7919 * (p + 1) + i * 3 + d);
    }
    tp_cuda_set_gemv_rows(-1, -1);
    tp_ctx_free(cc);
    tp_ctx_free(gc);
}

/* tp_argmax_rows on the GPU picks the CPU's index on every row: ties (first wins), NaN (never
 * wins), rows of -inf, the lm_head's width, f32 and bf16 logits. */
static void test_argmax_matches_cpu(void) {
    enum { R = 6, V = 128256 };
    float *v = malloc((size_t)R * V * sizeof *v);
    TP_CHECK(v != NULL);
    if (!v) return;
    uint64_t st = g_seed | 1;
    for (int64_t i = 0; i < (int64_t)R * V; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = (float)((st >> 40) % 10007) / 1000.0f; /* many equal values: ties */
    }
    v[1 * (int64_t)V + 5] = 11.0f, v[1 * (int64_t)V + 90000] = 11.0f;  /* tie: 5 wins */
    v[2 * (int64_t)V + 0] = NAN, v[2 * (int64_t)V + 7] = NAN;          /* NaN skipped */
    for (int64_t k = 0; k < V; k++) v[3 * (int64_t)V + k] = -INFINITY; /* -> 0 */
    v[4 * (int64_t)V + V - 1] = 20.0f;                                 /* the last */
    tp_ctx *cc = tp_ctx_new(TP_CPU), *gc = tp_ctx_new(TP_CUDA);
    for (int d = 0; d < 2; d++) {
        tp_dtype dt = d ? TP_BF16 : TP_F32;
        tp_tensor *xc = tp_cast(cc, tp_from_f32(cc, TP_DIMS(R, 1, V), v), dt);
        tp_tensor *xg = tp_cast(gc, tp_from_f32(gc, TP_DIMS(R, 1, V), v), dt);
        tp_tensor *ac = tp_argmax_rows(cc, xc), *ag = xg ? tp_argmax_rows(gc, xg) : NULL;
        TP_CHECKF(ac && ag, "%s %s", tp_ctx_error(cc), tp_ctx_error(gc));
        float hc[R], hg[R];
        tp_err e = {0};
        if (ac && ag && tp_to_f32_buffer(ac, hc, &e) == TP_OK &&
            tp_to_f32_buffer(ag, hg, &e) == TP_OK)
            for (int r = 0; r < R; r++)
                TP_CHECKF(hc[r] == hg[r], "%s row %d: cuda %g, cpu %g", tp_dtype_name(dt), r, hg[r],
                          hc[r]);
        TP_CHECK(hc[1] == 5.0f && hc[3] == 0.0f && hc[4] == (float)(V - 1));
        tp_ctx_reset(cc);
        tp_ctx_reset(gc);
    }
    tp_ctx_free(cc);
    tp_ctx_free(gc);
    free(v);
}

/* ids and targets are checked on the device; errors name the op and the bad value */
static void test_range_errors(void) {
    tp_ctx *g = tp_ctx_new(TP_CUDA);
    tp_rng r = {g_seed, 1, 0};
    tp_tensor *w = tp_randn(g, TP_DIMS(10, 8), 1.0f, &r);
    tp_tensor *e = tp_embedding(g, w, tp_from_i32(g, TP_DIMS(3), ((int32_t[]){1, 12, 2})));
    TP_CHECK(e == NULL && tp_ctx_status(g) == TP_ERANGE);
    TP_CHECKF(strstr(tp_ctx_error(g), "id 12") != NULL, "%s", tp_ctx_error(g));
    tp_ctx_clear_error(g);
    tp_ctx_reset(g);
    tp_tensor *lg = tp_randn(g, TP_DIMS(2, 5), 1.0f, &r);
    tp_tensor *l =
        tp_cross_entropy(g, lg, tp_from_i32(g, TP_DIMS(2), ((int32_t[]){0, 5})), -100, 0.0f);
    TP_CHECK(l == NULL && tp_ctx_status(g) == TP_ERANGE);
    TP_CHECKF(strstr(tp_ctx_error(g), "target 5") != NULL, "%s", tp_ctx_error(g));
    tp_ctx_clear_error(g);
    /* the error word was cleared: a good call afterwards succeeds */
    tp_ctx_reset(g);
    lg = tp_randn(g, TP_DIMS(2, 5), 1.0f, &r);
    l = tp_cross_entropy(g, lg, tp_from_i32(g, TP_DIMS(2), ((int32_t[]){0, 4})), -100, 0.0f);
    TP_CHECKF(l != NULL, "%s", tp_ctx_error(g));
    tp_ctx_free(g);
}

/* KV-cache style writes: a bf16 block into a slice of an f32 device tensor, strided fills */
static void test_strided_device_copy(void) {
    tp_err e = {0};
    tp_tensor *store = tp_tensor_alloc(TP_F32, TP_CUDA, 4, (int64_t[]){2, 3, 10, 8}, &e);
    TP_CHECKF(store != NULL, "%s", e.msg);
    if (!store) return;
    TP_CHECK(tp_fill_value(store, 0.0) == TP_OK);
    tp_ctx *g = tp_ctx_new(TP_CUDA);
    tp_rng r = {g_seed, 2, 0};
    tp_tensor *blk = tp_cast(g, tp_randn(g, TP_DIMS(2, 3, 4, 8), 1.0f, &r), TP_BF16);
    tp_tensor *dst = tp_slice(g, store, 2, 5, 4);
    TP_CHECKF(tp_copy_into(dst, blk, &e) == TP_OK, "%s", e.msg);
    tp_tensor *mk = tp_slice(g, store, 2, 0, 2);
    TP_CHECKF(tp_fill_value(mk, 7.0) == TP_OK, "strided fill");
    float *sb = fetch(store), *bb = fetch(blk);
    int bad = 0;
    for (int b = 0; b < 6; b++)
        for (int s = 0; s < 10; s++)
            for (int d = 0; d < 8; d++) {
                float v = sb[(b * 10 + s) * 8 + d];
                float want = s < 2 ? 7.0f : (s >= 5 && s < 9) ? bb[(b * 4 + s - 5) * 8 + d] : 0.0f;
                bad += v != want;
            }
    TP_CHECKF(bad == 0, "%d elements wrong after slice copy / fill", bad);
    free(sb);
    free(bb);
    tp_ctx_free(g);
    tp_tensor_free(store);
}

/* the dropout mask is the CPU's Philox stream, element for element */
static void test_dropout_matches_cpu(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU), *g = tp_ctx_new(TP_CUDA);
    int64_t n = 4097;
    tp_tensor *xc = tp_full(c, TP_F32, 1, &n, 1.0), *xg = tp_full(g, TP_F32, 1, &n, 1.0);
    tp_rng r1 = {g_seed, 3, 11}, r2 = {g_seed, 3, 11};
    tp_tensor *a = tp_dropout(c, xc, 0.4f, &r1), *b = tp_dropout(g, xg, 0.4f, &r2);
    TP_CHECK(a && b && r1.offset == r2.offset);
    if (a && b) {
        float *fa = fetch(a), *fb = fetch(b);
        int diff = 0;
        for (int64_t i = 0; i < n; i++) diff += fa[i] != fb[i];
        TP_CHECKF(diff == 0, "%d of %lld dropout elements differ", diff, (long long)n);
        free(fa);
        free(fb);
    }
    tp_ctx_free(c);
    tp_ctx_free(g);
}

/* A small training step on device params: AdamW on the GPU equals AdamW on the CPU, and once
 * warmed up the step makes no cudaMalloc. */
static void one_step(tp_ctx *c, tp_tensor *w, tp_adamw *opt) {
    tp_ctx_reset(c);
    tp_rng r = {5, 5, 0};
    tp_tensor *x = tp_randn(c, TP_DIMS(6, 16), 1.0f, &r);
    tp_tensor *y = tp_silu(c, tp_linear(c, x, w, NULL));
    tp_tensor *l = tp_mean_all(c, tp_mul(c, y, y));
    TP_CHECKF(tp_backward(c, l, NULL) == TP_OK, "%s", tp_ctx_error(c));
    tp_err e = {0};
    tp_clip_grad_norm(&w, 1, 0.5);
    TP_CHECKF(tp_adamw_step(opt, 1e-2f, &e) == TP_OK, "%s", e.msg);
    tp_adamw_zero_grad(opt);
}

static void test_train_step_device(void) {
    tp_err e = {0};
    int64_t sh[2] = {8, 16};
    tp_tensor *wc = tp_param_alloc_on("w", TP_CPU, 2, sh, &e);
    tp_tensor *wg = tp_param_alloc_on("w", TP_CUDA, 2, sh, &e);
    TP_CHECKF(wc && wg, "%s", e.msg);
    if (!wc || !wg) return;
    tp_rng r = {g_seed, 4, 0};
    tp_fill_normal(wc, 0, 0.3f, &r);
    TP_CHECK(tp_copy_into(wg, wc, &e) == TP_OK);
    tp_adamw *oc = tp_adamw_new(&wc, 1, NULL, &e), *og = tp_adamw_new(&wg, 1, NULL, &e);
    TP_CHECKF(oc && og, "%s", e.msg);
    tp_ctx *cc = tp_ctx_new(TP_CPU), *gc = tp_ctx_new(TP_CUDA);
    uint64_t mallocs = 0;
    for (int s = 0; s < 5 && oc && og; s++) {
        if (s == 2) mallocs = tp_cuda_malloc_count();
        one_step(cc, wc, oc);
        one_step(gc, wg, og);
    }
    TP_CHECKF(tp_cuda_malloc_count() == mallocs, "%llu cudaMalloc calls in warmed-up steps",
              (unsigned long long)(tp_cuda_malloc_count() - mallocs));
    float *a = fetch(wg), *b = fetch(wc);
    int nan = 0;
    double err = nerr(a, b, 128, &nan);
    TP_CHECKF(!nan && err < 1e-3, "device AdamW params differ from cpu: %.3g", err);
    free(a);
    free(b);
    tp_adamw_free(oc);
    tp_adamw_free(og);
    tp_ctx_free(cc);
    tp_ctx_free(gc);
    tp_tensor_free(wc);
    tp_tensor_free(wg);
}

/* Large host->device copies go through the pinned double buffer (> 32 MB: several rounds);
 * the data must arrive intact, including the last partial chunk. */
static void test_large_upload(void) {
    int64_t n = (int64_t)(70 << 20) / 4 + 123; /* 70 MB + a tail */
    float *h = malloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = (float)(i % 100003) * 0.5f;
    tp_ctx *g = tp_ctx_new(TP_CUDA);
    tp_tensor *t = tp_from_f32(g, 1, &n, h);
    TP_CHECKF(t != NULL, "%s", tp_ctx_error(g));
    if (t) {
        float *b = fetch(t);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += b[i] != h[i];
        TP_CHECKF(bad == 0, "%lld of %lld uploaded floats differ", (long long)bad, (long long)n);
        free(b);
    }
    tp_ctx_free(g);
    free(h);
}

/* A CUDA graph captured from ops (no host syncs inside) replays with the inputs' new values. */
static void test_graph_replay(void) {
    tp_ctx *g = tp_ctx_new(TP_CUDA);
    poison(g); /* one big arena chunk, so nothing inside the capture calls cudaMalloc */
    int64_t n = 1000;
    tp_tensor *a = tp_full(g, TP_F32, 1, &n, 1.0), *b = tp_full(g, TP_F32, 1, &n, 2.0);
    tp_err e = {0};
    tp_cuda_graph *gr = NULL;
    TP_CHECKF(a && b && tp_cuda_graph_begin(&e) == TP_OK, "%s", e.msg);
    tp_tensor *c = tp_silu(g, tp_add(g, a, b));
    tp_status s = tp_cuda_graph_end(&gr, &e);
    TP_CHECKF(c && s == TP_OK, "capture: %s %s", e.msg, tp_ctx_error(g));
    if (c && gr) {
        TP_CHECK(tp_fill_value(a, 3.0) == TP_OK);
        TP_CHECKF(tp_cuda_graph_replay(gr, &e) == TP_OK, "%s", e.msg);
        float *f = fetch(c);
        double want = 5.0 / (1.0 + exp(-5.0));
        int bad = 0;
        for (int64_t i = 0; i < n; i++) bad += fabs(f[i] - want) > 1e-5;
        TP_CHECKF(bad == 0, "%d of %lld replayed outputs wrong", bad, (long long)n);
        free(f);
    }
    tp_cuda_graph_free(gr);
    tp_ctx_free(g);
}

int main(int argc, char **argv) {
    tp_err err = {0};
    if (tp_cuda_backend_register(&err) != TP_OK) {
        printf("SKIP test_cuda_ops: no usable GPU: %s\n", err.msg);
        return 77;
    }
    tp_cuda_info info;
    if (tp_cuda_get_info(&info, &err) == TP_OK)
        fprintf(stderr, "device: %s (sm_%d%d, %d SMs)\n", info.name, info.cc_major, info.cc_minor,
                info.sm_count);
    const char *s = getenv("TP_TEST_SEED");
    g_seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "seed %llu (rerun with TP_TEST_SEED=%llu)\n", (unsigned long long)g_seed,
            (unsigned long long)g_seed);
    static const tp_test_case cases[] = {
        TP_CASE(test_ops_vs_cpu),          TP_CASE(test_gemv_paths),
        TP_CASE(test_argmax_matches_cpu),  TP_CASE(test_range_errors),
        TP_CASE(test_strided_device_copy), TP_CASE(test_dropout_matches_cpu),
        TP_CASE(test_train_step_device),   TP_CASE(test_graph_replay),
        TP_CASE(test_large_upload),
    };
    return tp_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
