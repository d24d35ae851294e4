/* evaluator.c — the three scoring schemes, the evaluation subset and the Wilson interval (see
 * evaluator.h). */
#include "run/evaluator.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/generate.h"

void tp_wilson95(int64_t k, int64_t n, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    const double z = 1.959963984540054;
    double p = (double)k / (double)n, z2 = z * z, nn = (double)n;
    double den = 1 + z2 / nn;
    double mid = (p + z2 / (2 * nn)) / den;
    double half = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
    *lo = mid - half < 0 ? 0 : mid - half;
    *hi = mid + half > 1 ? 1 : mid + half;
}

static int is_word_char(unsigned char c) {
    return isalnum(c) || c == '_' || c >= 0x80;
}

/* First whole-word occurrence of word (lower-case) in text (lower-case); -1 if none. */
static long find_word(const char *text, const char *word, size_t wl) {
    if (wl == 0) return -1;
    for (const char *p = text; (p = strstr(p, word)) != NULL; p++) {
        int left = p == text || !is_word_char((unsigned char)p[-1]);
        int right = !is_word_char((unsigned char)p[wl]);
        if (left && right) return p - text;
    }
    return -1;
}

static void lower_copy(char *dst, const char *src, size_t cap) {
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = 0;
}

int tp_match_label(const tp_task_info *info, const char *text) {
    size_t tl = strlen(text);
    char *low = malloc(tl + 1);
    if (!low) return -1;
    lower_copy(low, text, tl + 1);
    long best = -1;
    int best_c = -1;
    for (int c = 0; c < info->n_labels; c++) {
        char words[1024], w[256];
        snprintf(words, sizeof words, "%s%s%s", info->labels[c], info->synonyms[c] ? "|" : "",
                 info->synonyms[c] ? info->synonyms[c] : "");
        for (char *s = words, *bar; s; s = bar ? bar + 1 : NULL) {
            bar = strchr(s, '|');
            if (bar) *bar = 0;
            lower_copy(w, s, sizeof w);
            long at = find_word(low, w, strlen(w));
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
                best_c = c;
            }
        }
    }
    free(low);
    return best_c;
}

void tp_eval_out_free(tp_eval_out *o) {
    if (!o) return;
    if (o->text)
        for (int i = 0; i < o->n; i++) free(o->text[i]);
    free(o->text);
    free(o->pred);
    free(o->score);
    memset(o, 0, sizeof *o);
}

static tp_status host_f32(tp_ctx *ctx, tp_tensor *t, float **out, tp_err *err) {
    (void)ctx;
    *out = malloc((size_t)tp_numel(t) * sizeof(float));
    if (!*out) return tp_errf(err, TP_ENOMEM, "evaluator: out of memory");
    tp_status st = tp_to_f32_buffer(t, *out, err);
    if (st != TP_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

static tp_status score_first(const tp_scorer *s, tp_ctx *ctx, const tp_prefix *p, int *pred,
                             double *score, tp_err *err) {
    tp_tensor *lg;
    TP_TRY(tp_forward_next(s->m, ctx, p, s->max_len, &lg, err));
    float *h;
    TP_TRY(host_f32(ctx, lg, &h, err));
    int64_t V = lg->shape[1];
    for (int b = 0; b < p->B; b++) {
        const float *row = h + (size_t)b * V;
        int best = 0;
        double mx = -INFINITY;
        for (int c = 0; c < s->ls->n; c++)
            if (row[s->ls->first[c]] > mx) { /* ties go to the lower class, like argmax */
                mx = row[s->ls->first[c]];
                best = c;
            }
        double z = 0;
        for (int c = 0; c < s->ls->n; c++) z += exp((double)row[s->ls->first[c]] - mx);
        pred[b] = best;
        score[b] = 1.0 / z;
    }
    free(h);
    return TP_OK;
}

static tp_status score_loglik(const tp_scorer *s, tp_ctx *ctx, const tp_prefix *p, int *pred,
                              double *score, tp_err *err) {
    int B = p->B, C = s->ls->n;
    double *ll = malloc((size_t)B * C * sizeof *ll);
    const int32_t **tg = malloc((size_t)B * sizeof *tg);
    int *tl = malloc((size_t)B * sizeof *tl);
    tp_status st = TP_OK;
    if (!ll || !tg || !tl) st = tp_errf(err, TP_ENOMEM, "evaluator: out of memory");
    for (int c = 0; c < C && st == TP_OK; c++) {
        for (int b = 0; b < B; b++) {
            tg[b] = s->ls->ids[c];
            tl[b] = s->ls->len[c];
        }
        tp_tensor *lg, *tt;
        st = tp_forward_targets(s->m, ctx, p, tg, tl, s->max_len, &lg, &tt, err);
        if (st != TP_OK) break;
        tp_tensor *lp = tp_log_softmax(ctx, lg);
        if (!lp) {
            st = tp_errf(err, tp_ctx_status(ctx), "loglik scoring: %s", tp_ctx_error(ctx));
            break;
        }
        float *h;
        st = host_f32(ctx, lp, &h, err);
        if (st != TP_OK) break;
        int64_t V = lp->shape[1], L = lp->shape[0] / B;
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int j = 0; j < s->ls->len[c]; j++)
                sum += h[((size_t)b * L + j) * V + s->ls->ids[c][j]];
            ll[(size_t)b * C + c] = sum;
        }
        free(h);
    }
    if (st == TP_OK)
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (ll[(size_t)b * C + c] > ll[(size_t)b * C + best]) best = c;
            pred[b] = best;
            score[b] = ll[(size_t)b * C + best];
        }
    free(ll);
    free(tg);
    free(tl);
    return st;
}

static tp_status score_generate(const tp_scorer *s, const tp_prefix *p, int *pred, double *score,
                                char **text, tp_err *err) {
    int B = p->B, T = p->T;
    if (T + s->max_new_tokens > s->max_len)
        return tp_errf(err, TP_ERANGE,
                       "generate scoring: prefix %d + max_new_tokens %d exceeds max_receiver_len "
                       "%d (%s)",
                       T, s->max_new_tokens, s->max_len, s->m->path);
    int32_t *mask = malloc((size_t)B * T * sizeof *mask);
    if (!mask) return tp_errf(err, TP_ENOMEM, "evaluator: out of memory");
    for (size_t i = 0; i < (size_t)B * T; i++) mask[i] = p->mask_host[i] > 0.5f;
    tp_gen_cfg g = tp_gen_defaults(s->m);
    g.max_new_tokens = s->max_new_tokens;
    g.greedy = 1;
    tp_gen_in in = {.batch = B, .len = T, .ids = NULL, .embeds = p->emb, .mask = mask};
    tp_gen_out go = {0};
    tp_status st = tp_generate(s->m, &in, &g, &go, err);
    free(mask);
    if (st != TP_OK) return tp_err_prefix(err, "generate scoring");
    for (int b = 0; b < B && st == TP_OK; b++) {
        char *t = NULL;
        st = tp_tokenizer_decode(s->m->tok, go.tokens + (size_t)b * go.max_new, go.n_tokens[b], 1,
                                 &t, err);
        if (st != TP_OK) break;
        text[b] = t;
        pred[b] = tp_match_label(s->info, t);
        score[b] = NAN;
    }
    tp_gen_out_free(&go);
    return st;
}

const char *tp_scorer_scheme(const tp_scorer *s) {
    return s->classify ? "classifier" : tp_scoring_name(s->scoring);
}

static tp_status score_classify(const tp_scorer *s, tp_ctx *ctx, const tp_example *const *rows,
                                int B, int *pred, double *score, tp_err *err) {
    tp_tensor *lg = NULL;
    TP_TRY(s->classify(s->user, ctx, rows, B, &lg, err));
    int C = s->info->n_labels;
    if (!lg || lg->ndim != 2 || lg->shape[0] != B || lg->shape[1] != C)
        return tp_errf(err, TP_ESHAPE, "classifier bridge: class_logits must be [%d,%d]", B, C);
    float *h;
    TP_TRY(host_f32(ctx, lg, &h, err));
    for (int b = 0; b < B; b++) {
        const float *row = h + (size_t)b * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (row[c] > row[best]) best = c;
        double z = 0;
        for (int c = 0; c < C; c++) z += exp((double)row[c] - row[best]);
        pred[b] = best;
        score[b] = 1.0 / z;
    }
    free(h);
    return TP_OK;
}

tp_status tp_score(const tp_scorer *s, tp_ctx *ctx, const tp_example *const *rows, int n,
                   tp_eval_out *out, tp_err *err) {
    memset(out, 0, sizeof *out);
    if (!s->classify && s->scoring == TP_SCORE_FIRST_TOKEN && !s->ls->first_unique)
        return tp_errf(err, TP_EINVAL,
                       "first_token scoring: two label words of this task start with the same "
                       "token in %s's tokenizer, so their first tokens cannot tell them apart; "
                       "use scoring = \"loglik\"",
                       s->m->path);
    out->n = n;
    out->pred = calloc((size_t)n + 1, sizeof *out->pred);
    out->score = calloc((size_t)n + 1, sizeof *out->score);
    int gen = !s->classify && s->scoring == TP_SCORE_GENERATE;
    if (gen) out->text = calloc((size_t)n + 1, sizeof *out->text);
    if (!out->pred || !out->score || (gen && !out->text)) {
        tp_eval_out_free(out);
        return tp_errf(err, TP_ENOMEM, "evaluator: out of memory");
    }
    int prev = tp_set_grad_enabled(ctx, 0);
    tp_status st = TP_OK;
    for (int i = 0; i < n && st == TP_OK; i += s->batch) {
        int B = n - i < s->batch ? n - i : s->batch;
        tp_ctx_reset(ctx);
        tp_prefix p = {0};
        if (s->classify) {
            st = score_classify(s, ctx, rows + i, B, out->pred + i, out->score + i, err);
            continue;
        }
        st = s->prefix(s->user, ctx, rows + i, B, &p, err);
        if (st == TP_OK) {
            if (s->scoring == TP_SCORE_FIRST_TOKEN)
                st = score_first(s, ctx, &p, out->pred + i, out->score + i, err);
            else if (s->scoring == TP_SCORE_LOGLIK)
                st = score_loglik(s, ctx, &p, out->pred + i, out->score + i, err);
            else
                st = score_generate(s, &p, out->pred + i, out->score + i, out->text + i, err);
        }
        tp_prefix_free_host(&p);
    }
    tp_ctx_reset(ctx);
    tp_set_grad_enabled(ctx, prev);
    if (st != TP_OK) tp_eval_out_free(out);
    return st;
}

tp_status tp_eval_subset(const tp_dataset *ds, int n_labels, int n, uint64_t seed, int64_t **idx,
                         int *count, tp_err *err) {
    *idx = NULL;
    *count = 0;
    if (ds->n == 0) return tp_errf(err, TP_EINVAL, "evaluation split %s has no rows", ds->source);
    int64_t N = ds->n;
    int64_t *out = malloc((size_t)N * sizeof *out);
    if (!out) return tp_errf(err, TP_ENOMEM, "eval subset: out of memory");
    if (n <= 0 || n >= N) {
        for (int64_t i = 0; i < N; i++) out[i] = i;
        *idx = out;
        *count = (int)N;
        return TP_OK;
    }
    int64_t *cnt = calloc((size_t)n_labels, sizeof *cnt), *quota = calloc((size_t)n_labels, 8);
    double *rem = calloc((size_t)n_labels, sizeof *rem);
    char *take = calloc((size_t)N, 1);
    int64_t *pool = malloc((size_t)N * sizeof *pool);
    if (!cnt || !quota || !rem || !take || !pool) {
        free(out), free(cnt), free(quota), free(rem), free(take), free(pool);
        return tp_errf(err, TP_ENOMEM, "eval subset: out of memory");
    }
    for (int64_t i = 0; i < N; i++)
        if (ds->rows[i].label >= 0 && ds->rows[i].label < n_labels) cnt[ds->rows[i].label]++;
    int64_t given = 0;
    for (int c = 0; c < n_labels; c++) {
        double q = (double)n * (double)cnt[c] / (double)N;
        quota[c] = (int64_t)floor(q);
        rem[c] = q - (double)quota[c];
        given += quota[c];
    }
    while (given < n) { /* largest remainder; ties to the lower class */
        int best = -1;
        for (int c = 0; c < n_labels; c++)
            if (quota[c] < cnt[c] && (best < 0 || rem[c] > rem[best])) best = c;
        if (best < 0) break;
        quota[best]++;
        rem[best] = -1;
        given++;
    }
    for (int c = 0; c < n_labels; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < N; i++)
            if (ds->rows[i].label == c) pool[m++] = i;
        tp_rng rng = {seed, 0x5ab5e7ull + (uint64_t)c, 0};
        for (int64_t k = 0; k < quota[c] && k < m; k++) { /* partial Fisher-Yates */
            uint32_t u;
            tp_rng_u32(&rng, &u, 1);
            int64_t j = k + (int64_t)(((uint64_t)u * (uint64_t)(m - k)) >> 32);
            int64_t t = pool[k];
            pool[k] = pool[j];
            pool[j] = t;
            take[pool[k]] = 1;
        }
    }
    int k = 0;
    for (int64_t i = 0; i < N; i++)
        if (take[i]) out[k++] = i;
    free(cnt), free(quota), free(rem), free(take), free(pool);
    *idx = out;
    *count = k;
    return TP_OK;
}
