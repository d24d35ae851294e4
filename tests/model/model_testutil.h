/* model_testutil.h — helpers shared by the transformer / generate tests: tiny random models,
 * host copies of tensors, error measures. Header-only (static), included by each test program. */
#ifndef TP_TESTS_MODEL_TESTUTIL_H
#define TP_TESTS_MODEL_TESTUTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/transformer.h"
#include "tp_test.h"

/* A small random model: vocab 50, width 32, 2 layers, 4 heads / 2 KV heads (head_dim 8). */
static inline tp_model *tu_tiny(tp_arch arch, int layers, uint64_t seed) {
    tp_model_config c;
    tp_model_config_tiny(&c, arch, 50, 32, 48, layers, 4, 2);
    c.max_position_embeddings = 64;
    if (arch == TP_ARCH_QWEN2) c.tie_word_embeddings = 1;
    tp_model *m = NULL;
    tp_err err = {0};
    if (tp_model_init_random(&m, &c, seed, 0.15f, &err) != TP_OK)
        fprintf(stderr, "tu_tiny: %s\n", err.msg);
    return m;
}

/* Host f32 copy of any tensor (malloc'ed; NULL on failure). */
static inline float *tu_host(const tp_tensor *t) {
    if (!t) return NULL;
    int64_t n = tp_numel(t);
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof *h);
    tp_err err = {0};
    if (h && tp_to_f32_buffer(t, h, &err) != TP_OK) {
        fprintf(stderr, "tu_host: %s\n", err.msg);
        free(h);
        return NULL;
    }
    return h;
}

/* max |a-b| / max(max |b|, floor): the normalised error the golden tolerances use. */
static inline double tu_rel_err(const float *a, const float *b, int64_t n, double floor_) {
    double num = 0, den = floor_;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= num)) num = d; /* NaN propagates as a failure */
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return num / den;
}

/* Error over the rows whose mask is 1 (all rows when mask is NULL): max |a-b| / max |ref|, the
 * normalised error the golden tolerances are stated in. */
static inline double tu_masked_err(const float *a, const float *ref, const int32_t *mask,
                                   int64_t rows, int64_t width) {
    double num = 0, den = 1e-30;
    for (int64_t r = 0; r < rows; r++) {
        if (mask && !mask[r]) continue;
        for (int64_t i = 0; i < width; i++) {
            double d = fabs((double)a[r * width + i] - ref[r * width + i]);
            if (!(d <= num)) num = d;
            if (fabs((double)ref[r * width + i]) > den) den = fabs((double)ref[r * width + i]);
        }
    }
    return num / den;
}

/* Compares the model's RoPE frequencies with transformers' (golden array of Dh/2 floats):
 * prints how many differ in their bits, and returns the largest relative difference. An ulp
 * (~1e-7) is pow() rounding; more means a wrong formula. */
static inline double tu_inv_freq_diff(const tp_model *m, const float *ref, int64_t n,
                                      const char *name) {
    int diff = 0;
    double worst = 0;
    for (int64_t i = 0; i < n && i < m->rope.head_dim / 2; i++) {
        float a = m->rope.inv_freq[i];
        if (memcmp(&a, &ref[i], sizeof a) != 0) diff++;
        double r = fabs((double)a - ref[i]) / fabs((double)ref[i]);
        if (r > worst) worst = r;
    }
    fprintf(stderr,
            "  %s: RoPE inv_freq: %d of %lld differ in bits from transformers (max rel %.3g)\n",
            name, diff, (long long)n, worst);
    return n == m->rope.head_dim / 2 ? worst : 1.0;
}

/* Forward helper: logits for all positions of ids [B,T] (mask / pos optional host arrays). */
static inline float *tu_logits(tp_model *m, tp_ctx *ctx, int B, int T, const int32_t *ids,
                               const float *mask, const int32_t *pos) {
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.ids = tp_from_i32(ctx, TP_DIMS(B, T), ids);
    if (mask) in.mask = tp_from_f32(ctx, TP_DIMS(B, T), mask);
    if (pos) in.pos = tp_from_i32(ctx, TP_DIMS(B, T), pos);
    in.logits = TP_LOGITS_ALL;
    tp_fwd_out out;
    tp_err err = {0};
    if (tp_model_forward(m, ctx, &in, &out, &err) != TP_OK) {
        fprintf(stderr, "tu_logits: %s\n", err.msg);
        return NULL;
    }
    return tu_host(out.logits);
}

#endif
