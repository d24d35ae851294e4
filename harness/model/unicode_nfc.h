/* unicode_nfc.h — Unicode Normalization Form C (canonical decomposition, canonical ordering,
 * canonical composition, Hangul included) for the tokenizer's NFC normalizer (Qwen2's
 * tokenizer.json asks for it). Tables come from unicode_nfc_gen.py. */
#ifndef TP_MODEL_UNICODE_NFC_H
#define TP_MODEL_UNICODE_NFC_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"

typedef struct tp_nfc_ccc {
    uint32_t cp;
    uint8_t ccc;
} tp_nfc_ccc;
typedef struct tp_nfc_dec {
    uint32_t cp, a, b; /* b == 0: singleton decomposition */
} tp_nfc_dec;
typedef struct tp_nfc_comp {
    uint32_t a, b, c;
} tp_nfc_comp;

extern const tp_nfc_ccc tp_nfc_ccc_table[];
extern const int tp_nfc_ccc_n;
extern const tp_nfc_dec tp_nfc_dec_table[];
extern const int tp_nfc_dec_n;
extern const tp_nfc_comp tp_nfc_comp_table[];
extern const int tp_nfc_comp_n;
extern const char tp_nfc_unicode_version[];

/* NFC of the valid UTF-8 text s[0..n); *out is malloc'ed (NUL-terminated). */
tp_status tp_unicode_nfc(const char *s, size_t n, char **out, size_t *out_n, tp_err *err);

#endif
