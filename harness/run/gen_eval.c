/* gen_eval.c — generation-task scoring: extraction, exact match, digit accuracy, recording (see
 * gen_eval.h). */
#include "run/gen_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/batch.h"
#include "util/sha256.h"
#include "util/strutil.h"

void tp_answer_compare(const char *pred, const char *gold, int *exact, double *digits) {
    size_t gl = strlen(gold), pl = strlen(pred);
    *exact = gl > 0 && strcmp(pred, gold) == 0;
    size_t k = 0;
    for (size_t i = 0; i < gl; i++) k += i < pl && pred[i] == gold[i];
    *digits = gl ? (double)k / (double)gl : 0.0;
}

tp_status tp_gen_subset(const tp_dataset *ds, int n, uint64_t seed, int64_t **idx, int *count,
                        tp_err *err) {
    *idx = NULL;
    *count = 0;
    if (ds->n == 0) return tp_errf(err, TP_EINVAL, "evaluation split %s has no rows", ds->source);
    int64_t N = ds->n;
    int64_t *out = malloc((size_t)N * sizeof *out);
    if (!out) return tp_errf(err, TP_ENOMEM, "eval subset: out of memory");
    for (int64_t i = 0; i < N; i++) out[i] = i;
    if (n <= 0 || n >= N) {
        *idx = out;
        *count = (int)N;
        return TP_OK;
    }
    char *take = calloc((size_t)N, 1);
    if (!take) {
        free(out);
        return tp_errf(err, TP_ENOMEM, "eval subset: out of memory");
    }
    tp_rng rng = {seed, 0x9e11ull, 0};
    for (int64_t k = 0; k < n; k++) { /* partial Fisher-Yates over the indices */
        uint32_t u;
        tp_rng_u32(&rng, &u, 1);
        int64_t j = k + (int64_t)(((uint64_t)u * (uint64_t)(N - k)) >> 32);
        int64_t t = out[k];
        out[k] = out[j];
        out[j] = t;
        take[out[k]] = 1;
    }
    int c = 0;
    for (int64_t i = 0; i < N; i++)
        if (take[i]) out[c++] = i;
    free(take);
    *idx = out;
    *count = c;
    return TP_OK;
}

tp_status tp_eval_record_outputs(tp_store *store, int64_t run_id, const tp_scorer *sc,
                                 const tp_example *const *rows, int n, tp_err *err) {
    if (!sc->output || n <= 0) return TP_OK;
    const char **ids = calloc((size_t)n, sizeof *ids);
    const char **out = calloc((size_t)n, sizeof *out);
    char(*buf)[24] = calloc((size_t)n, sizeof *buf);
    tp_status st = TP_OK;
    if (!ids || !out || !buf) st = tp_errf(err, TP_ENOMEM, "eval outputs: out of memory");
    for (int i = 0; i < n && st == TP_OK; i++) {
        snprintf(buf[i], sizeof buf[i], "%lld", (long long)rows[i]->id);
        ids[i] = buf[i];
        out[i] = sc->output(sc->user, rows[i]);
    }
    if (st == TP_OK) st = tp_store_prediction_outputs_set(store, run_id, "eval", ids, out, n, err);
    free(ids);
    free(out);
    free(buf);
    return st;
}

tp_status tp_gen_evaluate(const tp_run_cfg *cfg, const tp_scorer *sc, tp_ctx *ctx,
                          const tp_example *const *rows, int n, tp_store *store, int64_t run_id,
                          tp_run_result *res, tp_err *err) {
    const tp_task_vtable *tv = cfg->task->desc.vtable;
    if (!tv->extract)
        return tp_errf(err, TP_EUNSUP, "task '%s' is a generation task without extract()",
                       cfg->task->desc.name);
    if (sc->scoring != TP_SCORE_GENERATE)
        return tp_errf(err, TP_EINVAL, "task '%s' is a generation task: scoring must be generate",
                       cfg->task->desc.name);
    tp_eval_out o;
    TP_TRY(tp_score(sc, ctx, rows, n, &o, err));
    tp_prediction_row *pr = calloc((size_t)n + 1, sizeof *pr);
    char(*hx)[3][TP_SHA256_HEX] = calloc((size_t)n + 1, sizeof *hx);
    char(*ids)[24] = calloc((size_t)n + 1, sizeof *ids);
    char(*ans)[2][128] = calloc((size_t)n + 1, sizeof *ans);
    tp_status st = TP_OK;
    if (!pr || !hx || !ids || !ans) st = tp_errf(err, TP_ENOMEM, "gen eval: out of memory");
    int64_t k = 0;
    double dsum = 0;
    for (int i = 0; i < n && st == TP_OK; i++) {
        const tp_example *x = rows[i];
        const char *gen = o.text && o.text[i] ? o.text[i] : "";
        if (!tv->extract(cfg->task_state, gen, ans[i][0], sizeof ans[i][0])) ans[i][0][0] = 0;
        const char *gold = x->answer ? x->answer : "";
        if (!tv->extract(cfg->task_state, gold, ans[i][1], sizeof ans[i][1]))
            tp_strlcpy(ans[i][1], gold, sizeof ans[i][1]);
        int ex;
        double dg;
        tp_answer_compare(ans[i][0], ans[i][1], &ex, &dg);
        k += ex;
        dsum += dg;
        char *prompt = tp_fill_template(cfg->kind == TP_KIND_BRIDGE ? cfg->info.sender_template
                                                                    : cfg->info.direct_template,
                                        x->text);
        if (!prompt) {
            st = tp_errf(err, TP_ENOMEM, "gen eval: out of memory");
            break;
        }
        tp_sha256_hex(x->text, strlen(x->text), hx[i][0]);
        tp_sha256_hex(prompt, strlen(prompt), hx[i][1]);
        tp_sha256_hex(gold, strlen(gold), hx[i][2]);
        free(prompt);
        snprintf(ids[i], sizeof ids[i], "%lld", (long long)x->id);
        pr[i] = (tp_prediction_row){"eval",    ids[i],    hx[i][0], hx[i][1], hx[i][2],
                                    ans[i][1], ans[i][0], ex,       dg};
    }
    if (st == TP_OK) {
        res->n = n;
        res->n_correct = k;
        res->accuracy = n ? (double)k / n : NAN;
        tp_wilson95(k, n, &res->ci_low, &res->ci_high);
        tp_strlcpy(res->scheme, "generate", sizeof res->scheme);
        res->n_classes = 0;
    }
    if (st == TP_OK && store) st = tp_store_predictions_add(store, run_id, pr, n, err);
    if (st == TP_OK && store && sc->output) /* the relay's summaries */
        st = tp_eval_record_outputs(store, run_id, sc, rows, n, err);
    else if (st == TP_OK && store && o.text && n > 0) {
        /* the generated text each answer was extracted from, so the extraction can be audited */
        const char **idp = calloc((size_t)n, sizeof *idp), **txt = calloc((size_t)n, sizeof *txt);
        if (!idp || !txt) st = tp_errf(err, TP_ENOMEM, "gen eval: out of memory");
        for (int i = 0; i < n && st == TP_OK; i++) {
            idp[i] = ids[i];
            txt[i] = o.text[i] ? o.text[i] : "";
        }
        if (st == TP_OK)
            st = tp_store_prediction_outputs_set(store, run_id, "eval", idp, txt, n, err);
        free(idp);
        free(txt);
    }
    if (st == TP_OK && store) {
        double dig = n ? dsum / n : NAN;
        tp_result_row rows3[3] = {
            {"exact_match", res->accuracy, res->ci_low, res->ci_high, "wilson", n, "generate",
             "eval"},
            {"accuracy", res->accuracy, res->ci_low, res->ci_high, "wilson", n, "generate", "eval"},
            {"digit_accuracy", dig, NAN, NAN, NULL, n, "generate", "eval"},
        };
        st = tp_store_results_add(store, run_id, rows3, 3, err);
    }
    free(pr);
    free(hx);
    free(ids);
    free(ans);
    tp_eval_out_free(&o);
    return st;
}
