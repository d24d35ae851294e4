/* bench_perceiver.c — the Perceiver bridge exactly as bench/peer_torch.py builds it (so the two
 * sides time the same arithmetic): latents [M,D]; per block x += MHA(LN1(x), LN_kv(h)) with key
 * padding, y = LN2(x), x += MHA(y, y), x += W2 GELU(W1 LN3(x) + b1) + b2; then x * rsqrt(mean
 * x^2 + 1e-6) * alpha. nn.MultiheadAttention: q/k/v/out projections with biases, D/heads per head.
 * Trainable params are stored in train_dt. bf16 (the study's and the peer's pure-bf16 training):
 * the bf16 params are the weights of both training and inference, AdamW keeps bf16 moments, grads
 * are f32. f32: AdamW master weights; inference reads a bf16 copy made once, training casts the
 * f32 params on the tape each step so gradients reach them. (On the CPU everything computes in
 * f32: bf16 params are widened on the tape.) */
#include <stdlib.h>
#include <string.h>

#include "run/bench.h"
#include "telepathy/optim.h"
#ifdef TP_HAVE_CUDA
#include "tp_cuda.h"
#endif

enum { MHA_WQ, MHA_BQ, MHA_WK, MHA_BK, MHA_WV, MHA_BV, MHA_WO, MHA_BO, MHA_N };
enum {
    B_LN1W,
    B_LN1B,
    B_LNKW,
    B_LNKB,
    B_LN2W,
    B_LN2B,
    B_LN3W,
    B_LN3B,
    B_CROSS,                  /* MHA_N entries */
    B_SELF = B_CROSS + MHA_N, /* MHA_N entries */
    B_W1 = B_SELF + MHA_N,
    B_B1,
    B_W2,
    B_B2,
    B_N
};
#define MAX_DEPTH 8

struct tp_bench_perceiver {
    int d, m, depth, heads, ffn;
    tp_device dev;
    int n;             /* params: latents, alpha, then depth * B_N */
    tp_tensor **p;     /* trainable params, stored in train_dt */
    tp_tensor **infer; /* what inference reads: bf16 copies of f32 params on the GPU, else p */
};

static int n_params(int depth) {
    return 2 + depth * B_N;
}

static tp_tensor *param(tp_device dev, const char *name, int ndim, const int64_t *shape, float mean,
                        float std, uint64_t seed, uint64_t stream, tp_err *err) {
    tp_tensor *t = tp_param_alloc_on(name, dev, ndim, shape, err);
    if (!t) return NULL;
    tp_status s = TP_OK;
    if (std == 0.0f) {
        s = tp_fill_value(t, mean);
    } else {
#ifdef TP_HAVE_CUDA
        if (dev == TP_CUDA)
            s = tp_cuda_fill_normal(t, mean, std, seed, stream, err);
        else
#endif
        {
            tp_rng r = {seed, stream, 0};
            s = tp_fill_normal(t, mean, std, &r);
        }
    }
    if (s) {
        tp_errf(err, s, "bench perceiver: cannot initialise '%s'", name);
        tp_tensor_free(t);
        return NULL;
    }
    return t;
}

void tp_bench_perceiver_free(tp_bench_perceiver *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        if (p->infer && p->infer[i] && p->infer[i] != p->p[i]) tp_tensor_free(p->infer[i]);
        if (p->p) tp_tensor_free(p->p[i]);
    }
    free(p->p);
    free(p->infer);
    free(p);
}

tp_status tp_bench_perceiver_new(tp_bench_perceiver **out, int d, int m, int depth, int heads,
                                 int ffn, tp_device dev, tp_dtype train_dt, uint64_t seed,
                                 tp_err *err) {
    *out = NULL;
    if (depth < 1 || depth > MAX_DEPTH || heads < 1 || d % heads || m < 1 || ffn < 1)
        return tp_errf(
            err, TP_EINVAL,
            "bench perceiver: depth %d (1..%d), heads %d dividing width %d, M %d, ffn %d", depth,
            MAX_DEPTH, heads, d, m, ffn);
    if (train_dt != TP_F32 && train_dt != TP_BF16)
        return tp_errf(err, TP_EDTYPE, "bench perceiver: train dtype %s; expected f32 or bf16",
                       tp_dtype_name(train_dt));
    tp_bench_perceiver *p = calloc(1, sizeof *p);
    if (!p) return tp_errf(err, TP_ENOMEM, "bench perceiver: out of memory");
    p->d = d;
    p->m = m;
    p->depth = depth;
    p->heads = heads;
    p->ffn = ffn;
    p->dev = dev;
    p->n = n_params(depth);
    p->p = calloc((size_t)p->n, sizeof *p->p);
    p->infer = calloc((size_t)p->n, sizeof *p->infer);
    if (!p->p || !p->infer) {
        tp_bench_perceiver_free(p);
        return tp_errf(err, TP_ENOMEM, "bench perceiver: out of memory");
    }
    int64_t D = d, F = (int64_t)ffn * d;
    uint64_t st = 100;
    int k = 0;
    tp_status s = TP_OK;
#define P(name, nd, mean, std, ...)                                                                \
    do {                                                                                           \
        if (s == TP_OK) {                                                                          \
            p->p[k] = param(dev, name, nd, (int64_t[]){__VA_ARGS__}, mean, std, seed, st++, err);  \
            if (!p->p[k]) s = err ? err->code : TP_ENOMEM;                                         \
            k++;                                                                                   \
        }                                                                                          \
    } while (0)
    P("latents", 2, 0.0f, 0.02f, m, D);
    P("alpha", 1, 0.0027f, 0.0f, 1);
    for (int b = 0; b < depth; b++) {
        for (int ln = 0; ln < 4; ln++) {
            P("ln.w", 1, 1.0f, 0.0f, D);
            P("ln.b", 1, 0.0f, 0.0f, D);
        }
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < 4; j++) {
                P("attn.w", 2, 0.0f, 0.02f, D, D);
                P("attn.b", 1, 0.0f, 0.0f, D);
            }
        P("ffn.w1", 2, 0.0f, 0.02f, F, D);
        P("ffn.b1", 1, 0.0f, 0.0f, F);
        P("ffn.w2", 2, 0.0f, 0.02f, D, F);
        P("ffn.b2", 1, 0.0f, 0.0f, D);
    }
#undef P
    for (int i = 0; s == TP_OK && i < p->n; i++) {
        /* initialised in f32 from the same stream either way, so the two precisions start from
         * the same values up to rounding */
        if (train_dt == TP_BF16 && (s = tp_param_set_dtype(p->p[i], TP_BF16, err)) != TP_OK) break;
        if (dev == TP_CPU || train_dt == TP_BF16) {
            p->infer[i] = p->p[i];
            continue;
        }
        p->infer[i] = tp_tensor_alloc(TP_BF16, dev, p->p[i]->ndim, p->p[i]->shape, err);
        if (!p->infer[i] || (s = tp_copy_into(p->infer[i], p->p[i], err)) != TP_OK)
            s = err && err->code ? err->code : TP_ENOMEM;
    }
    if (s != TP_OK) {
        tp_bench_perceiver_free(p);
        return s;
    }
    *out = p;
    return TP_OK;
}

int tp_bench_perceiver_params(tp_bench_perceiver *p, tp_tensor ***params) {
    *params = p->p;
    return p->n;
}

tp_dtype tp_bench_perceiver_train_dtype(const tp_bench_perceiver *p) {
    return p->p[0]->dtype;
}

int64_t tp_bench_perceiver_numel(const tp_bench_perceiver *p) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++) n += tp_numel(p->p[i]);
    return n;
}

/* [B,T,D] -> [B,H,T,D/H] contiguous */
static tp_tensor *heads_of(tp_ctx *c, tp_tensor *x, int64_t B, int64_t T, int64_t H, int64_t Dh) {
    return tp_contiguous(c, tp_transpose(c, tp_reshape(c, x, TP_DIMS(B, T, H, Dh)), 1, 2));
}

static tp_tensor *mha(tp_ctx *c, tp_tensor *const *w, tp_tensor *q_in, tp_tensor *kv_in,
                      tp_tensor *mask, int heads) {
    if (!q_in || !kv_in) return NULL;
    int64_t B = q_in->shape[0], M = q_in->shape[1], T = kv_in->shape[1], D = q_in->shape[2];
    int64_t Dh = D / heads;
    tp_tensor *q = heads_of(c, tp_linear(c, q_in, w[MHA_WQ], w[MHA_BQ]), B, M, heads, Dh);
    tp_tensor *k = heads_of(c, tp_linear(c, kv_in, w[MHA_WK], w[MHA_BK]), B, T, heads, Dh);
    tp_tensor *v = heads_of(c, tp_linear(c, kv_in, w[MHA_WV], w[MHA_BV]), B, T, heads, Dh);
    tp_attn_cfg cfg = {0, 0, 0, 0.0f};
    tp_tensor *a = tp_attention(c, q, k, v, mask, &cfg);
    a = tp_reshape(c, tp_transpose(c, a, 1, 2), TP_DIMS(B, M, D));
    return tp_linear(c, a, w[MHA_WO], w[MHA_BO]);
}

static tp_tensor *forward_blocks(tp_bench_perceiver *p, tp_ctx *c, tp_tensor **w, tp_tensor *h,
                                 tp_tensor *mask, tp_dtype cd);

tp_tensor *tp_bench_perceiver_forward(tp_bench_perceiver *p, tp_ctx *c, tp_tensor *h,
                                      tp_tensor *mask, int train) {
    if (!h) return NULL;
    tp_tensor *w[2 + MAX_DEPTH * B_N];
    tp_dtype cd = p->dev == TP_CPU ? TP_F32 : TP_BF16;
    /* bf16 params on the GPU are used as they are (tp_cast of the same dtype is the identity) */
    for (int i = 0; i < p->n; i++) w[i] = train ? tp_cast(c, p->p[i], cd) : p->infer[i];
    /* inference may read the params themselves (bf16 training, or the CPU): record no tape, as
     * the peer's torch.no_grad(), and nothing is saved for a backward that never comes */
    int prev = train ? -1 : tp_set_grad_enabled(c, 0);
    tp_tensor *out = forward_blocks(p, c, w, h, mask, cd);
    if (prev >= 0) tp_set_grad_enabled(c, prev);
    return out;
}

static tp_tensor *forward_blocks(tp_bench_perceiver *p, tp_ctx *c, tp_tensor **w, tp_tensor *h,
                                 tp_tensor *mask, tp_dtype cd) {
    int64_t B = h->shape[0], D = p->d;
    if (h->dtype != cd) h = tp_cast(c, h, cd);
    tp_tensor *x = tp_add(c, tp_zeros(c, cd, TP_DIMS(B, p->m, D)), w[0]);
    for (int b = 0; b < p->depth; b++) {
        tp_tensor **bw = w + 2 + b * B_N;
        tp_tensor *kv = tp_layernorm(c, h, bw[B_LNKW], bw[B_LNKB], 1e-5f);
        tp_tensor *qn = tp_layernorm(c, x, bw[B_LN1W], bw[B_LN1B], 1e-5f);
        x = tp_add(c, x, mha(c, bw + B_CROSS, qn, kv, mask, p->heads));
        tp_tensor *y = tp_layernorm(c, x, bw[B_LN2W], bw[B_LN2B], 1e-5f);
        x = tp_add(c, x, mha(c, bw + B_SELF, y, y, NULL, p->heads));
        tp_tensor *f = tp_layernorm(c, x, bw[B_LN3W], bw[B_LN3B], 1e-5f);
        f = tp_gelu(c, tp_linear(c, f, bw[B_W1], bw[B_B1]), TP_GELU_ERF);
        x = tp_add(c, x, tp_linear(c, f, bw[B_W2], bw[B_B2]));
    }
    x = tp_rmsnorm(c, x, NULL, 1e-6f);
    return tp_mul(c, x, w[1]);
}
