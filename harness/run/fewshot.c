/* fewshot.c — the k-shot baseline (see fewshot.h): shots drawn once per run from the train
 * split, a text prefix of head + direct prompt per example. */
#include "run/fewshot.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/batch.h"

struct tp_fewshot {
    tp_run_cfg *cfg;
    tp_model *m;
    tp_ctx *ctx;
    tp_label_set ls;
    char *head;
    int n;
    int64_t *ids;
    int *labels;
};

void tp_fewshot_free(tp_fewshot *f) {
    if (!f) return;
    if (f->ctx) tp_ctx_free(f->ctx);
    tp_label_set_free(&f->ls);
    free(f->head);
    free(f->ids);
    free(f->labels);
    free(f);
}

tp_ctx *tp_fewshot_ctx(tp_fewshot *f) {
    return f->ctx;
}

int tp_fewshot_shots(const tp_fewshot *f, const int64_t **ids, const int **labels) {
    *ids = f->ids;
    *labels = f->labels;
    return f->n;
}

const char *tp_fewshot_head(const tp_fewshot *f) {
    return f->head;
}

/* A uniform index in [0, n) from the Philox stream. */
static int64_t draw(tp_rng *rng, int64_t n) {
    uint32_t u;
    tp_rng_u32(rng, &u, 1);
    return (int64_t)(((uint64_t)u * (uint64_t)n) >> 32);
}

/* Picks k rows per class (partial Fisher-Yates per class, stream = class), then shuffles the
 * k*C shots (stream C). */
static tp_status pick(tp_fewshot *f, const tp_dataset *ds, tp_err *err) {
    int C = f->cfg->info.n_labels, k = f->cfg->bopts.k;
    f->n = k * C;
    f->ids = malloc(((size_t)f->n + 1) * sizeof *f->ids);
    f->labels = malloc(((size_t)f->n + 1) * sizeof *f->labels);
    int64_t *pool = malloc(((size_t)ds->n + 1) * sizeof *pool);
    tp_status st = TP_OK;
    if (!f->ids || !f->labels || !pool) st = tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
    int o = 0;
    for (int c = 0; c < C && st == TP_OK; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < ds->n; i++)
            if (ds->rows[i].label == c) pool[m++] = i;
        if (m < k) {
            st = tp_errf(err, TP_EINVAL,
                         "fewshot: class '%s' has %lld training row(s) in %s; k = %d needs %d",
                         f->cfg->info.labels[c], (long long)m, ds->source, k, k);
            break;
        }
        tp_rng rng = {f->cfg->bopts.seed, 0xf5e3ull << 16 | (uint64_t)c, 0};
        for (int j = 0; j < k; j++) {
            int64_t r = j + draw(&rng, m - j);
            int64_t t = pool[j];
            pool[j] = pool[r];
            pool[r] = t;
            f->ids[o] = pool[j];
            f->labels[o] = c;
            o++;
        }
    }
    if (st == TP_OK) {
        tp_rng rng = {f->cfg->bopts.seed, 0xf5e3ull << 16 | (uint64_t)C, 0};
        for (int i = f->n - 1; i > 0; i--) {
            int j = (int)draw(&rng, i + 1);
            int64_t ti = f->ids[i];
            int tl = f->labels[i];
            f->ids[i] = f->ids[j];
            f->labels[i] = f->labels[j];
            f->ids[j] = ti;
            f->labels[j] = tl;
        }
    }
    free(pool);
    return st;
}

static tp_status build_head(tp_fewshot *f, const tp_dataset *ds, tp_err *err) {
    size_t cap = 1, used = 0;
    char **parts = calloc((size_t)f->n + 1, sizeof *parts);
    if (!parts) return tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
    tp_status st = TP_OK;
    for (int i = 0; i < f->n && st == TP_OK; i++) {
        parts[i] = tp_fill_template(f->cfg->info.direct_template, ds->rows[f->ids[i]].text);
        if (!parts[i])
            st = tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
        else
            cap += strlen(parts[i]) + strlen(f->cfg->info.labels[f->labels[i]]) + 4;
    }
    if (st == TP_OK) f->head = malloc(cap);
    if (st == TP_OK && !f->head) st = tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
    if (st == TP_OK) {
        f->head[0] = 0;
        for (int i = 0; i < f->n; i++)
            used += (size_t)snprintf(f->head + used, cap - used, "%s %s\n\n", parts[i],
                                     f->cfg->info.labels[f->labels[i]]);
    }
    for (int i = 0; i < f->n; i++) free(parts[i]);
    free(parts);
    return st;
}

tp_status tp_fewshot_new(tp_fewshot **out, tp_run_cfg *cfg, tp_err *err) {
    *out = NULL;
    if (cfg->info.is_generation || cfg->info.n_labels < 1)
        return tp_errf(err, TP_EUNSUP, "fewshot: task '%s' is not a classification task",
                       cfg->task->desc.name);
    if (!cfg->info.direct_template)
        return tp_errf(err, TP_EUNSUP, "fewshot: task '%s' has no direct prompt template",
                       cfg->task->desc.name);
    tp_fewshot *f = calloc(1, sizeof *f);
    if (!f) return tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
    f->cfg = cfg;
    f->m = cfg->receiver->m;
    f->ctx = tp_ctx_new(TP_CPU);
    tp_status st = f->ctx ? tp_label_set_build(f->m, &cfg->info, &f->ls, err)
                          : tp_errf(err, TP_ENOMEM, "fewshot: cannot create a tensor context");
    if (st == TP_OK && cfg->bopts.k > 0) {
        const tp_task_vtable *tv = cfg->task->desc.vtable;
        tp_dataset ds;
        st = tv->load(cfg->task_state, "train", &ds, err);
        if (st == TP_OK) {
            st = pick(f, &ds, err);
            if (st == TP_OK) st = build_head(f, &ds, err);
            tv->free_dataset(cfg->task_state, &ds);
        } else {
            st = tp_err_prefix(err, "fewshot: the shots come from the train split");
        }
    } else if (st == TP_OK) {
        f->head = calloc(1, 1);
        if (!f->head) st = tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
    }
    if (st != TP_OK) {
        tp_fewshot_free(f);
        return st;
    }
    *out = f;
    return TP_OK;
}

static tp_status prefix_fewshot(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                                tp_prefix *out, tp_err *err) {
    tp_fewshot *f = user;
    char **texts = calloc((size_t)B, sizeof *texts);
    if (!texts) return tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
    tp_status st = TP_OK;
    size_t hl = strlen(f->head);
    for (int i = 0; i < B && st == TP_OK; i++) {
        char *q = tp_fill_template(f->cfg->info.direct_template, rows[i]->text);
        if (q) texts[i] = malloc(hl + strlen(q) + 1);
        if (!q || !texts[i]) {
            st = tp_errf(err, TP_ENOMEM, "fewshot: out of memory");
        } else {
            memcpy(texts[i], f->head, hl);
            strcpy(texts[i] + hl, q);
        }
        free(q);
    }
    tp_tok_batch tb = {0};
    if (st == TP_OK)
        st = tp_tok_batch_build(f->m->tok, (const char *const *)texts, B, f->cfg->sender_bos,
                                INT_MAX / 2, 1, 0, &tb, err);
    for (int i = 0; i < B; i++) free(texts[i]);
    free(texts);
    if (st != TP_OK) return tp_err_prefix(err, "fewshot prompt");
    st = tp_prefix_ids(f->m, ctx, tb.B, tb.T, tb.ids, tb.mask, out, err);
    tp_tok_batch_free(&tb);
    return st;
}

void tp_fewshot_scorer(tp_fewshot *f, tp_scorer *s) {
    memset(s, 0, sizeof *s);
    s->m = f->m;
    s->ls = &f->ls;
    s->info = &f->cfg->info;
    s->scoring = f->cfg->scoring;
    s->max_new_tokens = f->cfg->max_new_tokens;
    s->batch = f->cfg->eval_batch;
    s->max_len = f->cfg->max_receiver_len;
    s->prefix = prefix_fewshot;
    s->user = f;
}
