/* test_make_tiny.c — random HF-layout models: files, config values, tensor names/shapes/dtypes,
 * weight statistics, byte-for-byte reproducibility from the seed, the two demo models really
 * differing, the tokenizer loading, bf16 storage equal to the rounded f32 values, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/make_tiny.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

static char *mkdir_path(const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s", tp_test_tmpdir(), name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void check_model(const char *dir, const char *arch, int hidden, int layers, int heads,
                        int kv, int inter, double theta, int bias, int tied, const char *tokkind) {
    tp_err err = {0};
    tp_model_config c;
    TP_CHECKF(tp_model_config_load(&c, dir, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(strcmp(tp_arch_name(c.arch), arch) == 0);
    TP_CHECK(c.hidden_size == hidden && c.num_hidden_layers == layers);
    TP_CHECK(c.num_attention_heads == heads && c.num_key_value_heads == kv);
    TP_CHECK(c.intermediate_size == inter && c.rope_theta == theta && c.vocab_size == 512);
    TP_CHECK(c.attention_bias == bias && c.tie_word_embeddings == tied);
    TP_CHECK(c.torch_dtype == TP_F32 && c.sliding_window == 0);
    tp_st_model *m = NULL;
    TP_CHECKF(tp_st_open(&m, dir, &err) == TP_OK, "%s", err.msg);
    if (!m) return;
    int want = 2 + layers * (9 + 3 * bias) + !tied;
    TP_CHECKF(tp_st_count(m) == want, "%d tensors, want %d", tp_st_count(m), want);
    const int dh = hidden / heads;
    const tp_st_tensor *t = tp_st_find(m, "model.embed_tokens.weight");
    TP_CHECK(t && t->dtype == TP_F32 && t->shape[0] == 512 && t->shape[1] == hidden);
    t = tp_st_find(m, "model.layers.0.self_attn.k_proj.weight");
    TP_CHECK(t && t->shape[0] == kv * dh && t->shape[1] == hidden);
    t = tp_st_find(m, "model.layers.0.mlp.down_proj.weight");
    TP_CHECK(t && t->shape[0] == hidden && t->shape[1] == inter);
    t = tp_st_find(m, "model.layers.0.self_attn.q_proj.bias");
    TP_CHECK(bias ? t && t->ndim == 1 && t->shape[0] == heads * dh : t == NULL);
    TP_CHECK(tied ? tp_st_find(m, "lm_head.weight") == NULL
                  : tp_st_find(m, "lm_head.weight") != NULL);
    char nm[128];
    snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", layers - 1);
    t = tp_st_find(m, nm);
    int ones = t != NULL;
    for (int i = 0; ones && i < hidden; i++) ones = ((const float *)t->data)[i] == 1.0f;
    TP_CHECK(ones);
    /* weights ~ N(0, 0.02) */
    t = tp_st_find(m, "model.layers.1.mlp.gate_proj.weight");
    if (t) {
        size_t n = t->nbytes / 4;
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            double v = ((const float *)t->data)[i];
            s += v, s2 += v * v;
        }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        TP_CHECKF(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.001, "mean %g sd %g", mean, sd);
    }
    TP_CHECK(strcmp(tp_st_metadata(m, "format"), "pt") == 0);
    tp_st_close(m);
    tp_tokenizer *tok = NULL;
    TP_CHECKF(tp_tokenizer_load(&tok, dir, &err) == TP_OK, "%s", err.msg);
    if (!tok) return;
    TP_CHECK(strcmp(tp_tokenizer_kind(tok), tokkind) == 0);
    TP_CHECK(tp_tokenizer_vocab_size(tok) <= c.vocab_size);
    TP_CHECK(tp_tokenizer_bos(tok) == c.bos_token_id && tp_tokenizer_eos(tok) == c.eos_token_id);
    int32_t *ids = NULL;
    int n = 0;
    TP_CHECKF(tp_tokenizer_encode(tok, "The cat sat on the mat.", 1, &ids, &n, &err) == TP_OK, "%s",
              err.msg);
    int inrange = n > 1;
    for (int i = 0; i < n; i++) inrange &= ids[i] >= 0 && ids[i] < c.vocab_size;
    TP_CHECK(inrange);
    free(ids);
    tp_tokenizer_free(tok);
}

static void test_demo_models(void) {
    tp_err err = {0};
    const char *l = mkdir_path("llama"), *mi = mkdir_path("mistral"), *q = mkdir_path("q/wen2");
    TP_CHECKF(tp_make_tiny(l, "llama", 1, NULL, &err) == TP_OK, "%s", err.msg);
    TP_CHECKF(tp_make_tiny(mi, "mistral", 1, "tiny", &err) == TP_OK, "%s", err.msg);
    TP_CHECKF(tp_make_tiny(q, "qwen2", 1, "", &err) == TP_OK, "%s", err.msg);
    check_model(l, "llama", 64, 4, 4, 2, 172, 500000.0, 0, 0, "bpe-bytelevel");
    check_model(mi, "mistral", 96, 4, 6, 2, 256, 1e6, 0, 0, "spm-bpe");
    check_model(q, "qwen2", 64, 3, 4, 1, 192, 1e6, 1, 1, "bpe-bytelevel");
    tp_model_config c;
    TP_CHECK(tp_model_config_load(&c, l, &err) == TP_OK);
    TP_CHECK(c.rope_scaling == TP_ROPE_LLAMA3 && c.rope_factor == 8.0);
    TP_CHECK(c.rope_original_max_position_embeddings == 8192);
}

static void test_reproducible(void) {
    tp_err err = {0};
    const char *a = mkdir_path("ra"), *b = mkdir_path("rb"), *c = mkdir_path("rc");
    TP_CHECK(tp_make_tiny(a, "mistral", 7, NULL, &err) == TP_OK);
    TP_CHECK(tp_make_tiny(b, "mistral", 7, NULL, &err) == TP_OK);
    TP_CHECK(tp_make_tiny(c, "mistral", 8, NULL, &err) == TP_OK);
    char pa[1100], pb[1100], pc[1100];
    const char *files[] = {"model.safetensors", "config.json", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        TP_CHECKF(same_file(pa, pb), "%s differs between two runs with seed 7", files[i]);
    }
    snprintf(pa, sizeof pa, "%s/model.safetensors", a);
    snprintf(pc, sizeof pc, "%s/model.safetensors", c);
    TP_CHECK(!same_file(pa, pc));
    /* two architectures with the same seed never share weights */
    const char *d = mkdir_path("rd"), *e = mkdir_path("re");
    TP_CHECK(tp_make_tiny(d, "llama", 7, NULL, &err) == TP_OK);
    TP_CHECK(tp_make_tiny(e, "qwen2", 7, NULL, &err) == TP_OK);
    tp_st_model *md = NULL, *me = NULL;
    TP_CHECK(tp_st_open(&md, d, &err) == TP_OK && tp_st_open(&me, e, &err) == TP_OK);
    if (md && me) {
        const tp_st_tensor *x = tp_st_find(md, "model.embed_tokens.weight");
        const tp_st_tensor *y = tp_st_find(me, "model.embed_tokens.weight");
        TP_CHECK(x && y && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) != 0);
    }
    tp_st_close(md);
    tp_st_close(me);
}

static void test_bf16_is_rounded_f32(void) {
    tp_err err = {0};
    const char *a = mkdir_path("f32"), *b = mkdir_path("bf16");
    TP_CHECK(tp_make_tiny(a, "qwen2", 3, "tiny:2", &err) == TP_OK);
    TP_CHECKF(tp_make_tiny(b, "qwen2", 3, "tiny-bf16:2", &err) == TP_OK, "%s", err.msg);
    tp_model_config c;
    TP_CHECK(tp_model_config_load(&c, b, &err) == TP_OK && c.torch_dtype == TP_BF16);
    TP_CHECK(c.num_hidden_layers == 2);
    tp_st_model *ma = NULL, *mb = NULL;
    TP_CHECK(tp_st_open(&ma, a, &err) == TP_OK && tp_st_open(&mb, b, &err) == TP_OK);
    if (!ma || !mb) return;
    TP_CHECK(tp_st_count(ma) == tp_st_count(mb) && tp_st_count(ma) == 2 + 2 * 12);
    int ok = 1;
    for (int i = 0; i < tp_st_count(ma) && ok; i++) {
        const tp_st_tensor *x = tp_st_at(ma, i), *y = tp_st_at(mb, i);
        ok = strcmp(x->name, y->name) == 0 && x->dtype == TP_F32 && y->dtype == TP_BF16 &&
             x->nbytes == 2 * y->nbytes;
        for (size_t k = 0; ok && k < x->nbytes / 4; k++)
            ok = tp_f32_to_bf16(((const float *)x->data)[k]) == ((const uint16_t *)y->data)[k];
        TP_CHECKF(ok, "tensor %s", x->name);
    }
    tp_st_close(ma);
    tp_st_close(mb);
}

static void test_bad_input(void) {
    tp_err err = {0};
    const char *d = mkdir_path("bad");
    TP_CHECK(tp_make_tiny(d, "gpt2", 1, NULL, &err) == TP_EINVAL && strstr(err.msg, "gpt2"));
    TP_CHECK(tp_make_tiny(d, "llama", 1, "huge", &err) == TP_EINVAL && strstr(err.msg, "huge"));
    TP_CHECK(tp_make_tiny(d, "llama", 1, "mistral-7b", &err) == TP_EINVAL &&
             strstr(err.msg, "not a llama shape"));
    TP_CHECK(tp_make_tiny(d, "llama", 1, "tiny:0", &err) == TP_EINVAL &&
             strstr(err.msg, "layer count"));
    TP_CHECK(tp_make_tiny(d, "llama", 1, "tiny:x", &err) == TP_EINVAL);
    /* DIR that is a file */
    char f[1100];
    snprintf(f, sizeof f, "%s/afile", tp_test_tmpdir());
    FILE *fp = fopen(f, "w");
    fclose(fp);
    TP_CHECK(tp_make_tiny(f, "llama", 1, NULL, &err) != TP_OK && strstr(err.msg, "afile"));
}

TP_TEST_RUN(TP_CASE(test_demo_models), TP_CASE(test_reproducible),
            TP_CASE(test_bf16_is_rounded_f32), TP_CASE(test_bad_input))
