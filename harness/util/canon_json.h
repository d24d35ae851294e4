/* canon_json.h — canonical JSON: the one byte string a configuration hashes to. Object keys
 * sorted by byte order, no whitespace, strings with minimal escapes (\" \\ \b \f \n \r \t,
 * \u00XX for other control bytes, UTF-8 passed through), integers as decimal, reals in the
 * shortest form that reads back to the same double and always with '.' or 'e' (so 1.0 stays a
 * real: "1.0"), -0.0 as "-0.0". NaN and infinities are refused (JSON has no spelling for them).
 * The config hash is the SHA-256 hex of these bytes. */
#ifndef TP_UTIL_CANON_JSON_H
#define TP_UTIL_CANON_JSON_H

#include <jansson.h>

#include "telepathy/status.h"
#include "util/sha256.h"

/* Returns a malloc'd canonical string in *out. */
tp_status tp_canon_json(const json_t *v, char **out, tp_err *err);
/* Canonical form and its SHA-256 hex (hex holds TP_SHA256_HEX); canon may be NULL. */
tp_status tp_canon_json_hash(const json_t *v, char **canon, char *hex, tp_err *err);
/* Formats a double in the canonical real form into buf (cap >= 32). */
void tp_canon_real(double x, char *buf, size_t cap);

#endif
