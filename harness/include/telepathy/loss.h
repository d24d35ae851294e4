/* loss.h — the loss plugin vtable. A loss declares which inputs it needs; the trainer refuses a
 * combination whose inputs no component provides. Each loss returns one scalar ([1]) tensor,
 * weighted and summed by the trainer. */
#ifndef TELEPATHY_LOSS_H
#define TELEPATHY_LOSS_H

#include "telepathy/bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

enum tp_loss_need {
    TP_NEED_LOGITS = 1u << 0,      /* receiver logits at label positions + targets */
    TP_NEED_FIRST_TOKEN = 1u << 1, /* restricted first-token logits + class labels */
    TP_NEED_SOFT = 1u << 2,        /* soft tokens */
    TP_NEED_SENDER = 1u << 3,      /* sender states + mask */
    TP_NEED_AUX = 1u << 4,         /* bridge aux outputs */
    TP_NEED_TARGET_EMB = 1u << 5,  /* receiver embeddings of answer/question */
    /* ---- appended in ABI 1.1 ---- */
    TP_NEED_ANSWER_IDS = 1u << 6, /* sender-tokenizer ids of the answer text (answer_ids) */
};

typedef struct tp_loss_inputs {
    tp_tensor *logits;       /* [N,V] receiver logits at label positions */
    tp_tensor *targets;      /* i32 [N], -100 = ignore */
    tp_tensor *first_logits; /* [B,C] logits of the first token of each label word */
    tp_tensor *labels;       /* i32 [B] class index */
    tp_tensor *soft;         /* [B,M,D] */
    tp_tensor *sender_h;     /* [B,T,d_s] */
    tp_tensor *sender_mask;  /* [B,T] */
    const tp_bridge_out *bridge;
    tp_tensor *target_emb;      /* [B,L,D] */
    tp_tensor *target_emb_mask; /* [B,L] */
    /* ---- appended in ABI 1.1 ---- */
    /* i32 [B,La]: each example's answer text (tp_example.answer; the label word for
     * classification) tokenised with the SENDER's tokenizer, no special tokens, padded with -1
     * to the longest row. Read by the bag-of-words loss. */
    tp_tensor *answer_ids;
} tp_loss_inputs;

typedef struct tp_loss_vtable {
    uint32_t size; /* sizeof(tp_loss_vtable) */
    tp_status (*create)(const tp_options *opts, const tp_bridge_dims *dims, tp_params *params,
                        void **state, tp_err *err);
    uint32_t (*needs)(void *state); /* tp_loss_need bits */
    tp_status (*compute)(void *state, tp_ctx *ctx, const tp_loss_inputs *in, tp_tensor **loss,
                         tp_err *err);
    void (*destroy)(void *state);
} tp_loss_vtable;

#ifdef __cplusplus
}
#endif
#endif
