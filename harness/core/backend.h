/* backend.h — the op list turned into types, the tape node, and the backend vtable.
 *
 * HOW A BACKEND IMPLEMENTS AN OP (read this if you write kernels/ for CUDA)
 * 1. Every op in core/ops.def has a slot `tbl.op[TP_OP_<NAME>] = {fwd, bwd}`. Both are
 *    `tp_status fn(tp_ctx *ctx, tp_node *n)`. A NULL slot means "not implemented here".
 * 2. The front end (core/ops_*.c) has already checked shapes and dtypes, made the inputs
 *    contiguous where the op needs it (see "Layout" below), allocated n->out in the context
 *    arena on the context's device, and filled n->ip / n->fp / n->aux. fwd writes n->out.
 *    When n->record is set the node goes on the tape after fwd returns: fwd must then store
 *    in n->saved[] whatever bwd needs (allocate with tp_ctx_scratch: arena memory on the
 *    same device, freed at tp_ctx_reset). With n->record == 0 save nothing.
 * 3. bwd reads n->out->grad (f32, contiguous, out's shape; never NULL when bwd is called) and,
 *    for each input i with `tp_tensor *g = tp_node_grad(ctx, n, i)` != NULL, ADDS (+=) the
 *    input gradient into g (f32, contiguous, in[i]'s shape, zero-filled at first use). Never
 *    assign: an input read by several ops gets the sum. Inputs that need no grad (frozen
 *    weights, ids, masks) return NULL: skip their work (e.g. the receiver's weight GEMMs).
 * 4. Errors: return tp_ctx_fail(ctx, TP_ECUDA, "op 'x': ...") — never exit, never assert.
 * 5. `supports(n)` (optional) returns 0 for a node it cannot run (dtype, size); the dispatcher
 *    then uses the CPU backend when the data is host-accessible (logging a warning once per op),
 *    or fails the op with TP_EUNSUP naming op and backend.
 * 6. Memory hooks (alloc/free/memset0/copy) are required for a non-CPU backend: the arena and
 *    persistent tensors on that device are made with them.
 * Registration: kernels/ defines tp_cuda_backend_register, which calls
 * tp_backend_register_cuda(&tbl) (the table must outlive every context); in CUDA builds core
 * calls it once, lazily, at the first tp_backend_get(TP_CUDA). Check yourself against the CPU
 * reference with tests/core/test_ops.c.
 *
 * Layout: elementwise ops (ADD..SWIGLU, DROPOUT, EXP..DIV), COPY and ACCUM take arbitrary strides
 * (b of a binary op is broadcast by zero strides: use tp_bcast_strides). MATMUL inputs have unit
 * stride in one of the last two dims (check with tp_mat_layout). Every other op receives
 * contiguous inputs. Outputs and grads are always contiguous.
 *
 * Optimiser ops: ADAMW (in = param, grad, m, v; all updated in place; aux = tp_adamw_hp) and
 * SUMSQ (out [1]) are forward-only and run outside the tape from core/optim.c, which also runs
 * SCALE in place (out == in[0]) to clip grads; implement them and bridges train on the GPU.
 *
 * Dtypes: on CPU everything is f32 (the front end casts bf16/f16 inputs first); ids are i32.
 * n->out->dtype tells a GPU backend what to write (f32, or bf16/f16 when all float inputs
 * share that dtype).
 */
#ifndef TP_CORE_BACKEND_H
#define TP_CORE_BACKEND_H

#include "telepathy/tensor.h"

typedef enum tp_op {
#define TP_OP(NAME, name, n_inputs) TP_OP_##NAME,
#include "core/ops.def"
#undef TP_OP
    TP_OP_COUNT
} tp_op;

extern const char *const tp_op_names[TP_OP_COUNT];
extern const int tp_op_n_inputs[TP_OP_COUNT];

#define TP_NODE_MAX_IN    4
#define TP_NODE_MAX_SAVED 4

/* One tape node (also used, unrecorded, for every forward dispatch). */
typedef struct tp_node {
    tp_op op;
    int n_in;
    int record;                          /* forward must save what backward needs */
    tp_tensor *in[TP_NODE_MAX_IN];       /* NULL for absent optional inputs */
    tp_tensor *out;                      /* NULL for ACCUM */
    int64_t ip[8];                       /* small int params, meaning per op (ops.def) */
    float fp[4];                         /* small float params */
    tp_tensor *saved[TP_NODE_MAX_SAVED]; /* forward -> backward */
    const void *aux;                     /* op config copied into the arena (rope/attn cfg) */
} tp_node;

/* AdamW hyper-parameters of one step (node aux of TP_OP_ADAMW), bias corrections precomputed:
 * p *= decay; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= step_size * m / (sqrt(v)/bc2_sqrt
 * + eps). */
typedef struct tp_adamw_hp {
    float decay, beta1, beta2, eps;
    double step_size, bc2_sqrt;
    float gscale; /* the grad is read as grad * gscale (clipping folded into the update; 1: none) */
} tp_adamw_hp;

typedef tp_status (*tp_op_fn)(tp_ctx *ctx, tp_node *n);
typedef struct tp_op_fns {
    tp_op_fn fwd; /* NULL: not implemented on this backend */
    tp_op_fn bwd; /* NULL: no backward on this backend */
} tp_op_fns;

typedef struct tp_backend_fns {
    const char *name;
    tp_op_fns op[TP_OP_COUNT];
    int (*supports)(const tp_node *n); /* optional; NULL = every non-NULL slot works */
    /* memory (required for non-CPU backends) */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    tp_status (*memset0)(void *p, size_t bytes);
    /* copies bytes between any two devices (one of them this backend's) */
    tp_status (*copy)(void *dst, tp_device dst_dev, const void *src, tp_device src_dev,
                      size_t bytes);
    int host_accessible; /* device memory can be read by the CPU (managed memory) */
    /* optional (kernels/): device-side strided copy with dtype conversion, both tensors on this
     * device (KV-cache writes into slices), and a fill of any-strided device tensor with v */
    tp_status (*copy_strided)(const tp_tensor *dst, const tp_tensor *src);
    tp_status (*fill)(const tp_tensor *t, double v);
} tp_backend_fns;

/* Installs the CUDA table (kernels/ calls this at start-up). NULL unregisters. */
void tp_backend_register_cuda(const tp_backend_fns *tbl);
/* Defined by kernels/ in CUDA builds (TP_HAVE_CUDA): checks the device and calls
 * tp_backend_register_cuda. Core calls it at the first tp_backend_get(TP_CUDA) (hosts may call it
 * earlier to report errors themselves); failure (no GPU) leaves the CPU backend working. */
tp_status tp_cuda_backend_register(tp_err *err);
/* The table for dev, or NULL (CUDA not registered). */
const tp_backend_fns *tp_backend_get(tp_device dev);
/* The CPU reference table (cpu_backend.c). */
const tp_backend_fns *tp_backend_cpu(void);

/* Runs n's forward on the device of its output (or in[0]); fails the ctx on error. */
tp_status tp_dispatch_fwd(tp_ctx *ctx, tp_node *n);
tp_status tp_dispatch_bwd(tp_ctx *ctx, tp_node *n);

/* ---- helpers for backend functions ---- */
/* Grad buffer of n->in[i] (allocated zero at first use), or NULL when it needs none. */
tp_tensor *tp_node_grad(tp_ctx *ctx, tp_node *n, int i);
/* Arena tensor on the ctx device (contiguous, not on the tape, uninitialised). */
tp_tensor *tp_ctx_scratch(tp_ctx *ctx, tp_dtype dt, int ndim, const int64_t *shape);
/* Raw arena bytes on the ctx device (64-byte aligned), or NULL after failing the ctx. */
void *tp_ctx_scratch_bytes(tp_ctx *ctx, size_t bytes);
tp_device tp_ctx_device(const tp_ctx *ctx);

/* Pads t to 4 dims (leading size-1 dims) and returns shape and strides. */
void tp_shape4(const tp_tensor *t, int64_t shape[4], int64_t stride[4]);
/* Strides (4-dim, leading-padded) that read b broadcast onto a's shape (0 on broadcast dims). */
void tp_bcast_strides(const tp_tensor *a, const tp_tensor *b, int64_t stride[4]);
/* Matrix layout of the last two dims: returns 1 with *trans (0 row-major, 1 column-major) and
 * *ld (leading dimension) when one of them has unit stride, else 0. */
int tp_mat_layout(const tp_tensor *t, int *trans, int64_t *ld);
/* Product of all dims but the last (rows) and the last dim (cols). */
int64_t tp_rows(const tp_tensor *t);
int64_t tp_cols(const tp_tensor *t);

#endif
