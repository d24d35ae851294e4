/* tokenizer_maps.c — the small data structures behind the tokenizer: FNV hash maps for
 * piece -> id and (id, id) -> merge, the bounded pre-token cache, id vectors, UTF-8 helpers and
 * the GPT-2 byte <-> unicode table. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"

uint64_t tp_tok_hash(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint32_t pow2_for(uint32_t expected) {
    uint32_t cap = 16;
    while (cap < expected * 2u + 1u) cap <<= 1;
    return cap;
}

tp_status tp_tok_strmap_init(tp_tok_strmap *m, uint32_t expected, tp_err *err) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_for(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->lens = calloc(m->cap, sizeof *m->lens);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->lens || !m->vals) {
        tp_tok_strmap_free(m);
        return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory for a %u-entry map", expected);
    }
    return TP_OK;
}

void tp_tok_strmap_free(tp_tok_strmap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int strmap_grow(tp_tok_strmap *m) {
    tp_tok_strmap n;
    if (tp_tok_strmap_init(&n, m->cap, NULL) != TP_OK) return -1;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->keys[i]) tp_tok_strmap_put(&n, m->keys[i], m->lens[i], m->vals[i]);
    tp_tok_strmap_free(m);
    *m = n;
    return 0;
}

void tp_tok_strmap_put(tp_tok_strmap *m, const char *key, uint32_t len, int32_t val) {
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) != 0) return;
    uint32_t mask = m->cap - 1, i = (uint32_t)tp_tok_hash(key, len) & mask;
    while (m->keys[i]) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) {
            m->vals[i] = val;
            return;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->lens[i] = len;
    m->vals[i] = val;
    m->count++;
}

int32_t tp_tok_strmap_get(const tp_tok_strmap *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint32_t mask = m->cap - 1, i = (uint32_t)tp_tok_hash(key, len) & mask;
    while (m->keys[i]) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

tp_status tp_tok_pairmap_init(tp_tok_pairmap *m, uint32_t expected, tp_err *err) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_for(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = malloc(m->cap * sizeof *m->rank);
    m->id = malloc(m->cap * sizeof *m->id);
    if (!m->keys || !m->rank || !m->id) {
        tp_tok_pairmap_free(m);
        return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory for %u merges", expected);
    }
    return TP_OK;
}

void tp_tok_pairmap_free(tp_tok_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->id);
    memset(m, 0, sizeof *m);
}

static inline uint64_t pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static inline uint32_t pair_slot(uint64_t k, uint32_t mask) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & mask;
}

void tp_tok_pairmap_put(tp_tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    /* capacity is fixed at init (callers size it for every merge) */
    uint64_t k = pair_key(a, b);
    uint32_t mask = m->cap - 1, i = pair_slot(k, mask);
    while (m->keys[i]) {
        if (m->keys[i] == k) return;
        i = (i + 1) & mask;
    }
    m->keys[i] = k;
    m->rank[i] = rank;
    m->id[i] = id;
}

int tp_tok_pairmap_get(const tp_tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!m->cap) return 0;
    uint64_t k = pair_key(a, b);
    uint32_t mask = m->cap - 1, i = pair_slot(k, mask);
    while (m->keys[i]) {
        if (m->keys[i] == k) {
            *rank = m->rank[i];
            *id = m->id[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

tp_status tp_tok_cache_init(tp_tok_cache *c, uint32_t cap, tp_err *err) {
    c->cap = cap;
    c->count = 0;
    c->ents = calloc(cap, sizeof *c->ents);
    if (!c->ents) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory for the cache");
    pthread_mutex_init(&c->mu, NULL);
    return TP_OK;
}

void tp_tok_cache_free(tp_tok_cache *c) {
    if (!c->ents) return;
    for (uint32_t i = 0; i < c->cap; i++) {
        free(c->ents[i].key);
        free(c->ents[i].ids);
    }
    free(c->ents);
    c->ents = NULL;
    pthread_mutex_destroy(&c->mu);
}

tp_status tp_tok_ids_push(tp_tok_ids *o, int32_t id) {
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        int32_t *v = realloc(o->v, (size_t)cap * sizeof *v);
        if (!v) return TP_ENOMEM;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return TP_OK;
}

int tp_tok_utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + (size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
        unsigned d = s[i + k];
        if ((d & 0xC0) != 0x80) return 0;
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int tp_tok_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint16_t g_byte_cp[256];
static int16_t g_cp_byte[324];
static pthread_once_t g_bl_once = PTHREAD_ONCE_INIT;

/* bytes_to_unicode: the n-th non-printable byte (in byte order) maps to 256 + n */
static void bl_init(void) {
    unsigned n = 0;
    for (int i = 0; i < 324; i++) g_cp_byte[i] = -1;
    for (unsigned b = 0; b < 256; b++) {
        g_byte_cp[b] = (uint16_t)(byte_is_printable(b) ? b : 256 + n++);
        g_cp_byte[g_byte_cp[b]] = (int16_t)b;
    }
}

uint32_t tp_tok_byte_to_cp(unsigned b) {
    pthread_once(&g_bl_once, bl_init);
    return g_byte_cp[b & 0xFF];
}

int tp_tok_cp_to_byte(uint32_t cp) {
    pthread_once(&g_bl_once, bl_init);
    return cp < 324 ? g_cp_byte[cp] : -1;
}
