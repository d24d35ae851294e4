/* dtype.c — dtype sizes and names, and the IEEE bf16/f16 <-> f32 conversions
 * (round-to-nearest-even; NaN stays NaN, overflow to inf, subnormals exact). */
#include <string.h>

#include "telepathy/tensor.h"

size_t tp_dtype_size(tp_dtype dt) {
    switch (dt) {
    case TP_F32:
        return 4;
    case TP_BF16:
        return 2;
    case TP_F16:
        return 2;
    case TP_I32:
        return 4;
    default:
        return 0;
    }
}

const char *tp_dtype_name(tp_dtype dt) {
    switch (dt) {
    case TP_F32:
        return "f32";
    case TP_BF16:
        return "bf16";
    case TP_F16:
        return "f16";
    case TP_I32:
        return "i32";
    default:
        return "?";
    }
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t tp_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; /* ties to even; carries into the exponent give inf correctly */
    return (uint16_t)(u >> 16);
}

float tp_bf16_to_f32(uint16_t h) {
    return u2f((uint32_t)h << 16);
}

uint16_t tp_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t ax = u & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {
        /* f16 subnormal (or zero): value = m * 2^-24; round ax's value to a multiple of 2^-24 */
        if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to 0 (2^-25 ties to 0) */
        uint32_t e = ax >> 23;                       /* biased f32 exponent, 102..112 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;   /* 24-bit significand */
        uint32_t shift = 126 - e; /* value = m * 2^(e-150); want units of 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias exponent (127 -> 15) and round 23 -> 10 mantissa bits */
    uint32_t r = ax - 0x38000000u; /* exponent -112 */
    uint32_t lsb = (r >> 13) & 1u;
    r += 0xfffu + lsb;
    return (uint16_t)(sign | (r >> 13));
}

float tp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return u2f(sign | 0x7f800000u | (m << 13)); /* inf / NaN */
    if (e == 0) {
        if (m == 0) return u2f(sign);
        float v = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    return u2f(sign | ((e + 112) << 23) | (m << 13));
}
