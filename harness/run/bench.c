/* bench.c — the `telepathy bench` driver (see bench.h): builds the two models and the bridge on
 * the device, times each case per batch, runs bench/peer_torch.py after freeing the GPU, and
 * writes the joint table (stdout, --md, --json) and the latency rows (--db, one run per
 * invocation). Timing: CUDA events around each call on the backend stream (host work between
 * the events counts, as a user of the harness would see it); median of --iters after warm-up. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/ops.h"
#include "model/transformer.h"
#include "run/bench.h"
#include "store/store.h"
#include "telepathy/optim.h"
#include "util/sha256.h"
#ifdef TP_HAVE_CUDA
#include "tp_cuda.h"
#endif

void tp_bench_defaults(tp_bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = TP_CUDA;
    o->batches = "1,8,32";
    o->sender_layer = 31;
    o->seq = 67;
    o->soft = 16;
    o->relay_tokens = 50;
    o->iters = 10;
    o->warmup = 2;
    o->python = "python3";
    o->seed = 1234;
    o->train_dtype = TP_BF16;
}

#define MAX_ROWS 128
typedef struct brow {
    char impl[16], kase[32], device[128];
    int batch;
    double ms, peak_mb;
    double bytes; /* decode_token: bytes one step reads (weights + KV cache); else 0 */
} brow;

typedef struct bench {
    const tp_bench_opts *o;
    tp_model *snd, *rcv;
    tp_bench_perceiver *br;
    tp_ctx *ctx;
    int B;
    tp_tensor *h, *soft, *hmask; /* persistent sender states, their mask, bridge output */
    tp_tensor *aq, *ak, *av;     /* the attention case's q, k, v (the sender's head layout) */
    tp_kv_cache *kc;
    tp_adamw *opt;
    brow rows[MAX_ROWS];
    int n_rows;
    char device[128];
    tp_rng rng;
    double t_start; /* now_ms() at the start, for --deadline */
    int train_bf16; /* the bridge's trainable params are bf16 (train_step's precision) */
    double peak_bw; /* the device's memory bandwidth, bytes/s (0: unknown) */
} bench;

static const char *const k_cases[] = {
    "sender_encode", "bridge",     "receiver_decode", "end_to_end", "receiver_direct",
    "text_relay",    "train_step", "bridge_graph",    "attention",  "decode_token"};
#define N_CASES 10

static int want_case(const tp_bench_opts *o, const char *name) {
    if (!o->cases || !o->cases[0]) return 1;
    size_t n = strlen(name);
    for (const char *p = o->cases; (p = strstr(p, name)); p += n)
        if ((p == o->cases || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

/* ---- timing ---- */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static tp_status dev_sync(bench *b, tp_err *err) {
#ifdef TP_HAVE_CUDA
    if (b->o->device == TP_CUDA) return tp_cuda_sync(err);
#endif
    (void)b;
    (void)err;
    return TP_OK;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- inputs ---- */
static tp_tensor *rand_ids(bench *b, int64_t B, int64_t T, int hi) {
    int32_t *v = malloc((size_t)(B * T) * sizeof *v);
    if (!v) return NULL;
    for (int64_t i = 0; i < B * T; i++) v[i] = (int32_t)(tp_rng_uniform(&b->rng) * (float)hi) % hi;
    tp_tensor *t = tp_from_i32(b->ctx, TP_DIMS(B, T), v);
    free(v);
    return t;
}

static tp_status ctx_err(bench *b, tp_err *err, const char *what) {
    return tp_errf(err, tp_ctx_status(b->ctx) ? tp_ctx_status(b->ctx) : TP_EINVAL, "%s: %s", what,
                   tp_ctx_error(b->ctx));
}

static int vocab_hi(const bench *b) {
    int v = b->rcv->cfg.vocab_size < b->snd->cfg.vocab_size ? b->rcv->cfg.vocab_size
                                                            : b->snd->cfg.vocab_size;
    return v < 32000 ? v : 32000;
}

static tp_tensor *sender_encode(bench *b, tp_err *err) {
    tp_fwd_in in = {0};
    in.ids = rand_ids(b, b->B, b->o->seq, vocab_hi(b));
    in.hidden_layers[0] = b->o->sender_layer < b->snd->cfg.num_hidden_layers
                              ? b->o->sender_layer
                              : b->snd->cfg.num_hidden_layers;
    in.n_hidden = 1;
    tp_fwd_out out;
    if (!in.ids) return ctx_err(b, err, "sender ids"), NULL;
    if (tp_model_forward(b->snd, b->ctx, &in, &out, err) != TP_OK) return NULL;
    return out.hidden[0];
}

static tp_tensor *bridge(bench *b, tp_tensor *h, int train, tp_err *err) {
    tp_tensor *s = tp_bench_perceiver_forward(b->br, b->ctx, h, b->hmask, train);
    if (!s) ctx_err(b, err, "bridge");
    return s;
}

/* which precision train_step ran with, read from the params themselves at setup */
static const char *train_note(const bench *b) {
    return b->train_bf16
               ? "pure bf16 (bf16 bridge params and AdamW moments, as the peer; f32 grads)"
               : "f32 master weights (f32 bridge params and AdamW moments, f32 grads)";
}

/* [4 primer][soft][3 target] embeddings of the receiver */
static tp_tensor *receiver_embeds(bench *b, tp_tensor *soft, tp_tensor **tgt_out, tp_err *err) {
    tp_tensor *prim = rand_ids(b, b->B, 4, vocab_hi(b)), *tgt = rand_ids(b, b->B, 3, vocab_hi(b));
    tp_tensor *ep = prim ? tp_embedding(b->ctx, b->rcv->embed, prim) : NULL;
    tp_tensor *et = tgt ? tp_embedding(b->ctx, b->rcv->embed, tgt) : NULL;
    if (soft && ep && soft->dtype != ep->dtype) soft = tp_cast(b->ctx, soft, ep->dtype);
    tp_tensor *parts[3] = {ep, soft, et};
    tp_tensor *x = ep && soft && et ? tp_concat(b->ctx, parts, 3, 1) : NULL;
    if (!x) ctx_err(b, err, "receiver inputs");
    if (tgt_out) *tgt_out = tgt;
    return x;
}

static tp_status receiver_decode(bench *b, tp_tensor *soft, tp_err *err) {
    tp_fwd_in in = {0};
    in.embeds = receiver_embeds(b, soft, NULL, err);
    in.logits = TP_LOGITS_LAST;
    tp_fwd_out out;
    if (!in.embeds) return err->code;
    return tp_model_forward(b->rcv, b->ctx, &in, &out, err);
}

static tp_status receiver_ids(bench *b, tp_tensor *ids, tp_err *err) {
    tp_fwd_in in = {0};
    in.ids = ids;
    in.logits = TP_LOGITS_LAST;
    tp_fwd_out out;
    if (!ids) return ctx_err(b, err, "receiver ids");
    return tp_model_forward(b->rcv, b->ctx, &in, &out, err);
}

/* greedy: the argmax of each row of logits [B,1,V] on their device (as tp_generate does), B
 * ints back */
static tp_status argmax_rows(bench *b, tp_tensor *logits, int32_t *next, tp_err *err) {
    int64_t B = logits->shape[0];
    float f[B > 0 ? B : 1];
    tp_tensor *am = tp_argmax_rows(b->ctx, logits);
    tp_status s = am ? tp_to_f32_buffer(am, f, err) : ctx_err(b, err, "argmax");
    for (int64_t r = 0; s == TP_OK && r < B; r++) next[r] = (int32_t)f[r];
    return s;
}

static tp_status text_relay(bench *b, tp_err *err) {
    int B = b->B, T = b->o->seq, N = b->o->relay_tokens;
    tp_kv_cache *kc = b->kc;
    kc->len = 0;
    TP_TRY(tp_fill_value(kc->mask, 0.0));
    int32_t *gen = calloc((size_t)(B * (N + 30)), sizeof *gen), *next = calloc((size_t)B, 4);
    if (!gen || !next) {
        free(gen);
        free(next);
        return tp_errf(err, TP_ENOMEM, "text relay: out of memory");
    }
    tp_status s = TP_OK;
    tp_tensor *ids = rand_ids(b, B, T, vocab_hi(b));
    for (int step = 0; s == TP_OK && step < N; step++) {
        /* a step needs nothing of the last but the cache and the host ids: reuse the arena
         * (50 steps of activations and logits otherwise pile up to tens of GB at B=8) */
        if (step > 0) tp_ctx_reset(b->ctx);
        tp_fwd_in in = {0};
        in.ids = step == 0 ? ids : tp_from_i32(b->ctx, TP_DIMS(B, 1), next);
        in.logits = TP_LOGITS_LAST;
        in.cache = kc;
        tp_fwd_out out;
        if (!in.ids) s = ctx_err(b, err, "text relay ids");
        if (s == TP_OK) s = tp_model_forward(b->snd, b->ctx, &in, &out, err);
        if (s == TP_OK) s = argmax_rows(b, out.logits, next, err);
        for (int r = 0; s == TP_OK && r < B; r++) gen[r * (N + 30) + 30 + step] = next[r] % 32000;
    }
    /* the receiver reads 30 prompt tokens + the generated text */
    for (int r = 0; r < B; r++)
        for (int t = 0; t < 30; t++)
            gen[r * (N + 30) + t] = (int32_t)(tp_rng_uniform(&b->rng) * (float)vocab_hi(b));
    if (s == TP_OK) s = receiver_ids(b, tp_from_i32(b->ctx, TP_DIMS(B, N + 30), gen), err);
    free(gen);
    free(next);
    return s;
}

/* One generated token: the sender's KV-cache step (ids [B,1], last-position logits) at a cache
 * of seq + relay_tokens/2 keys, the middle of the relay's generation. The cache is rewound
 * before each step, so every call reads the same amount. */
static int decode_len(const bench *b) {
    return b->o->seq + b->o->relay_tokens / 2;
}

static tp_status decode_token(bench *b, tp_err *err) {
    b->kc->len = decode_len(b);
    tp_fwd_in in = {0};
    in.ids = rand_ids(b, b->B, 1, vocab_hi(b));
    in.logits = TP_LOGITS_LAST;
    in.cache = b->kc;
    tp_fwd_out out;
    if (!in.ids) return ctx_err(b, err, "decode ids");
    return tp_model_forward(b->snd, b->ctx, &in, &out, err);
}

/* Bytes one decode step must read at least: every weight of the sender but the embedding table
 * (B rows of it), and the cached keys and values of every layer. */
static double decode_bytes(const bench *b) {
    const tp_model_config *c = &b->snd->cfg;
    double D = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    double Dh = c->head_dim, I = c->intermediate_size, V = c->vocab_size;
    double es = (double)tp_dtype_size(b->snd->wdtype);
    double layer = D * (H + 2 * Hkv) * Dh + H * Dh * D + 3 * D * I + 2 * D;
    double kv = 2.0 * b->B * Hkv * (decode_len(b) + 1) * Dh * es;
    return c->num_hidden_layers * (layer * es + kv) + (V * D + D) * es;
}

static tp_status train_step(bench *b, tp_err *err) {
    tp_tensor *soft = bridge(b, b->h, 1, err), *tgt = NULL;
    if (!soft) return err->code;
    tp_fwd_in in = {0};
    in.embeds = receiver_embeds(b, soft, &tgt, err);
    if (!in.embeds) return err->code;
    int64_t T = in.embeds->shape[1];
    int32_t *lp = malloc((size_t)(b->B * 3) * sizeof *lp);
    if (!lp) return tp_errf(err, TP_ENOMEM, "train step: out of memory");
    for (int r = 0; r < b->B; r++)
        for (int j = 0; j < 3; j++) lp[r * 3 + j] = (int32_t)(T - 4 + j);
    in.logits = TP_LOGITS_AT;
    in.logit_pos = tp_from_i32(b->ctx, TP_DIMS(b->B, 3), lp);
    free(lp);
    tp_fwd_out out;
    TP_TRY(tp_model_forward(b->rcv, b->ctx, &in, &out, err));
    int64_t V = b->rcv->cfg.vocab_size;
    tp_tensor *lg = tp_reshape(b->ctx, out.logits, TP_DIMS(b->B * 3, V));
    tp_tensor *loss =
        tp_cross_entropy(b->ctx, lg, tp_reshape(b->ctx, tgt, TP_DIMS(b->B * 3)), -100, 0.0f);
    if (!loss || tp_backward(b->ctx, loss, NULL) != TP_OK) return ctx_err(b, err, "train backward");
    TP_TRY(tp_adamw_step_clipped(b->opt, 2e-4f, 1.0, NULL, err)); /* the trainer's update */
    tp_adamw_zero_grad(b->opt);
    return TP_OK;
}

static tp_status run_case(bench *b, int kase, tp_err *err) {
    tp_ctx_reset(b->ctx);
    tp_tensor *h;
    switch (kase) {
    case 0:
        return sender_encode(b, err) ? TP_OK : err->code;
    case 1:
        return bridge(b, b->h, 0, err) ? TP_OK : err->code;
    case 2:
        return receiver_decode(b, b->soft, err);
    case 3:
        h = sender_encode(b, err);
        if (!h) return err->code;
        h = bridge(b, h, 0, err);
        return h ? receiver_decode(b, h, err) : err->code;
    case 4:
        return receiver_ids(b, rand_ids(b, b->B, 80, vocab_hi(b)), err);
    case 5:
        return text_relay(b, err);
    case 8: { /* one sender attention op: causal, GQA, key mask, on stored q/k/v */
        tp_attn_cfg ac = {1, 0, 0, 0.0f};
        tp_tensor *o = tp_attention(b->ctx, b->aq, b->ak, b->av, b->hmask, &ac);
        return o ? TP_OK : ctx_err(b, err, "attention");
    }
    case 9:
        return decode_token(b, err);
    default:
        return train_step(b, err);
    }
}

/* bridge_graph: the bridge forward captured once into a CUDA graph (it makes no host syncs:
 * weights, states and mask are persistent, every intermediate comes from the warmed arena at the
 * same addresses), then timed as graph replays. 0 = done, else the case is skipped with a note. */
static tp_status time_graph(bench *b, double *med, tp_err *err) {
#ifdef TP_HAVE_CUDA
    if (b->o->device != TP_CUDA) return tp_errf(err, TP_EUNSUP, "graphs need --device cuda");
    int n = b->o->iters > 0 ? b->o->iters : 1;
    double *ts = calloc((size_t)n, sizeof *ts);
    if (!ts) return tp_errf(err, TP_ENOMEM, "bench: out of memory");
    tp_status s = TP_OK;
    for (int i = 0; s == TP_OK && i < 2; i++) s = run_case(b, 1, err); /* warm the arena */
    tp_cuda_graph *g = NULL;
    tp_cuda_timer *tm = NULL;
    if (s == TP_OK) s = tp_cuda_sync(err);
    if (s == TP_OK) {
        tp_ctx_reset(b->ctx);
        s = tp_cuda_graph_begin(err);
        tp_tensor *out = s == TP_OK ? bridge(b, b->h, 0, err) : NULL;
        tp_status e2 = s == TP_OK ? tp_cuda_graph_end(&g, err) : s;
        if (s == TP_OK && !out) s = err->code ? err->code : TP_ECUDA;
        if (s == TP_OK) s = e2;
    }
    if (s == TP_OK) s = tp_cuda_timer_new(&tm, err);
    for (int i = 0; s == TP_OK && i < b->o->warmup; i++) s = tp_cuda_graph_replay(g, err);
    for (int i = 0; s == TP_OK && i < n; i++) {
        s = tp_cuda_timer_start(tm, err);
        if (s == TP_OK) s = tp_cuda_graph_replay(g, err);
        if (s == TP_OK) s = tp_cuda_timer_stop(tm, &ts[i], err);
    }
    tp_cuda_timer_free(tm);
    tp_cuda_graph_free(g);
    tp_ctx_clear_error(b->ctx);
    qsort(ts, (size_t)n, sizeof *ts, cmp_d);
    *med = ts[n / 2];
    free(ts);
    return s;
#else
    (void)med;
    return tp_errf(err, TP_EUNSUP, "graphs need a CUDA build");
#endif
}

/* receiver_decode times only the receiver (the bridge output is made once per batch, as the
 * peer does); the others time everything they name */
static void peak_reset(bench *b);

static tp_status time_case(bench *b, int kase, double *med, tp_err *err) {
    int n = b->o->iters > 0 ? b->o->iters : 1;
    if (kase == 5 && n > 3) n = n / 3 > 3 ? n / 3 : 3;
    double *ts = calloc((size_t)n, sizeof *ts);
    if (!ts) return tp_errf(err, TP_ENOMEM, "bench: out of memory");
    tp_status s = TP_OK;
    for (int i = 0; s == TP_OK && i < b->o->warmup; i++) s = run_case(b, kase, err);
    if (s == TP_OK) s = dev_sync(b, err);
    /* the peak of a warmed-up call: the first call's arena grows chunk by chunk, and the reset
     * after it coalesces them into one block at the call's high-water */
    if (b->o->warmup > 0) peak_reset(b);
#ifdef TP_HAVE_CUDA
    tp_cuda_timer *tm = NULL;
    if (s == TP_OK && b->o->device == TP_CUDA) s = tp_cuda_timer_new(&tm, err);
#endif
    for (int i = 0; s == TP_OK && i < n; i++) {
        double t0 = now_ms();
#ifdef TP_HAVE_CUDA
        if (tm) s = tp_cuda_timer_start(tm, err);
#endif
        if (s == TP_OK) s = run_case(b, kase, err);
#ifdef TP_HAVE_CUDA
        if (s == TP_OK && tm) s = tp_cuda_timer_stop(tm, &ts[i], err);
        if (!tm)
#endif
            ts[i] = now_ms() - t0;
    }
#ifdef TP_HAVE_CUDA
    tp_cuda_timer_free(tm);
#endif
    qsort(ts, (size_t)n, sizeof *ts, cmp_d);
    *med = ts[n / 2];
    free(ts);
    return s;
}

/* decode_token: "  X GB read, Y TB/s = Z% of the device's P TB/s" */
static void bw_note(const bench *b, const brow *r, char *buf, size_t n) {
    double tbps = r->bytes / (r->ms * 1e-3) / 1e12;
    if (b->peak_bw > 0)
        snprintf(buf, n, "  %.2f GB read, %.2f TB/s = %.0f%% of the device's %.2f TB/s",
                 r->bytes / 1e9, tbps, 100.0 * tbps * 1e12 / b->peak_bw, b->peak_bw / 1e12);
    else
        snprintf(buf, n, "  %.2f GB read, %.2f TB/s", r->bytes / 1e9, tbps);
}

static void add_row(bench *b, const char *impl, const char *kase, int batch, double ms,
                    double peak_mb, const char *device) {
    if (b->n_rows >= MAX_ROWS) return;
    brow *r = &b->rows[b->n_rows++];
    snprintf(r->impl, sizeof r->impl, "%s", impl);
    snprintf(r->kase, sizeof r->kase, "%s", kase);
    snprintf(r->device, sizeof r->device, "%s", device);
    r->batch = batch;
    r->ms = ms;
    r->peak_mb = peak_mb;
}

static void peak_reset(bench *b) {
#ifdef TP_HAVE_CUDA
    if (b->o->device == TP_CUDA) tp_cuda_reset_peak();
#endif
    (void)b;
}
static double peak_mb(bench *b) {
#ifdef TP_HAVE_CUDA
    if (b->o->device == TP_CUDA) return (double)tp_cuda_peak_bytes() / (1 << 20);
#endif
    (void)b;
    return NAN;
}

/* per-batch state: sender states for the bridge, the KV cache, the optimiser */
static tp_status batch_setup(bench *b, tp_err *err) {
    tp_ctx_reset(b->ctx);
    if (b->hmask) tp_tensor_free(b->hmask);
    b->hmask = tp_tensor_alloc(TP_F32, b->o->device, 2, (int64_t[]){b->B, b->o->seq}, err);
    if (!b->hmask) return err->code;
    TP_TRY(tp_fill_value(b->hmask, 1.0));
    tp_tensor *h = sender_encode(b, err);
    if (!h) return err->code;
    if (b->h) tp_tensor_free(b->h);
    b->h = tp_tensor_alloc(h->dtype, b->o->device, 3, h->shape, err);
    if (!b->h) return err->code;
    TP_TRY(tp_copy_into(b->h, h, err));
    tp_ctx_reset(b->ctx);
    tp_tensor *soft = bridge(b, b->h, 0, err);
    if (!soft) return err->code;
    if (b->soft) tp_tensor_free(b->soft);
    b->soft = tp_tensor_alloc(soft->dtype, b->o->device, 3, soft->shape, err);
    if (!b->soft) return err->code;
    TP_TRY(tp_copy_into(b->soft, soft, err));
    tp_tensor **qkv[3] = {&b->aq, &b->ak, &b->av};
    for (int i = 0; i < 3; i++) {
        if (*qkv[i]) tp_tensor_free(*qkv[i]);
        *qkv[i] = NULL;
    }
    if (want_case(b->o, "attention")) { /* values do not change the work: constants */
        const tp_model_config *c = &b->snd->cfg;
        for (int i = 0; i < 3; i++) {
            int64_t sh[4] = {b->B, i ? c->num_key_value_heads : c->num_attention_heads, b->o->seq,
                             c->head_dim};
            *qkv[i] = tp_tensor_alloc(b->snd->wdtype, b->o->device, 4, sh, err);
            if (!*qkv[i]) return err->code;
            TP_TRY(tp_fill_value(*qkv[i], i == 2 ? 1.0 : 0.01 * (i + 1)));
        }
    }
    tp_kv_cache_free(b->kc);
    b->kc = NULL;
    if (b->B <= 8 && (want_case(b->o, "text_relay") || want_case(b->o, "decode_token"))) {
        TP_TRY(tp_kv_cache_new(&b->kc, b->snd, b->B, b->o->seq + b->o->relay_tokens, err));
        TP_TRY(tp_fill_value(b->kc->mask, 1.0)); /* decode_token reads a full prefix */
    }
    return TP_OK;
}

static void bench_free(bench *b) {
    tp_adamw_free(b->opt);
    tp_kv_cache_free(b->kc);
    if (b->h) tp_tensor_free(b->h);
    if (b->soft) tp_tensor_free(b->soft);
    if (b->hmask) tp_tensor_free(b->hmask);
    if (b->aq) tp_tensor_free(b->aq);
    if (b->ak) tp_tensor_free(b->ak);
    if (b->av) tp_tensor_free(b->av);
    b->aq = b->ak = b->av = NULL;
    tp_bench_perceiver_free(b->br);
    tp_model_free(b->snd);
    tp_model_free(b->rcv);
    tp_ctx_free(b->ctx);
    b->opt = NULL;
    b->kc = NULL;
    b->h = b->soft = b->hmask = NULL;
    b->br = NULL;
    b->snd = b->rcv = NULL;
    b->ctx = NULL;
}

/* ---- the PyTorch side ---- */
static void run_peer(bench *b, tp_err *err) {
    const tp_bench_opts *o = b->o;
    char out[256], cmd[2048], lim[64] = "";
    snprintf(out, sizeof out, "/tmp/tp_peer_%d.json", (int)getpid());
    remove(out);
    if (o->deadline_s > 0) { /* the peer rewrites --out after each row: a stop keeps them */
        int left = (int)((double)o->deadline_s - (now_ms() - b->t_start) / 1e3);
        if (left < 5) {
            fprintf(stderr, "bench: warning: no time left before --deadline; peer not run\n");
            return;
        }
        snprintf(lim, sizeof lim, "timeout --kill-after=5 %d ", left);
    }
    snprintf(cmd, sizeof cmd,
             "%s%s '%s' --batches '%s' --cases '%s' --layers %d --sender-layer %d --seq %d --soft "
             "%d --relay-tokens %d --iters %d --out '%s'%s",
             lim, o->python ? o->python : "python3", o->peer, o->batches,
             o->cases && o->cases[0]
                 ? o->cases
                 : "sender_encode,bridge,receiver_decode,end_to_end,"
                   "receiver_direct,text_relay,train_step,attention,decode_token",
             o->layers, o->sender_layer, o->seq, o->soft, o->relay_tokens, o->iters, out,
             o->peer_compile ? " --compile" : "");
    fprintf(stderr, "bench: running the PyTorch peer: %s\n", cmd);
    fflush(stderr);
    int rc = system(cmd);
    if (rc != 0) /* stopped at the deadline or failed: keep the rows it wrote */
        fprintf(stderr, "bench: warning: peer_torch.py exited with status %d%s\n",
                WIFEXITED(rc) ? WEXITSTATUS(rc) : rc,
                WIFEXITED(rc) && WEXITSTATUS(rc) == 124 ? " (--deadline)" : "");
    json_error_t je;
    json_t *arr = json_load_file(out, 0, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "bench: warning: %s: %s\n", out, je.text);
        json_decref(arr);
        return;
    }
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r) {
        json_t *pk = json_object_get(r, "peak_mb");
        const char *kase = json_string_value(json_object_get(r, "case"));
        const char *impl = json_string_value(json_object_get(r, "impl"));
        if (!json_object_get(r, "ms")) continue; /* a case the peer could not run */
        const char *dev = json_string_value(json_object_get(r, "device"));
        add_row(b, impl && !strcmp(impl, "torch_compile") ? "torch_compile" : "torch",
                kase ? kase : "?", (int)json_integer_value(json_object_get(r, "batch")),
                json_number_value(json_object_get(r, "ms")), pk ? json_number_value(pk) : NAN,
                dev ? dev : "?");
    }
    json_decref(arr);
    unlink(out);
    (void)err;
}

/* ---- output ---- */
static const brow *find(const bench *b, const char *impl, const char *kase, int batch) {
    for (int i = 0; i < b->n_rows; i++)
        if (!strcmp(b->rows[i].impl, impl) && !strcmp(b->rows[i].kase, kase) &&
            b->rows[i].batch == batch)
            return &b->rows[i];
    return NULL;
}

static void print_table(const bench *b, FILE *f) {
    fprintf(f, "%-16s %5s %10s %10s %8s %10s %8s %8s %8s\n", "case", "batch", "ours_ms", "eager_ms",
            "x_eager", "compile_ms", "x_comp", "peakGiB", "tpeakGiB");
    for (int i = 0; i < b->n_rows; i++) {
        const brow *r = &b->rows[i];
        if (strcmp(r->impl, "telepathy")) continue;
        const brow *t = find(b, "torch", r->kase, r->batch);
        const brow *c = find(b, "torch_compile", r->kase, r->batch);
        fprintf(f, "%-16s %5d %10.2f %10.2f %8.2f %10.2f %8.2f %8.1f %8.1f\n", r->kase, r->batch,
                r->ms, t ? t->ms : NAN, t ? t->ms / r->ms : NAN, c ? c->ms : NAN,
                c ? c->ms / r->ms : NAN, r->peak_mb / 1024, t ? t->peak_mb / 1024 : NAN);
    }
}

static void print_md(const bench *b, FILE *f) {
    fprintf(
        f,
        "telepathy bench on %s (ours: %s; peers: PyTorch + transformers sdpa, eager and, "
        "where run, torch.compile: reduce-overhead at batch 1, inductor for the train step)\n\n",
        b->device,
        b->o->device == TP_CUDA ? "bf16 weights, cuBLASLt, fused kernels" : "cpu reference");
    fprintf(f,
            "| case | batch | telepathy ms | torch eager ms | speed-up vs eager | torch.compile ms "
            "| speed-up vs compile | peak GiB ours | peak GiB torch eager |\n"
            "|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < b->n_rows; i++) {
        const brow *r = &b->rows[i];
        if (strcmp(r->impl, "telepathy")) continue;
        const brow *t = find(b, "torch", r->kase, r->batch);
        const brow *c = find(b, "torch_compile", r->kase, r->batch);
        char tm[32] = "—", ra[32] = "—", tp[32] = "—", cm[32] = "—", cr[32] = "—";
        if (t) {
            snprintf(tm, sizeof tm, "%.2f", t->ms);
            snprintf(ra, sizeof ra, "%.2fx", t->ms / r->ms);
            snprintf(tp, sizeof tp, "%.1f", t->peak_mb / 1024);
        }
        if (c) {
            snprintf(cm, sizeof cm, "%.2f", c->ms);
            snprintf(cr, sizeof cr, "%.2fx", c->ms / r->ms);
        }
        fprintf(f, "| %s | %d | %.2f | %s | %s | %s | %s | %.1f | %s |\n", r->kase, r->batch, r->ms,
                tm, ra, cm, cr, r->peak_mb / 1024, tp);
    }
    if (find(b, "telepathy", "train_step", 8))
        fprintf(f, "\ntrain_step (ours): %s.\n", train_note(b));
    for (int i = 0; i < b->n_rows; i++) {
        const brow *r = &b->rows[i];
        if (strcmp(r->impl, "telepathy") || strcmp(r->kase, "decode_token")) continue;
        char bw[160];
        bw_note(b, r, bw, sizeof bw);
        fprintf(f, "\ndecode_token (ours), batch %d, %.2f ms per token:%s.\n", r->batch, r->ms, bw);
    }
}

static void write_json(const bench *b, const char *path) {
    json_t *arr = json_array();
    for (int i = 0; i < b->n_rows; i++) {
        const brow *r = &b->rows[i];
        json_t *row = json_pack("{s:s,s:s,s:i,s:f,s:f,s:s}", "impl", r->impl, "case", r->kase,
                                "batch", r->batch, "ms", r->ms, "peak_mb",
                                isnan(r->peak_mb) ? -1.0 : r->peak_mb, "device", r->device);
        if (row && r->bytes > 0) {
            json_object_set_new(row, "bytes", json_real(r->bytes));
            json_object_set_new(row, "tb_per_s", json_real(r->bytes / (r->ms * 1e-3) / 1e12));
            if (b->peak_bw > 0)
                json_object_set_new(row, "peak_tb_per_s", json_real(b->peak_bw / 1e12));
        }
        if (row && !strcmp(r->impl, "telepathy") && !strcmp(r->kase, "train_step"))
            json_object_set_new(row, "train_precision",
                                json_string(b->train_bf16 ? "bf16" : "f32"));
        json_array_append_new(arr, row);
    }
    if (json_dump_file(arr, path, JSON_INDENT(1)) != 0)
        fprintf(stderr, "bench: warning: cannot write %s\n", path);
    json_decref(arr);
}

static tp_status store_rows(const bench *b, tp_err *err) {
    const tp_bench_opts *o = b->o;
    tp_store *st = NULL;
    TP_TRY(tp_store_open(&st, o->db, TP_STORE_RW, err));
    char cfg[1024], hash[65];
    snprintf(cfg, sizeof cfg,
             "{\"bench\":{\"batches\":\"%s\",\"device\":\"%s\",\"layers\":%d,\"seq\":%d,"
             "\"soft\":%d,\"sender_layer\":%d,\"iters\":%d,\"train_precision\":\"%s\","
             "\"time\":%lld,\"pid\":%d}}",
             o->batches, b->device, o->layers, o->seq, o->soft, o->sender_layer, o->iters,
             b->train_bf16 ? "bf16" : "f32", (long long)time(NULL), (int)getpid());
    tp_sha256_hex(cfg, strlen(cfg), hash);
    tp_run_meta meta = {0};
    meta.config_json = cfg;
    meta.config_hash = hash;
    meta.seed = (int64_t)o->seed;
    meta.sender = "llama-3.1-8b (random bf16)";
    meta.receiver = "mistral-7b (random bf16)";
    meta.bridge = "perceiver (bench)";
    meta.device = b->device;
    meta.git_dirty = -1;
    int64_t run_id = 0;
    int attempt = 0;
    tp_status s = tp_store_run_begin(st, &meta, &run_id, &attempt, err);
    for (int i = 0; s == TP_OK && i < b->n_rows; i++) {
        const brow *r = &b->rows[i];
        char stage[64];
        int ours = !strcmp(r->impl, "telepathy");
        snprintf(stage, sizeof stage, "%s%s%s", ours ? "" : r->impl, ours ? "" : "/", r->kase);
        tp_latency_row lr = {stage,
                             r->batch,
                             -1,
                             o->iters,
                             r->ms,
                             NAN,
                             isnan(r->peak_mb) ? -1 : (int64_t)(r->peak_mb * (1 << 20)),
                             r->device};
        s = tp_store_latency_add(st, run_id, &lr, 1, err);
    }
    if (run_id)
        tp_store_run_finish(st, run_id, s == TP_OK ? TP_RUN_DONE : TP_RUN_FAILED, NULL, NULL, NULL);
    tp_store_close(st);
    return s;
}

tp_status tp_bench_run(const tp_bench_opts *o, tp_err *err) {
    bench bb, *b = &bb;
    memset(b, 0, sizeof bb);
    b->o = o;
    b->t_start = now_ms();
    b->rng = (tp_rng){o->seed, 1, 0};
    snprintf(b->device, sizeof b->device, "cpu");
#ifdef TP_HAVE_CUDA
    if (o->device == TP_CUDA) {
        TP_TRY(tp_cuda_backend_register(err));
        tp_cuda_info info;
        TP_TRY(tp_cuda_get_info(&info, err));
        snprintf(b->device, sizeof b->device, "%s", info.name);
        b->peak_bw = info.peak_bw;
    }
#else
    if (o->device == TP_CUDA)
        return tp_errf(err, TP_EUNSUP,
                       "bench: this binary was built without CUDA (use --device "
                       "cpu with --tiny for a smoke run)");
#endif
    tp_model_config sc, rc;
    if (o->tiny) {
        tp_bench_config_tiny(&sc, TP_ARCH_LLAMA, o->layers);
        tp_bench_config_tiny(&rc, TP_ARCH_MISTRAL, o->layers);
    } else {
        tp_bench_config_llama31_8b(&sc, o->layers);
        tp_bench_config_mistral_7b(&rc, o->layers);
    }
    tp_dtype wdt = o->device == TP_CPU ? TP_F32 : TP_BF16;
    double t0 = now_ms();
    tp_status s = tp_bench_model_new(&b->snd, &sc, o->device, wdt, o->seed, err);
    if (s == TP_OK) s = tp_bench_model_new(&b->rcv, &rc, o->device, wdt, o->seed + 1, err);
    if (s == TP_OK)
        s = tp_bench_perceiver_new(&b->br, rc.hidden_size, o->soft, 2, 8, 4, o->device,
                                   o->train_dtype, o->seed + 2, err);
    if (s == TP_OK) b->train_bf16 = tp_bench_perceiver_train_dtype(b->br) == TP_BF16;
    if (s == TP_OK && !(b->ctx = tp_ctx_new(o->device)))
        s = tp_errf(err, TP_ENOMEM, "bench: out of memory");
    if (s == TP_OK) {
        tp_tensor **ps;
        int np = tp_bench_perceiver_params(b->br, &ps);
        tp_adamw_cfg ac = tp_adamw_defaults();
        if (!(b->opt = tp_adamw_new(ps, np, &ac, err))) s = err->code ? err->code : TP_ENOMEM;
    }
    if (s == TP_OK) s = dev_sync(b, err);
    if (s == TP_OK)
        fprintf(stderr,
                "bench: %s: sender %d layers, receiver %d layers, bridge %.0fM params; set up in "
                "%.1f s\n",
                b->device, sc.num_hidden_layers, rc.num_hidden_layers,
                tp_bench_perceiver_numel(b->br) / 1e6, (now_ms() - t0) / 1e3);
    tp_status first = TP_OK; /* the first failed case, when the bench went on past it */
    tp_err ferr = {0};
    int n_failed = 0;
    for (const char *p = o->batches; s == TP_OK && p && *p;) {
        b->B = atoi(p);
        if (b->B < 1) {
            s = tp_errf(err, TP_EINVAL, "bench: batch '%s' must be a positive integer", p);
            break;
        }
        s = batch_setup(b, err);
        for (int k = 0; s == TP_OK && k < N_CASES; k++) {
            if (!want_case(o, k_cases[k])) continue;
            if ((k == 5 || k == 9) && b->B > 8) continue;
            if (k == 6 && b->B != 8) continue;
            if (k == 7 && o->device != TP_CUDA) continue;
            double ms = 0;
            /* each case's peak is its own: the arena chunks the batch set-up and earlier cases
             * grew are returned first (torch's max_memory_allocated, the peer's figure, likewise
             * counts no freed, cached blocks); the warm-up calls grow it back */
            tp_ctx_reset(b->ctx);
            tp_arena_release(&b->ctx->data);
            peak_reset(b);
            if (k == 7) { /* optional: a failed capture is reported, the bench goes on */
                tp_err ge = {0};
                if (time_graph(b, &ms, &ge) != TP_OK) {
                    fprintf(stderr, "  bridge_graph     B=%-3d skipped: %s\n", b->B, ge.msg);
                    continue;
                }
            } else {
                s = time_case(b, k, &ms, err);
            }
            if (s != TP_OK) { /* reported and kept; the other cases and batches still run */
                tp_err_prefix(err, "bench case %s, batch %d", k_cases[k], b->B);
                fprintf(stderr, "  %-16s B=%-3d FAILED: %s\n", k_cases[k], b->B, err->msg);
                if (first == TP_OK) {
                    first = s;
                    ferr = *err;
                }
                n_failed++;
                tp_ctx_clear_error(b->ctx);
                s = dev_sync(b, err); /* a sticky device error ends the run here */
                continue;
            }
            add_row(b, "telepathy", k_cases[k], b->B, ms, peak_mb(b), b->device);
            if (k == 9) b->rows[b->n_rows - 1].bytes = decode_bytes(b);
            char bw[160] = "";
            if (k == 9) bw_note(b, &b->rows[b->n_rows - 1], bw, sizeof bw);
            fprintf(stderr, "  %-16s B=%-3d %10.2f ms  peak %.1f GiB%s%s%s\n", k_cases[k], b->B, ms,
                    peak_mb(b) / 1024, k == 6 ? "  " : "", k == 6 ? train_note(b) : "", bw);
        }
        const char *c = strchr(p, ',');
        p = c ? c + 1 : NULL;
    }
    bench_free(b);
    if (s == TP_OK && first != TP_OK) {
        s = first;
        *err = ferr;
        fprintf(stderr, "bench: %d case(s) failed; the first: %s\n", n_failed, ferr.msg);
    }
    if (s != TP_OK && b->n_rows == 0) return s;
    if (s != TP_OK) /* keep what was measured; the error is still returned */
        fprintf(stderr, "bench: stopped early: %s\n", err->msg);
    tp_err perr = {0};
    if (o->peer && o->peer[0]) run_peer(b, &perr);
    print_table(b, stdout);
    if (find(b, "telepathy", "train_step", 8)) printf("train_step: %s\n", train_note(b));
    if (o->md_out) {
        FILE *f = fopen(o->md_out, "w");
        if (f) {
            print_md(b, f);
            fclose(f);
        } else {
            fprintf(stderr, "bench: warning: cannot write %s\n", o->md_out);
        }
    }
    if (o->json_out) write_json(b, o->json_out);
    if (o->db) {
        tp_err se = {0};
        if (store_rows(b, &se) != TP_OK)
            fprintf(stderr, "bench: warning: results not stored in %s: %s\n", o->db, se.msg);
    }
    return s;
}
