/* strutil.h — small string helpers the harness needs everywhere: bounded copies, a growable
 * buffer, trimming, and the Levenshtein distance behind every "did you mean ...?". */
#ifndef TP_UTIL_STRUTIL_H
#define TP_UTIL_STRUTIL_H

#include <stdarg.h>
#include <stddef.h>

#include "telepathy/status.h"

/* Copies src into dst (cap bytes, always NUL-terminated); returns strlen(src) so truncation is
 * visible as a result >= cap. */
size_t tp_strlcpy(char *dst, const char *src, size_t cap);
int tp_str_starts_with(const char *s, const char *prefix);
int tp_str_ends_with(const char *s, const char *suffix);
/* Trims ASCII whitespace in place; returns s advanced past leading whitespace. */
char *tp_str_trim(char *s);
/* malloc'd copy of s (NULL in, NULL out). */
char *tp_strdup(const char *s);

/* Edit distance (insert, delete, substitute all cost 1). Returns -1 if allocation fails. */
int tp_levenshtein(const char *a, const char *b);
/* The candidate closest to word, if close enough to be a plausible typo (distance <= max(1,
 * len/3), or a case-insensitive match); NULL otherwise. */
const char *tp_suggest(const char *word, const char *const *candidates, int n);

/* Growable NUL-terminated string. A failed allocation makes the buffer sticky-failed
 * (oom = 1), so callers check once at the end. */
typedef struct tp_strbuf {
    char *s;
    size_t len, cap;
    int oom;
} tp_strbuf;

void tp_strbuf_init(tp_strbuf *b);
void tp_strbuf_free(tp_strbuf *b);
void tp_strbuf_append(tp_strbuf *b, const char *s);
void tp_strbuf_appendn(tp_strbuf *b, const char *s, size_t n);
void tp_strbuf_printf(tp_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tp_strbuf_vprintf(tp_strbuf *b, const char *fmt, va_list ap);
/* Hands the string to the caller (malloc'd, never NULL unless oom) and resets the buffer. */
char *tp_strbuf_take(tp_strbuf *b);

/* Joins names as "a, b, c" into buf (truncated with "..." if it does not fit). */
const char *tp_str_join_list(char *buf, size_t cap, const char *const *names, int n);

#endif
