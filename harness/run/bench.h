/* bench.h — `telepathy bench`: the study's latency cases on the real shapes (Llama-3.1-8B
 * sender, Mistral-7B receiver, random bf16 weights made on the device from a seed; speed does not
 * depend on weight values), timed on this harness and, in the same invocation, on PyTorch +
 * transformers through bench/peer_torch.py, printed as one table with the ratio.
 *
 * Cases (B = batch): sender_encode (B x 67 tokens -> hidden state of --sender-layer), bridge
 * (Perceiver, M soft tokens, depth 2, 8 heads, FFN x4, the shapes of peer_torch.py),
 * receiver_decode
 * ([4 primer][M soft][3 target] embeddings -> last-position logits), end_to_end (the three),
 * receiver_direct (80 tokens -> last logits), text_relay (sender greedy 50 tokens with a KV cache,
 * then the receiver classifies 30 + 50 tokens; B <= 8), train_step (B = 8 only: bridge forward,
 * receiver forward to the target logits, cross-entropy, backward to the bridge, clipping, AdamW).
 * Each case: warm-up, then the median of --iters timed calls (CUDA events on the GPU, a monotonic
 * clock on the CPU), and the peak device bytes (weights included, as torch's max allocated). */
#ifndef TP_RUN_BENCH_H
#define TP_RUN_BENCH_H

#include "model/model.h"
#include "telepathy/status.h"
#include "telepathy/tensor.h"

typedef struct tp_bench_opts {
    tp_device device;
    const char *batches; /* "1,8,32" */
    const char *cases;   /* comma list, NULL = all */
    int layers;          /* 0 = the real depth (32); n truncates both models (smoke runs) */
    int sender_layer;    /* hidden_states index read from the sender (clamped to the depth) */
    int seq, soft, relay_tokens, iters, warmup;
    int tiny;       /* tiny widths (CPU smoke test of the command itself) */
    const char *db; /* results.db path or NULL */
    const char *json_out, *md_out;
    const char *peer;     /* path of peer_torch.py, or NULL to skip the PyTorch side */
    const char *python;   /* interpreter for the peer (default python3) */
    int peer_compile;     /* also time the torch.compile peer (batch 1; minutes of compiling) */
    int deadline_s;       /* > 0: the whole bench ends within this many seconds of its start (the
                             peer is killed at the deadline; rows it wrote by then are kept) */
    tp_dtype train_dtype; /* the Perceiver's trainable params in train_step: TP_BF16 (default; the
                             study's and the peer's pure-bf16 training: bf16 params and AdamW
                             moments, f32 grads) or TP_F32 (f32 master weights, cast each step) */
    uint64_t seed;
} tp_bench_opts;

void tp_bench_defaults(tp_bench_opts *o);
tp_status tp_bench_run(const tp_bench_opts *o, tp_err *err);

/* ---- pieces (bench_model.c, bench_perceiver.c) ---- */
/* Real configs of the study's models (HF values), optionally truncated to `layers`. */
void tp_bench_config_llama31_8b(tp_model_config *c, int layers);
void tp_bench_config_mistral_7b(tp_model_config *c, int layers);
void tp_bench_config_tiny(tp_model_config *c, tp_arch arch, int layers);
/* A model of cfg with random weights of dtype dt on dev (N(0, 0.02^2), norms 1). */
tp_status tp_bench_model_new(tp_model **out, const tp_model_config *cfg, tp_device dev, tp_dtype dt,
                             uint64_t seed, tp_err *err);

typedef struct tp_bench_perceiver tp_bench_perceiver;
/* peer_torch.py's Perceiver: latents [M,D], depth blocks of (LN, cross-attention with key
 * padding, LN, self-attention, LN, FFN GELU x ffn), RMS norm, * alpha. Trainable params on dev
 * stored in train_dt: TP_BF16 (pure-bf16 training; inference reads the same bf16 params) or
 * TP_F32 (master weights plus a bf16 copy for inference on the GPU). */
tp_status tp_bench_perceiver_new(tp_bench_perceiver **out, int d, int m, int depth, int heads,
                                 int ffn, tp_device dev, tp_dtype train_dt, uint64_t seed,
                                 tp_err *err);
void tp_bench_perceiver_free(tp_bench_perceiver *p);
/* h [B,T,D], mask f32 [B,T] -> [B,M,D]. train = 0 reads the inference weights (no grad);
 * train = 1 reads the params on the tape (f32 ones cast to the compute dtype), so a backward
 * reaches their f32 grads. */
tp_tensor *tp_bench_perceiver_forward(tp_bench_perceiver *p, tp_ctx *c, tp_tensor *h,
                                      tp_tensor *mask, int train);
/* The trainable params (for AdamW / clipping); with f32 params the bf16 inference copy is not
 * refreshed. */
int tp_bench_perceiver_params(tp_bench_perceiver *p, tp_tensor ***params);
/* The dtype the trainable params are stored in (what train_step ran with). */
tp_dtype tp_bench_perceiver_train_dtype(const tp_bench_perceiver *p);
int64_t tp_bench_perceiver_numel(const tp_bench_perceiver *p);

#endif
