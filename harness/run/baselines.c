/* baselines.c — sender_direct / receiver_direct: a text prefix (the task's direct template,
 * tokenised with BOS as HF does by default, left-padded) scored by the evaluator. */
#include "run/baselines.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "run/batch.h"

struct tp_baseline {
    tp_run_cfg *cfg;
    tp_model *m;
    tp_ctx *ctx;
    tp_label_set ls;
};

tp_status tp_baseline_new(tp_baseline **out, tp_run_cfg *cfg, tp_err *err) {
    *out = NULL;
    if (!cfg->info.direct_template)
        return tp_errf(err, TP_EUNSUP,
                       "task '%s' has no direct prompt template, so it has no "
                       "%s baseline",
                       cfg->task->desc.name, tp_run_kind_name(cfg->kind));
    tp_baseline *b = calloc(1, sizeof *b);
    if (!b) return tp_errf(err, TP_ENOMEM, "baseline: out of memory");
    b->cfg = cfg;
    b->m = (cfg->kind == TP_KIND_SENDER_DIRECT ? cfg->sender : cfg->receiver)->m;
    b->ctx = tp_ctx_new(TP_CPU);
    tp_status st = b->ctx ? tp_label_set_build(b->m, &cfg->info, &b->ls, err)
                          : tp_errf(err, TP_ENOMEM, "baseline: cannot create a tensor context");
    if (st != TP_OK) {
        tp_baseline_free(b);
        return st;
    }
    *out = b;
    return TP_OK;
}

void tp_baseline_free(tp_baseline *b) {
    if (!b) return;
    if (b->ctx) tp_ctx_free(b->ctx);
    tp_label_set_free(&b->ls);
    free(b);
}

tp_ctx *tp_baseline_ctx(tp_baseline *b) {
    return b->ctx;
}

static tp_status prefix_text(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                             tp_prefix *out, tp_err *err) {
    tp_baseline *b = user;
    char **texts = calloc((size_t)B, sizeof *texts);
    if (!texts) return tp_errf(err, TP_ENOMEM, "baseline: out of memory");
    tp_status st = TP_OK;
    for (int i = 0; i < B && st == TP_OK; i++) {
        texts[i] = tp_fill_template(b->cfg->info.direct_template, rows[i]->text);
        if (!texts[i]) st = tp_errf(err, TP_ENOMEM, "baseline: out of memory");
    }
    tp_tok_batch tb = {0};
    /* no truncation: a prompt too long for the model is an error (raised when scored) */
    if (st == TP_OK)
        st = tp_tok_batch_build(b->m->tok, (const char *const *)texts, B, b->cfg->sender_bos,
                                INT_MAX / 2, 1, 0, &tb, err);
    for (int i = 0; i < B; i++) free(texts[i]);
    free(texts);
    if (st != TP_OK) return tp_err_prefix(err, "direct prompt");
    st = tp_prefix_ids(b->m, ctx, tb.B, tb.T, tb.ids, tb.mask, out, err);
    tp_tok_batch_free(&tb);
    return st;
}

void tp_baseline_scorer(tp_baseline *b, tp_scorer *s) {
    memset(s, 0, sizeof *s);
    s->m = b->m;
    s->ls = &b->ls;
    s->info = &b->cfg->info;
    s->scoring = b->cfg->scoring;
    s->max_new_tokens = b->cfg->max_new_tokens;
    s->batch = b->cfg->eval_batch;
    s->max_len = b->cfg->max_receiver_len;
    s->prefix = prefix_text;
    s->user = b;
}
