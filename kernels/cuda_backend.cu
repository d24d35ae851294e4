/* cuda_backend.cu — registration of the CUDA backend table (ops.def order), its memory hooks
 * (cudaMalloc for arena chunks and persistent tensors only: the core arena rewinds, so a
 * warmed-up step calls none), copies between host and device on the backend stream, the
 * device range-error word, and the device facts / timer / graph / memory API of tp_cuda.h. */
#include <stdio.h>
#include <string.h>

#include "cuda_common.h"
#include "tp_cuda.h"

cudaStream_t tp_cu_stream;
static int g_ready;
static tp_cu_range_err *g_range_err; /* device */

/* ---- allocation accounting: a small open-addressing table of live pointers ---- */
#define LIVE_CAP (1 << 16)
static struct {
    void *p;
    size_t n;
} g_live[LIVE_CAP];
static size_t g_in_use, g_peak;
static uint64_t g_mallocs;

static size_t slot_of(void *p) {
    uintptr_t h = (uintptr_t)p >> 6;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) & (LIVE_CAP - 1);
}
static void live_add(void *p, size_t n) {
    for (size_t i = slot_of(p), k = 0; k < LIVE_CAP; k++, i = (i + 1) & (LIVE_CAP - 1))
        if (!g_live[i].p) {
            g_live[i].p = p;
            g_live[i].n = n;
            break;
        }
    g_in_use += n;
    if (g_in_use > g_peak) g_peak = g_in_use;
}
static void live_del(void *p) {
    size_t i = slot_of(p);
    for (size_t k = 0; k < LIVE_CAP; k++, i = (i + 1) & (LIVE_CAP - 1)) {
        if (!g_live[i].p) return;
        if (g_live[i].p == p) break;
    }
    if (g_live[i].p != p) return;
    g_in_use -= g_live[i].n;
    g_live[i].p = NULL;
    /* re-insert the rest of the probe run so lookups stay correct */
    for (size_t j = (i + 1) & (LIVE_CAP - 1); g_live[j].p; j = (j + 1) & (LIVE_CAP - 1)) {
        void *q = g_live[j].p;
        size_t n = g_live[j].n;
        g_live[j].p = NULL;
        g_in_use -= n;
        live_add(q, n);
    }
}

static void *cu_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear, so the next call does not see it */
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        fprintf(stderr,
                "telepathy: cuda: cudaMalloc(%zu bytes) failed: %s (free %zu of %zu bytes)\n",
                bytes, cudaGetErrorString(e), fr, tot);
        return NULL;
    }
    g_mallocs++;
    live_add(p, bytes);
    return p;
}

static void cu_free(void *p) {
    if (!p) return;
    live_del(p);
    cudaFree(p); /* synchronises the device: pending kernels may still read p */
}

static tp_status cu_memset0(void *p, size_t bytes) {
    cudaError_t e = cudaMemsetAsync(p, 0, bytes, tp_cu_stream);
    if (e != cudaSuccess) {
        fprintf(stderr, "telepathy: cuda: %s:%d: cudaMemsetAsync: %s\n", __FILE__, __LINE__,
                cudaGetErrorString(e));
        return TP_ECUDA;
    }
    return TP_OK;
}

/* Host -> device through two pinned staging buffers: the CPU fills one (reading the mmap'd
 * safetensors, which also faults its pages in) while the copy engine drains the other, so a
 * model load streams mmap -> pinned -> device. Returns -1 when staging is unavailable (the
 * caller then copies from pageable memory directly). */
#define STAGE_BYTES ((size_t)32 << 20)
static void *g_pin[2];
static cudaEvent_t g_pin_ev[2];
static int g_pin_state; /* 0 untried, 1 ready, -1 unavailable */

static int h2d_staged(void *dst, const void *src, size_t bytes, cudaError_t *err) {
    if (g_pin_state == 0) {
        g_pin_state = -1;
        if (cudaHostAlloc(&g_pin[0], STAGE_BYTES, cudaHostAllocDefault) == cudaSuccess &&
            cudaHostAlloc(&g_pin[1], STAGE_BYTES, cudaHostAllocDefault) == cudaSuccess &&
            cudaEventCreateWithFlags(&g_pin_ev[0], cudaEventDisableTiming) == cudaSuccess &&
            cudaEventCreateWithFlags(&g_pin_ev[1], cudaEventDisableTiming) == cudaSuccess)
            g_pin_state = 1;
        else
            cudaGetLastError();
    }
    if (g_pin_state != 1) return -1;
    cudaError_t e = cudaSuccess;
    int i = 0;
    for (size_t off = 0; off < bytes && e == cudaSuccess; off += STAGE_BYTES, i ^= 1) {
        size_t n = bytes - off < STAGE_BYTES ? bytes - off : STAGE_BYTES;
        e = cudaEventSynchronize(g_pin_ev[i]); /* the copy that last read buffer i is done */
        if (e != cudaSuccess) break;
        memcpy(g_pin[i], (const char *)src + off, n);
        e = cudaMemcpyAsync((char *)dst + off, g_pin[i], n, cudaMemcpyHostToDevice, tp_cu_stream);
        if (e == cudaSuccess) e = cudaEventRecord(g_pin_ev[i], tp_cu_stream);
    }
    if (e == cudaSuccess) e = cudaStreamSynchronize(tp_cu_stream);
    *err = e;
    return 0;
}

static tp_status cu_copy(void *dst, tp_device dd, const void *src, tp_device sd, size_t bytes) {
    if (!bytes) return TP_OK;
    if (dd != TP_CPU && sd == TP_CPU && bytes >= ((size_t)1 << 20) && !tp_cu_capturing()) {
        cudaError_t e = cudaSuccess;
        if (h2d_staged(dst, src, bytes, &e) == 0) {
            if (e == cudaSuccess) return TP_OK;
            fprintf(stderr, "telepathy: cuda: %s:%d: staged host->device copy of %zu bytes: %s\n",
                    __FILE__, __LINE__, bytes, cudaGetErrorString(e));
            return TP_ECUDA;
        }
    }
    cudaMemcpyKind kind = dd == TP_CPU
                              ? (sd == TP_CPU ? cudaMemcpyHostToHost : cudaMemcpyDeviceToHost)
                              : (sd == TP_CPU ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, tp_cu_stream);
    /* host memory on either side may be reused as soon as we return */
    if (e == cudaSuccess && kind != cudaMemcpyDeviceToDevice && !tp_cu_capturing())
        e = cudaStreamSynchronize(tp_cu_stream);
    if (e != cudaSuccess) {
        fprintf(stderr, "telepathy: cuda: %s:%d: copy of %zu bytes (%s): %s\n", __FILE__, __LINE__,
                bytes,
                kind == cudaMemcpyHostToDevice   ? "host->device"
                : kind == cudaMemcpyDeviceToHost ? "device->host"
                                                 : "device->device",
                cudaGetErrorString(e));
        return TP_ECUDA;
    }
    return TP_OK;
}

/* Ops the kernels cannot run (sizes past the kernels' limits). Device memory is not host
 * accessible, so the dispatcher then fails the op with TP_EUNSUP naming op and backend. */
static int cu_supports(const tp_node *n) {
    switch (n->op) {
    case TP_OP_ATTENTION:
        return n->in[0]->shape[3] <= 512; /* one warp holds a query row in registers */
    default:
        return 1;
    }
}

#define FB(name)                                                                                   \
    { tp_cu_##name##_fwd, tp_cu_##name##_bwd }

static tp_backend_fns g_table;

static void fill_table(void) {
    tp_backend_fns t;
    memset(&t, 0, sizeof t);
    t.name = "cuda";
    t.op[TP_OP_COPY] = FB(copy);
    t.op[TP_OP_ACCUM] = tp_op_fns{tp_cu_accum_fwd, NULL};
    t.op[TP_OP_CONCAT] = FB(concat);
    t.op[TP_OP_ADD] = FB(add);
    t.op[TP_OP_SUB] = FB(sub);
    t.op[TP_OP_MUL] = FB(mul);
    t.op[TP_OP_SCALE] = FB(scale);
    t.op[TP_OP_ADD_SCALAR] = FB(add_scalar);
    t.op[TP_OP_SILU] = FB(silu);
    t.op[TP_OP_GELU] = FB(gelu);
    t.op[TP_OP_TANH] = FB(tanh);
    t.op[TP_OP_SWIGLU] = FB(swiglu);
    t.op[TP_OP_DROPOUT] = FB(dropout);
    t.op[TP_OP_MATMUL] = FB(matmul);
    t.op[TP_OP_EMBEDDING] = FB(embedding);
    t.op[TP_OP_RMSNORM] = FB(rmsnorm);
    t.op[TP_OP_LAYERNORM] = FB(layernorm);
    t.op[TP_OP_L2NORM] = FB(l2norm);
    t.op[TP_OP_ROPE] = FB(rope);
    t.op[TP_OP_ATTENTION] = FB(attention);
    t.op[TP_OP_SOFTMAX] = FB(softmax);
    t.op[TP_OP_LOG_SOFTMAX] = FB(log_softmax);
    t.op[TP_OP_SUM] = FB(sum);
    t.op[TP_OP_POOL] = FB(pool);
    t.op[TP_OP_CROSS_ENTROPY] = FB(cross_entropy);
    t.op[TP_OP_VQ] = FB(vq);
    t.op[TP_OP_EXP] = FB(exp);
    t.op[TP_OP_LN] = FB(ln);
    t.op[TP_OP_SIGMOID] = FB(sigmoid);
    t.op[TP_OP_RELU] = FB(relu);
    t.op[TP_OP_DIV] = FB(div);
    t.op[TP_OP_ADAMW] = tp_op_fns{tp_cu_adamw_fwd, NULL};
    t.op[TP_OP_SUMSQ] = tp_op_fns{tp_cu_sumsq_fwd, NULL};
    t.op[TP_OP_ARGMAX] = tp_op_fns{tp_cu_argmax_fwd, NULL};
    t.supports = cu_supports;
    t.alloc = cu_alloc;
    t.free = cu_free;
    t.memset0 = cu_memset0;
    t.copy = cu_copy;
    t.host_accessible = 0;
    t.copy_strided = tp_cu_copy_strided_hook;
    t.fill = tp_cu_fill_hook;
    g_table = t;
}

extern "C" tp_status tp_cuda_backend_register(tp_err *err) {
    if (g_ready) {
        tp_backend_register_cuda(&g_table);
        return TP_OK;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return tp_errf(err, TP_EUNSUP, "cuda: no usable GPU (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
    }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess)
        return tp_errf(err, TP_ECUDA, "cuda: %s:%d: cudaGetDeviceProperties: %s", __FILE__,
                       __LINE__, cudaGetErrorString(e));
    if (prop.major < 8)
        return tp_errf(err, TP_EUNSUP,
                       "cuda: device '%s' has compute capability %d.%d; the backend needs bf16 "
                       "tensor cores (8.0+, built for 9.0)",
                       prop.name, prop.major, prop.minor);
    if ((e = cudaSetDevice(0)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&tp_cu_stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaMalloc((void **)&g_range_err, sizeof *g_range_err)) != cudaSuccess ||
        (e = cudaMemset(g_range_err, 0, sizeof *g_range_err)) != cudaSuccess)
        return tp_errf(err, TP_ECUDA, "cuda: %s:%d: setting up device 0 ('%s'): %s", __FILE__,
                       __LINE__, prop.name, cudaGetErrorString(e));
    fill_table();
    g_ready = 1;
    tp_backend_register_cuda(&g_table);
    return TP_OK;
}

/* ---- range errors reported by kernels (ids, targets) ---- */
tp_cu_range_err *tp_cu_range_err_ptr(void) {
    return g_range_err;
}

tp_status tp_cu_take_range_error(tp_ctx *ctx, int64_t *bad, int32_t *value) {
    *bad = -1;
    *value = 0;
    if (tp_cu_capturing()) return TP_OK; /* no sync inside a graph capture */
    tp_cu_range_err h;
    CUDA_CHECK(ctx,
               cudaMemcpyAsync(&h, g_range_err, sizeof h, cudaMemcpyDeviceToHost, tp_cu_stream));
    CUDA_CHECK(ctx, cudaStreamSynchronize(tp_cu_stream));
    if (h.index1) {
        *bad = (int64_t)h.index1 - 1;
        *value = h.value;
        CUDA_CHECK(ctx, cudaMemsetAsync(g_range_err, 0, sizeof h, tp_cu_stream));
    }
    return TP_OK;
}

int tp_cu_capturing(void) {
    if (!g_ready) return 0;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(tp_cu_stream, &st) != cudaSuccess) return 0;
    return st == cudaStreamCaptureStatusActive;
}

/* ---- tp_cuda.h ---- */
#define ERR_CHECK(call)                                                                            \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return tp_errf(err, TP_ECUDA, "%s:%d: %s: %s", __FILE__, __LINE__, #call,              \
                           cudaGetErrorString(e_));                                                \
    } while (0)
#define NEED_READY()                                                                               \
    do {                                                                                           \
        if (!g_ready)                                                                              \
            return tp_errf(err, TP_EUNSUP,                                                         \
                           "cuda: backend not registered (call tp_cuda_backend_register)");        \
    } while (0)

extern "C" tp_status tp_cuda_get_info(tp_cuda_info *info, tp_err *err) {
    NEED_READY();
    memset(info, 0, sizeof *info);
    cudaDeviceProp p;
    ERR_CHECK(cudaGetDeviceProperties(&p, 0));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->sm_count = p.multiProcessorCount;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    ERR_CHECK(cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
    ERR_CHECK(cudaRuntimeGetVersion(&info->runtime_version));
    ERR_CHECK(cudaDriverGetVersion(&info->driver_version));
    int clk_khz = 0, bus_bits = 0;
    ERR_CHECK(cudaDeviceGetAttribute(&clk_khz, cudaDevAttrMemoryClockRate, 0));
    ERR_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
    info->peak_bw = (double)clk_khz * 1e3 * 2.0 * (double)bus_bits / 8.0;
    return TP_OK;
}

extern "C" tp_status tp_cuda_sync(tp_err *err) {
    NEED_READY();
    ERR_CHECK(cudaStreamSynchronize(tp_cu_stream));
    ERR_CHECK(cudaGetLastError());
    return TP_OK;
}

extern "C" size_t tp_cuda_bytes_in_use(void) {
    return g_in_use;
}
extern "C" size_t tp_cuda_peak_bytes(void) {
    return g_peak;
}
extern "C" void tp_cuda_reset_peak(void) {
    g_peak = g_in_use;
}
extern "C" uint64_t tp_cuda_malloc_count(void) {
    return g_mallocs;
}

struct tp_cuda_timer {
    cudaEvent_t a, b;
};

extern "C" tp_status tp_cuda_timer_new(tp_cuda_timer **t, tp_err *err) {
    NEED_READY();
    *t = (tp_cuda_timer *)calloc(1, sizeof **t);
    if (!*t) return tp_errf(err, TP_ENOMEM, "cuda timer: out of memory");
    ERR_CHECK(cudaEventCreate(&(*t)->a));
    ERR_CHECK(cudaEventCreate(&(*t)->b));
    return TP_OK;
}
extern "C" tp_status tp_cuda_timer_start(tp_cuda_timer *t, tp_err *err) {
    ERR_CHECK(cudaEventRecord(t->a, tp_cu_stream));
    return TP_OK;
}
extern "C" tp_status tp_cuda_timer_stop(tp_cuda_timer *t, double *ms, tp_err *err) {
    float f = 0;
    ERR_CHECK(cudaEventRecord(t->b, tp_cu_stream));
    ERR_CHECK(cudaEventSynchronize(t->b));
    ERR_CHECK(cudaEventElapsedTime(&f, t->a, t->b));
    ERR_CHECK(cudaGetLastError());
    *ms = f;
    return TP_OK;
}
extern "C" void tp_cuda_timer_free(tp_cuda_timer *t) {
    if (!t) return;
    cudaEventDestroy(t->a);
    cudaEventDestroy(t->b);
    free(t);
}

struct tp_cuda_graph {
    cudaGraph_t g;
    cudaGraphExec_t x;
};

extern "C" tp_status tp_cuda_graph_begin(tp_err *err) {
    NEED_READY();
    ERR_CHECK(cudaStreamBeginCapture(tp_cu_stream, cudaStreamCaptureModeThreadLocal));
    return TP_OK;
}
extern "C" tp_status tp_cuda_graph_end(tp_cuda_graph **out, tp_err *err) {
    *out = NULL;
    tp_cuda_graph *g = (tp_cuda_graph *)calloc(1, sizeof *g);
    if (!g) return tp_errf(err, TP_ENOMEM, "cuda graph: out of memory");
    cudaError_t e = cudaStreamEndCapture(tp_cu_stream, &g->g);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&g->x, g->g, 0);
    if (e != cudaSuccess) {
        if (g->g) cudaGraphDestroy(g->g);
        free(g);
        cudaGetLastError();
        return tp_errf(err, TP_ECUDA,
                       "%s:%d: cuda graph capture failed: %s (hint: an op synchronised or "
                       "allocated inside the captured region)",
                       __FILE__, __LINE__, cudaGetErrorString(e));
    }
    *out = g;
    return TP_OK;
}
extern "C" tp_status tp_cuda_graph_replay(tp_cuda_graph *g, tp_err *err) {
    ERR_CHECK(cudaGraphLaunch(g->x, tp_cu_stream));
    return TP_OK;
}
extern "C" void tp_cuda_graph_free(tp_cuda_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->x);
    cudaGraphDestroy(g->g);
    free(g);
}
