/* test_transformer_golden.c — the C engine against Hugging Face transformers: the fixtures in
 * tests/golden/models/fixtures/{llama,mistral,qwen2} (written by make_golden.py on the GPU
 * machine) hold tiny random models and what transformers computed for them. Required: logits and
 * hidden states within 1e-4 relative error (f32), identical greedy tokens, input gradients
 * within 1e-3. Until the fixtures are committed the cases report SKIP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "golden_file.h"
#include "model/generate.h"
#include "model_testutil.h"

#define TOL_FWD  1e-4
#define TOL_GRAD 1e-3

static const tpg_array *need(const tpg_file *g, const char *name, const char *model) {
    const tpg_array *a = tpg_get(g, name);
    TP_CHECKF(a != NULL, "%s: golden array '%s' missing", model, name);
    return a;
}

/* Forward of one padded batch, compared at real positions with logits and every hidden state. */
static void check_batch(tp_model *m, const tpg_file *g, const char *name, const char *pfx,
                        int explicit_pos) {
    char k[64];
    snprintf(k, sizeof k, "%s_ids", pfx);
    const tpg_array *ids = need(g, k, name);
    snprintf(k, sizeof k, "%s_mask", pfx);
    const tpg_array *mask = need(g, k, name);
    snprintf(k, sizeof k, "%s_logits", pfx);
    const tpg_array *lg = need(g, k, name);
    snprintf(k, sizeof k, "%s_hidden", pfx);
    const tpg_array *hid = need(g, k, name);
    snprintf(k, sizeof k, "%s_pos", pfx);
    const tpg_array *pos = explicit_pos ? need(g, k, name) : NULL;
    if (!ids || !mask || !lg || !hid || (explicit_pos && !pos)) return;
    int B = (int)ids->shape[0], T = (int)ids->shape[1], L = m->cfg.num_hidden_layers;
    int Dm = m->cfg.hidden_size, Vm = m->cfg.vocab_size;
    TP_CHECK(hid->shape[0] == L + 1 && lg->shape[2] == Vm && hid->shape[3] == Dm);
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    float mf[256];
    for (int i = 0; i < B * T && i < 256; i++) mf[i] = (float)((int32_t *)mask->data)[i];
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.ids = tp_from_i32(ctx, TP_DIMS(B, T), ids->data);
    in.mask = tp_from_f32(ctx, TP_DIMS(B, T), mf);
    tp_err err = {0};
    if (pos) {
        in.pos = tp_from_i32(ctx, TP_DIMS(B, T), pos->data);
        tp_tensor *mine = tp_positions_from_mask(ctx, in.mask, &err);
        int32_t *mp = mine ? (int32_t *)mine->data : NULL;
        TP_CHECK(mp && memcmp(mp, pos->data, (size_t)(B * T) * 4) == 0);
    }
    in.n_hidden = L + 1 < TP_FWD_MAX_HIDDEN ? L + 1 : TP_FWD_MAX_HIDDEN;
    for (int i = 0; i < in.n_hidden; i++) in.hidden_layers[i] = i;
    in.logits = TP_LOGITS_ALL;
    tp_fwd_out out;
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s: %s", name, err.msg);
    float *ol = tu_host(out.logits);
    if (ol) {
        double e = tu_masked_err(ol, lg->data, mask->data, B * T, Vm);
        TP_CHECKF(e <= TOL_FWD, "%s %s logits rel err %.3g", name, pfx, e);
        fprintf(stderr, "  %s %s: logits rel err %.3g", name, pfx, e);
    }
    for (int l = 0; l < in.n_hidden; l++) {
        float *h = tu_host(out.hidden[l]);
        if (!h) continue;
        const float *ref = (const float *)hid->data + (int64_t)l * B * T * Dm;
        double e = tu_masked_err(h, ref, mask->data, B * T, Dm);
        TP_CHECKF(e <= TOL_FWD, "%s %s hidden_states[%d] rel err %.3g", name, pfx, l, e);
        fprintf(stderr, ", h[%d] %.3g", l, e);
        free(h);
    }
    fprintf(stderr, "\n");
    free(ol);
    tp_ctx_free(ctx);
}

static void check_grad(tp_model *m, const tpg_file *g, const char *name) {
    const tpg_array *ids = need(g, "right_ids", name), *mask = need(g, "right_mask", name);
    const tpg_array *tgt = need(g, "grad_targets", name), *ge = need(g, "grad_embeds", name);
    const tpg_array *gl = need(g, "grad_loss", name);
    if (!ids || !mask || !tgt || !ge || !gl) return;
    int B = (int)ids->shape[0], T = (int)ids->shape[1], Dm = m->cfg.hidden_size;
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    tp_err err = {0};
    float mf[256];
    for (int i = 0; i < B * T && i < 256; i++) mf[i] = (float)((int32_t *)mask->data)[i];
    tp_tensor *e = tp_model_embed(m, ctx, tp_from_i32(ctx, TP_DIMS(B, T), ids->data), &err);
    float *eh = tu_host(e);
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.embeds = eh ? tp_from_f32(ctx, TP_DIMS(B, T, Dm), eh) : NULL;
    free(eh);
    if (!in.embeds) {
        TP_CHECKF(0, "%s: embeddings: %s", name, err.msg);
        tp_ctx_free(ctx);
        return;
    }
    tp_requires_grad(ctx, in.embeds);
    in.mask = tp_from_f32(ctx, TP_DIMS(B, T), mf);
    in.logits = TP_LOGITS_LAST;
    tp_fwd_out out;
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s: %s", name, err.msg);
    tp_tensor *loss = tp_cross_entropy(ctx, tp_reshape(ctx, out.logits, TP_DIMS(B, -1)),
                                       tp_from_i32(ctx, TP_DIMS(B), tgt->data), -100, 0.0f);
    TP_CHECKF(loss && tp_backward(ctx, loss, NULL) == TP_OK, "%s: %s", name, tp_ctx_error(ctx));
    if (loss) {
        double l = tp_item(loss, 0), r = ((float *)gl->data)[0];
        TP_CHECKF(fabs(l - r) <= TOL_FWD * fabs(r), "%s: loss %.8g vs HF %.8g", name, l, r);
    }
    float *gr = in.embeds->grad ? tu_host(in.embeds->grad) : NULL;
    TP_CHECKF(gr != NULL, "%s: no gradient reached inputs_embeds", name);
    if (gr) {
        double ee = tu_masked_err(gr, ge->data, NULL, B * T, Dm);
        TP_CHECKF(ee <= TOL_GRAD, "%s: input gradient rel err %.3g", name, ee);
        fprintf(stderr, "  %s: loss ok, d loss / d inputs_embeds rel err %.3g\n", name, ee);
    }
    TP_CHECK(m->embed->grad == NULL && m->layers[0].wq->grad == NULL && m->lm_head->grad == NULL);
    free(gr);
    tp_ctx_free(ctx);
}

static void check_generate(tp_model *m, const tpg_file *g, const char *name) {
    const tpg_array *ids = need(g, "gen_ids", name), *mask = need(g, "gen_mask", name);
    const tpg_array *noeos = need(g, "gen_noeos", name), *weos = need(g, "gen_eos", name);
    const tpg_array *eos = need(g, "gen_eos_id", name);
    if (!ids || !mask || !noeos || !weos || !eos) return;
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    tp_gen_cfg cfg = tp_gen_defaults(m);
    cfg.n_eos = 0;
    cfg.pad_id = 0;
    cfg.max_new_tokens = (int)noeos->shape[1];
    tp_gen_in in = {B, T, ids->data, NULL, mask->data};
    tp_gen_out out;
    tp_err err = {0};
    TP_CHECKF(tp_generate(m, &in, &cfg, &out, &err) == TP_OK, "%s: %s", name, err.msg);
    if (out.tokens) {
        TP_CHECKF(memcmp(out.tokens, noeos->data, (size_t)(B * cfg.max_new_tokens) * 4) == 0,
                  "%s: greedy tokens differ from HF generate", name);
        tp_gen_out_free(&out);
    }
    cfg.eos_ids[0] = ((int32_t *)eos->data)[0];
    cfg.n_eos = 1;
    cfg.max_new_tokens = (int)noeos->shape[1];
    TP_CHECKF(tp_generate(m, &in, &cfg, &out, &err) == TP_OK, "%s: %s", name, err.msg);
    int G2 = (int)weos->shape[1];
    for (int b = 0; out.tokens && b < B; b++)
        TP_CHECKF(memcmp(out.tokens + b * out.max_new, (int32_t *)weos->data + b * G2,
                         (size_t)G2 * 4) == 0,
                  "%s: greedy tokens with EOS %d differ from HF (row %d)", name, cfg.eos_ids[0], b);
    int longest = 0;
    for (int b = 0; out.tokens && b < B; b++)
        if (out.n_tokens[b] > longest) longest = out.n_tokens[b];
    TP_CHECKF(!out.tokens || longest == G2, "%s: generated %d steps, HF %d", name, longest, G2);
    fprintf(stderr,
            "  %s: greedy generation (%d rows, %d tokens; with EOS %d: %d steps) compared\n", name,
            B, (int)noeos->shape[1], cfg.eos_ids[0], G2);
    tp_gen_out_free(&out);
}

static void check_long(tp_model *m, const tpg_file *g, const char *name) {
    const tpg_array *ids = need(g, "long_ids", name), *pos = need(g, "long_pos", name);
    const tpg_array *lg = need(g, "long_logits", name);
    if (!ids || !pos || !lg) return;
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    float *ol = tu_logits(m, ctx, B, T, ids->data, NULL, pos->data);
    TP_CHECK(ol != NULL);
    if (ol) {
        double e = tu_masked_err(ol, lg->data, NULL, B * T, m->cfg.vocab_size);
        TP_CHECKF(e <= TOL_FWD, "%s: logits at positions >= 8190 rel err %.3g", name, e);
        const int32_t *p = pos->data;
        fprintf(stderr, "  %s: logits at positions %d.. and %d.. rel err %.3g\n", name, p[0], p[T],
                e);
    }
    free(ol);
    tp_ctx_free(ctx);
}

static void run_fixture(const char *name) {
    const char *src = getenv("TP_SOURCE_DIR");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/tests/golden/models/fixtures/%s", src ? src : TP_SOURCE_DIR,
             name);
    snprintf(path, sizeof path, "%s/golden.bin", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr,
                "SKIP %s: %s absent — run tests/golden/models/make_golden.py on the GPU machine "
                "and commit its output under tests/golden/models/fixtures/\n",
                name, path);
        return;
    }
    tpg_file g;
    char msg[512];
    if (tpg_load(&g, path, msg, sizeof msg) != 0) {
        TP_CHECKF(0, "%s", msg);
        return;
    }
    tp_model *m = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_model_load(&m, dir, NULL, &err) == TP_OK, "%s", err.msg);
    const tpg_array *inv = tpg_get(&g, "rope_inv_freq"); /* fixtures made after 2026-11-23 */
    if (m && inv)
        TP_CHECKF(tu_inv_freq_diff(m, inv->data, inv->numel, name) < 1e-6,
                  "%s: RoPE frequencies differ from transformers' beyond rounding", name);
    if (m) {
        check_batch(m, &g, name, "right", 0);
        check_batch(m, &g, name, "left", 1);
        check_grad(m, &g, name);
        check_generate(m, &g, name);
        if (tpg_get(&g, "long_ids")) check_long(m, &g, name);
    }
    tp_model_free(m);
    tpg_free(&g);
}

static void test_golden_llama(void) {
    run_fixture("llama");
}
static void test_golden_mistral(void) {
    run_fixture("mistral");
}
static void test_golden_qwen2(void) {
    run_fixture("qwen2");
}

TP_TEST_RUN(TP_CASE(test_golden_llama), TP_CASE(test_golden_mistral), TP_CASE(test_golden_qwen2))
