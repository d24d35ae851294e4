/* receiver_input.c — prefixes, label tokens and the scored forward passes (see receiver_input.h).
 */
#include "run/receiver_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/transformer.h"

tp_status tp_label_set_build(const tp_model *m, const tp_task_info *info, tp_label_set *out,
                             tp_err *err) {
    memset(out, 0, sizeof *out);
    const tp_tokenizer *tok = m->tok;
    int spm = strcmp(tp_tokenizer_kind(tok), "spm-bpe") == 0;
    out->eos = tp_tokenizer_eos(tok);
    if (out->eos < 0) out->eos = m->cfg.eos_token_id;
    for (int c = 0; c < info->n_labels; c++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", spm ? "" : " ", info->labels[c]);
        tp_status st = tp_tokenizer_encode(tok, text, 0, &out->ids[c], &out->len[c], err);
        if (st == TP_OK && out->len[c] == 0)
            st = tp_errf(err, TP_EINVAL, "label '%s' gives no tokens", info->labels[c]);
        if (st != TP_OK) {
            out->n = c + 1;
            tp_label_set_free(out);
            return tp_err_prefix(err, "label words of %s", m->path);
        }
        out->first[c] = out->ids[c][0];
        out->n = c + 1;
    }
    out->first_unique = 1;
    for (int a = 0; a < out->n; a++)
        for (int b = a + 1; b < out->n; b++)
            if (out->first[a] == out->first[b]) out->first_unique = 0;
    return TP_OK;
}

void tp_label_set_free(tp_label_set *ls) {
    if (!ls) return;
    for (int c = 0; c < ls->n; c++) free(ls->ids[c]);
    memset(ls, 0, sizeof *ls);
}

void tp_prefix_free_host(tp_prefix *p) {
    if (!p) return;
    free(p->mask_host);
    p->mask_host = NULL;
}

static tp_status ctx_err(tp_ctx *ctx, tp_err *err, const char *what) {
    tp_status st = tp_ctx_status(ctx);
    return tp_errf(err, st ? st : TP_EINVAL, "%s: %s", what, tp_ctx_error(ctx));
}

tp_status tp_prefix_bridge(tp_model *m, tp_ctx *ctx, const int32_t *primer, int np, tp_tensor *soft,
                           tp_prefix *out, tp_err *err) {
    memset(out, 0, sizeof *out);
    int B = (int)soft->shape[0], M = (int)soft->shape[1];
    out->B = B;
    out->T = np + M;
    out->mask_host = malloc((size_t)B * out->T * sizeof(float));
    if (!out->mask_host) return tp_errf(err, TP_ENOMEM, "receiver input: out of memory");
    for (size_t i = 0; i < (size_t)B * out->T; i++) out->mask_host[i] = 1.0f;
    if (np > 0) {
        int32_t *ids = malloc((size_t)B * np * sizeof *ids);
        if (!ids) return tp_errf(err, TP_ENOMEM, "receiver input: out of memory");
        for (int b = 0; b < B; b++) memcpy(ids + (size_t)b * np, primer, (size_t)np * sizeof *ids);
        tp_tensor *t = tp_from_i32(ctx, TP_DIMS(B, np), ids);
        free(ids);
        if (!t) return ctx_err(ctx, err, "receiver input");
        tp_tensor *pe = tp_model_embed(m, ctx, t, err); /* [B,np,D] */
        if (!pe) return tp_err_prefix(err, "receiver input: primer");
        tp_tensor *parts[2] = {pe, soft};
        out->emb = tp_concat(ctx, parts, 2, 1);
    } else {
        out->emb = soft;
    }
    out->mask = tp_from_f32(ctx, TP_DIMS(B, out->T), out->mask_host);
    if (!out->emb || !out->mask) return ctx_err(ctx, err, "receiver input");
    return TP_OK;
}

tp_status tp_prefix_ids(tp_model *m, tp_ctx *ctx, int B, int T, const int32_t *ids,
                        const float *mask, tp_prefix *out, tp_err *err) {
    memset(out, 0, sizeof *out);
    out->B = B;
    out->T = T;
    out->mask_host = malloc((size_t)B * T * sizeof(float));
    if (!out->mask_host) return tp_errf(err, TP_ENOMEM, "text prompt: out of memory");
    memcpy(out->mask_host, mask, (size_t)B * T * sizeof(float));
    tp_tensor *t = tp_from_i32(ctx, TP_DIMS(B, T), ids);
    if (!t) return ctx_err(ctx, err, "text prompt");
    out->emb = tp_model_embed(m, ctx, t, err);
    if (!out->emb) return tp_err_prefix(err, "text prompt");
    out->mask = tp_from_f32(ctx, TP_DIMS(B, T), out->mask_host);
    if (!out->mask) return ctx_err(ctx, err, "text prompt");
    return TP_OK;
}

tp_status tp_prefix_append_ids(tp_model *m, tp_ctx *ctx, tp_prefix *p, int T2, const int32_t *ids,
                               const float *mask, tp_err *err) {
    int B = p->B, T = p->T, S = T + T2;
    float *mh = malloc((size_t)B * S * sizeof *mh);
    if (!mh) return tp_errf(err, TP_ENOMEM, "receiver input: out of memory");
    for (int b = 0; b < B; b++) {
        memcpy(mh + (size_t)b * S, p->mask_host + (size_t)b * T, (size_t)T * sizeof *mh);
        memcpy(mh + (size_t)b * S + T, mask + (size_t)b * T2, (size_t)T2 * sizeof *mh);
    }
    free(p->mask_host);
    p->mask_host = mh;
    tp_tensor *t = tp_from_i32(ctx, TP_DIMS(B, T2), ids);
    if (!t) return ctx_err(ctx, err, "receiver input");
    tp_tensor *te = tp_model_embed(m, ctx, t, err);
    if (!te) return tp_err_prefix(err, "receiver input: text");
    tp_tensor *parts[2] = {p->emb, te};
    p->emb = tp_concat(ctx, parts, 2, 1);
    p->mask = tp_from_f32(ctx, TP_DIMS(B, S), mh);
    p->T = S;
    if (!p->emb || !p->mask) return ctx_err(ctx, err, "receiver input");
    return TP_OK;
}

static tp_status check_len(const tp_model *m, int total, int T, int L, int max_len, tp_err *err) {
    if (total > max_len)
        return tp_errf(err, TP_ERANGE,
                       "receiver input of %d positions (prefix %d + answer %d) exceeds "
                       "max_receiver_len %d (%s has max_position_embeddings %d); use fewer soft "
                       "tokens, a shorter primer or a shorter prompt",
                       total, T, L, max_len, m->path, m->cfg.max_position_embeddings);
    return TP_OK;
}

tp_status tp_forward_targets(tp_model *m, tp_ctx *ctx, const tp_prefix *p,
                             const int32_t *const *tgt, const int *tlen, int max_len,
                             tp_tensor **logits, tp_tensor **targets, tp_err *err) {
    int B = p->B, T = p->T, L = 1;
    for (int b = 0; b < B; b++)
        if (tlen[b] > L) L = tlen[b];
    TP_TRY(check_len(m, T + L, T, L, max_len, err));
    int S = T + L;
    size_t nb = (size_t)B;
    int32_t *tid = malloc(nb * L * sizeof *tid), *tg = malloc(nb * L * sizeof *tg);
    int32_t *lp = malloc(nb * L * sizeof *lp);
    float *mask = malloc(nb * S * sizeof *mask);
    tp_status st = TP_OK;
    if (!tid || !tg || !lp || !mask) st = tp_errf(err, TP_ENOMEM, "receiver input: out of memory");
    for (int b = 0; b < B && st == TP_OK; b++) {
        memcpy(mask + (size_t)b * S, p->mask_host + (size_t)b * T, (size_t)T * sizeof *mask);
        for (int j = 0; j < L; j++) {
            int real = j < tlen[b];
            tid[(size_t)b * L + j] = real ? tgt[b][j] : 0;
            tg[(size_t)b * L + j] = real ? tgt[b][j] : TP_IGNORE_INDEX;
            lp[(size_t)b * L + j] = T - 1 + j;
            mask[(size_t)b * S + T + j] = real ? 1.0f : 0.0f;
        }
    }
    tp_tensor *te = NULL, *mt = NULL, *lpt = NULL, *tgt_t = NULL;
    if (st == TP_OK) {
        tp_tensor *ids = tp_from_i32(ctx, TP_DIMS(B, L), tid);
        te = ids ? tp_model_embed(m, ctx, ids, err) : NULL;
        mt = tp_from_f32(ctx, TP_DIMS(B, S), mask);
        lpt = tp_from_i32(ctx, TP_DIMS(B, L), lp);
        tgt_t = tp_from_i32(ctx, TP_DIMS(B * L), tg);
        if (!te && ids)
            st = tp_err_prefix(err, "receiver input: answer tokens");
        else if (!te || !mt || !lpt || !tgt_t)
            st = ctx_err(ctx, err, "receiver input");
    }
    free(tid);
    free(tg);
    free(lp);
    free(mask);
    if (st != TP_OK) return st;
    tp_tensor *parts[2] = {p->emb, te};
    tp_fwd_in in = {0};
    in.embeds = tp_concat(ctx, parts, 2, 1);
    in.mask = mt;
    in.pos = tp_positions_from_mask(ctx, mt, err);
    in.logits = TP_LOGITS_AT;
    in.logit_pos = lpt;
    if (!in.embeds) return ctx_err(ctx, err, "receiver input");
    if (!in.pos) return tp_err_prefix(err, "receiver input");
    tp_fwd_out fo = {0};
    TP_TRY(tp_model_forward(m, ctx, &in, &fo, err));
    tp_tensor *lg = tp_reshape(ctx, fo.logits, TP_DIMS(B * L, fo.logits->shape[2]));
    if (!lg) return ctx_err(ctx, err, "receiver logits");
    *logits = lg;
    *targets = tgt_t;
    return TP_OK;
}

tp_status tp_forward_next(tp_model *m, tp_ctx *ctx, const tp_prefix *p, int max_len,
                          tp_tensor **logits, tp_err *err) {
    int B = p->B, T = p->T;
    TP_TRY(check_len(m, T + 1, T, 1, max_len, err));
    int32_t *lp = malloc((size_t)B * sizeof *lp);
    if (!lp) return tp_errf(err, TP_ENOMEM, "receiver input: out of memory");
    for (int b = 0; b < B; b++) lp[b] = T - 1;
    tp_fwd_in in = {0};
    in.embeds = p->emb;
    in.mask = p->mask;
    in.pos = tp_positions_from_mask(ctx, p->mask, err);
    in.logits = TP_LOGITS_AT;
    in.logit_pos = tp_from_i32(ctx, TP_DIMS(B, 1), lp);
    free(lp);
    if (!in.pos) return tp_err_prefix(err, "receiver input");
    if (!in.logit_pos) return ctx_err(ctx, err, "receiver input");
    tp_fwd_out fo = {0};
    TP_TRY(tp_model_forward(m, ctx, &in, &fo, err));
    tp_tensor *lg = tp_reshape(ctx, fo.logits, TP_DIMS(B, fo.logits->shape[2]));
    if (!lg) return ctx_err(ctx, err, "receiver logits");
    *logits = lg;
    return TP_OK;
}

tp_tensor *tp_select_first(tp_ctx *ctx, tp_tensor *logits, const tp_label_set *ls, tp_err *err) {
    int64_t V = logits->shape[1];
    int C = ls->n;
    float *sel = calloc((size_t)V * C, sizeof *sel);
    if (!sel) {
        tp_errf(err, TP_ENOMEM, "first-token scoring: out of memory");
        return NULL;
    }
    for (int c = 0; c < C; c++) {
        if (ls->first[c] < 0 || ls->first[c] >= V) {
            free(sel);
            tp_errf(err, TP_ERANGE, "first-token scoring: label token %d outside vocab %lld",
                    ls->first[c], (long long)V);
            return NULL;
        }
        sel[(size_t)ls->first[c] * C + c] = 1.0f;
    }
    tp_tensor *s = tp_from_f32(ctx, TP_DIMS(V, C), sel);
    free(sel);
    tp_tensor *out = s ? tp_matmul(ctx, logits, s, 0, 0) : NULL;
    if (!out) ctx_err(ctx, err, "first-token scoring");
    return out;
}
