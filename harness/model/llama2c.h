/* llama2c.h — import of a llama2.c checkpoint (Karpathy's legacy "version 0" .bin) and its
 * tokenizer (.bin of pieces + scores) into Hugging Face layout, so a model that was really
 * trained (stories260K) can run through the same loader as any HF Llama.
 *
 * Output in out_dir (created): config.json (LlamaForCausalLM; tie_word_embeddings when the
 * checkpoint's vocab_size is positive), model.safetensors (f32, HF names; q/k rows permuted from
 * llama2.c's interleaved-pair RoPE layout to HF's rotate_half layout, exactly as transformers'
 * convert_llama_weights_to_hf.py does), tokenizer.json (SentencePiece-style BPE with byte
 * fallback, in the form transformers writes for Llama 2: Prepend+Replace normalizer, merges
 * derived from the piece scores like tokenizers' SentencePieceExtractor). */
#ifndef TP_MODEL_LLAMA2C_H
#define TP_MODEL_LLAMA2C_H

#include <stdint.h>

#include "telepathy/status.h"

typedef struct tp_llama2c_header {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier; /* vocab_size was positive in the file */
} tp_llama2c_header;

/* Reads and checks the 28-byte header and that the file size matches the weights it implies. */
tp_status tp_llama2c_read_header(const char *model_bin, tp_llama2c_header *h, tp_err *err);

tp_status tp_import_llama2c(const char *model_bin, const char *tok_bin, const char *out_dir,
                            tp_err *err);

/* The row permutation applied to wq/wk: for a weight of n_heads * head_dim rows (each row of
 * `cols` floats), row 2i+p of a head becomes row p*head_dim/2 + i. Exposed for the test. */
void tp_llama2c_permute_rope_rows(float *dst, const float *src, int n_heads, int head_dim,
                                  int cols);

#endif
