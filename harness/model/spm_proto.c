/* spm_proto.c — protobuf wire-format reader for sentencepiece_model.proto's ModelProto.
 * Field numbers: ModelProto 1 pieces, 2 trainer_spec, 3 normalizer_spec; SentencePiece 1 piece,
 * 2 score, 3 type; TrainerSpec 3 model_type, 24 treat_whitespace_as_suffix, 35 byte_fallback,
 * 40..43 unk/bos/eos/pad ids; NormalizerSpec 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 * 4 remove_extra_whitespaces, 5 escape_whitespaces. */
#include "model/spm_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd {
    const uint8_t *p, *end;
    const char *path;
    const char *where;
} rd;

static tp_status trunc_err(const rd *r, tp_err *err) {
    return tp_errf(err, TP_EFORMAT,
                   "%s: truncated or malformed SentencePiece model in %s (expected a protobuf "
                   "ModelProto; is the file complete?)",
                   r->path, r->where);
}

static tp_status varint(rd *r, uint64_t *v, tp_err *err) {
    uint64_t x = 0;
    for (int s = 0; s < 70; s += 7) {
        if (r->p >= r->end) return trunc_err(r, err);
        uint8_t c = *r->p++;
        x |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) {
            *v = x;
            return TP_OK;
        }
    }
    return trunc_err(r, err);
}

/* Reads a key; for wire type 2 also the payload as a sub-reader. */
static tp_status field(rd *r, int *num, int *wt, uint64_t *v, rd *sub, tp_err *err) {
    uint64_t key;
    TP_TRY(varint(r, &key, err));
    *num = (int)(key >> 3);
    *wt = (int)(key & 7);
    switch (*wt) {
    case 0:
        return varint(r, v, err);
    case 1:
        if (r->end - r->p < 8) return trunc_err(r, err);
        memcpy(v, r->p, 8);
        r->p += 8;
        return TP_OK;
    case 5: {
        if (r->end - r->p < 4) return trunc_err(r, err);
        uint32_t x;
        memcpy(&x, r->p, 4);
        r->p += 4;
        *v = x;
        return TP_OK;
    }
    case 2: {
        uint64_t len;
        TP_TRY(varint(r, &len, err));
        if (len > (uint64_t)(r->end - r->p)) return trunc_err(r, err);
        *sub = (rd){r->p, r->p + len, r->path, r->where};
        r->p += len;
        *v = len;
        return TP_OK;
    }
    default:
        return tp_errf(err, TP_EFORMAT,
                       "%s: %s: unsupported protobuf wire type %d for field %d (expected a "
                       "SentencePiece ModelProto)",
                       r->path, r->where, *wt, *num);
    }
}

static tp_status parse_piece(rd *r, tp_spm_piece *p, tp_err *err) {
    p->piece = "";
    p->len = 0;
    p->score = 0;
    p->type = TP_SPM_NORMAL;
    int have = 0;
    while (r->p < r->end) {
        int num, wt;
        uint64_t v;
        rd sub;
        TP_TRY(field(r, &num, &wt, &v, &sub, err));
        if (num == 1 && wt == 2) {
            p->piece = (const char *)sub.p;
            p->len = (uint32_t)(sub.end - sub.p);
            have = 1;
        } else if (num == 2 && wt == 5) {
            uint32_t x = (uint32_t)v;
            memcpy(&p->score, &x, 4);
        } else if (num == 3 && wt == 0) {
            p->type = (int)v;
        }
    }
    if (!have)
        return tp_errf(err, TP_EFORMAT, "%s: %s: piece without a 'piece' string", r->path,
                       r->where);
    if (p->type < 1 || p->type > 6)
        return tp_errf(err, TP_EFORMAT, "%s: %s: piece type %d (expected 1..6)", r->path, r->where,
                       p->type);
    return TP_OK;
}

static int as_int(uint64_t v) {
    return (int)(int64_t)v;
} /* int32 fields: negative = 10 bytes */

static tp_status parse_trainer(rd *r, tp_spm_model *m, tp_err *err) {
    r->where = "trainer_spec";
    while (r->p < r->end) {
        int num, wt;
        uint64_t v;
        rd sub;
        TP_TRY(field(r, &num, &wt, &v, &sub, err));
        if (wt != 0) continue;
        switch (num) {
        case 3:
            m->model_type = as_int(v);
            break;
        case 24:
            m->treat_ws_as_suffix = v != 0;
            break;
        case 35:
            m->byte_fallback = v != 0;
            break;
        case 40:
            m->unk_id = as_int(v);
            break;
        case 41:
            m->bos_id = as_int(v);
            break;
        case 42:
            m->eos_id = as_int(v);
            break;
        case 43:
            m->pad_id = as_int(v);
            break;
        default:
            break;
        }
    }
    return TP_OK;
}

static tp_status parse_normalizer(rd *r, tp_spm_model *m, tp_err *err) {
    r->where = "normalizer_spec";
    while (r->p < r->end) {
        int num, wt;
        uint64_t v;
        rd sub;
        TP_TRY(field(r, &num, &wt, &v, &sub, err));
        if (num == 1 && wt == 2) {
            size_t l = (size_t)(sub.end - sub.p);
            if (l >= sizeof m->norm_name) l = sizeof m->norm_name - 1;
            memcpy(m->norm_name, sub.p, l);
            m->norm_name[l] = 0;
        } else if (num == 2 && wt == 2) {
            m->charsmap_len = (size_t)(sub.end - sub.p);
        } else if (wt == 0 && num == 3) {
            m->add_dummy_prefix = v != 0;
        } else if (wt == 0 && num == 4) {
            m->remove_extra_ws = v != 0;
        } else if (wt == 0 && num == 5) {
            m->escape_ws = v != 0;
        }
    }
    return TP_OK;
}

tp_status tp_spm_parse(const uint8_t *data, size_t n, const char *path, tp_spm_model *m,
                       tp_err *err) {
    memset(m, 0, sizeof *m);
    /* proto2 defaults */
    m->model_type = 1;
    m->unk_id = 0, m->bos_id = 1, m->eos_id = 2, m->pad_id = -1;
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    rd r = {data, data + n, path, "ModelProto"};
    int cap = 0;
    tp_status st = TP_OK;
    while (r.p < r.end && st == TP_OK) {
        int num, wt;
        uint64_t v;
        rd sub;
        r.where = "ModelProto";
        if ((st = field(&r, &num, &wt, &v, &sub, err)) != TP_OK) break;
        if (num == 1 && wt == 2) {
            if (m->n_pieces == cap) {
                cap = cap ? cap * 2 : 1024;
                tp_spm_piece *p = realloc(m->pieces, (size_t)cap * sizeof *p);
                if (!p) {
                    st = tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
                    break;
                }
                m->pieces = p;
            }
            char where[64];
            snprintf(where, sizeof where, "pieces[%d]", m->n_pieces);
            sub.where = where;
            st = parse_piece(&sub, &m->pieces[m->n_pieces], err);
            if (st == TP_OK) m->n_pieces++;
        } else if (num == 2 && wt == 2) {
            st = parse_trainer(&sub, m, err);
        } else if (num == 3 && wt == 2) {
            st = parse_normalizer(&sub, m, err);
        }
    }
    if (st == TP_OK && m->n_pieces == 0)
        st = tp_errf(err, TP_EFORMAT,
                     "%s: no pieces found (expected a SentencePiece ModelProto, or a "
                     "tokenizer.json)",
                     path);
    if (st != TP_OK) tp_spm_model_free(m);
    return st;
}

void tp_spm_model_free(tp_spm_model *m) {
    free(m->pieces);
    m->pieces = NULL;
    m->n_pieces = 0;
}
