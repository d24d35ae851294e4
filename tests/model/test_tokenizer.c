/* test_tokenizer.c — the C tokenizers on hand-checked cases: known Llama 3 / Mistral ids, added
 * tokens with lstrip / rstrip / single_word / normalized flags and Metaspace pre-tokenizers
 * (expected ids and decodes taken from HF `tokenizers` 0.23.2 on the same files), a
 * SentencePiece model built byte by byte (protobuf reader, score-ranked merges, unk fusing,
 * remove_extra_whitespaces), write_tiny, thread safety of the shared cache, and bad input:
 * missing / truncated / malformed / unsupported files, bad ids, invalid UTF-8. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"
#include "tp_test.h"
#include "util/fsutil.h"

static int ids_eq(const int32_t *a, int n, const int *b, int nb) {
    if (n != nb) return 0;
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *a, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, "\n");
}

/* encode(text) == want (with BOS), and decode(ids, skip_special) == dec when dec != NULL */
#define EXPECT(t, text, dec, ...)                                                                  \
    do {                                                                                           \
        static const int want_[] = {__VA_ARGS__};                                                  \
        expect_(t, text, dec, want_, (int)(sizeof want_ / sizeof want_[0]), __LINE__);             \
    } while (0)

static void expect_(tp_tokenizer *t, const char *text, const char *dec, const int *want, int nw,
                    int line) {
    int32_t *ids = NULL;
    int n = 0;
    tp_err err;
    tp_status st = tp_tokenizer_encode(t, text, 1, &ids, &n, &err);
    TP_CHECKF(st == TP_OK, "line %d: %s", line, err.msg);
    if (st != TP_OK) return;
    int ok = ids_eq(ids, n, want, nw);
    TP_CHECKF(ok, "line %d: ids of \"%s\"", line, text);
    if (!ok) print_ids("got", ids, n);
    if (dec) {
        char *s = NULL;
        TP_CHECK(tp_tokenizer_decode(t, ids, n, 1, &s, &err) == TP_OK);
        TP_CHECKF(s && strcmp(s, dec) == 0, "line %d: decode \"%s\" != \"%s\"", line,
                  s ? s : "(null)", dec);
        free(s);
    }
    free(ids);
}

static tp_tokenizer *load_shared(const char *rel) {
    const char *sh = tp_test_shared_dir(rel);
    if (!sh) return NULL;
    char p[1024];
    snprintf(p, sizeof p, "%s/models/tokenizers/%s", sh, rel);
    tp_tokenizer *t = NULL;
    tp_err err;
    TP_CHECKF(tp_tokenizer_load(&t, p, &err) == TP_OK, "%s", err.msg);
    return t;
}

static void test_llama3_known_ids(void) {
    tp_tokenizer *t = load_shared("llama-3.1-8b/tokenizer.json");
    if (!t) return;
    TP_CHECK(strcmp(tp_tokenizer_kind(t), "bpe-bytelevel") == 0);
    TP_CHECK(tp_tokenizer_vocab_size(t) == 128256);
    TP_CHECK(tp_tokenizer_bos(t) == 128000);
    TP_CHECK(tp_tokenizer_eos(t) == 128001);
    TP_CHECK(tp_tokenizer_pad(t) == -1);
    TP_CHECK(tp_tokenizer_token_id(t, "<|eot_id|>") == 128009);
    TP_CHECK(tp_tokenizer_token_id(t, "<|finetune_right_pad_id|>") == 128004);
    TP_CHECK(tp_tokenizer_token_id(t, "Hello") == 9906);
    TP_CHECK(tp_tokenizer_token_id(t, "no-such-piece-xyz") == -1);
    TP_CHECK(strcmp(tp_tokenizer_piece(t, 1917), "\xc4\xa0world") == 0); /* "Ġworld" */
    EXPECT(t, "Hello world", "Hello world", 128000, 9906, 1917);
    EXPECT(t, "I'M DON'T", "I'M DON'T", 128000, 40, 28703, 45373, 17773);
    EXPECT(t, "   x  ", "   x  ", 128000, 256, 865, 256);
    EXPECT(t, "1234567", "1234567", 128000, 4513, 10961, 22);
    EXPECT(t, "", "", 128000);
    /* special tokens in text are matched before pre-tokenisation */
    EXPECT(t, "Hi<|eot_id|>there", "Hithere", 128000, 13347, 128009, 19041);
    int32_t *ids;
    int n;
    tp_err err;
    TP_CHECK(tp_tokenizer_encode(t, "Hello world", 0, &ids, &n, &err) == TP_OK);
    TP_CHECK(n == 2 && ids[0] == 9906);
    char *s;
    int32_t with_special[] = {128000, 9906, 128009};
    TP_CHECK(tp_tokenizer_decode(t, with_special, 3, 0, &s, &err) == TP_OK);
    TP_CHECK(strcmp(s, "<|begin_of_text|>Hello<|eot_id|>") == 0);
    free(s);
    free(ids);
    tp_tokenizer_free(t);
}

static void test_mistral_known_ids(void) {
    tp_tokenizer *t = load_shared("mistral-7b-instruct-v0.3/tokenizer.model");
    if (!t) return;
    TP_CHECK(strcmp(tp_tokenizer_kind(t), "spm-bpe") == 0);
    TP_CHECK(tp_tokenizer_vocab_size(t) == 32768);
    TP_CHECK(tp_tokenizer_bos(t) == 1 && tp_tokenizer_eos(t) == 2 && tp_tokenizer_pad(t) == -1);
    TP_CHECK(tp_tokenizer_token_id(t, "[control_768]") == 770);
    TP_CHECK(tp_tokenizer_token_id(t, "<0x41>") == 836);
    /* ids below agree with sentencepiece 0.2 (WebAssembly build) */
    EXPECT(t, "Hello world", "Hello world", 1, 23325, 2294);
    EXPECT(t, " leading space", " leading space", 1, 29473, 6142, 3532);
    EXPECT(t, "tab\there", "tab\there", 1, 8451, 780, 8518);
    EXPECT(t, "\xf0\x9f\xa7\xac DNA", "\xf0\x9f\xa7\xac DNA", 1, 29473, 1011, 930, 938, 943,
           16775); /* byte fallback */
    EXPECT(t, "\xc7\x85", "\xc7\x85", 1, 29473, 970, 904);
    /* HF fast (legacy): control tokens split out, the text after them gets its own ▁ */
    EXPECT(t, "[INST] hi [/INST]", " hi ", 1, 3, 29473, 12782, 29473, 4);
    /* sentencepiece leaves "▁▁" (score -1e9) for last */
    EXPECT(t, "Team  MILWAUKEE", "Team  MILWAUKEE", 1, 7635, 29473, 1119, 3002, 13013, 29547, 5225,
           29517);
    tp_tokenizer_free(t);

    /* transformers 5.17's conversion: piece-order merges ("▁▁" first), Metaspace "first" */
    const char *sh = tp_test_shared_dir("mistral");
    char p[1024];
    snprintf(p, sizeof p, "%s/models/tokenizers/mistral-7b-instruct-v0.3/tokenizer.model", sh);
    tp_tokenizer_opts o = {TP_SPM_TRANSFORMERS5};
    tp_err err;
    t = NULL;
    TP_CHECKF(tp_tokenizer_load_opts(&t, p, &o, &err) == TP_OK, "%s", err.msg);
    if (!t) return;
    EXPECT(t, "Hello world", "Hello world", 1, 23325, 2294);
    EXPECT(t, "Team  MILWAUKEE", "Team  MILWAUKEE", 1, 7635, 1027, 29523, 3002, 13013, 29547, 5225,
           29517);
    EXPECT(t, "[INST] hi [/INST]", "hi ", 1, 3, 12782, 29473, 4);
    EXPECT(t, " x", "x", 1, 2086); /* HF's decoder strips the space it did not add */
    tp_tokenizer_free(t);
    o.spm_mode = (tp_spm_mode)7;
    TP_CHECK(tp_tokenizer_load_opts(&t, p, &o, &err) == TP_EINVAL);
}

static tp_status write_json(json_t *j, const char *path, tp_err *err) {
    char *s = json_dumps(j, JSON_PRESERVE_ORDER);
    tp_status st = tp_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return st;
}

static json_t *added(int id, const char *c, int lstrip, int rstrip, int single, int norm,
                     int special) {
    return json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id, "content", c, "single_word", single,
                     "lstrip", lstrip, "rstrip", rstrip, "normalized", norm, "special", special);
}

static void test_added_token_flags(void) {
    char path[600];
    tp_err err;
    snprintf(path, sizeof path, "%s/flags.json", tp_test_tmpdir());
    TP_CHECKF(tp_tokenizer_write_tiny(path, "bytelevel", 512, 1, &err) == TP_OK, "%s", err.msg);
    json_t *j = json_load_file(path, 0, NULL);
    json_t *a = json_object_get(j, "added_tokens");
    json_array_append_new(a, added(512, "<tok_l>", 1, 0, 0, 0, 1));
    json_array_append_new(a, added(513, "<tok_r>", 0, 1, 0, 0, 1));
    json_array_append_new(a, added(514, "word", 0, 0, 1, 1, 0));
    json_array_append_new(a, added(515, "<both>", 1, 1, 0, 0, 0));
    TP_CHECK(write_json(j, path, &err) == TP_OK);
    json_decref(j);
    tp_tokenizer *t = NULL;
    TP_CHECKF(tp_tokenizer_load(&t, path, &err) == TP_OK, "%s", err.msg);
    if (!t) return;
    TP_CHECK(tp_tokenizer_vocab_size(t) == 516);
    EXPECT(t, "a  <tok_l>  b", "a  b", 510, 97, 512, 32, 268);
    EXPECT(t, "a  <tok_r>  b", "a  b", 510, 97, 32, 32, 513, 98);
    EXPECT(t, "sword word words", "sword word words", 510, 115, 119, 277, 100, 32, 514, 266, 277,
           495);
    EXPECT(t, "x <both>\n y", "x<both>y", 510, 120, 515, 121);
    EXPECT(t, "<tok_l><tok_r>", "", 510, 512, 513);
    EXPECT(t, "word", "word", 510, 514);
    EXPECT(t, "\t<tok_l>", "", 510, 512);
    tp_tokenizer_free(t);
}

static void test_metaspace_pretokenizer(void) {
    const char *schemes[2] = {"first", "always"};
    for (int k = 0; k < 2; k++) {
        char path[600];
        tp_err err;
        snprintf(path, sizeof path, "%s/meta_%s.json", tp_test_tmpdir(), schemes[k]);
        TP_CHECKF(tp_tokenizer_write_tiny(path, "spm", 512, 1, &err) == TP_OK, "%s", err.msg);
        json_t *j = json_load_file(path, 0, NULL);
        json_object_set_new(j, "normalizer", json_null());
        json_t *ms = json_pack("{s:s,s:s,s:s,s:b}", "type", "Metaspace", "replacement",
                               "\xe2\x96\x81", "prepend_scheme", schemes[k], "split", k == 0);
        json_object_set(j, "pre_tokenizer", ms);
        json_object_set_new(j, "decoder", ms);
        json_array_append_new(json_object_get(j, "added_tokens"),
                              added(512, "[SEP]", 0, 0, 0, 0, 1));
        TP_CHECK(write_json(j, path, &err) == TP_OK);
        json_decref(j);
        tp_tokenizer *t = NULL;
        TP_CHECKF(tp_tokenizer_load(&t, path, &err) == TP_OK, "%s", err.msg);
        if (!t) continue;
        EXPECT(t, "Hello world", "Hello world", 1, 487, 437, 270, 335, 346, 415);
        EXPECT(t, "  two  spaces", " two  spaces", 1, 259, 477, 270, 259, 330, 277, 394, 332);
        EXPECT(t, "[SEP] lead", "lead", 1, 512, 351, 262, 391);
        if (k == 0)
            EXPECT(t, "a[SEP] b [SEP]c", "a b c", 1, 327, 512, 337, 259, 512, 266);
        else
            EXPECT(t, "a[SEP] b [SEP]c", "a b  c", 1, 327, 512, 337, 259, 512, 334);
        tp_tokenizer_free(t);
    }
}

/* ---- a SentencePiece model built byte by byte ------------------------------------------- */

typedef struct pb {
    unsigned char b[4096];
    size_t n;
} pb;

static void pb_varint(pb *p, unsigned long long v) {
    do {
        unsigned char c = v & 0x7F;
        v >>= 7;
        p->b[p->n++] = (unsigned char)(c | (v ? 0x80 : 0));
    } while (v);
}

static void pb_bytes(pb *p, int field, const void *d, size_t n) {
    pb_varint(p, (unsigned)field << 3 | 2);
    pb_varint(p, n);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void pb_piece(pb *p, const char *s, float score, int type) {
    pb sub = {.n = 0};
    pb_bytes(&sub, 1, s, strlen(s));
    pb_varint(&sub, 2 << 3 | 5);
    memcpy(sub.b + sub.n, &score, 4);
    sub.n += 4;
    pb_varint(&sub, 3 << 3 | 0);
    pb_varint(&sub, (unsigned)type);
    pb_bytes(p, 1, sub.b, sub.n);
}

static void spm_model_x(pb *p, int model_type, int remove_ws, int cross);
static void spm_model(pb *p, int model_type, int remove_ws) {
    spm_model_x(p, model_type, remove_ws, 0);
}

/* cross: add pieces "b▁" and "b▁a" that merge across a word start, which must switch off the
 * split-at-▁ speed-up */
static void spm_model_x(pb *p, int model_type, int remove_ws, int cross) {
    p->n = 0;
    pb_piece(p, "<unk>", 0, 2);
    pb_piece(p, "<s>", 0, 3);
    pb_piece(p, "</s>", 0, 3);
    pb_piece(p, "\xe2\x96\x81", -10, 1); /* 3 ▁ */
    pb_piece(p, "a", -11, 1);            /* 4 */
    pb_piece(p, "b", -12, 1);            /* 5 */
    pb_piece(p,
             "\xe2\x96\x81"
             "a",
             -1, 1);          /* 6 ▁a */
    pb_piece(p, "ab", -2, 1); /* 7 */
    pb_piece(p,
             "\xe2\x96\x81"
             "ab",
             -0.5f, 1);         /* 8 ▁ab */
    pb_piece(p, "<sep>", 0, 4); /* 9 user-defined */
    if (cross) {
        pb_piece(p, "b\xe2\x96\x81", -0.1f, 1); /* 10 b▁ */
        pb_piece(p,
                 "b\xe2\x96\x81"
                 "a",
                 -0.05f, 1); /* 11 b▁a */
    }
    pb trainer = {.n = 0};
    pb_varint(&trainer, 3 << 3 | 0);
    pb_varint(&trainer, (unsigned)model_type);
    pb_varint(&trainer, 43 << 3 | 0); /* pad_id = -1: a 10-byte varint */
    pb_varint(&trainer, 0xFFFFFFFFFFFFFFFFull);
    pb_varint(&trainer, 99 << 3 | 1); /* unknown fixed64 field: skipped */
    memset(trainer.b + trainer.n, 0, 8);
    trainer.n += 8;
    pb_bytes(p, 2, trainer.b, trainer.n);
    pb norm = {.n = 0};
    pb_bytes(&norm, 1, "identity", 8);
    pb_varint(&norm, 3 << 3 | 0);
    pb_varint(&norm, 1);
    pb_varint(&norm, 4 << 3 | 0);
    pb_varint(&norm, (unsigned)remove_ws);
    pb_bytes(p, 3, norm.b, norm.n);
}

static int write_bytes(const char *name, const void *d, size_t n, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", tp_test_tmpdir(), name);
    tp_err err;
    return tp_write_file_atomic(path, d, n, &err) == TP_OK;
}

static void test_spm_handmade(void) {
    pb p;
    char path[600];
    tp_err err;
    for (int rw = 0; rw < 2; rw++) {
        spm_model(&p, 2, rw);
        TP_CHECK(write_bytes("hand.model", p.b, p.n, path, sizeof path));
        tp_tokenizer *t = NULL;
        TP_CHECKF(tp_tokenizer_load(&t, path, &err) == TP_OK, "%s", err.msg);
        if (!t) return;
        TP_CHECK(tp_tokenizer_pad(t) == -1 && tp_tokenizer_bos(t) == 1);
        /* ▁ a b ▁ a: ▁a (-1, leftmost) then ▁ab (-0.5) then ▁a */
        EXPECT(t, "ab a", "ab a", 1, 8, 6);
        /* unknown chars without byte fallback: one fused <unk> */
        EXPECT(t, "ccc", NULL, 1, 3, 0);
        EXPECT(t, "a<sep>b", NULL, 1, 6, 9, 3, 5);
        if (rw)
            EXPECT(t, "  ab   a  ", "ab a", 1, 8, 6);
        else
            EXPECT(t, "ab  a", "ab  a", 1, 8, 3, 6);
        tp_tokenizer_free(t);
    }
    /* b▁ (-0.1) beats ▁a (-1), then b▁a: the merge crosses the word start */
    spm_model_x(&p, 2, 0, 1);
    TP_CHECK(write_bytes("cross.model", p.b, p.n, path, sizeof path));
    tp_tokenizer *t = NULL;
    TP_CHECKF(tp_tokenizer_load(&t, path, &err) == TP_OK, "%s", err.msg);
    if (t) {
        EXPECT(t, "ab a", "ab a", 1, 6, 11);
        tp_tokenizer_free(t);
    }
}

/* ---- write_tiny -------------------------------------------------------------------------- */

static void test_write_tiny(void) {
    tp_err err;
    char a[600], b[600], c[600];
    snprintf(a, sizeof a, "%s/t1.json", tp_test_tmpdir());
    snprintf(b, sizeof b, "%s/t2.json", tp_test_tmpdir());
    snprintf(c, sizeof c, "%s/t3.json", tp_test_tmpdir());
    const char *styles[2] = {"bytelevel", "spm"};
    for (int s = 0; s < 2; s++) {
        TP_CHECKF(tp_tokenizer_write_tiny(a, styles[s], 384, 5, &err) == TP_OK, "%s", err.msg);
        TP_CHECK(tp_tokenizer_write_tiny(b, styles[s], 384, 5, &err) == TP_OK);
        TP_CHECK(tp_tokenizer_write_tiny(c, styles[s], 384, 6, &err) == TP_OK);
        char *da, *db, *dc;
        size_t la, lb, lc;
        TP_CHECK(tp_read_file(a, &da, &la, &err) == TP_OK);
        TP_CHECK(tp_read_file(b, &db, &lb, &err) == TP_OK);
        TP_CHECK(tp_read_file(c, &dc, &lc, &err) == TP_OK);
        TP_CHECKF(la == lb && memcmp(da, db, la) == 0, "%s: same seed, different files", styles[s]);
        TP_CHECKF(la != lc || memcmp(da, dc, la) != 0, "%s: seeds 5 and 6 gave the same file",
                  styles[s]);
        free(da), free(db), free(dc);
        tp_tokenizer *t = NULL;
        TP_CHECKF(tp_tokenizer_load(&t, a, &err) == TP_OK, "%s", err.msg);
        if (!t) continue;
        TP_CHECK(tp_tokenizer_vocab_size(t) == 384);
        TP_CHECK(strcmp(tp_tokenizer_kind(t), s ? "spm-bpe" : "bpe-bytelevel") == 0);
        TP_CHECK(tp_tokenizer_bos(t) == (s ? 1 : 382));
        TP_CHECK(tp_tokenizer_eos(t) == (s ? 2 : 383));
        const char *texts[] = {"The quick brown fox.", "  spaces\tand\nnewlines  ",
                               "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 caf\xc3\xa9", "12345"};
        for (int i = 0; i < 4; i++) {
            int32_t *ids;
            int n;
            char *dec;
            TP_CHECK(tp_tokenizer_encode(t, texts[i], 1, &ids, &n, &err) == TP_OK);
            TP_CHECK(n > 1 && ids[0] == tp_tokenizer_bos(t));
            for (int k = 0; k < n; k++) TP_CHECK(ids[k] >= 0 && ids[k] < 384);
            TP_CHECK(tp_tokenizer_decode(t, ids, n, 1, &dec, &err) == TP_OK);
            TP_CHECKF(strcmp(dec, texts[i]) == 0, "%s: round trip \"%s\" -> \"%s\"", styles[s],
                      texts[i], dec);
            free(dec);
            free(ids);
        }
        tp_tokenizer_free(t);
    }
    /* the merges really compress the corpus language */
    TP_CHECK(tp_tokenizer_write_tiny(a, "bytelevel", 1024, 1, &err) == TP_OK);
    tp_tokenizer *t = NULL;
    TP_CHECK(tp_tokenizer_load(&t, a, &err) == TP_OK);
    if (t) {
        int32_t *ids;
        int n;
        const char *txt = "The weather was cold and the children played in the park.";
        TP_CHECK(tp_tokenizer_encode(t, txt, 0, &ids, &n, &err) == TP_OK);
        TP_CHECKF(n < (int)strlen(txt) / 2, "%d ids for %zu bytes", n, strlen(txt));
        free(ids);
        tp_tokenizer_free(t);
    }
    TP_CHECK(tp_tokenizer_write_tiny(a, "wordpiece", 512, 1, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "bytelevel") != NULL);
    TP_CHECK(tp_tokenizer_write_tiny(a, "bytelevel", 100, 1, &err) == TP_EINVAL);
    TP_CHECK(tp_tokenizer_write_tiny(a, "spm", 300, 1, &err) == TP_EINVAL); /* < alphabet */
    TP_CHECK(tp_tokenizer_write_tiny(a, "bytelevel", 60000, 1, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "corpus") != NULL);
}

/* ---- thread safety ----------------------------------------------------------------------- */

typedef struct thr {
    tp_tokenizer *t;
    int ok;
} thr;

static void *worker(void *p) {
    thr *w = p;
    w->ok = 1;
    char buf[128];
    for (int i = 0; i < 3000; i++) {
        snprintf(buf, sizeof buf, "word%d and some more words %d!", i % 97, i);
        int32_t *ids;
        int n;
        tp_err err;
        char *dec;
        if (tp_tokenizer_encode(w->t, buf, 0, &ids, &n, &err) != TP_OK) {
            w->ok = 0;
            break;
        }
        if (tp_tokenizer_decode(w->t, ids, n, 0, &dec, &err) != TP_OK || strcmp(dec, buf))
            w->ok = 0;
        free(dec);
        free(ids);
    }
    return NULL;
}

static void test_threads(void) {
    char a[600];
    tp_err err;
    snprintf(a, sizeof a, "%s/thr.json", tp_test_tmpdir());
    TP_CHECK(tp_tokenizer_write_tiny(a, "bytelevel", 512, 3, &err) == TP_OK);
    tp_tokenizer *t = NULL;
    TP_CHECK(tp_tokenizer_load(&t, a, &err) == TP_OK);
    if (!t) return;
    pthread_t th[4];
    thr w[4];
    for (int i = 0; i < 4; i++) {
        w[i].t = t;
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        TP_CHECK(w[i].ok);
    }
    tp_tokenizer_free(t);
}

/* ---- bad input --------------------------------------------------------------------------- */

static tp_status load_text(const char *name, const char *text, tp_err *err) {
    char path[600];
    TP_CHECK(write_bytes(name, text, strlen(text), path, sizeof path));
    tp_tokenizer *t = NULL;
    tp_status st = tp_tokenizer_load(&t, path, err);
    tp_tokenizer_free(t);
    return st;
}

#define BAD(name, text, code, needle)                                                              \
    do {                                                                                           \
        tp_err e_;                                                                                 \
        tp_status s_ = load_text(name, text, &e_);                                                 \
        TP_CHECKF(s_ == (code), "%s: status %d, want %d", name, s_, code);                         \
        TP_CHECKF(s_ != TP_OK && strstr(e_.msg, needle) && strstr(e_.msg, name),                   \
                  "%s: message \"%s\" lacks \"%s\" or the file name", name, e_.msg, needle);       \
    } while (0)

static void test_bad_input(void) {
    tp_err err;
    tp_tokenizer *t = NULL;
    char p[600];
    snprintf(p, sizeof p, "%s/does-not-exist.json", tp_test_tmpdir());
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_EIO && strstr(err.msg, "does-not-exist.json"));
    snprintf(p, sizeof p, "%s/emptydir", tp_test_tmpdir());
    TP_CHECK(tp_mkdir_p(p, &err) == TP_OK);
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_EIO && strstr(err.msg, "tokenizer.model"));
    TP_CHECK(t == NULL);

    BAD("trunc.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0", TP_EFORMAT,
        "truncated");
    BAD("garbage.json", "{\"model\": [1, 2,,]}", TP_EFORMAT, "line 1");
    BAD("nomodel.json", "{\"added_tokens\": []}", TP_EFORMAT, "'model'");
    BAD("unigram.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}",
        TP_EUNSUP, "Unigram");
    BAD("wordpiece.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", TP_EUNSUP,
        "WordPiece");
    BAD("vocabtype.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": [1], \"merges\": []}}",
        TP_EFORMAT, "model.vocab");
    BAD("vocabid.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}", TP_EFORMAT,
        "non-negative integer");
    BAD("merge1.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b "
        "c\"]}}",
        TP_EFORMAT, "model.merges[0]");
    BAD("merge2.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
        TP_EFORMAT, "merged piece");
    BAD("merge3.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [7]}}",
        TP_EFORMAT, "model.merges[0]");
    BAD("unk.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": "
        "\"<unk>\"}}",
        TP_EFORMAT, "unk_token");
    BAD("dropout.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}",
        TP_EUNSUP, "dropout");
    BAD("norm.json",
        "{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"model\": {\"type\": \"BPE\", "
        "\"vocab\": {\"a\": 0}, \"merges\": []}}",
        TP_EUNSUP, "BertNormalizer");
    BAD("pretok.json",
        "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", "
        "\"vocab\": {\"a\": 0}, \"merges\": []}}",
        TP_EUNSUP, "pre_tokenizer.type");
    BAD("regex.json",
        "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
        "\"behavior\": \"Isolated\", \"invert\": false}, \"model\": {\"type\": \"BPE\", "
        "\"vocab\": {\"a\": 0}, \"merges\": []}}",
        TP_EFORMAT, "bad regex");
    BAD("post.json",
        "{\"post_processor\": {\"type\": \"RobertaProcessing\"}, \"model\": {\"type\": \"BPE\", "
        "\"vocab\": {\"a\": 0}, \"merges\": []}}",
        TP_EUNSUP, "RobertaProcessing");
    BAD("added.json",
        "{\"added_tokens\": [{\"id\": 5}], \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
        "\"merges\": []}}",
        TP_EFORMAT, "added_tokens[0]");

    /* SentencePiece protobufs */
    pb m;
    spm_model(&m, 2, 0);
    TP_CHECK(write_bytes("cut.model", m.b, m.n - 5, p, sizeof p));
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_EFORMAT && strstr(err.msg, "cut.model") &&
             strstr(err.msg, "truncated"));
    spm_model(&m, 1, 0);
    TP_CHECK(write_bytes("uni.model", m.b, m.n, p, sizeof p));
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_EUNSUP && strstr(err.msg, "unigram"));
    unsigned char group[] = {0x0B, 0x0C}; /* wire type 3 (groups): refused */
    TP_CHECK(write_bytes("group.model", group, sizeof group, p, sizeof p));
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_EFORMAT && strstr(err.msg, "wire type"));
    TP_CHECK(write_bytes("empty.model", "", 0, p, sizeof p));
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_EFORMAT && strstr(err.msg, "no pieces"));

    /* bad ids and bad text on a good tokenizer */
    spm_model(&m, 2, 0);
    TP_CHECK(write_bytes("good.model", m.b, m.n, p, sizeof p));
    TP_CHECK(tp_tokenizer_load(&t, p, &err) == TP_OK);
    if (t) {
        int32_t bad[] = {1, 10};
        char *s = NULL;
        TP_CHECK(tp_tokenizer_decode(t, bad, 2, 0, &s, &err) == TP_ERANGE &&
                 strstr(err.msg, "token id 10"));
        int32_t neg[] = {-1};
        TP_CHECK(tp_tokenizer_decode(t, neg, 1, 0, &s, &err) == TP_ERANGE);
        int32_t *ids;
        int n;
        TP_CHECK(tp_tokenizer_encode(t, "ok \xff\xfe", 1, &ids, &n, &err) == TP_EINVAL &&
                 strstr(err.msg, "UTF-8") && strstr(err.msg, "byte 3"));
        TP_CHECK(tp_tokenizer_encode(t, "\xed\xa0\x80", 1, &ids, &n, &err) == TP_EINVAL);
        tp_tokenizer_free(t);
    }
}

static void test_directory_prefers_json(void) {
    char dir[600], p[700];
    tp_err err;
    snprintf(dir, sizeof dir, "%s/modeldir", tp_test_tmpdir());
    TP_CHECK(tp_mkdir_p(dir, &err) == TP_OK);
    pb m;
    spm_model(&m, 2, 0);
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    TP_CHECK(tp_write_file_atomic(p, m.b, m.n, &err) == TP_OK);
    tp_tokenizer *t = NULL;
    TP_CHECK(tp_tokenizer_load(&t, dir, &err) == TP_OK && t && tp_tokenizer_vocab_size(t) == 10);
    tp_tokenizer_free(t);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    TP_CHECK(tp_tokenizer_write_tiny(p, "bytelevel", 300, 1, &err) == TP_OK);
    TP_CHECK(tp_tokenizer_load(&t, dir, &err) == TP_OK && t && tp_tokenizer_vocab_size(t) == 300);
    tp_tokenizer_free(t);
}

TP_TEST_RUN(TP_CASE(test_llama3_known_ids), TP_CASE(test_mistral_known_ids),
            TP_CASE(test_added_token_flags), TP_CASE(test_metaspace_pretokenizer),
            TP_CASE(test_spm_handmade), TP_CASE(test_write_tiny), TP_CASE(test_threads),
            TP_CASE(test_bad_input), TP_CASE(test_directory_prefers_json))
