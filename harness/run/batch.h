/* batch.h — text -> token batches with each model's OWN tokenizer (STUDY.md pitfall: sender text
 * tokenised with the receiver's tokenizer): prompt templates filled with an example's text,
 * tokenised, truncated, padded (right for the sender, left for text prompts that are followed by
 * an answer), with an f32 mask. */
#ifndef TP_RUN_BATCH_H
#define TP_RUN_BATCH_H

#include <stdint.h>

#include "model/tokenizer.h"
#include "telepathy/status.h"

typedef struct tp_tok_batch {
    int B, T;
    int32_t *ids; /* [B*T] */
    float *mask;  /* [B*T], 1 = token */
    int *len;     /* [B] real tokens per row */
    int n_truncated;
} tp_tok_batch;

/* "{text}" in tpl replaced by text (every occurrence), "{text[:N]}" by its first N code points
 * (Python's text[:N], as the study's AG News prompt cut articles); malloc'd. */
char *tp_fill_template(const char *tpl, const char *text);

/* Tokenises texts[0..B); rows longer than max_len keep their first max_len tokens (HF
 * truncation=True) and are counted in n_truncated. left_pad puts the padding first. */
tp_status tp_tok_batch_build(const tp_tokenizer *tok, const char *const *texts, int B, int add_bos,
                             int max_len, int left_pad, int pad_id, tp_tok_batch *out, tp_err *err);
void tp_tok_batch_free(tp_tok_batch *b);

#endif
