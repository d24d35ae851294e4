/* test_config.c — config.json parsing: the three architectures, transformers 4.x and 5.x rope
 * forms, HF defaults for absent fields, and clear errors naming the file and the field. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_config.h"
#include "tp_test.h"

/* Llama-3.1-8B-Instruct's config.json (transformers 4.43 form). */
static const char *llama31 =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, "
    "\"attention_dropout\": 0.0, \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, "
    "128009], \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"initializer_range\": 0.02, "
    "\"intermediate_size\": 14336, \"max_position_embeddings\": 131072, \"mlp_bias\": false, "
    "\"model_type\": \"llama\", \"num_attention_heads\": 32, \"num_hidden_layers\": 32, "
    "\"num_key_value_heads\": 8, \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, "
    "\"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
    "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"rope_theta\": "
    "500000.0, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", "
    "\"transformers_version\": \"4.43.0.dev0\", \"use_cache\": true, \"vocab_size\": 128256}";

/* Mistral-7B-Instruct-v0.3's config.json. */
static const char *mistral03 =
    "{\"architectures\": [\"MistralForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": "
    "1, \"eos_token_id\": 2, \"hidden_act\": \"silu\", \"hidden_size\": 4096, "
    "\"initializer_range\": 0.02, \"intermediate_size\": 14336, \"max_position_embeddings\": "
    "32768, \"model_type\": \"mistral\", \"num_attention_heads\": 32, \"num_hidden_layers\": 32, "
    "\"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05, \"rope_theta\": 1000000.0, "
    "\"sliding_window\": null, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", "
    "\"use_cache\": true, \"vocab_size\": 32768}";

static void test_llama31(void) {
    tp_model_config c;
    tp_err err = {0};
    TP_CHECKF(tp_model_config_parse(&c, llama31, "llama/config.json", &err) == TP_OK, "%s",
              err.msg);
    TP_CHECK(c.arch == TP_ARCH_LLAMA && strcmp(c.architecture, "LlamaForCausalLM") == 0);
    TP_CHECK(c.vocab_size == 128256 && c.hidden_size == 4096 && c.intermediate_size == 14336);
    TP_CHECK(c.num_hidden_layers == 32 && c.num_attention_heads == 32);
    TP_CHECK(c.num_key_value_heads == 8 && c.head_dim == 128);
    TP_CHECK(c.rms_norm_eps == 1e-5 && c.rope_theta == 500000.0);
    TP_CHECK(c.rope_scaling == TP_ROPE_LLAMA3 && c.rope_factor == 8.0);
    TP_CHECK(c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0);
    TP_CHECK(c.rope_original_max_position_embeddings == 8192);
    TP_CHECK(c.max_position_embeddings == 131072 && c.sliding_window == 0);
    TP_CHECK(!c.tie_word_embeddings && !c.attention_bias && !c.attention_out_bias);
    TP_CHECK(c.bos_token_id == 128000 && c.eos_token_id == 128001 && c.n_eos == 3);
    TP_CHECK(c.eos_token_ids[2] == 128009 && c.pad_token_id == -1);
    TP_CHECK(c.torch_dtype == TP_BF16);
    TP_CHECK(strcmp(tp_arch_name(c.arch), "llama") == 0);
}

static void test_mistral(void) {
    tp_model_config c;
    tp_err err = {0};
    TP_CHECKF(tp_model_config_parse(&c, mistral03, "m.json", &err) == TP_OK, "%s", err.msg);
    TP_CHECK(c.arch == TP_ARCH_MISTRAL && c.vocab_size == 32768 && c.rope_theta == 1e6);
    TP_CHECK(c.sliding_window == 0 && c.rope_scaling == TP_ROPE_NONE);
    TP_CHECK(c.eos_token_id == 2 && c.n_eos == 1 && c.bos_token_id == 1);
    /* sliding window when set; MistralConfig's default 4096 when the key is absent */
    const char *sw = "{\"architectures\":[\"MistralForCausalLM\"],\"vocab_size\":10,"
                     "\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":2,\"sliding_window\":64}";
    TP_CHECK(tp_model_config_parse(&c, sw, "m.json", &err) == TP_OK && c.sliding_window == 64);
    const char *nosw = "{\"model_type\":\"mistral\",\"vocab_size\":10,\"hidden_size\":8,"
                       "\"intermediate_size\":16,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":2}";
    TP_CHECK(tp_model_config_parse(&c, nosw, "m.json", &err) == TP_OK);
    TP_CHECK(c.sliding_window == 4096 && c.num_key_value_heads == 2 && c.head_dim == 4);
    TP_CHECK(c.max_position_embeddings == 131072 && c.rms_norm_eps == 1e-6);
}

static void test_qwen2_and_v5(void) {
    tp_model_config c;
    tp_err err = {0};
    /* transformers 5.x form: rope_parameters, "dtype" */
    const char *q = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":151936,"
                    "\"hidden_size\":896,\"intermediate_size\":4864,\"num_hidden_layers\":24,"
                    "\"num_attention_heads\":14,\"num_key_value_heads\":2,"
                    "\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"},"
                    "\"use_sliding_window\":false,\"sliding_window\":32768,"
                    "\"tie_word_embeddings\":true,\"dtype\":\"float16\",\"eos_token_id\":151643,"
                    "\"bos_token_id\":151643,\"pad_token_id\":null}";
    TP_CHECKF(tp_model_config_parse(&c, q, "q.json", &err) == TP_OK, "%s", err.msg);
    TP_CHECK(c.arch == TP_ARCH_QWEN2 && c.attention_bias && !c.attention_out_bias);
    TP_CHECK(c.head_dim == 64 && c.rope_theta == 1e6 && c.sliding_window == 0);
    TP_CHECK(c.tie_word_embeddings && c.torch_dtype == TP_F16 && c.pad_token_id == -1);
    const char *l5 = "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":10,"
                     "\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":2,\"head_dim\":8,\"rope_parameters\":{"
                     "\"rope_theta\":500000.0,\"rope_type\":\"llama3\",\"factor\":8.0,"
                     "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                     "\"original_max_position_embeddings\":8192},\"attention_bias\":true}";
    TP_CHECKF(tp_model_config_parse(&c, l5, "l.json", &err) == TP_OK, "%s", err.msg);
    TP_CHECK(c.rope_theta == 500000.0 && c.rope_scaling == TP_ROPE_LLAMA3 && c.head_dim == 8);
    TP_CHECK(c.attention_bias && c.attention_out_bias && c.torch_dtype == TP_F32);
}

static void expect_err(const char *json, tp_status code, const char *w1, const char *w2) {
    tp_model_config c;
    tp_err err = {0};
    tp_status s = tp_model_config_parse(&c, json, "dir/config.json", &err);
    TP_CHECKF(s == code, "got %s (%s)", tp_status_name(s), err.msg);
    TP_CHECKF(strstr(err.msg, "dir/config.json") != NULL, "no file in '%s'", err.msg);
    if (w1) TP_CHECKF(strstr(err.msg, w1) != NULL, "'%s' lacks '%s'", err.msg, w1);
    if (w2) TP_CHECKF(strstr(err.msg, w2) != NULL, "'%s' lacks '%s'", err.msg, w2);
}

#define BASE "\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"

static void test_errors(void) {
    expect_err("{\"architectures\":[\"GPT2LMHeadModel\"]," BASE "\"num_attention_heads\":2}",
               TP_EUNSUP, "GPT2LMHeadModel", "architectures");
    expect_err("{\"model_type\":\"gemma\"," BASE "\"num_attention_heads\":2}", TP_EUNSUP, "gemma",
               "model_type");
    expect_err("{" BASE "\"num_attention_heads\":2}", TP_EFORMAT, "architectures", NULL);
    expect_err("{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,"
               "\"num_hidden_layers\":1,\"num_attention_heads\":2}",
               TP_EFORMAT, "'intermediate_size'", "missing");
    expect_err("{\"model_type\":\"llama\"," BASE "\"num_attention_heads\":\"2\"}", TP_EFORMAT,
               "'num_attention_heads'", "integer");
    expect_err("{\"model_type\":\"llama\"," BASE "\"num_attention_heads\":3}", TP_EFORMAT,
               "hidden_size", "num_attention_heads");
    expect_err("{\"model_type\":\"llama\"," BASE
               "\"num_attention_heads\":4,\"num_key_value_heads\":3}",
               TP_EFORMAT, "num_key_value_heads", NULL);
    expect_err("{\"model_type\":\"llama\"," BASE
               "\"num_attention_heads\":2,\"rope_scaling\":{\"rope_type\":\"yarn\","
               "\"factor\":4}}",
               TP_EUNSUP, "yarn", "rope_scaling");
    expect_err("{\"model_type\":\"llama\"," BASE
               "\"num_attention_heads\":2,\"rope_scaling\":{\"type\":\"llama3\","
               "\"factor\":4}}",
               TP_EFORMAT, "low_freq_factor", "rope_scaling");
    expect_err("{\"model_type\":\"llama\"," BASE "\"num_attention_heads\":2,\"hidden_act\":"
               "\"gelu\"}",
               TP_EUNSUP, "hidden_act", "gelu");
    expect_err("{\"model_type\":\"llama\"," BASE "\"num_attention_heads\":2,\"torch_dtype\":"
               "\"float64\"}",
               TP_EUNSUP, "torch_dtype", "float64");
    expect_err("{\"model_type\":\"qwen2\"," BASE
               "\"num_attention_heads\":2,\"use_sliding_window\":true}",
               TP_EUNSUP, "use_sliding_window", NULL);
    expect_err("{\"model_type\":\"llama\"," BASE "\"num_attention_heads\":2,\"vocab_size\":1}",
               TP_EFORMAT, "malformed", NULL); /* duplicate key */
    expect_err("{\"model_type\":\"llama\",\"vocab_size\":0,\"hidden_size\":8,"
               "\"intermediate_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2}",
               TP_EFORMAT, "vocab_size", "positive");
    expect_err("[1,2]", TP_EFORMAT, "object", NULL);
    expect_err("{\"model_type\":", TP_EFORMAT, "malformed", NULL);
}

static void test_load_file(void) {
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/cfgdir", tp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs(mistral03, f);
    fclose(f);
    tp_model_config c;
    tp_err err = {0};
    TP_CHECKF(tp_model_config_load(&c, dir, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(c.arch == TP_ARCH_MISTRAL);
    TP_CHECKF(tp_model_config_load(&c, path, &err) == TP_OK, "%s", err.msg);
    f = fopen(path, "w");
    fputs("{\"architectures\":[\"MistralForCausalLM\"], \"vocab_size\": 5}", f);
    fclose(f);
    TP_CHECK(tp_model_config_load(&c, dir, &err) == TP_EFORMAT);
    TP_CHECK(strstr(err.msg, path) && strstr(err.msg, "'hidden_size'"));
    snprintf(path, sizeof path, "%s/none", dir);
    TP_CHECK(tp_model_config_load(&c, path, &err) == TP_EIO && strstr(err.msg, "none"));
}

static void test_fuzz(void) {
    /* random edits of a real config are parsed or refused with a message, never a crash */
    size_t n = strlen(llama31);
    char *buf = malloc(n + 1);
    uint64_t r = 88172645463325252ull;
    int ok = 0, bad = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, llama31, n + 1);
        for (int k = 0; k < 1 + it % 4; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            static const char sig[] = "{}[]:,\"0123456789-.etfn ";
            buf[r % n] = sig[(r >> 32) % (sizeof sig - 1)];
        }
        if (it % 7 == 0) buf[r % n] = 0; /* truncation */
        tp_model_config c;
        tp_err err = {0};
        if (tp_model_config_parse(&c, buf, "fuzz.json", &err) == TP_OK) {
            ok++;
            TP_CHECK(c.hidden_size > 0 && c.head_dim > 0 && c.num_key_value_heads > 0);
            TP_CHECK(c.num_attention_heads % c.num_key_value_heads == 0);
        } else {
            bad++;
            TP_CHECKF(strstr(err.msg, "fuzz.json") != NULL, "no file in '%s'", err.msg);
        }
    }
    TP_CHECK(bad > 1000);
    fprintf(stderr, "config fuzz: %d parsed, %d refused\n", ok, bad);
    free(buf);
}

TP_TEST_RUN(TP_CASE(test_llama31), TP_CASE(test_mistral), TP_CASE(test_qwen2_and_v5),
            TP_CASE(test_errors), TP_CASE(test_load_file), TP_CASE(test_fuzz))
