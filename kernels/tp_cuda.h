/* tp_cuda.h — the CUDA backend's C interface beyond the backend table (which core/backend.h
 * declares): device facts, synchronisation, event timing, CUDA graphs, device-side random fills
 * and the fused AdamW step used by the GPU benchmark and tests. Only in TP_HAVE_CUDA builds;
 * every function returns TP_ECUDA/TP_EUNSUP with a message in err when no GPU is usable. */
#ifndef TP_KERNELS_TP_CUDA_H
#define TP_KERNELS_TP_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define new tp_api_new_field
#endif
#include "telepathy/tensor.h"
#ifdef __cplusplus
#undef new
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_cuda_info {
    char name[256];
    int sm_count, cc_major, cc_minor;
    size_t total_bytes, free_bytes;
    int runtime_version, driver_version;
    /* the memory system's peak, bytes/s (memory clock x 2 (DDR) x bus width): the bench states
     * achieved bandwidth as a fraction of it */
    double peak_bw;
} tp_cuda_info;

tp_status tp_cuda_get_info(tp_cuda_info *info, tp_err *err);
/* Waits for all work on the backend stream. */
tp_status tp_cuda_sync(tp_err *err);
/* Bytes the backend has cudaMalloc'ed and not freed (arenas + persistent tensors), and the
 * high-water mark since the last reset. */
size_t tp_cuda_bytes_in_use(void);
size_t tp_cuda_peak_bytes(void);
void tp_cuda_reset_peak(void);
/* Row limits of the GEMV paths (cuda_matmul.cu): up to fma_max_m rows take the FMA GEMV (at
 * most 8), then up to mma_max_m the tensor-core one (at most 16), the rest cuBLASLt; -1 restores
 * the default (TP_CUDA_GEMV_MAX_M / TP_CUDA_GEMV_MMA_MAX_M, else 2 and 0). For tests and A/B
 * timing. */
void tp_cuda_set_gemv_rows(int fma_max_m, int mma_max_m);
/* Number of cudaMalloc calls so far (a warmed-up step must not add any). */
uint64_t tp_cuda_malloc_count(void);

/* Event timer on the backend stream: start, then stop returns the elapsed milliseconds. */
typedef struct tp_cuda_timer tp_cuda_timer;
tp_status tp_cuda_timer_new(tp_cuda_timer **t, tp_err *err);
tp_status tp_cuda_timer_start(tp_cuda_timer *t, tp_err *err);
tp_status tp_cuda_timer_stop(tp_cuda_timer *t, double *ms, tp_err *err);
void tp_cuda_timer_free(tp_cuda_timer *t);

/* CUDA graphs: capture everything launched on the backend stream between begin and end into
 * an executable graph; replay launches it again (same addresses: call it only when the arena
 * layout of the captured step repeats, e.g. same shapes after tp_ctx_reset). */
typedef struct tp_cuda_graph tp_cuda_graph;
tp_status tp_cuda_graph_begin(tp_err *err);
tp_status tp_cuda_graph_end(tp_cuda_graph **g, tp_err *err);
tp_status tp_cuda_graph_replay(tp_cuda_graph *g, tp_err *err);
void tp_cuda_graph_free(tp_cuda_graph *g);

/* Fills a contiguous device tensor (f32/bf16/f16) with N(mean, std^2) drawn on the GPU from
 * (seed, stream) with Philox (fast model init for benchmarks; not the CPU's sequence). */
tp_status tp_cuda_fill_normal(tp_tensor *t, float mean, float std, uint64_t seed, uint64_t stream,
                              tp_err *err);

/* One AdamW step (PyTorch semantics, decoupled weight decay) on n f32 device params with f32
 * grads and moment buffers m, v (same shapes, device, zero at start). step counts from 1.
 * Grads are first scaled by clip_scale (global-norm clipping computed by the caller). */
typedef struct tp_cuda_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    int step;
} tp_cuda_adamw;
tp_status tp_cuda_adamw_step(tp_tensor *const *params, tp_tensor *const *m, tp_tensor *const *v,
                             int n, const tp_cuda_adamw *cfg, float clip_scale, tp_err *err);
/* Sum of squares of every param's grad (for global-norm clipping); synchronises. */
tp_status tp_cuda_grad_sqnorm(tp_tensor *const *params, int n, double *out, tp_err *err);

#ifdef __cplusplus
}
#endif
#endif
