/* transformer.h — the decoder forward pass of Llama / Mistral / Qwen2 on the tensor core.
 *
 * Semantics follow Hugging Face transformers so numbers line up with Python:
 *   - hidden states use HF's hidden_states[l] indexing: 0 = the input embeddings, l = the output
 *     of decoder layer l (1 <= l < N), N = after the final norm;
 *   - position ids default to arange(T) (plus the cache length), exactly as HF forward does;
 *     pass explicit positions (e.g. tp_positions_from_mask) for left-padded batches;
 *   - the attention mask hides padded keys; Mistral's sliding window hides keys at distance
 *     >= sliding_window; a fully masked (padding) query row outputs zeros, so only real
 *     positions are meaningful (HF gives such rows a uniform attention instead).
 * Every op goes through the tape, so a backward from the logits reaches inputs_embeds; the
 * weights are frozen (never params), so no weight gradient is ever allocated.
 *
 * Shapes: B batch, T new positions, S = cache length + T keys, D width, V vocab, P positions
 * whose logits are asked for. */
#ifndef TP_MODEL_TRANSFORMER_H
#define TP_MODEL_TRANSFORMER_H

#include "model/model.h"

#define TP_FWD_MAX_HIDDEN 8

typedef enum tp_logits_mode {
    TP_LOGITS_NONE = 0, /* no vocab GEMM at all (sender encoding) */
    TP_LOGITS_ALL = 1,  /* [B,T,V] */
    TP_LOGITS_LAST = 2, /* [B,1,V] at each row's last real (mask = 1) position */
    TP_LOGITS_AT = 3,   /* [B,P,V] at positions logit_pos [B,P] (i32, per row) */
} tp_logits_mode;

/* KV cache for incremental decoding: persistent per-layer K/V [B,Hkv,Smax,Dh] (f32; in the
 * weights' dtype for a bf16/f16 model on a GPU) and the key mask of every cached position. Filled
 * by forward calls that pass it; `len` advances by T. */
typedef struct tp_kv_cache {
    int n_layers, batch, max_len, len;
    tp_tensor **k, **v; /* n_layers each */
    tp_tensor *mask;    /* f32 [B,Smax]: 1 = real key */
} tp_kv_cache;

tp_status tp_kv_cache_new(tp_kv_cache **out, const tp_model *m, int batch, int max_len,
                          tp_err *err);
void tp_kv_cache_free(tp_kv_cache *c);

typedef struct tp_fwd_in {
    tp_tensor *ids;    /* i32 [B,T], or NULL when embeds is given */
    tp_tensor *embeds; /* f32 [B,T,D] (soft tokens + embedded prompt pieces), or NULL */
    tp_tensor *mask;   /* f32 or i32 [B,T]: 1 = token, 0 = padding; NULL = no padding */
    tp_tensor *pos;    /* i32 [B,T] position ids, or NULL = cache length + arange(T) */
    int hidden_layers[TP_FWD_MAX_HIDDEN]; /* HF hidden_states indices to return */
    int n_hidden;
    tp_logits_mode logits;
    tp_tensor *logit_pos; /* i32 [B,P] for TP_LOGITS_AT */
    /* NULL: no cache; else keys/values are appended to it. Inference only: a cache call whose
     * input requires grad is refused, since gradients cannot flow through cached keys. */
    tp_kv_cache *cache;
} tp_fwd_in;

typedef struct tp_fwd_out {
    tp_tensor *hidden[TP_FWD_MAX_HIDDEN]; /* [B,T,D], in the order asked */
    tp_tensor *logits;                    /* [B,P,V] (P = T for ALL, 1 for LAST) or NULL */
} tp_fwd_out;

/* Runs the model on ctx (all outputs live in ctx's arena). Stops after the deepest requested
 * layer when no logits are asked for. Errors: neither or both of ids/embeds, shape mismatch,
 * token id >= vocab, position >= max_position_embeddings, layer index outside 0..N, cache full. */
tp_status tp_model_forward(tp_model *m, tp_ctx *ctx, const tp_fwd_in *in, tp_fwd_out *out,
                           tp_err *err);

/* Token embeddings: ids i32 [B,T] -> [B,T,D]; ids are checked against the vocab first. */
tp_tensor *tp_model_embed(tp_model *m, tp_ctx *ctx, tp_tensor *ids, tp_err *err);

/* HF generate's position ids for a padded batch: cumsum(mask) - 1 along each row, pads set to
 * 1. mask may be f32 or i32 [B,T] on the CPU. Returns i32 [B,T] in ctx. */
tp_tensor *tp_positions_from_mask(tp_ctx *ctx, tp_tensor *mask, tp_err *err);

#endif
