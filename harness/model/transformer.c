/* transformer.c — decoder forward (Llama / Mistral / Qwen2) with HF semantics, the KV cache,
 * embedding lookup and mask-derived positions. One straight-line pass of tensor-core ops; the
 * tape records whatever needs grad, so input gradients come for free. */
#include "model/transformer.h"

#include "core/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Turns the context's sticky error into err, prefixed with what was being computed. */
static tp_status ctx_err(tp_ctx *ctx, tp_err *err, const char *what) {
    tp_status s = tp_ctx_status(ctx);
    if (s == TP_OK) s = TP_EINVAL;
    const char *msg = tp_ctx_error(ctx);
    return tp_errf(err, s, "%s: %s", what, msg && msg[0] ? msg : "tensor op failed");
}

/* Host copy of a small integer-valued tensor (ids, mask, positions); NULL + err on failure. */
static int32_t *host_ints(const tp_tensor *t, const char *what, tp_err *err) {
    int64_t n = tp_numel(t);
    int32_t *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    if (!out) {
        tp_errf(err, TP_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    if (t->device == TP_CPU && t->dtype == TP_I32 && tp_is_contiguous(t)) {
        memcpy(out, t->data, (size_t)n * sizeof *out);
        return out;
    }
    float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
    if (!f) {
        free(out);
        tp_errf(err, TP_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    if (tp_to_f32_buffer(t, f, err) != TP_OK) {
        tp_err_prefix(err, "%s", what);
        free(f);
        free(out);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)(f[i] + (f[i] >= 0 ? 0.5f : -0.5f));
    free(f);
    return out;
}

static const char *model_name(const tp_model *m) {
    return m->path[0] ? m->path : "model";
}

static tp_status check_ids(const tp_model *m, const tp_tensor *ids, tp_err *err) {
    if (ids->dtype != TP_I32)
        return tp_errf(err, TP_EDTYPE, "%s: token ids must be i32, got %s", model_name(m),
                       tp_dtype_name(ids->dtype));
    int32_t *h = host_ints(ids, "token ids", err);
    if (!h) return err ? err->code : TP_ENOMEM;
    int64_t n = tp_numel(ids), T = ids->ndim ? ids->shape[ids->ndim - 1] : 1;
    tp_status s = TP_OK;
    for (int64_t i = 0; i < n; i++)
        if (h[i] < 0 || h[i] >= m->cfg.vocab_size) {
            s = tp_errf(err, TP_ERANGE,
                        "%s: token id %d at [%lld,%lld] is outside the vocabulary 0..%d "
                        "(vocab_size %d); was the text tokenized for another model?",
                        model_name(m), h[i], (long long)(i / T), (long long)(i % T),
                        m->cfg.vocab_size - 1, m->cfg.vocab_size);
            break;
        }
    free(h);
    return s;
}

tp_tensor *tp_model_embed(tp_model *m, tp_ctx *ctx, tp_tensor *ids, tp_err *err) {
    if (!ids) {
        tp_errf(err, TP_EINVAL, "%s: embed: ids is NULL", model_name(m));
        return NULL;
    }
    if (check_ids(m, ids, err) != TP_OK) return NULL;
    tp_tensor *e = tp_embedding(ctx, m->embed, ids);
    if (!e) ctx_err(ctx, err, "embed");
    return e;
}

tp_tensor *tp_positions_from_mask(tp_ctx *ctx, tp_tensor *mask, tp_err *err) {
    if (!mask || mask->ndim != 2) {
        tp_errf(err, TP_ESHAPE, "positions_from_mask: mask must be [B,T]");
        return NULL;
    }
    int32_t *h = host_ints(mask, "attention mask", err);
    if (!h) return NULL;
    int64_t B = mask->shape[0], T = mask->shape[1];
    for (int64_t b = 0; b < B; b++) {
        int32_t c = 0;
        for (int64_t t = 0; t < T; t++) {
            c += h[b * T + t] != 0;
            h[b * T + t] = h[b * T + t] != 0 ? c - 1 : 1;
        }
    }
    tp_tensor *p = tp_from_i32(ctx, 2, mask->shape, h);
    free(h);
    if (!p) ctx_err(ctx, err, "positions_from_mask");
    return p;
}

tp_status tp_kv_cache_new(tp_kv_cache **out, const tp_model *m, int batch, int max_len,
                          tp_err *err) {
    *out = NULL;
    if (batch <= 0 || max_len <= 0)
        return tp_errf(err, TP_EINVAL, "kv cache: batch %d and max_len %d must be positive", batch,
                       max_len);
    const tp_model_config *c = &m->cfg;
    tp_kv_cache *kc = calloc(1, sizeof *kc);
    if (kc) {
        kc->k = calloc((size_t)c->num_hidden_layers, sizeof *kc->k);
        kc->v = calloc((size_t)c->num_hidden_layers, sizeof *kc->v);
    }
    if (!kc || !kc->k || !kc->v) {
        if (kc) {
            free(kc->k);
            free(kc->v);
        }
        free(kc);
        return tp_errf(err, TP_ENOMEM, "kv cache: out of memory");
    }
    kc->n_layers = c->num_hidden_layers;
    kc->batch = batch;
    kc->max_len = max_len;
    int64_t shape[4] = {batch, c->num_key_value_heads, max_len, c->head_dim};
    int64_t mshape[2] = {batch, max_len};
    tp_status s = TP_OK;
    /* a GPU model holding half weights computes K/V in that dtype: an f32 cache would make
     * every decode step's attention output, and so the rest of each layer, run in f32 */
    tp_dtype kdt = m->device != TP_CPU && m->wdtype != TP_F32 ? m->wdtype : TP_F32;
    for (int l = 0; l < kc->n_layers && s == TP_OK; l++) {
        kc->k[l] = tp_tensor_alloc(kdt, m->device, 4, shape, err);
        kc->v[l] = kc->k[l] ? tp_tensor_alloc(kdt, m->device, 4, shape, err) : NULL;
        if (!kc->v[l]) s = err ? err->code : TP_ENOMEM;
    }
    if (s == TP_OK) {
        kc->mask = tp_tensor_alloc(TP_F32, m->device, 2, mshape, err);
        if (!kc->mask) s = err ? err->code : TP_ENOMEM;
    }
    if (s == TP_OK && (s = tp_fill_value(kc->mask, 0.0)) != TP_OK)
        tp_errf(err, s, "cannot clear the key mask");
    if (s != TP_OK) {
        tp_kv_cache_free(kc);
        tp_err_prefix(err, "kv cache (%d layers, batch %d, %d positions)", c->num_hidden_layers,
                      batch, max_len);
        return s;
    }
    *out = kc;
    return TP_OK;
}

void tp_kv_cache_free(tp_kv_cache *kc) {
    if (!kc) return;
    for (int l = 0; l < kc->n_layers; l++) {
        if (kc->k && kc->k[l]) tp_tensor_free(kc->k[l]);
        if (kc->v && kc->v[l]) tp_tensor_free(kc->v[l]);
    }
    if (kc->mask) tp_tensor_free(kc->mask);
    free(kc->k);
    free(kc->v);
    free(kc);
}

/* [B,T,H*Dh] -> [B,H,T,Dh] as a view; rope makes it contiguous as it reads it. */
static tp_tensor *split_heads(tp_ctx *ctx, tp_tensor *x, int64_t B, int64_t T, int64_t H,
                              int64_t Dh) {
    return tp_transpose(ctx, tp_reshape(ctx, x, TP_DIMS(B, T, H, Dh)), 1, 2);
}

/* Appends this step's keys/values to the cache; returns the cached [B,Hkv,S,Dh]. */
static tp_tensor *cache_append(tp_ctx *ctx, tp_tensor *store, tp_tensor *x, int start, int64_t T,
                               tp_err *err) {
    tp_tensor *dst = tp_slice(ctx, store, 2, start, T);
    if (!dst) return NULL;
    if (tp_copy_into(dst, x, err) != TP_OK) {
        tp_ctx_fail(ctx, err ? err->code : TP_EINVAL, "kv cache write: %s", err ? err->msg : "");
        return NULL;
    }
    return tp_slice(ctx, store, 2, 0, start + T); /* attention copies views it cannot read */
}

static tp_tensor *layer_forward(tp_model *m, tp_ctx *ctx, int l, tp_tensor *x, tp_tensor *pos,
                                tp_tensor *key_mask, tp_kv_cache *cache, tp_err *err) {
    const tp_model_config *c = &m->cfg;
    const tp_layer_weights *w = &m->layers[l];
    int64_t B = x->shape[0], T = x->shape[1];
    int64_t H = c->num_attention_heads, Hkv = c->num_key_value_heads, Dh = c->head_dim;
    float eps = (float)c->rms_norm_eps;

    tp_tensor *h = tp_rmsnorm(ctx, x, w->attn_norm, eps), *q, *k, *v, *qkv = NULL;
    if (w->wqkv) { /* one GEMM; q, k, v are head slices of its [B,T,H+2Hkv,Dh] output */
        qkv = tp_reshape(ctx, tp_linear(ctx, h, w->wqkv, w->bqkv), TP_DIMS(B, T, H + 2 * Hkv, Dh));
        q = tp_transpose(ctx, tp_slice(ctx, qkv, 2, 0, H), 1, 2);
        k = tp_transpose(ctx, tp_slice(ctx, qkv, 2, H, Hkv), 1, 2);
        v = tp_transpose(ctx, tp_slice(ctx, qkv, 2, H + Hkv, Hkv), 1, 2);
    } else {
        q = split_heads(ctx, tp_linear(ctx, h, w->wq, w->bq), B, T, H, Dh);
        k = split_heads(ctx, tp_linear(ctx, h, w->wk, w->bk), B, T, Hkv, Dh);
        v = split_heads(ctx, tp_linear(ctx, h, w->wv, w->bv), B, T, Hkv, Dh);
    }
    if (qkv && B == 1) {
        /* one rope launch for q and k: they are adjacent head blocks of the qkv output, and at
         * batch 1 the q block of the result is contiguous, as attention wants it (at B > 1 it
         * would be copied, so there the two launches stay) */
        tp_tensor *qk =
            tp_rope(ctx, tp_transpose(ctx, tp_slice(ctx, qkv, 2, 0, H + Hkv), 1, 2), pos, &m->rope);
        q = tp_slice(ctx, qk, 1, 0, H);
        k = tp_slice(ctx, qk, 1, H, Hkv);
    } else {
        q = tp_rope(ctx, q, pos, &m->rope);
        k = tp_rope(ctx, k, pos, &m->rope);
    }
    tp_attn_cfg ac = {1, 0, c->sliding_window > 0 ? c->sliding_window : 0, 0.0f};
    if (cache && k && v) {
        ac.q_offset = cache->len;
        k = cache_append(ctx, cache->k[l], k, cache->len, T, err);
        v = cache_append(ctx, cache->v[l], v, cache->len, T, err);
    }
    tp_tensor *a = tp_attention(ctx, q, k, v, key_mask, &ac); /* [B,H,T,Dh] */
    a = tp_reshape(ctx, tp_transpose(ctx, a, 1, 2), TP_DIMS(B, T, H * Dh));
    /* residual adds ride in the o and down GEMMs (linear_add: one kernel instead of two) */
    x = w->bo ? tp_add(ctx, x, tp_linear(ctx, a, w->wo, w->bo)) : tp_linear_add(ctx, a, w->wo, x);
    h = tp_rmsnorm(ctx, x, w->mlp_norm, eps);
    tp_tensor *g;
    /* one GEMM for gate|up when the rows are few (decode, batch-1 encode: one weight stream,
     * one launch); at 536 rows cuBLASLt's pick for the [2I, D] weight ran at ~440 TFLOP/s
     * against ~700 for the two halves (H100, ncu), so there the w_gate/w_up views run apart */
    if (w->wgu && B * T <= 128) {
        int64_t I = w->w_gate->shape[0];
        tp_tensor *gu = tp_linear(ctx, h, w->wgu, NULL);
        g = tp_swiglu(ctx, tp_slice(ctx, gu, 2, 0, I), tp_slice(ctx, gu, 2, I, I));
    } else {
        g = tp_swiglu(ctx, tp_linear(ctx, h, w->w_gate, NULL), tp_linear(ctx, h, w->w_up, NULL));
    }
    return tp_linear_add(ctx, g, w->w_down, x);
}

/* Validates and normalises the inputs; fills B, T. */
static tp_status check_inputs(tp_model *m, tp_ctx *ctx, const tp_fwd_in *in, int64_t *B, int64_t *T,
                              tp_err *err) {
    const char *nm = model_name(m);
    const tp_model_config *c = &m->cfg;
    if (!!in->ids == !!in->embeds)
        return tp_errf(err, TP_EINVAL, "%s: forward needs exactly one of ids and embeds", nm);
    if (in->ids) {
        if (in->ids->ndim != 2)
            return tp_errf(err, TP_ESHAPE, "%s: ids must be [B,T], got %d dims", nm, in->ids->ndim);
        TP_TRY(check_ids(m, in->ids, err));
        *B = in->ids->shape[0];
        *T = in->ids->shape[1];
    } else {
        const tp_tensor *e = in->embeds;
        if (e->ndim != 3 || e->shape[2] != c->hidden_size)
            return tp_errf(err, TP_ESHAPE,
                           "%s: inputs_embeds must be [B,T,%d], got %d dims (last %lld)", nm,
                           c->hidden_size, e->ndim, (long long)e->shape[e->ndim - 1]);
        *B = e->shape[0];
        *T = e->shape[1];
    }
    if (*T <= 0 || *B <= 0)
        return tp_errf(err, TP_ESHAPE, "%s: empty input (B=%lld, T=%lld)", nm, (long long)*B,
                       (long long)*T);
    if (in->mask && (in->mask->ndim != 2 || in->mask->shape[0] != *B || in->mask->shape[1] != *T))
        return tp_errf(err, TP_ESHAPE, "%s: attention mask must be [%lld,%lld]", nm, (long long)*B,
                       (long long)*T);
    if (in->pos && (in->pos->ndim != 2 || in->pos->shape[0] != *B || in->pos->shape[1] != *T ||
                    in->pos->dtype != TP_I32))
        return tp_errf(err, TP_ESHAPE, "%s: position ids must be i32 [%lld,%lld]", nm,
                       (long long)*B, (long long)*T);
    if (in->n_hidden < 0 || in->n_hidden > TP_FWD_MAX_HIDDEN)
        return tp_errf(err, TP_EINVAL, "%s: n_hidden %d outside 0..%d", nm, in->n_hidden,
                       TP_FWD_MAX_HIDDEN);
    for (int i = 0; i < in->n_hidden; i++)
        if (in->hidden_layers[i] < 0 || in->hidden_layers[i] > c->num_hidden_layers)
            return tp_errf(err, TP_ERANGE,
                           "%s: hidden state %d requested; this model has hidden_states 0..%d "
                           "(0 = embeddings, %d = after the final norm)",
                           nm, in->hidden_layers[i], c->num_hidden_layers, c->num_hidden_layers);
    if (in->logits == TP_LOGITS_AT &&
        (!in->logit_pos || in->logit_pos->ndim != 2 || in->logit_pos->shape[0] != *B ||
         in->logit_pos->dtype != TP_I32))
        return tp_errf(err, TP_ESHAPE, "%s: TP_LOGITS_AT needs logit_pos i32 [%lld,P]", nm,
                       (long long)*B);
    if (in->cache) {
        tp_kv_cache *kc = in->cache;
        if (kc->batch != *B || kc->n_layers != c->num_hidden_layers)
            return tp_errf(err, TP_ESHAPE,
                           "%s: kv cache is for batch %d, %d layers; input has batch %lld", nm,
                           kc->batch, kc->n_layers, (long long)*B);
        if (kc->len + *T > kc->max_len)
            return tp_errf(err, TP_ERANGE, "%s: kv cache full: %d cached + %lld new > %d positions",
                           nm, kc->len, (long long)*T, kc->max_len);
        if (in->embeds && (in->embeds->flags & TP_FLAG_REQUIRES_GRAD) && tp_grad_enabled(ctx))
            return tp_errf(err, TP_EINVAL,
                           "%s: a kv-cache forward is inference only, but inputs_embeds requires "
                           "grad (disable grad or drop the cache)",
                           nm);
    }
    /* positions: every one must be below max_position_embeddings */
    int64_t maxp = c->max_position_embeddings;
    if (maxp > 0) {
        int64_t hi = -1, where = 0;
        if (in->pos) {
            int32_t *p = host_ints(in->pos, "position ids", err);
            if (!p) return err ? err->code : TP_ENOMEM;
            for (int64_t i = 0; i < *B * *T; i++) {
                if (p[i] < 0) {
                    int32_t bad = p[i];
                    free(p);
                    return tp_errf(err, TP_ERANGE, "%s: negative position id %d at [%lld,%lld]", nm,
                                   bad, (long long)(i / *T), (long long)(i % *T));
                }
                if (p[i] > hi) hi = p[i], where = i;
            }
            free(p);
        } else {
            hi = (in->cache ? in->cache->len : 0) + *T - 1;
            where = *T - 1;
        }
        if (hi >= maxp)
            return tp_errf(
                err, TP_ERANGE,
                "%s: position %lld (at [%lld,%lld]) is past max_position_embeddings %lld; "
                "shorten the sequence",
                nm, (long long)hi, (long long)(where / *T), (long long)(where % *T),
                (long long)maxp);
    }
    return TP_OK;
}

/* Row-major flat indices b*T + t of the positions whose logits are wanted: [B,P] i32. */
static tp_tensor *logit_rows(tp_ctx *ctx, const tp_fwd_in *in, int64_t B, int64_t T, tp_err *err) {
    int64_t P = in->logits == TP_LOGITS_LAST ? 1 : in->logit_pos->shape[1];
    int32_t *idx = malloc((size_t)(B * P) * sizeof *idx);
    if (!idx) {
        tp_errf(err, TP_ENOMEM, "logits: out of memory");
        return NULL;
    }
    tp_status s = TP_OK;
    if (in->logits == TP_LOGITS_LAST) {
        int32_t *mk = in->mask ? host_ints(in->mask, "attention mask", err) : NULL;
        if (in->mask && !mk) s = err ? err->code : TP_ENOMEM;
        for (int64_t b = 0; b < B && s == TP_OK; b++) {
            int64_t last = T - 1;
            if (mk) {
                last = -1;
                for (int64_t t = 0; t < T; t++)
                    if (mk[b * T + t]) last = t;
            }
            if (last < 0)
                s = tp_errf(err, TP_EINVAL, "logits at the last token: row %lld is all padding",
                            (long long)b);
            idx[b] = (int32_t)(b * T + last);
        }
        free(mk);
    } else {
        int32_t *lp = host_ints(in->logit_pos, "logit_pos", err);
        if (!lp) s = err ? err->code : TP_ENOMEM;
        for (int64_t i = 0; i < B * P && s == TP_OK; i++) {
            if (lp[i] < 0 || lp[i] >= T)
                s = tp_errf(err, TP_ERANGE, "logit_pos[%lld,%lld] = %d is outside 0..%lld",
                            (long long)(i / P), (long long)(i % P), lp[i], (long long)(T - 1));
            idx[i] = (int32_t)((i / P) * T + (s == TP_OK ? lp[i] : 0));
        }
        free(lp);
    }
    tp_tensor *r = s == TP_OK ? tp_from_i32(ctx, TP_DIMS(B, P), idx) : NULL;
    free(idx);
    if (s == TP_OK && !r) ctx_err(ctx, err, "logits");
    return r;
}

tp_status tp_model_forward(tp_model *m, tp_ctx *ctx, const tp_fwd_in *in, tp_fwd_out *out,
                           tp_err *err) {
    memset(out, 0, sizeof *out);
    int64_t B = 0, T = 0;
    TP_TRY(check_inputs(m, ctx, in, &B, &T, err));
    const tp_model_config *c = &m->cfg;
    const int N = c->num_hidden_layers;
    const char *nm = model_name(m);
    tp_kv_cache *kc = in->cache;

    int need = 0; /* layers to run */
    for (int i = 0; i < in->n_hidden; i++)
        if (in->hidden_layers[i] > need) need = in->hidden_layers[i];
    if (in->logits != TP_LOGITS_NONE) need = N;

    tp_tensor *x = in->embeds ? in->embeds : tp_embedding(ctx, m->embed, in->ids);
    tp_tensor *pos = in->pos;
    if (!pos) {
        int32_t *p = malloc((size_t)(B * T) * sizeof *p);
        if (!p) return tp_errf(err, TP_ENOMEM, "%s: out of memory", nm);
        int start = kc ? kc->len : 0;
        for (int64_t i = 0; i < B * T; i++) p[i] = (int32_t)(start + i % T);
        pos = tp_from_i32(ctx, TP_DIMS(B, T), p);
        free(p);
    }
    tp_tensor *key_mask = NULL;
    if (in->mask) key_mask = in->mask->dtype == TP_F32 ? in->mask : tp_cast(ctx, in->mask, TP_F32);
    if (!x || !pos || (in->mask && !key_mask)) return ctx_err(ctx, err, nm);
    if (kc) { /* this step's mask joins the cached one; attention sees all S keys */
        tp_tensor *dst = tp_slice(ctx, kc->mask, 1, kc->len, T);
        if (!dst) return ctx_err(ctx, err, nm);
        tp_status s = TP_OK;
        if (key_mask)
            s = tp_copy_into(dst, key_mask, err);
        else if ((s = tp_fill_value(dst, 1.0)) != TP_OK)
            tp_errf(err, s, "cannot fill the mask");
        if (s != TP_OK) {
            tp_err_prefix(err, "%s: kv cache mask", nm);
            return s;
        }
        key_mask = tp_slice(ctx, kc->mask, 1, 0, kc->len + T);
        if (!key_mask) return ctx_err(ctx, err, nm);
    }

    for (int i = 0; i < in->n_hidden; i++)
        if (in->hidden_layers[i] == 0) out->hidden[i] = x;
    for (int l = 0; l < need; l++) {
        x = layer_forward(m, ctx, l, x, pos, key_mask, kc, err);
        if (!x) {
            tp_status s = ctx_err(ctx, err, nm);
            tp_err_prefix(err, "layer %d", l);
            return s;
        }
        for (int i = 0; i < in->n_hidden; i++)
            if (in->hidden_layers[i] == l + 1 && l + 1 < N) out->hidden[i] = x;
    }
    int want_final = 0;
    for (int i = 0; i < in->n_hidden; i++) want_final |= in->hidden_layers[i] == N;
    tp_tensor *normed = NULL;
    if (want_final) {
        normed = tp_rmsnorm(ctx, x, m->norm, (float)c->rms_norm_eps);
        if (!normed) return ctx_err(ctx, err, nm);
        for (int i = 0; i < in->n_hidden; i++)
            if (in->hidden_layers[i] == N) out->hidden[i] = normed;
    }
    if (in->logits != TP_LOGITS_NONE) {
        tp_tensor *h = normed ? normed : x;
        if (in->logits != TP_LOGITS_ALL) {
            /* gather the wanted rows first, so the vocab GEMM only runs on them */
            tp_tensor *rows = logit_rows(ctx, in, B, T, err);
            if (!rows) return err ? err->code : TP_EINVAL;
            tp_tensor *flat = tp_reshape(ctx, h, TP_DIMS(B * T, c->hidden_size));
            h = tp_embedding(ctx, flat, rows);
        }
        if (!normed) h = tp_rmsnorm(ctx, h, m->norm, (float)c->rms_norm_eps);
        out->logits = tp_linear(ctx, h, m->lm_head, NULL);
        if (!out->logits) return ctx_err(ctx, err, nm);
    }
    if (kc) kc->len += (int)T;
    return TP_OK;
}
