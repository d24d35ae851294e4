/* tokenizer_json.c — builds a tokenizer from a Hugging Face tokenizer.json: model BPE (vocab,
 * merges as "a b" strings or [a, b] pairs, unk_token, byte_fallback, fuse_unk, ignore_merges),
 * added_tokens with their flags, normalizer (Sequence / Prepend / Replace / NFC), pre-tokenizer
 * (Sequence / Split regex / ByteLevel / Metaspace), post-processor (TemplateProcessing, optionally
 * inside a Sequence with ByteLevel) and decoder (Sequence / ByteLevel / Replace / ByteFallback /
 * Fuse / Strip / Metaspace). Anything else is refused with the field path and what is supported,
 * never silently skipped. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"

#define FAIL_FMT(t, err, ...) tp_errf(err, TP_EFORMAT, __VA_ARGS__)

static const char *type_of(json_t *o) {
    json_t *ty = json_object_get(o, "type");
    return json_is_string(ty) ? json_string_value(ty) : NULL;
}

static int get_bool(json_t *o, const char *k, int def) {
    json_t *v = json_object_get(o, k);
    if (json_is_boolean(v)) return json_is_true(v);
    return def;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* ---- model ------------------------------------------------------------------------------ */

static tp_status load_vocab(tp_tokenizer *t, json_t *vocab, int max_added_id, tp_err *err) {
    if (!json_is_object(vocab))
        return FAIL_FMT(t, err, "%s: field 'model.vocab': expected an object of piece -> id",
                        t->path);
    int max_id = max_added_id;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000000)
            return FAIL_FMT(t, err,
                            "%s: field 'model.vocab' entry \"%s\": expected a non-negative "
                            "integer id",
                            t->path, k);
        if ((int)json_integer_value(v) > max_id) max_id = (int)json_integer_value(v);
    }
    TP_TRY(tp_tok_alloc_ids(t, max_id + 1, err));
    size_t n = json_object_size(vocab);
    const char **keys = malloc((n + 1) * sizeof *keys);
    uint32_t *lens = malloc((n + 1) * sizeof *lens);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    if (!keys || !lens || !ids) {
        free(keys), free(lens), free(ids);
        return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    }
    size_t i = 0;
    tp_status st = TP_OK;
    json_object_foreach(vocab, k, v) {
        keys[i] = k;
        lens[i] = (uint32_t)strlen(k); /* jansson keys hold no NUL: fine for real vocabularies */
        ids[i] = (int32_t)json_integer_value(v);
        if (st == TP_OK) st = tp_tok_set_piece(t, ids[i], k, lens[i], err);
        i++;
    }
    if (st == TP_OK) st = tp_tok_build_vocab(t, keys, lens, ids, (int)n, err);
    free(keys), free(lens), free(ids);
    TP_TRY(st);
    t->n_vocab = (int)json_object_size(vocab);
    return TP_OK;
}

static tp_status load_merges(tp_tokenizer *t, json_t *merges, tp_err *err) {
    if (!merges || json_is_null(merges)) return TP_OK;
    if (!json_is_array(merges))
        return FAIL_FMT(t, err, "%s: field 'model.merges': expected an array", t->path);
    size_t n = json_array_size(merges);
    TP_TRY(tp_tok_pairmap_init(&t->merges, (uint32_t)n, err));
    char buf[1024];
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return FAIL_FMT(t, err,
                                "%s: field 'model.merges[%zu]' (\"%s\"): expected two pieces "
                                "separated by one space",
                                t->path, i, s);
            a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(sp + 1);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)), la = strlen(a);
            b = json_string_value(json_array_get(m, 1)), lb = strlen(b);
        } else {
            return FAIL_FMT(t, err,
                            "%s: field 'model.merges[%zu]': expected \"a b\" or [\"a\", \"b\"]",
                            t->path, i);
        }
        int ia = tp_tok_strmap_get(&t->vocab, a, (uint32_t)la);
        int ib = tp_tok_strmap_get(&t->vocab, b, (uint32_t)lb);
        if (la + lb >= sizeof buf)
            return FAIL_FMT(t, err, "%s: field 'model.merges[%zu]': piece too long", t->path, i);
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int ic = tp_tok_strmap_get(&t->vocab, buf, (uint32_t)(la + lb));
        if (ia < 0 || ib < 0 || ic < 0)
            return FAIL_FMT(t, err,
                            "%s: field 'model.merges[%zu]' (\"%.*s\" + \"%.*s\"): %s is not in "
                            "model.vocab",
                            t->path, i, (int)la, a, (int)lb, b,
                            ia < 0   ? "the left piece"
                            : ib < 0 ? "the right piece"
                                     : "the merged piece");
        tp_tok_pairmap_put(&t->merges, ia, ib, (int32_t)i, ic);
    }
    t->n_merges = (int)n;
    return TP_OK;
}

static tp_status load_model(tp_tokenizer *t, json_t *model, int max_added_id, tp_err *err) {
    if (!json_is_object(model))
        return FAIL_FMT(t, err, "%s: field 'model': expected an object", t->path);
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE") != 0)
        return tp_errf(err, TP_EUNSUP,
                       "%s: field 'model.type' is \"%s\": only \"BPE\" tokenizers are supported "
                       "(Llama 3, Qwen2, Mistral/Llama 2 style)",
                       t->path, ty);
    if (!ty && !json_object_get(model, "merges"))
        return FAIL_FMT(t, err, "%s: field 'model.type': missing (expected \"BPE\")", t->path);
    json_t *drop = json_object_get(model, "dropout");
    if (drop && !json_is_null(drop) && !(json_is_number(drop) && json_number_value(drop) == 0.0))
        return tp_errf(err, TP_EUNSUP,
                       "%s: field 'model.dropout': BPE dropout is not supported (expected null)",
                       t->path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *a = json_object_get(model, affixes[i]);
        if (a && !json_is_null(a) && !(json_is_string(a) && json_string_length(a) == 0))
            return tp_errf(err, TP_EUNSUP, "%s: field 'model.%s' is not supported (expected null)",
                           t->path, affixes[i]);
    }
    TP_TRY(load_vocab(t, json_object_get(model, "vocab"), max_added_id, err));
    TP_TRY(load_merges(t, json_object_get(model, "merges"), err));
    t->ignore_merges = get_bool(model, "ignore_merges", 0);
    t->byte_fallback = get_bool(model, "byte_fallback", 0);
    t->fuse_unk = get_bool(model, "fuse_unk", 0);
    json_t *unk = json_object_get(model, "unk_token");
    t->unk_id = -1;
    if (json_is_string(unk)) {
        t->unk_id =
            tp_tok_strmap_get(&t->vocab, json_string_value(unk), (uint32_t)json_string_length(unk));
        if (t->unk_id < 0)
            return FAIL_FMT(t, err, "%s: field 'model.unk_token' (\"%s\") is not in model.vocab",
                            t->path, json_string_value(unk));
    }
    return TP_OK;
}

/* ---- added tokens ----------------------------------------------------------------------- */

static tp_status load_added(tp_tokenizer *t, json_t *arr, tp_err *err) {
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(arr, i);
        json_t *id = json_object_get(a, "id"), *c = json_object_get(a, "content");
        if (!json_is_integer(id) || !json_is_string(c) || json_string_length(c) == 0)
            return FAIL_FMT(t, err,
                            "%s: field 'added_tokens[%zu]': expected {\"id\": int, \"content\": "
                            "non-empty string, ...}",
                            t->path, i);
        tp_tok_added *d = &t->added[t->n_added++];
        d->id = (int)json_integer_value(id);
        d->len = (int)json_string_length(c);
        d->content = dup_n(json_string_value(c), (size_t)d->len);
        if (!d->content) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
        d->special = (uint8_t)get_bool(a, "special", 0);
        d->lstrip = (uint8_t)get_bool(a, "lstrip", 0);
        d->rstrip = (uint8_t)get_bool(a, "rstrip", 0);
        d->single_word = (uint8_t)get_bool(a, "single_word", 0);
        /* HF: normalized defaults to !special */
        d->normalized = (uint8_t)get_bool(a, "normalized", !d->special);
    }
    return TP_OK;
}

/* ---- normalizer ------------------------------------------------------------------------- */

static tp_status add_norm(tp_tokenizer *t, tp_tok_norm n, tp_err *err) {
    tp_tok_norm *v = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *v);
    if (!v) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    t->norm = v;
    t->norm[t->n_norm++] = n;
    return TP_OK;
}

static tp_status string_pattern(tp_tokenizer *t, json_t *o, const char *where, const char **s,
                                tp_err *err) {
    json_t *p = json_object_get(o, "pattern");
    json_t *str = json_object_get(p, "String");
    if (!json_is_string(str))
        return tp_errf(err, TP_EUNSUP,
                       "%s: field '%s.pattern': only {\"String\": ...} patterns are supported",
                       t->path, where);
    *s = json_string_value(str);
    return TP_OK;
}

static tp_status load_normalizer(tp_tokenizer *t, json_t *n, const char *where, tp_err *err) {
    if (!n || json_is_null(n)) return TP_OK;
    const char *ty = type_of(n);
    if (!ty) return FAIL_FMT(t, err, "%s: field '%s.type': expected a string", t->path, where);
    char sub[128];
    if (strcmp(ty, "Sequence") == 0) {
        json_t *arr = json_object_get(n, "normalizers");
        if (!json_is_array(arr))
            return FAIL_FMT(t, err, "%s: field '%s.normalizers': expected an array", t->path,
                            where);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", where, i);
            TP_TRY(load_normalizer(t, json_array_get(arr, i), sub, err));
        }
        return TP_OK;
    }
    if (strcmp(ty, "Prepend") == 0) {
        json_t *p = json_object_get(n, "prepend");
        if (!json_is_string(p))
            return FAIL_FMT(t, err, "%s: field '%s.prepend': expected a string", t->path, where);
        tp_tok_norm d = {TP_NORM_PREPEND, dup_n(json_string_value(p), json_string_length(p)), NULL,
                         (int)json_string_length(p), 0};
        return add_norm(t, d, err);
    }
    if (strcmp(ty, "Replace") == 0) {
        const char *pat;
        snprintf(sub, sizeof sub, "%s", where);
        TP_TRY(string_pattern(t, n, sub, &pat, err));
        json_t *c = json_object_get(n, "content");
        if (!json_is_string(c) || !pat[0])
            return FAIL_FMT(t, err,
                            "%s: field '%s.content': expected a string (and a non-empty "
                            "pattern)",
                            t->path, where);
        tp_tok_norm d = {TP_NORM_REPLACE, dup_n(pat, strlen(pat)),
                         dup_n(json_string_value(c), json_string_length(c)), (int)strlen(pat),
                         (int)json_string_length(c)};
        return add_norm(t, d, err);
    }
    if (strcmp(ty, "NFC") == 0) return add_norm(t, (tp_tok_norm){TP_NORM_NFC, 0, 0, 0, 0}, err);
    return tp_errf(err, TP_EUNSUP,
                   "%s: field '%s.type' is \"%s\": supported normalizers are Sequence, Prepend, "
                   "Replace (String pattern) and NFC",
                   t->path, where, ty);
}

/* ---- pre-tokenizer ---------------------------------------------------------------------- */

static tp_status load_pretok(tp_tokenizer *t, json_t *p, const char *where, tp_err *err) {
    if (!p || json_is_null(p)) return TP_OK;
    const char *ty = type_of(p);
    if (!ty) return FAIL_FMT(t, err, "%s: field '%s.type': expected a string", t->path, where);
    char sub[128];
    if (strcmp(ty, "Sequence") == 0) {
        json_t *arr = json_object_get(p, "pretokenizers");
        if (!json_is_array(arr))
            return FAIL_FMT(t, err, "%s: field '%s.pretokenizers': expected an array", t->path,
                            where);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
            TP_TRY(load_pretok(t, json_array_get(arr, i), sub, err));
        }
        return TP_OK;
    }
    if (strcmp(ty, "Split") == 0) {
        json_t *pat = json_object_get(p, "pattern");
        json_t *re = json_object_get(pat, "Regex");
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!json_is_string(re))
            return tp_errf(err, TP_EUNSUP,
                           "%s: field '%s.pattern': only {\"Regex\": ...} is supported", t->path,
                           where);
        if (!beh || strcmp(beh, "Isolated") != 0 || get_bool(p, "invert", 0))
            return tp_errf(err, TP_EUNSUP,
                           "%s: field '%s.behavior': only \"Isolated\" with invert false is "
                           "supported (got \"%s\")",
                           t->path, where, beh ? beh : "?");
        if (t->pre == TP_PRE_METASPACE)
            return tp_errf(err, TP_EUNSUP, "%s: field '%s': Split after Metaspace is not supported",
                           t->path, where);
        snprintf(sub, sizeof sub, "%s.pattern.Regex", where);
        TP_TRY(tp_tok_compile_regex(t, json_string_value(re), sub, err));
        return TP_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        if (t->pre == TP_PRE_BYTELEVEL)
            return tp_errf(err, TP_EUNSUP, "%s: field '%s': two ByteLevel pre-tokenizers", t->path,
                           where);
        t->pre = TP_PRE_BYTELEVEL;
        t->bl_add_prefix_space = get_bool(p, "add_prefix_space", 1);
        if (get_bool(p, "use_regex", 1)) {
            static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| "
                                       "?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
            snprintf(sub, sizeof sub, "%s (GPT-2 regex)", where);
            TP_TRY(tp_tok_compile_regex(t, gpt2, sub, err));
        }
        return TP_OK;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        if (t->pre != TP_PRE_NONE || t->n_re)
            return tp_errf(err, TP_EUNSUP,
                           "%s: field '%s': Metaspace combined with other pre-tokenizers is not "
                           "supported",
                           t->path, where);
        t->pre = TP_PRE_METASPACE;
        json_t *r = json_object_get(p, "replacement");
        const char *rep = json_is_string(r) ? json_string_value(r) : "\xe2\x96\x81";
        if (strlen(rep) >= sizeof t->ms_repl || !rep[0])
            return FAIL_FMT(t, err, "%s: field '%s.replacement': expected one character", t->path,
                            where);
        strcpy(t->ms_repl, rep);
        t->ms_repl_len = (int)strlen(rep);
        const char *ps = json_string_value(json_object_get(p, "prepend_scheme"));
        if (ps) {
            if (strcmp(ps, "always") == 0)
                t->ms_prepend = TP_PREPEND_ALWAYS;
            else if (strcmp(ps, "first") == 0)
                t->ms_prepend = TP_PREPEND_FIRST;
            else if (strcmp(ps, "never") == 0)
                t->ms_prepend = TP_PREPEND_NEVER;
            else
                return FAIL_FMT(t, err,
                                "%s: field '%s.prepend_scheme': expected always, first or never",
                                t->path, where);
        } else {
            t->ms_prepend =
                get_bool(p, "add_prefix_space", 1) ? TP_PREPEND_ALWAYS : TP_PREPEND_NEVER;
        }
        t->ms_split = get_bool(p, "split", 1);
        return TP_OK;
    }
    return tp_errf(err, TP_EUNSUP,
                   "%s: field '%s.type' is \"%s\": supported pre-tokenizers are Sequence, Split "
                   "(Regex, Isolated), ByteLevel and Metaspace",
                   t->path, where, ty);
}

/* ---- post-processor --------------------------------------------------------------------- */

static tp_status template_special(tp_tokenizer *t, json_t *tp, json_t *item, const char *where,
                                  int *id, tp_err *err) {
    json_t *st = json_object_get(item, "SpecialToken");
    const char *name = json_string_value(json_object_get(st, "id"));
    json_t *sp = json_object_get(json_object_get(tp, "special_tokens"), name ? name : "");
    json_t *ids = json_object_get(sp, "ids");
    if (!name || !json_is_array(ids) || json_array_size(ids) != 1 ||
        !json_is_integer(json_array_get(ids, 0)))
        return FAIL_FMT(t, err,
                        "%s: field '%s': expected a SpecialToken listed in special_tokens with "
                        "exactly one id",
                        t->path, where);
    *id = (int)json_integer_value(json_array_get(ids, 0));
    if (*id < 0 || *id >= t->n_ids)
        return FAIL_FMT(t, err, "%s: field '%s': id %d is outside the vocabulary", t->path, where,
                        *id);
    return TP_OK;
}

static tp_status load_post(tp_tokenizer *t, json_t *p, const char *where, tp_err *err) {
    if (!p || json_is_null(p)) return TP_OK;
    const char *ty = type_of(p);
    if (!ty) return FAIL_FMT(t, err, "%s: field '%s.type': expected a string", t->path, where);
    char sub[160];
    if (strcmp(ty, "Sequence") == 0) {
        json_t *arr = json_object_get(p, "processors");
        if (!json_is_array(arr))
            return FAIL_FMT(t, err, "%s: field '%s.processors': expected an array", t->path, where);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.processors[%zu]", where, i);
            TP_TRY(load_post(t, json_array_get(arr, i), sub, err));
        }
        return TP_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) return TP_OK; /* only moves offsets */
    if (strcmp(ty, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(p, "single");
        if (!json_is_array(single))
            return FAIL_FMT(t, err, "%s: field '%s.single': expected an array", t->path, where);
        int seen_seq = 0;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *it = json_array_get(single, i);
            snprintf(sub, sizeof sub, "%s.single[%zu]", where, i);
            if (json_object_get(it, "Sequence")) {
                if (seen_seq)
                    return tp_errf(err, TP_EUNSUP, "%s: field '%s': two sequences in 'single'",
                                   t->path, sub);
                seen_seq = 1;
                continue;
            }
            int id = -1;
            TP_TRY(template_special(t, p, it, sub, &id, err));
            if (!seen_seq) {
                if (t->tmpl_bos >= 0)
                    return tp_errf(err, TP_EUNSUP,
                                   "%s: field '%s': more than one leading special "
                                   "token",
                                   t->path, sub);
                t->tmpl_bos = id;
            } else {
                if (t->tmpl_eos >= 0)
                    return tp_errf(err, TP_EUNSUP,
                                   "%s: field '%s': more than one trailing "
                                   "special token",
                                   t->path, sub);
                t->tmpl_eos = id;
            }
        }
        if (!seen_seq)
            return FAIL_FMT(t, err, "%s: field '%s.single': no {\"Sequence\": ...} item", t->path,
                            where);
        return TP_OK;
    }
    return tp_errf(err, TP_EUNSUP,
                   "%s: field '%s.type' is \"%s\": supported post-processors are "
                   "TemplateProcessing, ByteLevel and Sequence",
                   t->path, where, ty);
}

/* ---- decoder ---------------------------------------------------------------------------- */

static tp_status add_dec(tp_tokenizer *t, tp_tok_dec d, tp_err *err) {
    tp_tok_dec *v = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *v);
    if (!v) return tp_errf(err, TP_ENOMEM, "tokenizer: out of memory");
    t->dec = v;
    t->dec[t->n_dec++] = d;
    return TP_OK;
}

static tp_status load_decoder(tp_tokenizer *t, json_t *d, const char *where, tp_err *err) {
    if (!d || json_is_null(d)) return TP_OK;
    const char *ty = type_of(d);
    if (!ty) return FAIL_FMT(t, err, "%s: field '%s.type': expected a string", t->path, where);
    char sub[128];
    tp_tok_dec z;
    memset(&z, 0, sizeof z);
    if (strcmp(ty, "Sequence") == 0) {
        json_t *arr = json_object_get(d, "decoders");
        if (!json_is_array(arr))
            return FAIL_FMT(t, err, "%s: field '%s.decoders': expected an array", t->path, where);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", where, i);
            TP_TRY(load_decoder(t, json_array_get(arr, i), sub, err));
        }
        return TP_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) return z.type = TP_DEC_BYTELEVEL, add_dec(t, z, err);
    if (strcmp(ty, "ByteFallback") == 0) return z.type = TP_DEC_BYTEFALLBACK, add_dec(t, z, err);
    if (strcmp(ty, "Fuse") == 0) return z.type = TP_DEC_FUSE, add_dec(t, z, err);
    if (strcmp(ty, "Replace") == 0) {
        const char *pat;
        TP_TRY(string_pattern(t, d, where, &pat, err));
        json_t *c = json_object_get(d, "content");
        if (!json_is_string(c) || !pat[0])
            return FAIL_FMT(t, err, "%s: field '%s.content': expected a string", t->path, where);
        z.type = TP_DEC_REPLACE;
        z.arg = dup_n(pat, strlen(pat));
        z.arg_len = (int)strlen(pat);
        z.arg2 = dup_n(json_string_value(c), json_string_length(c));
        z.arg2_len = (int)json_string_length(c);
        return add_dec(t, z, err);
    }
    if (strcmp(ty, "Strip") == 0) {
        json_t *c = json_object_get(d, "content");
        json_t *st = json_object_get(d, "start"), *sp = json_object_get(d, "stop");
        if (!json_is_string(c) || json_string_length(c) == 0 || !json_is_integer(st) ||
            !json_is_integer(sp))
            return FAIL_FMT(t, err,
                            "%s: field '%s': expected {\"content\": char, \"start\": int, "
                            "\"stop\": int}",
                            t->path, where);
        z.type = TP_DEC_STRIP;
        z.arg = dup_n(json_string_value(c), json_string_length(c));
        z.arg_len = (int)json_string_length(c);
        z.n_start = (int)json_integer_value(st);
        z.n_stop = (int)json_integer_value(sp);
        return add_dec(t, z, err);
    }
    if (strcmp(ty, "Metaspace") == 0) {
        json_t *r = json_object_get(d, "replacement");
        const char *rep = json_is_string(r) ? json_string_value(r) : "\xe2\x96\x81";
        const char *ps = json_string_value(json_object_get(d, "prepend_scheme"));
        z.type = TP_DEC_METASPACE;
        z.arg = dup_n(rep, strlen(rep));
        z.arg_len = (int)strlen(rep);
        z.prepend_first = ps ? strcmp(ps, "never") != 0 : get_bool(d, "add_prefix_space", 1);
        return add_dec(t, z, err);
    }
    return tp_errf(err, TP_EUNSUP,
                   "%s: field '%s.type' is \"%s\": supported decoders are Sequence, ByteLevel, "
                   "Replace, ByteFallback, Fuse, Strip and Metaspace",
                   t->path, where, ty);
}

/* ---- top level -------------------------------------------------------------------------- */

static int first_piece(const tp_tokenizer *t, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        int id = tp_tokenizer_token_id(t, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

tp_status tp_tok_load_json(tp_tokenizer *t, const char *path, tp_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!root) {
        if (je.line < 0 || strstr(je.text, "unable to open"))
            return tp_errf(err, TP_EIO, "%s: cannot read: %s", path, je.text);
        return tp_errf(err, TP_EFORMAT,
                       "%s: line %d, column %d: malformed JSON: %s (expected a complete "
                       "tokenizer.json; is the file truncated?)",
                       path, je.line, je.column, je.text);
    }
    tp_status st = TP_OK;
    if (!json_is_object(root)) {
        st = tp_errf(err, TP_EFORMAT, "%s: expected a JSON object at the top level", path);
        goto out;
    }
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added)) {
        st = tp_errf(err, TP_EFORMAT, "%s: field 'added_tokens': expected an array", path);
        goto out;
    }
    int max_added = -1;
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *id = json_object_get(json_array_get(added, i), "id");
        if (json_is_integer(id) && json_integer_value(id) > max_added &&
            json_integer_value(id) < 10000000)
            max_added = (int)json_integer_value(id);
    }
    if (!json_object_get(root, "model")) {
        st = tp_errf(err, TP_EFORMAT, "%s: field 'model': missing (expected the BPE model)", path);
        goto out;
    }
    if ((st = load_model(t, json_object_get(root, "model"), max_added, err)) != TP_OK) goto out;
    if ((st = load_added(t, added, err)) != TP_OK) goto out;
    for (int i = 0; i < t->n_added; i++) {
        tp_tok_added *a = &t->added[i];
        if (a->id < 0 || a->id >= t->n_ids) {
            st = tp_errf(err, TP_EFORMAT, "%s: field 'added_tokens[%d].id' = %d is out of range",
                         path, i, a->id);
            goto out;
        }
        if ((st = tp_tok_set_piece(t, a->id, a->content, (size_t)a->len, err)) != TP_OK) goto out;
        t->is_added[a->id] = 1;
        t->is_special[a->id] = a->special;
    }
    if ((st = tp_tok_index_added(t, err)) != TP_OK) goto out;
    if ((st = load_normalizer(t, json_object_get(root, "normalizer"), "normalizer", err)) != TP_OK)
        goto out;
    if ((st = load_pretok(t, json_object_get(root, "pre_tokenizer"), "pre_tokenizer", err)) !=
        TP_OK)
        goto out;
    t->tmpl_bos = t->tmpl_eos = -1;
    if ((st = load_post(t, json_object_get(root, "post_processor"), "post_processor", err)) !=
        TP_OK)
        goto out;
    if ((st = load_decoder(t, json_object_get(root, "decoder"), "decoder", err)) != TP_OK) goto out;

    t->kind = t->pre == TP_PRE_BYTELEVEL ? TP_TOK_KIND_BYTELEVEL : TP_TOK_KIND_SPM;
    if (t->kind == TP_TOK_KIND_BYTELEVEL && t->byte_fallback) {
        st = tp_errf(err, TP_EUNSUP, "%s: ByteLevel with byte_fallback is not supported", path);
        goto out;
    }
    t->add_bos = t->tmpl_bos >= 0;
    t->add_eos = t->tmpl_eos >= 0;
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    static const char *const pad_names[] = {"<pad>", "<|pad|>", NULL};
    t->bos_id = t->tmpl_bos >= 0 ? t->tmpl_bos : first_piece(t, bos_names);
    t->eos_id = t->tmpl_eos >= 0 ? t->tmpl_eos : first_piece(t, eos_names);
    t->pad_id = first_piece(t, pad_names);
out:
    json_decref(root);
    return st;
}
