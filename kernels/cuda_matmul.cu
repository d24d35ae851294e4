/* cuda_matmul.cu — GEMMs through cuBLASLt: row-major problems mapped onto column-major cuBLAS
 * by computing C^T = op(Y)^T op(X)^T, bf16/f16 operands with f32 accumulation (f32 operands
 * stay f32, no TF32, so results match the CPU reference), strided batches, and a cache of
 * matmul descriptors + heuristic algorithm per shape so a warmed-up step does no planning.
 * Falls back to cublasGemmStridedBatchedEx when the heuristic offers nothing. Also MATMUL's
 * forward and backward (dA, dB accumulate with beta = 1 into the f32 grads). */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

#define CUBLAS_CHECK(ctx, call)                                                                    \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return tp_ctx_fail((ctx), TP_ECUDA, "%s:%d: %s: cuBLAS status %d (%s)", __FILE__,      \
                               __LINE__, #call, (int)s_, cublasGetStatusString(s_));               \
    } while (0)

static cublasLtHandle_t g_lt;
static cublasHandle_t g_blas;
static void *g_ws;
static size_t g_ws_bytes = (size_t)32 << 20;

static tp_status handles(tp_ctx *ctx) {
    if (g_lt) return TP_OK;
    CUBLAS_CHECK(ctx, cublasLtCreate(&g_lt));
    CUBLAS_CHECK(ctx, cublasCreate(&g_blas));
    CUBLAS_CHECK(ctx, cublasSetStream(g_blas, tp_cu_stream));
    CUDA_CHECK(ctx, cudaMalloc(&g_ws, g_ws_bytes));
    CUBLAS_CHECK(ctx, cublasSetWorkspace(g_blas, g_ws, g_ws_bytes));
    return TP_OK;
}

static cudaDataType_t cu_type(tp_dtype dt) {
    return dt == TP_BF16 ? CUDA_R_16BF : dt == TP_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* ---- plan cache ---- */
typedef struct {
    int used;
    int opa, opb, ta, tb, tc; /* cublas ops and data types of the column-major problem */
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, batch;
    uint32_t align; /* bytes every pointer of the problem is aligned to */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int has_algo;
    int tuned; /* TP_CUDA_GEMM_TUNE: the candidates were timed (or could not be) */
} plan;

#define PLAN_CAP 512
static plan g_plans[PLAN_CAP];

static int plan_eq(const plan *p, const plan *q) {
    return p->opa == q->opa && p->opb == q->opb && p->ta == q->ta && p->tb == q->tb &&
           p->tc == q->tc && p->m == q->m && p->n == q->n && p->k == q->k && p->lda == q->lda &&
           p->ldb == q->ldb && p->ldc == q->ldc && p->sa == q->sa && p->sb == q->sb &&
           p->sc == q->sc && p->batch == q->batch && p->align == q->align;
}

static size_t plan_hash(const plan *p) {
    uint64_t h = 1469598103934665603ull;
    int64_t v[] = {p->opa, p->opb, p->ta,  p->tb, p->tc, p->m,  p->n,     p->k,
                   p->lda, p->ldb, p->ldc, p->sa, p->sb, p->sc, p->batch, p->align};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) h = (h ^ (uint64_t)v[i]) * 1099511628211ull;
    return (size_t)(h % PLAN_CAP);
}

static tp_status layout(tp_ctx *ctx, cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows,
                        int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    CUBLAS_CHECK(ctx, cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t b = (int32_t)batch;
        CUBLAS_CHECK(ctx, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                           &b, sizeof b));
        CUBLAS_CHECK(
            ctx, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                  &stride, sizeof stride));
    }
    return TP_OK;
}

/* cuBLASLt's best `want` algorithms for plan p (its workspace and pointer alignment); the count
 * found, 0 when none or on error. */
static int heuristics(const plan *p, cublasLtMatmulHeuristicResult_t *res, int want) {
    cublasLtMatmulPreference_t pref;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return 0;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                         &g_ws_bytes, sizeof g_ws_bytes);
    /* the default preference assumes 256-byte aligned pointers; views may be less */
    cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        cublasLtMatmulPreferenceSetAttribute(pref, al[i], &p->align, sizeof p->align);
    int found = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g_lt, p->desc, p->la, p->lb, p->lc, p->lc,
                                                      pref, want, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    return s == CUBLAS_STATUS_SUCCESS ? found : 0;
}

/* Finds or builds the plan for key; NULL after failing the ctx. */
static plan *get_plan(tp_ctx *ctx, const plan *key) {
    size_t h = plan_hash(key);
    for (size_t i = 0; i < PLAN_CAP; i++) {
        plan *p = &g_plans[(h + i) % PLAN_CAP];
        if (p->used && plan_eq(p, key)) return p;
        if (p->used) continue;
        *p = *key;
        cudaDataType_t A = (cudaDataType_t)key->ta, B = (cudaDataType_t)key->tb,
                       C = (cudaDataType_t)key->tc;
        cublasOperation_t oa = (cublasOperation_t)key->opa, ob = (cublasOperation_t)key->opb;
        if (cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) !=
            CUBLAS_STATUS_SUCCESS) {
            tp_ctx_fail(ctx, TP_ECUDA, "%s:%d: cublasLtMatmulDescCreate failed", __FILE__,
                        __LINE__);
            return NULL;
        }
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa);
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob);
        int64_t ar = oa == CUBLAS_OP_N ? key->m : key->k, ac = oa == CUBLAS_OP_N ? key->k : key->m;
        int64_t br = ob == CUBLAS_OP_N ? key->k : key->n, bc = ob == CUBLAS_OP_N ? key->n : key->k;
        if (layout(ctx, &p->la, A, ar, ac, key->lda, key->batch, key->sa) ||
            layout(ctx, &p->lb, B, br, bc, key->ldb, key->batch, key->sb) ||
            layout(ctx, &p->lc, C, key->m, key->n, key->ldc, key->batch, key->sc))
            return NULL;
        cublasLtMatmulHeuristicResult_t res;
        int found = heuristics(p, &res, 1);
        if (found > 0) {
            p->algo = res.algo;
            p->has_algo = 1;
        }
        p->used = 1;
        return p;
    }
    tp_ctx_fail(ctx, TP_ECUDA, "%s:%d: GEMM plan cache full (%d shapes)", __FILE__, __LINE__,
                PLAN_CAP);
    return NULL;
}

/* TP_CUDA_GEMM_TUNE=1: the first call of each shape times cuBLASLt's top candidates (3 runs
 * each after a warm-up, CUDA events) and keeps the fastest. Off by default because the choice
 * follows timing noise: two processes may pick different algorithms for a shape and so differ
 * in the last bits, and a research run should repeat bit for bit on one machine. Only GEMMs that
 * overwrite their output (beta = 0) are tuned, outside graph capture. */
static int tune_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("TP_CUDA_GEMM_TUNE");
        on = e && e[0] == '1';
    }
    return on;
}

#define TUNE_CANDIDATES 8
static void tune_plan(plan *p, const void *a, const void *b, void *c, float alpha) {
    p->tuned = 1;
    cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES];
    int found = heuristics(p, res, TUNE_CANDIDATES);
    if (found < 2) return;
    cudaEvent_t e0, e1;
    if (cudaEventCreate(&e0) != cudaSuccess) return;
    if (cudaEventCreate(&e1) != cudaSuccess) {
        cudaEventDestroy(e0);
        return;
    }
    float best = 0.0f, beta = 0.0f;
    int best_i = -1;
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        int ok =
            cublasLtMatmul(g_lt, p->desc, &alpha, a, p->la, b, p->lb, &beta, c, p->lc, c, p->lc,
                           &res[i].algo, g_ws, g_ws_bytes, tp_cu_stream) == CUBLAS_STATUS_SUCCESS;
        ok = ok && cudaEventRecord(e0, tp_cu_stream) == cudaSuccess;
        for (int r = 0; ok && r < 3; r++)
            ok = cublasLtMatmul(g_lt, p->desc, &alpha, a, p->la, b, p->lb, &beta, c, p->lc, c,
                                p->lc, &res[i].algo, g_ws, g_ws_bytes,
                                tp_cu_stream) == CUBLAS_STATUS_SUCCESS;
        float ms = 0.0f;
        ok = ok && cudaEventRecord(e1, tp_cu_stream) == cudaSuccess &&
             cudaEventSynchronize(e1) == cudaSuccess &&
             cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
        if (ok && (best_i < 0 || ms < best)) best = ms, best_i = i;
    }
    (void)cudaGetLastError(); /* a refused candidate is not the caller's error */
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (best_i >= 0) {
        p->algo = res[best_i].algo;
        p->has_algo = 1;
    }
}

static int is_half(tp_dtype d) {
    return d == TP_BF16 || d == TP_F16;
}

/* Contiguous-per-batch conversion of an operand (rows x ld per batch, strided batches) into
 * compute dtype cdt: copies the whole span [0, (batch-1)*s + rows*ld) (small activations). */
static const void *convert(tp_ctx *ctx, tp_dtype from, const void *p, tp_dtype to, int64_t rows,
                           int64_t ld, int64_t s, int64_t batch) {
    int64_t span = (batch > 1 ? (batch - 1) * s : 0) + rows * ld;
    tp_tensor src;
    memset(&src, 0, sizeof src);
    src.dtype = from;
    src.device = TP_CUDA;
    src.ndim = 1;
    src.shape[0] = span;
    src.stride[0] = 1;
    src.data = (void *)p;
    tp_tensor *o = tp_cu_as_dtype(ctx, &src, to);
    return o ? o->data : NULL;
}

/* ---- small-M GEMV: the decode step's linears ----
 * y[m, n] = sum_k x[m, k] w[n, k] (+ cin[m, n]) for M <= 8 rows of bf16 x against a bf16 weight
 * stored [N, K] (the model's [out, in] layout). At one to eight rows the problem is a stream over
 * the weight: cuBLASLt's kernels for it reached ~2.7 TB/s (ncu, text_relay decode, round 3) and
 * its split-K variants add a reduce launch. Here one warp owns one weight row: 16-byte streaming
 * loads (the weight is read once, so it bypasses L1 and leaves room for x, which every warp
 * reads), eight loads in flight per lane before any arithmetic (four reached 2.25-2.95 TB/s), f32
 * accumulation, one shuffle reduction per output. Rows of W are independent, so there is no split-K
 * and no second launch. */
/* up to 8 rows are built; by default only up to 2 take the path: at 8 rows (text relay, batch 8)
 * the per-element conversions made it slower than cuBLASLt (H100: 813 vs 685 ms a relay), and
 * decode_token at batch 4 took 8.48 ms against 7.42 at batch 8 through cuBLASLt */
#define GEMV_MAX_M     8
#define GEMV_DEFAULT_M 2
#define GEMV_THREADS   256

__device__ __forceinline__ void gemv_fma8(float *acc, const uint4 &w, const uint4 &x) {
    const __nv_bfloat162 *w2 = (const __nv_bfloat162 *)&w, *x2 = (const __nv_bfloat162 *)&x;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 a = __bfloat1622float2(w2[j]), b = __bfloat1622float2(x2[j]);
        *acc = fmaf(a.x, b.x, *acc);
        *acc = fmaf(a.y, b.y, *acc);
    }
}

template <int MM, typename TO>
__global__ void __launch_bounds__(GEMV_THREADS)
    k_gemv(const __nv_bfloat16 *__restrict__ x, int64_t ldx, const __nv_bfloat16 *__restrict__ w,
           int64_t ldw, TO *c, const TO *cin, int64_t ldc, int64_t N, int64_t K) {
    const int64_t n = ((int64_t)blockIdx.x * GEMV_THREADS + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (n >= N) { /* whole warps leave together */
        tp_cu_pdl_wait();
        return;
    }
    const uint4 *wr = (const uint4 *)(w + n * ldw);
    const int64_t K8 = K / 8;
    float acc[MM];
#pragma unroll
    for (int m = 0; m < MM; m++) acc[m] = 0.0f;
    int64_t i = lane;
    uint4 wv[8]; /* eight 16-byte loads in flight per lane */
    int have = i + 7 * 32 < K8;
    if (have)
#pragma unroll
        for (int r = 0; r < 8; r++) wv[r] = __ldcs(wr + i + r * 32);
    /* the weights do not depend on the kernel before; x and cin do (see tp_cu_pdl_wait) */
    tp_cu_pdl_wait();
    while (have) {
#pragma unroll
        for (int m = 0; m < MM; m++) {
            const uint4 *xr = (const uint4 *)(x + m * ldx) + i;
#pragma unroll
            for (int r = 0; r < 8; r++) gemv_fma8(&acc[m], wv[r], __ldg(xr + r * 32));
        }
        i += 8 * 32;
        have = i + 7 * 32 < K8;
        if (have)
#pragma unroll
            for (int r = 0; r < 8; r++) wv[r] = __ldcs(wr + i + r * 32);
    }
    for (; i + 96 < K8; i += 128) {
        uint4 w0 = __ldcs(wr + i), w1 = __ldcs(wr + i + 32), w2 = __ldcs(wr + i + 64),
              w3 = __ldcs(wr + i + 96);
#pragma unroll
        for (int m = 0; m < MM; m++) {
            const uint4 *xr = (const uint4 *)(x + m * ldx);
            gemv_fma8(&acc[m], w0, __ldg(xr + i));
            gemv_fma8(&acc[m], w1, __ldg(xr + i + 32));
            gemv_fma8(&acc[m], w2, __ldg(xr + i + 64));
            gemv_fma8(&acc[m], w3, __ldg(xr + i + 96));
        }
    }
    for (; i < K8; i += 32) {
        uint4 w0 = __ldcs(wr + i);
#pragma unroll
        for (int m = 0; m < MM; m++)
            gemv_fma8(&acc[m], w0, __ldg((const uint4 *)(x + m * ldx) + i));
    }
#pragma unroll
    for (int m = 0; m < MM; m++) acc[m] = warp_sum(acc[m]);
        /* lane m writes row m: the MM stores go out in parallel */
#pragma unroll
    for (int m = 0; m < MM; m++)
        if (lane == m) {
            float v = acc[m];
            if (cin) v += (float)cin[m * ldc + n];
            c[m * ldc + n] = (TO)v;
        }
}

static int g_gemv_fma_max = -1, g_gemv_mma_max = -1; /* -1: from the environment */

static int gemv_max_m(void) {
    int &v = g_gemv_fma_max;
    if (v < 0) {
        const char *e = getenv("TP_CUDA_GEMV_MAX_M"); /* 0 turns the path off (A/B timing) */
        v = e && *e ? atoi(e) : GEMV_DEFAULT_M;
        if (v < 0) v = 0;
        if (v > GEMV_MAX_M) v = GEMV_MAX_M;
    }
    return v;
}

static int pdl_enabled(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TP_CUDA_PDL"); /* 0: plain launches (A/B timing) */
        v = !(e && strcmp(e, "0") == 0);
    }
    return v;
}

/* A launch on the backend stream with programmatic stream serialization (see tp_cu_pdl_wait),
 * unless turned off or being captured into a graph; at must outlive the launch call. */
static cudaLaunchConfig_t pdl_config(unsigned blocks, unsigned threads, cudaLaunchAttribute *at) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(threads);
    cfg.stream = tp_cu_stream;
    at->id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at->val.programmaticStreamSerializationAllowed = 1;
    if (pdl_enabled() && !tp_cu_capturing()) {
        cfg.attrs = at;
        cfg.numAttrs = 1;
    }
    return cfg;
}

template <int MM, typename TO>
static cudaError_t gemv_go(unsigned blocks, const __nv_bfloat16 *x, int64_t ldx,
                           const __nv_bfloat16 *w, int64_t ldw, TO *c, const TO *cin, int64_t ldc,
                           int64_t N, int64_t K) {
    cudaLaunchAttribute at;
    cudaLaunchConfig_t cfg = pdl_config(blocks, GEMV_THREADS, &at);
    return cudaLaunchKernelEx(&cfg, k_gemv<MM, TO>, x, ldx, w, ldw, c, cin, ldc, N, K);
}

template <typename TO>
static cudaError_t gemv_launch(int M, const __nv_bfloat16 *x, int64_t ldx, const __nv_bfloat16 *w,
                               int64_t ldw, TO *c, const TO *cin, int64_t ldc, int64_t N,
                               int64_t K) {
    unsigned blocks = (unsigned)((N * 32 + GEMV_THREADS - 1) / GEMV_THREADS);
    switch (M) {
    case 1:
        return gemv_go<1, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 2:
        return gemv_go<2, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 3:
        return gemv_go<3, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 4:
        return gemv_go<4, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 5:
        return gemv_go<5, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 6:
        return gemv_go<6, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 7:
        return gemv_go<7, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    case 8:
        return gemv_go<8, TO>(blocks, x, ldx, w, ldw, c, cin, ldc, N, K);
    }
    return cudaErrorInvalidValue;
}

/* ---- 3..16 rows: the same weight stream through tensor cores ----
 * At 4-8 rows the FMA GEMV above spends more on converting x than on loading W, and cuBLASLt's
 * kernels for these shapes reached ~2.0 TB/s (decode_token at B=8, round 4). One mma.sync
 * m16n8k16 per 16 k: a block owns 8 weight rows (the mma's n) and its 8 warps split K; each lane
 * loads 16 contiguous bytes of one weight row and of one x row per 32 k, and the k order inside
 * the 32 is permuted identically for A and B (a dot product does not care), so the loads stay
 * 16 bytes wide. x rows past M (the mma's m is 16) are zeros. The warps' partial 16x8 tiles are
 * summed in shared memory. */
#define GEMV_MMA_WARPS 8

__device__ __forceinline__ void mma_bf16_16x8x16(float *d, uint32_t a0, uint32_t a1, uint32_t a2,
                                                 uint32_t a3, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <bool TWO, typename TO> /* TWO: rows 8..15 exist (M > 8) */
__global__ void __launch_bounds__(GEMV_MMA_WARPS * 32)
    k_gemv_mma(const __nv_bfloat16 *__restrict__ x, int64_t ldx,
               const __nv_bfloat16 *__restrict__ w, int64_t ldw, TO *c, const TO *cin, int64_t ldc,
               int M, int64_t N, int64_t K) {
    __shared__ float part[GEMV_MMA_WARPS][16][8];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = lane >> 2, q = lane & 3;
    const int64_t n0 = (int64_t)blockIdx.x * 8, nrow = n0 + r;
    const bool wok = nrow < N, x0ok = r < M, x1ok = TWO && r + 8 < M;
    const uint4 *wr = (const uint4 *)(w + (wok ? nrow : 0) * ldw) + q;
    const uint4 *xa_p = (const uint4 *)(x + (x0ok ? r : 0) * ldx) + q;
    const uint4 *xb_p = (const uint4 *)(x + (x1ok ? r + 8 : 0) * ldx) + q;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const int64_t K32 = K / 32, per = (K32 + GEMV_MMA_WARPS - 1) / GEMV_MMA_WARPS;
    const int64_t c0 = warp * per, c1 = c0 + per < K32 ? c0 + per : K32;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, e[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    uint4 wv[8];
    int64_t j = c0;
    int nl = c1 - j < 8 ? (int)(c1 - j) : 8; /* warp-uniform */
#pragma unroll
    for (int i = 0; i < 8; i++) wv[i] = i < nl && wok ? __ldcs(wr + (j + i) * 4) : zero;
    tp_cu_pdl_wait(); /* x and cin come from the kernel before */
    while (nl > 0) {
        /* every x load of the round in flight at once (a load per mma was L2-latency-bound) */
        uint4 xa[8], xb[8];
#pragma unroll
        for (int i = 0; i < 8; i++) {
            xa[i] = i < nl && x0ok ? __ldg(xa_p + (j + i) * 4) : zero;
            xb[i] = TWO && i < nl && x1ok ? __ldg(xb_p + (j + i) * 4) : zero;
        }
#pragma unroll
        for (int i = 0; i < 8; i++) { /* two accumulators: the two mmas of a chunk run apart */
            mma_bf16_16x8x16(d, xa[i].x, xb[i].x, xa[i].y, xb[i].y, wv[i].x, wv[i].y);
            mma_bf16_16x8x16(e, xa[i].z, xb[i].z, xa[i].w, xb[i].w, wv[i].z, wv[i].w);
        }
        j += nl;
        nl = c1 - j < 8 ? (int)(c1 - j) : 8;
#pragma unroll
        for (int i = 0; i < 8; i++) wv[i] = i < nl && wok ? __ldcs(wr + (j + i) * 4) : zero;
    }
    part[warp][r][2 * q] = d[0] + e[0];
    part[warp][r][2 * q + 1] = d[1] + e[1];
    part[warp][r + 8][2 * q] = d[2] + e[2];
    part[warp][r + 8][2 * q + 1] = d[3] + e[3];
    __syncthreads();
    if (threadIdx.x < 128) {
        const int m = threadIdx.x >> 3, nn = threadIdx.x & 7;
        const int64_t n = n0 + nn;
        if (m < M && n < N) {
            float v = 0.0f;
#pragma unroll
            for (int k = 0; k < GEMV_MMA_WARPS; k++) v += part[k][m][nn];
            if (cin) v += (float)cin[m * ldc + n];
            c[m * ldc + n] = (TO)v;
        }
    }
}

static int gemv_mma_max_m(void) {
    int &v = g_gemv_mma_max;
    if (v < 0) {
        /* off unless asked for: correct (test_cuda_ops) but not faster than cuBLASLt: the first
         * version streamed ~1.1-1.6 TB/s on the H100 (x loads one L2 trip per mma); with a
         * round's x loads together it is within 3-6 % of cuBLASLt on an H200 (decode_token B=4
         * 5.48 vs 5.34 ms, B=8 6.03 vs 5.68), occupancy register-bound at 37.5 % */
        const char *e = getenv("TP_CUDA_GEMV_MMA_MAX_M");
        v = e && *e ? atoi(e) : 0;
        if (v < 0) v = 0;
        if (v > 16) v = 16;
    }
    return v;
}

template <typename TO>
static cudaError_t gemv_mma_launch(int M, const __nv_bfloat16 *x, int64_t ldx,
                                   const __nv_bfloat16 *w, int64_t ldw, TO *c, const TO *cin,
                                   int64_t ldc, int64_t N, int64_t K) {
    cudaLaunchAttribute at;
    cudaLaunchConfig_t cfg = pdl_config((unsigned)((N + 7) / 8), GEMV_MMA_WARPS * 32, &at);
    if (M > 8)
        return cudaLaunchKernelEx(&cfg, k_gemv_mma<true, TO>, x, ldx, w, ldw, c, cin, ldc, M, N, K);
    return cudaLaunchKernelEx(&cfg, k_gemv_mma<false, TO>, x, ldx, w, ldw, c, cin, ldc, M, N, K);
}

extern "C" void tp_cuda_set_gemv_rows(int fma_max_m, int mma_max_m) {
    g_gemv_fma_max = fma_max_m < 0 ? -1 : fma_max_m > GEMV_MAX_M ? GEMV_MAX_M : fma_max_m;
    g_gemv_mma_max = mma_max_m < 0 ? -1 : mma_max_m > 16 ? 16 : mma_max_m;
}

/* Takes the GEMV path when the problem is one it covers: returns 1 when it launched (ctx status
 * says whether the launch failed), 0 when the caller should run the GEMM. */
static int try_gemv(tp_ctx *ctx, int tx, tp_dtype op, const void *x, int64_t ldx, int ty,
                    const void *y, int64_t ldy, void *c, const void *cin, tp_dtype cdt, int64_t ldc,
                    int64_t M, int64_t N, int64_t K, int64_t batch, float alpha, float beta) {
    int fma = M <= gemv_max_m(), mma = !fma && M <= gemv_mma_max_m();
    if ((!fma && !mma) || batch != 1 || tx || !ty || op != TP_BF16 || alpha != 1.0f ||
        (beta != 0.0f && beta != 1.0f) || (cdt != TP_BF16 && cdt != TP_F32))
        return 0;
    uintptr_t bits = (uintptr_t)x | (uintptr_t)y;
    if ((bits & 15) || (K & 7) || (ldx & 7) || (ldy & 7) || N > (INT64_MAX >> 6)) return 0;
    if (mma && (K & 31)) return 0;
    const void *ci = beta == 1.0f ? cin : NULL;
    cudaError_t e;
    if (mma && cdt == TP_BF16)
        e = gemv_mma_launch<__nv_bfloat16>((int)M, (const __nv_bfloat16 *)x, ldx,
                                           (const __nv_bfloat16 *)y, ldy, (__nv_bfloat16 *)c,
                                           (const __nv_bfloat16 *)ci, ldc, N, K);
    else if (mma)
        e = gemv_mma_launch<float>((int)M, (const __nv_bfloat16 *)x, ldx, (const __nv_bfloat16 *)y,
                                   ldy, (float *)c, (const float *)ci, ldc, N, K);
    else if (cdt == TP_BF16)
        e = gemv_launch<__nv_bfloat16>((int)M, (const __nv_bfloat16 *)x, ldx,
                                       (const __nv_bfloat16 *)y, ldy, (__nv_bfloat16 *)c,
                                       (const __nv_bfloat16 *)ci, ldc, N, K);
    else
        e = gemv_launch<float>((int)M, (const __nv_bfloat16 *)x, ldx, (const __nv_bfloat16 *)y, ldy,
                               (float *)c, (const float *)ci, ldc, N, K);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess)
        tp_ctx_fail(ctx, TP_ECUDA, "%s:%d: kernel gemv: %s", __FILE__, __LINE__,
                    cudaGetErrorString(e));
    return 1;
}

/* c = alpha op(x) op(y) + beta * cin, where cin (laid out like c) is c itself when NULL: a
 * separate cin is the residual add of linear_add, read by the GEMM as its C operand. */
static tp_status gemm_c(tp_ctx *ctx, int tx, tp_dtype xdt, const void *x, int64_t ldx, int64_t sx,
                        int ty, tp_dtype ydt, const void *y, int64_t ldy, int64_t sy, void *c,
                        const void *cin, tp_dtype cdt, int64_t ldc, int64_t sc, int64_t M,
                        int64_t N, int64_t K, int64_t batch, float alpha, float beta) {
    if (M == 0 || N == 0 || batch == 0) return TP_OK;
    TP_TRY(handles(ctx));
    if (cin && cin != c && (K == 0 || batch > 1 || ldc != N)) {
        /* the cases cuBLASLt's C != D path is not used for here: copy, then accumulate */
        size_t bytes = (size_t)((batch - 1) * sc + M * ldc) * tp_dtype_size(cdt);
        CUDA_CHECK(ctx, cudaMemcpyAsync(c, cin, bytes, cudaMemcpyDeviceToDevice, tp_cu_stream));
        cin = NULL;
    }
    if (!cin) cin = c;
    if (K == 0) { /* C = beta * C: only the beta = 0 case arises (fresh outputs) */
        if (beta != 0.0f) return TP_OK;
        for (int64_t b = 0; b < batch; b++)
            CUDA_CHECK(ctx,
                       cudaMemset2DAsync((char *)c + b * sc * tp_dtype_size(cdt),
                                         (size_t)ldc * tp_dtype_size(cdt), 0,
                                         (size_t)N * tp_dtype_size(cdt), (size_t)M, tp_cu_stream));
        return TP_OK;
    }
    /* compute dtype: half when either operand is half */
    tp_dtype op = is_half(xdt) ? xdt : is_half(ydt) ? ydt : TP_F32;
    /* rows of the stored matrices: X is [M,K] (tx=0) or [K,M]; Y is [K,N] or [N,K] */
    if (xdt != op) {
        x = convert(ctx, xdt, x, op, tx ? K : M, ldx, sx, sx ? batch : 1);
        if (!x) return ctx->status;
    }
    if (ydt != op) {
        y = convert(ctx, ydt, y, op, ty ? N : K, ldy, sy, sy ? batch : 1);
        if (!y) return ctx->status;
    }
    if (try_gemv(ctx, tx, op, x, ldx, ty, y, ldy, c, cin, cdt, ldc, M, N, K, batch, alpha, beta))
        return ctx->status;
    /* Column-major: C^T [N,M] = op(Y)^T [N,K] op(X)^T [K,M].
     * Y stored row-major [K,N] is column-major [N,K] = Y^T: no transpose when ty = 0. */
    plan key;
    memset(&key, 0, sizeof key);
    key.opa = ty ? CUBLAS_OP_T : CUBLAS_OP_N;
    key.opb = tx ? CUBLAS_OP_T : CUBLAS_OP_N;
    key.ta = cu_type(op);
    key.tb = cu_type(op);
    key.tc = cu_type(cdt);
    key.m = N;
    key.n = M;
    key.k = K;
    key.lda = ldy;
    key.ldb = ldx;
    key.ldc = ldc;
    key.sa = sy;
    key.sb = sx;
    key.sc = sc;
    key.batch = batch;
    /* cuBLASLt wants a real stride for every batched operand: run shared ones per batch */
    int per_batch = batch > 1 && (sx == 0 || sy == 0);
    if (per_batch) {
        key.batch = 1;
        key.sa = key.sb = key.sc = 0;
    }
    size_t es_x = tp_dtype_size(op), es_c = tp_dtype_size(cdt);
    uintptr_t bits = (uintptr_t)x | (uintptr_t)y | (uintptr_t)c | (uintptr_t)cin;
    if (batch > 1)
        bits |= (uintptr_t)(sx * (int64_t)es_x) | (uintptr_t)(sy * (int64_t)es_x) |
                (uintptr_t)(sc * (int64_t)es_c);
    key.align = 256;
    while (key.align > 1 && (bits & (key.align - 1))) key.align >>= 1;
    plan *p = get_plan(ctx, &key);
    if (!p) return ctx->status;
    int64_t loops = per_batch ? batch : 1;
    for (int64_t b = 0; b < loops; b++) {
        const char *yb = (const char *)y + (per_batch ? b * sy * (int64_t)es_x : 0);
        const char *xb = (const char *)x + (per_batch ? b * sx * (int64_t)es_x : 0);
        char *cb = (char *)c + (per_batch ? b * sc * (int64_t)es_c : 0);
        const char *ci = (const char *)cin + (per_batch ? b * sc * (int64_t)es_c : 0);
        if (!p->tuned && beta == 0.0f && tune_enabled() && !tp_cu_capturing())
            tune_plan(p, yb, xb, cb, alpha);
        if (p->has_algo) {
            cublasStatus_t st =
                cublasLtMatmul(g_lt, p->desc, &alpha, yb, p->la, xb, p->lb, &beta, ci, p->lc, cb,
                               p->lc, &p->algo, g_ws, g_ws_bytes, tp_cu_stream);
            if (st == CUBLAS_STATUS_SUCCESS) continue;
            /* an algorithm the heuristic offered but this call refused: plain cuBLAS from now on
             * for this plan (logged once) */
            fprintf(stderr,
                    "telepathy: cuda: cublasLtMatmul %lldx%lldx%lld (batch %lld) failed with "
                    "status %d (%s); using cublasGemmStridedBatchedEx for this shape\n",
                    (long long)M, (long long)N, (long long)K, (long long)key.batch, (int)st,
                    cublasGetStatusString(st));
            p->has_algo = 0;
        }
        {
            if (ci != cb) /* plain cuBLAS computes in place */
                CUDA_CHECK(ctx, cudaMemcpyAsync(cb, ci, (size_t)(M * ldc) * es_c,
                                                cudaMemcpyDeviceToDevice, tp_cu_stream));
            CUBLAS_CHECK(ctx,
                         cublasGemmStridedBatchedEx(
                             g_blas, (cublasOperation_t)key.opa, (cublasOperation_t)key.opb, (int)N,
                             (int)M, (int)K, &alpha, yb, cu_type(op), (int)ldy, key.sa, xb,
                             cu_type(op), (int)ldx, key.sb, &beta, cb, cu_type(cdt), (int)ldc,
                             key.sc, (int)key.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
    }
    return TP_OK;
}

tp_status tp_cu_gemm_dt(tp_ctx *ctx, int tx, tp_dtype xdt, const void *x, int64_t ldx, int64_t sx,
                        int ty, tp_dtype ydt, const void *y, int64_t ldy, int64_t sy, void *c,
                        tp_dtype cdt, int64_t ldc, int64_t sc, int64_t M, int64_t N, int64_t K,
                        int64_t batch, float alpha, float beta) {
    return gemm_c(ctx, tx, xdt, x, ldx, sx, ty, ydt, y, ldy, sy, c, NULL, cdt, ldc, sc, M, N, K,
                  batch, alpha, beta);
}

tp_status tp_cu_gemm(tp_ctx *ctx, int tx, const tp_tensor *xt, const void *x, int64_t ldx,
                     int64_t sx, int ty, const tp_tensor *yt, const void *y, int64_t ldy,
                     int64_t sy, void *c, tp_dtype cdt, int64_t ldc, int64_t sc, int64_t M,
                     int64_t N, int64_t K, int64_t batch, float alpha, float beta) {
    return tp_cu_gemm_dt(ctx, tx, xt->dtype, x, ldx, sx, ty, yt->dtype, y, ldy, sy, c, cdt, ldc, sc,
                         M, N, K, batch, alpha, beta);
}

/* ---- MATMUL ---- */
typedef struct {
    const char *p;
    int trans;
    int64_t ld, st0, st1;
} mat;

static mat mat_of(const tp_tensor *t) {
    mat m;
    m.p = (const char *)t->data;
    tp_mat_layout(t, &m.trans, &m.ld);
    int64_t sh[4], st[4];
    tp_shape4(t, sh, st);
    m.st0 = t->ndim == 2 ? 0 : st[0];
    m.st1 = t->ndim == 2 ? 0 : st[1];
    return m;
}

typedef struct {
    int64_t nb0, nb1, M, N, K;
    int ta, tb;
} dims;

static dims dims_of(const tp_node *n) {
    const tp_tensor *a = n->in[0], *o = n->out;
    int64_t sh[4], st[4];
    tp_shape4(o, sh, st);
    dims d = {sh[0], sh[1], sh[2], sh[3], 0, (int)n->ip[0], (int)n->ip[1]};
    d.K = d.ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    return d;
}

/* Runs the nb0 x nb1 batch as one strided batch when dim 0 folds into dim 1, else per i0. */
typedef tp_status (*batch_fn)(tp_ctx *ctx, const tp_node *n, const dims *d, int64_t i0, int64_t nb,
                              void *arg);

static int folds(const mat *m, int64_t nb1) {
    return m->st0 == m->st1 * nb1;
}

static tp_status fwd_part(tp_ctx *ctx, const tp_node *n, const dims *d, int64_t i0, int64_t nb,
                          void *arg) {
    mat A = mat_of(n->in[0]), B = mat_of(n->in[1]);
    tp_dtype ad = n->in[0]->dtype, bd = n->in[1]->dtype, cd = n->out->dtype;
    int64_t off = i0 * d->nb1 * d->M * d->N * (int64_t)tp_dtype_size(cd);
    char *C = (char *)n->out->data + off;
    /* linear_add: the residual (contiguous, the output's dtype) is the GEMM's C operand */
    const tp_tensor *res = n->n_in > 2 ? n->in[2] : NULL;
    const char *R = res ? (const char *)res->data + off : NULL;
    return gemm_c(ctx, d->ta ^ A.trans, ad, A.p + i0 * A.st0 * (int64_t)tp_dtype_size(ad), A.ld,
                  A.st1, d->tb ^ B.trans, bd, B.p + i0 * B.st0 * (int64_t)tp_dtype_size(bd), B.ld,
                  B.st1, C, R, cd, d->N, d->M * d->N, d->M, d->N, d->K, nb, 1.0f,
                  res ? 1.0f : 0.0f);
}

static tp_status run_batches(tp_ctx *ctx, const tp_node *n, batch_fn fn, void *arg) {
    dims d = dims_of(n);
    mat A = mat_of(n->in[0]), B = mat_of(n->in[1]);
    int fold = (A.st0 == 0 && A.st1 == 0) || folds(&A, d.nb1);
    fold = fold && ((B.st0 == 0 && B.st1 == 0) || folds(&B, d.nb1));
    if (fold) return fn(ctx, n, &d, 0, d.nb0 * d.nb1, arg);
    for (int64_t i0 = 0; i0 < d.nb0; i0++) TP_TRY(fn(ctx, n, &d, i0, d.nb1, arg));
    return TP_OK;
}

tp_status tp_cu_matmul_fwd(tp_ctx *ctx, tp_node *n) {
    return run_batches(ctx, n, fwd_part, NULL);
}

typedef struct {
    tp_tensor *ga, *gb;
} grads;

static tp_status bwd_part(tp_ctx *ctx, const tp_node *n, const dims *d, int64_t i0, int64_t nb,
                          void *arg) {
    grads *g = (grads *)arg;
    mat A = mat_of(n->in[0]), B = mat_of(n->in[1]);
    tp_dtype ad = n->in[0]->dtype, bd = n->in[1]->dtype;
    int fa = d->ta ^ A.trans, fb = d->tb ^ B.trans;
    const char *a = A.p + i0 * A.st0 * (int64_t)tp_dtype_size(ad);
    const char *b = B.p + i0 * B.st0 * (int64_t)tp_dtype_size(bd);
    const float *G = (const float *)n->out->grad->data + i0 * d->nb1 * d->M * d->N;
    int64_t sg = d->M * d->N;
    if (g->ga) {
        float *da = (float *)g->ga->data + i0 * d->nb1 * d->M * d->K;
        if (!d->ta) /* dA [M,K] = dC [M,N] @ B_log^T */
            TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, G, d->N, sg, !fb, bd, b, B.ld, B.st1, da, TP_F32,
                                 d->K, d->M * d->K, d->M, d->K, d->N, nb, 1.0f, 1.0f));
        else /* dA^T [K,M] = B_log [K,N] @ dC^T */
            TP_TRY(tp_cu_gemm_dt(ctx, fb, bd, b, B.ld, B.st1, 1, TP_F32, G, d->N, sg, da, TP_F32,
                                 d->M, d->M * d->K, d->K, d->M, d->N, nb, 1.0f, 1.0f));
    }
    if (g->gb) {
        int shared = n->in[1]->ndim == 2;
        float *db = (float *)g->gb->data + (shared ? 0 : i0 * d->nb1 * d->K * d->N);
        /* a shared B sums its grad over the batch: one GEMM per batch index, beta = 1 */
        int64_t loops = shared ? nb : 1, bn = shared ? 1 : nb;
        for (int64_t j = 0; j < loops; j++) {
            const char *aj = a + (shared ? j * A.st1 * (int64_t)tp_dtype_size(ad) : 0);
            const float *Gj = G + (shared ? j * sg : 0);
            if (!d->tb) /* dB [K,N] = A_log^T [K,M] @ dC */
                TP_TRY(tp_cu_gemm_dt(ctx, !fa, ad, aj, A.ld, A.st1, 0, TP_F32, Gj, d->N, sg, db,
                                     TP_F32, d->N, shared ? 0 : d->K * d->N, d->K, d->N, d->M, bn,
                                     1.0f, 1.0f));
            else /* dB^T [N,K] = dC^T [N,M] @ A_log [M,K] */
                TP_TRY(tp_cu_gemm_dt(ctx, 1, TP_F32, Gj, d->N, sg, fa, ad, aj, A.ld, A.st1, db,
                                     TP_F32, d->K, shared ? 0 : d->K * d->N, d->N, d->K, d->M, bn,
                                     1.0f, 1.0f));
        }
    }
    return TP_OK;
}

tp_status tp_cu_matmul_bwd(tp_ctx *ctx, tp_node *n) {
    grads g = {tp_node_grad(ctx, n, 0), tp_node_grad(ctx, n, 1)};
    tp_tensor *gr = n->n_in > 2 ? tp_node_grad(ctx, n, 2) : NULL;
    if (ctx->status) return ctx->status;
    if (gr) { /* the residual's grad is the output's */
        tp_node acc;
        memset(&acc, 0, sizeof acc);
        acc.op = TP_OP_ACCUM;
        acc.n_in = 2;
        acc.in[0] = gr;
        acc.in[1] = n->out->grad;
        TP_TRY(tp_dispatch_fwd(ctx, &acc));
    }
    if (!g.ga && !g.gb) return TP_OK;
    return run_batches(ctx, n, bwd_part, &g);
}
