/* ops_view.c — front ends of the layout ops: reshape / transpose / slice / detach (views that
 * share storage; the tape routes their grad to the base), contiguous and cast (COPY), concat. */
#include <stdio.h>
#include <string.h>

#include "core/ops.h"

/* Records a view node (no dispatch: views are metadata). */
static tp_tensor *push_view(tp_ctx *c, tp_op op, tp_tensor *a, tp_tensor *v, int64_t p0, int64_t p1,
                            int64_t p2) {
    tp_node n = {.op = op, .n_in = 1, .in = {a}, .out = v, .ip = {p0, p1, p2}};
    n.record = tp_tape_wants(c, n.in, 1);
    if (tp_tape_push(c, &n)) return NULL;
    return v;
}

tp_tensor *tp_reshape(tp_ctx *c, tp_tensor *a, int ndim, const int64_t *shape) {
    if (!tp_op_ready(c) || !a) return NULL;
    if (ndim < 1 || ndim > TP_MAX_DIMS || !shape) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'reshape': ndim %d outside 1..%d for input %s", ndim,
                    TP_MAX_DIMS, TP_SHAPE(a));
        return NULL;
    }
    int64_t sh[TP_MAX_DIMS], known = 1;
    int neg = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1 && neg < 0)
            neg = i;
        else if (sh[i] < 0) {
            tp_ctx_fail(c, TP_ESHAPE, "op 'reshape': bad size %lld in dim %d (one -1 allowed)",
                        (long long)sh[i], i);
            return NULL;
        } else
            known *= sh[i];
    }
    int64_t n = tp_numel(a);
    if (neg >= 0) sh[neg] = known ? n / known : 0;
    int64_t m = 1;
    for (int i = 0; i < ndim; i++) m *= sh[i];
    if (m != n) {
        char want[96] = "[";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), i ? ",%lld" : "%lld",
                     (long long)shape[i]);
        tp_ctx_fail(c, TP_ESHAPE, "op 'reshape': cannot view %s (%lld elements) as %s]",
                    TP_SHAPE(a), (long long)n, want);
        return NULL;
    }
    tp_tensor *src = tp_op_contig(c, a);
    if (!src) return NULL;
    tp_tensor *v = tp_ctx_view(c, src);
    if (!v) return NULL;
    v->ndim = ndim;
    memset(v->shape, 0, sizeof v->shape);
    memcpy(v->shape, sh, sizeof(int64_t) * (size_t)ndim);
    tp_contig_strides(ndim, sh, v->stride);
    return push_view(c, TP_OP_RESHAPE, src, v, 0, 0, 0);
}

tp_tensor *tp_transpose(tp_ctx *c, tp_tensor *a, int d0, int d1) {
    if (!tp_op_ready(c) || !a) return NULL;
    int x = tp_op_dim(c, a, d0, "transpose"), y = tp_op_dim(c, a, d1, "transpose");
    if (x < 0 || y < 0) return NULL;
    tp_tensor *v = tp_ctx_view(c, a);
    if (!v) return NULL;
    int64_t t = v->shape[x];
    v->shape[x] = v->shape[y];
    v->shape[y] = t;
    t = v->stride[x];
    v->stride[x] = v->stride[y];
    v->stride[y] = t;
    return push_view(c, TP_OP_TRANSPOSE, a, v, x, y, 0);
}

tp_tensor *tp_slice(tp_ctx *c, tp_tensor *a, int dim, int64_t start, int64_t len) {
    if (!tp_op_ready(c) || !a) return NULL;
    int d = tp_op_dim(c, a, dim, "slice");
    if (d < 0) return NULL;
    if (start < 0 || len < 0 || start + len > a->shape[d]) {
        tp_ctx_fail(c, TP_ERANGE, "op 'slice': [%lld, %lld) outside dim %d of %s", (long long)start,
                    (long long)(start + len), d, TP_SHAPE(a));
        return NULL;
    }
    tp_tensor *v = tp_ctx_view(c, a);
    if (!v) return NULL;
    v->data = (char *)a->data + start * a->stride[d] * (int64_t)tp_dtype_size(a->dtype);
    v->shape[d] = len;
    return push_view(c, TP_OP_SLICE, a, v, d, start, len);
}

tp_tensor *tp_detach(tp_ctx *c, tp_tensor *a) {
    if (!tp_op_ready(c) || !a) return NULL;
    tp_tensor *v = tp_ctx_view(c, a);
    if (v) v->flags &= ~TP_FLAG_REQUIRES_GRAD;
    return v;
}

static tp_tensor *copy_op(tp_ctx *c, tp_tensor *a, tp_dtype dt) {
    tp_tensor *out = tp_ctx_tensor(c, dt, a->ndim, a->shape);
    tp_node n = {.op = TP_OP_COPY, .n_in = 1, .in = {a}, .out = out};
    if (!out) return NULL;
    if (dt == TP_I32 || a->dtype == TP_I32) { /* ids have no grad */
        if (tp_dispatch_fwd(c, &n)) return NULL;
        return out;
    }
    return tp_op_run(c, &n);
}

tp_tensor *tp_contiguous(tp_ctx *c, tp_tensor *a) {
    if (!tp_op_ready(c) || !a) return NULL;
    if (tp_is_contiguous(a)) return a;
    return copy_op(c, a, a->dtype);
}

tp_tensor *tp_cast(tp_ctx *c, tp_tensor *a, tp_dtype dt) {
    if (!tp_op_ready(c) || !a) return NULL;
    if ((unsigned)dt >= TP_DTYPE_COUNT) {
        tp_ctx_fail(c, TP_EDTYPE, "op 'cast': unknown dtype %d for %s", (int)dt, TP_SHAPE(a));
        return NULL;
    }
    if (a->dtype == dt) return a;
    return copy_op(c, a, dt);
}

static tp_tensor *concat4(tp_ctx *c, tp_tensor *const *ts, int n, int d) {
    const tp_tensor *a = ts[0];
    int64_t shape[TP_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[d] = 0;
    int is_int = a->dtype == TP_I32;
    tp_node nd = {.op = TP_OP_CONCAT, .n_in = n, .ip = {d}};
    for (int i = 0; i < n; i++) {
        tp_tensor *t = ts[i];
        if (t->ndim != a->ndim || (t->dtype == TP_I32) != is_int) {
            tp_ctx_fail(c, TP_ESHAPE, "op 'concat': input %d %s does not match input 0 %s", i,
                        TP_SHAPE(t), TP_SHAPE(a));
            return NULL;
        }
        for (int k = 0; k < a->ndim; k++)
            if (k != d && t->shape[k] != a->shape[k]) {
                tp_ctx_fail(c, TP_ESHAPE,
                            "op 'concat': input %d %s differs from input 0 %s outside dim %d", i,
                            TP_SHAPE(t), TP_SHAPE(a), d);
                return NULL;
            }
        nd.in[i] = tp_op_contig(c, is_int ? t : tp_op_float_in(c, t, "concat", "input"));
        if (!nd.in[i]) return NULL;
        shape[d] += t->shape[d];
    }
    tp_dtype dt = is_int ? TP_I32 : tp_op_out_dtype(c, nd.in, n);
    nd.out = tp_ctx_tensor(c, dt, a->ndim, shape);
    if (is_int) {
        if (!nd.out || tp_dispatch_fwd(c, &nd)) return NULL;
        return nd.out;
    }
    return tp_op_run(c, &nd);
}

tp_tensor *tp_concat(tp_ctx *c, tp_tensor *const *ts, int n, int dim) {
    if (!tp_op_ready(c)) return NULL;
    if (!ts || n < 1) {
        tp_ctx_fail(c, TP_EINVAL, "op 'concat': need at least one tensor");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!ts[i]) return NULL; /* NULL propagation: an earlier op failed */
    int d = tp_op_dim(c, ts[0], dim, "concat");
    if (d < 0) return NULL;
    if (n == 1) return ts[0];
    tp_tensor *acc = concat4(c, ts, n < 4 ? n : 4, d);
    for (int i = 4; i < n && acc; i += 3) {
        tp_tensor *grp[4] = {acc};
        int k = 1;
        for (int j = i; j < n && k < 4; j++) grp[k++] = ts[j];
        acc = concat4(c, grp, k, d);
    }
    return acc;
}
