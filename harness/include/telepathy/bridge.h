/* bridge.h — the bridge plugin vtable: sender hidden states -> M soft tokens in the receiver's
 * embedding space. The bridge builds its forward from tensor.h ops on the given context, so the
 * host's tape gives it backward for free; its parameters live in a tp_params it fills. */
#ifndef TELEPATHY_BRIDGE_H
#define TELEPATHY_BRIDGE_H

#include "telepathy/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_bridge_dims {
    int d_sender;     /* sender hidden width */
    int d_receiver;   /* receiver embedding width */
    int sender_vocab; /* for heads over the sender vocabulary */
    int receiver_vocab;
    float recv_embed_rms; /* median row RMS of the receiver embedding matrix ("calibrated") */
    uint64_t seed;        /* parameter init seed */
    /* ---- appended in ABI 1.1 ---- */
    int n_classes; /* the task's label count (0: not a classification task); classifier
                    * bridges (TP_BRIDGE_CLASSIFIER, e.g. linear_probe) size their head by it */
} tp_bridge_dims;

/* flags() bits: how the host must use a bridge that is not a plain soft-token bridge. */
enum tp_bridge_flag {
    /* No soft tokens and no receiver: num_tokens() is 0, forward leaves out->soft NULL and
     * returns aux "class_logits" [B,n_classes] (f32). The host trains it with a classification
     * loss on those logits (loss 'ce' mode=first_token reads them as in->first_logits with
     * in->labels) and predicts argmax(class_logits). */
    TP_BRIDGE_CLASSIFIER = 1u << 0,
    /* The soft tokens carry nothing of the sender (prompt tuning): the receiver must also read
     * the example's text, i.e. the host builds the receiver input as
     * [primer][M soft tokens][the task's direct prompt of the example][answer], the same text a
     * receiver-direct baseline reads, so the baseline sees what the bridge would. */
    TP_BRIDGE_RECEIVER_TEXT = 1u << 1,
    /* Trained towards receiver embeddings (diffusion, mode=flow): before every training forward
     * the host calls set_target with the receiver input embeddings of the run's target text
     * (the example's answer or question, a run setting), and passes the same tensors to the
     * losses as tp_loss_inputs.target_emb / target_emb_mask. */
    TP_BRIDGE_NEEDS_TARGET = 1u << 2,
};

#define TP_BRIDGE_MAX_AUX 8
typedef struct tp_bridge_out {
    tp_tensor *soft; /* [B,M,d_receiver] */
    int n_aux;
    const char *aux_name[TP_BRIDGE_MAX_AUX]; /* e.g. "vq_commit", "codes" */
    tp_tensor *aux[TP_BRIDGE_MAX_AUX];
    int n_metrics; /* scalar metrics to log (codebook perplexity, alpha, ...) */
    const char *metric_name[TP_BRIDGE_MAX_AUX];
    double metric[TP_BRIDGE_MAX_AUX];
} tp_bridge_out;

typedef struct tp_bridge_vtable {
    uint32_t size; /* sizeof(tp_bridge_vtable) */
    tp_status (*create)(const tp_options *opts, const tp_bridge_dims *dims, tp_params *params,
                        void **state, tp_err *err);
    /* h [B,T,d_sender] (frozen sender states), mask [B,T] f32 (1 = token). */
    tp_status (*forward)(void *state, tp_ctx *ctx, tp_tensor *h, tp_tensor *mask, int training,
                         tp_bridge_out *out, tp_err *err);
    int (*num_tokens)(void *state);
    void (*destroy)(void *state);
    /* ---- appended in ABI 1.1: optional (NULL), and absent from a vtable whose size ends
     * before them; the host tests with TP_BRIDGE_HAS(vt, member) before calling ---- */
    uint32_t (*flags)(void *state); /* tp_bridge_flag bits; absent = 0 */
    /* Statistics from training data (the `normalizer` option). calibration_examples() says how
     * many training examples the bridge wants (0: none). If > 0, the host calls calibrate after
     * create and before the first forward -- and again, on the same examples, before loading a
     * checkpoint or evaluating one -- with the frozen sender states of the first N training
     * examples of the run's (seeded) order, in batches (h [B,T,d_sender], mask [B,T] f32, as
     * forward gets them; calls accumulate), and recv_embed = the receiver's input embedding
     * matrix [V,d_receiver] (frozen, any dtype/device). Extra rows past N are ignored. */
    int (*calibration_examples)(void *state);
    tp_status (*calibrate)(void *state, tp_ctx *ctx, tp_tensor *h, tp_tensor *mask,
                           tp_tensor *recv_embed, tp_err *err);
    /* Bridges with TP_BRIDGE_NEEDS_TARGET: the target of the next training forward. target
     * [B,L,d_receiver] = the receiver's input embeddings (frozen, no grad) of each example's
     * target text, tokenised with the receiver's tokenizer without special tokens and padded
     * to the longest row; mask [B,L] f32 (1 = token). Step-scoped: the bridge reads it in that
     * forward only. Eval forwards (training = 0) need no target. */
    tp_status (*set_target)(void *state, tp_tensor *target, tp_tensor *mask, tp_err *err);
    /* ---- appended in ABI 1.2: optional, tested with TP_BRIDGE_HAS like the 1.1 members ----
     * Hidden mutable state: whatever a resumed run needs to continue bit-identically that is
     * not a registered parameter (a dropout RNG's position, EMA weights, usage counters). The
     * host saves it in every training checkpoint and restores it on resume, after create (and
     * calibrate) and before the next forward. Calibration statistics are not state: the host
     * recomputes them before loading a checkpoint.
     * state_size: the exact byte count, a function of the options and dims only (never of
     *   training progress), so a checkpoint of other options is caught by its size; 0 = no
     *   state worth saving (e.g. dropout = 0), and then the other two are never called.
     * save_state: writes exactly n = state_size() bytes into buf (native byte order).
     * load_state: reads bytes save_state wrote; the host has checked n == state_size() and the
     *   bytes' checksum. Bytes it does not recognise (start them with a magic word and a
     *   layout version) are a TP_EFORMAT error saying what differs; state stays unchanged then.
     * A bridge with state_size() > 0 cannot resume from a checkpoint without its state (one
     * written before ABI 1.2): the host refuses that with a message, never resumes silently. */
    size_t (*state_size)(void *state);
    tp_status (*save_state)(void *state, void *buf, size_t n, tp_err *err);
    tp_status (*load_state)(void *state, const void *buf, size_t n, tp_err *err);
} tp_bridge_vtable;

/* Whether vtable vt (of vt->size bytes, maybe built against older headers) has a non-NULL
 * member m, e.g. TP_BRIDGE_HAS(vt, calibrate). */
#define TP_BRIDGE_HAS(vt, m)                                                                       \
    ((vt)->size >= offsetof(tp_bridge_vtable, m) + sizeof((vt)->m) && (vt)->m != NULL)

#ifdef __cplusplus
}
#endif
#endif
