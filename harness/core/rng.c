/* rng.c — Philox4x32-10 (Salmon et al., SC'11): key = seed (64 bits), counter = (offset / 4 as
 * 64 bits, stream as 64 bits). A draw is a pure function of (seed, stream, offset), so any
 * backend or thread count reproduces it. Uniforms use 24 bits; normals use Box-Muller on pairs. */
#include <math.h>

#include "core/rng.h"

void tp_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t k0 = key[0], k1 = key[1];
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    tp_philox4x32_10(ctr, key, out);
}

uint32_t tp_rng_at(const tp_rng *rng, uint64_t index) {
    uint32_t b[4];
    philox_block(rng->seed, rng->stream, index >> 2, b);
    return b[index & 3];
}

void tp_rng_u32(tp_rng *rng, uint32_t *out, size_t n) {
    size_t i = 0;
    uint64_t idx = rng->offset;
    while (i < n) {
        uint32_t b[4];
        philox_block(rng->seed, rng->stream, idx >> 2, b);
        for (unsigned lane = (unsigned)(idx & 3); lane < 4 && i < n; lane++, i++, idx++)
            out[i] = b[lane];
    }
    rng->offset = idx;
}

float tp_rng_u32_to_uniform(uint32_t x) {
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* Box-Muller on two 32-bit values; which = 0 gives the cosine branch, 1 the sine branch. */
float tp_rng_box_muller(uint32_t x1, uint32_t x2, int which) {
    double u1 = ((double)(x1 >> 8) + 0.5) * (1.0 / 16777216.0); /* (0,1): log is finite */
    double u2 = (double)(x2 >> 8) * (1.0 / 16777216.0);
    double r = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586 * u2;
    return (float)(which ? r * sin(th) : r * cos(th));
}

float tp_rng_uniform(tp_rng *rng) {
    uint32_t x;
    tp_rng_u32(rng, &x, 1);
    return tp_rng_u32_to_uniform(x);
}

float tp_rng_normal(tp_rng *rng) {
    uint32_t x[2];
    tp_rng_u32(rng, x, 2);
    return tp_rng_box_muller(x[0], x[1], 0);
}

void tp_rng_fill_normal(tp_rng *rng, float *dst, size_t n, float mean, float std) {
    uint32_t x[4];
    size_t i = 0;
    while (i < n) {
        tp_rng_u32(rng, x, 2);
        dst[i++] = mean + std * tp_rng_box_muller(x[0], x[1], 0);
        if (i < n) dst[i++] = mean + std * tp_rng_box_muller(x[0], x[1], 1);
    }
}

void tp_rng_fill_uniform(tp_rng *rng, float *dst, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        tp_rng_u32(rng, &x, 1);
        dst[i] = lo + (hi - lo) * tp_rng_u32_to_uniform(x);
    }
}
