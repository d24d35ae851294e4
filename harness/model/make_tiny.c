/* make_tiny.c — writes a random model in HF layout: the shape table, config.json, the tensor
 * list in HF naming, streamed N(0, 0.02) weights from Philox, and the tokenizer (written by the
 * tokenizer module, read back here for its special-token ids). */
#include "model/make_tiny.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "core/rng.h"
#include "model/tokenizer.h"
#include "telepathy/tensor.h"
#include "util/fsutil.h"

typedef struct tiny_shape {
    const char *name, *arch;
    int hidden, layers, heads, kv_heads, inter, vocab, max_pos;
    double theta, eps;
    int llama3_rope; /* factor 8/32, low 1, high 4, original 8192 */
    double rope_factor;
    int tied, qkv_bias;
    tp_dtype dtype;
    const char *tok_style;
    int tok_vocab;
} tiny_shape;

static const tiny_shape shapes[] = {
    {"tiny", "llama", 64, 4, 4, 2, 172, 512, 4096, 500000.0, 1e-5, 1, 8.0, 0, 0, TP_F32,
     "bytelevel", 512},
    {"tiny", "mistral", 96, 4, 6, 2, 256, 512, 4096, 1e6, 1e-5, 0, 0, 0, 0, TP_F32, "spm", 512},
    {"tiny", "qwen2", 64, 3, 4, 1, 192, 512, 4096, 1e6, 1e-6, 0, 0, 1, 1, TP_F32, "bytelevel", 512},
    {"llama-3.1-8b", "llama", 4096, 32, 32, 8, 14336, 128256, 131072, 500000.0, 1e-5, 1, 8.0, 0, 0,
     TP_BF16, "bytelevel", 1024},
    {"llama-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0, 1e-5, 1, 32.0, 1, 0,
     TP_BF16, "bytelevel", 1024},
    {"mistral-7b", "mistral", 4096, 32, 32, 8, 14336, 32768, 32768, 1e6, 1e-5, 0, 0, 0, 0, TP_BF16,
     "spm", 1024},
};

#define WEIGHT_STD 0.02f

typedef struct gen_tensor {
    char name[TP_ST_NAME_MAX];
    int ndim;
    int64_t shape[2];
    int kind; /* 0 normal, 1 ones */
    uint64_t stream;
    uint64_t seed;
    tp_dtype dtype;
    float *scratch; /* f32 staging for bf16 output, one chunk */
} gen_tensor;

typedef struct fill_part {
    const gen_tensor *g;
    float *dst;
    uint16_t *out; /* bf16 output or NULL */
    size_t e0, n;  /* absolute first element (even), count */
} fill_part;

static void *fill_part_run(void *arg) {
    fill_part *p = arg;
    tp_rng rng = {.seed = p->g->seed, .stream = p->g->stream, .offset = p->e0};
    tp_rng_fill_normal(&rng, p->dst, p->n, 0.0f, WEIGHT_STD);
    if (p->out)
        for (size_t i = 0; i < p->n; i++) p->out[i] = tp_f32_to_bf16(p->dst[i]);
    return NULL;
}

/* Element i of a tensor is the normal at Philox offset i of its stream (normals come in pairs
 * from two 32-bit draws), so any split into pieces that start on even elements gives the same
 * bytes. Large chunks are split across threads: Box-Muller is the cost of an 8B model. */
static tp_status gen_fill(void *user, void *buf, size_t off, size_t nb, tp_err *err) {
    gen_tensor *g = user;
    size_t esz = g->dtype == TP_F32 ? 4 : 2;
    size_t e0 = off / esz, n = nb / esz;
    float *dst = g->dtype == TP_F32 ? (float *)buf : g->scratch;
    uint16_t *out = g->dtype == TP_BF16 ? (uint16_t *)buf : NULL;
    if (g->kind == 1) {
        for (size_t i = 0; i < n; i++) dst[i] = 1.0f;
        if (out)
            for (size_t i = 0; i < n; i++) out[i] = tp_f32_to_bf16(dst[i]);
        return TP_OK;
    }
    if (e0 % 2) return tp_errf(err, TP_ESTATE, "make-tiny: chunk starts on odd element %zu", e0);
    enum { MAX_THREADS = 32 };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = n < (1u << 18) ? 1 : (int)(ncpu < 1 ? 1 : ncpu > MAX_THREADS ? MAX_THREADS : ncpu);
    fill_part parts[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    size_t per = ((n / (size_t)nt) + 1) & ~(size_t)1, at = 0;
    for (int t = 0; t < nt; t++) {
        size_t len = t == nt - 1 || at + per > n ? n - at : per;
        parts[t] = (fill_part){g, dst + at, out ? out + at : NULL, e0 + at, len};
        at += len;
        /* a thread that cannot start runs inline: same bytes either way */
        if (t == nt - 1 || pthread_create(&tid[t], NULL, fill_part_run, &parts[t]) != 0)
            fill_part_run(&parts[t]);
        else
            started[t] = 1;
    }
    for (int t = 0; t < nt; t++)
        if (started[t]) pthread_join(tid[t], NULL);
    return TP_OK;
}

static tp_status find_shape(const char *arch, const char *shape, tiny_shape *out, tp_err *err) {
    if (!shape || !shape[0]) shape = "tiny";
    char base[64];
    int layers = 0;
    const char *colon = strchr(shape, ':');
    size_t bl = colon ? (size_t)(colon - shape) : strlen(shape);
    if (bl >= sizeof base) bl = sizeof base - 1;
    memcpy(base, shape, bl);
    base[bl] = 0;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end || v < 1 || v > 1000)
            return tp_errf(err, TP_EINVAL,
                           "make-tiny: shape '%s': after ':' expected a layer count 1..1000",
                           shape);
        layers = (int)v;
    }
    /* "tiny-bf16": the tiny model stored in bf16 (its values are the f32 tiny model's rounded),
     * for testing bf16 loading without a multi-GB file */
    int bf16 = strcmp(base, "tiny-bf16") == 0;
    if (bf16) base[4] = 0;
    int arch_known = 0, name_known = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (strcmp(shapes[i].arch, arch) == 0) arch_known = 1;
        if (strcmp(shapes[i].name, base) == 0) name_known = 1;
        if (strcmp(shapes[i].arch, arch) == 0 && strcmp(shapes[i].name, base) == 0) {
            *out = shapes[i];
            if (layers) out->layers = layers;
            if (bf16) out->dtype = TP_BF16, out->name = "tiny-bf16";
            return TP_OK;
        }
    }
    if (!arch_known)
        return tp_errf(err, TP_EINVAL,
                       "make-tiny: unknown arch '%s' (expected llama, mistral or "
                       "qwen2)",
                       arch);
    if (!name_known)
        return tp_errf(err, TP_EINVAL,
                       "make-tiny: unknown shape '%s' (expected tiny, tiny-bf16, llama-3.1-8b, "
                       "llama-1b, mistral-7b, optionally followed by :LAYERS)",
                       shape);
    return tp_errf(err, TP_EINVAL, "make-tiny: shape '%s' is not a %s shape", base, arch);
}

/* The special-token ids as the tokenizer file assigns them (read back, not assumed). */
static tp_status tokenizer_specials(const char *path, int *bos, int *eos, int *max_id,
                                    tp_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return tp_errf(err, TP_EFORMAT, "%s:%d: tokenizer written by make-tiny is not JSON: %s",
                       path, je.line, je.text);
    *bos = *eos = -1;
    *max_id = -1;
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_t *t;
    json_array_foreach(added, i, t) {
        const char *c = json_string_value(json_object_get(t, "content"));
        int id = (int)json_integer_value(json_object_get(t, "id"));
        if (!c) continue;
        if (strcmp(c, "<|begin_of_text|>") == 0 || strcmp(c, "<s>") == 0) *bos = id;
        if (strcmp(c, "<|end_of_text|>") == 0 || strcmp(c, "</s>") == 0) *eos = id;
        if (id > *max_id) *max_id = id;
    }
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        int id = (int)json_integer_value(v);
        if (id > *max_id) *max_id = id;
    }
    json_decref(root);
    if (*bos < 0 || *eos < 0)
        return tp_errf(err, TP_EFORMAT, "%s: no BOS/EOS special token found in added_tokens", path);
    return TP_OK;
}

static tp_status write_config(const char *path, const tiny_shape *s, int bos, int eos,
                              tp_err *err) {
    static const char *cls[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"};
    int ai = strcmp(s->arch, "llama") == 0 ? 0 : strcmp(s->arch, "mistral") == 0 ? 1 : 2;
    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", cls[ai]));
    json_object_set_new(c, "model_type", json_string(s->arch));
    json_object_set_new(c, "vocab_size", json_integer(s->vocab));
    json_object_set_new(c, "hidden_size", json_integer(s->hidden));
    json_object_set_new(c, "intermediate_size", json_integer(s->inter));
    json_object_set_new(c, "num_hidden_layers", json_integer(s->layers));
    json_object_set_new(c, "num_attention_heads", json_integer(s->heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(s->kv_heads));
    json_object_set_new(c, "head_dim", json_integer(s->hidden / s->heads));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "max_position_embeddings", json_integer(s->max_pos));
    json_object_set_new(c, "rms_norm_eps", json_real(s->eps));
    json_object_set_new(c, "rope_theta", json_real(s->theta));
    if (s->llama3_rope)
        json_object_set_new(c, "rope_scaling",
                            json_pack("{s:f, s:f, s:f, s:i, s:s}", "factor", s->rope_factor,
                                      "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                      "original_max_position_embeddings", 8192, "rope_type",
                                      "llama3"));
    else
        json_object_set_new(c, "rope_scaling", json_null());
    if (ai == 0) {
        json_object_set_new(c, "attention_bias", json_false());
        json_object_set_new(c, "mlp_bias", json_false());
    }
    if (ai == 1) json_object_set_new(c, "sliding_window", json_null());
    if (ai == 2) json_object_set_new(c, "use_sliding_window", json_false());
    json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tied));
    json_object_set_new(c, "bos_token_id", json_integer(bos));
    json_object_set_new(c, "eos_token_id", json_integer(eos));
    json_object_set_new(c, "torch_dtype",
                        json_string(s->dtype == TP_BF16 ? "bfloat16" : "float32"));
    json_object_set_new(c, "initializer_range", json_real(WEIGHT_STD));
    json_object_set_new(c, "attention_dropout", json_real(0.0));
    json_object_set_new(c, "use_cache", json_true());
    char *text = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(c);
    if (!text) return tp_errf(err, TP_ENOMEM, "make-tiny: out of memory");
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL; length passed explicitly */
    tp_status st = tp_write_file_atomic(path, text, n + 1, err);
    free(text);
    return st;
}

static void add_gen(gen_tensor *g, int *n, const char *name, int64_t d0, int64_t d1, int kind) {
    gen_tensor *t = &g[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->kind = kind;
}

tp_status tp_make_tiny(const char *dir, const char *arch, uint64_t seed, const char *shape,
                       tp_err *err) {
    if (!dir || !dir[0] || !arch)
        return tp_errf(err, TP_EINVAL, "make-tiny: DIR and arch required");
    tiny_shape s = {0};
    TP_TRY(find_shape(arch, shape, &s, err));
    TP_TRY(tp_mkdir_p(dir, err));
    char path[4200];
    TP_TRY(tp_path_join(path, sizeof path, dir, "tokenizer.json", err));
    TP_TRY(tp_tokenizer_write_tiny(path, s.tok_style, s.tok_vocab, seed, err));
    int bos = -1, eos = -1, max_id = -1;
    TP_TRY(tokenizer_specials(path, &bos, &eos, &max_id, err));
    if (max_id >= s.vocab)
        return tp_errf(err, TP_ESTATE,
                       "make-tiny: tokenizer %s has id %d but the model vocab is %d", path, max_id,
                       s.vocab);
    TP_TRY(tp_path_join(path, sizeof path, dir, "config.json", err));
    TP_TRY(write_config(path, &s, bos, eos, err));

    /* tensors in HF naming and the order transformers' save_pretrained lists them */
    int ntens = 2 + s.layers * (9 + (s.qkv_bias ? 3 : 0)) + (s.tied ? 0 : 1);
    gen_tensor *g = calloc((size_t)ntens, sizeof *g);
    if (!g) return tp_errf(err, TP_ENOMEM, "make-tiny: out of memory");
    int n = 0, dh = s.hidden / s.heads;
    int64_t D = s.hidden, Q = (int64_t)s.heads * dh, KV = (int64_t)s.kv_heads * dh, I = s.inter;
    char nm[TP_ST_NAME_MAX];
    add_gen(g, &n, "model.embed_tokens.weight", s.vocab, D, 0);
    for (int l = 0; l < s.layers; l++) {
#define L(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), nm)
        add_gen(g, &n, L("input_layernorm.weight"), D, 0, 1);
        add_gen(g, &n, L("self_attn.q_proj.weight"), Q, D, 0);
        if (s.qkv_bias) add_gen(g, &n, L("self_attn.q_proj.bias"), Q, 0, 0);
        add_gen(g, &n, L("self_attn.k_proj.weight"), KV, D, 0);
        if (s.qkv_bias) add_gen(g, &n, L("self_attn.k_proj.bias"), KV, 0, 0);
        add_gen(g, &n, L("self_attn.v_proj.weight"), KV, D, 0);
        if (s.qkv_bias) add_gen(g, &n, L("self_attn.v_proj.bias"), KV, 0, 0);
        add_gen(g, &n, L("self_attn.o_proj.weight"), D, Q, 0);
        add_gen(g, &n, L("post_attention_layernorm.weight"), D, 0, 1);
        add_gen(g, &n, L("mlp.gate_proj.weight"), I, D, 0);
        add_gen(g, &n, L("mlp.up_proj.weight"), I, D, 0);
        add_gen(g, &n, L("mlp.down_proj.weight"), D, I, 0);
#undef L
    }
    add_gen(g, &n, "model.norm.weight", D, 0, 1);
    if (!s.tied) add_gen(g, &n, "lm_head.weight", s.vocab, D, 0);

    /* one stream per tensor, distinct across architectures so two arches never share weights */
    uint64_t arch_id = strcmp(s.arch, "llama") == 0 ? 1 : strcmp(s.arch, "mistral") == 0 ? 2 : 3;
    float *scratch = s.dtype == TP_BF16 ? malloc((4u << 20) / 2 * sizeof(float)) : NULL;
    tp_st_writer *w = tp_st_writer_new();
    tp_status st = TP_OK;
    if (!w || (s.dtype == TP_BF16 && !scratch))
        st = tp_errf(err, TP_ENOMEM, "make-tiny: out of memory");
    for (int i = 0; i < n && st == TP_OK; i++) {
        g[i].seed = seed;
        g[i].stream = (arch_id << 32) | (uint64_t)i;
        g[i].dtype = s.dtype;
        g[i].scratch = scratch;
        st = tp_st_writer_add_fill(w, g[i].name, s.dtype, g[i].ndim, g[i].shape, gen_fill, &g[i],
                                   err);
    }
    if (st == TP_OK) st = tp_st_writer_meta(w, "format", "pt", err);
    if (st == TP_OK) st = tp_st_writer_meta(w, "telepathy_make_tiny", s.name, err);
    if (st == TP_OK) st = tp_path_join(path, sizeof path, dir, "model.safetensors", err);
    if (st == TP_OK) st = tp_st_writer_write(w, path, err);
    tp_st_writer_free(w);
    free(scratch);
    free(g);
    return st;
}
