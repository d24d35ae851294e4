/* trainer.c — the bridge training loop (see trainer.h): batches, the taped forward through
 * sender -> bridge -> receiver -> loss plugins, backward, clipping, AdamW, quick evals,
 * checkpoints and resume.
 *
 * The optimiser is the tensor core's (telepathy/optim.h): AdamW with torch semantics (betas
 * 0.9/0.999, eps 1e-8, decoupled weight decay) and torch's global-norm clipping; its state tensors
 * go into every checkpoint, so a resumed run continues with the same moments and step count. */
#include "run/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/transformer.h"
#include "telepathy/optim.h"
#include "run/batch.h"
#include "util/fsutil.h"
#include "util/strutil.h"

#define METRIC_FLUSH       100
#define MAX_TERMS          TP_RUN_MAX_LOSSES
#define MAX_BRIDGE_METRICS 32

struct tp_trainer {
    tp_run_cfg *cfg;
    tp_model *S, *R;
    tp_ctx *ctx;
    const tp_bridge_vtable *bv;
    void *bs;
    tp_params bp;
    const tp_loss_vtable *lv[TP_RUN_MAX_LOSSES];
    void *lstate[TP_RUN_MAX_LOSSES];
    tp_params lp[TP_RUN_MAX_LOSSES];
    uint32_t needs;
    uint32_t flags; /* tp_bridge_flag bits of the bridge */
    size_t state_n; /* bytes of the bridge's hidden state in a checkpoint (0: none) */
    tp_params all;  /* every trainable tensor (bridge first, then loss heads) */
    tp_adamw *opt;
    tp_dataset train;
    int have_train;
    int64_t *perm, perm_epoch;
    int32_t *primer;
    int np;
    tp_label_set ls;
    int step;
    double *losses;
    int n_losses_cap;
    double last_eval;
    /* buffered metrics */
    const char **mnames;
    double *mvals;
    int64_t *msteps;
    int mn, mcap;
    char term_names[MAX_TERMS][80];
    /* the bridge's scalar metrics of the last training forward, logged as bridge/<name>; names
     * are interned here because the metric buffer keeps pointers until it is flushed */
    char bm_names[MAX_BRIDGE_METRICS][96];
    int n_bm_names;
    int bm_idx[TP_BRIDGE_MAX_AUX];
    double bm_val[TP_BRIDGE_MAX_AUX];
    int bm_n;
};

tp_ctx *tp_trainer_ctx(tp_trainer *t) {
    return t->ctx;
}

tp_params *tp_trainer_params(tp_trainer *t) {
    return &t->all;
}

int tp_trainer_losses(const tp_trainer *t, const double **losses) {
    *losses = t->losses;
    return t->step;
}

static tp_status ctx_err(tp_ctx *ctx, tp_err *err, const char *what) {
    tp_status st = tp_ctx_status(ctx);
    return tp_errf(err, st ? st : TP_EINVAL, "%s: %s", what, tp_ctx_error(ctx));
}

/* Median over rows of RMS(row) of the receiver's input embedding matrix ("calibrated" alpha). */
static tp_status embed_rms(const tp_model *m, float *out, tp_err *err) {
    const tp_tensor *e = m->embed;
    int64_t V = e->shape[0], D = e->shape[1];
    float *row = malloc((size_t)D * sizeof *row);
    double *rms = malloc((size_t)V * sizeof *rms);
    if (!row || !rms) {
        free(row);
        free(rms);
        return tp_errf(err, TP_ENOMEM, "receiver embedding RMS: out of memory");
    }
    tp_status st = TP_OK;
    int direct = e->dtype == TP_F32 && e->device == TP_CPU && tp_is_contiguous(e);
    for (int64_t v = 0; v < V && st == TP_OK; v++) {
        const float *r = row;
        if (direct) {
            r = (const float *)e->data + v * D;
        } else {
            for (int64_t d = 0; d < D; d++) row[d] = (float)tp_item(e, v * D + d);
        }
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)r[d] * r[d];
        rms[v] = sqrt(s / (double)D);
    }
    /* selection by sorting a copy: V log V once per run */
    for (int64_t i = 1; i < V; i++) {
        double x = rms[i];
        int64_t j = i;
        if (x >= rms[i - 1]) continue;
        /* binary insertion keeps this fast enough for a 128k vocab */
        int64_t lo = 0, hi = i;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (rms[mid] <= x)
                lo = mid + 1;
            else
                hi = mid;
        }
        memmove(rms + lo + 1, rms + lo, (size_t)(j - lo) * sizeof *rms);
        rms[lo] = x;
    }
    *out = (float)(V % 2 ? rms[V / 2] : 0.5 * (rms[V / 2 - 1] + rms[V / 2]));
    free(row);
    free(rms);
    return st;
}

static tp_status add_params(tp_trainer *t, const tp_params *ps, tp_err *err) {
    for (int i = 0; i < ps->n; i++) {
        if (t->all.n >= TP_MAX_PARAMS)
            return tp_errf(err, TP_ERANGE, "trainer: more than %d trainable tensors",
                           TP_MAX_PARAMS);
        for (int j = 0; j < t->all.n; j++)
            if (!strcmp(t->all.p[j]->name, ps->p[i]->name))
                return tp_errf(err, TP_EINVAL,
                               "trainer: two plugins both name a parameter '%s'; checkpoints key "
                               "parameters by name",
                               ps->p[i]->name);
        t->all.p[t->all.n++] = ps->p[i];
    }
    return TP_OK;
}

static tp_status calibrate(tp_trainer *t, int n, tp_err *err);
static tp_status sender_states(tp_trainer *t, tp_ctx *ctx, const tp_example *const *rows, int B,
                               tp_tensor **h, tp_tensor **mask, tp_err *err);

tp_status tp_trainer_new(tp_trainer **out, tp_run_cfg *cfg, tp_err *err) {
    *out = NULL;
    tp_trainer *t = calloc(1, sizeof *t);
    if (!t) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    t->cfg = cfg;
    t->S = cfg->sender->m;
    t->R = cfg->receiver->m;
    t->perm_epoch = -1;
    t->last_eval = NAN;
    tp_status st = TP_OK;
    int N = t->S->cfg.num_hidden_layers;
    if (cfg->layer < 0 || cfg->layer > N) {
        st = tp_errf(err, TP_ERANGE,
                     "layer = %d: the sender %s has %d layers, so hidden states 0..%d exist "
                     "(0 = embeddings, %d = after the final norm)",
                     cfg->layer, cfg->sender->path, N, N, N);
        goto fail;
    }
    t->ctx = tp_ctx_new(TP_CPU);
    if (!t->ctx) {
        st = tp_errf(err, TP_ENOMEM, "trainer: cannot create a tensor context");
        goto fail;
    }
    /* training data */
    const tp_task_vtable *tv = cfg->task->desc.vtable;
    st = tv->load(cfg->task_state, "train", &t->train, err);
    if (st != TP_OK) goto fail;
    t->have_train = 1;
    if (t->train.n == 0) {
        st = tp_errf(err, TP_EINVAL, "task '%s': the training split (%s) has no rows",
                     cfg->task->desc.name, t->train.source);
        goto fail;
    }
    for (int64_t i = 0; i < t->train.n && cfg->info.is_generation; i++)
        if (!t->train.rows[i].answer || !t->train.rows[i].answer[0]) {
            st = tp_errf(err, TP_EFORMAT,
                         "%s:%lld: generation task '%s' gave a training row without an answer "
                         "text (the sequence CE target)",
                         t->train.source, (long long)t->train.rows[i].line, cfg->task->desc.name);
            goto fail;
        }
    for (int64_t i = 0; i < t->train.n && !cfg->info.is_generation; i++)
        if (t->train.rows[i].label < 0 || t->train.rows[i].label >= cfg->info.n_labels) {
            st = tp_errf(err, TP_EFORMAT,
                         "%s:%lld: label index %d is not one of the task's %d "
                         "classes",
                         t->train.source, (long long)t->train.rows[i].line, t->train.rows[i].label,
                         cfg->info.n_labels);
            goto fail;
        }
    /* receiver-side tokens */
    st = tp_label_set_build(t->R, &cfg->info, &t->ls, err);
    if (st != TP_OK) goto fail;
    {
        int32_t *ids = NULL;
        int n = 0;
        if (cfg->primer[0]) {
            st = tp_tokenizer_encode(t->R->tok, cfg->primer, 0, &ids, &n, err);
            if (st != TP_OK) goto fail;
        }
        int bos = cfg->bos ? tp_tokenizer_bos(t->R->tok) : -1;
        if (cfg->bos && bos < 0) bos = t->R->cfg.bos_token_id;
        if (cfg->bos && bos < 0) {
            free(ids);
            st = tp_errf(err, TP_EINVAL, "bos = true, but the receiver %s has no BOS token",
                         cfg->receiver->path);
            goto fail;
        }
        t->primer = malloc(((size_t)n + 1) * sizeof *t->primer);
        if (!t->primer) {
            free(ids);
            st = tp_errf(err, TP_ENOMEM, "trainer: out of memory");
            goto fail;
        }
        if (bos >= 0) t->primer[t->np++] = bos;
        if (n) memcpy(t->primer + t->np, ids, (size_t)n * sizeof *ids);
        t->np += n;
        free(ids);
    }
    /* bridge */
    tp_bridge_dims dims = {0};
    dims.d_sender = t->S->cfg.hidden_size;
    dims.d_receiver = t->R->cfg.hidden_size;
    dims.sender_vocab = t->S->cfg.vocab_size;
    dims.receiver_vocab = t->R->cfg.vocab_size;
    dims.seed = cfg->seed;
    dims.n_classes = cfg->info.n_labels;
    st = embed_rms(t->R, &dims.recv_embed_rms, err);
    if (st != TP_OK) goto fail;
    t->bv = cfg->bridge->desc.vtable;
    st = t->bv->create(cfg->bridge_opts, &dims, &t->bp, &t->bs, err);
    if (st != TP_OK) {
        tp_err_prefix(err, "bridge '%s'", cfg->bridge->desc.name);
        goto fail;
    }
    t->flags = TP_BRIDGE_HAS(t->bv, flags) ? t->bv->flags(t->bs) : 0;
    if (t->flags &
        ~(uint32_t)(TP_BRIDGE_CLASSIFIER | TP_BRIDGE_RECEIVER_TEXT | TP_BRIDGE_NEEDS_TARGET)) {
        st = tp_errf(err, TP_EUNSUP, "bridge '%s' sets flags 0x%x unknown to this trainer",
                     cfg->bridge->desc.name, t->flags);
        goto fail;
    }
    if ((t->flags & TP_BRIDGE_CLASSIFIER) && cfg->info.is_generation) {
        st = tp_errf(err, TP_EUNSUP,
                     "bridge '%s' is a classifier (class logits, no receiver), and task '%s' is a "
                     "generation task with no classes; use a bridge that makes soft tokens",
                     cfg->bridge->desc.name, cfg->task->desc.name);
        goto fail;
    }
    if ((t->flags & TP_BRIDGE_NEEDS_TARGET) && !TP_BRIDGE_HAS(t->bv, set_target)) {
        st = tp_errf(err, TP_EPLUGIN, "bridge '%s' sets NEEDS_TARGET but has no set_target",
                     cfg->bridge->desc.name);
        goto fail;
    }
    t->state_n = TP_BRIDGE_HAS(t->bv, state_size) ? t->bv->state_size(t->bs) : 0;
    if (t->state_n > 0 &&
        (!TP_BRIDGE_HAS(t->bv, save_state) || !TP_BRIDGE_HAS(t->bv, load_state))) {
        st = tp_errf(err, TP_EPLUGIN,
                     "bridge '%s' keeps %zu bytes of state (state_size) but lacks save_state or "
                     "load_state, so its checkpoints could not hold it",
                     cfg->bridge->desc.name, t->state_n);
        goto fail;
    }
    if (TP_BRIDGE_HAS(t->bv, calibration_examples) && TP_BRIDGE_HAS(t->bv, calibrate)) {
        int n = t->bv->calibration_examples(t->bs);
        if (n > 0) {
            st = calibrate(t, n, err);
            if (st != TP_OK) goto fail;
        }
    }
    int M = t->bv->num_tokens(t->bs);
    if (M <= 0 && !(t->flags & TP_BRIDGE_CLASSIFIER)) {
        st = tp_errf(err, TP_EINVAL, "bridge '%s' makes %d soft tokens; expected M >= 1",
                     cfg->bridge->desc.name, M);
        goto fail;
    }
    {
        int maxlab = 0;
        for (int c = 0; c < t->ls.n; c++)
            if (t->ls.len[c] > maxlab) maxlab = t->ls.len[c];
        int total = t->np + M + maxlab + 1;
        if (total > cfg->max_receiver_len && !(t->flags & TP_BRIDGE_CLASSIFIER)) {
            st = tp_errf(err, TP_ERANGE,
                         "the receiver prompt needs %d positions (primer %d + %d soft tokens + "
                         "answer %d + EOS) but max_receiver_len is %d (%s has "
                         "max_position_embeddings %d); shorten the primer or use fewer tokens",
                         total, t->np, M, maxlab, cfg->max_receiver_len, cfg->receiver->path,
                         t->R->cfg.max_position_embeddings);
            goto fail;
        }
    }
    st = add_params(t, &t->bp, err);
    if (st != TP_OK) goto fail;
    /* precision = bf16: the bridge's params, initialised by its create in f32, are stored in bf16
     * from here on (the study's pure-bf16 training); AdamW then keeps bf16 moments */
    for (int i = 0; cfg->bf16_params && i < t->bp.n; i++) {
        st = tp_param_set_dtype(t->bp.p[i], TP_BF16, err);
        if (st != TP_OK) {
            tp_err_prefix(err, "precision = bf16: bridge '%s'", cfg->bridge->desc.name);
            goto fail;
        }
    }
    for (int i = 0; i < cfg->n_losses; i++) {
        t->lv[i] = cfg->losses[i].plugin->desc.vtable;
        st = t->lv[i]->create(cfg->losses[i].opts, &dims, &t->lp[i], &t->lstate[i], err);
        if (st != TP_OK) {
            tp_err_prefix(err, "loss '%s'", cfg->losses[i].plugin->desc.name);
            goto fail;
        }
        uint32_t need = t->lv[i]->needs(t->lstate[i]);
        uint32_t have = TP_NEED_LOGITS | TP_NEED_FIRST_TOKEN | TP_NEED_SOFT | TP_NEED_SENDER |
                        TP_NEED_AUX | TP_NEED_TARGET_EMB | TP_NEED_ANSWER_IDS;
        /* a classifier bridge has no receiver: only its class logits (as first_logits) */
        if (t->flags & TP_BRIDGE_CLASSIFIER)
            have &= ~(uint32_t)(TP_NEED_LOGITS | TP_NEED_SOFT | TP_NEED_TARGET_EMB);
        if (need & ~have) {
            uint32_t miss = need & ~have;
            const char *what = miss & TP_NEED_LOGITS       ? "receiver logits"
                               : miss & TP_NEED_SOFT       ? "soft tokens"
                               : miss & TP_NEED_TARGET_EMB ? "receiver target embeddings"
                                                           : "an input unknown to this trainer";
            if (t->flags & TP_BRIDGE_CLASSIFIER)
                st = tp_errf(err, TP_EUNSUP,
                             "loss '%s' needs %s, but bridge '%s' is a classifier (no soft "
                             "tokens, no receiver); train it with losses = {ce = 1}",
                             cfg->losses[i].plugin->desc.name, what, cfg->bridge->desc.name);
            else
                st = tp_errf(err, TP_EUNSUP,
                             "loss '%s' needs %s, which no component of this "
                             "run provides",
                             cfg->losses[i].plugin->desc.name, what);
            goto fail;
        }
        if ((need & TP_NEED_FIRST_TOKEN) && cfg->info.is_generation) {
            st = tp_errf(err, TP_EUNSUP,
                         "loss '%s' needs first-token logits over label words, and task '%s' is a "
                         "generation task with no label words; train it with the sequence CE "
                         "(ce mode = sequence)",
                         cfg->losses[i].plugin->desc.name, cfg->task->desc.name);
            goto fail;
        }
        t->needs |= need;
        snprintf(t->term_names[i], sizeof t->term_names[i], "train/loss/%s",
                 cfg->losses[i].plugin->desc.name);
        st = add_params(t, &t->lp[i], err);
        if (st != TP_OK) goto fail;
    }
    /* optimiser state */
    tp_adamw_cfg ac = tp_adamw_defaults();
    ac.weight_decay = (float)cfg->weight_decay;
    t->opt = tp_adamw_new(t->all.p, t->all.n, &ac, err);
    if (!t->opt) {
        st = err->code ? err->code : TP_ENOMEM;
        goto fail;
    }
    *out = t;
    return TP_OK;
fail:
    tp_trainer_free(t);
    return st;
}

void tp_trainer_free(tp_trainer *t) {
    if (!t) return;
    if (t->bs) t->bv->destroy(t->bs);
    for (int i = 0; i < t->bp.n; i++) tp_tensor_free(t->bp.p[i]);
    for (int i = 0; i < TP_RUN_MAX_LOSSES; i++) {
        if (t->lstate[i]) t->lv[i]->destroy(t->lstate[i]);
        for (int j = 0; j < t->lp[i].n; j++) tp_tensor_free(t->lp[i].p[j]);
    }
    if (t->opt) tp_adamw_free(t->opt);
    if (t->have_train) {
        const tp_task_vtable *tv = t->cfg->task->desc.vtable;
        tv->free_dataset(t->cfg->task_state, &t->train);
    }
    if (t->ctx) tp_ctx_free(t->ctx);
    tp_label_set_free(&t->ls);
    free(t->perm);
    free(t->primer);
    free(t->losses);
    free(t->mnames);
    free(t->mvals);
    free(t->msteps);
    free(t);
}

/* ---- data order ------------------------------------------------------------------------------ */

static tp_status epoch_perm(tp_trainer *t, int64_t e, tp_err *err) {
    if (t->perm_epoch == e) return TP_OK;
    int64_t n = t->train.n;
    if (!t->perm) {
        t->perm = malloc((size_t)n * sizeof *t->perm);
        if (!t->perm) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    }
    for (int64_t i = 0; i < n; i++) t->perm[i] = i;
    tp_rng rng = {t->cfg->seed, 0xda7a000000000000ull + (uint64_t)e, 0};
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t u;
        tp_rng_u32(&rng, &u, 1);
        int64_t j = (int64_t)(((uint64_t)u * (uint64_t)(i + 1)) >> 32);
        int64_t x = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = x;
    }
    t->perm_epoch = e;
    return TP_OK;
}

static tp_status batch_rows(tp_trainer *t, int step, int64_t *idx, tp_err *err) {
    int B = t->cfg->batch;
    for (int i = 0; i < B; i++) {
        int64_t g = (int64_t)step * B + i;
        TP_TRY(epoch_perm(t, g / t->train.n, err));
        idx[i] = t->perm[g % t->train.n];
    }
    return TP_OK;
}

/* Hands the bridge the frozen sender states of the first n training examples of the run's order
 * (capped at the split size), in batches, before its first forward (bridge.h calibrate). */
static tp_status calibrate(tp_trainer *t, int n, tp_err *err) {
    if (n > t->train.n) n = (int)t->train.n;
    int B = t->cfg->batch;
    const tp_example **rows = malloc((size_t)B * sizeof *rows);
    if (!rows) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    tp_status st = TP_OK;
    for (int g = 0; g < n && st == TP_OK; g += B) {
        int nb = n - g < B ? n - g : B;
        st = epoch_perm(t, 0, err);
        for (int b = 0; b < nb && st == TP_OK; b++) rows[b] = &t->train.rows[t->perm[g + b]];
        tp_ctx_reset(t->ctx);
        tp_tensor *h, *mask;
        if (st == TP_OK) st = sender_states(t, t->ctx, rows, nb, &h, &mask, err);
        if (st == TP_OK) st = t->bv->calibrate(t->bs, t->ctx, h, mask, t->R->embed, err);
        if (st != TP_OK) tp_err_prefix(err, "bridge '%s' calibration", t->cfg->bridge->desc.name);
    }
    tp_ctx_reset(t->ctx);
    free(rows);
    return st;
}

/* ---- forward pieces -------------------------------------------------------------------------- */

/* Sender states at layer l (no grad) and the key mask, for B examples. */
static tp_status sender_states(tp_trainer *t, tp_ctx *ctx, const tp_example *const *rows, int B,
                               tp_tensor **h, tp_tensor **mask, tp_err *err) {
    const tp_run_cfg *c = t->cfg;
    char **texts = calloc((size_t)B, sizeof *texts);
    if (!texts) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    tp_status st = TP_OK;
    for (int b = 0; b < B && st == TP_OK; b++) {
        texts[b] = tp_fill_template(c->info.sender_template, rows[b]->text);
        if (!texts[b]) st = tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    }
    tp_tok_batch tb = {0};
    if (st == TP_OK)
        st = tp_tok_batch_build(t->S->tok, (const char *const *)texts, B, c->sender_bos,
                                c->max_sender_len, 0, 0, &tb, err);
    for (int b = 0; b < B; b++) free(texts[b]);
    free(texts);
    if (st != TP_OK) return tp_err_prefix(err, "sender prompt");
    tp_fwd_in in = {0};
    in.ids = tp_from_i32(ctx, TP_DIMS(B, tb.T), tb.ids);
    in.mask = tp_from_f32(ctx, TP_DIMS(B, tb.T), tb.mask);
    in.hidden_layers[0] = c->layer;
    in.n_hidden = 1;
    in.logits = TP_LOGITS_NONE;
    tp_tok_batch_free(&tb);
    if (!in.ids || !in.mask) return ctx_err(ctx, err, "sender input");
    int prev = tp_set_grad_enabled(ctx, 0);
    tp_fwd_out fo = {0};
    st = tp_model_forward(t->S, ctx, &in, &fo, err);
    tp_set_grad_enabled(ctx, prev);
    if (st != TP_OK) return tp_err_prefix(err, "sender forward");
    *h = fo.hidden[0];
    *mask = in.mask;
    return TP_OK;
}

static tp_status bridge_soft(tp_trainer *t, tp_ctx *ctx, const tp_example *const *rows, int B,
                             int training, tp_tensor *target, tp_tensor *target_mask, tp_tensor **h,
                             tp_tensor **mask, tp_bridge_out *bo, tp_err *err) {
    TP_TRY(sender_states(t, ctx, rows, B, h, mask, err));
    memset(bo, 0, sizeof *bo);
    tp_status st;
    if (training && (t->flags & TP_BRIDGE_NEEDS_TARGET)) {
        st = t->bv->set_target(t->bs, target, target_mask, err);
        if (st != TP_OK)
            return tp_err_prefix(err, "bridge '%s' set_target", t->cfg->bridge->desc.name);
    }
    st = t->bv->forward(t->bs, ctx, *h, *mask, training, bo, err);
    if (st != TP_OK) return tp_err_prefix(err, "bridge '%s' forward", t->cfg->bridge->desc.name);
    if (t->flags & TP_BRIDGE_CLASSIFIER) return TP_OK;
    tp_tensor *s = bo->soft;
    if (!s || s->ndim != 3 || s->shape[0] != B || s->shape[2] != t->R->cfg.hidden_size)
        return tp_errf(err, TP_ESHAPE,
                       "bridge '%s' returned soft tokens of the wrong shape; expected [%d,M,%d]",
                       t->cfg->bridge->desc.name, B, t->R->cfg.hidden_size);
    return TP_OK;
}

/* The class logits a classifier bridge returns as aux "class_logits". */
static tp_status class_logits(tp_trainer *t, const tp_bridge_out *bo, int B, tp_tensor **out,
                              tp_err *err) {
    for (int i = 0; i < bo->n_aux; i++)
        if (bo->aux_name[i] && !strcmp(bo->aux_name[i], "class_logits")) {
            tp_tensor *l = bo->aux[i];
            if (!l || l->ndim != 2 || l->shape[0] != B || l->shape[1] != t->cfg->info.n_labels)
                return tp_errf(err, TP_ESHAPE, "bridge '%s': class_logits must be [%d,%d]",
                               t->cfg->bridge->desc.name, B, t->cfg->info.n_labels);
            *out = l;
            return TP_OK;
        }
    return tp_errf(err, TP_EPLUGIN,
                   "bridge '%s' is a CLASSIFIER but returned no aux "
                   "\"class_logits\"",
                   t->cfg->bridge->desc.name);
}

/* Tokenises one text per row with tok (no special tokens) into an i32 [B,L] tensor padded with
 * pad (and optionally an f32 mask and left padding). */
static tp_status text_ids(tp_ctx *ctx, const tp_tokenizer *tok, const char *const *texts, int B,
                          int left, int pad, int max_len, tp_tensor **ids, tp_tensor **mask,
                          tp_tok_batch *keep, tp_err *err) {
    tp_tok_batch tb = {0};
    TP_TRY(tp_tok_batch_build(tok, texts, B, 0, max_len, left, pad, &tb, err));
    if (ids) *ids = tp_from_i32(ctx, TP_DIMS(B, tb.T), tb.ids);
    if (mask) *mask = tp_from_f32(ctx, TP_DIMS(B, tb.T), tb.mask);
    tp_status st = TP_OK;
    if ((ids && !*ids) || (mask && !*mask)) st = ctx_err(ctx, err, "text ids");
    if (keep && st == TP_OK)
        *keep = tb;
    else
        tp_tok_batch_free(&tb);
    return st;
}

/* Receiver embeddings of each example's target text (answer or question) + mask. */
static tp_status target_embeddings(tp_trainer *t, tp_ctx *ctx, const tp_example *const *rows, int B,
                                   tp_tensor **emb, tp_tensor **mask, tp_err *err) {
    const char **texts = malloc((size_t)B * sizeof *texts);
    if (!texts) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    for (int b = 0; b < B; b++)
        texts[b] = t->cfg->target_question ? rows[b]->text
                   : rows[b]->answer       ? rows[b]->answer
                                           : t->cfg->info.labels[rows[b]->label];
    tp_tensor *ids = NULL;
    tp_status st =
        text_ids(ctx, t->R->tok, texts, B, 0, 0, t->cfg->max_receiver_len, &ids, mask, NULL, err);
    free(texts);
    if (st != TP_OK) return tp_err_prefix(err, "target text");
    *emb = tp_model_embed(t->R, ctx, ids, err);
    return *emb ? TP_OK : tp_err_prefix(err, "target text");
}

/* [primer][soft] (+ the task's direct prompt for RECEIVER_TEXT bridges). */
static tp_status recv_prefix(tp_trainer *t, tp_ctx *ctx, const tp_example *const *rows, int B,
                             tp_tensor *soft, tp_prefix *p, tp_err *err) {
    TP_TRY(tp_prefix_bridge(t->R, ctx, t->primer, t->np, soft, p, err));
    if (!(t->flags & TP_BRIDGE_RECEIVER_TEXT)) return TP_OK;
    if (!t->cfg->info.direct_template)
        return tp_errf(err, TP_EUNSUP,
                       "bridge '%s' needs the task's direct prompt, and task '%s' "
                       "has none",
                       t->cfg->bridge->desc.name, t->cfg->task->desc.name);
    char **texts = calloc((size_t)B, sizeof *texts);
    if (!texts) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    tp_status st = TP_OK;
    for (int b = 0; b < B && st == TP_OK; b++) {
        texts[b] = tp_fill_template(t->cfg->info.direct_template, rows[b]->text);
        if (!texts[b]) st = tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    }
    tp_tok_batch tb = {0};
    if (st == TP_OK)
        st = text_ids(ctx, t->R->tok, (const char *const *)texts, B, 1, 0, 1 << 30, NULL, NULL, &tb,
                      err);
    for (int b = 0; b < B; b++) free(texts[b]);
    free(texts);
    if (st == TP_OK) st = tp_prefix_append_ids(t->R, ctx, p, tb.T, tb.ids, tb.mask, err);
    tp_tok_batch_free(&tb);
    return st;
}

static tp_status prefix_cb(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                           tp_prefix *out, tp_err *err) {
    tp_trainer *t = user;
    tp_tensor *h, *mask;
    tp_bridge_out bo;
    TP_TRY(bridge_soft(t, ctx, rows, B, 0, NULL, NULL, &h, &mask, &bo, err));
    return recv_prefix(t, ctx, rows, B, bo.soft, out, err);
}

static tp_status classify_cb(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                             tp_tensor **logits, tp_err *err) {
    tp_trainer *t = user;
    tp_tensor *h, *mask;
    tp_bridge_out bo;
    TP_TRY(bridge_soft(t, ctx, rows, B, 0, NULL, NULL, &h, &mask, &bo, err));
    return class_logits(t, &bo, B, logits, err);
}

void tp_trainer_scorer(tp_trainer *t, tp_scorer *s) {
    memset(s, 0, sizeof *s);
    s->m = t->R;
    s->ls = &t->ls;
    s->info = &t->cfg->info;
    s->scoring = t->cfg->scoring;
    s->max_new_tokens = t->cfg->max_new_tokens;
    s->batch = t->cfg->eval_batch;
    s->max_len = t->cfg->max_receiver_len;
    s->prefix = prefix_cb;
    s->user = t;
    if (t->flags & TP_BRIDGE_CLASSIFIER) s->classify = classify_cb;
}

/* Records bo's scalar metrics (alpha, vq perplexity, dead codes, ...) for this step. */
static tp_status keep_bridge_metrics(tp_trainer *t, const tp_bridge_out *bo, tp_err *err) {
    t->bm_n = 0;
    for (int i = 0; i < bo->n_metrics && i < TP_BRIDGE_MAX_AUX; i++) {
        const char *nm = bo->metric_name[i];
        if (!nm || !nm[0])
            return tp_errf(err, TP_EPLUGIN, "bridge '%s' returned metric %d without a name",
                           t->cfg->bridge->desc.name, i);
        char full[96];
        snprintf(full, sizeof full, "bridge/%s", nm);
        int k = 0;
        while (k < t->n_bm_names && strcmp(t->bm_names[k], full) != 0) k++;
        if (k == t->n_bm_names) {
            if (k == MAX_BRIDGE_METRICS)
                return tp_errf(err, TP_ERANGE, "bridge '%s' named more than %d distinct metrics",
                               t->cfg->bridge->desc.name, MAX_BRIDGE_METRICS);
            tp_strlcpy(t->bm_names[k], full, sizeof t->bm_names[k]);
            t->n_bm_names++;
        }
        t->bm_idx[t->bm_n] = k;
        t->bm_val[t->bm_n] = bo->metric[i];
        t->bm_n++;
    }
    return TP_OK;
}

/* A generation task's sequence target: the answer as it continues the primer (" 12345" for
 * byte-level BPE, "12345" for SentencePiece, the rule label words follow) and EOS, as the study's
 * scripts built `labels` (receiver_input.h). */
static tp_status answer_target(tp_trainer *t, const char *answer, int32_t **ids, int *n,
                               tp_err *err) {
    int spm = strcmp(tp_tokenizer_kind(t->R->tok), "spm-bpe") == 0;
    size_t len = strlen(answer) + 2;
    char *text = malloc(len);
    if (!text) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    snprintf(text, len, "%s%s", spm ? "" : " ", answer);
    int32_t *enc = NULL;
    int k = 0;
    tp_status st = tp_tokenizer_encode(t->R->tok, text, 0, &enc, &k, err);
    free(text);
    if (st != TP_OK) return tp_err_prefix(err, "answer text");
    int32_t *out = malloc(((size_t)k + 1) * sizeof *out);
    if (!out) {
        free(enc);
        return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    }
    if (k) memcpy(out, enc, (size_t)k * sizeof *out);
    free(enc);
    if (t->ls.eos >= 0) out[k++] = t->ls.eos;
    if (k == 0) {
        free(out);
        return tp_errf(err, TP_EINVAL,
                       "answer '%s' gives no receiver tokens and the receiver "
                       "has no EOS: nothing to train on",
                       answer);
    }
    *ids = out;
    *n = k;
    return TP_OK;
}

/* The weighted loss of one batch in t->ctx; terms[i] receives each loss's value. */
static tp_status batch_loss(tp_trainer *t, const tp_example *const *rows, int B, tp_tensor **total,
                            double *terms, tp_err *err) {
    tp_ctx *ctx = t->ctx;
    tp_tensor *h, *mask, *temb = NULL, *tmask = NULL;
    tp_bridge_out bo;
    if ((t->flags & TP_BRIDGE_NEEDS_TARGET) || (t->needs & TP_NEED_TARGET_EMB))
        TP_TRY(target_embeddings(t, ctx, rows, B, &temb, &tmask, err));
    TP_TRY(bridge_soft(t, ctx, rows, B, 1, temb, tmask, &h, &mask, &bo, err));
    TP_TRY(keep_bridge_metrics(t, &bo, err));
    int classifier = (t->flags & TP_BRIDGE_CLASSIFIER) != 0;
    tp_prefix p = {0};
    tp_status st = classifier ? TP_OK : recv_prefix(t, ctx, rows, B, bo.soft, &p, err);
    tp_loss_inputs li = {0};
    li.target_emb = temb;
    li.target_emb_mask = tmask;
    if (st == TP_OK && classifier) st = class_logits(t, &bo, B, &li.first_logits, err);
    if (st == TP_OK && (t->needs & TP_NEED_ANSWER_IDS)) {
        const char **texts = malloc((size_t)B * sizeof *texts);
        if (!texts) st = tp_errf(err, TP_ENOMEM, "trainer: out of memory");
        for (int b = 0; b < B && texts; b++)
            texts[b] = rows[b]->answer ? rows[b]->answer : t->cfg->info.labels[rows[b]->label];
        if (st == TP_OK)
            st =
                text_ids(ctx, t->S->tok, texts, B, 0, -1, 1 << 30, &li.answer_ids, NULL, NULL, err);
        free(texts);
    }
    li.soft = bo.soft;
    li.sender_h = h;
    li.sender_mask = mask;
    li.bridge = &bo;
    int32_t *lab = malloc((size_t)B * sizeof *lab);
    const int32_t **tg = malloc((size_t)B * sizeof *tg);
    int *tl = malloc((size_t)B * sizeof *tl);
    int32_t **own = calloc((size_t)B, sizeof *own);
    if (st == TP_OK && (!lab || !tg || !tl || !own))
        st = tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    for (int b = 0; b < B && st == TP_OK && t->cfg->info.is_generation; b++) {
        lab[b] = -1;
        st = answer_target(t, rows[b]->answer, &own[b], &tl[b], err);
        tg[b] = own[b];
    }
    for (int b = 0; b < B && st == TP_OK && !t->cfg->info.is_generation; b++) {
        int c = rows[b]->label;
        lab[b] = c;
        /* sequence target: the label word's tokens, then EOS (STUDY.md: CE incl. EOS) */
        int n = t->ls.len[c];
        own[b] = malloc(((size_t)n + 1) * sizeof **own);
        if (!own[b]) {
            st = tp_errf(err, TP_ENOMEM, "trainer: out of memory");
            break;
        }
        memcpy(own[b], t->ls.ids[c], (size_t)n * sizeof **own);
        if (t->ls.eos >= 0) own[b][n++] = t->ls.eos;
        tg[b] = own[b];
        tl[b] = n;
    }
    if (st == TP_OK) {
        li.labels = tp_from_i32(ctx, TP_DIMS(B), lab);
        if (!li.labels) st = ctx_err(ctx, err, "labels");
    }
    tp_tensor *next = NULL;
    if (st == TP_OK && classifier) {
        /* no receiver: first_logits are the class logits */
    } else if (st == TP_OK && (t->needs & TP_NEED_LOGITS)) {
        st = tp_forward_targets(t->R, ctx, &p, tg, tl, t->cfg->max_receiver_len, &li.logits,
                                &li.targets, err);
        if (st == TP_OK && (t->needs & TP_NEED_FIRST_TOKEN)) {
            int64_t L = li.logits->shape[0] / B, V = li.logits->shape[1];
            tp_tensor *l3 = tp_reshape(ctx, li.logits, TP_DIMS(B, L, V));
            tp_tensor *f = l3 ? tp_slice(ctx, l3, 1, 0, 1) : NULL;
            next = f ? tp_reshape(ctx, f, TP_DIMS(B, V)) : NULL;
            if (!next) st = ctx_err(ctx, err, "first-token logits");
        }
    } else if (st == TP_OK && (t->needs & TP_NEED_FIRST_TOKEN)) {
        st = tp_forward_next(t->R, ctx, &p, t->cfg->max_receiver_len, &next, err);
    }
    if (st == TP_OK && next) {
        li.first_logits = tp_select_first(ctx, next, &t->ls, err);
        if (!li.first_logits) st = err->code ? err->code : TP_EINVAL;
    }
    tp_tensor *sum = NULL;
    for (int i = 0; i < t->cfg->n_losses && st == TP_OK; i++) {
        tp_tensor *l = NULL;
        st = t->lv[i]->compute(t->lstate[i], ctx, &li, &l, err);
        if (st != TP_OK) {
            tp_err_prefix(err, "loss '%s'", t->cfg->losses[i].plugin->desc.name);
            break;
        }
        terms[i] = tp_item(l, 0);
        tp_tensor *w = tp_scale(ctx, l, (float)t->cfg->losses[i].weight);
        sum = sum ? tp_add(ctx, sum, w) : w;
        if (!sum) st = ctx_err(ctx, err, "loss sum");
    }
    if (st == TP_OK && !isfinite(tp_item(sum, 0)))
        st = tp_errf(err, TP_ERANGE,
                     "the training loss is not finite (%g); lower lr or check the "
                     "bridge's alpha",
                     tp_item(sum, 0));
    tp_prefix_free_host(&p);
    if (own)
        for (int b = 0; b < B; b++) free(own[b]);
    free(own);
    free(lab);
    free(tg);
    free(tl);
    if (st == TP_OK) *total = sum;
    return st;
}

static void zero_grads(tp_trainer *t) {
    tp_adamw_zero_grad(t->opt);
}

tp_status tp_trainer_loss_once(tp_trainer *t, const int64_t *idx, int B, int do_backward,
                               double *loss, tp_err *err) {
    const tp_example **rows = malloc((size_t)B * sizeof *rows);
    if (!rows) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    for (int b = 0; b < B; b++) rows[b] = &t->train.rows[idx[b]];
    tp_ctx_reset(t->ctx);
    zero_grads(t);
    double terms[MAX_TERMS];
    tp_tensor *total = NULL;
    tp_status st = batch_loss(t, rows, B, &total, terms, err);
    free(rows);
    if (st != TP_OK) return st;
    *loss = tp_item(total, 0);
    if (do_backward && tp_backward(t->ctx, total, NULL) != TP_OK)
        return ctx_err(t->ctx, err, "backward");
    return TP_OK;
}

/* ---- optimiser ------------------------------------------------------------------------------- */

/* ---- metrics, checkpoints -------------------------------------------------------------------- */

static tp_status metric_push(tp_trainer *t, const char *name, int64_t step, double v, tp_err *err) {
    if (t->mn == t->mcap) {
        int nc = t->mcap ? t->mcap * 2 : 256;
        const char **nn = realloc(t->mnames, (size_t)nc * sizeof *nn);
        if (nn) t->mnames = nn;
        double *nv = realloc(t->mvals, (size_t)nc * sizeof *nv);
        if (nv) t->mvals = nv;
        int64_t *ns = realloc(t->msteps, (size_t)nc * sizeof *ns);
        if (ns) t->msteps = ns;
        if (!nn || !nv || !ns) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
        t->mcap = nc;
    }
    t->mnames[t->mn] = name;
    t->mvals[t->mn] = v;
    t->msteps[t->mn] = step;
    t->mn++;
    return TP_OK;
}

static tp_status metric_flush(tp_trainer *t, const tp_train_sink *sink, tp_err *err) {
    tp_status st = TP_OK;
    if (sink && sink->metrics && t->mn > 0)
        st = sink->metrics(sink->user, t->mnames, t->mvals, t->msteps, t->mn, err);
    t->mn = 0;
    return st;
}

static tp_status save_ckpt(tp_trainer *t, const char *dir, int step, const tp_train_sink *sink,
                           tp_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/step_%08d.safetensors", dir, step);
    tp_ckpt_state os = {0};
    os.n = tp_adamw_state(t->opt, &os.t);
    char meta[1024];
    snprintf(meta, sizeof meta,
             "{\"plugin\":\"%s\",\"version\":\"%s\",\"step\":\"%d\",\"adam_t\":\"%lld\","
             "\"config_hash\":\"%s\"}",
             t->cfg->bridge->desc.name, t->cfg->bridge->desc.version, step,
             (long long)tp_adamw_steps(t->opt), t->cfg->hash);
    /* the bridge's hidden state (dropout RNG position, EMA, counters): without it a resumed
     * run would not continue bit-identically */
    tp_ckpt_blob blob = {0};
    if (t->state_n > 0) {
        blob.data = malloc(t->state_n);
        blob.n = t->state_n;
        if (!blob.data) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
        tp_status st = t->bv->save_state(t->bs, blob.data, blob.n, err);
        if (st != TP_OK) {
            free(blob.data);
            return tp_err_prefix(err, "bridge '%s' save_state", t->cfg->bridge->desc.name);
        }
    }
    tp_status st = tp_checkpoint_save_blob(path, &t->all, &os, &blob, meta, err);
    free(blob.data);
    TP_TRY(st);
    if (sink && sink->checkpoint) TP_TRY(sink->checkpoint(sink->user, path, step, err));
    return TP_OK;
}

static const char *meta_value(const char *json, const char *key, char *buf, size_t cap) {
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    const char *out = NULL;
    json_t *v = j ? json_object_get(j, key) : NULL;
    if (v && json_is_string(v)) {
        snprintf(buf, cap, "%s", json_string_value(v));
        out = buf;
    }
    json_decref(j);
    return out;
}

/* The checkpoint's bridge state into the bridge; the sizes must agree both ways. */
static tp_status load_bridge_state(tp_trainer *t, const char *path, const tp_ckpt_blob *blob,
                                   tp_err *err) {
    const char *name = t->cfg->bridge->desc.name, *ver = t->cfg->bridge->desc.version;
    if (!blob->present && t->state_n == 0) return TP_OK;
    if (!blob->present)
        return tp_errf(err, TP_EFORMAT,
                       "checkpoint %s holds no bridge state, but bridge '%s' (version %s) keeps "
                       "%zu bytes of it (a dropout RNG, EMA weights or counters); it was written "
                       "before the state was saved (plugin ABI < 1.2), and resuming without it "
                       "would not continue bit-identically. Remove the file to train this run "
                       "again from step 0",
                       path, name, ver, t->state_n);
    if (blob->n != t->state_n)
        return tp_errf(err, TP_EFORMAT,
                       "checkpoint %s: the bridge state is %zu bytes, but bridge '%s' (version "
                       "%s) with these options keeps %zu; the checkpoint is of other options or "
                       "another build of the bridge",
                       path, blob->n, name, ver, t->state_n);
    tp_status st = t->bv->load_state(t->bs, blob->data, blob->n, err);
    if (st != TP_OK) tp_err_prefix(err, "checkpoint %s: bridge '%s' state", path, name);
    return st;
}

tp_status tp_trainer_resume(tp_trainer *t, const char *path, const double *prior, int n_prior,
                            int *step, tp_err *err) {
    tp_ckpt_state os = {0};
    os.n = tp_adamw_state(t->opt, &os.t);
    char *meta = NULL;
    tp_ckpt_blob blob;
    TP_TRY(tp_checkpoint_load_blob(path, &t->all, &os, &blob, &meta, err));
    tp_status bst = load_bridge_state(t, path, &blob, err);
    free(blob.data);
    if (bst != TP_OK) {
        free(meta);
        return bst;
    }
    char b1[128], b2[128], b3[128];
    const char *s = meta ? meta_value(meta, "step", b1, sizeof b1) : NULL;
    const char *a = meta ? meta_value(meta, "adam_t", b2, sizeof b2) : NULL;
    const char *h = meta ? meta_value(meta, "config_hash", b3, sizeof b3) : NULL;
    free(meta);
    if (!s || !a || !h)
        return tp_errf(err, TP_EFORMAT,
                       "checkpoint %s: metadata lacks step / adam_t / "
                       "config_hash",
                       path);
    if (strcmp(h, t->cfg->hash) != 0)
        return tp_errf(err, TP_EINVAL, "checkpoint %s belongs to config %s, not %s", path, h,
                       t->cfg->hash);
    int sp = atoi(s);
    if (sp < 0 || sp > t->cfg->steps || n_prior < sp)
        return tp_errf(err, TP_EFORMAT,
                       "checkpoint %s: step %d cannot be resumed (%d losses recorded, %d steps)",
                       path, sp, n_prior, t->cfg->steps);
    if (atoll(a) != (long long)sp)
        return tp_errf(err, TP_EFORMAT, "checkpoint %s: optimiser step %s at training step %d",
                       path, a, sp);
    free(t->losses);
    t->losses = malloc(((size_t)t->cfg->steps + 1) * sizeof *t->losses);
    if (!t->losses) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    t->n_losses_cap = t->cfg->steps + 1;
    memcpy(t->losses, prior, (size_t)sp * sizeof *prior);
    t->step = sp;
    *step = sp;
    return TP_OK;
}

static void fmt_eta(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0)
        snprintf(buf, cap, "?");
    else if (s < 60)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

tp_status tp_trainer_train(tp_trainer *t, const char *ckpt_dir, const tp_train_sink *sink,
                           int progress, tp_err *err) {
    const tp_run_cfg *c = t->cfg;
    if (!t->losses) {
        t->losses = malloc(((size_t)c->steps + 1) * sizeof *t->losses);
        if (!t->losses) return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
        t->n_losses_cap = c->steps + 1;
    }
    if (ckpt_dir) TP_TRY(tp_mkdir_p(ckpt_dir, err));
    int B = c->batch;
    int64_t *idx = malloc((size_t)B * sizeof *idx);
    const tp_example **rows = malloc((size_t)B * sizeof *rows);
    if (!idx || !rows) {
        free(idx);
        free(rows);
        return tp_errf(err, TP_ENOMEM, "trainer: out of memory");
    }
    tp_status st = TP_OK;
    double t0 = now_s(), last_print = 0;
    int start = t->step;
    while (t->step < c->steps && st == TP_OK) {
        int s = t->step;
        st = batch_rows(t, s, idx, err);
        if (st != TP_OK) break;
        for (int b = 0; b < B; b++) rows[b] = &t->train.rows[idx[b]];
        tp_ctx_reset(t->ctx);
        zero_grads(t);
        double terms[MAX_TERMS];
        tp_tensor *total = NULL;
        st = batch_loss(t, rows, B, &total, terms, err);
        if (st != TP_OK) {
            tp_err_prefix(err, "step %d", s);
            break;
        }
        double loss = tp_item(total, 0);
        if (tp_backward(t->ctx, total, NULL) != TP_OK) {
            st = ctx_err(t->ctx, err, "backward");
            break;
        }
        double gnorm = NAN, lr = tp_run_lr_at(c, s);
        st = tp_adamw_step_clipped(t->opt, (float)lr, c->clip, &gnorm, err); /* opt has t->all */
        if (st != TP_OK) {
            tp_err_prefix(err, "step %d (grad norm %g)", s, gnorm);
            break;
        }
        t->losses[s] = loss;
        t->step = s + 1;
        st = metric_push(t, "train/loss", s, loss, err);
        for (int i = 0; i < c->n_losses && st == TP_OK; i++)
            st = metric_push(t, t->term_names[i], s, terms[i], err);
        if (st == TP_OK) st = metric_push(t, "train/lr", s, lr, err);
        if (st == TP_OK) st = metric_push(t, "train/grad_norm", s, gnorm, err);
        for (int i = 0; i < t->bm_n && st == TP_OK; i++)
            st = metric_push(t, t->bm_names[t->bm_idx[i]], s, t->bm_val[i], err);
        if (st != TP_OK) break;
        if (c->eval_every > 0 && t->step % c->eval_every == 0 && sink && sink->quick_eval) {
            double acc;
            st = sink->quick_eval(sink->user, t->step, &acc, err);
            if (st != TP_OK) break;
            t->last_eval = acc;
            st = metric_push(t, "eval/quick_accuracy", t->step, acc, err);
        }
        if (st == TP_OK && (t->mn >= METRIC_FLUSH * 4 || t->step == c->steps))
            st = metric_flush(t, sink, err);
        /* metrics first, so a resumed run finds every loss up to its checkpoint */
        if (st == TP_OK && ckpt_dir &&
            (t->step % c->checkpoint_every == 0 || t->step == c->steps)) {
            st = metric_flush(t, sink, err);
            if (st == TP_OK) st = save_ckpt(t, ckpt_dir, t->step, sink, err);
        }
        if (progress) {
            double now = now_s();
            if (now - last_print > 0.1 || t->step == c->steps) {
                last_print = now;
                double ips = (double)(t->step - start) / (now - t0 + 1e-9);
                char eta[32], terms_s[256] = "";
                fmt_eta((double)(c->steps - t->step) / ips, eta, sizeof eta);
                size_t o = 0;
                for (int i = 0; i < c->n_losses && o < sizeof terms_s; i++)
                    o += (size_t)snprintf(terms_s + o, sizeof terms_s - o, " %s %.4f",
                                          c->losses[i].plugin->desc.name, terms[i]);
                char ev[32] = "-";
                if (isfinite(t->last_eval)) snprintf(ev, sizeof ev, "%.3f", t->last_eval);
                fprintf(stderr, "\r\033[K[%.8s] step %d/%d loss %.4f (%s) %.1f it/s ETA %s eval %s",
                        c->hash, t->step, c->steps, loss, terms_s + 1, ips, eta, ev);
                if (t->step == c->steps) fputc('\n', stderr);
            }
        }
    }
    if (st == TP_OK)
        st = metric_flush(t, sink, err);
    else {
        tp_err keep = *err;
        metric_flush(t, sink, NULL);
        *err = keep;
    }
    if (progress && st != TP_OK) fputc('\n', stderr);
    free(idx);
    free(rows);
    return st;
}
