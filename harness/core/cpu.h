/* cpu.h — shared pieces of the CPU reference backend: typed element load/store and the
 * per-family kernel declarations that cpu_backend.c puts in the dispatch table. */
#ifndef TP_CORE_CPU_H
#define TP_CORE_CPU_H

#include "core/ctx.h"

static inline float tp_ld(const void *p, tp_dtype dt, int64_t i) {
    switch (dt) {
    case TP_F32:
        return ((const float *)p)[i];
    case TP_BF16:
        return tp_bf16_to_f32(((const uint16_t *)p)[i]);
    case TP_F16:
        return tp_f16_to_f32(((const uint16_t *)p)[i]);
    case TP_I32:
        return (float)((const int32_t *)p)[i];
    default:
        return 0.0f;
    }
}

static inline void tp_st(void *p, tp_dtype dt, int64_t i, double v) {
    switch (dt) {
    case TP_F32:
        ((float *)p)[i] = (float)v;
        break;
    case TP_BF16:
        ((uint16_t *)p)[i] = tp_f32_to_bf16((float)v);
        break;
    case TP_F16:
        ((uint16_t *)p)[i] = tp_f32_to_f16((float)v);
        break;
    case TP_I32:
        ((int32_t *)p)[i] = (int32_t)v;
        break;
    default:
        break;
    }
}

#define F32(t) ((float *)(t)->data)
#define I32(t) ((int32_t *)(t)->data)

/* Applies the BLAS thread policy once (see cpu_matmul.c); tp_ctx_new calls it. */
void tp_cpu_blas_init(void);

/* Strided copy with dtype conversion: dst and src have the same shape (any strides). */
void tp_cpu_copy_strided(const tp_tensor *dst, const tp_tensor *src);

#define TP_CPU_DECL(name)                                                                          \
    tp_status tp_cpu_##name##_fwd(tp_ctx *ctx, tp_node *n);                                        \
    tp_status tp_cpu_##name##_bwd(tp_ctx *ctx, tp_node *n);
#define TP_OP(NAME, name, n_inputs) TP_CPU_DECL(name)
#include "core/ops.def"
#undef TP_OP

#endif
