/* generate.h — autoregressive decoding with a KV cache: greedy or sampled (temperature, top-p,
 * Philox RNG so a seed replays exactly), from token ids or from input embeddings (soft-token
 * prompts), for a padded batch; each row stops at an EOS id or after max_new_tokens.
 *
 * HF generate semantics: prompts are decoded left-padded with position ids cumsum(mask) - 1,
 * so a right-padded input is re-laid-out to the left first (same numbers either way); a row that
 * has finished keeps being fed the pad id and its outputs are the pad id, as HF does. */
#ifndef TP_MODEL_GENERATE_H
#define TP_MODEL_GENERATE_H

#include <stdint.h>

#include "model/model.h"

typedef void (*tp_gen_token_fn)(void *user, int row, int32_t token);

typedef struct tp_gen_cfg {
    int max_new_tokens;
    int greedy;        /* 1: argmax (ties go to the lowest id, like torch.argmax) */
    float temperature; /* > 0, when sampling */
    float top_p;       /* (0, 1]: nucleus sampling; 1 keeps every token */
    uint64_t seed;     /* Philox seed for sampling */
    int eos_ids[TP_MAX_EOS];
    int n_eos;                /* 0: never stop early */
    int pad_id;               /* fed for finished rows and written after their end */
    tp_gen_token_fn on_token; /* optional: called for every token as it is chosen */
    void *user;
} tp_gen_cfg;

/* Greedy, 32 new tokens, EOS ids from the model's config, pad = config pad (else EOS, else 0). */
tp_gen_cfg tp_gen_defaults(const tp_model *m);

typedef struct tp_gen_in {
    int batch, len;          /* B, T */
    const int32_t *ids;      /* [B*T], or NULL when embeds is given */
    const tp_tensor *embeds; /* [B,T,D] (any ctx or heap tensor; read once), or NULL */
    const int32_t *mask;     /* [B*T], 1 = token, 0 = padding (either side); NULL = none */
} tp_gen_in;

typedef struct tp_gen_out {
    int batch, max_new;
    int32_t *tokens; /* [B*max_new]; after a row's end: pad_id */
    int *n_tokens;   /* per row: tokens produced, EOS included */
} tp_gen_out;

tp_status tp_generate(tp_model *m, const tp_gen_in *in, const tp_gen_cfg *cfg, tp_gen_out *out,
                      tp_err *err);
void tp_gen_out_free(tp_gen_out *o);

/* The sampling rule on one row of logits (exposed for tests): temperature, then the smallest
 * set of most likely tokens whose mass reaches top_p, renormalised; u in [0,1) picks one. */
int32_t tp_sample_top_p(const float *logits, int vocab, float temperature, float top_p, float u);

#endif
