/* test_dtype.c — bf16/f16 <-> f32: round-to-nearest-even on ties, overflow to inf, NaN kept,
 * subnormals exact, and every 16-bit pattern round-trips. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "telepathy/tensor.h"
#include "tp_test.h"

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16_rounding(void) {
    TP_CHECK(tp_f32_to_bf16(1.0f) == 0x3f80);
    TP_CHECK(tp_f32_to_bf16(bits(0x3f808000u)) == 0x3f80); /* tie, even stays */
    TP_CHECK(tp_f32_to_bf16(bits(0x3f818000u)) == 0x3f82); /* tie, odd rounds up */
    TP_CHECK(tp_f32_to_bf16(bits(0x3f808001u)) == 0x3f81); /* above the tie */
    TP_CHECK(tp_f32_to_bf16(bits(0x3f807fffu)) == 0x3f80);
    TP_CHECK(tp_f32_to_bf16(-1.0f) == 0xbf80);
    TP_CHECK(tp_f32_to_bf16(INFINITY) == 0x7f80);
    TP_CHECK(tp_f32_to_bf16(-INFINITY) == 0xff80);
    TP_CHECK(tp_f32_to_bf16(bits(0x7f7fffffu)) == 0x7f80); /* FLT_MAX rounds to inf */
    TP_CHECK(tp_f32_to_bf16(bits(0x00010000u)) == 0x0001); /* subnormal exact */
    TP_CHECK(tp_f32_to_bf16(bits(0x00008000u)) == 0x0000); /* tie to even (zero) */
    TP_CHECK(tp_f32_to_bf16(-0.0f) == 0x8000);
    uint16_t n = tp_f32_to_bf16(NAN);
    TP_CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    uint16_t n2 = tp_f32_to_bf16(bits(0x7f800001u)); /* NaN with payload only in low bits */
    TP_CHECK((n2 & 0x7f80) == 0x7f80 && (n2 & 0x7f) != 0);
    TP_CHECK(tp_bf16_to_f32(0x4049) == bits(0x40490000u));
}

static void test_f16_rounding(void) {
    TP_CHECK(tp_f32_to_f16(1.0f) == 0x3c00);
    TP_CHECK(tp_f32_to_f16(-2.0f) == 0xc000);
    TP_CHECK(tp_f32_to_f16(65504.0f) == 0x7bff);
    TP_CHECK(tp_f32_to_f16(65519.0f) == 0x7bff);
    TP_CHECK(tp_f32_to_f16(65520.0f) == 0x7c00); /* tie at the top rounds to inf */
    TP_CHECK(tp_f32_to_f16(1e10f) == 0x7c00);
    TP_CHECK(tp_f32_to_f16(-INFINITY) == 0xfc00);
    TP_CHECK(tp_f32_to_f16(ldexpf(1, -14)) == 0x0400); /* smallest normal */
    TP_CHECK(tp_f32_to_f16(ldexpf(1, -24)) == 0x0001); /* smallest subnormal */
    TP_CHECK(tp_f32_to_f16(ldexpf(1, -25)) == 0x0000); /* tie to even: 0 */
    TP_CHECK(tp_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
    TP_CHECK(tp_f32_to_f16(ldexpf(3, -25)) == 0x0002); /* 1.5 ulp tie -> even 2 */
    TP_CHECK(tp_f32_to_f16(ldexpf(1023, -24)) == 0x03ff);
    TP_CHECK(tp_f32_to_f16(ldexpf(2047, -25)) == 0x0400);     /* rounds up into the normals */
    TP_CHECK(tp_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie, even */
    TP_CHECK(tp_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02);
    TP_CHECK(tp_f32_to_f16(-0.0f) == 0x8000);
    uint16_t n = tp_f32_to_f16(NAN);
    TP_CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    TP_CHECK(tp_f16_to_f32(0x0001) == ldexpf(1, -24));
    TP_CHECK(tp_f16_to_f32(0x7bff) == 65504.0f);
    TP_CHECK(isinf(tp_f16_to_f32(0x7c00)));
    TP_CHECK(isnan(tp_f16_to_f32(0x7e00)));
}

/* Every 16-bit pattern survives 16 -> 32 -> 16 (NaNs stay NaN). */
static void test_round_trips(void) {
    int bad_b = 0, bad_h = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float fb = tp_bf16_to_f32((uint16_t)h), fh = tp_f16_to_f32((uint16_t)h);
        if (isnan(fb))
            bad_b += !isnan(tp_bf16_to_f32(tp_f32_to_bf16(fb)));
        else
            bad_b += tp_f32_to_bf16(fb) != h;
        if (isnan(fh))
            bad_h += !isnan(tp_f16_to_f32(tp_f32_to_f16(fh)));
        else
            bad_h += tp_f32_to_f16(fh) != h;
        /* f16 value check against the definition */
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        if (e != 31) {
            double v = e ? ldexp(1.0 + m / 1024.0, (int)e - 15) : ldexp((double)m, -24);
            if (h & 0x8000) v = -v;
            bad_h += (double)fh != v;
        }
    }
    TP_CHECKF(bad_b == 0, "%d bf16 patterns failed", bad_b);
    TP_CHECKF(bad_h == 0, "%d f16 patterns failed", bad_h);
}

/* Random f32 values round to the nearest representable value (ties excluded by the check). */
static void test_nearest(void) {
    uint32_t x = 12345;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        x = x * 1664525u + 1013904223u;
        float f = bits((x & 0x807fffffu) | (((x >> 23) % 30 + 100) << 23)); /* |f| ~ 2^-27..2^2 */
        float b = tp_bf16_to_f32(tp_f32_to_bf16(f)), h = tp_f16_to_f32(tp_f32_to_f16(f));
        uint16_t bb = tp_f32_to_bf16(f), hb = tp_f32_to_f16(f);
        float bn = tp_bf16_to_f32((uint16_t)(bb + 1)), bp = tp_bf16_to_f32((uint16_t)(bb - 1));
        float hn = tp_f16_to_f32((uint16_t)(hb + 1)), hp = tp_f16_to_f32((uint16_t)(hb - 1));
        if (fabsf(f - b) > fabsf(f - bn) || fabsf(f - b) > fabsf(f - bp)) bad++;
        if ((hb & 0x3ff) != 0 && (hb & 0x3ff) != 0x3ff &&
            (fabs((double)f - h) > fabs((double)f - hn) ||
             fabs((double)f - h) > fabs((double)f - hp)))
            bad++;
    }
    TP_CHECKF(bad == 0, "%d values not rounded to nearest", bad);
}

static void test_names(void) {
    TP_CHECK(tp_dtype_size(TP_BF16) == 2 && tp_dtype_size(TP_F32) == 4 &&
             tp_dtype_size(TP_I32) == 4);
    TP_CHECK(!strcmp(tp_dtype_name(TP_F16), "f16"));
}

TP_TEST_RUN(TP_CASE(test_bf16_rounding), TP_CASE(test_f16_rounding), TP_CASE(test_round_trips),
            TP_CASE(test_nearest), TP_CASE(test_names))
