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
} tp_bridge_dims;

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
} tp_bridge_vtable;

#ifdef __cplusplus
}
#endif
#endif
