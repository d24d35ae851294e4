/* tokenizer_spm_model.c — builds a tokenizer straight from a SentencePiece BPE tokenizer.model,
 * the way Hugging Face's converters turn one into a fast tokenizer. vocab = all pieces; merges =
 * every split of a piece into two pieces. TP_SPM_SENTENCEPIECE ranks them by the piece's score
 * (higher first; ids 0..2 scored 0), ties by the split's lengths (longer first) then by ids, as
 * transformers 4's LlamaConverter did: the same as sentencepiece's "merge the pair with the
 * highest score" on real text; legacy normalizer (Prepend ▁ per segment when add_dummy_prefix,
 * spaces -> ▁). TP_SPM_TRANSFORMERS5 keeps piece-id order with splits left to right and uses
 * Metaspace(prepend_scheme first), as transformers 5.17 does (checked merge for merge against
 * the tokenizer.json it wrote for Mistral v0.3). Both: byte_fallback to <0xXX>; fuse_unk;
 * control and unknown pieces matched in text as special added tokens, user-defined ones as
 * plain added tokens; decoder ▁ -> space, byte fallback, fuse, strip one leading space; BOS from
 * trainer_spec.bos_id. */
#include <stdlib.h>
#include <string.h>

#include "model/spm_proto.h"
#include "model/tokenizer_internal.h"
#include "util/fsutil.h"

typedef struct mrg {
    int32_t l, r, res;
    float score;
    int32_t len_l, len_r; /* in characters, as Python's len() */
    int32_t order;        /* position before the global sort (stability) */
} mrg;

static int mrg_cmp(const void *pa, const void *pb) {
    const mrg *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->len_l != b->len_l) return a->len_l > b->len_l ? -1 : 1;
    if (a->len_r != b->len_r) return a->len_r > b->len_r ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int local_cmp(const void *pa, const void *pb) {
    const mrg *a = pa, *b = pb;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return a->r < b->r ? -1 : a->r > b->r;
}

static int utf8_chars(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static tp_status build_merges(tp_tokenizer *t, const tp_spm_model *m, tp_spm_mode mode,
                              tp_err *err) {
    size_t cap = 1024, n = 0;
    mrg *v = malloc(cap * sizeof *v);
    if (!v) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    for (int id = 0; id < m->n_pieces; id++) {
        const char *p = t->piece[id];
        size_t len = (size_t)t->piece_len[id];
        float score = id < 3 ? 0.0f : m->pieces[id].score;
        size_t start = n;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80) continue; /* split at char boundaries */
            int l = tp_tok_strmap_get(&t->vocab, p, (uint32_t)k);
            int r = tp_tok_strmap_get(&t->vocab, p + k, (uint32_t)(len - k));
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                cap *= 2;
                mrg *nv = realloc(v, cap * sizeof *nv);
                if (!nv) {
                    free(v);
                    return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
                }
                v = nv;
            }
            v[n++] = (mrg){l, r, id, score, utf8_chars(p, k), utf8_chars(p + k, len - k), 0};
        }
        /* transformers 5: pieces in id order, each piece's splits left to right, no sort */
        if (mode == TP_SPM_SENTENCEPIECE) qsort(v + start, n - start, sizeof *v, local_cmp);
    }
    for (size_t i = 0; i < n; i++) v[i].order = (int32_t)i;
    if (mode == TP_SPM_SENTENCEPIECE) qsort(v, n, sizeof *v, mrg_cmp);
    tp_status st = tp_tok_pairmap_init(&t->merges, (uint32_t)n, err);
    if (st == TP_OK) {
        /* the vocab maps a string to its last id, so a merge result is that id (as in HF) */
        for (size_t i = 0; i < n; i++) {
            int res =
                tp_tok_strmap_get(&t->vocab, t->piece[v[i].res], (uint32_t)t->piece_len[v[i].res]);
            tp_tok_pairmap_put(&t->merges, v[i].l, v[i].r, (int32_t)i, res);
        }
        t->n_merges = (int)n;
    }
    free(v);
    return st;
}

static tp_status add_norm(tp_tokenizer *t, int type, const char *a, const char *b, tp_err *err) {
    tp_tok_norm *v = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *v);
    if (!v) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    t->norm = v;
    tp_tok_norm *d = &t->norm[t->n_norm++];
    memset(d, 0, sizeof *d);
    d->type = type;
    if (a) d->arg = strdup(a), d->arg_len = (int)strlen(a);
    if (b) d->arg2 = strdup(b), d->arg2_len = (int)strlen(b);
    if ((a && !d->arg) || (b && !d->arg2)) return tp_errf(err, TP_ENOMEM, "out of memory");
    return TP_OK;
}

static tp_status add_dec(tp_tokenizer *t, int type, const char *a, const char *b, int n_start,
                         tp_err *err) {
    tp_tok_dec *v = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *v);
    if (!v) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    t->dec = v;
    tp_tok_dec *d = &t->dec[t->n_dec++];
    memset(d, 0, sizeof *d);
    d->type = type;
    d->n_start = n_start;
    if (a) d->arg = strdup(a), d->arg_len = (int)strlen(a);
    if (b) d->arg2 = strdup(b), d->arg2_len = (int)strlen(b);
    if ((a && !d->arg) || (b && !d->arg2)) return tp_errf(err, TP_ENOMEM, "out of memory");
    return TP_OK;
}

static tp_status from_model(tp_tokenizer *t, const tp_spm_model *m, tp_spm_mode mode, tp_err *err) {
    const char *path = t->path;
    if (m->model_type != 2)
        return tp_errf(err, TP_EUNSUP,
                       "%s: trainer_spec.model_type is %d (%s): only BPE SentencePiece models "
                       "(type 2) are supported",
                       path, m->model_type,
                       m->model_type == 1   ? "unigram"
                       : m->model_type == 3 ? "word"
                                            : "char");
    if (m->charsmap_len > 0 && strcmp(m->norm_name, "identity") != 0)
        return tp_errf(err, TP_EUNSUP,
                       "%s: normalizer_spec.name is \"%s\" with a precompiled charsmap: only the "
                       "identity normalizer is supported",
                       path, m->norm_name);
    if (m->treat_ws_as_suffix)
        return tp_errf(err, TP_EUNSUP,
                       "%s: trainer_spec.treat_whitespace_as_suffix is not "
                       "supported",
                       path);
    TP_TRY(tp_tok_alloc_ids(t, m->n_pieces, err));
    const char **keys = malloc((size_t)m->n_pieces * sizeof *keys);
    uint32_t *lens = malloc((size_t)m->n_pieces * sizeof *lens);
    int32_t *ids = malloc((size_t)m->n_pieces * sizeof *ids);
    tp_status st = keys && lens && ids ? TP_OK : tp_errf(err, TP_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_pieces && st == TP_OK; i++) {
        if (m->pieces[i].len == 0 || memchr(m->pieces[i].piece, 0, m->pieces[i].len))
            st = tp_errf(err, TP_EFORMAT, "%s: pieces[%d] is empty or holds a NUL byte", path, i);
        else
            st = tp_tok_set_piece(t, i, m->pieces[i].piece, m->pieces[i].len, err);
        if (st == TP_OK) keys[i] = t->piece[i], lens[i] = m->pieces[i].len, ids[i] = i;
    }
    if (st == TP_OK) st = tp_tok_build_vocab(t, keys, lens, ids, m->n_pieces, err);
    free(keys), free(lens), free(ids);
    TP_TRY(st);
    TP_TRY(build_merges(t, m, mode, err));
    t->byte_fallback = m->byte_fallback;
    t->fuse_unk = 1;
    t->unk_id = m->unk_id >= 0 && m->unk_id < m->n_pieces ? m->unk_id : -1;

    int n_add = 0;
    for (int i = 0; i < m->n_pieces; i++) {
        int ty = m->pieces[i].type;
        n_add += ty == TP_SPM_CONTROL || ty == TP_SPM_UNKNOWN || ty == TP_SPM_USER_DEFINED;
    }
    t->added = calloc((size_t)(n_add ? n_add : 1), sizeof *t->added);
    if (!t->added) return tp_errf(err, TP_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_pieces; i++) {
        int ty = m->pieces[i].type;
        if (!(ty == TP_SPM_CONTROL || ty == TP_SPM_UNKNOWN || ty == TP_SPM_USER_DEFINED)) continue;
        tp_tok_added *a = &t->added[t->n_added++];
        a->content = strdup(t->piece[i]);
        if (!a->content) return tp_errf(err, TP_ENOMEM, "out of memory");
        a->len = t->piece_len[i];
        a->id = i;
        a->special = ty != TP_SPM_USER_DEFINED;
        t->is_added[i] = 1;
        t->is_special[i] = a->special;
    }
    TP_TRY(tp_tok_index_added(t, err));

    if (m->remove_extra_ws) TP_TRY(add_norm(t, TP_NORM_SPM_WS, NULL, NULL, err));
    if (mode == TP_SPM_TRANSFORMERS5) { /* Metaspace(▁, prepend_scheme first, split false) */
        if (!m->escape_ws)
            return tp_errf(err, TP_EUNSUP,
                           "%s: normalizer_spec.escape_whitespaces = false is not supported in "
                           "transformers5 mode",
                           path);
        t->pre = TP_PRE_METASPACE;
        memcpy(t->ms_repl, "\xe2\x96\x81", 4);
        t->ms_repl_len = 3;
        t->ms_prepend = m->add_dummy_prefix ? TP_PREPEND_FIRST : TP_PREPEND_NEVER;
        t->ms_split = 0;
    } else { /* legacy: Prepend ▁ (per segment) + Replace " " -> ▁ */
        if (m->add_dummy_prefix) TP_TRY(add_norm(t, TP_NORM_PREPEND, "\xe2\x96\x81", NULL, err));
        if (m->escape_ws) TP_TRY(add_norm(t, TP_NORM_REPLACE, " ", "\xe2\x96\x81", err));
        t->pre = TP_PRE_NONE;
    }
    TP_TRY(add_dec(t, TP_DEC_REPLACE, "\xe2\x96\x81", " ", 0, err));
    TP_TRY(add_dec(t, TP_DEC_BYTEFALLBACK, NULL, NULL, 0, err));
    TP_TRY(add_dec(t, TP_DEC_FUSE, NULL, NULL, 0, err));
    if (m->add_dummy_prefix) TP_TRY(add_dec(t, TP_DEC_STRIP, " ", NULL, 1, err));

    t->kind = TP_TOK_KIND_SPM;
    int n = m->n_pieces;
    t->bos_id = m->bos_id >= 0 && m->bos_id < n ? m->bos_id : -1;
    t->eos_id = m->eos_id >= 0 && m->eos_id < n ? m->eos_id : -1;
    t->pad_id = m->pad_id >= 0 && m->pad_id < n ? m->pad_id : -1;
    t->tmpl_bos = t->bos_id;
    t->add_bos = t->bos_id >= 0;
    return TP_OK;
}

tp_status tp_tok_load_spm(tp_tokenizer *t, const char *path, tp_spm_mode mode, tp_err *err) {
    char *data;
    size_t len;
    TP_TRY(tp_read_file(path, &data, &len, err));
    tp_spm_model m;
    tp_status st = tp_spm_parse((const uint8_t *)data, len, path, &m, err);
    if (st == TP_OK) {
        st = from_model(t, &m, mode, err);
        tp_spm_model_free(&m);
    }
    free(data);
    return st;
}
