/* generate.c — KV-cache decoding loop (prefill once, then one position per step) with greedy
 * and top-p sampling. Runs in its own step context, rewound every step, so nothing the caller
 * holds is invalidated and a warmed-up step allocates nothing. */
#include "model/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "model/transformer.h"

tp_gen_cfg tp_gen_defaults(const tp_model *m) {
    tp_gen_cfg g;
    memset(&g, 0, sizeof g);
    g.max_new_tokens = 32;
    g.greedy = 1;
    g.temperature = 1.0f;
    g.top_p = 1.0f;
    g.n_eos = m->cfg.n_eos < TP_MAX_EOS ? m->cfg.n_eos : TP_MAX_EOS;
    for (int i = 0; i < g.n_eos; i++) g.eos_ids[i] = m->cfg.eos_token_ids[i];
    if (g.n_eos == 0 && m->cfg.eos_token_id >= 0) {
        g.eos_ids[0] = m->cfg.eos_token_id;
        g.n_eos = 1;
    }
    g.pad_id = m->cfg.pad_token_id >= 0 ? m->cfg.pad_token_id : (g.n_eos ? g.eos_ids[0] : 0);
    return g;
}

void tp_gen_out_free(tp_gen_out *o) {
    if (!o) return;
    free(o->tokens);
    free(o->n_tokens);
    o->tokens = NULL;
    o->n_tokens = NULL;
}

typedef struct prob_idx {
    double p;
    int32_t i;
} prob_idx;

static int by_prob_desc(const void *a, const void *b) {
    const prob_idx *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int32_t argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

int32_t tp_sample_top_p(const float *logits, int vocab, float temperature, float top_p, float u) {
    prob_idx *pi = malloc((size_t)vocab * sizeof *pi);
    if (!pi) return argmax(logits, vocab); /* no memory for the sort: the mode is the safest */
    double mx = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double z = 0;
    for (int i = 0; i < vocab; i++) {
        pi[i].p = exp(((double)logits[i] - mx) / temperature);
        pi[i].i = i;
        z += pi[i].p;
    }
    qsort(pi, (size_t)vocab, sizeof *pi, by_prob_desc);
    int keep = 0;
    double mass = 0;
    while (keep < vocab && (keep == 0 || mass < (double)top_p * z)) mass += pi[keep++].p;
    double target = (double)u * mass, acc = 0;
    int32_t tok = pi[keep - 1].i;
    for (int k = 0; k < keep; k++) {
        acc += pi[k].p;
        if (target < acc) {
            tok = pi[k].i;
            break;
        }
    }
    free(pi);
    return tok;
}

static int is_eos(const tp_gen_cfg *g, int32_t t) {
    for (int i = 0; i < g->n_eos; i++)
        if (g->eos_ids[i] == t) return 1;
    return 0;
}

static tp_status check_cfg(const tp_model *m, const tp_gen_in *in, const tp_gen_cfg *g,
                           tp_err *err) {
    if (in->batch <= 0 || in->len <= 0)
        return tp_errf(err, TP_EINVAL,
                       "generate: empty prompt batch (B=%d, T=%d); an empty "
                       "prompt starts from BOS",
                       in->batch, in->len);
    if (!!in->ids == !!in->embeds)
        return tp_errf(err, TP_EINVAL, "generate: give exactly one of ids and embeds");
    if (g->max_new_tokens <= 0)
        return tp_errf(err, TP_EINVAL, "generate: max_new_tokens must be positive, got %d",
                       g->max_new_tokens);
    if (!g->greedy && !(g->temperature > 0.0f))
        return tp_errf(err, TP_EINVAL, "generate: temperature must be > 0, got %g (use greedy)",
                       (double)g->temperature);
    if (!g->greedy && !(g->top_p > 0.0f && g->top_p <= 1.0f))
        return tp_errf(err, TP_EINVAL, "generate: top_p must be in (0, 1], got %g",
                       (double)g->top_p);
    if (g->pad_id < 0 || g->pad_id >= m->cfg.vocab_size)
        return tp_errf(err, TP_ERANGE, "generate: pad id %d is outside the vocabulary 0..%d",
                       g->pad_id, m->cfg.vocab_size - 1);
    if (g->n_eos < 0 || g->n_eos > TP_MAX_EOS)
        return tp_errf(err, TP_EINVAL, "generate: n_eos %d outside 0..%d", g->n_eos, TP_MAX_EOS);
    if (in->embeds &&
        (in->embeds->ndim != 3 || in->embeds->shape[0] != in->batch ||
         in->embeds->shape[1] != in->len || in->embeds->shape[2] != m->cfg.hidden_size))
        return tp_errf(err, TP_ESHAPE, "generate: embeds must be [%d,%d,%d]", in->batch, in->len,
                       m->cfg.hidden_size);
    int64_t total = (int64_t)in->len + g->max_new_tokens;
    if (m->cfg.max_position_embeddings > 0 && total > m->cfg.max_position_embeddings)
        return tp_errf(err, TP_ERANGE,
                       "generate: prompt %d + %d new tokens exceeds max_position_embeddings %d",
                       in->len, g->max_new_tokens, m->cfg.max_position_embeddings);
    return TP_OK;
}

/* Everything the loop owns, freed in one place. */
typedef struct gen_state {
    tp_ctx *ctx;
    tp_kv_cache *cache;
    int32_t *ids, *mask, *pos, *src_row;
    float *emb, *logits, *mask_f;
    int *count, *done;
} gen_state;

static void state_free(gen_state *s) {
    if (s->ctx) tp_ctx_free(s->ctx);
    tp_kv_cache_free(s->cache);
    free(s->ids);
    free(s->mask);
    free(s->pos);
    free(s->src_row);
    free(s->emb);
    free(s->logits);
    free(s->mask_f);
    free(s->count);
    free(s->done);
}

/* Chooses the next token of every unfinished row. Greedy: s->logits holds the B row argmaxes
 * the device computed (tp_argmax_rows); sampling: the logits [B,V] themselves. */
static void choose(const tp_gen_cfg *g, gen_state *s, int B, int V, int step, tp_rng *rng,
                   tp_gen_out *out, int32_t *next) {
    for (int b = 0; b < B; b++) {
        if (s->done[b]) {
            next[b] = g->pad_id;
            continue;
        }
        const float *row = s->logits + (size_t)b * V;
        int32_t t = g->greedy
                        ? (int32_t)s->logits[b]
                        : tp_sample_top_p(row, V, g->temperature, g->top_p, tp_rng_uniform(rng));
        next[b] = t;
        out->tokens[(size_t)b * out->max_new + step] = t;
        out->n_tokens[b] = step + 1;
        if (g->on_token) g->on_token(g->user, b, t);
        if (is_eos(g, t)) s->done[b] = 1;
    }
}

tp_status tp_generate(tp_model *m, const tp_gen_in *in, const tp_gen_cfg *g, tp_gen_out *out,
                      tp_err *err) {
    memset(out, 0, sizeof *out);
    TP_TRY(check_cfg(m, in, g, err));
    const int B = in->batch, T = in->len, V = m->cfg.vocab_size, D = m->cfg.hidden_size;
    const int G = g->max_new_tokens;
    gen_state s;
    memset(&s, 0, sizeof s);
    tp_status st = TP_OK;
    out->batch = B;
    out->max_new = G;
    out->tokens = malloc((size_t)B * G * sizeof *out->tokens);
    out->n_tokens = calloc((size_t)B, sizeof *out->n_tokens);
    s.ids = calloc((size_t)B * T, sizeof *s.ids);
    s.mask = calloc((size_t)B * T, sizeof *s.mask);
    s.mask_f = calloc((size_t)B * T, sizeof *s.mask_f);
    s.pos = calloc((size_t)B * T, sizeof *s.pos);
    s.src_row = calloc((size_t)B * T, sizeof *s.src_row);
    s.logits = malloc((size_t)B * V * sizeof *s.logits);
    s.count = calloc((size_t)B, sizeof *s.count);
    s.done = calloc((size_t)B, sizeof *s.done);
    if (!out->tokens || !out->n_tokens || !s.ids || !s.mask || !s.mask_f || !s.pos || !s.src_row ||
        !s.logits || !s.count || !s.done) {
        st = tp_errf(err, TP_ENOMEM, "generate: out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < (int64_t)B * G; i++) out->tokens[i] = g->pad_id;

    /* left-align every row: its tokens (mask 1, in order) end at column T-1 */
    for (int b = 0; b < B; b++) {
        int n = 0;
        for (int t = 0; t < T; t++) n += in->mask ? in->mask[b * T + t] != 0 : 1;
        if (n == 0) {
            st = tp_errf(err, TP_EINVAL, "generate: prompt row %d is all padding", b);
            goto fail;
        }
        s.count[b] = n;
        int col = T - n;
        for (int t = 0; t < T; t++) {
            if (in->mask && !in->mask[b * T + t]) continue;
            int k = b * T + col;
            s.src_row[k] = b * T + t;
            s.ids[k] = in->ids ? in->ids[b * T + t] : 0;
            s.mask[k] = 1;
            s.mask_f[k] = 1.0f;
            s.pos[k] = col - (T - n);
            col++;
        }
        for (int t = 0; t < T - n; t++) s.pos[b * T + t] = 1; /* HF's value for pads */
    }
    if (in->embeds) {
        float *src = malloc((size_t)B * T * D * sizeof *src);
        s.emb = calloc((size_t)B * T * D, sizeof *s.emb);
        if (!src || !s.emb) {
            free(src);
            st = tp_errf(err, TP_ENOMEM, "generate: out of memory for the prompt embeddings");
            goto fail;
        }
        st = tp_to_f32_buffer(in->embeds, src, err);
        for (int64_t k = 0; st == TP_OK && k < (int64_t)B * T; k++)
            if (s.mask[k])
                memcpy(s.emb + k * D, src + (int64_t)s.src_row[k] * D, (size_t)D * sizeof *src);
        free(src);
        if (st != TP_OK) goto fail;
    } else {
        for (int64_t k = 0; k < (int64_t)B * T; k++)
            if (!s.mask[k]) s.ids[k] = g->pad_id;
    }

    s.ctx = tp_ctx_new(m->device);
    if (!s.ctx) {
        st = tp_errf(err, TP_ENOMEM, "generate: cannot create a step context");
        goto fail;
    }
    tp_set_grad_enabled(s.ctx, 0);
    if ((st = tp_kv_cache_new(&s.cache, m, B, T + G, err)) != TP_OK) goto fail;

    tp_rng rng = {g->seed, 0, 0};
    int32_t *next = s.pos; /* reused after the prefill: [B] next tokens (B <= B*T) */
    for (int step = 0; step < G; step++) {
        tp_ctx_reset(s.ctx);
        tp_fwd_in fi;
        memset(&fi, 0, sizeof fi);
        fi.logits = TP_LOGITS_LAST;
        fi.cache = s.cache;
        if (step == 0) {
            if (s.emb)
                fi.embeds = tp_from_f32(s.ctx, TP_DIMS(B, T, D), s.emb);
            else
                fi.ids = tp_from_i32(s.ctx, TP_DIMS(B, T), s.ids);
            fi.mask = tp_from_f32(s.ctx, TP_DIMS(B, T), s.mask_f);
            fi.pos = tp_from_i32(s.ctx, TP_DIMS(B, T), s.pos);
        } else {
            int32_t p[B > 0 ? B : 1];
            for (int b = 0; b < B; b++) p[b] = s.count[b] + step - 1;
            fi.ids = tp_from_i32(s.ctx, TP_DIMS(B, 1), next);
            fi.pos = tp_from_i32(s.ctx, TP_DIMS(B, 1), p);
        }
        if ((!fi.ids && !fi.embeds) || !fi.pos || (step == 0 && !fi.mask)) {
            st = tp_errf(err, tp_ctx_status(s.ctx), "generate: %s", tp_ctx_error(s.ctx));
            goto fail;
        }
        tp_fwd_out fo;
        if ((st = tp_model_forward(m, s.ctx, &fi, &fo, err)) != TP_OK) goto fail;
        /* greedy: the argmax runs where the logits are, and B ints come back, not B x V floats
         * (at batch 8 on the GPU the copy and the host scan cost more than the step's forward) */
        tp_tensor *pick = g->greedy ? tp_argmax_rows(s.ctx, fo.logits) : fo.logits;
        if (!pick) {
            st = tp_errf(err, tp_ctx_status(s.ctx), "generate: %s", tp_ctx_error(s.ctx));
            goto fail;
        }
        if ((st = tp_to_f32_buffer(pick, s.logits, err)) != TP_OK) goto fail;
        choose(g, &s, B, V, step, &rng, out, next);
        int all = 1;
        for (int b = 0; b < B; b++) all &= s.done[b];
        if (all) break;
    }
    state_free(&s);
    return TP_OK;
fail:
    state_free(&s);
    tp_gen_out_free(out);
    return st;
}
