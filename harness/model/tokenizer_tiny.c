/* tokenizer_tiny.c — tp_tokenizer_write_tiny: trains a small BPE on the built-in corpus and
 * writes it as a Hugging Face tokenizer.json, in one of two styles:
 *   "bytelevel"  Llama-3-like: ids 0..255 are the GPT-2 byte chars (id = byte value), merges
 *                from words split by the Llama 3 regex, ignore_merges, added specials
 *                <|begin_of_text|> / <|end_of_text|> as the last two ids, BOS template.
 *   "spm"        Mistral-like (the legacy form HF writes for Llama/Mistral): <unk> <s> </s>,
 *                <0x00>..<0xFF> byte-fallback pieces, the corpus alphabet, then merges learned
 *                on ▁-prefixed words; normalizer Prepend ▁ + Replace " " -> ▁, BOS template.
 * The seed repeats each corpus line 1-3 times, so different seeds learn different merges.
 * Training: most frequent adjacent pair, ties to the smallest (left id, right id). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"
#include "model/tokenizer_tiny.h"
#include "util/fsutil.h"

#define METASPACE "\xe2\x96\x81"
static const char LLAMA3_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct trainer {
    char **str; /* id -> piece */
    int n, cap;
    tp_tok_strmap map;
    /* unique words as id sequences */
    int32_t **w;
    int *wlen, *wcount;
    int nw, wcap;
    tp_tok_strmap wmap; /* word string -> index (keys owned by wkeys) */
    char **wkeys;
    /* merges */
    int32_t (*merges)[2];
    int nm;
} trainer;

static int tr_add_piece(trainer *tr, const char *s, size_t n) {
    int id = tp_tok_strmap_get(&tr->map, s, (uint32_t)n);
    if (id >= 0) return id;
    if (tr->n == tr->cap) {
        int cap = tr->cap ? tr->cap * 2 : 512;
        char **v = realloc(tr->str, (size_t)cap * sizeof *v);
        if (!v) return -1;
        tr->str = v;
        tr->cap = cap;
    }
    char *d = malloc(n + 1);
    if (!d) return -1;
    memcpy(d, s, n);
    d[n] = 0;
    tr->str[tr->n] = d;
    tp_tok_strmap_put(&tr->map, d, (uint32_t)n, tr->n);
    return tr->n++;
}

/* Adds count occurrences of a word (already in the model alphabet); chars must be pieces. */
static tp_status tr_add_word(void *vc, const char *s, size_t n, tp_err *err) {
    trainer *tr = vc;
    int idx = tp_tok_strmap_get(&tr->wmap, s, (uint32_t)n);
    if (idx >= 0) {
        tr->wcount[idx]++;
        return TP_OK;
    }
    if (tr->nw == tr->wcap) {
        int cap = tr->wcap ? tr->wcap * 2 : 256;
        int32_t **w = realloc(tr->w, (size_t)cap * sizeof *w);
        if (w) tr->w = w;
        int *l = realloc(tr->wlen, (size_t)cap * sizeof *l);
        if (l) tr->wlen = l;
        int *c = realloc(tr->wcount, (size_t)cap * sizeof *c);
        if (c) tr->wcount = c;
        char **k = realloc(tr->wkeys, (size_t)cap * sizeof *k);
        if (k) tr->wkeys = k;
        if (!w || !l || !c || !k) return tp_errf(err, TP_ENOMEM, "out of memory");
        tr->wcap = cap;
    }
    char *key = malloc(n + 1);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    if (!key || !ids) {
        free(key), free(ids);
        return tp_errf(err, TP_ENOMEM, "out of memory");
    }
    memcpy(key, s, n);
    key[n] = 0;
    int len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int cl = tp_tok_utf8_next((const unsigned char *)s, n, i, &cp);
        if (!cl) cl = 1;
        int id = tr_add_piece(tr, s + i, (size_t)cl);
        if (id < 0) {
            free(key), free(ids);
            return tp_errf(err, TP_ENOMEM, "out of memory");
        }
        ids[len++] = id;
        i += (size_t)cl;
    }
    tr->wkeys[tr->nw] = key;
    tr->w[tr->nw] = ids;
    tr->wlen[tr->nw] = len;
    tr->wcount[tr->nw] = 1;
    tp_tok_strmap_put(&tr->wmap, key, (uint32_t)n, tr->nw);
    tr->nw++;
    return TP_OK;
}

static void tr_free(trainer *tr) {
    for (int i = 0; i < tr->n; i++) free(tr->str[i]);
    free(tr->str);
    for (int i = 0; i < tr->nw; i++) free(tr->w[i]), free(tr->wkeys[i]);
    free(tr->w), free(tr->wlen), free(tr->wcount), free(tr->wkeys);
    tp_tok_strmap_free(&tr->map);
    tp_tok_strmap_free(&tr->wmap);
    free(tr->merges);
}

/* Learns merges until the vocab has target pieces. */
static tp_status tr_train(trainer *tr, int target, const char *path, tp_err *err) {
    int max_merges = target > tr->n ? target - tr->n + 16 : 16;
    tr->merges = malloc((size_t)max_merges * sizeof *tr->merges);
    if (!tr->merges) return tp_errf(err, TP_ENOMEM, "out of memory");
    /* pair counts: one open-addressing table, sized for every adjacent pair of the unique
     * words (an upper bound on distinct pairs) and cleared each round */
    size_t total = 0;
    for (int i = 0; i < tr->nw; i++) total += (size_t)tr->wlen[i];
    uint32_t cap = 1024;
    while (cap < 2 * total + 2) cap <<= 1;
    uint64_t *keys = malloc(cap * sizeof *keys);
    int64_t *cnt = malloc(cap * sizeof *cnt);
    if (!keys || !cnt) {
        free(keys), free(cnt);
        return tp_errf(err, TP_ENOMEM, "out of memory");
    }
    tp_status st = TP_OK;
    while (tr->n < target && st == TP_OK) {
        memset(keys, 0, cap * sizeof *keys);
        memset(cnt, 0, cap * sizeof *cnt);
        uint64_t best = 0;
        int64_t best_c = 0;
        for (int i = 0; i < tr->nw; i++) {
            for (int k = 0; k + 1 < tr->wlen[i]; k++) {
                uint64_t key =
                    ((uint64_t)(uint32_t)tr->w[i][k] << 32 | (uint32_t)tr->w[i][k + 1]) + 1;
                uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & (cap - 1);
                while (keys[h] && keys[h] != key) h = (h + 1) & (cap - 1);
                keys[h] = key;
                cnt[h] += tr->wcount[i];
                if (cnt[h] > best_c || (cnt[h] == best_c && key < best))
                    best_c = cnt[h], best = key;
            }
        }
        if (best_c == 0) {
            st = tp_errf(err, TP_EINVAL,
                         "%s: the built-in corpus supports only %d pieces in this style (asked "
                         "for %d); use a smaller vocab_size",
                         path, tr->n, target);
            break;
        }
        int32_t a = (int32_t)((best - 1) >> 32), b = (int32_t)((best - 1) & 0xFFFFFFFFu);
        size_t la = strlen(tr->str[a]), lb = strlen(tr->str[b]);
        char *cat = malloc(la + lb + 1);
        if (!cat) {
            st = tp_errf(err, TP_ENOMEM, "out of memory");
            break;
        }
        memcpy(cat, tr->str[a], la);
        memcpy(cat + la, tr->str[b], lb + 1);
        int c = tr_add_piece(tr, cat, la + lb);
        free(cat);
        if (c < 0) {
            st = tp_errf(err, TP_ENOMEM, "out of memory");
            break;
        }
        if (tr->nm == max_merges) {
            max_merges *= 2;
            int32_t(*m)[2] = realloc(tr->merges, (size_t)max_merges * sizeof *m);
            if (!m) {
                st = tp_errf(err, TP_ENOMEM, "out of memory");
                break;
            }
            tr->merges = m;
        }
        tr->merges[tr->nm][0] = a;
        tr->merges[tr->nm][1] = b;
        tr->nm++;
        for (int i = 0; i < tr->nw; i++) {
            int o = 0;
            for (int k = 0; k < tr->wlen[i]; k++) {
                if (k + 1 < tr->wlen[i] && tr->w[i][k] == a && tr->w[i][k + 1] == b) {
                    tr->w[i][o++] = c;
                    k++;
                } else {
                    tr->w[i][o++] = tr->w[i][k];
                }
            }
            tr->wlen[i] = o;
        }
    }
    free(keys);
    free(cnt);
    return st;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static json_t *added_tok(int id, const char *content) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
                     "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
}

static json_t *bos_template(const char *bos, int bos_id) {
    return json_pack("{s:s, s:[{s:{s:s,s:i}}, {s:{s:s,s:i}}], s:[{s:{s:s,s:i}}, {s:{s:s,s:i}}, "
                     "{s:{s:s,s:i}}, {s:{s:s,s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
                     "type", "TemplateProcessing", "single", "SpecialToken", "id", bos, "type_id",
                     0, "Sequence", "id", "A", "type_id", 0, "pair", "SpecialToken", "id", bos,
                     "type_id", 0, "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", bos,
                     "type_id", 1, "Sequence", "id", "B", "type_id", 1, "special_tokens", bos, "id",
                     bos, "ids", bos_id, "tokens", bos);
}

static tp_status write_json(json_t *root, const char *path, tp_err *err) {
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) return tp_errf(err, TP_ENOMEM, "%s: out of memory while writing JSON", path);
    tp_status st = tp_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return st;
}

tp_status tp_tokenizer_write_tiny(const char *path, const char *style, int vocab_size,
                                  uint64_t seed, tp_err *err) {
    int bytelevel;
    if (style && strcmp(style, "bytelevel") == 0)
        bytelevel = 1;
    else if (style && strcmp(style, "spm") == 0)
        bytelevel = 0;
    else
        return tp_errf(err, TP_EINVAL, "tokenizer style \"%s\": expected \"bytelevel\" or \"spm\"",
                       style ? style : "(null)");
    int min = bytelevel ? 258 : 259 + 1;
    if (vocab_size < min || vocab_size > 65536)
        return tp_errf(err, TP_EINVAL, "%s: vocab_size %d for style %s: expected %d..65536", path,
                       vocab_size, style, min);
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tp_tokenizer tmp; /* just enough of a tokenizer to run the pre-tokenizer */
    memset(&tmp, 0, sizeof tmp);
    snprintf(tmp.path, sizeof tmp.path, "%s", path);
    tp_status st = tp_tok_strmap_init(&tr.map, 4096, err);
    if (st == TP_OK) st = tp_tok_strmap_init(&tr.wmap, 4096, err);
    if (st != TP_OK) goto out;
    if (bytelevel) {
        for (int b = 0; b < 256; b++) {
            tmp.bl_len[b] = (uint8_t)tp_tok_utf8_put(tp_tok_byte_to_cp((unsigned)b), tmp.bl_map[b]);
            tr_add_piece(&tr, tmp.bl_map[b], tmp.bl_len[b]);
        }
        tmp.pre = TP_PRE_BYTELEVEL;
        if ((st = tp_tok_compile_regex(&tmp, LLAMA3_RE, "llama3 regex", err)) != TP_OK) goto out;
    } else {
        tr_add_piece(&tr, "<unk>", 5);
        tr_add_piece(&tr, "<s>", 3);
        tr_add_piece(&tr, "</s>", 4);
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            tr_add_piece(&tr, name, 6);
        }
    }
    pcre2_match_data *md = bytelevel ? pcre2_match_data_create_from_pattern(tmp.re[0], NULL) : NULL;
    uint64_t rng = seed ^ 0x746f6b656e697a65ull;
    for (int i = 0; i < tp_tok_tiny_corpus_n && st == TP_OK; i++) {
        const char *line = tp_tok_tiny_corpus[i];
        int reps = 1 + (int)(splitmix(&rng) % 3);
        for (int r = 0; r < reps && st == TP_OK; r++) {
            if (bytelevel) {
                st = tp_tok_pretokenize(&tmp, line, strlen(line), 1, md, tr_add_word, &tr, err);
            } else { /* words as the legacy normalizer sees them: ▁ before each */
                const char *p = line;
                while (*p && st == TP_OK) {
                    const char *e = strchr(p, ' ');
                    size_t n = e ? (size_t)(e - p) : strlen(p);
                    char w[256];
                    if (n + 4 < sizeof w && n > 0) {
                        memcpy(w, METASPACE, 3);
                        memcpy(w + 3, p, n);
                        st = tr_add_word(&tr, w, n + 3, err);
                    }
                    p += n + (e ? 1 : 0);
                }
            }
        }
    }
    if (md) pcre2_match_data_free(md);
    if (st != TP_OK) goto out;
    /* the spm alphabet got ids in first-seen order: fixed, since the corpus order is fixed */
    int n_special = bytelevel ? 2 : 0;
    if (tr.n > vocab_size - n_special) {
        st = tp_errf(err, TP_EINVAL, "%s: vocab_size %d is below the %d base pieces of style %s",
                     path, vocab_size, tr.n + n_special, style);
        goto out;
    }
    if ((st = tr_train(&tr, vocab_size - n_special, path, err)) != TP_OK) goto out;

    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    for (int i = 0; i < tr.n; i++) json_object_set_new(vocab, tr.str[i], json_integer(i));
    for (int i = 0; i < tr.nm; i++)
        json_array_append_new(
            merges, json_pack("[s, s]", tr.str[tr.merges[i][0]], tr.str[tr.merges[i][1]]));
    json_t *root;
    if (bytelevel) {
        int bos = tr.n, eos = tr.n + 1;
        json_array_append_new(added, added_tok(bos, "<|begin_of_text|>"));
        json_array_append_new(added, added_tok(eos, "<|end_of_text|>"));
        json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type",
                                  "BPE", "dropout", "unk_token", "continuing_subword_prefix",
                                  "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                                  "ignore_merges", 1, "vocab", vocab, "merges", merges);
        json_t *pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type",
                                "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex",
                                LLAMA3_RE, "behavior", "Isolated", "invert", 0, "type", "ByteLevel",
                                "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0);
        json_t *dec = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                "trim_offsets", 1, "use_regex", 1);
        root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:o, s:o, s:o, s:o}", "version", "1.0",
                         "truncation", "padding", "added_tokens", added, "normalizer",
                         "pre_tokenizer", pre, "post_processor",
                         bos_template("<|begin_of_text|>", bos), "decoder", dec, "model", model);
    } else {
        for (int i = 0; i < 3; i++) json_array_append_new(added, added_tok(i, tr.str[i]));
        json_t *model = json_pack(
            "{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
            "unk_token", "<unk>", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1,
            "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges", merges);
        json_t *norm = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence",
                                 "normalizers", "type", "Prepend", "prepend", METASPACE, "type",
                                 "Replace", "pattern", "String", " ", "content", METASPACE);
        json_t *dec = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, "
                                "s:i}]}",
                                "type", "Sequence", "decoders", "type", "Replace", "pattern",
                                "String", METASPACE, "content", " ", "type", "ByteFallback", "type",
                                "Fuse", "type", "Strip", "content", " ", "start", 1, "stop", 0);
        root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:n, s:o, s:o, s:o}", "version", "1.0",
                         "truncation", "padding", "added_tokens", added, "normalizer", norm,
                         "pre_tokenizer", "post_processor", bos_template("<s>", 1), "decoder", dec,
                         "model", model);
    }
    if (!root) {
        st = tp_errf(err, TP_ENOMEM, "%s: out of memory building JSON", path);
        goto out;
    }
    st = write_json(root, path, err);
out:
    for (int i = 0; i < tmp.n_re; i++) pcre2_code_free(tmp.re[i]);
    tr_free(&tr);
    return st;
}
