/* tokenizer_pretok.c — normalizers and pre-tokenizers: the steps between the added-token split
 * and the BPE model. The Split regex is compiled with PCRE2 (UTF + UCP) after rewriting \s and
 * \S to the Unicode White_Space set, because that is what HF's oniguruma matches (PCRE2's \s
 * would also take U+180E). ByteLevel maps each byte to its GPT-2 char; Metaspace turns spaces
 * into ▁ and optionally splits before each ▁. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"
#include "model/unicode_nfc.h"

#define WS_SET                                                                                     \
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}" \
    "\\x{3000}"

tp_status tp_tok_compile_regex(tp_tokenizer *t, const char *pattern, const char *where,
                               tp_err *err) {
    if (t->n_re >= 4)
        return tp_errf(err, TP_EUNSUP, "%s: field '%s': more than 4 Split regexes", t->path, where);
    size_t n = strlen(pattern);
    char *p = malloc(n * 40 + 1);
    if (!p) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    size_t o = 0;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < n) {
            char d = pattern[i + 1];
            if (d == 's') {
                o += (size_t)sprintf(p + o, in_class ? "%s" : "[%s]", WS_SET);
            } else if (d == 'S' && !in_class) {
                o += (size_t)sprintf(p + o, "[^%s]", WS_SET);
            } else {
                p[o++] = c;
                p[o++] = d;
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            p[o++] = c;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pattern[i + 1] == '^') p[o++] = pattern[++i];
            if (i + 1 < n && pattern[i + 1] == ']') p[o++] = pattern[++i];
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        p[o++] = c;
    }
    p[o] = 0;
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)p, o, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &ec, &eo, NULL);
    free(p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return tp_errf(err, TP_EFORMAT, "%s: field '%s': bad regex: %s", t->path, where,
                       (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if no JIT */
    t->re[t->n_re++] = re;
    return TP_OK;
}

/* ---- normalizers ------------------------------------------------------------------------ */

typedef struct buf {
    char *s;
    size_t n, cap;
} buf;

static int buf_put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *v = realloc(b->s, cap);
        if (!v) return -1;
        b->s = v;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return 0;
}

static tp_status norm_one(const tp_tokenizer *t, const tp_tok_norm *nm, const char *s, size_t n,
                          buf *o, tp_err *err) {
    int oom = 0;
    switch (nm->type) {
    case TP_NORM_PREPEND:
        if (n) oom |= buf_put(o, nm->arg, (size_t)nm->arg_len);
        oom |= buf_put(o, s, n);
        break;
    case TP_NORM_REPLACE: {
        size_t i = 0, pl = (size_t)nm->arg_len;
        while (i < n) {
            if (i + pl <= n && memcmp(s + i, nm->arg, pl) == 0) {
                oom |= buf_put(o, nm->arg2, (size_t)nm->arg2_len);
                i += pl;
            } else {
                oom |= buf_put(o, s + i, 1);
                i++;
            }
        }
        oom |= buf_put(o, "", 0);
        break;
    }
    case TP_NORM_SPM_WS: { /* sentencepiece remove_extra_whitespaces: trim + squeeze ' ' */
        size_t i = 0;
        while (i < n && s[i] == ' ') i++;
        size_t e = n;
        while (e > i && s[e - 1] == ' ') e--;
        for (; i < e; i++)
            if (!(s[i] == ' ' && s[i + 1] == ' ')) oom |= buf_put(o, s + i, 1);
        oom |= buf_put(o, "", 0);
        break;
    }
    case TP_NORM_NFC: {
        char *d;
        size_t dn;
        TP_TRY(tp_unicode_nfc(s, n, &d, &dn, err));
        oom |= buf_put(o, d, dn);
        free(d);
        break;
    }
    default:
        return tp_errf(err, TP_ESTATE, "tokenizer: unknown normalizer %d", nm->type);
    }
    return oom ? tp_errf(err, TP_ENOMEM, "tokenizer: out of memory") : TP_OK;
}

tp_status tp_tok_normalize(const tp_tokenizer *t, const char *s, size_t n, char **out,
                           size_t *out_n, tp_err *err) {
    buf cur = {0};
    if (buf_put(&cur, s, n)) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    for (int i = 0; i < t->n_norm; i++) {
        buf nx = {0};
        tp_status st = norm_one(t, &t->norm[i], cur.s, cur.n, &nx, err);
        free(cur.s);
        if (st != TP_OK) {
            free(nx.s);
            return st;
        }
        cur = nx;
        if (!cur.s && buf_put(&cur, "", 0)) return tp_errf(err, TP_ENOMEM, "out of memory");
    }
    *out = cur.s;
    *out_n = cur.n;
    return TP_OK;
}

/* ---- pre-tokenizers --------------------------------------------------------------------- */

typedef struct span {
    size_t off, len;
} span;

typedef struct spans {
    span *v;
    int n, cap;
} spans;

static int spans_push(spans *s, size_t off, size_t len) {
    if (len == 0) return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        span *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (span){off, len};
    return 0;
}

/* Split(regex, Isolated): matches and the gaps between them are pieces. Each piece is matched
 * as its own subject, as HF does, so look-arounds stop at the piece's ends. */
static tp_status regex_split(const tp_tokenizer *t, pcre2_code *re, pcre2_match_data *md,
                             const char *s, const spans *in, spans *out, tp_err *err) {
    for (int k = 0; k < in->n; k++) {
        const char *p = s + in->v[k].off;
        size_t n = in->v[k].len, start = 0, base = in->v[k].off;
        int oom = 0;
        while (start < n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)p, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return tp_errf(err, TP_EFORMAT, "%s: regex match failed: %s", t->path,
                               (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: not a piece; move on one character */
                size_t step = 1;
                while (ms + step < n && ((unsigned char)p[ms + step] & 0xC0) == 0x80) step++;
                oom |= spans_push(out, base + start, ms + step - start);
                start = ms + step;
                continue;
            }
            oom |= spans_push(out, base + start, ms - start);
            oom |= spans_push(out, base + ms, me - ms);
            start = me;
        }
        oom |= spans_push(out, base + start, n - start);
        if (oom) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    }
    return TP_OK;
}

tp_status tp_tok_pretokenize(const tp_tokenizer *t, const char *s, size_t n, int first,
                             pcre2_match_data *md, tp_tok_piece_fn fn, void *ctx, tp_err *err) {
    if (n == 0) return TP_OK;
    buf seg = {0};
    tp_status st = TP_OK;
    spans a = {0}, b = {0};
    buf w = {0};
    int oom = 0;
    if (t->pre == TP_PRE_BYTELEVEL && t->bl_add_prefix_space && (n == 0 || s[0] != ' '))
        oom |= buf_put(&seg, " ", 1);
    if (t->pre == TP_PRE_METASPACE) {
        int starts =
            n >= (size_t)t->ms_repl_len && memcmp(s, t->ms_repl, (size_t)t->ms_repl_len) == 0;
        if (!starts && n > 0 && s[0] == ' ') starts = 1; /* the space becomes ▁ below */
        if (!starts &&
            (t->ms_prepend == TP_PREPEND_ALWAYS || (t->ms_prepend == TP_PREPEND_FIRST && first)))
            oom |= buf_put(&seg, t->ms_repl, (size_t)t->ms_repl_len);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ')
                oom |= buf_put(&seg, t->ms_repl, (size_t)t->ms_repl_len);
            else
                oom |= buf_put(&seg, s + i, 1);
        }
    } else {
        oom |= buf_put(&seg, s, n);
    }
    if (oom) {
        st = tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
        goto out;
    }
    if (spans_push(&a, 0, seg.n)) {
        st = tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
        goto out;
    }
    for (int r = 0; r < t->n_re; r++) {
        b.n = 0;
        if ((st = regex_split(t, t->re[r], md, seg.s, &a, &b, err)) != TP_OK) goto out;
        spans tmp = a;
        a = b;
        b = tmp;
    }
    if (t->pre == TP_PRE_METASPACE && t->ms_split) { /* split before each ▁ (MergedWithNext) */
        b.n = 0;
        for (int k = 0; k < a.n; k++) {
            size_t st0 = a.v[k].off, e = a.v[k].off + a.v[k].len, cur = st0;
            for (size_t i = st0 + 1; i + (size_t)t->ms_repl_len <= e; i++) {
                if (memcmp(seg.s + i, t->ms_repl, (size_t)t->ms_repl_len) == 0) {
                    oom |= spans_push(&b, cur, i - cur);
                    cur = i;
                }
            }
            oom |= spans_push(&b, cur, e - cur);
        }
        spans tmp = a;
        a = b;
        b = tmp;
    }
    if (t->spm_word_split && !(t->pre == TP_PRE_METASPACE && t->ms_split)) {
        /* cut before a ▁ that follows a non-▁ character (exact: see spm_word_split) */
        const char *R = "\xe2\x96\x81";
        size_t RL = 3;
        b.n = 0;
        for (int k = 0; k < a.n; k++) {
            size_t st0 = a.v[k].off, e = st0 + a.v[k].len, cur = st0;
            for (size_t i = st0 + 1; i + RL <= e; i++) {
                if (memcmp(seg.s + i, R, RL) != 0) continue;
                if (i >= st0 + RL && memcmp(seg.s + i - RL, R, RL) == 0) continue;
                oom |= spans_push(&b, cur, i - cur);
                cur = i;
            }
            oom |= spans_push(&b, cur, e - cur);
        }
        spans tmp = a;
        a = b;
        b = tmp;
    }
    for (int k = 0; k < a.n && st == TP_OK && !oom; k++) {
        const char *p = seg.s + a.v[k].off;
        size_t len = a.v[k].len;
        if (t->pre == TP_PRE_BYTELEVEL) {
            w.n = 0;
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)p[i];
                oom |= buf_put(&w, t->bl_map[c], t->bl_len[c]);
            }
            if (!oom) st = fn(ctx, w.s, w.n, err);
        } else {
            st = fn(ctx, p, len, err);
        }
    }
    if (oom && st == TP_OK) st = tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
out:
    free(seg.s);
    free(w.s);
    free(a.v);
    free(b.v);
    return st;
}

typedef struct bpe_ctx {
    const tp_tokenizer *t;
    tp_tok_ids *out;
} bpe_ctx;

static tp_status bpe_piece(void *vc, const char *w, size_t n, tp_err *err) {
    bpe_ctx *c = vc;
    return tp_tok_bpe_word(c->t, w, n, c->out, err);
}

tp_status tp_tok_encode_segment(const tp_tokenizer *t, const char *s, size_t n, int first,
                                pcre2_match_data *md, tp_tok_ids *out, tp_err *err) {
    bpe_ctx c = {t, out};
    return tp_tok_pretokenize(t, s, n, first, md, bpe_piece, &c, err);
}
