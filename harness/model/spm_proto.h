/* spm_proto.h — a reader for SentencePiece's ModelProto (tokenizer.model): the pieces (piece,
 * score, type) and the trainer_spec / normalizer_spec fields encoding depends on. Unknown fields
 * are skipped by wire type, as protobuf requires; every length is bounds-checked. */
#ifndef TP_MODEL_SPM_PROTO_H
#define TP_MODEL_SPM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"

enum {
    TP_SPM_NORMAL = 1,
    TP_SPM_UNKNOWN = 2,
    TP_SPM_CONTROL = 3,
    TP_SPM_USER_DEFINED = 4,
    TP_SPM_UNUSED = 5,
    TP_SPM_BYTE = 6,
};

typedef struct tp_spm_piece {
    const char *piece; /* points into the file buffer; not NUL-terminated */
    uint32_t len;
    float score;
    int type;
} tp_spm_piece;

typedef struct tp_spm_model {
    tp_spm_piece *pieces; /* malloc'ed */
    int n_pieces;
    /* trainer_spec */
    int model_type; /* 1 unigram, 2 bpe, 3 word, 4 char */
    int byte_fallback;
    int unk_id, bos_id, eos_id, pad_id;
    int treat_ws_as_suffix;
    /* normalizer_spec */
    char norm_name[64];
    size_t charsmap_len;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} tp_spm_model;

/* Parses data (n bytes, must outlive m); errors name path and the field. */
tp_status tp_spm_parse(const uint8_t *data, size_t n, const char *path, tp_spm_model *m,
                       tp_err *err);
void tp_spm_model_free(tp_spm_model *m);

#endif
