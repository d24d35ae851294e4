/* arena.c — the counted heap wrappers and the per-context chunked arena. A step bumps a
 * pointer through chunks (each new one a quarter of what the arena holds, or the block's size);
 * tp_arena_reset rewinds and, if the step spilled into several chunks, coalesces them into one
 * chunk at the high-water mark so a warmed-up step allocates nothing. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/ctx.h"

static _Atomic uint64_t g_heap_allocs;

uint64_t tp_heap_alloc_count(void) {
    return atomic_load(&g_heap_allocs);
}

void *tp_core_malloc(size_t n) {
    atomic_fetch_add(&g_heap_allocs, 1);
    return malloc(n ? n : 1);
}
void *tp_core_calloc(size_t n, size_t size) {
    atomic_fetch_add(&g_heap_allocs, 1);
    return calloc(n ? n : 1, size ? size : 1);
}
void *tp_core_realloc(void *p, size_t n) {
    atomic_fetch_add(&g_heap_allocs, 1);
    return realloc(p, n ? n : 1);
}
void tp_core_free(void *p) {
    free(p);
}

#define ALIGN     64
#define DEV_ALIGN 256
#define MIN_CHUNK ((size_t)1 << 20)

static void *chunk_alloc(tp_device dev, size_t bytes) {
    if (dev == TP_CPU) {
        atomic_fetch_add(&g_heap_allocs, 1);
        return aligned_alloc(ALIGN, (bytes + ALIGN - 1) / ALIGN * ALIGN);
    }
    const tp_backend_fns *be = tp_backend_get(dev);
    if (!be || !be->alloc) return NULL;
    atomic_fetch_add(&g_heap_allocs, 1);
    return be->alloc(bytes);
}

static void chunk_free(tp_device dev, void *p) {
    if (!p) return;
    if (dev == TP_CPU) {
        free(p);
        return;
    }
    const tp_backend_fns *be = tp_backend_get(dev);
    if (be && be->free) be->free(p);
}

void tp_arena_init(tp_arena *a, tp_device dev) {
    *a = (tp_arena){0};
    a->dev = dev;
}

size_t tp_arena_round(const tp_arena *a, size_t bytes) {
    /* device blocks start on 256 bytes: the alignment cuBLASLt's fastest GEMM kernels assume
     * (a less aligned pointer restricts its algorithm choice) */
    size_t al = a->dev == TP_CPU ? ALIGN : DEV_ALIGN;
    size_t need = (bytes + al - 1) / al * al;
    return need ? need : al;
}

void *tp_arena_alloc(tp_arena *a, size_t bytes) {
    size_t need = tp_arena_round(a, bytes);
    while (a->n_chunks == 0 || a->used + need > a->cap[a->cur]) {
        if (a->n_chunks > 0 && a->cur + 1 < a->n_chunks) {
            /* wasted tail counts towards the step so the coalesced chunk is big enough */
            a->step_bytes += a->cap[a->cur] - a->used;
            a->cur++;
            a->used = 0;
            continue;
        }
        if (a->n_chunks == TP_ARENA_MAX_CHUNKS) return NULL;
        /* grow by a quarter of what is held, not by doubling the last chunk: a step that
         * outgrows the previous step's coalesced chunk C by a little then holds ~1.25 C until
         * the reset coalesces, not 3 C (the device's peak memory counts every chunk held) */
        size_t cap = tp_arena_capacity(a) / 4;
        if (cap < MIN_CHUNK) cap = MIN_CHUNK;
        if (cap < need) cap = need;
        void *p = chunk_alloc(a->dev, cap);
        if (!p) return NULL;
        if (a->n_chunks > 0) {
            a->step_bytes += a->cap[a->cur] - a->used;
            a->cur = a->n_chunks;
        }
        a->chunk[a->n_chunks] = p;
        a->cap[a->n_chunks] = cap;
        a->n_chunks++;
        a->used = 0;
    }
    void *p = a->chunk[a->cur] + a->used;
    a->used += need;
    a->step_bytes += need;
    if (a->step_bytes > a->step_peak) a->step_peak = a->step_bytes;
    if (a->step_bytes > a->peak) a->peak = a->step_bytes;
    return p;
}

void tp_arena_reset(tp_arena *a) {
    if (a->n_chunks > 1) {
        size_t cap = a->peak + a->peak / 8;
        for (int i = 0; i < a->n_chunks; i++) chunk_free(a->dev, a->chunk[i]);
        a->n_chunks = 0;
        void *p = chunk_alloc(a->dev, cap);
        if (p) {
            a->chunk[0] = p;
            a->cap[0] = cap;
            a->n_chunks = 1;
        }
    }
    a->cur = 0;
    a->used = 0;
    a->step_bytes = 0;
    a->step_peak = 0;
}

void tp_arena_release(tp_arena *a) {
    for (int i = 0; i < a->n_chunks; i++) chunk_free(a->dev, a->chunk[i]);
    tp_arena_init(a, a->dev);
}

size_t tp_arena_capacity(const tp_arena *a) {
    size_t s = 0;
    for (int i = 0; i < a->n_chunks; i++) s += a->cap[i];
    return s;
}
