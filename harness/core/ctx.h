/* ctx.h — internals of the step context: the arena, the tape storage, the sticky error, the
 * recycled block pool of the backward (grad reuse), and the counted heap wrappers every core
 * allocation goes through (tp_heap_alloc_count). */
#ifndef TP_CORE_CTX_H
#define TP_CORE_CTX_H

#include <stddef.h>

#include "core/backend.h"

/* Counted heap calls: every malloc/calloc/realloc the core makes goes through these. */
void *tp_core_malloc(size_t n);
void *tp_core_calloc(size_t n, size_t size);
void *tp_core_realloc(void *p, size_t n);
void tp_core_free(void *p);

#define TP_ARENA_MAX_CHUNKS 64 /* growth by 1/4 from 1 MiB: > 1 TB before the last */
typedef struct tp_arena {
    tp_device dev;
    char *chunk[TP_ARENA_MAX_CHUNKS];
    size_t cap[TP_ARENA_MAX_CHUNKS];
    int n_chunks;      /* allocated */
    int cur;           /* chunk being filled */
    size_t used;       /* bytes used in chunk[cur] */
    size_t step_bytes; /* bytes handed out (incl. alignment) since the last rewind */
    size_t peak;       /* high-water mark of step_bytes over the arena's life (sizes the
                          coalesced chunk) */
    size_t step_peak;  /* high-water mark of step_bytes since the last rewind */
} tp_arena;

void tp_arena_init(tp_arena *a, tp_device dev);
/* 64-byte aligned bytes or NULL (out of memory / no backend for the device). */
void *tp_arena_alloc(tp_arena *a, size_t bytes);
/* Rewinds; if the last step spilled into several chunks they are replaced by one chunk at the
 * high-water mark, so the next identical step allocates nothing. */
void tp_arena_reset(tp_arena *a);
void tp_arena_release(tp_arena *a);
size_t tp_arena_capacity(const tp_arena *a);
/* bytes rounded up to the arena's block alignment: what tp_arena_alloc(a, bytes) takes. */
size_t tp_arena_round(const tp_arena *a, size_t bytes);

/* Internal tensor flags, above the public ones of tensor.h (which grow from bit 0). */
#define TP_FLAG_KEEP_GRAD (1u << 16) /* marked by tp_requires_grad: grad survives tp_backward */
#define TP_FLAG_GRAD_BLOCK                                                                         \
    (1u << 17) /* grad header whose data is a recyclable data-arena block                          \
                */

/* Grad reuse. tp_backward hands an activation grad's block back to the pool once the node that
 * produced the tensor has run its backward (every consumer was created later, so has already
 * run, and nothing earlier reads it), and hands back the scratch a node's backward allocated
 * when that backward returns. Later grads and scratch of the same byte size take blocks from the
 * pool before bumping the arena, so the backward's transient memory is about one layer's worth.
 * The pool lives in the step's arenas (descriptors in `host`, blocks in `data`): it is emptied
 * by tp_ctx_reset and costs no heap call. Device safety: all work of a context is ordered on one
 * stream, so a block's next writer runs after its last reader without a sync. */
typedef struct tp_block {
    void *p;
    size_t bytes; /* rounded (tp_arena_round) */
    struct tp_block *next;
} tp_block;
#define TP_POOL_SIZES 64 /* distinct block sizes kept; a block of a further size is not reused */
typedef struct tp_block_pool {
    size_t bytes[TP_POOL_SIZES];
    tp_block *head[TP_POOL_SIZES];
    int n_sizes;
    tp_block *spare;  /* unused descriptors */
    tp_block *scoped; /* scratch of the running node backward, released at scope end */
    int scope;        /* inside a node backward */
} tp_block_pool;

struct tp_ctx {
    tp_device dev;
    tp_arena host; /* tensor headers, node configs */
    tp_arena data; /* tensor data on dev */
    tp_node *nodes;
    int n_nodes, cap_nodes;
    int grad_enabled;
    int grad_reuse; /* pool grad/backward-scratch blocks (default; TP_GRAD_REUSE=0 turns off) */
    tp_block_pool pool;
    tp_status status;
    char err[TP_ERR_MAX];
};

/* Arena tensor header + data on ctx->dev (contiguous, uninitialised, flags ARENA). */
tp_tensor *tp_ctx_tensor(tp_ctx *c, tp_dtype dt, int ndim, const int64_t *shape);
/* Header-only arena tensor sharing a's storage (a view); base = a's base or a. */
tp_tensor *tp_ctx_view(tp_ctx *c, tp_tensor *a);
/* Appends n to the tape (when n->record), sets out->node and REQUIRES_GRAD. */
tp_status tp_tape_push(tp_ctx *c, tp_node *n);
/* Whether an op on these inputs must be recorded (grad enabled and any input requires grad). */
int tp_tape_wants(const tp_ctx *c, tp_tensor *const *in, int n);
/* TP_GRAD_REUSE from the environment: 0 off, 1 or unset on (another value: on, warned once). */
int tp_grad_reuse_default(void);
/* Empties the pool (tp_ctx_reset: its storage was just rewound). */
void tp_ctx_pool_reset(tp_ctx *c);
/* Grad reuse switch (ctx creation reads TP_GRAD_REUSE: "0" off, "1" on); returns previous. */
int tp_ctx_set_grad_reuse(tp_ctx *c, int on);
/* High-water mark of the data arena since the last tp_ctx_reset (bytes). */
size_t tp_ctx_step_peak_bytes(const tp_ctx *c);
/* A zero-filled f32 grad for a tensor of this shape: a pooled block when one of the size is
 * free, else arena; flagged TP_FLAG_GRAD_BLOCK so tp_ctx_release_grad may recycle it. */
tp_tensor *tp_ctx_grad_tensor(tp_ctx *c, int ndim, const int64_t *shape);
/* Returns t's grad block to the pool and clears t->grad, unless reuse is off, t was marked by
 * tp_requires_grad, or the grad is not a pooled block (a param's persistent grad). */
void tp_ctx_release_grad(tp_ctx *c, tp_tensor *t);
/* Between begin and end (one node's backward), data-arena scratch comes from the pool and goes
 * back to it at end. Grads (tp_ctx_grad_tensor) are not scoped. */
void tp_ctx_bwd_scope_begin(tp_ctx *c);
void tp_ctx_bwd_scope_end(tp_ctx *c);
/* Zero-fills t on its device. */
tp_status tp_tensor_zero(tp_ctx *c, tp_tensor *t);
void tp_contig_strides(int ndim, const int64_t *shape, int64_t *stride);
/* "[2,3,4]" into buf (for error messages). */
const char *tp_shape_str(const tp_tensor *t, char *buf, size_t n);
#define TP_SHAPE(t) tp_shape_str((t), (char[96]){0}, 96)

#endif
