/* model.h — a loaded causal LM: its config.json, its frozen weights and (when the directory has
 * one) its tokenizer. Weights follow the Hugging Face names (model.embed_tokens.weight,
 * model.layers.N.self_attn.q_proj.weight, ...) and shapes ([out, in], nn.Linear layout).
 *
 * Weights are persistent tensors without TP_FLAG_PARAM, so the autograd tape never allocates a
 * gradient for them: a backward through the model computes input gradients only.
 *
 * Loading is device-aware: each safetensors entry is wrapped where it lies in the mmap and copied
 * with tp_copy_into into a tensor of the requested dtype on the requested device, so the same
 * code loads f32 on the CPU today and bf16 straight to the GPU once a CUDA backend exists. */
#ifndef TP_MODEL_MODEL_H
#define TP_MODEL_MODEL_H

#include <stdint.h>

#include "model/model_config.h"
#include "model/tokenizer.h"
#include "telepathy/status.h"
#include "telepathy/tensor.h"

/* One decoder layer. Shapes: D width, H heads, Hkv KV heads, Dh head dim, I intermediate. */
typedef struct tp_layer_weights {
    tp_tensor *attn_norm;         /* [D] input_layernorm */
    tp_tensor *wq, *wk, *wv, *wo; /* [H*Dh,D] [Hkv*Dh,D] [Hkv*Dh,D] [D,H*Dh] */
    tp_tensor *bq, *bk, *bv, *bo; /* [H*Dh] [Hkv*Dh] [Hkv*Dh] [D], or NULL */
    tp_tensor *mlp_norm;          /* [D] post_attention_layernorm */
    tp_tensor *w_gate, *w_up;     /* [I,D] */
    tp_tensor *w_down;            /* [D,I] */
    /* Set by tp_model_fuse_qkv: the owner of wq|wk|wv stacked by rows ([Q+2KV, D]) and of
     * bq|bk|bv; wq/wk/wv/bq/bk/bv are then non-owning views of it. NULL: three projections. */
    tp_tensor *wqkv, *bqkv;
    /* Set by tp_model_fuse_qkv too: the owner of w_gate|w_up stacked by rows ([2I, D]); the
     * forward runs one GEMM and SwiGLU reads the two halves of its output. */
    tp_tensor *wgu;
} tp_layer_weights;

typedef struct tp_model {
    tp_model_config cfg;
    char path[1024]; /* directory it was loaded from ("" for a random in-memory model) */
    tp_device device;
    tp_dtype wdtype;          /* dtype the weights are held in */
    tp_tensor *embed;         /* [V,D] */
    tp_tensor *norm;          /* [D] final norm */
    tp_tensor *lm_head;       /* [V,D]; the same tensor as embed when tied */
    tp_layer_weights *layers; /* cfg.num_hidden_layers entries */
    tp_rope_cfg rope;
    tp_tokenizer *tok; /* NULL when the directory has no tokenizer */
    int64_t n_params;  /* element count of all weights (tied counted once) */
} tp_model;

typedef struct tp_model_load_opts {
    tp_device device;      /* TP_CPU */
    tp_dtype weight_dtype; /* TP_F32 (default), or TP_BF16 / TP_F16 to hold half the bytes;
                              the ops compute in f32 either way (the CPU converts per op) */
    int skip_tokenizer;    /* 1: do not look for a tokenizer */
} tp_model_load_opts;

/* Defaults: CPU, f32, tokenizer loaded when present. */
tp_model_load_opts tp_model_load_defaults(void);

/* dir: a Hugging Face model directory (config.json, model.safetensors or a sharded index,
 * optional tokenizer.json / tokenizer.model). opts may be NULL. Every missing tensor is named in
 * one error; shapes are checked against the config; the tokenizer's ids must fit the embedding. */
tp_status tp_model_load(tp_model **out, const char *dir, const tp_model_load_opts *opts,
                        tp_err *err);

/* An in-memory model with random weights (tests, benchmarks): linear weights and embeddings
 * N(0, std^2), norm weights N(1, 0.1^2), biases N(0, 0.1^2); deterministic in seed. */
tp_status tp_model_init_random(tp_model **out, const tp_model_config *cfg, uint64_t seed, float std,
                               tp_err *err);

void tp_model_free(tp_model *m);
/* Stacks each layer's q/k/v weights (and biases) into one tensor, and its gate/up weights into
 * another, so the forward runs one GEMM for each group (fuse.c). Same results; done for GPU
 * models at load. Frozen weights only. */
tp_status tp_model_fuse_qkv(tp_model *m, tp_err *err);

/* A config for random models: fills the fields tp_model_config_load would, from the
 * arguments, with Llama defaults for the rest (eps 1e-5, theta 10000, no scaling, untied). */
void tp_model_config_tiny(tp_model_config *cfg, tp_arch arch, int vocab, int hidden,
                          int intermediate, int layers, int heads, int kv_heads);

#endif
