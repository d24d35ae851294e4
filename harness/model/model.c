/* model.c — loading a Hugging Face model directory (config + weights + tokenizer) into a
 * tp_model, and building random in-memory models for tests and benchmarks. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/safetensors.h"

tp_model_load_opts tp_model_load_defaults(void) {
    tp_model_load_opts o;
    memset(&o, 0, sizeof o);
    o.device = TP_CPU;
    o.weight_dtype = TP_F32;
    return o;
}

void tp_model_config_tiny(tp_model_config *cfg, tp_arch arch, int vocab, int hidden,
                          int intermediate, int layers, int heads, int kv_heads) {
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = arch;
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s",
             arch == TP_ARCH_MISTRAL ? "MistralForCausalLM"
             : arch == TP_ARCH_QWEN2 ? "Qwen2ForCausalLM"
                                     : "LlamaForCausalLM");
    cfg->vocab_size = vocab;
    cfg->hidden_size = hidden;
    cfg->intermediate_size = intermediate;
    cfg->num_hidden_layers = layers;
    cfg->num_attention_heads = heads;
    cfg->num_key_value_heads = kv_heads;
    cfg->head_dim = hidden / heads;
    cfg->rms_norm_eps = 1e-5;
    cfg->rope_theta = 10000.0;
    cfg->max_position_embeddings = 2048;
    cfg->attention_bias = arch == TP_ARCH_QWEN2;
    cfg->bos_token_id = 1;
    cfg->eos_token_id = 2;
    cfg->eos_token_ids[0] = 2;
    cfg->n_eos = 1;
    cfg->pad_token_id = -1;
    cfg->torch_dtype = TP_F32;
}

/* Checks the config for what the engine needs before any allocation. */
static tp_status check_config(const tp_model_config *c, const char *where, tp_err *err) {
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 ||
        c->num_hidden_layers <= 0 || c->num_attention_heads <= 0 || c->num_key_value_heads <= 0 ||
        c->head_dim <= 0)
        return tp_errf(err, TP_EINVAL,
                       "%s: sizes must be positive (vocab %d, hidden %d, intermediate %d, layers "
                       "%d, heads %d, kv heads %d, head_dim %d)",
                       where, c->vocab_size, c->hidden_size, c->intermediate_size,
                       c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads,
                       c->head_dim);
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return tp_errf(err, TP_EINVAL,
                       "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       where, c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2 != 0 || c->head_dim / 2 > 512)
        return tp_errf(err, TP_EUNSUP, "%s: head_dim %d must be even and at most 1024 for RoPE",
                       where, c->head_dim);
    return TP_OK;
}

static tp_status init_rope(tp_model *m, tp_err *err) {
    const tp_model_config *c = &m->cfg;
    int scaling = c->rope_scaling == TP_ROPE_LLAMA3 ? 1 : 0;
    tp_status s = tp_rope_init(&m->rope, c->head_dim, c->rope_theta, scaling, c->rope_factor,
                               c->rope_low_freq_factor, c->rope_high_freq_factor,
                               c->rope_original_max_position_embeddings);
    if (s != TP_OK)
        return tp_errf(err, s, "%s: RoPE settings rejected (head_dim %d, theta %g, scaling %d)",
                       m->path[0] ? m->path : "model", c->head_dim, c->rope_theta, scaling);
    return TP_OK;
}

static tp_model *model_new(const tp_model_config *cfg, tp_err *err) {
    tp_model *m = calloc(1, sizeof *m);
    if (m) m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (!m || !m->layers) {
        free(m);
        tp_errf(err, TP_ENOMEM, "model: out of memory for %d layers", cfg->num_hidden_layers);
        return NULL;
    }
    m->cfg = *cfg;
    return m;
}

void tp_model_free(tp_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
            tp_tensor **w = (tp_tensor **)&m->layers[l];
            for (size_t i = 0; i < sizeof(tp_layer_weights) / sizeof(tp_tensor *); i++)
                if (w[i]) tp_tensor_free(w[i]);
        }
        free(m->layers);
    }
    if (m->lm_head && m->lm_head != m->embed) tp_tensor_free(m->lm_head);
    if (m->embed) tp_tensor_free(m->embed);
    if (m->norm) tp_tensor_free(m->norm);
    if (m->tok) tp_tokenizer_free(m->tok);
    free(m);
}

/* The table of every weight a model of this config has: HF name, slot, expected shape. */
typedef struct weight_spec {
    char name[128];
    tp_tensor **slot;
    int ndim;
    int64_t shape[2];
} weight_spec;

static int weight_specs(tp_model *m, weight_spec *ws, int cap) {
    const tp_model_config *c = &m->cfg;
    int64_t D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size;
    int64_t Q = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t KV = (int64_t)c->num_key_value_heads * c->head_dim;
    int n = 0;
#define ADD(slot_, nd_, d0_, d1_, ...)                                                             \
    do {                                                                                           \
        if (n < cap) {                                                                             \
            snprintf(ws[n].name, sizeof ws[n].name, __VA_ARGS__);                                  \
            ws[n].slot = (slot_);                                                                  \
            ws[n].ndim = (nd_);                                                                    \
            ws[n].shape[0] = (d0_);                                                                \
            ws[n].shape[1] = (d1_);                                                                \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
    ADD(&m->embed, 2, V, D, "model.embed_tokens.weight");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        tp_layer_weights *L = &m->layers[l];
        ADD(&L->attn_norm, 1, D, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(&L->wq, 2, Q, D, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(&L->wk, 2, KV, D, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(&L->wv, 2, KV, D, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(&L->wo, 2, D, Q, "model.layers.%d.self_attn.o_proj.weight", l);
        if (c->attention_bias) {
            ADD(&L->bq, 1, Q, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(&L->bk, 1, KV, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(&L->bv, 1, KV, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        if (c->attention_out_bias) ADD(&L->bo, 1, D, 0, "model.layers.%d.self_attn.o_proj.bias", l);
        ADD(&L->mlp_norm, 1, D, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(&L->w_gate, 2, I, D, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(&L->w_up, 2, I, D, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(&L->w_down, 2, D, I, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(&m->norm, 1, D, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) ADD(&m->lm_head, 2, V, D, "lm_head.weight");
#undef ADD
    return n;
}

static int64_t spec_numel(const weight_spec *w) {
    return w->ndim == 1 ? w->shape[0] : w->shape[0] * w->shape[1];
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Appends up to `max_named` names to a message and "and N more". */
static void list_names(char *buf, size_t cap, const char **names, int n, int max_named) {
    size_t o = strlen(buf);
    for (int i = 0; i < n && i < max_named && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", names[i]);
    if (n > max_named && o < cap) snprintf(buf + o, cap - o, " and %d more", n - max_named);
}

static tp_status load_weights(tp_model *m, tp_st_model *st, const tp_model_load_opts *o,
                              tp_err *err) {
    int n = weight_specs(m, NULL, 0);
    weight_spec *ws = calloc((size_t)n, sizeof *ws);
    const char **missing = calloc((size_t)n, sizeof *missing);
    if (!ws || !missing) {
        free(ws);
        free(missing);
        return tp_errf(err, TP_ENOMEM, "%s: out of memory for the weight table", m->path);
    }
    weight_specs(m, ws, n);
    tp_status s = TP_OK;
    int n_missing = 0;
    for (int i = 0; i < n; i++)
        if (!tp_st_find(st, ws[i].name)) missing[n_missing++] = ws[i].name;
    if (n_missing) {
        char msg[TP_ERR_MAX];
        snprintf(msg, sizeof msg, "%s: %d tensor(s) missing from the weights: ", m->path,
                 n_missing);
        list_names(msg, sizeof msg - 160, missing, n_missing, 12);
        s = tp_errf(err, TP_EFORMAT,
                    "%s (hint: is config.json for this checkpoint? arch %s, %d layers%s)", msg,
                    tp_arch_name(m->cfg.arch), m->cfg.num_hidden_layers,
                    m->cfg.attention_bias ? ", q/k/v bias" : "");
        goto done;
    }
    for (int i = 0; i < n && s == TP_OK; i++) {
        const tp_st_tensor *t = tp_st_find(st, ws[i].name);
        int same = t->ndim == ws[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == ws[i].shape[d];
        if (!same) {
            char got[96], want[96];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, ws[i].ndim, ws[i].shape);
            s = tp_errf(err, TP_ESHAPE, "%s: tensor '%s' has shape %s, config.json implies %s%s",
                        t->file, ws[i].name, got, want,
                        i == 0 ? " (vocab_size / hidden_size disagree with the embedding)" : "");
            break;
        }
        tp_tensor *src = tp_tensor_wrap(t->dtype, TP_CPU, t->ndim, t->shape, (void *)t->data, err);
        if (!src) {
            s = err ? err->code : TP_EINVAL;
            tp_err_prefix(err, "%s: tensor '%s'", t->file, ws[i].name);
            break;
        }
        tp_tensor *dst = tp_tensor_alloc(o->weight_dtype, o->device, ws[i].ndim, ws[i].shape, err);
        if (!dst) {
            tp_tensor_free(src);
            s = err ? err->code : TP_ENOMEM;
            tp_err_prefix(err, "%s: tensor '%s'", t->file, ws[i].name);
            break;
        }
        snprintf(dst->name, sizeof dst->name, "%s", ws[i].name);
        s = tp_copy_into(dst, src, err);
        tp_tensor_free(src);
        if (s != TP_OK) {
            tp_tensor_free(dst);
            tp_err_prefix(err, "%s: tensor '%s'", t->file, ws[i].name);
            break;
        }
        *ws[i].slot = dst;
        m->n_params += spec_numel(&ws[i]);
    }
    if (s == TP_OK && m->cfg.tie_word_embeddings) m->lm_head = m->embed;
done:
    free(ws);
    free(missing);
    return s;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

tp_status tp_model_load(tp_model **out, const char *dir, const tp_model_load_opts *opts,
                        tp_err *err) {
    *out = NULL;
    tp_model_load_opts o = opts ? *opts : tp_model_load_defaults();
    tp_model_config cfg;
    TP_TRY(tp_model_config_load(&cfg, dir, err));
    char where[1100];
    snprintf(where, sizeof where, "%s/config.json", dir);
    TP_TRY(check_config(&cfg, where, err));
    tp_model *m = model_new(&cfg, err);
    if (!m) return err ? err->code : TP_ENOMEM;
    snprintf(m->path, sizeof m->path, "%s", dir);
    m->device = o.device;
    m->wdtype = o.weight_dtype;
    tp_status s = init_rope(m, err);
    tp_st_model *st = NULL;
    if (s == TP_OK) s = tp_st_open(&st, dir, err);
    if (s == TP_OK) s = load_weights(m, st, &o, err);
    if (s == TP_OK && o.device != TP_CPU) s = tp_model_fuse_qkv(m, err);
    if (st) tp_st_close(st);
    if (s == TP_OK && !o.skip_tokenizer) {
        char p1[1100], p2[1100];
        snprintf(p1, sizeof p1, "%s/tokenizer.json", dir);
        snprintf(p2, sizeof p2, "%s/tokenizer.model", dir);
        if (file_exists(p1) || file_exists(p2)) {
            s = tp_tokenizer_load(&m->tok, dir, err);
            if (s == TP_OK && tp_tokenizer_vocab_size(m->tok) > cfg.vocab_size)
                s = tp_errf(err, TP_ESHAPE,
                            "%s: the tokenizer has %d ids but the embedding has %d rows "
                            "(vocab_size in config.json); ids past the embedding cannot be run",
                            dir, tp_tokenizer_vocab_size(m->tok), cfg.vocab_size);
        }
    }
    if (s != TP_OK) {
        tp_model_free(m);
        return s;
    }
    *out = m;
    return TP_OK;
}

static tp_tensor *rand_tensor(int ndim, const int64_t *shape, float mean, float std, tp_rng *rng,
                              int64_t *count, tp_err *err) {
    tp_tensor *t = tp_tensor_alloc(TP_F32, TP_CPU, ndim, shape, err);
    if (!t) return NULL;
    if (tp_fill_normal(t, mean, std, rng) != TP_OK) {
        tp_errf(err, TP_EINVAL, "model: random fill failed");
        tp_tensor_free(t);
        return NULL;
    }
    *count += tp_numel(t);
    return t;
}

tp_status tp_model_init_random(tp_model **out, const tp_model_config *cfg, uint64_t seed, float std,
                               tp_err *err) {
    *out = NULL;
    TP_TRY(check_config(cfg, "random model config", err));
    tp_model *m = model_new(cfg, err);
    if (!m) return err ? err->code : TP_ENOMEM;
    m->device = TP_CPU;
    m->wdtype = TP_F32;
    tp_status s = init_rope(m, err);
    int n = s == TP_OK ? weight_specs(m, NULL, 0) : 0;
    weight_spec *ws = n ? calloc((size_t)n, sizeof *ws) : NULL;
    if (s == TP_OK && !ws) s = tp_errf(err, TP_ENOMEM, "model: out of memory");
    if (s == TP_OK) weight_specs(m, ws, n);
    /* one stream per tensor, so a model's weights do not depend on the order they are made */
    for (int i = 0; s == TP_OK && i < n; i++) {
        tp_rng rng = {seed, (uint64_t)i + 1, 0};
        const char *nm = ws[i].name;
        size_t len = strlen(nm);
        int is_norm = strstr(nm, "norm") != NULL;
        int is_bias = len > 5 && strcmp(nm + len - 5, ".bias") == 0;
        float mean = is_norm ? 1.0f : 0.0f, sd = (is_norm || is_bias) ? 0.1f : std;
        tp_tensor *t = rand_tensor(ws[i].ndim, ws[i].shape, mean, sd, &rng, &m->n_params, err);
        if (!t) {
            s = err ? err->code : TP_ENOMEM;
            break;
        }
        snprintf(t->name, sizeof t->name, "%s", nm);
        *ws[i].slot = t;
    }
    free(ws);
    if (s == TP_OK && cfg->tie_word_embeddings) m->lm_head = m->embed;
    if (s != TP_OK) {
        tp_model_free(m);
        return s;
    }
    *out = m;
    return TP_OK;
}
