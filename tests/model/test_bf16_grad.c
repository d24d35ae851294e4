/* test_bf16_grad.c — gradients through half-precision tensors, the GPU training path checked on the
 * CPU: a row gather (tp_embedding) of a bf16 tensor that requires grad scatter-adds an f32 grad
 * (the model gathers the logit rows of its bf16 hidden states this way, and the soft tokens'
 * grad flows through them: the bench's train_step failed on it), and a model holding bf16
 * weights runs forward + backward to bf16 inputs_embeds with frozen weights, matching the same
 * model in f32 (weights rounded to bf16 alike). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/transformer.h"
#include "model_testutil.h"
#include "tp_test.h"

static void test_gather_bf16_grad(void) {
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    float wv[6 * 4], gv[4 * 4];
    for (int i = 0; i < 24; i++) wv[i] = 0.25f * (float)(i - 12);
    for (int i = 0; i < 16; i++) gv[i] = (float)(i + 1);
    tp_tensor *w = tp_cast(ctx, tp_from_f32(ctx, TP_DIMS(6, 4), wv), TP_BF16);
    TP_CHECK(w && w->dtype == TP_BF16);
    TP_CHECK(tp_requires_grad(ctx, w) == TP_OK);
    int32_t idv[4] = {1, 1, 3, 5};
    tp_tensor *y = tp_embedding(ctx, w, tp_from_i32(ctx, TP_DIMS(4), idv));
    TP_CHECKF(y != NULL, "embedding of a bf16 tensor that requires grad: %s", tp_ctx_error(ctx));
    if (y) {
        float *yh = tu_host(y);
        for (int i = 0; yh && i < 4; i++)
            for (int d = 0; d < 4; d++)
                TP_CHECK(yh[i * 4 + d] == wv[idv[i] * 4 + d]); /* exact in bf16 */
        free(yh);
        tp_status s = tp_backward(ctx, y, tp_from_f32(ctx, TP_DIMS(4, 4), gv));
        TP_CHECKF(s == TP_OK, "%s", tp_ctx_error(ctx));
        TP_CHECK(w->grad && w->grad->dtype == TP_F32);
        float *g = w->grad ? tu_host(w->grad) : NULL;
        for (int r = 0; g && r < 6; r++)
            for (int d = 0; d < 4; d++) {
                float want = 0;
                for (int i = 0; i < 4; i++)
                    if (idv[i] == r) want += gv[i * 4 + d];
                TP_CHECKF(g[r * 4 + d] == want, "grad row %d col %d: %g, want %g", r, d,
                          g[r * 4 + d], want);
            }
        free(g);
    }
    tp_ctx_free(ctx);
}

/* replaces every weight of m by a bf16 copy (round = 1: by its bf16 rounding, kept in f32) */
static int to_bf16(tp_model *m, int round) {
    tp_err err = {0};
    tp_tensor **slots[4 + 16 * 11];
    int n = 0;
    slots[n++] = &m->embed;
    slots[n++] = &m->norm;
    if (m->lm_head != m->embed) slots[n++] = &m->lm_head;
    for (int l = 0; l < m->cfg.num_hidden_layers && l < 16; l++) {
        tp_tensor **w = (tp_tensor **)&m->layers[l];
        for (size_t i = 0; i < sizeof(tp_layer_weights) / sizeof(tp_tensor *); i++)
            if (w[i]) slots[n++] = &w[i];
    }
    for (int i = 0; i < n; i++) {
        tp_tensor *old = *slots[i];
        tp_tensor *h = tp_tensor_alloc(TP_BF16, TP_CPU, old->ndim, old->shape, &err);
        if (!h || tp_copy_into(h, old, &err) != TP_OK) return fprintf(stderr, "%s\n", err.msg), -1;
        if (round) {
            tp_tensor *f = tp_tensor_alloc(TP_F32, TP_CPU, old->ndim, old->shape, &err);
            if (!f || tp_copy_into(f, h, &err) != TP_OK) return -1;
            tp_tensor_free(h);
            h = f;
        }
        tp_tensor_free(old);
        *slots[i] = h;
    }
    if (m->cfg.tie_word_embeddings) m->lm_head = m->embed;
    if (!round) m->wdtype = TP_BF16;
    return 0;
}

/* loss of the 2 logit rows at positions {1, T-1} of each batch row; returns the embeds' grad */
static float *embeds_grad(tp_model *m, const float *e, int B, int T, double *loss_out) {
    int64_t D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    /* an f32 leaf cast to bf16 on the tape, as the bench's soft tokens are */
    tp_tensor *leaf = tp_from_f32(ctx, TP_DIMS(B, T, D), e);
    tp_requires_grad(ctx, leaf);
    in.embeds = tp_cast(ctx, leaf, TP_BF16);
    int32_t pos[4] = {1, T - 1, 1, T - 1}, tgt[4] = {3, 17, 41, 8};
    in.logits = TP_LOGITS_AT;
    in.logit_pos = tp_from_i32(ctx, TP_DIMS(B, 2), pos);
    tp_fwd_out out;
    tp_err err = {0};
    float *g = NULL;
    if (tp_model_forward(m, ctx, &in, &out, &err) != TP_OK) {
        fprintf(stderr, "embeds_grad: %s\n", err.msg);
        goto done;
    }
    tp_tensor *lg = tp_reshape(ctx, out.logits, TP_DIMS(B * 2, V));
    tp_tensor *loss = tp_cross_entropy(ctx, lg, tp_from_i32(ctx, TP_DIMS(B * 2), tgt), -100, 0.0f);
    if (!loss || tp_backward(ctx, loss, NULL) != TP_OK) {
        fprintf(stderr, "embeds_grad: backward: %s\n", tp_ctx_error(ctx));
        goto done;
    }
    *loss_out = tp_item(loss, 0);
    g = leaf->grad ? tu_host(leaf->grad) : NULL;
done:
    tp_ctx_free(ctx);
    return g;
}

static void test_bf16_model_input_grad(void) {
    for (int arch = 0; arch < 3; arch++) {
        tp_model *mb = tu_tiny((tp_arch)arch, 2, 70 + (uint64_t)arch);
        tp_model *mf = tu_tiny((tp_arch)arch, 2, 70 + (uint64_t)arch);
        TP_CHECK(mb && mf);
        if (!mb || !mf || to_bf16(mb, 0) || to_bf16(mf, 1)) {
            TP_CHECK(0);
            tp_model_free(mb);
            tp_model_free(mf);
            continue;
        }
        TP_CHECK(mb->embed->dtype == TP_BF16 && mb->layers[1].w_down->dtype == TP_BF16);
        enum { B = 2, T = 5 };
        int64_t D = mb->cfg.hidden_size;
        float *e = malloc(sizeof(float) * (size_t)(B * T * D));
        tp_rng rng = {5, (uint64_t)arch, 0};
        for (int64_t i = 0; i < B * T * D; i++)
            e[i] = tp_bf16_to_f32(tp_f32_to_bf16(0.5f * tp_rng_normal(&rng)));
        double lb = NAN, lf = NAN;
        float *gb = embeds_grad(mb, e, B, T, &lb), *gf = embeds_grad(mf, e, B, T, &lf);
        TP_CHECKF(gb != NULL, "arch %d: bf16 model: no grad at inputs_embeds", arch);
        TP_CHECK(gf != NULL);
        if (gb && gf) {
            double err = tu_rel_err(gb, gf, B * T * D, 1e-6);
            TP_CHECKF(err < 1e-3, "arch %d: bf16-weight grad vs f32 model: %g", arch, err);
            TP_CHECKF(fabs(lb - lf) < 1e-4 * (1 + fabs(lf)), "arch %d: loss %g vs %g", arch, lb,
                      lf);
            double gmax = 0;
            for (int64_t i = 0; i < B * T * D; i++) gmax = fmax(gmax, fabs(gb[i]));
            TP_CHECKF(gmax > 0, "arch %d: the embeds grad is all zero", arch);
        }
        TP_CHECK(!mb->embed->grad && !mb->lm_head->grad && !mb->layers[0].wq->grad);
        free(gb);
        free(gf);
        free(e);
        tp_model_free(mb);
        tp_model_free(mf);
    }
}

TP_TEST_RUN(TP_CASE(test_gather_bf16_grad), TP_CASE(test_bf16_model_input_grad))
