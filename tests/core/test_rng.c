/* test_rng.c — Philox4x32-10 known answers (Random123 vectors), reproducibility from
 * (seed, stream, offset), offset semantics, and rough moments of uniform and normal draws. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

static void test_known_answers(void) {
    uint32_t out[4];
    tp_philox4x32_10((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0}, out);
    TP_CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu &&
             out[3] == 0x9b00dbd8u);
    tp_philox4x32_10((uint32_t[]){~0u, ~0u, ~0u, ~0u}, (uint32_t[]){~0u, ~0u}, out);
    TP_CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u &&
             out[3] == 0x6d5451fdu);
    tp_philox4x32_10((uint32_t[]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                     (uint32_t[]){0xa4093822u, 0x299f31d0u}, out);
    TP_CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u &&
             out[3] == 0x24126ea1u);
}

static void test_offsets(void) {
    uint32_t a[23], b[23];
    tp_rng r1 = {42, 3, 0}, r2 = {42, 3, 0};
    tp_rng_u32(&r1, a, 23);
    tp_rng_u32(&r2, b, 10);
    tp_rng_u32(&r2, b + 10, 13);
    TP_CHECK(!memcmp(a, b, sizeof a));
    TP_CHECK(r1.offset == 23 && r2.offset == 23);
    tp_rng r3 = {42, 3, 7};
    uint32_t c[5];
    tp_rng_u32(&r3, c, 5);
    TP_CHECK(!memcmp(c, a + 7, sizeof c));
    TP_CHECK(tp_rng_at(&(tp_rng){42, 3, 0}, 17) == a[17]);
    tp_rng r4 = {42, 4, 0}, r5 = {43, 3, 0};
    uint32_t d[23], e[23];
    tp_rng_u32(&r4, d, 23);
    tp_rng_u32(&r5, e, 23);
    TP_CHECK(memcmp(a, d, sizeof a) != 0 && memcmp(a, e, sizeof a) != 0);
}

static void test_moments(void) {
    tp_rng r = {7, 0, 0};
    double s = 0, s2 = 0, u = 0, u2 = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double x = tp_rng_normal(&r), y = tp_rng_uniform(&r);
        TP_CHECK(y >= 0 && y < 1);
        s += x, s2 += x * x, u += y, u2 += y * y;
    }
    double m = s / N, v = s2 / N - m * m, um = u / N, uv = u2 / N - um * um;
    TP_CHECK_NEAR(m, 0, 0.01);
    TP_CHECK_NEAR(v, 1, 0.02);
    TP_CHECK_NEAR(um, 0.5, 0.005);
    TP_CHECK_NEAR(uv, 1.0 / 12, 0.002);
}

static void test_tensor_fills(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_rng r1 = {11, 2, 0}, r2 = {11, 2, 0};
    tp_tensor *a = tp_randn(c, TP_DIMS(3, 5), 2.0f, &r1),
              *b = tp_randn(c, TP_DIMS(3, 5), 2.0f, &r2);
    for (int k = 0; k < 15; k++) TP_CHECK(tp_item(a, k) == tp_item(b, k));
    TP_CHECK(r1.offset == 16); /* 15 normals use 8 pairs of 32-bit values */
    tp_err e = {0};
    tp_tensor *p = tp_tensor_alloc(TP_BF16, TP_CPU, TP_DIMS(1000), &e);
    tp_rng r3 = {1, 1, 0};
    TP_CHECK(tp_fill_uniform(p, -1, 1, &r3) == TP_OK);
    double mn = 1, mx = -1;
    for (int k = 0; k < 1000; k++) mn = fmin(mn, tp_item(p, k)), mx = fmax(mx, tp_item(p, k));
    TP_CHECK(mn >= -1 && mx <= 1 && mn < -0.9 && mx > 0.9);
    tp_tensor_free(p);
    tp_ctx_free(c);
}

TP_TEST_RUN(TP_CASE(test_known_answers), TP_CASE(test_offsets), TP_CASE(test_moments),
            TP_CASE(test_tensor_fills))
