/* unicode_nfc.c — NFC as UAX #15 defines it: decompose canonically (recursively, Hangul
 * algorithmically), put combining marks in canonical order (stable by combining class), then
 * compose each mark with the last starter unless a mark of the same or higher class sits
 * between them. Text below U+0300 is returned unchanged without decoding (nothing there
 * decomposes or composes). */
#include "model/unicode_nfc.h"

#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7 };
enum { LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = tp_nfc_ccc_n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (tp_nfc_ccc_table[m].cp == cp) return tp_nfc_ccc_table[m].ccc;
        if (tp_nfc_ccc_table[m].cp < cp)
            lo = m + 1;
        else
            hi = m - 1;
    }
    return 0;
}

static const tp_nfc_dec *dec_of(uint32_t cp) {
    if (cp < 0xC0) return NULL;
    int lo = 0, hi = tp_nfc_dec_n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (tp_nfc_dec_table[m].cp == cp) return &tp_nfc_dec_table[m];
        if (tp_nfc_dec_table[m].cp < cp)
            lo = m + 1;
        else
            hi = m - 1;
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = tp_nfc_comp_n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        const tp_nfc_comp *c = &tp_nfc_comp_table[m];
        if (c->a == a && c->b == b) return c->c;
        if (c->a < a || (c->a == a && c->b < b))
            lo = m + 1;
        else
            hi = m - 1;
    }
    return 0;
}

typedef struct cps {
    uint32_t *v;
    size_t n, cap;
} cps;

static int push(cps *c, uint32_t cp) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint32_t *v = realloc(c->v, cap * sizeof *v);
        if (!v) return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return 0;
}

static int decompose(cps *c, uint32_t cp) {
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        if (push(c, LBASE + s / NCOUNT) || push(c, VBASE + (s % NCOUNT) / TCOUNT)) return -1;
        if (s % TCOUNT) return push(c, TBASE + s % TCOUNT);
        return 0;
    }
    const tp_nfc_dec *d = dec_of(cp);
    if (!d) return push(c, cp);
    if (decompose(c, d->a)) return -1;
    return d->b ? decompose(c, d->b) : 0;
}

tp_status tp_unicode_nfc(const char *s, size_t n, char **out, size_t *out_n, tp_err *err) {
    int simple = 1;
    for (size_t i = 0; i < n && simple; i++) {
        unsigned char c = (unsigned char)s[i];
        /* lead bytes C0..CB start code points below U+0300 */
        if (c >= 0xCC) simple = 0;
    }
    if (simple) {
        char *d = malloc(n + 1);
        if (!d) return tp_errf(err, TP_ENOMEM, "NFC: out of memory");
        memcpy(d, s, n);
        d[n] = 0;
        *out = d;
        *out_n = n;
        return TP_OK;
    }
    cps c = {0};
    int oom = 0;
    for (size_t i = 0; i < n && !oom;) {
        uint32_t cp;
        int l = tp_tok_utf8_next((const unsigned char *)s, n, i, &cp);
        if (!l) {
            free(c.v);
            return tp_errf(err, TP_EINVAL, "NFC: invalid UTF-8 at byte %zu", i);
        }
        oom |= decompose(&c, cp);
        i += (size_t)l;
    }
    if (oom) {
        free(c.v);
        return tp_errf(err, TP_ENOMEM, "NFC: out of memory");
    }
    /* canonical ordering: stable insertion sort inside each run of non-starters */
    for (size_t i = 1; i < c.n; i++) {
        int ci = ccc_of(c.v[i]);
        if (!ci) continue;
        size_t j = i;
        uint32_t v = c.v[i];
        while (j > 0) {
            int cj = ccc_of(c.v[j - 1]);
            if (cj <= ci) break;
            c.v[j] = c.v[j - 1];
            j--;
        }
        c.v[j] = v;
    }
    /* canonical composition */
    if (c.n) {
        size_t starter = 0, w = 1;
        int last = ccc_of(c.v[0]) ? 256 : 0;
        for (size_t i = 1; i < c.n; i++) {
            uint32_t ch = c.v[i];
            int cc = ccc_of(ch);
            uint32_t comp = compose(c.v[starter], ch);
            if (comp && (last < cc || last == 0)) {
                c.v[starter] = comp;
                continue;
            }
            if (cc == 0) starter = w;
            last = cc;
            c.v[w++] = ch;
        }
        c.n = w;
    }
    char *d = malloc(c.n * 4 + 1);
    if (!d) {
        free(c.v);
        return tp_errf(err, TP_ENOMEM, "NFC: out of memory");
    }
    size_t o = 0;
    for (size_t i = 0; i < c.n; i++) o += (size_t)tp_tok_utf8_put(c.v[i], d + o);
    d[o] = 0;
    free(c.v);
    *out = d;
    *out_n = o;
    return TP_OK;
}
