/* tensor.c — tensor creation (arena and persistent), fills, copies between dtypes / layouts /
 * devices, and element access. No op here is taped: these make leaves. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/cpu.h"
#include "core/rng.h"

int64_t tp_numel(const tp_tensor *t) {
    if (!t) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int tp_is_contiguous(const tp_tensor *t) {
    if (!t) return 0;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

/* ---- host <-> device staging ---- */
static tp_status dev_copy(void *dst, tp_device dd, const void *src, tp_device sd, size_t bytes,
                          tp_err *err) {
    if (dd == TP_CPU && sd == TP_CPU) {
        memcpy(dst, src, bytes);
        return TP_OK;
    }
    const tp_backend_fns *be = tp_backend_get(TP_CUDA);
    if (!be || !be->copy)
        return tp_errf(err, TP_EUNSUP, "copy: tensor on cuda but no CUDA backend is registered");
    return be->copy(dst, dd, src, sd, bytes);
}

void tp_cpu_copy_strided(const tp_tensor *dst, const tp_tensor *src) {
    int64_t sh[4], ds[4], ss[4];
    tp_shape4(dst, sh, ds);
    tp_shape4(src, sh, ss);
    int same = dst->dtype == src->dtype && tp_is_contiguous(dst) && tp_is_contiguous(src);
    if (same) {
        memcpy(dst->data, src->data, (size_t)tp_numel(dst) * tp_dtype_size(dst->dtype));
        return;
    }
    for (int64_t i0 = 0; i0 < sh[0]; i0++)
        for (int64_t i1 = 0; i1 < sh[1]; i1++)
            for (int64_t i2 = 0; i2 < sh[2]; i2++) {
                int64_t od = i0 * ds[0] + i1 * ds[1] + i2 * ds[2];
                int64_t os = i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
                if (src->dtype == TP_F32 && dst->dtype == TP_F32) { /* the common case */
                    float *d = (float *)dst->data + od;
                    const float *q = (const float *)src->data + os;
                    if (ds[3] == 1 && ss[3] == 1)
                        memcpy(d, q, sizeof(float) * (size_t)sh[3]);
                    else
                        for (int64_t i3 = 0; i3 < sh[3]; i3++) d[i3 * ds[3]] = q[i3 * ss[3]];
                } else if (src->dtype == TP_I32 && dst->dtype == TP_I32) {
                    for (int64_t i3 = 0; i3 < sh[3]; i3++)
                        ((int32_t *)dst->data)[od + i3 * ds[3]] =
                            ((const int32_t *)src->data)[os + i3 * ss[3]];
                } else {
                    for (int64_t i3 = 0; i3 < sh[3]; i3++)
                        tp_st(dst->data, dst->dtype, od + i3 * ds[3],
                              tp_ld(src->data, src->dtype, os + i3 * ss[3]));
                }
            }
}

/* Writes a host f32 buffer (contiguous, numel(t)) into t (any dtype/layout/device). */
static tp_status write_f32(tp_tensor *t, const float *src, tp_err *err) {
    tp_tensor h = {.dtype = TP_F32, .device = TP_CPU, .ndim = t->ndim, .data = (void *)src};
    memcpy(h.shape, t->shape, sizeof h.shape);
    tp_contig_strides(t->ndim, t->shape, h.stride);
    return tp_copy_into(t, &h, err);
}

/* ---- arena creation ---- */
static int ctx_ok(tp_ctx *c) {
    return c && c->status == TP_OK;
}

tp_tensor *tp_new(tp_ctx *c, tp_dtype dt, int ndim, const int64_t *shape) {
    if (!ctx_ok(c)) return NULL;
    return tp_ctx_tensor(c, dt, ndim, shape);
}

tp_tensor *tp_zeros(tp_ctx *c, tp_dtype dt, int ndim, const int64_t *shape) {
    tp_tensor *t = tp_new(c, dt, ndim, shape);
    if (!t || tp_tensor_zero(c, t)) return NULL;
    return t;
}

/* Fills an arena tensor from a host staging buffer taken from the host arena. */
static tp_tensor *stage_fill(tp_ctx *c, tp_tensor *t, const void *host, const char *op) {
    tp_err e = {0};
    size_t bytes = (size_t)tp_numel(t) * tp_dtype_size(t->dtype);
    if (dev_copy(t->data, t->device, host, TP_CPU, bytes, &e)) {
        tp_ctx_fail(c, e.code ? e.code : TP_ECUDA, "%s: %s", op, e.msg);
        return NULL;
    }
    return t;
}

static void *host_buf(tp_ctx *c, tp_tensor *t) {
    if (t->device == TP_CPU) return t->data;
    void *p = tp_arena_alloc(&c->host, (size_t)tp_numel(t) * tp_dtype_size(t->dtype));
    if (!p) tp_ctx_fail(c, TP_ENOMEM, "arena: cannot allocate a host staging buffer");
    return p;
}

tp_tensor *tp_full(tp_ctx *c, tp_dtype dt, int ndim, const int64_t *shape, double v) {
    tp_tensor *t = tp_new(c, dt, ndim, shape);
    if (!t) return NULL;
    void *h = host_buf(c, t);
    if (!h) return NULL;
    int64_t n = tp_numel(t);
    for (int64_t i = 0; i < n; i++) tp_st(h, dt, i, v);
    return h == t->data ? t : stage_fill(c, t, h, "full");
}

tp_tensor *tp_from_f32(tp_ctx *c, int ndim, const int64_t *shape, const float *src) {
    tp_tensor *t = tp_new(c, TP_F32, ndim, shape);
    if (!t) return NULL;
    if (!src) {
        tp_ctx_fail(c, TP_EINVAL, "from_f32: NULL source buffer");
        return NULL;
    }
    return stage_fill(c, t, src, "from_f32");
}

tp_tensor *tp_from_i32(tp_ctx *c, int ndim, const int64_t *shape, const int32_t *src) {
    tp_tensor *t = tp_new(c, TP_I32, ndim, shape);
    if (!t) return NULL;
    if (!src) {
        tp_ctx_fail(c, TP_EINVAL, "from_i32: NULL source buffer");
        return NULL;
    }
    return stage_fill(c, t, src, "from_i32");
}

tp_tensor *tp_randn(tp_ctx *c, int ndim, const int64_t *shape, float std, tp_rng *rng) {
    tp_tensor *t = tp_new(c, TP_F32, ndim, shape);
    if (!t) return NULL;
    if (!rng) {
        tp_ctx_fail(c, TP_EINVAL, "randn: NULL rng");
        return NULL;
    }
    float *h = host_buf(c, t);
    if (!h) return NULL;
    tp_rng_fill_normal(rng, h, (size_t)tp_numel(t), 0.0f, std);
    return (void *)h == t->data ? t : stage_fill(c, t, h, "randn");
}

/* ---- persistent tensors ---- */
static tp_status check_shape(const char *op, int ndim, const int64_t *shape, tp_err *err) {
    if (ndim < 1 || ndim > TP_MAX_DIMS || !shape)
        return tp_errf(err, TP_ESHAPE, "%s: ndim %d outside 1..%d", op, ndim, TP_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return tp_errf(err, TP_ESHAPE, "%s: negative size %lld in dim %d", op,
                           (long long)shape[i], i);
    return TP_OK;
}

static tp_tensor *persistent(tp_dtype dt, tp_device dev, int ndim, const int64_t *shape, void *data,
                             tp_err *err, const char *op) {
    if (check_shape(op, ndim, shape, err)) return NULL;
    if ((unsigned)dt >= TP_DTYPE_COUNT) {
        tp_errf(err, TP_EDTYPE, "%s: unknown dtype %d", op, (int)dt);
        return NULL;
    }
    tp_tensor *t = tp_core_calloc(1, sizeof *t);
    if (!t) {
        tp_errf(err, TP_ENOMEM, "%s: out of memory", op);
        return NULL;
    }
    t->dtype = dt;
    t->device = dev;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    tp_contig_strides(ndim, shape, t->stride);
    t->node = -1;
    if (data) {
        t->data = data;
        return t;
    }
    size_t bytes = (size_t)tp_numel(t) * tp_dtype_size(dt);
    if (dev == TP_CPU) {
        t->data = tp_core_calloc(1, bytes ? bytes : 1);
    } else {
        const tp_backend_fns *be = tp_backend_get(dev);
        if (!be || !be->alloc) {
            tp_core_free(t);
            tp_errf(err, TP_EUNSUP, "%s: device cuda requested but no CUDA backend registered", op);
            return NULL;
        }
        t->data = be->alloc(bytes ? bytes : 1);
        if (t->data && be->memset0) be->memset0(t->data, bytes);
    }
    if (!t->data) {
        tp_core_free(t);
        tp_errf(err, TP_ENOMEM, "%s: cannot allocate %zu bytes", op, bytes);
        return NULL;
    }
    t->flags = TP_FLAG_OWNS_DATA;
    return t;
}

tp_tensor *tp_tensor_alloc(tp_dtype dt, tp_device dev, int ndim, const int64_t *shape,
                           tp_err *err) {
    return persistent(dt, dev, ndim, shape, NULL, err, "tensor_alloc");
}

tp_tensor *tp_tensor_wrap(tp_dtype dt, tp_device dev, int ndim, const int64_t *shape, void *data,
                          tp_err *err) {
    if (!data) {
        tp_errf(err, TP_EINVAL, "tensor_wrap: NULL data");
        return NULL;
    }
    return persistent(dt, dev, ndim, shape, data, err, "tensor_wrap");
}

tp_tensor *tp_param_alloc_on(const char *name, tp_device dev, int ndim, const int64_t *shape,
                             tp_err *err) {
    tp_tensor *t = persistent(TP_F32, dev, ndim, shape, NULL, err, "param_alloc");
    if (!t) return NULL;
    t->grad = persistent(TP_F32, dev, ndim, shape, NULL, err, "param_alloc");
    if (!t->grad) {
        tp_tensor_free(t);
        return NULL;
    }
    t->flags |= TP_FLAG_PARAM | TP_FLAG_REQUIRES_GRAD;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    snprintf(t->grad->name, sizeof t->grad->name, "%.58s.grad", t->name);
    return t;
}

tp_tensor *tp_param_alloc(const char *name, int ndim, const int64_t *shape, tp_err *err) {
    return tp_param_alloc_on(name, TP_CPU, ndim, shape, err);
}

tp_status tp_tensor_free(tp_tensor *t) {
    if (!t) return TP_OK;
    if (t->flags & TP_FLAG_ARENA) return TP_ESTATE; /* arena tensors die with tp_ctx_reset */
    if (t->grad && !(t->grad->flags & TP_FLAG_ARENA)) tp_tensor_free(t->grad);
    if (t->flags & TP_FLAG_OWNS_DATA) {
        if (t->device == TP_CPU) {
            tp_core_free(t->data);
        } else {
            const tp_backend_fns *be = tp_backend_get(t->device);
            if (be && be->free) be->free(t->data);
        }
    }
    tp_core_free(t);
    return TP_OK;
}

tp_status tp_param_zero_grad(tp_tensor *p) {
    if (!p) return TP_EINVAL;
    if (!p->grad) return TP_OK; /* frozen: nothing to zero */
    return tp_fill_value(p->grad, 0.0);
}

/* ---- fills (host staging buffer from the heap: these run at init, not inside a step) ---- */
static tp_status fill_with(tp_tensor *t, int kind, float a, float b, double v, tp_rng *rng) {
    tp_err e = {0};
    if (!t) return TP_EINVAL;
    if (kind != 2 && !rng) return TP_EINVAL;
    int64_t n = tp_numel(t);
    int direct = t->device == TP_CPU && t->dtype == TP_F32 && tp_is_contiguous(t);
    float *buf = direct ? (float *)t->data : tp_core_malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!buf) return TP_ENOMEM;
    if (kind == 0) tp_rng_fill_normal(rng, buf, (size_t)n, a, b);
    if (kind == 1) tp_rng_fill_uniform(rng, buf, (size_t)n, a, b);
    if (kind == 2) {
        if (t->dtype == TP_I32 && t->device == TP_CPU) { /* exact for large ints */
            tp_tensor tmp = *t;
            int64_t sh[4], st[4];
            tp_shape4(&tmp, sh, st);
            for (int64_t i0 = 0; i0 < sh[0]; i0++)
                for (int64_t i1 = 0; i1 < sh[1]; i1++)
                    for (int64_t i2 = 0; i2 < sh[2]; i2++)
                        for (int64_t i3 = 0; i3 < sh[3]; i3++)
                            ((int32_t *)
                                 t->data)[i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]] =
                                (int32_t)v;
            if (!direct) tp_core_free(buf);
            return TP_OK;
        }
        for (int64_t i = 0; i < n; i++) buf[i] = (float)v;
    }
    tp_status s = direct ? TP_OK : write_f32(t, buf, &e);
    if (!direct) tp_core_free(buf);
    return s;
}

tp_status tp_fill_normal(tp_tensor *t, float mean, float std, tp_rng *rng) {
    return fill_with(t, 0, mean, std, 0, rng);
}
tp_status tp_fill_uniform(tp_tensor *t, float lo, float hi, tp_rng *rng) {
    return fill_with(t, 1, lo, hi, 0, rng);
}
tp_status tp_fill_value(tp_tensor *t, double v) {
    if (t && t->device != TP_CPU) { /* strided device fills stay on the device */
        const tp_backend_fns *be = tp_backend_get(t->device);
        if (be && be->fill) return be->fill(t, v);
    }
    if (t && v == 0.0 && tp_is_contiguous(t)) {
        size_t bytes = (size_t)tp_numel(t) * tp_dtype_size(t->dtype);
        if (t->device == TP_CPU) {
            memset(t->data, 0, bytes);
            return TP_OK;
        }
        const tp_backend_fns *be = tp_backend_get(t->device);
        if (be && be->memset0) return be->memset0(t->data, bytes);
    }
    return fill_with(t, 2, 0, 0, v, NULL);
}

/* ---- copies ---- */
tp_status tp_copy_into(tp_tensor *dst, const tp_tensor *src, tp_err *err) {
    if (!dst || !src) return tp_errf(err, TP_EINVAL, "copy_into: NULL tensor");
    if (tp_numel(dst) != tp_numel(src) || dst->ndim != src->ndim ||
        memcmp(dst->shape, src->shape, (size_t)dst->ndim * sizeof(int64_t)) != 0)
        return tp_errf(err, TP_ESHAPE, "copy_into: shapes differ: dst %s, src %s", TP_SHAPE(dst),
                       TP_SHAPE(src));
    if ((dst->dtype == TP_I32) != (src->dtype == TP_I32))
        return tp_errf(err, TP_EDTYPE, "copy_into: cannot copy %s into %s",
                       tp_dtype_name(src->dtype), tp_dtype_name(dst->dtype));
    if (dst->device == TP_CPU && src->device == TP_CPU) {
        tp_cpu_copy_strided(dst, src);
        return TP_OK;
    }
    /* cross-device or device-side: same dtype and both contiguous is a plain memcpy */
    size_t bytes = (size_t)tp_numel(src) * tp_dtype_size(src->dtype);
    if (dst->dtype == src->dtype && tp_is_contiguous(dst) && tp_is_contiguous(src))
        return dev_copy(dst->data, dst->device, src->data, src->device, bytes, err);
    if (dst->device != TP_CPU && dst->device == src->device) { /* e.g. KV-cache slice writes */
        const tp_backend_fns *be = tp_backend_get(dst->device);
        if (be && be->copy_strided) {
            tp_status cs = be->copy_strided(dst, src);
            return cs ? tp_errf(err, cs, "copy_into: device copy %s -> %s failed", TP_SHAPE(src),
                                TP_SHAPE(dst))
                      : TP_OK;
        }
    }
    /* otherwise stage through the host: bring src over contiguous, convert, send */
    tp_tensor hs = *src, hd = *dst;
    void *sb = tp_core_malloc(bytes ? bytes : 1);
    size_t dbytes = (size_t)tp_numel(dst) * tp_dtype_size(dst->dtype);
    void *db = tp_core_malloc(dbytes ? dbytes : 1);
    tp_status s = TP_OK;
    if (!sb || !db) {
        s = tp_errf(err, TP_ENOMEM, "copy_into: out of memory staging %zu bytes", bytes);
        goto done;
    }
    if (!tp_is_contiguous(src) && src->device != TP_CPU) {
        s = tp_errf(err, TP_EUNSUP,
                    "copy_into: non-contiguous source on cuda (hint: "
                    "tp_contiguous first)");
        goto done;
    }
    if (!tp_is_contiguous(dst) && dst->device != TP_CPU) {
        s = tp_errf(err, TP_EUNSUP, "copy_into: non-contiguous destination on cuda");
        goto done;
    }
    if (src->device != TP_CPU) {
        if ((s = dev_copy(sb, TP_CPU, src->data, src->device, bytes, err))) goto done;
        hs.data = sb;
        hs.device = TP_CPU;
    }
    if (dst->device != TP_CPU) {
        hd.data = db;
        hd.device = TP_CPU;
        tp_contig_strides(hd.ndim, hd.shape, hd.stride);
    }
    tp_cpu_copy_strided(&hd, &hs);
    if (dst->device != TP_CPU) s = dev_copy(dst->data, dst->device, db, TP_CPU, dbytes, err);
done:
    tp_core_free(sb);
    tp_core_free(db);
    return s;
}

tp_status tp_to_f32_buffer(const tp_tensor *t, float *dst, tp_err *err) {
    if (!t || !dst) return tp_errf(err, TP_EINVAL, "to_f32_buffer: NULL argument");
    tp_tensor h = {.dtype = TP_F32, .device = TP_CPU, .ndim = t->ndim, .data = dst};
    memcpy(h.shape, t->shape, sizeof h.shape);
    tp_contig_strides(t->ndim, t->shape, h.stride);
    if (t->dtype == TP_I32) { /* ids as floats, for inspection */
        /* device ids (token ids, positions) are fetched when contiguous */
        if (t->device != TP_CPU) {
            if (!tp_is_contiguous(t))
                return tp_errf(err, TP_EUNSUP, "to_f32_buffer: non-contiguous i32 tensor on cuda");
            int64_t n = tp_numel(t);
            int32_t *tmp = tp_core_malloc((size_t)(n ? n : 1) * sizeof *tmp);
            if (!tmp) return tp_errf(err, TP_ENOMEM, "to_f32_buffer: out of memory");
            tp_status s = dev_copy(tmp, TP_CPU, t->data, t->device, (size_t)n * sizeof *tmp, err);
            for (int64_t i = 0; s == TP_OK && i < n; i++) dst[i] = (float)tmp[i];
            tp_core_free(tmp);
            return s;
        }
        int64_t sh[4], st[4];
        tp_shape4(t, sh, st);
        int64_t k = 0;
        for (int64_t i0 = 0; i0 < sh[0]; i0++)
            for (int64_t i1 = 0; i1 < sh[1]; i1++)
                for (int64_t i2 = 0; i2 < sh[2]; i2++)
                    for (int64_t i3 = 0; i3 < sh[3]; i3++)
                        dst[k++] =
                            (float)((const int32_t *)
                                        t->data)[i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]];
        return TP_OK;
    }
    return tp_copy_into(&h, t, err);
}

double tp_item(const tp_tensor *t, int64_t flat) {
    if (!t || flat < 0 || flat >= tp_numel(t)) return NAN;
    int64_t off = 0, rem = flat;
    for (int i = t->ndim - 1; i >= 0; i--) {
        off += (rem % t->shape[i]) * t->stride[i];
        rem /= t->shape[i];
    }
    if (t->device == TP_CPU) {
        if (t->dtype == TP_I32) return (double)((const int32_t *)t->data)[off];
        return (double)tp_ld(t->data, t->dtype, off);
    }
    uint32_t raw = 0;
    size_t es = tp_dtype_size(t->dtype);
    if (dev_copy(&raw, TP_CPU, (const char *)t->data + off * (int64_t)es, t->device, es, NULL))
        return NAN;
    if (t->dtype == TP_I32) return (double)(int32_t)raw;
    return (double)tp_ld(&raw, t->dtype, 0);
}
