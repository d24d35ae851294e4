/* tokenizer.h — text <-> token ids for the models the harness runs, matching Hugging Face.
 * Two kinds: "bpe-bytelevel" (tokenizer.json BPE with ByteLevel + regex Split pre-tokenizers,
 * Llama 3 / Qwen2) and "spm-bpe" (SentencePiece BPE with byte fallback, read from a
 * tokenizer.model protobuf or from its tokenizer.json form, Mistral / Llama 2). Added/special
 * tokens are matched before pre-tokenisation; BOS comes from the post-processor (json) or the
 * model's bos id (spm). A loaded tokenizer is immutable, so encode/decode may run concurrently. */
#ifndef TP_MODEL_TOKENIZER_H
#define TP_MODEL_TOKENIZER_H

#include <stdint.h>

#include "telepathy/status.h"

typedef struct tp_tokenizer tp_tokenizer;

/* path: a tokenizer.json, a SentencePiece tokenizer.model, or a model directory (prefers
 * tokenizer.json, else tokenizer.model). */
tp_status tp_tokenizer_load(tp_tokenizer **out, const char *path, tp_err *err);
void tp_tokenizer_free(tp_tokenizer *t);

/* How a SentencePiece tokenizer.model is turned into a BPE tokenizer (tokenizer.json files say
 * everything themselves and ignore this):
 *   TP_SPM_SENTENCEPIECE   (default) merges ranked by piece score, as the sentencepiece library
 *                          and Mistral's own tooling encode; the input gets one ▁ prefix and so
 *                          does each text segment after a control token ([INST], <s>, ...),
 *                          which is matched in text as HF's fast tokenizers do (legacy form).
 *   TP_SPM_TRANSFORMERS5   what transformers 5.x builds from a bare tokenizer.model: merges in
 *                          piece-id order with scores ignored (so the −1e9-scored "▁▁" pieces
 *                          merge first), Metaspace prepend_scheme "first" (no ▁ after control
 *                          tokens). Differs from sentencepiece on runs of spaces. */
typedef enum tp_spm_mode { TP_SPM_SENTENCEPIECE = 0, TP_SPM_TRANSFORMERS5 = 1 } tp_spm_mode;
typedef struct tp_tokenizer_opts {
    tp_spm_mode spm_mode;
} tp_tokenizer_opts;
/* tp_tokenizer_load with options (NULL = defaults). */
tp_status tp_tokenizer_load_opts(tp_tokenizer **out, const char *path,
                                 const tp_tokenizer_opts *opts, tp_err *err);

/* text is UTF-8 (invalid bytes are an error); *ids is malloc'ed, the caller free()s it.
 * add_bos: 1 prepends BOS the way the model's HF tokenizer does (post-processor template). */
tp_status tp_tokenizer_encode(const tp_tokenizer *t, const char *text, int add_bos, int32_t **ids,
                              int *n, tp_err *err);
/* *text is malloc'ed and NUL-terminated; skip_special drops special/control tokens. */
tp_status tp_tokenizer_decode(const tp_tokenizer *t, const int32_t *ids, int n, int skip_special,
                              char **text, tp_err *err);

/* Number of ids (vocab + added tokens): every valid id is < this. */
int tp_tokenizer_vocab_size(const tp_tokenizer *t);
int tp_tokenizer_bos(const tp_tokenizer *t); /* -1 when absent */
int tp_tokenizer_eos(const tp_tokenizer *t); /* -1 when absent */
int tp_tokenizer_pad(const tp_tokenizer *t); /* -1 when absent */
/* Id of a vocab piece or added token as written in the file ("<|eot_id|>", "▁the"); -1 if
 * unknown. */
int tp_tokenizer_token_id(const tp_tokenizer *t, const char *piece);
/* The piece string of an id as stored in the vocab (NULL if out of range). */
const char *tp_tokenizer_piece(const tp_tokenizer *t, int id);
const char *tp_tokenizer_kind(const tp_tokenizer *t); /* "bpe-bytelevel" | "spm-bpe" */

/* Writes a small tokenizer.json for tiny test models. style "bytelevel": Llama-3-like (ByteLevel
 * + Llama 3 regex Split, ids 0..255 = the byte chars, merges learned from a built-in English
 * corpus, ignore_merges, <|begin_of_text|> / <|end_of_text|> as the last two ids, BOS template);
 * style "spm": Mistral-like (legacy Prepend ▁ + Replace normalizer, <unk>/<s>/</s>, byte_fallback
 * <0x00>..<0xFF> pieces, the corpus alphabet, learned merges, BOS template). vocab_size is the
 * total id count: 258..1770 for bytelevel, 325..1989 for spm (the corpus bounds the merges; an
 * error says so). seed changes how often each corpus line counts, so seeds give different
 * merges; the same arguments always give the same bytes. The file loads in HF `tokenizers` and
 * tokenises identically there (tests/golden/tokenizer). */
tp_status tp_tokenizer_write_tiny(const char *path, const char *style, int vocab_size,
                                  uint64_t seed, tp_err *err);

#endif
