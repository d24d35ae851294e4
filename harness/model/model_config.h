/* model_config.h — a Hugging Face config.json read into a flat struct, with the defaults each
 * transformers config class applies when a field is absent (so the numbers match Python).
 * Architectures: Llama (incl. Llama-3.1 rope_scaling type "llama3"), Mistral (sliding window
 * when set), Qwen2 (bias on q/k/v). Both the transformers 4.x form (rope_theta + rope_scaling)
 * and the 5.x form (rope_parameters) are read. Unknown architecture, missing required field or
 * a value of the wrong type is a clear error naming the file and the field. */
#ifndef TP_MODEL_MODEL_CONFIG_H
#define TP_MODEL_MODEL_CONFIG_H

#include <stdint.h>

#include "telepathy/status.h"
#include "telepathy/tensor.h"

typedef enum tp_arch { TP_ARCH_LLAMA = 0, TP_ARCH_MISTRAL = 1, TP_ARCH_QWEN2 = 2 } tp_arch;

typedef enum tp_rope_scaling_type { TP_ROPE_NONE = 0, TP_ROPE_LLAMA3 = 1 } tp_rope_scaling_type;

#define TP_MAX_EOS 8

typedef struct tp_model_config {
    tp_arch arch;
    char architecture[64]; /* as written, e.g. "LlamaForCausalLM" */
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads; /* default: num_attention_heads */
    int head_dim;            /* default: hidden_size / num_attention_heads */
    double rms_norm_eps;
    double rope_theta;
    /* rope scaling ("llama3" only; others are refused) */
    tp_rope_scaling_type rope_scaling;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_position_embeddings;
    int max_position_embeddings;
    int sliding_window; /* 0 = none; Mistral only */
    int tie_word_embeddings;
    int attention_bias;            /* bias on q/k/v projections (always on for Qwen2) */
    int attention_out_bias;        /* bias on o_proj too (Llama attention_bias=true) */
    int bos_token_id;              /* -1 when absent */
    int eos_token_id;              /* first if a list; -1 when absent */
    int eos_token_ids[TP_MAX_EOS]; /* all of them (Llama 3.1 Instruct has three) */
    int n_eos;
    int pad_token_id;     /* -1 when absent or null */
    tp_dtype torch_dtype; /* of the stored weights: "float32" | "bfloat16" | "float16" */
} tp_model_config;

/* dir_or_json_path: a model directory (reads DIR/config.json) or a path to a JSON file. */
tp_status tp_model_config_load(tp_model_config *cfg, const char *dir_or_json_path, tp_err *err);
/* Same, from JSON text; `where` names the source in error messages. */
tp_status tp_model_config_parse(tp_model_config *cfg, const char *json_text, const char *where,
                                tp_err *err);
const char *tp_arch_name(tp_arch a); /* "llama" | "mistral" | "qwen2" */

#endif
