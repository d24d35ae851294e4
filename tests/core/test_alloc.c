/* test_alloc.c — after warm-up, a full training step (forward, backward, clipping, AdamW) of a
 * small 2-layer Llama-style model (embedding, RMSNorm, RoPE, GQA causal attention with padding,
 * SwiGLU MLP, tied-free LM head, cross-entropy) makes zero heap allocations in the tensor core,
 * and the arena has coalesced into one chunk per arena. */
#include <string.h>

#include "core/ctx.h"
#include "telepathy/optim.h"
#include "telepathy/plugin.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

enum { V = 37, D = 16, H = 4, HKV = 2, DH = 4, F = 24, L = 2, B = 2, T = 7 };

typedef struct {
    tp_tensor *emb, *head, *norm;
    tp_tensor *ln1[L], *ln2[L], *wq[L], *wk[L], *wv[L], *wo[L], *wg[L], *wu[L], *wd[L];
} model;

static tp_tensor *P(tp_params *ps, const char *name, int nd, const int64_t *shape, float std,
                    tp_rng *r) {
    tp_err e = {0};
    tp_tensor *t = tp_param_alloc(name, nd, shape, &e);
    if (std > 0)
        tp_fill_normal(t, 0, std, r);
    else
        tp_fill_value(t, 1.0);
    ps->p[ps->n++] = t;
    return t;
}

static tp_tensor *heads(tp_ctx *c, tp_tensor *x, int nh) { /* [B,T,nh*DH] -> [B,nh,T,DH] */
    return tp_transpose(c, tp_reshape(c, x, TP_DIMS(B, T, nh, DH)), 1, 2);
}

static tp_tensor *forward(tp_ctx *c, const model *m, const tp_rope_cfg *rope, const int32_t *ids,
                          const int32_t *pos, const float *mask, const int32_t *tgt) {
    tp_tensor *x = tp_embedding(c, m->emb, tp_from_i32(c, TP_DIMS(B, T), ids));
    tp_tensor *p = tp_from_i32(c, TP_DIMS(B, T), pos), *km = tp_from_f32(c, TP_DIMS(B, T), mask);
    tp_attn_cfg ac = {1, 0, 0, 0};
    for (int l = 0; l < L; l++) {
        tp_tensor *h = tp_rmsnorm(c, x, m->ln1[l], 1e-5f);
        tp_tensor *q = tp_rope(c, heads(c, tp_linear(c, h, m->wq[l], NULL), H), p, rope);
        tp_tensor *k = tp_rope(c, heads(c, tp_linear(c, h, m->wk[l], NULL), HKV), p, rope);
        tp_tensor *v = heads(c, tp_linear(c, h, m->wv[l], NULL), HKV);
        tp_tensor *a = tp_attention(c, q, k, v, km, &ac);
        a = tp_reshape(c, tp_transpose(c, a, 1, 2), TP_DIMS(B, T, H * DH));
        x = tp_add(c, x, tp_linear(c, a, m->wo[l], NULL));
        h = tp_rmsnorm(c, x, m->ln2[l], 1e-5f);
        tp_tensor *g =
            tp_swiglu(c, tp_linear(c, h, m->wg[l], NULL), tp_linear(c, h, m->wu[l], NULL));
        x = tp_add(c, x, tp_linear(c, g, m->wd[l], NULL));
    }
    tp_tensor *logits = tp_linear(c, tp_rmsnorm(c, x, m->norm, 1e-5f), m->head, NULL);
    return tp_cross_entropy(c, tp_reshape(c, logits, TP_DIMS(B * T, V)),
                            tp_from_i32(c, TP_DIMS(B * T), tgt), -100, 0.0f);
}

static void test_zero_alloc_step(void) {
    static tp_params ps;
    tp_rng r = {3, 0, 0};
    model m;
    m.emb = P(&ps, "emb", TP_DIMS(V, D), 0.5f, &r);
    m.head = P(&ps, "head", TP_DIMS(V, D), 0.2f, &r);
    m.norm = P(&ps, "norm", TP_DIMS(D), 0, &r);
    for (int l = 0; l < L; l++) {
        m.ln1[l] = P(&ps, "ln1", TP_DIMS(D), 0, &r);
        m.ln2[l] = P(&ps, "ln2", TP_DIMS(D), 0, &r);
        m.wq[l] = P(&ps, "wq", TP_DIMS(H * DH, D), 0.2f, &r);
        m.wk[l] = P(&ps, "wk", TP_DIMS(HKV * DH, D), 0.2f, &r);
        m.wv[l] = P(&ps, "wv", TP_DIMS(HKV * DH, D), 0.2f, &r);
        m.wo[l] = P(&ps, "wo", TP_DIMS(D, H * DH), 0.2f, &r);
        m.wg[l] = P(&ps, "wg", TP_DIMS(F, D), 0.2f, &r);
        m.wu[l] = P(&ps, "wu", TP_DIMS(F, D), 0.2f, &r);
        m.wd[l] = P(&ps, "wd", TP_DIMS(D, F), 0.2f, &r);
    }
    tp_err e = {0};
    tp_adamw *o = tp_adamw_new(ps.p, ps.n, NULL, &e);
    TP_CHECKF(o != NULL, "%s", e.msg);
    tp_rope_cfg rope;
    tp_rope_init(&rope, DH, 10000.0, 0, 0, 0, 0, 0);
    int32_t ids[B * T], pos[B * T], tgt[B * T];
    float mask[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (i * 7 + 3) % V;
        tgt[i] = (i * 5 + 1) % V;
        mask[i] = (i / T == 1 && i % T < 2) ? 0.0f : 1.0f; /* row 1 left-padded by 2 */
        pos[i] = i / T == 1 ? (i % T < 2 ? 0 : i % T - 2) : i % T;
    }
    tp_ctx *c = tp_ctx_new(TP_CPU);
    double first = 0, last = 0;
    uint64_t before = 0;
    for (int step = 0; step < 8; step++) {
        if (step == 5) before = tp_heap_alloc_count();
        tp_ctx_reset(c);
        tp_adamw_zero_grad(o);
        tp_tensor *loss = forward(c, &m, &rope, ids, pos, mask, tgt);
        TP_CHECKF(loss != NULL, "%s", tp_ctx_error(c));
        if (!loss) break;
        TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
        TP_CHECK(tp_clip_grad_norm(ps.p, ps.n, 1.0) > 0);
        TP_CHECK(tp_adamw_step(o, 1e-2f, &e) == TP_OK);
        if (step == 0) first = tp_item(loss, 0);
        last = tp_item(loss, 0);
    }
    uint64_t allocs = tp_heap_alloc_count() - before;
    fprintf(stderr,
            "  loss %.4f -> %.4f; heap allocations in 3 warm steps: %llu; peak %zu B, "
            "arena %zu B (%d+%d chunks)\n",
            first, last, (unsigned long long)allocs, tp_ctx_peak_bytes(c), tp_ctx_arena_bytes(c),
            c->host.n_chunks, c->data.n_chunks);
    TP_CHECK(allocs == 0);
    TP_CHECK(last < first);
    TP_CHECK(c->host.n_chunks == 1 && c->data.n_chunks == 1);
    TP_CHECK(tp_ctx_peak_bytes(c) > 0 && tp_ctx_peak_bytes(c) <= tp_ctx_arena_bytes(c));
    tp_ctx_free(c);
    tp_adamw_free(o);
    for (int i = 0; i < ps.n; i++) tp_tensor_free(ps.p[i]);
}

/* A step far larger than the first chunk spills, then coalesces to one chunk. */
static void test_arena_coalesces(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    for (int step = 0; step < 3; step++) {
        tp_ctx_reset(c);
        for (int i = 0; i < 40; i++) TP_CHECK(tp_zeros(c, TP_F32, TP_DIMS(256, 256)) != NULL);
    }
    TP_CHECK(c->data.n_chunks == 1);
    uint64_t before = tp_heap_alloc_count();
    tp_ctx_reset(c);
    for (int i = 0; i < 40; i++) tp_zeros(c, TP_F32, TP_DIMS(256, 256));
    TP_CHECK(tp_heap_alloc_count() == before);
    TP_CHECK(tp_ctx_peak_bytes(c) >= 40u * 256 * 256 * 4);
    tp_ctx_free(c);
}

TP_TEST_RUN(TP_CASE(test_zero_alloc_step), TP_CASE(test_arena_coalesces))
