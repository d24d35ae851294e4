/* ctx.h — internals of the step context: the arena, the tape storage, the sticky error, and the
 * counted heap wrappers every core allocation goes through (tp_heap_alloc_count). */
#ifndef TP_CORE_CTX_H
#define TP_CORE_CTX_H

#include <stddef.h>

#include "core/backend.h"

/* Counted heap calls: every malloc/calloc/realloc the core makes goes through these. */
void *tp_core_malloc(size_t n);
void *tp_core_calloc(size_t n, size_t size);
void *tp_core_realloc(void *p, size_t n);
void tp_core_free(void *p);

#define TP_ARENA_MAX_CHUNKS 48
typedef struct tp_arena {
    tp_device dev;
    char *chunk[TP_ARENA_MAX_CHUNKS];
    size_t cap[TP_ARENA_MAX_CHUNKS];
    int n_chunks;      /* allocated */
    int cur;           /* chunk being filled */
    size_t used;       /* bytes used in chunk[cur] */
    size_t step_bytes; /* bytes handed out (incl. alignment) since the last rewind */
    size_t peak;       /* high-water mark of step_bytes */
} tp_arena;

void tp_arena_init(tp_arena *a, tp_device dev);
/* 64-byte aligned bytes or NULL (out of memory / no backend for the device). */
void *tp_arena_alloc(tp_arena *a, size_t bytes);
/* Rewinds; if the last step spilled into several chunks they are replaced by one chunk at the
 * high-water mark, so the next identical step allocates nothing. */
void tp_arena_reset(tp_arena *a);
void tp_arena_release(tp_arena *a);
size_t tp_arena_capacity(const tp_arena *a);

struct tp_ctx {
    tp_device dev;
    tp_arena host; /* tensor headers, node configs */
    tp_arena data; /* tensor data on dev */
    tp_node *nodes;
    int n_nodes, cap_nodes;
    int grad_enabled;
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
/* Zero-fills t on its device. */
tp_status tp_tensor_zero(tp_ctx *c, tp_tensor *t);
void tp_contig_strides(int ndim, const int64_t *shape, int64_t *stride);
/* "[2,3,4]" into buf (for error messages). */
const char *tp_shape_str(const tp_tensor *t, char *buf, size_t n);
#define TP_SHAPE(t) tp_shape_str((t), (char[96]){0}, 96)

#endif
