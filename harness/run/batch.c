/* batch.c — prompt templates and padded token batches (see batch.h). */
#include "run/batch.h"

#include <stdlib.h>
#include <string.h>

/* Length in bytes of the first n code points of s (Python's s[:n] on UTF-8 text). */
static size_t utf8_prefix(const char *s, size_t len, long n) {
    size_t i = 0;
    for (long k = 0; k < n && i < len; k++) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

/* Placeholder at p: "{text}" (limit -1) or "{text[:N]}"; returns its length, 0 if none. */
static size_t placeholder(const char *p, long *limit) {
    if (strncmp(p, "{text", 5) != 0) return 0;
    if (p[5] == '}') {
        *limit = -1;
        return 6;
    }
    if (strncmp(p + 5, "[:", 2) != 0) return 0;
    char *end;
    long n = strtol(p + 7, &end, 10);
    if (end == p + 7 || n < 0 || end[0] != ']' || end[1] != '}') return 0;
    *limit = n;
    return (size_t)(end + 2 - p);
}

char *tp_fill_template(const char *tpl, const char *text) {
    size_t tl = strlen(text), cap = strlen(tpl) + 1;
    long lim;
    for (const char *p = tpl; *p; p++)
        if (placeholder(p, &lim)) cap += tl;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *p = tpl; *p;) {
        size_t n = placeholder(p, &lim);
        if (!n) {
            *o++ = *p++;
            continue;
        }
        size_t k = lim < 0 ? tl : utf8_prefix(text, tl, lim);
        memcpy(o, text, k);
        o += k;
        p += n;
    }
    *o = 0;
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
