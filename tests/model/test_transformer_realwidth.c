/* test_transformer_realwidth.c — the real-width golden check (width 4096, Llama-3.1-8B layer
 * shapes, 2 layers, bf16 weights, llama3 RoPE at positions past 8192) against Hugging Face.
 * Needs TP_REALWIDTH_DIR = a directory written by tests/golden/models/realwidth.py (0.9 GB, so
 * it is made on the GPU machine by realwidth.sh, never committed); without it the case reports
 * SKIP. Tolerances as for the tiny goldens: 1e-4 forward, 1e-3 input gradient. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "golden_file.h"
#include "model_testutil.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_realwidth(void) {
    const char *dir = getenv("TP_REALWIDTH_DIR");
    if (!dir || !dir[0]) {
        fprintf(stderr, "SKIP test_realwidth: TP_REALWIDTH_DIR not set (device check: "
                        "tests/golden/models/realwidth.sh)\n");
        return;
    }
    char path[1100], msg[512];
    snprintf(path, sizeof path, "%s/golden.bin", dir);
    tpg_file g;
    if (tpg_load(&g, path, msg, sizeof msg) != 0) {
        TP_CHECKF(0, "%s", msg);
        return;
    }
    const tpg_array *ids = tpg_get(&g, "ids"), *mask = tpg_get(&g, "mask"),
                    *pos = tpg_get(&g, "pos"), *lg = tpg_get(&g, "logits"),
                    *hid = tpg_get(&g, "hidden"), *tgt = tpg_get(&g, "grad_targets"),
                    *ge = tpg_get(&g, "grad_embeds"), *gl = tpg_get(&g, "grad_loss");
    TP_CHECK(ids && mask && pos && lg && hid && tgt && ge && gl);
    tp_model *m = NULL;
    tp_err err = {0};
    double t0 = now_s();
    TP_CHECKF(tp_model_load(&m, dir, NULL, &err) == TP_OK, "%s", err.msg);
    fprintf(stderr, "  load (bf16 -> f32): %.2f s\n", now_s() - t0);
    if (!m || !ids || !mask || !pos || !lg || !hid || !tgt || !ge || !gl) goto done;
    TP_CHECK(m->cfg.hidden_size == 4096 && m->cfg.rope_scaling == TP_ROPE_LLAMA3);
    const tpg_array *inv = tpg_get(&g, "rope_inv_freq");
    TP_CHECK(inv != NULL);
    if (inv)
        TP_CHECKF(tu_inv_freq_diff(m, inv->data, inv->numel, "realwidth") < 1e-6,
                  "RoPE frequencies differ from transformers' beyond rounding");
    int B = (int)ids->shape[0], T = (int)ids->shape[1], Dm = 4096, Vm = m->cfg.vocab_size;
    int L = m->cfg.num_hidden_layers;
    float mf[64];
    for (int i = 0; i < B * T && i < 64; i++) mf[i] = (float)((int32_t *)mask->data)[i];
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    /* forward with hidden states */
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.ids = tp_from_i32(ctx, TP_DIMS(B, T), ids->data);
    in.mask = tp_from_f32(ctx, TP_DIMS(B, T), mf);
    in.pos = tp_from_i32(ctx, TP_DIMS(B, T), pos->data);
    in.n_hidden = L + 1;
    for (int i = 0; i <= L; i++) in.hidden_layers[i] = i;
    in.logits = TP_LOGITS_ALL;
    tp_fwd_out out;
    t0 = now_s();
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s", err.msg);
    fprintf(stderr, "  forward B=%d T=%d: %.3f s\n", B, T, now_s() - t0);
    float *ol = tu_host(out.logits);
    if (ol) {
        double e = tu_masked_err(ol, lg->data, mask->data, B * T, Vm);
        TP_CHECKF(e <= 1e-4, "logits rel err %.3g", e);
        fprintf(stderr, "  logits rel err %.3g\n", e);
    }
    for (int l = 0; l <= L; l++) {
        float *h = tu_host(out.hidden[l]);
        if (!h) continue;
        double e = tu_masked_err(h, (const float *)hid->data + (int64_t)l * B * T * Dm, mask->data,
                                 B * T, Dm);
        TP_CHECKF(e <= 1e-4, "hidden_states[%d] rel err %.3g", l, e);
        fprintf(stderr, "  hidden_states[%d] rel err %.3g\n", l, e);
        free(h);
    }
    free(ol);
    /* input gradient through both layers */
    tp_ctx_reset(ctx);
    tp_tensor *e = tp_model_embed(m, ctx, tp_from_i32(ctx, TP_DIMS(B, T), ids->data), &err);
    float *eh = tu_host(e);
    memset(&in, 0, sizeof in);
    in.embeds = eh ? tp_from_f32(ctx, TP_DIMS(B, T, Dm), eh) : NULL;
    free(eh);
    tp_requires_grad(ctx, in.embeds);
    in.mask = tp_from_f32(ctx, TP_DIMS(B, T), mf);
    in.pos = tp_from_i32(ctx, TP_DIMS(B, T), pos->data);
    in.logits = TP_LOGITS_LAST;
    t0 = now_s();
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s", err.msg);
    tp_tensor *loss = tp_cross_entropy(ctx, tp_reshape(ctx, out.logits, TP_DIMS(B, -1)),
                                       tp_from_i32(ctx, TP_DIMS(B), tgt->data), -100, 0.0f);
    TP_CHECKF(loss && tp_backward(ctx, loss, NULL) == TP_OK, "%s", tp_ctx_error(ctx));
    fprintf(stderr, "  forward + backward to inputs_embeds: %.3f s\n", now_s() - t0);
    if (loss) {
        double l = tp_item(loss, 0), r = ((float *)gl->data)[0];
        TP_CHECKF(fabs(l - r) <= 1e-4 * fabs(r), "loss %.8g vs HF %.8g", l, r);
    }
    float *gr = in.embeds && in.embeds->grad ? tu_host(in.embeds->grad) : NULL;
    TP_CHECK(gr != NULL);
    if (gr) {
        double ee = tu_masked_err(gr, ge->data, NULL, B * T, Dm);
        TP_CHECKF(ee <= 1e-3, "input gradient rel err %.3g", ee);
        fprintf(stderr, "  input gradient rel err %.3g\n", ee);
    }
    free(gr);
    tp_ctx_free(ctx);
done:
    tp_model_free(m);
    tpg_free(&g);
}

TP_TEST_RUN(TP_CASE(test_realwidth))
