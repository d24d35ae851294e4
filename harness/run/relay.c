/* relay.c — the text-relay baseline (see relay.h): a prefix function that runs the sender's
 * greedy generation for a batch and hands the receiver its prompt around the decoded summaries. */
#include "run/relay.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/generate.h"
#include "run/batch.h"
#include "util/strutil.h"

struct tp_relay {
    tp_run_cfg *cfg;
    tp_model *snd, *rcv;
    tp_ctx *ctx;
    tp_label_set ls;
    char *rtpl;
    char **sum;
    int n_sum;
    /* every summary written so far, by example (the batch's sum[] is replaced per batch) */
    const tp_example **log_x;
    char **log_s;
    int n_log, cap_log;
    /* sender generation time per batch */
    double ms_sum, ms_sq;
    int n_batches, max_batch;
};

static void free_summaries(tp_relay *r) {
    for (int i = 0; i < r->n_sum; i++) free(r->sum[i]);
    free(r->sum);
    r->sum = NULL;
    r->n_sum = 0;
}

void tp_relay_free(tp_relay *r) {
    if (!r) return;
    if (r->ctx) tp_ctx_free(r->ctx);
    tp_label_set_free(&r->ls);
    free_summaries(r);
    for (int i = 0; i < r->n_log; i++) free(r->log_s[i]);
    free(r->log_x);
    free(r->log_s);
    free(r->rtpl);
    free(r);
}

tp_status tp_relay_new(tp_relay **out, tp_run_cfg *cfg, tp_err *err) {
    *out = NULL;
    if (!cfg->sender || !cfg->receiver)
        return tp_errf(err, TP_EINVAL, "text_relay: needs both a sender and a receiver");
    const char *with_labels = tp_relay_receiver_template_of(&cfg->info);
    if (cfg->bopts.labels_in_prompt && !with_labels)
        return tp_errf(err, TP_EUNSUP,
                       "text_relay: task '%s' has no relay_receiver_template or direct prompt "
                       "(label list) for the receiver; set baseline_options.labels_in_prompt = "
                       "false",
                       cfg->task->desc.name);
    if (!cfg->bopts.sender_prompt) /* tp_run_cfg_resolve fills it (baseline_opts.h) */
        return tp_errf(err, TP_EINVAL, "text_relay: no sender prompt resolved");
    tp_relay *r = calloc(1, sizeof *r);
    if (!r) return tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    r->cfg = cfg;
    r->snd = cfg->sender->m;
    r->rcv = cfg->receiver->m;
    if (cfg->bopts.labels_in_prompt) {
        r->rtpl = tp_strdup(with_labels);
    } else {
        const char *pr = cfg->info.receiver_primer ? cfg->info.receiver_primer : "";
        size_t n = strlen(pr) + 16;
        r->rtpl = malloc(n);
        if (r->rtpl) snprintf(r->rtpl, n, "{text}\n%s", pr);
    }
    r->ctx = tp_ctx_new(TP_CPU);
    tp_status st = TP_OK;
    if (!r->rtpl || !r->ctx) st = tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    if (st == TP_OK) st = tp_label_set_build(r->rcv, &cfg->info, &r->ls, err);
    if (st != TP_OK) {
        tp_relay_free(r);
        return st;
    }
    *out = r;
    return TP_OK;
}

tp_ctx *tp_relay_ctx(tp_relay *r) {
    return r->ctx;
}

const char *tp_relay_receiver_template(const tp_relay *r) {
    return r->rtpl;
}

int tp_relay_last_summaries(const tp_relay *r, const char *const **out) {
    *out = (const char *const *)r->sum;
    return r->n_sum;
}

const char *tp_relay_summary_of(const tp_relay *r, const tp_example *x) {
    for (int i = r->n_log - 1; i >= 0; i--)
        if (r->log_x[i] == x) return r->log_s[i];
    return NULL;
}

int tp_relay_latency(const tp_relay *r, double *mean_ms, double *std_ms, int *max_batch) {
    int n = r->n_batches;
    *mean_ms = n ? r->ms_sum / n : NAN;
    *std_ms = n > 1 ? sqrt(fmax(0.0, (r->ms_sq - r->ms_sum * r->ms_sum / n) / (n - 1))) : NAN;
    *max_batch = r->max_batch;
    return n;
}

static const char *output_cb(void *user, const tp_example *x) {
    return tp_relay_summary_of(user, x);
}

/* Keeps (x, summary) for the prediction rows; a row summarised again replaces its entry. */
static tp_status log_summary(tp_relay *r, const tp_example *x, const char *sum, tp_err *err) {
    char *copy = tp_strdup(sum);
    if (!copy) return tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    for (int i = r->n_log - 1; i >= 0; i--)
        if (r->log_x[i] == x) {
            free(r->log_s[i]);
            r->log_s[i] = copy;
            return TP_OK;
        }
    if (r->n_log == r->cap_log) {
        int nc = r->cap_log ? 2 * r->cap_log : 64;
        const tp_example **nx = realloc(r->log_x, (size_t)nc * sizeof *nx);
        if (nx) r->log_x = nx;
        char **ns = realloc(r->log_s, (size_t)nc * sizeof *ns);
        if (ns) r->log_s = ns;
        if (!nx || !ns) {
            free(copy);
            return tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
        }
        r->cap_log = nc;
    }
    r->log_x[r->n_log] = x;
    r->log_s[r->n_log++] = copy;
    return TP_OK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* Trims surrounding white space in place. */
static void trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
}

/* Greedy summaries of rows[0..B) by the sender into r->sum. */
static tp_status summarise(tp_relay *r, const tp_example *const *rows, int B, tp_err *err) {
    free_summaries(r);
    r->sum = calloc((size_t)B, sizeof *r->sum);
    if (!r->sum) return tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    r->n_sum = B;
    char **texts = calloc((size_t)B, sizeof *texts);
    tp_status st = texts ? TP_OK : tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    for (int i = 0; i < B && st == TP_OK; i++) {
        texts[i] = tp_fill_template(r->cfg->bopts.sender_prompt, rows[i]->text);
        if (!texts[i]) st = tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    }
    tp_tok_batch tb = {0};
    /* the sender reads the whole example, never less than a bridge's sender would */
    if (st == TP_OK)
        st = tp_tok_batch_build(r->snd->tok, (const char *const *)texts, B, r->cfg->sender_bos,
                                INT_MAX / 2, 1, 0, &tb, err);
    for (int i = 0; texts && i < B; i++) free(texts[i]);
    free(texts);
    if (st != TP_OK) return tp_err_prefix(err, "text_relay sender prompt");
    int32_t *mask = malloc((size_t)tb.B * tb.T * sizeof *mask);
    if (!mask) {
        tp_tok_batch_free(&tb);
        return tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    }
    for (size_t i = 0; i < (size_t)tb.B * tb.T; i++) mask[i] = tb.mask[i] > 0.5f;
    tp_gen_cfg g = tp_gen_defaults(r->snd);
    g.max_new_tokens = r->cfg->bopts.summary_tokens;
    g.greedy = 1;
    tp_gen_in in = {.batch = tb.B, .len = tb.T, .ids = tb.ids, .embeds = NULL, .mask = mask};
    tp_gen_out go = {0};
    double t0 = now_ms();
    st = tp_generate(r->snd, &in, &g, &go, err);
    double ms = now_ms() - t0;
    r->ms_sum += ms;
    r->ms_sq += ms * ms;
    r->n_batches++;
    if (B > r->max_batch) r->max_batch = B;
    free(mask);
    tp_tok_batch_free(&tb);
    if (st != TP_OK) return tp_err_prefix(err, "text_relay sender generation");
    for (int b = 0; b < B && st == TP_OK; b++) {
        st = tp_tokenizer_decode(r->snd->tok, go.tokens + (size_t)b * go.max_new, go.n_tokens[b], 1,
                                 &r->sum[b], err);
        if (st == TP_OK) trim(r->sum[b]);
        if (st == TP_OK) st = log_summary(r, rows[b], r->sum[b], err);
    }
    tp_gen_out_free(&go);
    return st;
}

static tp_status prefix_relay(void *user, tp_ctx *ctx, const tp_example *const *rows, int B,
                              tp_prefix *out, tp_err *err) {
    tp_relay *r = user;
    TP_TRY(summarise(r, rows, B, err));
    char **texts = calloc((size_t)B, sizeof *texts);
    tp_status st = texts ? TP_OK : tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    for (int i = 0; i < B && st == TP_OK; i++) {
        texts[i] = tp_fill_template(r->rtpl, r->sum[i]);
        if (!texts[i]) st = tp_errf(err, TP_ENOMEM, "text_relay: out of memory");
    }
    tp_tok_batch tb = {0};
    if (st == TP_OK)
        st = tp_tok_batch_build(r->rcv->tok, (const char *const *)texts, B, r->cfg->sender_bos,
                                INT_MAX / 2, 1, 0, &tb, err);
    for (int i = 0; texts && i < B; i++) free(texts[i]);
    free(texts);
    if (st != TP_OK) return tp_err_prefix(err, "text_relay receiver prompt");
    st = tp_prefix_ids(r->rcv, ctx, tb.B, tb.T, tb.ids, tb.mask, out, err);
    tp_tok_batch_free(&tb);
    return st;
}

void tp_relay_scorer(tp_relay *r, tp_scorer *s) {
    memset(s, 0, sizeof *s);
    s->m = r->rcv;
    s->ls = &r->ls;
    s->info = &r->cfg->info;
    s->scoring = r->cfg->scoring;
    s->max_new_tokens = r->cfg->max_new_tokens;
    s->batch = r->cfg->eval_batch;
    s->max_len = r->cfg->max_receiver_len;
    s->prefix = prefix_relay;
    s->user = r;
    s->output = output_cb;
}
