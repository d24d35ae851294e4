/* model_config.c — config.json -> tp_model_config, with the per-architecture defaults of the
 * transformers config classes (LlamaConfig, MistralConfig, Qwen2Config) and checks that the
 * numbers describe a model the transformer can build. */
#include "model/model_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *tp_arch_name(tp_arch a) {
    switch (a) {
    case TP_ARCH_LLAMA:
        return "llama";
    case TP_ARCH_MISTRAL:
        return "mistral";
    case TP_ARCH_QWEN2:
        return "qwen2";
    }
    return "unknown";
}

/* Reads an optional integer field: absent or null keeps *out (the default). */
static tp_status get_int(const json_t *o, const char *key, int *out, int required,
                         const char *where, tp_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return tp_errf(err, TP_EFORMAT, "%s: missing required field '%s' (an integer)", where,
                           key);
        return TP_OK;
    }
    if (!json_is_integer(v))
        return tp_errf(err, TP_EFORMAT, "%s: field '%s' must be an integer", where, key);
    json_int_t x = json_integer_value(v);
    if (x < -2147483647 || x > 2147483647)
        return tp_errf(err, TP_EFORMAT, "%s: field '%s' = %lld out of range", where, key,
                       (long long)x);
    *out = (int)x;
    return TP_OK;
}

static tp_status get_num(const json_t *o, const char *key, double *out, int required,
                         const char *where, tp_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return tp_errf(err, TP_EFORMAT, "%s: missing required field '%s' (a number)", where,
                           key);
        return TP_OK;
    }
    if (!json_is_number(v))
        return tp_errf(err, TP_EFORMAT, "%s: field '%s' must be a number", where, key);
    *out = json_number_value(v);
    return TP_OK;
}

static tp_status get_bool(const json_t *o, const char *key, int *out, const char *where,
                          tp_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return TP_OK;
    if (!json_is_boolean(v))
        return tp_errf(err, TP_EFORMAT, "%s: field '%s' must be true or false", where, key);
    *out = json_is_true(v);
    return TP_OK;
}

static tp_status positive(int v, const char *key, const char *where, tp_err *err) {
    if (v <= 0)
        return tp_errf(err, TP_EFORMAT, "%s: field '%s' = %d must be positive", where, key, v);
    return TP_OK;
}

static tp_status parse_arch(tp_model_config *c, const json_t *root, const char *where,
                            tp_err *err) {
    static const struct {
        const char *cls, *type;
        tp_arch arch;
    } known[] = {{"LlamaForCausalLM", "llama", TP_ARCH_LLAMA},
                 {"MistralForCausalLM", "mistral", TP_ARCH_MISTRAL},
                 {"Qwen2ForCausalLM", "qwen2", TP_ARCH_QWEN2}};
    json_t *archs = json_object_get(root, "architectures");
    json_t *mt = json_object_get(root, "model_type");
    const char *cls = NULL;
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs) || json_array_size(archs) < 1 ||
            !json_is_string(json_array_get(archs, 0)))
            return tp_errf(err, TP_EFORMAT,
                           "%s: field 'architectures' must be a list of class names", where);
        cls = json_string_value(json_array_get(archs, 0));
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strcmp(cls, known[i].cls) == 0) {
                c->arch = known[i].arch;
                snprintf(c->architecture, sizeof c->architecture, "%s", cls);
                return TP_OK;
            }
        return tp_errf(err, TP_EUNSUP,
                       "%s: field 'architectures': '%s' is not supported (expected "
                       "LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM)",
                       where, cls);
    }
    if (json_is_string(mt)) {
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strcmp(json_string_value(mt), known[i].type) == 0) {
                c->arch = known[i].arch;
                snprintf(c->architecture, sizeof c->architecture, "%s", known[i].cls);
                return TP_OK;
            }
        return tp_errf(err, TP_EUNSUP,
                       "%s: field 'model_type': '%s' is not supported (expected llama, mistral "
                       "or qwen2)",
                       where, json_string_value(mt));
    }
    return tp_errf(err, TP_EFORMAT,
                   "%s: missing field 'architectures' (or 'model_type'): cannot tell the "
                   "architecture",
                   where);
}

/* rope scaling: transformers 4.x "rope_scaling" {"rope_type"|"type", ...} or 5.x
 * "rope_parameters" {"rope_type", "rope_theta", ...}. */
static tp_status parse_rope(tp_model_config *c, const json_t *root, const char *where,
                            tp_err *err) {
    TP_TRY(get_num(root, "rope_theta", &c->rope_theta, 0, where, err));
    const char *field = "rope_parameters";
    json_t *rp = json_object_get(root, field);
    if (!rp || json_is_null(rp)) {
        field = "rope_scaling";
        rp = json_object_get(root, field);
    }
    if (!rp || json_is_null(rp)) return TP_OK;
    char w2[600];
    snprintf(w2, sizeof w2, "%s: %s", where, field);
    if (!json_is_object(rp)) return tp_errf(err, TP_EFORMAT, "%s: must be an object or null", w2);
    TP_TRY(get_num(rp, "rope_theta", &c->rope_theta, 0, w2, err));
    json_t *ty = json_object_get(rp, "rope_type");
    if (!ty) ty = json_object_get(rp, "type");
    const char *type = json_is_string(ty) ? json_string_value(ty) : NULL;
    if (!type) {
        if (strcmp(field, "rope_parameters") == 0) return TP_OK; /* theta only */
        return tp_errf(err, TP_EFORMAT, "%s: missing field 'rope_type'", w2);
    }
    if (strcmp(type, "default") == 0) return TP_OK;
    if (strcmp(type, "llama3") != 0)
        return tp_errf(err, TP_EUNSUP,
                       "%s: rope_type '%s' is not supported (expected 'default' or 'llama3')", w2,
                       type);
    c->rope_scaling = TP_ROPE_LLAMA3;
    TP_TRY(get_num(rp, "factor", &c->rope_factor, 1, w2, err));
    TP_TRY(get_num(rp, "low_freq_factor", &c->rope_low_freq_factor, 1, w2, err));
    TP_TRY(get_num(rp, "high_freq_factor", &c->rope_high_freq_factor, 1, w2, err));
    TP_TRY(get_int(rp, "original_max_position_embeddings",
                   &c->rope_original_max_position_embeddings, 1, w2, err));
    if (!(c->rope_factor > 0) || !(c->rope_low_freq_factor > 0) ||
        !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
        c->rope_original_max_position_embeddings <= 0)
        return tp_errf(err, TP_EFORMAT,
                       "%s: llama3 scaling needs factor > 0, 0 < low_freq_factor < "
                       "high_freq_factor, original_max_position_embeddings > 0",
                       w2);
    return TP_OK;
}

static tp_status parse_tokens(tp_model_config *c, const json_t *root, const char *where,
                              tp_err *err) {
    TP_TRY(get_int(root, "bos_token_id", &c->bos_token_id, 0, where, err));
    TP_TRY(get_int(root, "pad_token_id", &c->pad_token_id, 0, where, err));
    json_t *e = json_object_get(root, "eos_token_id");
    if (json_is_array(e)) {
        if (json_array_size(e) > TP_MAX_EOS)
            return tp_errf(err, TP_EFORMAT, "%s: field 'eos_token_id' lists more than %d ids",
                           where, TP_MAX_EOS);
        c->n_eos = 0;
        for (size_t i = 0; i < json_array_size(e); i++) {
            json_t *v = json_array_get(e, i);
            if (!json_is_integer(v))
                return tp_errf(err, TP_EFORMAT, "%s: field 'eos_token_id'[%zu] must be an integer",
                               where, i);
            c->eos_token_ids[c->n_eos++] = (int)json_integer_value(v);
        }
        c->eos_token_id = c->n_eos ? c->eos_token_ids[0] : -1;
    } else if (e && !json_is_null(e)) {
        TP_TRY(get_int(root, "eos_token_id", &c->eos_token_id, 0, where, err));
        c->eos_token_ids[0] = c->eos_token_id;
        c->n_eos = 1;
    } else if (c->eos_token_id >= 0) {
        c->eos_token_ids[0] = c->eos_token_id;
        c->n_eos = 1;
    }
    return TP_OK;
}

static tp_status parse_dtype(tp_model_config *c, const json_t *root, const char *where,
                             tp_err *err) {
    const char *key = "torch_dtype";
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        key = "dtype"; /* transformers 5.x name */
        v = json_object_get(root, key);
    }
    c->torch_dtype = TP_F32;
    if (!v || json_is_null(v)) return TP_OK;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(s, "float32") == 0)
        c->torch_dtype = TP_F32;
    else if (strcmp(s, "bfloat16") == 0)
        c->torch_dtype = TP_BF16;
    else if (strcmp(s, "float16") == 0)
        c->torch_dtype = TP_F16;
    else
        return tp_errf(err, TP_EUNSUP,
                       "%s: field '%s' = '%s' not supported (expected float32, bfloat16 or "
                       "float16)",
                       where, key, s);
    return TP_OK;
}

/* Defaults of the transformers config classes, applied before the file's values. */
static void set_defaults(tp_model_config *c) {
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 10000.0;
    c->bos_token_id = -1;
    c->eos_token_id = -1;
    c->pad_token_id = -1;
    switch (c->arch) {
    case TP_ARCH_LLAMA:
        c->max_position_embeddings = 2048;
        c->bos_token_id = 1;
        c->eos_token_id = 2;
        break;
    case TP_ARCH_MISTRAL:
        c->max_position_embeddings = 4096 * 32;
        c->sliding_window = 4096; /* MistralConfig's default when the key is absent */
        c->bos_token_id = 1;
        c->eos_token_id = 2;
        break;
    case TP_ARCH_QWEN2:
        c->max_position_embeddings = 32768;
        c->attention_bias = 1; /* Qwen2 always has q/k/v bias */
        break;
    }
}

tp_status tp_model_config_parse(tp_model_config *c, const char *json_text, const char *where,
                                tp_err *err) {
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return tp_errf(err, TP_EFORMAT, "%s:%d:%d: malformed JSON: %s", where, je.line, je.column,
                       je.text);
    tp_status s = TP_OK;
    if (!json_is_object(root)) {
        s = tp_errf(err, TP_EFORMAT, "%s: expected a JSON object", where);
        goto out;
    }
    if ((s = parse_arch(c, root, where, err)) != TP_OK) goto out;
    set_defaults(c);
#define TRY(e)                                                                                     \
    if ((s = (e)) != TP_OK) goto out
    TRY(get_int(root, "vocab_size", &c->vocab_size, 1, where, err));
    TRY(get_int(root, "hidden_size", &c->hidden_size, 1, where, err));
    TRY(get_int(root, "intermediate_size", &c->intermediate_size, 1, where, err));
    TRY(get_int(root, "num_hidden_layers", &c->num_hidden_layers, 1, where, err));
    TRY(get_int(root, "num_attention_heads", &c->num_attention_heads, 1, where, err));
    TRY(positive(c->vocab_size, "vocab_size", where, err));
    TRY(positive(c->hidden_size, "hidden_size", where, err));
    TRY(positive(c->intermediate_size, "intermediate_size", where, err));
    TRY(positive(c->num_hidden_layers, "num_hidden_layers", where, err));
    TRY(positive(c->num_attention_heads, "num_attention_heads", where, err));
    c->num_key_value_heads = c->num_attention_heads;
    TRY(get_int(root, "num_key_value_heads", &c->num_key_value_heads, 0, where, err));
    TRY(positive(c->num_key_value_heads, "num_key_value_heads", where, err));
    if (c->num_attention_heads % c->num_key_value_heads) {
        s = tp_errf(err, TP_EFORMAT,
                    "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", where,
                    c->num_attention_heads, c->num_key_value_heads);
        goto out;
    }
    c->head_dim = 0;
    TRY(get_int(root, "head_dim", &c->head_dim, 0, where, err));
    if (c->head_dim == 0) {
        if (c->hidden_size % c->num_attention_heads) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: hidden_size %d is not divisible by num_attention_heads %d (and no "
                        "'head_dim' is given)",
                        where, c->hidden_size, c->num_attention_heads);
            goto out;
        }
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if (c->head_dim <= 0 || c->head_dim % 2 || c->head_dim > 1024) {
        s = tp_errf(err, TP_EFORMAT, "%s: head_dim %d must be even and in 2..1024 (for RoPE)",
                    where, c->head_dim);
        goto out;
    }
    TRY(get_num(root, "rms_norm_eps", &c->rms_norm_eps, 0, where, err));
    if (!(c->rms_norm_eps > 0) || !isfinite(c->rms_norm_eps)) {
        s = tp_errf(err, TP_EFORMAT, "%s: field 'rms_norm_eps' must be a positive number", where);
        goto out;
    }
    TRY(parse_rope(c, root, where, err));
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta)) {
        s = tp_errf(err, TP_EFORMAT, "%s: field 'rope_theta' must be a positive number", where);
        goto out;
    }
    TRY(get_int(root, "max_position_embeddings", &c->max_position_embeddings, 0, where, err));
    TRY(positive(c->max_position_embeddings, "max_position_embeddings", where, err));
    TRY(get_bool(root, "tie_word_embeddings", &c->tie_word_embeddings, where, err));
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0)) {
        s = tp_errf(err, TP_EUNSUP, "%s: field 'hidden_act' = '%s' not supported (expected silu)",
                    where, json_is_string(act) ? json_string_value(act) : "?");
        goto out;
    }
    if (c->arch == TP_ARCH_LLAMA) {
        int ab = 0, mb = 0;
        TRY(get_bool(root, "attention_bias", &ab, where, err));
        TRY(get_bool(root, "mlp_bias", &mb, where, err));
        if (mb) {
            s = tp_errf(err, TP_EUNSUP, "%s: field 'mlp_bias' = true is not supported", where);
            goto out;
        }
        c->attention_bias = c->attention_out_bias = ab;
    }
    if (c->arch == TP_ARCH_MISTRAL) {
        json_t *sw = json_object_get(root, "sliding_window");
        if (sw && json_is_null(sw))
            c->sliding_window = 0;
        else
            TRY(get_int(root, "sliding_window", &c->sliding_window, 0, where, err));
        if (c->sliding_window < 0) {
            s = tp_errf(err, TP_EFORMAT, "%s: field 'sliding_window' must be >= 0 or null", where);
            goto out;
        }
    }
    if (c->arch == TP_ARCH_QWEN2) {
        int usw = 0;
        TRY(get_bool(root, "use_sliding_window", &usw, where, err));
        if (usw) {
            s = tp_errf(err, TP_EUNSUP,
                        "%s: field 'use_sliding_window' = true (Qwen2 per-layer sliding window) "
                        "is not supported",
                        where);
            goto out;
        }
    }
    TRY(parse_tokens(c, root, where, err));
    TRY(parse_dtype(c, root, where, err));
#undef TRY
out:
    json_decref(root);
    return s;
}

tp_status tp_model_config_load(tp_model_config *cfg, const char *dir_or_json_path, tp_err *err) {
    char path[4200];
    struct stat st;
    if (stat(dir_or_json_path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "%s/config.json", dir_or_json_path);
    else
        snprintf(path, sizeof path, "%s", dir_or_json_path);
    FILE *f = fopen(path, "rb");
    if (!f) return tp_errf(err, TP_EIO, "%s: cannot open model config", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64l << 20)) {
        fclose(f);
        return tp_errf(err, TP_EFORMAT, "%s: not a config file (size %ld)", path, n);
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    tp_status s = tp_model_config_parse(cfg, buf, path, err);
    free(buf);
    return s;
}
