/* bench_model.c — the benchmark's models: the study's real configs (Llama-3.1-8B, Mistral-7B)
 * or tiny ones, with random weights made where they live (on the GPU by a Philox fill kernel, so
 * two 8B models appear in a second instead of a CPU fill and a 30 GB upload). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/bench.h"
#ifdef TP_HAVE_CUDA
#include "tp_cuda.h"
#endif

void tp_bench_config_llama31_8b(tp_model_config *c, int layers) {
    tp_model_config_tiny(c, TP_ARCH_LLAMA, 128256, 4096, 14336, layers > 0 ? layers : 32, 32, 8);
    snprintf(c->architecture, sizeof c->architecture, "LlamaForCausalLM");
    c->rms_norm_eps = 1e-5;
    c->rope_theta = 500000.0;
    c->rope_scaling = TP_ROPE_LLAMA3;
    c->rope_factor = 8.0;
    c->rope_low_freq_factor = 1.0;
    c->rope_high_freq_factor = 4.0;
    c->rope_original_max_position_embeddings = 8192;
    c->max_position_embeddings = 131072;
}

void tp_bench_config_mistral_7b(tp_model_config *c, int layers) {
    tp_model_config_tiny(c, TP_ARCH_MISTRAL, 32768, 4096, 14336, layers > 0 ? layers : 32, 32, 8);
    snprintf(c->architecture, sizeof c->architecture, "MistralForCausalLM");
    c->rms_norm_eps = 1e-5;
    c->rope_theta = 1000000.0;
    c->max_position_embeddings = 32768;
}

void tp_bench_config_tiny(tp_model_config *c, tp_arch arch, int layers) {
    tp_model_config_tiny(c, arch, 32768 + 64, 64, 128, layers > 0 ? layers : 2, 4, 2);
}

static tp_tensor *rand_w(tp_device dev, tp_dtype dt, int ndim, const int64_t *shape, float mean,
                         float std, uint64_t seed, uint64_t stream, tp_err *err) {
    tp_tensor *t = tp_tensor_alloc(dt, dev, ndim, shape, err);
    if (!t) return NULL;
    tp_status s;
#ifdef TP_HAVE_CUDA
    if (dev == TP_CUDA)
        s = tp_cuda_fill_normal(t, mean, std, seed, stream, err);
    else
#endif
    {
        tp_rng r = {seed, stream, 0};
        s = tp_fill_normal(t, mean, std, &r);
        if (s) tp_errf(err, s, "bench model: random fill failed");
    }
    if (s) {
        tp_tensor_free(t);
        return NULL;
    }
    return t;
}

tp_status tp_bench_model_new(tp_model **out, const tp_model_config *cfg, tp_device dev, tp_dtype dt,
                             uint64_t seed, tp_err *err) {
    *out = NULL;
    tp_model *m = calloc(1, sizeof *m); /* tp_model_free releases with free() */
    if (m) m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (!m || !m->layers) {
        free(m);
        return tp_errf(err, TP_ENOMEM, "bench model: out of memory");
    }
    m->cfg = *cfg;
    m->device = dev;
    m->wdtype = dt;
    TP_TRY(tp_rope_init(&m->rope, cfg->head_dim, cfg->rope_theta,
                        cfg->rope_scaling == TP_ROPE_LLAMA3, cfg->rope_factor,
                        cfg->rope_low_freq_factor, cfg->rope_high_freq_factor,
                        cfg->rope_original_max_position_embeddings));
    int64_t D = cfg->hidden_size, V = cfg->vocab_size, I = cfg->intermediate_size;
    int64_t Q = (int64_t)cfg->num_attention_heads * cfg->head_dim;
    int64_t KV = (int64_t)cfg->num_key_value_heads * cfg->head_dim;
    uint64_t st = 1;
    tp_status s = TP_OK;
#define W2(slot, a, b)                                                                             \
    do {                                                                                           \
        if (s == TP_OK) {                                                                          \
            slot = rand_w(dev, dt, 2, (int64_t[]){a, b}, 0.0f, 0.02f, seed, st++, err);            \
            if (!slot)                                                                             \
                s = err ? err->code : TP_ENOMEM;                                                   \
            else                                                                                   \
                m->n_params += (a) * (b);                                                          \
        }                                                                                          \
    } while (0)
#define NORM(slot)                                                                                 \
    do {                                                                                           \
        if (s == TP_OK) {                                                                          \
            slot = rand_w(dev, dt, 1, (int64_t[]){D}, 1.0f, 0.0f, seed, st++, err);                \
            if (!slot)                                                                             \
                s = err ? err->code : TP_ENOMEM;                                                   \
            else                                                                                   \
                m->n_params += D;                                                                  \
        }                                                                                          \
    } while (0)
    W2(m->embed, V, D);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        tp_layer_weights *L = &m->layers[l];
        NORM(L->attn_norm);
        W2(L->wq, Q, D);
        W2(L->wk, KV, D);
        W2(L->wv, KV, D);
        W2(L->wo, D, Q);
        NORM(L->mlp_norm);
        W2(L->w_gate, I, D);
        W2(L->w_up, I, D);
        W2(L->w_down, D, I);
    }
    NORM(m->norm);
    if (cfg->tie_word_embeddings)
        m->lm_head = m->embed;
    else
        W2(m->lm_head, V, D);
#undef W2
#undef NORM
    if (s == TP_OK) s = tp_model_fuse_qkv(m, err); /* as tp_model_load does for GPU models */
    if (s != TP_OK) {
        tp_model_free(m);
        return tp_err_prefix(err, "bench model (%d layers, %s)", cfg->num_hidden_layers,
                             dev == TP_CPU ? "cpu" : "cuda");
    }
    *out = m;
    return TP_OK;
}
