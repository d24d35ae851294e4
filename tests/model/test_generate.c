/* test_generate.c — KV-cache decoding: equal to full recompute (padded batches, left and right
 * padding, from ids and from embeddings), EOS handling, seeded sampling, the top-p rule, and
 * the errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/generate.h"
#include "model_testutil.h"

#define V 50

/* Greedy by full recompute (no cache): each row alone, positions 0..n-1. */
static void greedy_reference(tp_model *m, const int32_t *prompt, int n, int steps, int eos,
                             int32_t *outp, int *n_out) {
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    int32_t seq[64];
    memcpy(seq, prompt, (size_t)n * sizeof *seq);
    *n_out = 0;
    for (int s = 0; s < steps; s++) {
        tp_ctx_reset(ctx);
        float *lg = tu_logits(m, ctx, 1, n + s, seq, NULL, NULL);
        if (!lg) break;
        const float *row = lg + (size_t)(n + s - 1) * V;
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        free(lg);
        seq[n + s] = best;
        outp[(*n_out)++] = best;
        if (best == eos) break;
    }
    tp_ctx_free(ctx);
}

static void test_cache_equals_recompute(void) {
    for (int arch = 0; arch < 3; arch++) {
        tp_model *m = tu_tiny((tp_arch)arch, 2, 40 + (uint64_t)arch);
        if (!m) {
            TP_CHECK(m != NULL);
            continue;
        }
        if (arch == TP_ARCH_MISTRAL) m->cfg.sliding_window = 3;
        enum { B = 3, T = 5, G = 7 };
        const int len[B] = {5, 2, 3};
        const int32_t seq[B][T] = {{3, 14, 15, 9, 26}, {5, 35, 0, 0, 0}, {8, 9, 7, 0, 0}};
        for (int left = 0; left < 2; left++) {
            int32_t ids[B * T] = {0}, mask[B * T] = {0};
            for (int b = 0; b < B; b++)
                for (int t = 0; t < len[b]; t++) {
                    int c = left ? T - len[b] + t : t;
                    ids[b * T + c] = seq[b][t];
                    mask[b * T + c] = 1;
                }
            tp_gen_cfg g = tp_gen_defaults(m);
            g.max_new_tokens = G;
            g.n_eos = 0;
            tp_gen_in in = {B, T, ids, NULL, mask};
            tp_gen_out out;
            tp_err err = {0};
            TP_CHECKF(tp_generate(m, &in, &g, &out, &err) == TP_OK, "%s", err.msg);
            for (int b = 0; out.tokens && b < B; b++) {
                int32_t ref[G];
                int nref = 0;
                greedy_reference(m, seq[b], len[b], G, -1, ref, &nref);
                TP_CHECK(out.n_tokens[b] == G && nref == G);
                TP_CHECKF(memcmp(out.tokens + b * G, ref, sizeof ref) == 0,
                          "arch %d %s row %d: cached decode differs from recompute", arch,
                          left ? "left" : "right", b);
            }
            tp_gen_out_free(&out);
        }
        tp_model_free(m);
    }
}

static void test_eos_and_embeds(void) {
    tp_model *m = tu_tiny(TP_ARCH_LLAMA, 2, 50);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    int32_t ids[2 * 4] = {0, 0, 11, 12, 21, 22, 23, 24};
    int32_t mask[2 * 4] = {0, 0, 1, 1, 1, 1, 1, 1};
    tp_gen_cfg g = tp_gen_defaults(m);
    g.max_new_tokens = 6;
    g.n_eos = 0;
    g.pad_id = 0;
    tp_gen_in in = {2, 4, ids, NULL, mask};
    tp_gen_out free_run, stop, emb;
    tp_err err = {0};
    TP_CHECKF(tp_generate(m, &in, &g, &free_run, &err) == TP_OK, "%s", err.msg);
    if (!free_run.tokens) goto out0;
    /* EOS = row 0's third token: row 0 stops after 3 tokens, then pads; row 1 goes on unless it
     * emits that token too */
    g.eos_ids[0] = free_run.tokens[2];
    g.n_eos = 1;
    TP_CHECKF(tp_generate(m, &in, &g, &stop, &err) == TP_OK, "%s", err.msg);
    if (stop.tokens) {
        int first = 0;
        while (free_run.tokens[first] != g.eos_ids[0]) first++;
        TP_CHECK(stop.n_tokens[0] == first + 1);
        TP_CHECK(memcmp(stop.tokens, free_run.tokens, (size_t)(first + 1) * 4) == 0);
        for (int k = first + 1; k < 6; k++) TP_CHECK(stop.tokens[k] == 0);
        int r1 = 0;
        while (r1 < 6 && free_run.tokens[6 + r1] != g.eos_ids[0]) r1++;
        TP_CHECK(stop.n_tokens[1] == (r1 < 6 ? r1 + 1 : 6));
        TP_CHECK(memcmp(stop.tokens + 6, free_run.tokens + 6, (size_t)stop.n_tokens[1] * 4) == 0);
    }
    /* from embeddings: the same prompt embedded gives the same tokens */
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    tp_err e2 = {0};
    tp_tensor *x = tp_model_embed(m, ctx, tp_from_i32(ctx, TP_DIMS(2, 4), ids), &e2);
    TP_CHECKF(x != NULL, "%s", e2.msg);
    tp_gen_in ein = {2, 4, NULL, x, mask};
    g.n_eos = 0;
    TP_CHECKF(tp_generate(m, &ein, &g, &emb, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(emb.tokens && memcmp(emb.tokens, free_run.tokens, 12 * 4) == 0);
    tp_gen_out_free(&emb);
    tp_gen_out_free(&stop);
    tp_ctx_free(ctx);
out0:
    tp_gen_out_free(&free_run);
    tp_model_free(m);
}

static void test_sampling(void) {
    tp_model *m = tu_tiny(TP_ARCH_QWEN2, 2, 60);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    int32_t ids[3] = {4, 5, 6};
    tp_gen_in in = {1, 3, ids, NULL, NULL};
    tp_gen_cfg g = tp_gen_defaults(m);
    g.max_new_tokens = 12;
    g.n_eos = 0;
    g.greedy = 0;
    g.temperature = 1.5f;
    g.top_p = 1.0f;
    g.seed = 7;
    tp_gen_out a, b, c, gr, cold;
    tp_err err = {0};
    TP_CHECKF(tp_generate(m, &in, &g, &a, &err) == TP_OK, "%s", err.msg);
    TP_CHECKF(tp_generate(m, &in, &g, &b, &err) == TP_OK, "%s", err.msg);
    g.seed = 8;
    TP_CHECKF(tp_generate(m, &in, &g, &c, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(a.tokens && b.tokens && memcmp(a.tokens, b.tokens, 12 * 4) == 0);
    TP_CHECK(a.tokens && c.tokens && memcmp(a.tokens, c.tokens, 12 * 4) != 0);
    /* a tiny top_p keeps only the mode: sampling becomes greedy */
    g.top_p = 1e-6f;
    TP_CHECKF(tp_generate(m, &in, &g, &cold, &err) == TP_OK, "%s", err.msg);
    g.greedy = 1;
    TP_CHECKF(tp_generate(m, &in, &g, &gr, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(cold.tokens && gr.tokens && memcmp(cold.tokens, gr.tokens, 12 * 4) == 0);
    tp_gen_out_free(&a);
    tp_gen_out_free(&b);
    tp_gen_out_free(&c);
    tp_gen_out_free(&gr);
    tp_gen_out_free(&cold);
    tp_model_free(m);
}

/* The top-p rule on known logits: probabilities 0.5, 0.25, 0.125, 0.125 (log-space). */
static void test_top_p_rule(void) {
    float lg[4] = {logf(0.125f), logf(0.5f), logf(0.125f), logf(0.25f)};
    int count[4] = {0};
    const int N = 4000;
    /* top_p 0.7: keep {1 (0.5), 3 (0.25)} -> 2/3, 1/3 */
    for (int i = 0; i < N; i++) count[tp_sample_top_p(lg, 4, 1.0f, 0.7f, (i + 0.5f) / N)]++;
    TP_CHECKF(count[0] == 0 && count[2] == 0, "%d %d", count[0], count[2]);
    TP_CHECK_NEAR(count[1] / (double)N, 2.0 / 3.0, 2e-3);
    TP_CHECK_NEAR(count[3] / (double)N, 1.0 / 3.0, 2e-3);
    /* top_p 1: all four; ties (0 and 2) in id order */
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) count[tp_sample_top_p(lg, 4, 1.0f, 1.0f, (i + 0.5f) / N)]++;
    TP_CHECK_NEAR(count[0] / (double)N, 0.125, 2e-3);
    TP_CHECK_NEAR(count[1] / (double)N, 0.5, 2e-3);
    TP_CHECK_NEAR(count[2] / (double)N, 0.125, 2e-3);
    /* temperature 0.5 squares the odds: 0.25,1,0.25,0.0625^.. -> p ∝ 1/64,1/4,1/64,1/16 */
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) count[tp_sample_top_p(lg, 4, 0.5f, 1.0f, (i + 0.5f) / N)]++;
    double z = 1.0 / 64 + 1.0 / 4 + 1.0 / 64 + 1.0 / 16;
    TP_CHECK_NEAR(count[1] / (double)N, 0.25 / z, 2e-3);
    TP_CHECK(tp_sample_top_p(lg, 4, 1.0f, 0.4f, 0.999f) == 1);
}

static void test_errors(void) {
    tp_model *m = tu_tiny(TP_ARCH_LLAMA, 1, 70);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    int32_t ids[4] = {1, 2, 3, 4}, mask[4] = {1, 1, 0, 0};
    tp_gen_cfg g = tp_gen_defaults(m);
    tp_gen_out out;
    tp_err err = {0};
    tp_gen_in in = {2, 2, ids, NULL, mask};
    TP_CHECK(tp_generate(m, &in, &g, &out, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "row 1 is all padding") != NULL, "%s", err.msg);
    tp_gen_in one = {1, 4, ids, NULL, NULL};
    g.max_new_tokens = 61; /* 4 + 61 > 64 */
    TP_CHECK(tp_generate(m, &one, &g, &out, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "max_position_embeddings 64") != NULL, "%s", err.msg);
    g.max_new_tokens = 4;
    g.greedy = 0;
    g.temperature = 0;
    TP_CHECK(tp_generate(m, &one, &g, &out, &err) == TP_EINVAL);
    g.temperature = 1;
    g.top_p = 1.5f;
    TP_CHECK(tp_generate(m, &one, &g, &out, &err) == TP_EINVAL);
    g.top_p = 0.9f;
    int32_t bad[4] = {1, 2, V, 3};
    tp_gen_in b = {1, 4, bad, NULL, NULL};
    TP_CHECK(tp_generate(m, &b, &g, &out, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "token id 50") != NULL, "%s", err.msg);
    tp_model_free(m);
}

TP_TEST_RUN(TP_CASE(test_cache_equals_recompute), TP_CASE(test_eos_and_embeds),
            TP_CASE(test_sampling), TP_CASE(test_top_p_rule), TP_CASE(test_errors))
