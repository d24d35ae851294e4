/* tokenizer_internal.h — the tokenizer's private state, shared by the files that build it
 * (tokenizer_json.c, spm_proto.c, tokenizer_spm_model.c) and the files that run it
 * (tokenizer.c, tokenizer_bpe.c, tokenizer_pretok.c). One pipeline covers both kinds, mirroring
 * Hugging Face `tokenizers`: added-token split -> normalizer -> pre-tokenizer -> BPE model ->
 * post-processor, and decoder on the way back. */
#ifndef TP_MODEL_TOKENIZER_INTERNAL_H
#define TP_MODEL_TOKENIZER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum { TP_TOK_KIND_BYTELEVEL = 1, TP_TOK_KIND_SPM = 2 };

/* ---- string -> id map (open addressing; keys point at memory owned elsewhere) ------------ */
typedef struct tp_tok_strmap {
    uint32_t cap; /* power of two, 0 when empty */
    uint32_t count;
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
} tp_tok_strmap;

uint64_t tp_tok_hash(const void *data, size_t len);
tp_status tp_tok_strmap_init(tp_tok_strmap *m, uint32_t expected, tp_err *err);
void tp_tok_strmap_free(tp_tok_strmap *m);
/* Inserts or overwrites (last one wins, as serde/jansson do for duplicate JSON keys). */
void tp_tok_strmap_put(tp_tok_strmap *m, const char *key, uint32_t len, int32_t val);
int32_t tp_tok_strmap_get(const tp_tok_strmap *m, const char *key, uint32_t len); /* -1 */

/* ---- (left id, right id) -> (rank, merged id) ------------------------------------------- */
typedef struct tp_tok_pairmap {
    uint32_t cap;
    uint64_t *keys; /* (a << 32 | b) + 1, 0 = empty */
    int32_t *rank;
    int32_t *id;
} tp_tok_pairmap;

tp_status tp_tok_pairmap_init(tp_tok_pairmap *m, uint32_t expected, tp_err *err);
void tp_tok_pairmap_free(tp_tok_pairmap *m);
/* Keeps the first (lowest-rank) entry for a pair, as HF's merge map does. */
void tp_tok_pairmap_put(tp_tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
int tp_tok_pairmap_get(const tp_tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);

/* ---- added tokens (HF AddedVocabulary) -------------------------------------------------- */
typedef struct tp_tok_added {
    char *content;
    int len;
    int id;
    uint8_t special, lstrip, rstrip, normalized, single_word;
} tp_tok_added;

/* ---- normalizer / pre-tokenizer / decoder steps ----------------------------------------- */
enum {
    TP_NORM_PREPEND = 1, /* arg: the prefix, added when the segment is non-empty */
    TP_NORM_REPLACE,     /* arg -> arg2 (literal string pattern) */
    TP_NORM_SPM_WS,      /* sentencepiece remove_extra_whitespaces */
    TP_NORM_NFC,         /* Unicode NFC (unicode_nfc.c) */
};
typedef struct tp_tok_norm {
    int type;
    char *arg, *arg2;
    int arg_len, arg2_len;
} tp_tok_norm;

enum { TP_PRE_NONE = 0, TP_PRE_BYTELEVEL = 1, TP_PRE_METASPACE = 2 };
enum { TP_PREPEND_NEVER = 0, TP_PREPEND_FIRST = 1, TP_PREPEND_ALWAYS = 2 };

enum {
    TP_DEC_BYTELEVEL = 1, /* GPT-2 char -> byte map */
    TP_DEC_REPLACE,       /* arg -> arg2 */
    TP_DEC_BYTEFALLBACK,  /* <0xXX> tokens -> bytes */
    TP_DEC_FUSE,          /* concatenates the tokens into one */
    TP_DEC_STRIP,         /* strip n leading (arg n) / trailing (arg2 n) chars */
    TP_DEC_METASPACE,     /* ▁ -> space, drop the first leading space when prepending */
};
typedef struct tp_tok_dec {
    int type;
    char *arg, *arg2;
    int arg_len, arg2_len;
    int n_start, n_stop, prepend_first;
} tp_tok_dec;

/* ---- pre-token -> ids cache (bounded; guarded by a mutex so encode stays thread-safe) ----- */
typedef struct tp_tok_cache_ent {
    char *key;
    uint32_t key_len;
    uint32_t n;
    int32_t *ids;
} tp_tok_cache_ent;

typedef struct tp_tok_cache {
    pthread_mutex_t mu;
    uint32_t cap; /* power of two */
    uint32_t count;
    tp_tok_cache_ent *ents;
} tp_tok_cache;

struct tp_tokenizer {
    int kind;
    char path[512]; /* for messages */
    int n_ids;      /* vocab + added: every valid id < n_ids */
    int n_vocab;    /* model vocab entries (ids may be sparse) */
    char **piece;   /* id -> vocab / added form, NUL-terminated (NULL for holes) */
    int32_t *piece_len;
    uint8_t *is_special; /* special added tokens / sp control+unknown: dropped by skip_special */
    uint8_t *is_added;   /* id is an added token: decoded from its content */
    tp_tok_strmap vocab; /* model vocab piece -> id (keys in vocab_blob) */
    char *vocab_blob;
    tp_tok_strmap added_map; /* added content -> index into added[] */
    tp_tok_pairmap merges;
    int n_merges;
    int ignore_merges;
    int byte_fallback;
    int fuse_unk;
    int unk_id;
    int byte_ids[256]; /* <0xXX> ids for byte fallback (-1 when missing) */
    int char_ids[256]; /* byte-level: id of the single GPT-2 char for each byte */

    tp_tok_added *added;
    int n_added;
    int added_by_first[257]; /* index ranges into added_order by first byte */
    int *added_order;        /* added[] indices sorted by first byte, then length desc */

    tp_tok_norm *norm;
    int n_norm;

    int pre;           /* TP_PRE_* */
    pcre2_code *re[4]; /* Split regexes, applied in order */
    int n_re;
    char bl_map[256][3]; /* byte-level: UTF-8 of each byte's GPT-2 char */
    uint8_t bl_len[256];
    int bl_add_prefix_space;
    int ms_prepend; /* TP_PREPEND_* */
    int ms_split;
    char ms_repl[8];
    int ms_repl_len;
    /* SentencePiece-style BPE runs over whole segments (no pre-tokenizer). When no vocab piece
     * holds a ▁ right after a non-▁ character, no merge can cross such a spot, so splitting
     * there gives the same ids — and lets the word cache work. Checked at load. */
    int spm_word_split;

    tp_tok_dec *dec;
    int n_dec;

    int bos_id, eos_id, pad_id;
    int add_bos, add_eos;   /* from the post-processor / sp defaults */
    int tmpl_bos, tmpl_eos; /* ids the template inserts (usually == bos_id / eos_id) */

    tp_tok_cache cache;
};

/* Allocates the id tables for n_ids entries (all holes). */
tp_status tp_tok_alloc_ids(tp_tokenizer *t, int n_ids, tp_err *err);
/* Copies the n_keys vocab pieces into one blob and indexes them (keys[i] -> ids[i]). */
tp_status tp_tok_build_vocab(tp_tokenizer *t, const char *const *keys, const uint32_t *lens,
                             const int32_t *ids, int n_keys, tp_err *err);
/* Sets id's piece (copied). */
tp_status tp_tok_set_piece(tp_tokenizer *t, int id, const char *s, size_t len, tp_err *err);
/* Builds added_order / added_by_first / added_map after added[] is filled. */
tp_status tp_tok_index_added(tp_tokenizer *t, tp_err *err);
tp_status tp_tok_cache_init(tp_tok_cache *c, uint32_t cap, tp_err *err);
void tp_tok_cache_free(tp_tok_cache *c);

/* Loaders: fill a zeroed tokenizer (tokenizer.c frees it on failure). */
tp_status tp_tok_load_json(tp_tokenizer *t, const char *path, tp_err *err);
tp_status tp_tok_load_spm(tp_tokenizer *t, const char *path, tp_spm_mode mode, tp_err *err);

/* GPT-2 byte <-> unicode table (bytes_to_unicode): printable Latin-1 bytes map to themselves,
 * the other 68 to U+0100.. in byte order. */
uint32_t tp_tok_byte_to_cp(unsigned b);
int tp_tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the table */

/* Compiles a Split regex the way HF's onig does it (UTF, UCP, \s as Unicode White_Space). */
tp_status tp_tok_compile_regex(tp_tokenizer *t, const char *pattern, const char *where,
                               tp_err *err);

/* A growable id vector. */
typedef struct tp_tok_ids {
    int32_t *v;
    int n, cap;
} tp_tok_ids;
tp_status tp_tok_ids_push(tp_tok_ids *o, int32_t id);

/* Applies the normalizers to one segment; *out is malloc'ed. */
tp_status tp_tok_normalize(const tp_tokenizer *t, const char *s, size_t n, char **out,
                           size_t *out_n, tp_err *err);
/* Pre-tokenizes one normalized segment, calling fn for each piece in the model's alphabet
 * (byte-level chars / ▁-text). */
typedef tp_status (*tp_tok_piece_fn)(void *ctx, const char *piece, size_t len, tp_err *err);
tp_status tp_tok_pretokenize(const tp_tokenizer *t, const char *s, size_t n, int first,
                             pcre2_match_data *md, tp_tok_piece_fn fn, void *ctx, tp_err *err);
/* Pre-tokenizes one normalized segment and appends the BPE ids of every piece. first: the
 * segment starts the input (Metaspace prepend_scheme "first"). */
tp_status tp_tok_encode_segment(const tp_tokenizer *t, const char *s, size_t n, int first,
                                pcre2_match_data *md, tp_tok_ids *out, tp_err *err);

/* Appends the ids of one pre-token (already byte-level mapped / ▁-replaced) to out. */
tp_status tp_tok_bpe_word(const tp_tokenizer *t, const char *w, size_t len, tp_tok_ids *out,
                          tp_err *err);

/* UTF-8 decode of one code point at s[i] (len n): returns the length (1..4) or 0 if invalid. */
int tp_tok_utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp);
int tp_tok_utf8_put(uint32_t cp, char *out); /* returns bytes written (1..4) */

#endif
