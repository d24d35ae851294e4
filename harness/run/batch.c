/* batch.c — prompt templates and padded token batches (see batch.h). */
#include "run/batch.h"

#include <stdlib.h>
#include <string.h>

char *tp_fill_template(const char *tpl, const char *text) {
    static const char ph[] = "{text}";
    size_t tl = strlen(text), n = 0;
    for (const char *p = tpl; (p = strstr(p, ph)) != NULL; p += sizeof ph - 1) n++;
    size_t cap = strlen(tpl) + n * tl + 1;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    const char *p = tpl, *q;
    while ((q = strstr(p, ph)) != NULL) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, text, tl);
        o += tl;
        p = q + sizeof ph - 1;
    }
    strcpy(o, p);
    return out;
}

void tp_tok_batch_free(tp_tok_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->mask);
    free(b->len);
    memset(b, 0, sizeof *b);
}

tp_status tp_tok_batch_build(const tp_tokenizer *tok, const char *const *texts, int B, int add_bos,
                             int max_len, int left_pad, int pad_id, tp_tok_batch *out,
                             tp_err *err) {
    memset(out, 0, sizeof *out);
    int32_t **rows = calloc((size_t)B, sizeof *rows);
    int *lens = calloc((size_t)B, sizeof *lens);
    tp_status st = TP_OK;
    if (!rows || !lens) st = tp_errf(err, TP_ENOMEM, "tokenise: out of memory");
    int T = 1;
    for (int b = 0; b < B && st == TP_OK; b++) {
        st = tp_tokenizer_encode(tok, texts[b], add_bos, &rows[b], &lens[b], err);
        if (st != TP_OK) break;
        if (lens[b] == 0) {
            st = tp_errf(err, TP_EINVAL, "tokenise: the prompt '%.60s' gives no tokens", texts[b]);
            break;
        }
        if (lens[b] > max_len) {
            lens[b] = max_len;
            out->n_truncated++;
        }
        if (lens[b] > T) T = lens[b];
    }
    if (st == TP_OK) {
        out->B = B;
        out->T = T;
        out->ids = malloc((size_t)B * T * sizeof *out->ids);
        out->mask = calloc((size_t)B * T, sizeof *out->mask);
        out->len = lens;
        lens = NULL;
        if (!out->ids || !out->mask) st = tp_errf(err, TP_ENOMEM, "tokenise: out of memory");
    }
    for (int b = 0; b < B && st == TP_OK; b++) {
        int n = out->len[b], off = left_pad ? T - n : 0;
        for (int t = 0; t < T; t++) out->ids[(size_t)b * T + t] = pad_id;
        for (int t = 0; t < n; t++) {
            out->ids[(size_t)b * T + off + t] = rows[b][t];
            out->mask[(size_t)b * T + off + t] = 1.0f;
        }
    }
    if (rows)
        for (int b = 0; b < B; b++) free(rows[b]);
    free(rows);
    free(lens);
    if (st != TP_OK) tp_tok_batch_free(out);
    return st;
}
