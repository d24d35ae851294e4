/* llama2c.c — llama2.c checkpoint + tokenizer -> HF layout (config.json, model.safetensors,
 * tokenizer.json). Weight order of the legacy format: token_embedding, rms_att, wq, wk, wv, wo,
 * rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag, [wcls when not shared]. */
#include "model/llama2c.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/safetensors.h"
#include "util/fsutil.h"

static tp_status read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what,
                            tp_err *err) {
    if (fread(buf, 1, n, f) != n)
        return tp_errf(err, TP_EFORMAT, "%s: truncated while reading %s", path, what);
    return TP_OK;
}

tp_status tp_llama2c_read_header(const char *path, tp_llama2c_header *h, tp_err *err) {
    memset(h, 0, sizeof *h);
    FILE *f = fopen(path, "rb");
    if (!f) return tp_errf(err, TP_EIO, "%s: cannot open llama2.c checkpoint", path);
    int32_t v[7];
    tp_status s = read_exact(f, v, sizeof v, path, "the 28-byte header", err);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (s != TP_OK) return s;
    h->dim = v[0], h->hidden_dim = v[1], h->n_layers = v[2], h->n_heads = v[3];
    h->n_kv_heads = v[4], h->vocab_size = v[5] < 0 ? -v[5] : v[5], h->seq_len = v[6];
    h->shared_classifier = v[5] > 0;
    static const char *names[] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                  "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++)
        if (v[i] == 0 || v[i] == INT32_MIN || (i != 5 && v[i] < 0) ||
            (i != 5 && v[i] > (1 << 20)) || (i == 5 && (v[i] > (1 << 22) || v[i] < -(1 << 22))))
            return tp_errf(err, TP_EFORMAT,
                           "%s: header field %s = %d is not plausible (not a llama2.c legacy "
                           "checkpoint?)",
                           path, names[i], (int)v[i]);
    if (h->dim % h->n_heads || h->n_heads % h->n_kv_heads || (h->dim / h->n_heads) % 2)
        return tp_errf(err, TP_EFORMAT,
                       "%s: header dim %d / n_heads %d / n_kv_heads %d do not divide evenly "
                       "(head size must be even)",
                       path, h->dim, h->n_heads, h->n_kv_heads);
    uint64_t L = (uint64_t)h->n_layers, D = (uint64_t)h->dim, F = (uint64_t)h->hidden_dim;
    uint64_t V = (uint64_t)h->vocab_size, hs = D / (uint64_t)h->n_heads;
    uint64_t kv = hs * (uint64_t)h->n_kv_heads;
    uint64_t floats = V * D + L * D + L * D * D + 2 * L * kv * D + L * D * D + L * D +
                      3 * L * F * D + D + (uint64_t)h->seq_len * hs +
                      (h->shared_classifier ? 0 : V * D);
    uint64_t want = 28 + 4 * floats;
    if ((uint64_t)size != want)
        return tp_errf(err, TP_EFORMAT,
                       "%s: file has %ld bytes but the header (dim %d, hidden %d, %d layers, "
                       "%d/%d heads, vocab %d, seq_len %d) implies %llu",
                       path, size, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads,
                       h->vocab_size, h->seq_len, (unsigned long long)want);
    return TP_OK;
}

void tp_llama2c_permute_rope_rows(float *dst, const float *src, int n_heads, int head_dim,
                                  int cols) {
    /* transformers: w.view(n_heads, head_dim/2, 2, cols).transpose(1, 2) */
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int p = 0; p < 2; p++) {
                const float *s = src + ((size_t)h * head_dim + 2 * i + p) * cols;
                float *d = dst + ((size_t)h * head_dim + p * half + i) * cols;
                memcpy(d, s, (size_t)cols * sizeof *d);
            }
}

/* ---- tokenizer ------------------------------------------------------------------------- */

typedef struct piece {
    char *s; /* UTF-8, spaces as U+2581 */
    float score;
} piece;

static void free_pieces(piece *p, int n) {
    for (int i = 0; i < n && p; i++) free(p[i].s);
    free(p);
}

/* llama2.c's export turned U+2581 into ' ' and named BOS/EOS "\n<s>\n" / "\n</s>\n"; undo both
 * so the pieces are the SentencePiece model's again. */
static char *restore_piece(const char *raw, size_t len) {
    if (len == 5 && memcmp(raw, "\n<s>\n", 5) == 0) return strdup("<s>");
    if (len == 6 && memcmp(raw, "\n</s>\n", 6) == 0) return strdup("</s>");
    char *o = malloc(len * 3 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            o[k++] = (char)0xE2, o[k++] = (char)0x96, o[k++] = (char)0x81;
        } else {
            o[k++] = raw[i];
        }
    }
    o[k] = 0;
    return o;
}

static tp_status read_tok(const char *path, int vocab, piece **out, tp_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tp_errf(err, TP_EIO, "%s: cannot open llama2.c tokenizer", path);
    piece *p = calloc((size_t)vocab, sizeof *p);
    tp_status s = p ? TP_OK : tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    int32_t maxlen = 0;
    if (s == TP_OK) s = read_exact(f, &maxlen, 4, path, "max_token_length", err);
    if (s == TP_OK && (maxlen <= 0 || maxlen > 4096))
        s = tp_errf(err, TP_EFORMAT, "%s: max_token_length %d is not plausible", path, maxlen);
    char buf[4097];
    for (int i = 0; i < vocab && s == TP_OK; i++) {
        int32_t len;
        char what[64];
        snprintf(what, sizeof what, "token %d", i);
        s = read_exact(f, &p[i].score, 4, path, what, err);
        if (s == TP_OK) s = read_exact(f, &len, 4, path, what, err);
        if (s == TP_OK && (len <= 0 || len > maxlen))
            s = tp_errf(err, TP_EFORMAT,
                        "%s: token %d has length %d (expected 1..max_token_length %d)", path, i,
                        len, maxlen);
        if (s == TP_OK) s = read_exact(f, buf, (size_t)len, path, what, err);
        if (s == TP_OK && !(p[i].s = restore_piece(buf, (size_t)len)))
            s = tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    }
    if (s == TP_OK && fgetc(f) != EOF)
        s = tp_errf(err, TP_EFORMAT,
                    "%s: trailing bytes after %d tokens (tokenizer for a different vocab size?)",
                    path, vocab);
    fclose(f);
    if (s != TP_OK) {
        free_pieces(p, vocab);
        return s;
    }
    *out = p;
    return TP_OK;
}

typedef struct merge {
    int left, right, merged;
    int left_chars, right_chars;
    float score;
} merge;

static int cmp_merge(const void *a, const void *b) {
    const merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1; /* higher score first */
    if (x->left_chars != y->left_chars) return x->left_chars > y->left_chars ? -1 : 1;
    if (x->right_chars != y->right_chars) return x->right_chars > y->right_chars ? -1 : 1;
    if (x->merged != y->merged) return x->merged < y->merged ? -1 : 1;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return x->right < y->right ? -1 : (x->right > y->right);
}

static int utf8_chars(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Merges as transformers' SentencePieceExtractor (generate_merges) derives them: every split of
 * a piece into two pieces of the vocab, sorted by (score, len(left), len(right)) descending;
 * equal keys keep their order of generation: merged piece id, then the halves' ids. */
static tp_status build_merges(const piece *p, int n, json_t *vocab, json_t *merges_out,
                              const char *path, tp_err *err) {
    size_t cap = 1024, nm = 0;
    merge *m = malloc(cap * sizeof *m);
    if (!m) return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    char left[4200];
    for (int id = 0; id < n; id++) {
        const char *s = p[id].s;
        size_t len = strlen(s);
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split on characters */
            memcpy(left, s, k);
            left[k] = 0;
            json_t *l = json_object_get(vocab, left), *r = json_object_get(vocab, s + k);
            if (!l || !r) continue;
            if (nm == cap) {
                merge *nmv = realloc(m, 2 * cap * sizeof *m);
                if (!nmv) {
                    free(m);
                    return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
                }
                m = nmv;
                cap *= 2;
            }
            m[nm++] = (merge){(int)json_integer_value(l), (int)json_integer_value(r), id,
                              utf8_chars(s, k),           utf8_chars(s + k, len - k), p[id].score};
        }
    }
    qsort(m, nm, sizeof *m, cmp_merge);
    for (size_t i = 0; i < nm; i++)
        json_array_append_new(merges_out, json_pack("[s,s]", p[m[i].left].s, p[m[i].right].s));
    free(m);
    return TP_OK;
}

static json_t *added_token(int id, const char *content) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
                     "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
}

static tp_status write_tokenizer_json(const piece *p, int n, const char *tok_path,
                                      const char *out_path, tp_err *err) {
    if (n < 3 || strcmp(p[0].s, "<unk>") || strcmp(p[1].s, "<s>") || strcmp(p[2].s, "</s>"))
        return tp_errf(err, TP_EFORMAT,
                       "%s: expected ids 0, 1, 2 to be <unk>, BOS, EOS (llama2.c export of a "
                       "SentencePiece model)",
                       tok_path);
    json_t *vocab = json_object();
    for (int i = 0; i < n; i++) {
        if (json_object_get(vocab, p[i].s))
            return json_decref(vocab),
                   tp_errf(err, TP_EFORMAT,
                           "%s: token %d '%s' duplicates "
                           "token %d",
                           tok_path, i, p[i].s,
                           (int)json_integer_value(json_object_get(vocab, p[i].s)));
        if (json_object_set_new(vocab, p[i].s, json_integer(i)) != 0)
            return json_decref(vocab),
                   tp_errf(err, TP_EFORMAT, "%s: token %d is not valid UTF-8", tok_path, i);
    }
    json_t *merges = json_array();
    tp_status s = build_merges(p, n, vocab, merges, tok_path, err);
    if (s != TP_OK) {
        json_decref(vocab);
        json_decref(merges);
        return s;
    }
    json_t *added = json_pack("[o,o,o]", added_token(0, "<unk>"), added_token(1, "<s>"),
                              added_token(2, "</s>"));
    json_t *normalizer =
        json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers",
                  "type", "Prepend", "prepend", "\xe2\x96\x81", "type", "Replace", "pattern",
                  "String", " ", "content", "\xe2\x96\x81");
    json_t *post = json_pack(
        "{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, "
        "{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
        "type", "TemplateProcessing", "single", "SpecialToken", "id", "<s>", "type_id", 0,
        "Sequence", "id", "A", "type_id", 0, "pair", "SpecialToken", "id", "<s>", "type_id", 0,
        "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", "<s>", "type_id", 1, "Sequence",
        "id", "B", "type_id", 1, "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>");
    json_t *decoder = json_pack(
        "{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type", "Sequence",
        "decoders", "type", "Replace", "pattern", "String", "\xe2\x96\x81", "content", " ", "type",
        "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start", 1, "stop", 0);
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                              "dropout", "unk_token", "<unk>", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
                              "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_t *root =
        json_pack("{s:s, s:n, s:n, s:o, s:o, s:n, s:o, s:o, s:o}", "version", "1.0", "truncation",
                  "padding", "added_tokens", added, "normalizer", normalizer, "pre_tokenizer",
                  "post_processor", post, "decoder", decoder, "model", model);
    if (!root || !added || !normalizer || !post || !decoder || !model)
        return tp_errf(err, TP_ENOMEM, "%s: could not build tokenizer.json", out_path);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return tp_errf(err, TP_ENOMEM, "%s: out of memory", out_path);
    s = tp_write_file_atomic(out_path, text, strlen(text), err);
    free(text);
    return s;
}

/* ---- weights ---------------------------------------------------------------------------- */

static tp_status write_config(const tp_llama2c_header *h, const char *path, tp_err *err) {
    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(c, "model_type", json_string("llama"));
    json_object_set_new(c, "vocab_size", json_integer(h->vocab_size));
    json_object_set_new(c, "hidden_size", json_integer(h->dim));
    json_object_set_new(c, "intermediate_size", json_integer(h->hidden_dim));
    json_object_set_new(c, "num_hidden_layers", json_integer(h->n_layers));
    json_object_set_new(c, "num_attention_heads", json_integer(h->n_heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(h->n_kv_heads));
    json_object_set_new(c, "head_dim", json_integer(h->dim / h->n_heads));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "max_position_embeddings", json_integer(h->seq_len));
    json_object_set_new(c, "rms_norm_eps", json_real(1e-5));  /* llama2.c's constant */
    json_object_set_new(c, "rope_theta", json_real(10000.0)); /* llama2.c's constant */
    json_object_set_new(c, "rope_scaling", json_null());
    json_object_set_new(c, "attention_bias", json_false());
    json_object_set_new(c, "mlp_bias", json_false());
    json_object_set_new(c, "tie_word_embeddings", json_boolean(h->shared_classifier));
    json_object_set_new(c, "bos_token_id", json_integer(1));
    json_object_set_new(c, "eos_token_id", json_integer(2));
    json_object_set_new(c, "torch_dtype", json_string("float32"));
    char *text = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(c);
    if (!text) return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    tp_status s = tp_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return s;
}

tp_status tp_import_llama2c(const char *model_bin, const char *tok_bin, const char *out_dir,
                            tp_err *err) {
    tp_llama2c_header h;
    TP_TRY(tp_llama2c_read_header(model_bin, &h, err));
    piece *pieces = NULL;
    TP_TRY(read_tok(tok_bin, h.vocab_size, &pieces, err));
    tp_status s = tp_mkdir_p(out_dir, err);
    char path[4200];
    if (s == TP_OK) s = tp_path_join(path, sizeof path, out_dir, "tokenizer.json", err);
    if (s == TP_OK) s = write_tokenizer_json(pieces, h.vocab_size, tok_bin, path, err);
    free_pieces(pieces, h.vocab_size);
    if (s != TP_OK) return s;

    /* The checkpoint is small enough (llama2.c models are) to hold in memory once. */
    char *raw = NULL;
    size_t rawlen = 0;
    TP_TRY(tp_read_file(model_bin, &raw, &rawlen, err));
    const float *w = (const float *)(void *)(raw + 28);
    int64_t L = h.n_layers, D = h.dim, F = h.hidden_dim, V = h.vocab_size;
    int64_t hs = D / h.n_heads, KV = hs * h.n_kv_heads;
    const float *emb = w, *rms_att = emb + V * D, *wq = rms_att + L * D, *wk = wq + L * D * D,
                *wv = wk + L * KV * D, *wo = wv + L * KV * D, *rms_ffn = wo + L * D * D,
                *w1 = rms_ffn + L * D, *w2 = w1 + L * F * D, *w3 = w2 + L * D * F,
                *rms_final = w3 + L * F * D, *after = rms_final + D + h.seq_len * hs;
    const float *wcls = h.shared_classifier ? NULL : after;
    /* permuted q/k live in their own buffers */
    float *pq = malloc((size_t)(L * D * D) * sizeof *pq);
    float *pk = malloc((size_t)(L * KV * D) * sizeof *pk);
    tp_st_writer *wr = tp_st_writer_new();
    if (!pq || !pk || !wr) s = tp_errf(err, TP_ENOMEM, "%s: out of memory", model_bin);
    for (int64_t l = 0; l < L && s == TP_OK; l++) {
        tp_llama2c_permute_rope_rows(pq + l * D * D, wq + l * D * D, h.n_heads, (int)hs, (int)D);
        tp_llama2c_permute_rope_rows(pk + l * KV * D, wk + l * KV * D, h.n_kv_heads, (int)hs,
                                     (int)D);
    }
    char nm[TP_ST_NAME_MAX];
#define ADD(name, ptr, ...)                                                                        \
    if (s == TP_OK) {                                                                              \
        const int64_t shp_[] = {__VA_ARGS__};                                                      \
        s = tp_st_writer_add(wr, name, TP_F32, (int)(sizeof shp_ / sizeof shp_[0]), shp_, ptr,     \
                             err);                                                                 \
    }
    ADD("model.embed_tokens.weight", emb, V, D);
    for (int64_t l = 0; l < L; l++) {
#define N(suffix) (snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)l, suffix), nm)
        ADD(N("input_layernorm.weight"), rms_att + l * D, D);
        ADD(N("self_attn.q_proj.weight"), pq + l * D * D, D, D);
        ADD(N("self_attn.k_proj.weight"), pk + l * KV * D, KV, D);
        ADD(N("self_attn.v_proj.weight"), wv + l * KV * D, KV, D);
        ADD(N("self_attn.o_proj.weight"), wo + l * D * D, D, D);
        ADD(N("post_attention_layernorm.weight"), rms_ffn + l * D, D);
        ADD(N("mlp.gate_proj.weight"), w1 + l * F * D, F, D);
        ADD(N("mlp.down_proj.weight"), w2 + l * D * F, D, F);
        ADD(N("mlp.up_proj.weight"), w3 + l * F * D, F, D);
#undef N
    }
    ADD("model.norm.weight", rms_final, D);
    if (wcls) ADD("lm_head.weight", wcls, V, D);
#undef ADD
    if (s == TP_OK) s = tp_st_writer_meta(wr, "format", "pt", err);
    if (s == TP_OK) s = tp_st_writer_meta(wr, "source", "llama2.c import", err);
    if (s == TP_OK) s = tp_path_join(path, sizeof path, out_dir, "model.safetensors", err);
    if (s == TP_OK) s = tp_st_writer_write(wr, path, err);
    tp_st_writer_free(wr);
    free(pq);
    free(pk);
    free(raw);
    if (s != TP_OK) return s;
    TP_TRY(tp_path_join(path, sizeof path, out_dir, "config.json", err));
    return write_config(&h, path, err);
}
