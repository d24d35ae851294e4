/* strutil.c — string helpers and the Levenshtein "did you mean" suggester. */
#include "util/strutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t tp_strlcpy(char *dst, const char *src, size_t cap) {
    size_t n = strlen(src);
    if (cap) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(dst, src, k);
        dst[k] = 0;
    }
    return n;
}

int tp_str_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int tp_str_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

char *tp_str_trim(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

char *tp_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int tp_levenshtein(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    /* two rows of the DP table are enough */
    int *prev = malloc((m + 1) * sizeof *prev), *cur = malloc((m + 1) * sizeof *cur);
    if (!prev || !cur) {
        free(prev);
        free(cur);
        return -1;
    }
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int best = sub < del ? sub : del;
            cur[j] = best < ins ? best : ins;
        }
        int *t = prev;
        prev = cur;
        cur = t;
    }
    int d = prev[m];
    free(prev);
    free(cur);
    return d;
}

const char *tp_suggest(const char *word, const char *const *candidates, int n) {
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < n; i++) {
        if (!candidates[i]) continue;
        if (strcasecmp(word, candidates[i]) == 0) return candidates[i];
        int d = tp_levenshtein(word, candidates[i]);
        if (d >= 0 && d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    if (!best) return NULL;
    int len = (int)strlen(word);
    int limit = len / 3 > 1 ? len / 3 : 1;
    /* a prefix of a longer name ("perc" for "perceiver") is also a useful hint */
    if (best_d <= limit) return best;
    for (int i = 0; i < n; i++)
        if (candidates[i] && len >= 3 && tp_str_starts_with(candidates[i], word))
            return candidates[i];
    return NULL;
}

void tp_strbuf_init(tp_strbuf *b) {
    memset(b, 0, sizeof *b);
}

void tp_strbuf_free(tp_strbuf *b) {
    free(b->s);
    tp_strbuf_init(b);
}

static int strbuf_reserve(tp_strbuf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return 0;
    }
    b->s = s;
    b->cap = cap;
    return 1;
}

void tp_strbuf_appendn(tp_strbuf *b, const char *s, size_t n) {
    if (!strbuf_reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void tp_strbuf_append(tp_strbuf *b, const char *s) {
    tp_strbuf_appendn(b, s, strlen(s));
}

void tp_strbuf_vprintf(tp_strbuf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (!strbuf_reserve(b, (size_t)n)) return;
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void tp_strbuf_printf(tp_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tp_strbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *tp_strbuf_take(tp_strbuf *b) {
    if (b->oom) {
        tp_strbuf_free(b);
        return NULL;
    }
    if (!b->s && !strbuf_reserve(b, 0)) return NULL;
    if (b->len == 0) b->s[0] = 0;
    char *s = b->s;
    tp_strbuf_init(b);
    return s;
}

const char *tp_str_join_list(char *buf, size_t cap, const char *const *names, int n) {
    if (!cap) return buf;
    buf[0] = 0;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        const char *sep = i ? ", " : "";
        size_t need = strlen(sep) + strlen(names[i]);
        if (used + need + 4 >= cap) {
            if (used + 4 < cap) memcpy(buf + used, "...", 4);
            break;
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", sep, names[i]);
    }
    return buf;
}
