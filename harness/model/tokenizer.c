/* tokenizer.c — the public tokenizer API: load (dispatch on file type), the encode pipeline
 * (added-token split -> normalize -> pre-tokenize -> BPE -> template) and decode (decoder
 * chain), plus the id tables shared by both loaders. HF `tokenizers` is the reference for every
 * step; comments name the HF behaviour being mirrored where it is not obvious. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/tokenizer_internal.h"
#include "util/fsutil.h"

tp_status tp_tok_alloc_ids(tp_tokenizer *t, int n_ids, tp_err *err) {
    t->n_ids = n_ids;
    t->piece = calloc((size_t)n_ids, sizeof *t->piece);
    t->piece_len = calloc((size_t)n_ids, sizeof *t->piece_len);
    t->is_special = calloc((size_t)n_ids, 1);
    t->is_added = calloc((size_t)n_ids, 1);
    if (!t->piece || !t->piece_len || !t->is_special || !t->is_added)
        return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory for %d ids", n_ids);
    return TP_OK;
}

tp_status tp_tok_set_piece(tp_tokenizer *t, int id, const char *s, size_t len, tp_err *err) {
    if (id < 0 || id >= t->n_ids)
        return tp_errf(err, TP_ERANGE, "%s: id %d out of range", t->path, id);
    if (t->piece[id] && (size_t)t->piece_len[id] == len && memcmp(t->piece[id], s, len) == 0)
        return TP_OK;
    char *d = malloc(len + 1);
    if (!d) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    memcpy(d, s, len);
    d[len] = 0;
    free(t->piece[id]);
    t->piece[id] = d;
    t->piece_len[id] = (int32_t)len;
    return TP_OK;
}

tp_status tp_tok_build_vocab(tp_tokenizer *t, const char *const *keys, const uint32_t *lens,
                             const int32_t *ids, int n_keys, tp_err *err) {
    size_t total = 1;
    for (int i = 0; i < n_keys; i++) total += lens[i];
    t->vocab_blob = malloc(total);
    if (!t->vocab_blob) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    TP_TRY(tp_tok_strmap_init(&t->vocab, (uint32_t)n_keys, err));
    size_t o = 0;
    for (int i = 0; i < n_keys; i++) {
        memcpy(t->vocab_blob + o, keys[i], lens[i]);
        tp_tok_strmap_put(&t->vocab, t->vocab_blob + o, lens[i], ids[i]);
        o += lens[i];
    }
    t->n_vocab = n_keys;
    /* byte fallback pieces, and the byte-level alphabet */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = tp_tok_strmap_get(&t->vocab, name, 6);
        uint32_t cp = tp_tok_byte_to_cp((unsigned)b);
        t->bl_len[b] = (uint8_t)tp_tok_utf8_put(cp, t->bl_map[b]);
        t->char_ids[b] = tp_tok_strmap_get(&t->vocab, t->bl_map[b], t->bl_len[b]);
    }
    return TP_OK;
}

static int added_cmp_ctx_first(const tp_tokenizer *t, int a, int b) {
    const tp_tok_added *x = &t->added[a], *y = &t->added[b];
    unsigned fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
    return a < b ? -1 : a > b;
}

tp_status tp_tok_index_added(tp_tokenizer *t, tp_err *err) {
    t->added_order = malloc((size_t)(t->n_added ? t->n_added : 1) * sizeof *t->added_order);
    if (!t->added_order) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    for (int i = 0; i < t->n_added; i++) t->added_order[i] = i;
    /* insertion sort: a few hundred entries at most, and it needs no qsort context */
    for (int i = 1; i < t->n_added; i++) {
        int v = t->added_order[i], j = i - 1;
        while (j >= 0 && added_cmp_ctx_first(t, t->added_order[j], v) > 0) {
            t->added_order[j + 1] = t->added_order[j];
            j--;
        }
        t->added_order[j + 1] = v;
    }
    int k = 0;
    for (int b = 0; b < 256; b++) {
        t->added_by_first[b] = k;
        while (k < t->n_added && (unsigned char)t->added[t->added_order[k]].content[0] == b) k++;
    }
    t->added_by_first[256] = k;
    TP_TRY(tp_tok_strmap_init(&t->added_map, (uint32_t)t->n_added, err));
    for (int i = 0; i < t->n_added; i++)
        tp_tok_strmap_put(&t->added_map, t->added[i].content, (uint32_t)t->added[i].len, i);
    return TP_OK;
}

/* ---- load / free ------------------------------------------------------------------------ */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int looks_like_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c;
    while ((c = fgetc(f)) != EOF && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
    }
    fclose(f);
    return c == '{';
}

tp_status tp_tokenizer_load(tp_tokenizer **out, const char *path, tp_err *err) {
    return tp_tokenizer_load_opts(out, path, NULL, err);
}

tp_status tp_tokenizer_load_opts(tp_tokenizer **out, const char *path,
                                 const tp_tokenizer_opts *opts, tp_err *err) {
    *out = NULL;
    tp_spm_mode mode = opts ? opts->spm_mode : TP_SPM_SENTENCEPIECE;
    if (mode != TP_SPM_SENTENCEPIECE && mode != TP_SPM_TRANSFORMERS5)
        return tp_errf(err, TP_EINVAL, "tokenizer: unknown spm_mode %d", (int)mode);
    if (!path || !*path) return tp_errf(err, TP_EINVAL, "tokenizer: empty path");
    char file[1024];
    if (is_dir(path)) {
        snprintf(file, sizeof file, "%s/tokenizer.json", path);
        if (!tp_file_exists(file)) snprintf(file, sizeof file, "%s/tokenizer.model", path);
        if (!tp_file_exists(file))
            return tp_errf(err, TP_EIO,
                           "%s: no tokenizer.json or tokenizer.model in this directory (expected "
                           "a Hugging Face model directory)",
                           path);
    } else {
        if (strlen(path) >= sizeof file) return tp_errf(err, TP_EINVAL, "tokenizer: path too long");
        strcpy(file, path);
        struct stat st;
        if (stat(file, &st) != 0)
            return tp_errf(err, TP_EIO,
                           "%s: no such file (expected a tokenizer.json, a "
                           "SentencePiece tokenizer.model or a model directory)",
                           file);
    }
    tp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    snprintf(t->path, sizeof t->path, "%s", file);
    t->bos_id = t->eos_id = t->pad_id = t->unk_id = -1;
    t->tmpl_bos = t->tmpl_eos = -1;
    for (int b = 0; b < 256; b++) t->byte_ids[b] = t->char_ids[b] = -1;
    tp_status st = looks_like_json(file) ? tp_tok_load_json(t, file, err)
                                         : tp_tok_load_spm(t, file, mode, err);
    if (st == TP_OK && t->kind == TP_TOK_KIND_BYTELEVEL) {
        for (int b = 0; b < 256 && st == TP_OK; b++)
            if (t->char_ids[b] < 0 && !t->ignore_merges && t->unk_id < 0)
                st = tp_errf(err, TP_EFORMAT,
                             "%s: byte-level vocab lacks the piece for byte 0x%02X (\"%s\"); "
                             "expected all 256 GPT-2 byte characters",
                             file, b, t->bl_map[b]);
    }
    if (st == TP_OK && t->kind == TP_TOK_KIND_SPM && t->n_re == 0 &&
        (t->pre != TP_PRE_METASPACE || memcmp(t->ms_repl, "\xe2\x96\x81", 4) == 0)) {
        int safe = 1;
        for (int id = 0; id < t->n_ids && safe; id++) {
            const char *p = t->piece[id];
            int n = p ? t->piece_len[id] : 0;
            for (int k = 1; k + 3 <= n && safe; k++)
                if (memcmp(p + k, "\xe2\x96\x81", 3) == 0 &&
                    !(k >= 3 && memcmp(p + k - 3, "\xe2\x96\x81", 3) == 0))
                    safe = 0;
        }
        t->spm_word_split = safe;
    }
    if (st == TP_OK) st = tp_tok_cache_init(&t->cache, 1u << 16, err);
    if (st != TP_OK) {
        tp_tokenizer_free(t);
        return st;
    }
    *out = t;
    return TP_OK;
}

void tp_tokenizer_free(tp_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_ids; i++) free(t->piece[i]);
    free(t->piece);
    free(t->piece_len);
    free(t->is_special);
    free(t->is_added);
    tp_tok_strmap_free(&t->vocab);
    tp_tok_strmap_free(&t->added_map);
    free(t->vocab_blob);
    tp_tok_pairmap_free(&t->merges);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->added_order);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].arg), free(t->norm[i].arg2);
    free(t->norm);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    for (int i = 0; i < t->n_dec; i++) free(t->dec[i].arg), free(t->dec[i].arg2);
    free(t->dec);
    tp_tok_cache_free(&t->cache);
    free(t);
}

/* ---- encode ----------------------------------------------------------------------------- */

static int utf8_ws_at(const char *s, size_t n, size_t i, int *len) {
    uint32_t cp;
    int l = tp_tok_utf8_next((const unsigned char *)s, n, i, &cp);
    *len = l ? l : 1;
    return (cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* single_word's "word character": HF asks regex-syntax's Unicode \w; we take ASCII letters,
 * digits and '_' exactly and count every non-ASCII character as a word character (right for
 * letters and marks, wrong for non-ASCII punctuation next to a single_word token — no model we
 * load has such tokens; Llama 3 / Qwen2 / Mistral set single_word false everywhere). */
static int is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c >= 0x80;
}

/* One pass of HF's AddedVocabulary::find_matches: leftmost-longest, with lstrip / rstrip /
 * single_word. normalized selects which tokens take part in this pass. Calls emit for each text
 * gap and each token. */
typedef tp_status (*emit_fn)(void *ctx, const char *s, size_t n, size_t off, int id, tp_err *err);

static tp_status split_added(const tp_tokenizer *t, const char *s, size_t n, size_t base,
                             int normalized, emit_fn emit, void *ctx, tp_err *err) {
    size_t start_off = 0, i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int found = -1;
        for (int k = t->added_by_first[c]; k < t->added_by_first[c + 1]; k++) {
            const tp_tok_added *a = &t->added[t->added_order[k]];
            if (a->normalized != normalized) continue;
            if ((size_t)a->len <= n - i && memcmp(s + i, a->content, (size_t)a->len) == 0) {
                found = t->added_order[k];
                break;
            }
        }
        if (found < 0) {
            i++;
            continue;
        }
        const tp_tok_added *a = &t->added[found];
        size_t ms = i, me = i + (size_t)a->len;
        if (a->single_word) {
            int ok_l = ms == 0 || !is_word_byte((unsigned char)s[ms - 1]);
            int ok_r = me == n || !is_word_byte((unsigned char)s[me]);
            if (!ok_l || !ok_r) {
                i++;
                continue;
            }
        }
        if (a->lstrip) {
            size_t ns = ms;
            while (ns > start_off) {
                size_t p = ns - 1;
                while (p > start_off && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
                int l;
                if (!utf8_ws_at(s, n, p, &l)) break;
                ns = p;
            }
            ms = ns;
        }
        if (a->rstrip) {
            int l;
            while (me < n && utf8_ws_at(s, n, me, &l)) me += (size_t)l;
        }
        if (start_off < ms)
            TP_TRY(emit(ctx, s + start_off, ms - start_off, base + start_off, -1, err));
        TP_TRY(emit(ctx, s + ms, me - ms, base + ms, a->id, err));
        start_off = me;
        i = me > i + (size_t)a->len ? me : i + (size_t)a->len;
    }
    if (start_off < n) TP_TRY(emit(ctx, s + start_off, n - start_off, base + start_off, -1, err));
    return TP_OK;
}

typedef struct enc_ctx {
    const tp_tokenizer *t;
    tp_tok_ids *ids;
    pcre2_match_data *md;
    int first_done;
} enc_ctx;

static tp_status push_id(enc_ctx *c, int id, tp_err *err) {
    if (tp_tok_ids_push(c->ids, id) != TP_OK) return tp_errf(err, TP_ENOMEM, "out of memory");
    return TP_OK;
}

static tp_status emit_normalized(void *vc, const char *s, size_t n, size_t off, int id,
                                 tp_err *err) {
    enc_ctx *c = vc;
    if (id >= 0) return push_id(c, id, err);
    return tp_tok_encode_segment(c->t, s, n, off == 0, c->md, c->ids, err);
}

static tp_status emit_raw(void *vc, const char *s, size_t n, size_t off, int id, tp_err *err) {
    enc_ctx *c = vc;
    if (id >= 0) return push_id(c, id, err);
    char *ns;
    size_t nn;
    TP_TRY(tp_tok_normalize(c->t, s, n, &ns, &nn, err));
    /* tokens with normalized = true are looked for in the normalized text; the "first" flag of
     * Metaspace follows the original offset, which is 0 only for the input's first segment */
    tp_status st = split_added(c->t, ns, nn, off, 1, emit_normalized, c, err);
    free(ns);
    return st;
}

tp_status tp_tokenizer_encode(const tp_tokenizer *t, const char *text, int add_bos, int32_t **ids,
                              int *n, tp_err *err) {
    *ids = NULL;
    *n = 0;
    if (!t || !text) return tp_errf(err, TP_EINVAL, "tokenizer: NULL argument");
    size_t len = strlen(text);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = tp_tok_utf8_next((const unsigned char *)text, len, i, &cp);
        if (!l)
            return tp_errf(err, TP_EINVAL,
                           "tokenizer: input text is not valid UTF-8 at byte %zu (0x%02X)", i,
                           (unsigned char)text[i]);
        i += (size_t)l;
    }
    tp_tok_ids out = {0};
    enc_ctx c = {t, &out, NULL, 0};
    tp_status st = TP_OK;
    if (t->n_re) {
        c.md = pcre2_match_data_create_from_pattern(t->re[0], NULL);
        if (!c.md) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    }
    if (add_bos && t->add_bos) st = push_id(&c, t->tmpl_bos, err);
    if (st == TP_OK) st = split_added(t, text, len, 0, 0, emit_raw, &c, err);
    if (st == TP_OK && add_bos && t->add_eos) st = push_id(&c, t->tmpl_eos, err);
    if (c.md) pcre2_match_data_free(c.md);
    if (st != TP_OK) {
        free(out.v);
        return st;
    }
    if (!out.v) out.v = malloc(sizeof *out.v); /* callers may free() an empty result */
    if (!out.v) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    *ids = out.v;
    *n = out.n;
    return TP_OK;
}

/* ---- decode ----------------------------------------------------------------------------- */

/* A list of token strings in one buffer (decoders map lists to lists; one allocation per list
 * rather than per token keeps decode cheap). */
typedef struct tok {
    const char *s;
    size_t n;
} tok;

typedef struct toks {
    char *buf;
    size_t len, cap;
    size_t *off, *tn;
    int n, ncap;
} toks;

static tok tok_at(const toks *l, int i) {
    return (tok){l->buf + l->off[i], l->tn[i]};
}

static int toks_push(toks *l, const char *s, size_t n) {
    if (l->n == l->ncap) {
        int cap = l->ncap ? l->ncap * 2 : 16;
        size_t *o = realloc(l->off, (size_t)cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *t = realloc(l->tn, (size_t)cap * sizeof *t);
        if (!t) return -1;
        l->tn = t;
        l->ncap = cap;
    }
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        while (cap < l->len + n + 1) cap *= 2;
        char *b = realloc(l->buf, cap);
        if (!b) return -1;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, s, n);
    l->off[l->n] = l->len;
    l->tn[l->n++] = n;
    l->len += n;
    l->buf[l->len] = 0;
    return 0;
}

static void toks_free(toks *l) {
    free(l->buf);
    free(l->off);
    free(l->tn);
    memset(l, 0, sizeof *l);
}

/* Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD. */
static int lossy_utf8(const unsigned char *s, size_t n, toks *out) {
    char *d = malloc(n * 3 + 1);
    if (!d) return -1;
    size_t o = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        int l = tp_tok_utf8_next(s, n, i, &cp);
        if (l) {
            memcpy(d + o, s + i, (size_t)l);
            o += (size_t)l;
            i += (size_t)l;
            continue;
        }
        unsigned c = s[i];
        size_t k = 1;
        unsigned lo = 0x80, hi = 0xBF;
        int need = 0;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        for (int j = 0; j < need && i + k < n; j++) {
            unsigned d2 = s[i + k];
            if (j == 0 ? (d2 < lo || d2 > hi) : (d2 < 0x80 || d2 > 0xBF)) break;
            k++;
        }
        memcpy(d + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += k;
    }
    d[o] = 0;
    int r = toks_push(out, d, o);
    free(d);
    return r;
}

static int parse_byte_token(const tok *x) {
    if (x->n != 6 || memcmp(x->s, "<0x", 3) != 0 || x->s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = x->s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int replace_all(const tok *x, const char *pat, int pl, const char *rep, int rl, toks *out) {
    char *d = malloc(x->n * (size_t)(rl > pl ? rl : pl) + 1);
    if (!d) return -1;
    size_t o = 0;
    for (size_t i = 0; i < x->n;) {
        if (i + (size_t)pl <= x->n && memcmp(x->s + i, pat, (size_t)pl) == 0) {
            memcpy(d + o, rep, (size_t)rl);
            o += (size_t)rl;
            i += (size_t)pl;
        } else {
            d[o++] = x->s[i++];
        }
    }
    int r = toks_push(out, d, o);
    free(d);
    return r;
}

static int apply_decoder(const tp_tok_dec *d, toks *in, toks *out) {
    int oom = 0;
    switch (d->type) {
    case TP_DEC_BYTELEVEL: { /* fuses everything, then lossy UTF-8 */
        size_t total = 0;
        for (int i = 0; i < in->n; i++) total += in->tn[i];
        unsigned char *b = malloc(total + 1);
        if (!b) return -1;
        size_t o = 0;
        for (int i = 0; i < in->n; i++) {
            tok xv = tok_at(in, i);
            const tok *x = &xv;
            size_t o0 = o;
            int all = 1;
            for (size_t j = 0; j < x->n;) {
                uint32_t cp;
                int l = tp_tok_utf8_next((const unsigned char *)x->s, x->n, j, &cp);
                int byte = l ? tp_tok_cp_to_byte(cp) : -1;
                if (byte < 0) {
                    all = 0;
                    break;
                }
                b[o++] = (unsigned char)byte;
                j += (size_t)l;
            }
            if (!all) { /* a char outside the table: HF keeps the token's raw bytes */
                o = o0;
                memcpy(b + o, x->s, x->n);
                o += x->n;
            }
        }
        oom |= lossy_utf8(b, o, out);
        free(b);
        break;
    }
    case TP_DEC_REPLACE:
        for (int i = 0; i < in->n; i++) {
            tok xv = tok_at(in, i);
            oom |= replace_all(&xv, d->arg, d->arg_len, d->arg2, d->arg2_len, out);
        }
        break;
    case TP_DEC_BYTEFALLBACK: {
        unsigned char *pend = malloc((size_t)in->n + 1);
        if (!pend) return -1;
        int np = 0;
        for (int i = 0; i <= in->n; i++) {
            tok xv = i < in->n ? tok_at(in, i) : (tok){"", 0};
            int b = i < in->n ? parse_byte_token(&xv) : -1;
            if (b >= 0) {
                pend[np++] = (unsigned char)b;
                continue;
            }
            if (np) { /* valid UTF-8 as one string, else one U+FFFD per byte (HF) */
                int valid = 1;
                for (size_t j = 0; j < (size_t)np && valid;) {
                    uint32_t cp;
                    int l = tp_tok_utf8_next(pend, (size_t)np, j, &cp);
                    if (!l) valid = 0;
                    j += (size_t)(l ? l : 1);
                }
                if (valid)
                    oom |= toks_push(out, (const char *)pend, (size_t)np);
                else
                    for (int j = 0; j < np; j++) oom |= toks_push(out, "\xEF\xBF\xBD", 3);
                np = 0;
            }
            if (i < in->n) oom |= toks_push(out, xv.s, xv.n);
        }
        free(pend);
        break;
    }
    case TP_DEC_FUSE: {
        size_t total = 0;
        for (int i = 0; i < in->n; i++) total += in->tn[i];
        char *b = malloc(total + 1);
        if (!b) return -1;
        size_t o = 0;
        for (int i = 0; i < in->n; i++)
            memcpy(b + o, in->buf + in->off[i], in->tn[i]), o += in->tn[i];
        oom |= toks_push(out, b, o);
        free(b);
        break;
    }
    case TP_DEC_STRIP: /* per token: up to n_start leading / n_stop trailing copies of arg */
        for (int i = 0; i < in->n; i++) {
            tok xv = tok_at(in, i);
            const tok *x = &xv;
            size_t s = 0, e = x->n, L = (size_t)d->arg_len;
            for (int k = 0; k < d->n_start && s + L <= e && memcmp(x->s + s, d->arg, L) == 0; k++)
                s += L;
            for (int k = 0; k < d->n_stop && e >= s + L && memcmp(x->s + e - L, d->arg, L) == 0;
                 k++)
                e -= L;
            oom |= toks_push(out, x->s + s, e - s);
        }
        break;
    case TP_DEC_METASPACE:
        for (int i = 0; i < in->n; i++) {
            toks tmp = {0};
            tok xv = tok_at(in, i);
            oom |= replace_all(&xv, d->arg, d->arg_len, " ", 1, &tmp);
            if (tmp.n) {
                tok x0 = tok_at(&tmp, 0);
                const tok *x = &x0;
                size_t s = (i == 0 && d->prepend_first && x->n && x->s[0] == ' ') ? 1 : 0;
                oom |= toks_push(out, x->s + s, x->n - s);
            }
            toks_free(&tmp);
        }
        break;
    default:
        return -1;
    }
    return oom ? -1 : 0;
}

tp_status tp_tokenizer_decode(const tp_tokenizer *t, const int32_t *ids, int n, int skip_special,
                              char **text, tp_err *err) {
    *text = NULL;
    toks cur = {0};
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->piece[id]) {
            toks_free(&cur);
            return tp_errf(err, TP_ERANGE,
                           "%s: token id %d at position %d is not in the vocabulary (0..%d)",
                           t->path, id, i, t->n_ids - 1);
        }
        if (skip_special && t->is_special[id]) continue;
        if (toks_push(&cur, t->piece[id], (size_t)t->piece_len[id])) {
            toks_free(&cur);
            return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
        }
    }
    for (int k = 0; k < t->n_dec; k++) {
        toks nx = {0};
        if (apply_decoder(&t->dec[k], &cur, &nx)) {
            toks_free(&cur);
            toks_free(&nx);
            return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
        }
        toks_free(&cur);
        cur = nx;
    }
    /* HF joins what the decoders leave; with no decoder at all it joins with spaces */
    size_t total = 1;
    for (int i = 0; i < cur.n; i++) total += cur.tn[i] + 1;
    char *s = malloc(total);
    if (!s) {
        toks_free(&cur);
        return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    }
    size_t o = 0;
    for (int i = 0; i < cur.n; i++) {
        if (i && t->n_dec == 0) s[o++] = ' ';
        memcpy(s + o, cur.buf + cur.off[i], cur.tn[i]);
        o += cur.tn[i];
    }
    s[o] = 0;
    toks_free(&cur);
    *text = s;
    return TP_OK;
}

/* ---- accessors -------------------------------------------------------------------------- */

int tp_tokenizer_vocab_size(const tp_tokenizer *t) {
    return t ? t->n_ids : 0;
}
int tp_tokenizer_bos(const tp_tokenizer *t) {
    return t ? t->bos_id : -1;
}
int tp_tokenizer_eos(const tp_tokenizer *t) {
    return t ? t->eos_id : -1;
}
int tp_tokenizer_pad(const tp_tokenizer *t) {
    return t ? t->pad_id : -1;
}

int tp_tokenizer_token_id(const tp_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    uint32_t len = (uint32_t)strlen(piece);
    int a = tp_tok_strmap_get(&t->added_map, piece, len);
    if (a >= 0) return t->added[a].id;
    return tp_tok_strmap_get(&t->vocab, piece, len);
}

const char *tp_tokenizer_piece(const tp_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_ids) return NULL;
    return t->piece[id];
}

const char *tp_tokenizer_kind(const tp_tokenizer *t) {
    if (!t) return "";
    return t->kind == TP_TOK_KIND_BYTELEVEL ? "bpe-bytelevel" : "spm-bpe";
}
