/* sha256.h — SHA-256 (FIPS 180-4) of buffers and files, as raw bytes or lowercase hex. Used for
 * config hashes, example/prompt hashes, plugin .so fingerprints and artifact checksums. */
#ifndef TP_UTIL_SHA256_H
#define TP_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"

typedef struct tp_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t buf[64];
    size_t nbuf;
} tp_sha256;

#define TP_SHA256_HEX 65 /* 64 hex digits + NUL */

void tp_sha256_init(tp_sha256 *s);
void tp_sha256_update(tp_sha256 *s, const void *data, size_t n);
void tp_sha256_final(tp_sha256 *s, uint8_t out[32]);

void tp_sha256_buf(const void *data, size_t n, uint8_t out[32]);
/* hex must hold TP_SHA256_HEX bytes */
void tp_sha256_hex(const void *data, size_t n, char *hex);
void tp_sha256_to_hex(const uint8_t digest[32], char *hex);
/* Streams the file; errors name the path. */
tp_status tp_sha256_file_hex(const char *path, char *hex, tp_err *err);

#endif
