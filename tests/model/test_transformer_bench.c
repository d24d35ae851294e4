/* test_transformer_bench.c — CPU throughput of the model forward (the numbers in BENCHMARKS.md).
 * By default it times the two tiny demo shapes (make-tiny's llama and mistral "tiny" dimensions,
 * random weights in memory) so CI notices a collapse; TP_BENCH_1B=1 adds a Llama-3.2-1B-shaped
 * model (2048 wide, 16 layers, 32/8 heads, 8192 MLP, vocab 128256, tied; 1.24 B parameters,
 * 5 GB in f32). Reports prefill tokens/s (one forward over T tokens, last-position logits) and
 * KV-cache decode tokens/s (greedy generation, batch 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/generate.h"
#include "model_testutil.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct shape {
    const char *name;
    tp_arch arch;
    int vocab, hidden, inter, layers, heads, kv, tied;
    double theta;
} shape;

/* Prefill: median of `reps` forwards over [B,T]; returns tokens/s. */
static double prefill(tp_model *m, int B, int T, int reps) {
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 7919) % m->cfg.vocab_size);
    double best = 1e30;
    tp_err err = {0};
    tp_set_grad_enabled(ctx, 0);
    for (int r = 0; r < reps; r++) {
        tp_ctx_reset(ctx);
        tp_fwd_in in;
        memset(&in, 0, sizeof in);
        in.ids = tp_from_i32(ctx, TP_DIMS(B, T), ids);
        in.logits = TP_LOGITS_LAST;
        tp_fwd_out out;
        double t0 = now_s();
        tp_status s = tp_model_forward(m, ctx, &in, &out, &err);
        double dt = now_s() - t0;
        TP_CHECKF(s == TP_OK, "%s", err.msg);
        if (dt < best) best = dt;
    }
    free(ids);
    tp_ctx_free(ctx);
    return B * T / best;
}

/* Decode rate from the token callback's clock: the first token ends the prefill, so the time
 * from the first to the last token covers exactly n_new - 1 cached decode steps. */
typedef struct tok_clock {
    double first, last;
    int n;
} tok_clock;

static void on_token(void *user, int row, int32_t token) {
    tok_clock *c = user;
    double t = now_s();
    if (c->n++ == 0) c->first = t;
    c->last = t;
}

static double decode(tp_model *m, int prompt, int n_new) {
    int32_t *ids = malloc((size_t)prompt * sizeof *ids);
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)((i * 31) % m->cfg.vocab_size);
    tp_gen_cfg g = tp_gen_defaults(m);
    g.max_new_tokens = n_new;
    g.n_eos = 0;
    tok_clock clk = {0, 0, 0};
    g.on_token = on_token;
    g.user = &clk;
    tp_gen_in in = {1, prompt, ids, NULL, NULL};
    tp_gen_out out;
    tp_err err = {0};
    tp_status s = tp_generate(m, &in, &g, &out, &err);
    TP_CHECKF(s == TP_OK, "%s", err.msg);
    TP_CHECK(clk.n == n_new);
    tp_gen_out_free(&out);
    free(ids);
    return clk.last > clk.first ? (n_new - 1) / (clk.last - clk.first) : 0.0;
}

static void bench(const shape *s, int T, int reps, int n_new) {
    tp_model_config c;
    tp_model_config_tiny(&c, s->arch, s->vocab, s->hidden, s->inter, s->layers, s->heads, s->kv);
    c.tie_word_embeddings = s->tied;
    c.rope_theta = s->theta;
    c.max_position_embeddings = 4096;
    tp_model *m = NULL;
    tp_err err = {0};
    double t0 = now_s();
    TP_CHECKF(tp_model_init_random(&m, &c, 1, 0.02f, &err) == TP_OK, "%s", err.msg);
    if (!m) return;
    double init = now_s() - t0;
    double p1 = prefill(m, 1, T, reps), p8 = prefill(m, 8, T, reps);
    double d = decode(m, 16, n_new);
    printf("BENCH model=%s params=%.3gM T=%d prefill_b1=%.1f tok/s prefill_b8=%.1f tok/s "
           "decode_b1=%.2f tok/s (init %.1f s)\n",
           s->name, m->n_params / 1e6, T, p1, p8, d, init);
    fflush(stdout);
    TP_CHECKF(p1 > 0 && p8 > 0 && d > 0, "%g %g %g", p1, p8, d);
    tp_model_free(m);
}

static void test_bench_tiny(void) {
    const shape llama = {"tiny-llama", TP_ARCH_LLAMA, 512, 64, 172, 4, 4, 2, 0, 500000.0};
    const shape mistral = {"tiny-mistral", TP_ARCH_MISTRAL, 512, 96, 256, 4, 6, 2, 0, 1e6};
    bench(&llama, 64, 5, 32);
    bench(&mistral, 64, 5, 32);
}

static void test_bench_1b(void) {
    const char *on = getenv("TP_BENCH_1B");
    if (!on || strcmp(on, "1") != 0) {
        fprintf(stderr, "SKIP test_bench_1b: set TP_BENCH_1B=1 (needs ~6 GB RAM, minutes)\n");
        return;
    }
    const shape b1 = {"llama-1b", TP_ARCH_LLAMA, 128256, 2048, 8192, 16, 32, 8, 1, 500000.0};
    bench(&b1, 128, 2, 8);
}

TP_TEST_RUN(TP_CASE(test_bench_tiny), TP_CASE(test_bench_1b))
