/* ctx.c — the step context: lifetime, sticky error, grad mode, arena tensors and views, and the
 * small shape helpers every op front end and backend uses. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/cpu.h"

tp_ctx *tp_ctx_new(tp_device dev) {
    tp_cpu_blas_init();
    tp_ctx *c = tp_core_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->dev = dev;
    tp_arena_init(&c->host, TP_CPU);
    tp_arena_init(&c->data, dev);
    c->grad_enabled = 1;
    c->grad_reuse = tp_grad_reuse_default();
    return c;
}

void tp_ctx_free(tp_ctx *c) {
    if (!c) return;
    tp_arena_release(&c->host);
    tp_arena_release(&c->data);
    tp_core_free(c->nodes);
    tp_core_free(c);
}

void tp_ctx_reset(tp_ctx *c) {
    if (!c) return;
    tp_arena_reset(&c->host);
    tp_arena_reset(&c->data);
    tp_ctx_pool_reset(c); /* its blocks and descriptors were in the arenas just rewound */
    c->n_nodes = 0;
}

void tp_ctx_clear_error(tp_ctx *c) {
    if (!c) return;
    c->status = TP_OK;
    c->err[0] = 0;
}

tp_status tp_ctx_fail(tp_ctx *c, tp_status code, const char *fmt, ...) {
    if (!c) return code;
    if (c->status != TP_OK) return c->status; /* keep the first error: it is the cause */
    c->status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

tp_status tp_ctx_status(const tp_ctx *c) {
    return c ? c->status : TP_EINVAL;
}
const char *tp_ctx_error(const tp_ctx *c) {
    return c ? c->err : "no context";
}
int tp_grad_enabled(const tp_ctx *c) {
    return c ? c->grad_enabled : 0;
}
int tp_set_grad_enabled(tp_ctx *c, int on) {
    if (!c) return 0;
    int prev = c->grad_enabled;
    c->grad_enabled = on ? 1 : 0;
    return prev;
}
size_t tp_ctx_peak_bytes(const tp_ctx *c) {
    return c ? c->host.peak + c->data.peak : 0;
}
size_t tp_ctx_arena_bytes(const tp_ctx *c) {
    return c ? tp_arena_capacity(&c->host) + tp_arena_capacity(&c->data) : 0;
}
tp_device tp_ctx_device(const tp_ctx *c) {
    return c->dev;
}

void tp_contig_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i];
    }
}

const char *tp_shape_str(const tp_tensor *t, char *buf, size_t n) {
    if (!t) {
        snprintf(buf, n, "(null)");
        return buf;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]%s", t->dtype == TP_F32 ? "" : tp_dtype_name(t->dtype));
    return buf;
}

/* tp_ctx_scratch_bytes lives in pool.c: inside a node backward it draws from the block pool. */

static tp_tensor *header(tp_ctx *c) {
    tp_tensor *t = tp_arena_alloc(&c->host, sizeof *t);
    if (!t) {
        tp_ctx_fail(c, TP_ENOMEM, "arena: cannot allocate a tensor header");
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->node = -1;
    return t;
}

tp_tensor *tp_ctx_tensor(tp_ctx *c, tp_dtype dt, int ndim, const int64_t *shape) {
    if (!c || c->status != TP_OK) return NULL;
    if (ndim < 1 || ndim > TP_MAX_DIMS || !shape) {
        tp_ctx_fail(c, TP_ESHAPE, "new tensor: ndim %d outside 1..%d", ndim, TP_MAX_DIMS);
        return NULL;
    }
    if ((unsigned)dt >= TP_DTYPE_COUNT) {
        tp_ctx_fail(c, TP_EDTYPE, "new tensor: unknown dtype %d", (int)dt);
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            tp_ctx_fail(c, TP_ESHAPE, "new tensor: negative size %lld in dim %d",
                        (long long)shape[i], i);
            return NULL;
        }
        n *= shape[i];
    }
    tp_tensor *t = header(c);
    if (!t) return NULL;
    t->dtype = dt;
    t->device = c->dev;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    tp_contig_strides(ndim, shape, t->stride);
    t->flags = TP_FLAG_ARENA;
    t->data = tp_ctx_scratch_bytes(c, (size_t)n * tp_dtype_size(dt));
    return t->data ? t : NULL;
}

tp_tensor *tp_ctx_scratch(tp_ctx *c, tp_dtype dt, int ndim, const int64_t *shape) {
    return tp_ctx_tensor(c, dt, ndim, shape);
}

tp_tensor *tp_ctx_view(tp_ctx *c, tp_tensor *a) {
    tp_tensor *t = header(c);
    if (!t) return NULL;
    *t = *a;
    t->grad = NULL;
    t->base = a->base ? a->base : a;
    t->flags = TP_FLAG_ARENA;
    t->node = -1;
    t->name[0] = 0;
    return t;
}

tp_status tp_tensor_zero(tp_ctx *c, tp_tensor *t) {
    size_t bytes = (size_t)tp_numel(t) * tp_dtype_size(t->dtype);
    if (!tp_is_contiguous(t))
        return tp_ctx_fail(c, TP_ESTATE, "zero: tensor %s is not contiguous", TP_SHAPE(t));
    if (t->device == TP_CPU) {
        memset(t->data, 0, bytes);
        return TP_OK;
    }
    const tp_backend_fns *be = tp_backend_get(t->device);
    if (!be || !be->memset0)
        return tp_ctx_fail(c, TP_EUNSUP, "zero: no backend registered for device cuda");
    tp_status s = be->memset0(t->data, bytes);
    if (s) return tp_ctx_fail(c, s, "zero: device memset failed");
    return TP_OK;
}

void tp_shape4(const tp_tensor *t, int64_t shape[4], int64_t stride[4]) {
    int pad = 4 - t->ndim;
    for (int i = 0; i < 4; i++) {
        if (i < pad) {
            shape[i] = 1;
            stride[i] = 0;
        } else {
            shape[i] = t->shape[i - pad];
            stride[i] = t->stride[i - pad];
        }
    }
}

void tp_bcast_strides(const tp_tensor *a, const tp_tensor *b, int64_t stride[4]) {
    int64_t as[4], ast[4], bs[4], bst[4];
    tp_shape4(a, as, ast);
    tp_shape4(b, bs, bst);
    for (int i = 0; i < 4; i++) stride[i] = (bs[i] == 1 && as[i] != 1) ? 0 : bst[i];
}

int tp_mat_layout(const tp_tensor *t, int *trans, int64_t *ld) {
    int r = t->ndim - 2, cdim = t->ndim - 1;
    int64_t rows = t->shape[r], cols = t->shape[cdim];
    if (t->stride[cdim] == 1 && (t->stride[r] >= (cols > 1 ? cols : 1) || rows == 1)) {
        *trans = 0;
        *ld = rows == 1 ? (cols > 1 ? cols : 1) : t->stride[r];
        if (*ld < cols) *ld = cols;
        return 1;
    }
    if (t->stride[r] == 1 && (t->stride[cdim] >= (rows > 1 ? rows : 1) || cols == 1)) {
        *trans = 1;
        *ld = cols == 1 ? (rows > 1 ? rows : 1) : t->stride[cdim];
        if (*ld < rows) *ld = rows;
        return 1;
    }
    return 0;
}

int64_t tp_rows(const tp_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim - 1; i++) n *= t->shape[i];
    return n;
}
int64_t tp_cols(const tp_tensor *t) {
    return t->shape[t->ndim - 1];
}
