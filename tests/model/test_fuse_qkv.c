/* test_fuse_qkv.c — tp_model_fuse_qkv (GPU models run it at load): the stacked q/k/v projection
 * gives the same logits and the same input gradient as three projections, with and without
 * biases (Qwen2), through padded batches and the KV cache; the old weight slots stay readable
 * views of the stacked tensor. The gate/up stacking (one [2I, D] GEMM, SwiGLU on its halves) is
 * checked by the same comparisons. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_testutil.h"

/* logits [B,T,V] for fixed ids and a padded second row, plus d(sum logits * r)/d(embeds); B is
 * 1 or 2 (batch 1 takes the joint q/k rope of the fused layout) */
static int run(tp_model *m, int B, float **logits, float **gemb) {
    enum { T = 6 };
    int32_t ids[2 * T] = {3, 7, 11, 2, 9, 40, 5, 5, 17, 30, 1, 0};
    float mask[2 * T] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    tp_err err = {0};
    tp_tensor *e = tp_model_embed(m, ctx, tp_from_i32(ctx, TP_DIMS(B, T), ids), &err);
    e = e ? tp_contiguous(ctx, tp_detach(ctx, e)) : NULL;
    int ok = e && tp_requires_grad(ctx, e) == TP_OK;
    tp_fwd_in in = {
        .embeds = e, .mask = tp_from_f32(ctx, TP_DIMS(B, T), mask), .logits = TP_LOGITS_ALL};
    tp_fwd_out out;
    ok = ok && tp_model_forward(m, ctx, &in, &out, &err) == TP_OK;
    if (ok) {
        int64_t n = tp_numel(out.logits);
        float *r = malloc((size_t)n * sizeof *r);
        for (int64_t i = 0; r && i < n; i++) r[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
        tp_tensor *rt = r ? tp_from_f32(ctx, out.logits->ndim, out.logits->shape, r) : NULL;
        free(r);
        *logits = tu_host(out.logits);
        ok = rt && tp_backward(ctx, out.logits, rt) == TP_OK && e->grad;
        *gemb = ok ? tu_host(e->grad) : NULL;
    }
    if (!ok) fprintf(stderr, "run: %s %s\n", err.msg, tp_ctx_error(ctx));
    tp_ctx_free(ctx);
    return ok && *logits && *gemb;
}

/* greedy continuation of 4 tokens with the KV cache (the decode path of generate) */
static int decode(tp_model *m, int32_t *got) {
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    tp_err err = {0};
    tp_kv_cache *kc = NULL;
    int ok = tp_kv_cache_new(&kc, m, 1, 16, &err) == TP_OK;
    int32_t tok[3] = {4, 8, 15};
    int T = 3;
    for (int step = 0; ok && step < 4; step++) {
        tp_fwd_in in = {.ids = tp_from_i32(ctx, TP_DIMS(1, T), step ? &got[step - 1] : tok),
                        .cache = kc,
                        .logits = TP_LOGITS_LAST};
        tp_fwd_out out;
        ok = tp_model_forward(m, ctx, &in, &out, &err) == TP_OK;
        float *l = ok ? tu_host(out.logits) : NULL;
        int best = 0;
        for (int v = 1; l && v < m->cfg.vocab_size; v++)
            if (l[v] > l[best]) best = v;
        free(l);
        got[step] = best;
        T = 1;
    }
    if (!ok) fprintf(stderr, "decode: %s\n", err.msg);
    tp_kv_cache_free(kc);
    tp_ctx_free(ctx);
    return ok;
}

static void check_arch(tp_arch arch, const char *name) {
    tp_model *m = tu_tiny(arch, 2, 77);
    TP_CHECK(m != NULL);
    if (!m) return;
    float *l0 = NULL, *g0 = NULL, *l1 = NULL, *g1 = NULL, *b0 = NULL, *h0 = NULL, *b1 = NULL,
          *h1 = NULL;
    int32_t d0[4], d1[4];
    TP_CHECK(run(m, 2, &l0, &g0));
    TP_CHECK(run(m, 1, &b0, &h0));
    TP_CHECK(decode(m, d0));
    float *wk_before = tu_host(m->layers[1].wk);
    tp_err err = {0};
    TP_CHECKF(tp_model_fuse_qkv(m, &err) == TP_OK, "%s: %s", name, err.msg);
    const tp_layer_weights *w = &m->layers[1];
    TP_CHECK(w->wqkv && w->wqkv->shape[0] == w->wq->shape[0] + 2 * w->wk->shape[0]);
    TP_CHECK(!!w->bqkv == (arch == TP_ARCH_QWEN2));
    /* the old slots are views of the stacked rows, with the same values */
    float *wk_after = tu_host(w->wk);
    TP_CHECK(wk_before && wk_after &&
             memcmp(wk_before, wk_after, (size_t)tp_numel(w->wk) * sizeof(float)) == 0);
    TP_CHECK((char *)w->wk->data ==
             (char *)w->wqkv->data + tp_numel(w->wq) * (int64_t)sizeof(float));
    /* gate|up: one [2I, D] owner, w_up its second half */
    TP_CHECK(w->wgu && w->wgu->shape[0] == 2 * w->w_gate->shape[0]);
    TP_CHECK(w->wgu && (char *)w->w_up->data ==
                           (char *)w->wgu->data + tp_numel(w->w_gate) * (int64_t)sizeof(float));
    TP_CHECK(run(m, 2, &l1, &g1));
    TP_CHECK(run(m, 1, &b1, &h1));
    TP_CHECK(decode(m, d1));
    int64_t nl = 2 * 6 * (int64_t)m->cfg.vocab_size, ng = 2 * 6 * (int64_t)m->cfg.hidden_size;
    if (l0 && l1 && g0 && g1) {
        double el = tu_rel_err(l1, l0, nl, 1e-6), eg = tu_rel_err(g1, g0, ng, 1e-6);
        fprintf(stderr, "  %s: fused vs three projections: logits %.2g, input grad %.2g\n", name,
                el, eg);
        TP_CHECKF(el < 1e-5 && eg < 1e-5, "%s: logits err %g, grad err %g", name, el, eg);
    }
    if (b0 && b1 && h0 && h1) {
        double el = tu_rel_err(b1, b0, nl / 2, 1e-6), eg = tu_rel_err(h1, h0, ng / 2, 1e-6);
        TP_CHECKF(el < 1e-5 && eg < 1e-5, "%s batch 1: logits err %g, grad err %g", name, el, eg);
    }
    TP_CHECK(memcmp(d0, d1, sizeof d0) == 0);
    TP_CHECK(tp_model_fuse_qkv(m, &err) == TP_OK); /* again: a no-op */
    free(l0), free(g0), free(l1), free(g1), free(wk_before), free(wk_after);
    free(b0), free(h0), free(b1), free(h1);
    tp_model_free(m); /* frees the views and the stacked owner (ASan checks) */
}

static void test_llama(void) {
    check_arch(TP_ARCH_LLAMA, "llama");
}
static void test_qwen2_bias(void) {
    check_arch(TP_ARCH_QWEN2, "qwen2");
}
static void test_mistral(void) {
    check_arch(TP_ARCH_MISTRAL, "mistral");
}

TP_TEST_RUN(TP_CASE(test_llama), TP_CASE(test_qwen2_bias), TP_CASE(test_mistral))
