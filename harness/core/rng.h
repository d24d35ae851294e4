/* rng.h — internal Philox helpers shared by tensor creation and dropout (the public part is in
 * telepathy/tensor.h: tp_rng_u32, tp_rng_uniform, tp_rng_normal). */
#ifndef TP_CORE_RNG_H
#define TP_CORE_RNG_H

#include "telepathy/tensor.h"

/* The raw block function (known-answer tested against the Random123 vectors). */
void tp_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The 32-bit value at absolute position index of (seed, stream); does not advance rng. */
uint32_t tp_rng_at(const tp_rng *rng, uint64_t index);
float tp_rng_u32_to_uniform(uint32_t x);
float tp_rng_box_muller(uint32_t x1, uint32_t x2, int which);
/* n normals; each pair of outputs consumes two 32-bit values (cos and sin branches). */
void tp_rng_fill_normal(tp_rng *rng, float *dst, size_t n, float mean, float std);
void tp_rng_fill_uniform(tp_rng *rng, float *dst, size_t n, float lo, float hi);

#endif
