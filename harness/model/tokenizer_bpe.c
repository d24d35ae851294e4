/* tokenizer_bpe.c — the BPE model step: one pre-token (a "word" in the model's own alphabet:
 * GPT-2 byte chars or ▁-text) -> ids. Follows HF `tokenizers` BPE exactly: whole-word lookup
 * when ignore_merges is set, one symbol per character (byte fallback to <0xXX> or unk for
 * characters outside the vocab), then merges applied lowest rank first, leftmost on ties, with a
 * heap of candidate pairs so very long words stay O(n log n). Results of words up to 256 bytes
 * are cached. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"

#define CACHE_MAX_WORD 256

typedef struct sym {
    int32_t id;
    int32_t prev, next;
    int32_t alive;
} sym;

typedef struct cand {
    int32_t rank, pos, new_id;
} cand;

static int cand_less(const cand *a, const cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

typedef struct heap {
    cand *v;
    int n, cap;
} heap;

static int heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 64;
        cand *v = realloc(h->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && cand_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static int cache_lookup(tp_tok_cache *c, const char *w, size_t len, tp_tok_ids *out) {
    if (!c->ents || len > CACHE_MAX_WORD) return 0;
    int found = 0;
    pthread_mutex_lock(&c->mu);
    uint32_t mask = c->cap - 1, i = (uint32_t)tp_tok_hash(w, len) & mask;
    while (c->ents[i].key) {
        tp_tok_cache_ent *e = &c->ents[i];
        if (e->key_len == len && memcmp(e->key, w, len) == 0) {
            found = 1;
            for (uint32_t k = 0; k < e->n; k++)
                if (tp_tok_ids_push(out, e->ids[k]) != TP_OK) found = -1;
            break;
        }
        i = (i + 1) & mask;
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static void cache_store(tp_tok_cache *c, const char *w, size_t len, const int32_t *ids, int n) {
    if (!c->ents || len > CACHE_MAX_WORD) return;
    char *key = malloc(len ? len : 1);
    int32_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!key || !v) {
        free(key);
        free(v);
        return;
    }
    memcpy(key, w, len);
    memcpy(v, ids, (size_t)n * sizeof *v);
    pthread_mutex_lock(&c->mu);
    if ((c->count + 1) * 4 > c->cap * 3) { /* full: start over rather than evict one by one */
        for (uint32_t i = 0; i < c->cap; i++) {
            free(c->ents[i].key);
            free(c->ents[i].ids);
        }
        memset(c->ents, 0, c->cap * sizeof *c->ents);
        c->count = 0;
    }
    uint32_t mask = c->cap - 1, i = (uint32_t)tp_tok_hash(w, len) & mask;
    while (c->ents[i].key) {
        if (c->ents[i].key_len == len && memcmp(c->ents[i].key, w, len) == 0) break;
        i = (i + 1) & mask;
    }
    if (c->ents[i].key) { /* another thread stored it meanwhile */
        free(key);
        free(v);
    } else {
        c->ents[i] = (tp_tok_cache_ent){key, (uint32_t)len, (uint32_t)n, v};
        c->count++;
    }
    pthread_mutex_unlock(&c->mu);
}

/* Initial symbols: one per character, with byte fallback / unk as HF's BPE does. */
static tp_status initial_symbols(const tp_tokenizer *t, const char *w, size_t len, sym **out,
                                 int *n_out, tp_err *err) {
    sym *s = malloc((len + 1) * sizeof *s);
    if (!s) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    int n = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int cl = tp_tok_utf8_next((const unsigned char *)w, len, i, &cp);
        if (cl == 0) cl = 1; /* cannot happen on validated input; keep going byte-wise */
        int32_t id = tp_tok_strmap_get(&t->vocab, w + i, (uint32_t)cl);
        if (id >= 0) {
            s[n++] = (sym){id, 0, 0, 1};
        } else {
            int ok = t->byte_fallback;
            for (int k = 0; ok && k < cl; k++) ok = t->byte_ids[(unsigned char)w[i + k]] >= 0;
            if (ok) {
                for (int k = 0; k < cl; k++)
                    s[n++] = (sym){t->byte_ids[(unsigned char)w[i + k]], 0, 0, 1};
            } else if (t->unk_id >= 0) {
                /* fuse_unk: consecutive unknowns become one <unk> */
                if (!(t->fuse_unk && n > 0 && s[n - 1].id == t->unk_id))
                    s[n++] = (sym){t->unk_id, 0, 0, 1};
            } else {
                free(s);
                return tp_errf(err, TP_EFORMAT,
                               "%s: character U+%04X is not in the vocab and the model has no "
                               "unk_token or byte_fallback",
                               t->path, cp);
            }
        }
        i += (size_t)cl;
    }
    for (int k = 0; k < n; k++) {
        s[k].prev = k - 1;
        s[k].next = k + 1 < n ? k + 1 : -1;
    }
    *out = s;
    *n_out = n;
    return TP_OK;
}

tp_status tp_tok_bpe_word(const tp_tokenizer *t, const char *w, size_t len, tp_tok_ids *out,
                          tp_err *err) {
    if (len == 0) return TP_OK;
    if (t->ignore_merges) {
        int32_t id = tp_tok_strmap_get(&t->vocab, w, (uint32_t)len);
        if (id >= 0)
            return tp_tok_ids_push(out, id) == TP_OK
                       ? TP_OK
                       : tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    }
    tp_tok_cache *cache = (tp_tok_cache *)&t->cache; /* the cache is the one mutable part */
    int hit = cache_lookup(cache, w, len, out);
    if (hit < 0) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    if (hit) return TP_OK;

    sym *s = NULL;
    int n = 0;
    TP_TRY(initial_symbols(t, w, len, &s, &n, err));
    heap h = {0};
    int oom = 0;
    for (int k = 0; k + 1 < n; k++) {
        int32_t rank, nid;
        if (tp_tok_pairmap_get(&t->merges, s[k].id, s[k + 1].id, &rank, &nid))
            oom |= heap_push(&h, (cand){rank, k, nid});
    }
    while (h.n && !oom) {
        cand c = heap_pop(&h);
        sym *a = &s[c.pos];
        if (!a->alive || a->next < 0) continue;
        sym *b = &s[a->next];
        int32_t rank, nid;
        /* stale entry: one side changed since the candidate was queued */
        if (!tp_tok_pairmap_get(&t->merges, a->id, b->id, &rank, &nid) || nid != c.new_id ||
            rank != c.rank)
            continue;
        a->id = nid;
        b->alive = 0;
        a->next = b->next;
        if (b->next >= 0) s[b->next].prev = c.pos;
        if (a->prev >= 0) {
            sym *p = &s[a->prev];
            if (tp_tok_pairmap_get(&t->merges, p->id, a->id, &rank, &nid))
                oom |= heap_push(&h, (cand){rank, a->prev, nid});
        }
        if (a->next >= 0) {
            if (tp_tok_pairmap_get(&t->merges, a->id, s[a->next].id, &rank, &nid))
                oom |= heap_push(&h, (cand){rank, c.pos, nid});
        }
    }
    free(h.v);
    int start = out->n;
    for (int k = 0; k >= 0 && k < n && !oom; k = s[k].next)
        if (tp_tok_ids_push(out, s[k].id) != TP_OK) oom = 1;
    free(s);
    if (oom) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    cache_store(cache, w, len, out->v + start, out->n - start);
    return TP_OK;
}
