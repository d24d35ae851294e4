/* cuda_common.h — shared pieces of the CUDA backend: the one stream every kernel and cuBLASLt
 * call runs on, error macros that name file:line, typed element load/store (every kernel reads
 * f32/bf16/f16/i32 inputs and writes the output dtype the front end chose, accumulating in f32),
 * 4-dim strided indexing, warp/block reductions, and the per-family entry points that
 * cuda_backend.cu puts in the table. Included only by the kernels/ .cu files (C++ compiled by
 * nvcc). */
#ifndef TP_KERNELS_CUDA_COMMON_H
#define TP_KERNELS_CUDA_COMMON_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

/* tensor.h names a function-table field `new`, a C++ keyword: rename it for this C++ unit only
 * (the declarations paste it into tp_new, which is unaffected). */
#define new tp_api_new_field
extern "C" {
#include "core/ctx.h"
}
#undef new

/* The stream of the backend (non-blocking, created at registration). */
extern cudaStream_t tp_cu_stream;

/* Fails the ctx with TP_ECUDA naming the call, file and line. */
#define CUDA_CHECK(ctx, call)                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return tp_ctx_fail((ctx), TP_ECUDA, "%s:%d: %s: %s", __FILE__, __LINE__, #call,        \
                               cudaGetErrorString(e_));                                            \
    } while (0)
/* After a launch: a bad configuration shows up here, not at the launch. */
#define CUDA_LAUNCH_CHECK(ctx, what)                                                               \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess)                                                                     \
            return tp_ctx_fail((ctx), TP_ECUDA, "%s:%d: kernel %s: %s", __FILE__, __LINE__,        \
                               (what), cudaGetErrorString(e_));                                    \
    } while (0)

#define TP_CU_THREADS 256

static inline unsigned tp_cu_blocks(int64_t n, int threads = TP_CU_THREADS) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 16) b = 65535LL * 16; /* grid-stride loops cover the rest */
    return (unsigned)b;
}

#define GRID_LOOP(i, n)                                                                            \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)blockDim.x * gridDim.x)

__device__ __forceinline__ float ldf(const void *p, int dt, int64_t i) {
    switch (dt) {
    case TP_F32:
        return ((const float *)p)[i];
    case TP_BF16:
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case TP_F16:
        return __half2float(((const __half *)p)[i]);
    default:
        return (float)((const int32_t *)p)[i];
    }
}

__device__ __forceinline__ void stf(void *p, int dt, int64_t i, float v) {
    switch (dt) {
    case TP_F32:
        ((float *)p)[i] = v;
        break;
    case TP_BF16:
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
        break;
    case TP_F16:
        ((__half *)p)[i] = __float2half_rn(v);
        break;
    default:
        ((int32_t *)p)[i] = (int32_t)v;
        break;
    }
}

/* A tensor as kernels see it: 4-dim padded shape and strides (elements), data and dtype, and
 * whether its strides are the row-major ones of the iteration shape (then element k is at k,
 * with no index arithmetic: the common case of every elementwise op). */
struct tp_cu_t4 {
    const void *p;
    int dt;
    int contig;
    int64_t sh[4], st[4];
};

/* contig flag of strides st read over the iteration shape sh (size-1 dims do not matter) */
static inline int tp_cu_is_rowmajor(const int64_t *sh, const int64_t *st) {
    int64_t e = 1;
    for (int i = 3; i >= 0; i--) {
        if (sh[i] != 1 && st[i] != e) return 0;
        e *= sh[i];
    }
    return 1;
}

static inline tp_cu_t4 tp_cu_view(const tp_tensor *t) {
    tp_cu_t4 v;
    v.p = t->data;
    v.dt = (int)t->dtype;
    tp_shape4(t, v.sh, v.st);
    v.contig = tp_cu_is_rowmajor(v.sh, v.st);
    return v;
}

/* Strided offset of flat (row-major over sh) index k; 32-bit index arithmetic when k fits (a
 * 64-bit division is several times dearer, and elementwise kernels do three per element). */
__device__ __forceinline__ int64_t off4(int64_t k, const int64_t *sh, const int64_t *st) {
    if (k < 0xFFFFFFFFll) {
        uint32_t kk = (uint32_t)k, s3 = (uint32_t)sh[3], s2 = (uint32_t)sh[2], s1 = (uint32_t)sh[1];
        uint32_t i3 = kk % s3;
        kk /= s3;
        uint32_t i2 = kk % s2;
        kk /= s2;
        uint32_t i1 = kk % s1, i0 = kk / s1;
        return (int64_t)i0 * st[0] + (int64_t)i1 * st[1] + (int64_t)i2 * st[2] +
               (int64_t)i3 * st[3];
    }
    int64_t i3 = k % sh[3];
    k /= sh[3];
    int64_t i2 = k % sh[2];
    k /= sh[2];
    int64_t i1 = k % sh[1];
    int64_t i0 = k / sh[1];
    return i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
}

/* Offset of element k of view v iterated over shape sh (v.contig must refer to sh). */
__device__ __forceinline__ int64_t vidx(int64_t k, const int64_t *sh, const tp_cu_t4 &v) {
    return v.contig ? k : off4(k, sh, v.st);
}

/* Programmatic dependent launch (sm_90): a kernel that precedes a GEMV lets the GEMV's blocks
 * be scheduled while it still runs (tp_cu_pdl_trigger at its start); the GEMV, launched with the
 * programmatic-serialization attribute, streams its first weights and then waits
 * (tp_cu_pdl_wait) for the full completion and memory flush of the kernel before it. Both are
 * no-ops for launches without the attribute. */
__device__ __forceinline__ void tp_cu_pdl_trigger() {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
__device__ __forceinline__ void tp_cu_pdl_wait() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide sum / max (any blockDim multiple of 32, <= 1024); every thread gets the result.
 * sh must hold 32 entries; the trailing barrier makes sh reusable at once. */
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : 0.0f;
    r = warp_sum(r);
    __syncthreads();
    return r;
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    r = warp_max(r);
    __syncthreads();
    return r;
}
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double r = lane < nw ? sh[lane] : 0.0;
    r = warp_sum_d(r);
    __syncthreads();
    return r;
}

/* Threads for a one-block-per-row kernel over rows of length D. */
static inline int tp_cu_row_threads(int64_t D) {
    int t = 32;
    while (t < 1024 && t < D) t *= 2;
    return t;
}

/* Converts (any dtype, contiguous) src into a new contiguous arena tensor of dtype dt; returns
 * src itself when it already has dt. NULL after failing the ctx. */
tp_tensor *tp_cu_as_dtype(tp_ctx *ctx, tp_tensor *src, tp_dtype dt);
/* Backend hooks (copy_strided, fill) of tp_backend_fns. */
tp_status tp_cu_copy_strided_hook(const tp_tensor *dst, const tp_tensor *src);
tp_status tp_cu_fill_hook(const tp_tensor *t, double v);
/* Reads the device error word set by range-checking kernels (ids, targets) and clears it;
 * returns the first offending flat index + 1, or 0. Synchronises the stream. */
tp_status tp_cu_take_range_error(tp_ctx *ctx, int64_t *bad, int32_t *value);
/* Device address of the error word (int64 index + 1, int32 value) for kernels to set. */
struct tp_cu_range_err {
    unsigned long long index1; /* first bad flat index + 1 (atomicCAS from 0) */
    int value;
};
tp_cu_range_err *tp_cu_range_err_ptr(void);
/* Whether a CUDA graph capture is in progress on the backend stream (no syncs then). */
int tp_cu_capturing(void);

/* GEMM in row-major terms, batched with element strides (0 = shared operand):
 * C[M,N] = alpha * op(X) op(Y) + beta * C, with X stored row-major as [M,K] (tx = 0) or [K,M]
 * (tx = 1) with leading dim ldx; likewise Y as [K,N] or [N,K]. Operands of different dtypes
 * are converted to the half dtype when either is half (f32 accumulate), else run in f32. */
tp_status tp_cu_gemm(tp_ctx *ctx, int tx, const tp_tensor *xt, const void *x, int64_t ldx,
                     int64_t sx, int ty, const tp_tensor *yt, const void *y, int64_t ldy,
                     int64_t sy, void *c, tp_dtype cdt, int64_t ldc, int64_t sc, int64_t M,
                     int64_t N, int64_t K, int64_t batch, float alpha, float beta);
/* Same with explicit dtypes (the pointers already point at data of xdt / ydt). */
tp_status tp_cu_gemm_dt(tp_ctx *ctx, int tx, tp_dtype xdt, const void *x, int64_t ldx, int64_t sx,
                        int ty, tp_dtype ydt, const void *y, int64_t ldy, int64_t sy, void *c,
                        tp_dtype cdt, int64_t ldc, int64_t sc, int64_t M, int64_t N, int64_t K,
                        int64_t batch, float alpha, float beta);

#define TP_CU_DECL(name)                                                                           \
    tp_status tp_cu_##name##_fwd(tp_ctx *ctx, tp_node *n);                                         \
    tp_status tp_cu_##name##_bwd(tp_ctx *ctx, tp_node *n);
#define TP_OP(NAME, name, n_inputs) TP_CU_DECL(name)
#include "core/ops.def"
#undef TP_OP

#endif
