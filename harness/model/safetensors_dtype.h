/* safetensors_dtype.h — safetensors dtype strings <-> tp_dtype, element sizes, and exact
 * widening of stored bf16/f16 values to f32 (used by readers that want f32). */
#ifndef TP_MODEL_SAFETENSORS_DTYPE_H
#define TP_MODEL_SAFETENSORS_DTYPE_H

#include <stddef.h>

#include "telepathy/status.h"
#include "telepathy/tensor.h"

/* "F32" | "BF16" | "F16" | "I32"; other safetensors dtypes (F64, I64, U8, BOOL, F8_*, ...) give
 * TP_EUNSUP, an unknown string TP_EFORMAT. */
tp_status tp_st_dtype_parse(const char *s, tp_dtype *out, tp_err *err);
const char *tp_st_dtype_str(tp_dtype dt); /* NULL for an invalid value */
size_t tp_st_dtype_size(tp_dtype dt);     /* 0 for an invalid value */
/* Widens n values of dtype dt (F32/BF16/F16) to f32; I32 is refused (not a float). file and
 * tensor only name the source in errors. */
tp_status tp_st_convert_to_f32(tp_dtype dt, const void *src, float *dst, size_t n, const char *file,
                               const char *tensor, tp_err *err);

#endif
