/* safetensors_dtype.c — dtype names and sizes of the safetensors format, and the exact widening
 * of bf16/f16 to f32. Widening has one right answer (every bf16/f16 value is exactly
 * representable in f32), so the reader does it here without depending on the tensor core. */
#include "model/safetensors_dtype.h"

#include <stdint.h>
#include <string.h>

static const char *const supported[] = {
    [TP_F32] = "F32", [TP_BF16] = "BF16", [TP_F16] = "F16", [TP_I32] = "I32"};
static const size_t sizes[] = {[TP_F32] = 4, [TP_BF16] = 2, [TP_F16] = 2, [TP_I32] = 4};

/* The rest of the format's dtype list: valid files the harness cannot use. */
static const char *const unsupported[] = {"F64", "I64",     "U64",     "I16",     "U16",     "U32",
                                          "I8",  "U8",      "BOOL",    "F8_E4M3", "F8_E5M2", "E8M0",
                                          "F4",  "F6_E2M3", "F6_E3M2", "C64",     "F8_E8M0"};

tp_status tp_st_dtype_parse(const char *s, tp_dtype *out, tp_err *err) {
    for (int i = 0; i < TP_DTYPE_COUNT; i++)
        if (strcmp(s, supported[i]) == 0) {
            *out = (tp_dtype)i;
            return TP_OK;
        }
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strcmp(s, unsupported[i]) == 0)
            return tp_errf(err, TP_EUNSUP,
                           "dtype '%s' is not supported (the harness reads F32, BF16, F16, I32); "
                           "convert the weights to bf16 or f32",
                           s);
    return tp_errf(err, TP_EFORMAT, "unknown dtype '%.32s' (expected F32, BF16, F16 or I32)", s);
}

const char *tp_st_dtype_str(tp_dtype dt) {
    return (unsigned)dt < TP_DTYPE_COUNT ? supported[dt] : NULL;
}

size_t tp_st_dtype_size(tp_dtype dt) {
    return (unsigned)dt < TP_DTYPE_COUNT ? sizes[dt] : 0;
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) {
        if (man == 0) return bits_to_f32(sign);
        /* subnormal: value = man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

tp_status tp_st_convert_to_f32(tp_dtype dt, const void *src, float *dst, size_t n, const char *file,
                               const char *tensor, tp_err *err) {
    switch (dt) {
    case TP_F32:
        memcpy(dst, src, n * sizeof(float));
        return TP_OK;
    case TP_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = bits_to_f32((uint32_t)s[i] << 16);
        return TP_OK;
    }
    case TP_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = half_to_f32(s[i]);
        return TP_OK;
    }
    default:
        return tp_errf(err, TP_EDTYPE, "%s: tensor '%s': dtype %s cannot be read as f32",
                       file ? file : "?", tensor ? tensor : "?",
                       tp_st_dtype_str(dt) ? tp_st_dtype_str(dt) : "invalid");
    }
}
