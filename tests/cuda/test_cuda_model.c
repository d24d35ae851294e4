/* test_cuda_model.c — the tiny golden models (tests/golden/models/fixtures: llama with llama3
 * RoPE, mistral with a sliding window, qwen2 with q/k/v bias, tied embeddings, sharded f16) run
 * on CUDA against the CPU engine (itself checked against transformers by test_transformer_golden):
 * right-padded and left-padded batches, every hidden state and all logits, with f32 weights
 * (tight) and bf16 weights loaded straight to the GPU (loose); KV-cache decoding on CUDA equals
 * the full forward; and a short training run (soft prompt through the frozen receiver, AdamW on
 * the device) follows the CPU's loss curve. Exits 77 (skipped) when no GPU is usable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "model/transformer.h"
#include "telepathy/optim.h"
#include "tp_cuda.h"
#include "tp_test.h"

static const char *src_dir(void) {
    const char *s = getenv("TP_SOURCE_DIR");
    return s ? s : TP_SOURCE_DIR;
}

static tp_model *load(const char *name, tp_device dev, tp_dtype dt) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/golden/models/fixtures/%s", src_dir(), name);
    tp_model_load_opts o = tp_model_load_defaults();
    o.device = dev;
    o.weight_dtype = dt;
    o.skip_tokenizer = 1;
    tp_model *m = NULL;
    tp_err e = {0};
    if (tp_model_load(&m, dir, &o, &e) != TP_OK) {
        fprintf(stderr, "load %s on %s as %s: %s\n", name, dev == TP_CPU ? "cpu" : "cuda",
                tp_dtype_name(dt), e.msg);
        return NULL;
    }
    return m;
}

static float *fetch(const tp_tensor *t) {
    int64_t n = tp_numel(t);
    float *b = calloc((size_t)(n ? n : 1), sizeof(float));
    tp_err e = {0};
    if (tp_to_f32_buffer(t, b, &e) != TP_OK)
        for (int64_t i = 0; i < n; i++) b[i] = NAN;
    return b;
}

/* ||a - b|| / ||b|| over the rows whose mask is 1 (padded rows are not meaningful) */
static double masked_err(const tp_tensor *ta, const tp_tensor *tb, const float *mask,
                         int64_t rows) {
    float *a = fetch(ta), *b = fetch(tb);
    int64_t n = tp_numel(tb), w = n / rows;
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (mask && mask[r] == 0) continue;
        for (int64_t i = 0; i < w; i++) {
            double d = (double)a[r * w + i] - b[r * w + i];
            if (!isfinite(a[r * w + i])) d = INFINITY;
            num += d * d;
            den += (double)b[r * w + i] * b[r * w + i];
        }
    }
    free(a);
    free(b);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct {
    tp_tensor *logits, *hidden[2];
} fwd_res;

static int run_fwd(tp_model *m, tp_ctx *c, const int32_t *ids, const float *mask, int B, int T,
                   int left, fwd_res *r) {
    tp_err e = {0};
    tp_fwd_in in = {0};
    in.ids = tp_from_i32(c, TP_DIMS(B, T), ids);
    in.mask = tp_from_f32(c, TP_DIMS(B, T), mask);
    if (left && in.mask) in.pos = tp_positions_from_mask(c, in.mask, &e);
    in.hidden_layers[0] = 1;
    in.hidden_layers[1] = m->cfg.num_hidden_layers;
    in.n_hidden = 2;
    in.logits = TP_LOGITS_ALL;
    tp_fwd_out out;
    if (!in.ids || !in.mask || tp_model_forward(m, c, &in, &out, &e) != TP_OK) {
        fprintf(stderr, "forward: %s %s\n", e.msg, tp_ctx_error(c));
        return 0;
    }
    r->logits = out.logits;
    r->hidden[0] = out.hidden[0];
    r->hidden[1] = out.hidden[1];
    return 1;
}

static void compare_model(const char *name) {
    tp_model *mc = load(name, TP_CPU, TP_F32), *mg = load(name, TP_CUDA, TP_F32);
    tp_model *mb = load(name, TP_CUDA, TP_BF16);
    TP_CHECKF(mc && mg && mb, "%s: models load on cpu, cuda f32 and cuda bf16", name);
    if (!mc || !mg || !mb) goto done;
    enum { B = 3, T = 10 };
    int32_t ids[B * T];
    float mask[B * T];
    tp_rng r = {42, 1, 0};
    for (int left = 0; left < 2; left++) {
        for (int i = 0; i < B * T; i++) {
            ids[i] = (int32_t)(tp_rng_uniform(&r) * (float)mc->cfg.vocab_size);
            int b = i / T, t = i % T, pad = 3 * b; /* row b has 3b pads */
            mask[i] = left ? (t >= pad ? 1.0f : 0.0f) : (t < T - pad ? 1.0f : 0.0f);
        }
        tp_ctx *cc = tp_ctx_new(TP_CPU), *gc = tp_ctx_new(TP_CUDA), *bc = tp_ctx_new(TP_CUDA);
        fwd_res rc, rg, rb;
        int ok = run_fwd(mc, cc, ids, mask, B, T, left, &rc) &&
                 run_fwd(mg, gc, ids, mask, B, T, left, &rg) &&
                 run_fwd(mb, bc, ids, mask, B, T, left, &rb);
        TP_CHECKF(ok, "%s: forward on all three (%s padding)", name, left ? "left" : "right");
        if (ok) {
            double el = masked_err(rg.logits, rc.logits, mask, B * T);
            double eh = fmax(masked_err(rg.hidden[0], rc.hidden[0], mask, B * T),
                             masked_err(rg.hidden[1], rc.hidden[1], mask, B * T));
            double bl = masked_err(rb.logits, rc.logits, mask, B * T);
            fprintf(stderr, "  %-8s %s pad: cuda f32 logits %.2e hidden %.2e | bf16 logits %.2e\n",
                    name, left ? "left " : "right", el, eh, bl);
            TP_CHECKF(el < 1e-4 && eh < 1e-4, "%s: cuda f32 vs cpu: logits %.3g hidden %.3g", name,
                      el, eh);
            TP_CHECKF(bl < 6e-2, "%s: cuda bf16 weights vs cpu f32: logits %.3g", name, bl);
        }
        tp_ctx_free(cc);
        tp_ctx_free(gc);
        tp_ctx_free(bc);
    }
done:
    tp_model_free(mc);
    tp_model_free(mg);
    tp_model_free(mb);
}

static void test_llama(void) {
    compare_model("llama");
}
static void test_mistral(void) {
    compare_model("mistral");
}
static void test_qwen2(void) {
    compare_model("qwen2");
}

/* prefill 6 tokens, then 4 single-token steps with the cache: each step's logits equal the
 * full forward's at that position */
/* tol: f32 weights tight; bf16 weights (bf16 cache, bf16 activations on both sides, GEMMs of
 * other shapes) loose */
static void kv_cache_decode(tp_dtype wdt, double tol) {
    tp_model *m = load("mistral", TP_CUDA, wdt);
    TP_CHECK(m != NULL);
    if (!m) return;
    enum { B = 2, T = 10, P = 6 };
    int32_t ids[B * T];
    tp_rng r = {7, 2, 0};
    for (int i = 0; i < B * T; i++)
        ids[i] = (int32_t)(tp_rng_uniform(&r) * (float)m->cfg.vocab_size);
    tp_err e = {0};
    tp_ctx *full = tp_ctx_new(TP_CUDA), *c = tp_ctx_new(TP_CUDA);
    tp_fwd_in in = {0};
    in.ids = tp_from_i32(full, TP_DIMS(B, T), ids);
    in.logits = TP_LOGITS_ALL;
    tp_fwd_out fo;
    TP_CHECKF(tp_model_forward(m, full, &in, &fo, &e) == TP_OK, "%s", e.msg);
    float *fl = fo.logits ? fetch(fo.logits) : NULL;
    tp_kv_cache *kc = NULL;
    TP_CHECKF(tp_kv_cache_new(&kc, m, B, T, &e) == TP_OK, "%s", e.msg);
    TP_CHECKF(!kc || kc->k[0]->dtype == wdt, "kv cache in %s for %s weights",
              kc ? tp_dtype_name(kc->k[0]->dtype) : "-", tp_dtype_name(wdt));
    int64_t V = m->cfg.vocab_size;
    double worst = 0;
    for (int start = 0; kc && fl && start < T;) {
        int len = start == 0 ? P : 1;
        int32_t step[B * T];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < len; t++) step[b * len + t] = ids[b * T + start + t];
        tp_ctx_reset(c);
        tp_fwd_in si = {0};
        si.ids = tp_from_i32(c, TP_DIMS(B, len), step);
        si.logits = TP_LOGITS_LAST;
        si.cache = kc;
        tp_fwd_out so;
        if (tp_model_forward(m, c, &si, &so, &e) != TP_OK) {
            TP_CHECKF(0, "cache step at %d: %s", start, e.msg);
            break;
        }
        float *sl = fetch(so.logits);
        int64_t pos = start + len - 1;
        for (int b = 0; b < B; b++) {
            double num = 0, den = 0;
            for (int64_t v = 0; v < V; v++) {
                double d = sl[b * V + v] - fl[(b * T + pos) * V + v];
                num += d * d;
                den += (double)fl[(b * T + pos) * V + v] * fl[(b * T + pos) * V + v];
            }
            worst = fmax(worst, sqrt(num / (den > 0 ? den : 1)));
        }
        free(sl);
        start += len;
    }
    fprintf(stderr, "  kv-cache decode vs full forward (%s): %.2e\n", tp_dtype_name(wdt), worst);
    TP_CHECKF(worst < tol, "kv-cache decode (%s) differs from the full forward: %.3g",
              tp_dtype_name(wdt), worst);
    free(fl);
    tp_kv_cache_free(kc);
    tp_ctx_free(full);
    tp_ctx_free(c);
    tp_model_free(m);
}

static void test_kv_cache_decode(void) {
    kv_cache_decode(TP_F32, 1e-4);
}

static void test_kv_cache_decode_bf16(void) {
    kv_cache_decode(TP_BF16, 5e-2);
}

/* 25 AdamW steps of a 4-token soft prompt through the frozen receiver towards target id 5. With
 * bf16 weights the f32 soft prompt is cast to bf16 on the tape (as the bench's train_step does),
 * so the grad flows back through bf16 hidden states and the bf16 logit-row gather. */
static double train(tp_device dev, tp_dtype wdt, double *first, int *ok) {
    tp_model *m = load("llama", dev, wdt);
    *ok = m != NULL;
    if (!m) return NAN;
    tp_err e = {0};
    int64_t D = m->cfg.hidden_size, sh[3] = {1, 4, D};
    tp_tensor *soft = tp_param_alloc_on("soft", dev, 3, sh, &e);
    tp_rng r = {11, 3, 0};
    tp_fill_normal(soft, 0.0f, 0.05f, &r);
    tp_adamw *opt = tp_adamw_new(&soft, 1, NULL, &e);
    tp_ctx *c = tp_ctx_new(dev);
    double loss = NAN;
    for (int s = 0; s < 25 && opt; s++) {
        tp_ctx_reset(c);
        tp_fwd_in in = {0};
        in.embeds = wdt == TP_F32 ? soft : tp_cast(c, soft, wdt);
        in.logits = TP_LOGITS_LAST;
        tp_fwd_out out;
        if (tp_model_forward(m, c, &in, &out, &e) != TP_OK) {
            *ok = 0;
            fprintf(stderr, "train forward: %s\n", e.msg);
            break;
        }
        int32_t tgt = 5;
        tp_tensor *lg = tp_reshape(c, out.logits, TP_DIMS(1, m->cfg.vocab_size));
        tp_tensor *l = tp_cross_entropy(c, lg, tp_from_i32(c, TP_DIMS(1), &tgt), -100, 0.0f);
        if (!l || tp_backward(c, l, NULL) != TP_OK) {
            *ok = 0;
            fprintf(stderr, "train backward: %s\n", tp_ctx_error(c));
            break;
        }
        loss = tp_item(l, 0);
        if (s == 0) *first = loss;
        tp_clip_grad_norm(&soft, 1, 1.0);
        if (tp_adamw_step(opt, 0.05f, &e) != TP_OK) {
            *ok = 0;
            break;
        }
        tp_adamw_zero_grad(opt);
    }
    tp_adamw_free(opt);
    tp_ctx_free(c);
    tp_tensor_free(soft);
    tp_model_free(m);
    return loss;
}

static void test_training_run(void) {
    int okc, okg;
    double f0c = NAN, f0g = NAN;
    double lc = train(TP_CPU, TP_F32, &f0c, &okc), lg = train(TP_CUDA, TP_F32, &f0g, &okg);
    fprintf(stderr, "  training: cpu loss %.4f -> %.4f, cuda %.4f -> %.4f\n", f0c, lc, f0g, lg);
    TP_CHECK(okc && okg);
    TP_CHECKF(lg < 0.5 * f0g, "cuda training did not learn: %.4f -> %.4f", f0g, lg);
    TP_CHECKF(fabs(lg - lc) <= 3e-2 * fmax(1.0, fabs(lc)), "cuda final loss %.5f vs cpu %.5f", lg,
              lc);
}

/* the bench's train_step path: bf16 weights, bf16 activations, grads to an f32 soft prompt */
static void test_training_run_bf16(void) {
    int okc, okg;
    double f0c = NAN, f0g = NAN;
    double lc = train(TP_CPU, TP_BF16, &f0c, &okc), lg = train(TP_CUDA, TP_BF16, &f0g, &okg);
    fprintf(stderr, "  training bf16: cpu loss %.4f -> %.4f, cuda %.4f -> %.4f\n", f0c, lc, f0g,
            lg);
    TP_CHECK(okc && okg);
    TP_CHECKF(lg < 0.5 * f0g, "cuda bf16 training did not learn: %.4f -> %.4f", f0g, lg);
    TP_CHECKF(fabs(lg - lc) <= 0.15 * fmax(1.0, fabs(lc)), "cuda bf16 final loss %.5f vs cpu %.5f",
              lg, lc);
}

int main(int argc, char **argv) {
    tp_err err = {0};
    if (tp_cuda_backend_register(&err) != TP_OK) {
        printf("SKIP test_cuda_model: no usable GPU: %s\n", err.msg);
        return 77;
    }
    static const tp_test_case cases[] = {TP_CASE(test_llama),
                                         TP_CASE(test_mistral),
                                         TP_CASE(test_qwen2),
                                         TP_CASE(test_kv_cache_decode),
                                         TP_CASE(test_kv_cache_decode_bf16),
                                         TP_CASE(test_training_run),
                                         TP_CASE(test_training_run_bf16)};
    return tp_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
