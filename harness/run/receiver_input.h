/* receiver_input.h — what a scoring model reads and is scored on.
 *
 * A prefix is the part before the answer: for a bridge run [BOS?][primer][M soft tokens] (primer
 * tokenised without special tokens; BOS a setting), for a text baseline the task's direct prompt
 * (left-padded, so every row's prefix ends at the same position T-1). The answer follows the
 * prefix: label words are tokenised with the scoring model's own tokenizer as they continue a
 * prompt (" word" for byte-level BPE, "word" for SentencePiece, whose Metaspace adds the ▁), and
 * the sequence target appends EOS. Labels are scored at positions T-1 .. T+L-2 with TP_LOGITS_AT,
 * so no logits are computed for the primer or soft tokens and padded label positions carry -100.
 *
 * Shapes: B batch, T prefix length, L longest target, D width, V vocab, C classes. */
#ifndef TP_RUN_RECEIVER_INPUT_H
#define TP_RUN_RECEIVER_INPUT_H

#include "model/model.h"
#include "telepathy/task.h"
#include "telepathy/tensor.h"

#define TP_IGNORE_INDEX (-100)

typedef struct tp_label_set {
    int n;
    int32_t *ids[TP_MAX_LABELS]; /* label word tokens, no EOS */
    int len[TP_MAX_LABELS];
    int first[TP_MAX_LABELS]; /* ids[c][0] */
    int first_unique;         /* 1 if the first tokens are pairwise distinct */
    int eos;                  /* -1 when the model has none */
} tp_label_set;

tp_status tp_label_set_build(const tp_model *m, const tp_task_info *info, tp_label_set *out,
                             tp_err *err);
void tp_label_set_free(tp_label_set *ls);

typedef struct tp_prefix {
    int B, T;
    tp_tensor *emb;   /* [B,T,D] */
    tp_tensor *mask;  /* f32 [B,T], left padding */
    float *mask_host; /* [B*T] copy, owned */
} tp_prefix;
void tp_prefix_free_host(tp_prefix *p);

/* [primer ids (BOS already included if wanted)] ++ soft [B,M,D]. */
tp_status tp_prefix_bridge(tp_model *m, tp_ctx *ctx, const int32_t *primer, int np, tp_tensor *soft,
                           tp_prefix *out, tp_err *err);
/* Left-padded ids [B*T] with mask [B*T] -> embeddings. */
tp_status tp_prefix_ids(tp_model *m, tp_ctx *ctx, int B, int T, const int32_t *ids,
                        const float *mask, tp_prefix *out, tp_err *err);

/* Appends left-padded text ids [B*T2] (mask [B*T2]) after the prefix p, in place: the receiver
 * input of a RECEIVER_TEXT bridge [primer][soft][direct prompt]. Pads sit between the soft tokens
 * and the text; positions come from the mask, so this equals left padding of the whole row. */
tp_status tp_prefix_append_ids(tp_model *m, tp_ctx *ctx, tp_prefix *p, int T2, const int32_t *ids,
                               const float *mask, tp_err *err);

/* Appends per-row targets tgt[b] (len tlen[b]) to the prefix and returns the logits that predict
 * them: logits [B*L,V] and targets i32 [B*L] (-100 on padding). max_len bounds T + L. */
tp_status tp_forward_targets(tp_model *m, tp_ctx *ctx, const tp_prefix *p,
                             const int32_t *const *tgt, const int *tlen, int max_len,
                             tp_tensor **logits, tp_tensor **targets, tp_err *err);
/* Logits of the token after the prefix: [B,V]. */
tp_status tp_forward_next(tp_model *m, tp_ctx *ctx, const tp_prefix *p, int max_len,
                          tp_tensor **logits, tp_err *err);
/* [B,V] -> [B,C]: the logit of each label's first token (a one-hot [V,C] matmul, so gradients
 * flow back to the selected logits only). */
tp_tensor *tp_select_first(tp_ctx *ctx, tp_tensor *logits, const tp_label_set *ls, tp_err *err);

#endif
