/* pool.c — grad reuse: the context's pool of recycled data-arena blocks. tp_backward returns an
 * activation grad's block once nothing can read it and a node backward's scratch once that
 * backward returns; later grads and scratch of the same byte size take pooled blocks before
 * bumping the arena. Transformer layers repeat their shapes, so exact-size reuse hits nearly
 * always and the backward's transient memory stays near one layer's worth. Everything here lives
 * in the step's arenas, so a warmed-up step makes no heap or device allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"

int tp_grad_reuse_default(void) {
    const char *e = getenv("TP_GRAD_REUSE");
    if (!e || !*e || !strcmp(e, "1")) return 1;
    if (!strcmp(e, "0")) return 0;
    static int warned;
    if (!warned) {
        warned = 1;
        fprintf(stderr,
                "telepathy: warning: TP_GRAD_REUSE='%s' is not 0 or 1; grad reuse stays on\n", e);
    }
    return 1;
}

int tp_ctx_set_grad_reuse(tp_ctx *c, int on) {
    if (!c) return 0;
    int prev = c->grad_reuse;
    c->grad_reuse = on ? 1 : 0;
    return prev;
}

size_t tp_ctx_step_peak_bytes(const tp_ctx *c) {
    return c ? c->data.step_peak : 0;
}

static int size_slot(tp_block_pool *pl, size_t bytes, int add) {
    for (int i = 0; i < pl->n_sizes; i++)
        if (pl->bytes[i] == bytes) return i;
    if (!add || pl->n_sizes == TP_POOL_SIZES) return -1;
    pl->bytes[pl->n_sizes] = bytes;
    pl->head[pl->n_sizes] = NULL;
    return pl->n_sizes++;
}

static tp_block *descriptor(tp_ctx *c) {
    tp_block *b = c->pool.spare;
    if (b) {
        c->pool.spare = b->next;
        return b;
    }
    return tp_arena_alloc(&c->host, sizeof *b);
}

/* bytes already rounded; NULL when the pool has no block of that size */
static void *pool_take(tp_ctx *c, size_t bytes) {
    int i = size_slot(&c->pool, bytes, 0);
    tp_block *b = i < 0 ? NULL : c->pool.head[i];
    if (!b) return NULL;
    c->pool.head[i] = b->next;
    b->next = c->pool.spare;
    c->pool.spare = b;
    return b->p;
}

static void pool_put(tp_ctx *c, void *p, size_t bytes) {
    int i = size_slot(&c->pool, bytes, 1);
    if (i < 0) return; /* too many distinct sizes: this block is simply not reused */
    tp_block *b = descriptor(c);
    if (!b) return; /* no host memory for a descriptor: same, the block stays unused */
    b->p = p;
    b->bytes = bytes;
    b->next = c->pool.head[i];
    c->pool.head[i] = b;
}

static int backend_ready(tp_ctx *c) {
    if (c->dev != TP_CPU && !tp_backend_get(c->dev)) {
        tp_ctx_fail(c, TP_EUNSUP,
                    "context on cuda but no CUDA backend is registered (hint: "
                    "build with TP_CUDA=ON on a GPU machine, or use device=cpu)");
        return 0;
    }
    return 1;
}

static void *block_get(tp_ctx *c, size_t bytes) {
    if (!backend_ready(c)) return NULL;
    void *p = c->grad_reuse ? pool_take(c, tp_arena_round(&c->data, bytes)) : NULL;
    if (!p) p = tp_arena_alloc(&c->data, bytes);
    if (!p)
        tp_ctx_fail(c, TP_ENOMEM, "arena: cannot allocate %zu bytes on %s (hint: smaller batch)",
                    bytes, c->dev == TP_CPU ? "cpu" : "cuda");
    return p;
}

void *tp_ctx_scratch_bytes(tp_ctx *c, size_t bytes) {
    if (!c->grad_reuse || !c->pool.scope) {
        if (!backend_ready(c)) return NULL;
        void *p = tp_arena_alloc(&c->data, bytes);
        if (!p)
            tp_ctx_fail(c, TP_ENOMEM,
                        "arena: cannot allocate %zu bytes on %s (hint: smaller batch)", bytes,
                        c->dev == TP_CPU ? "cpu" : "cuda");
        return p;
    }
    /* inside a node backward: the block returns to the pool when that backward ends */
    tp_block *d = descriptor(c);
    if (!d) {
        tp_ctx_fail(c, TP_ENOMEM, "arena: cannot allocate a block descriptor");
        return NULL;
    }
    void *p = block_get(c, bytes);
    if (!p) {
        d->next = c->pool.spare;
        c->pool.spare = d;
        return NULL;
    }
    d->p = p;
    d->bytes = tp_arena_round(&c->data, bytes);
    d->next = c->pool.scoped;
    c->pool.scoped = d;
    return p;
}

void tp_ctx_bwd_scope_begin(tp_ctx *c) {
    c->pool.scope = 1;
}

void tp_ctx_bwd_scope_end(tp_ctx *c) {
    c->pool.scope = 0;
    while (c->pool.scoped) {
        tp_block *d = c->pool.scoped;
        c->pool.scoped = d->next;
        int i = size_slot(&c->pool, d->bytes, 1);
        if (i < 0) { /* not reusable: drop the block, keep the descriptor */
            d->next = c->pool.spare;
            c->pool.spare = d;
            continue;
        }
        d->next = c->pool.head[i];
        c->pool.head[i] = d;
    }
}

tp_tensor *tp_ctx_grad_tensor(tp_ctx *c, int ndim, const int64_t *shape) {
    if (!c || c->status != TP_OK) return NULL;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    tp_tensor *t = tp_arena_alloc(&c->host, sizeof *t);
    if (!t) {
        tp_ctx_fail(c, TP_ENOMEM, "arena: cannot allocate a tensor header");
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->node = -1;
    t->dtype = TP_F32;
    t->device = c->dev;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    tp_contig_strides(ndim, shape, t->stride);
    t->flags = TP_FLAG_ARENA | TP_FLAG_GRAD_BLOCK;
    t->data = block_get(c, (size_t)n * sizeof(float));
    if (!t->data || tp_tensor_zero(c, t)) return NULL;
    return t;
}

void tp_ctx_release_grad(tp_ctx *c, tp_tensor *t) {
    if (!c->grad_reuse || !t || (t->flags & TP_FLAG_KEEP_GRAD)) return;
    tp_tensor *g = t->grad;
    if (!g || !(g->flags & TP_FLAG_GRAD_BLOCK)) return;
    pool_put(c, g->data, tp_arena_round(&c->data, (size_t)tp_numel(g) * sizeof(float)));
    /* a stale pointer would read whatever reuses the block: make a late read a clear NULL */
    t->grad = NULL;
}

void tp_ctx_pool_reset(tp_ctx *c) {
    memset(&c->pool, 0, sizeof c->pool);
}
