/* ops_common.c — the shared front-end steps declared in ops.h. */
#include <string.h>

#include "core/ops.h"

tp_tensor *tp_op_float_in(tp_ctx *c, tp_tensor *t, const char *op, const char *arg) {
    if (!tp_op_ready(c) || !t) return NULL;
    if (t->dtype == TP_I32) {
        tp_ctx_fail(c, TP_EDTYPE, "op '%s': %s %s is i32, expected a float tensor (f32/bf16/f16)",
                    op, arg, TP_SHAPE(t));
        return NULL;
    }
    if (t->device != c->dev) {
        tp_ctx_fail(c, TP_EINVAL, "op '%s': %s %s is on %s but the context is on %s", op, arg,
                    TP_SHAPE(t), t->device == TP_CPU ? "cpu" : "cuda",
                    c->dev == TP_CPU ? "cpu" : "cuda");
        return NULL;
    }
    if (c->dev == TP_CPU && t->dtype != TP_F32) return tp_cast(c, t, TP_F32);
    return t;
}

tp_tensor *tp_op_int_in(tp_ctx *c, tp_tensor *t, const char *op, const char *arg) {
    if (!tp_op_ready(c) || !t) return NULL;
    if (t->dtype != TP_I32) {
        tp_ctx_fail(c, TP_EDTYPE, "op '%s': %s %s must be i32", op, arg, TP_SHAPE(t));
        return NULL;
    }
    if (t->device != c->dev) {
        tp_ctx_fail(c, TP_EINVAL, "op '%s': %s %s is on another device than the context", op, arg,
                    TP_SHAPE(t));
        return NULL;
    }
    if (!tp_is_contiguous(t)) return tp_contiguous(c, t);
    return t;
}

tp_tensor *tp_op_contig(tp_ctx *c, tp_tensor *t) {
    if (!t) return NULL;
    return tp_is_contiguous(t) ? t : tp_contiguous(c, t);
}

tp_dtype tp_op_out_dtype(tp_ctx *c, tp_tensor *const *in, int n) {
    if (c->dev == TP_CPU) return TP_F32;
    tp_dtype dt = TP_DTYPE_COUNT;
    for (int i = 0; i < n; i++) {
        if (!in[i] || in[i]->dtype == TP_I32) continue;
        if (dt == TP_DTYPE_COUNT)
            dt = in[i]->dtype;
        else if (dt != in[i]->dtype)
            return TP_F32;
    }
    return dt == TP_DTYPE_COUNT ? TP_F32 : dt;
}

tp_tensor *tp_op_run(tp_ctx *c, tp_node *n) {
    if (!tp_op_ready(c) || !n->out) return NULL;
    n->record = tp_tape_wants(c, n->in, TP_NODE_MAX_IN);
    if (tp_dispatch_fwd(c, n)) return NULL;
    if (tp_tape_push(c, n)) return NULL;
    return n->out;
}

int tp_op_dim(tp_ctx *c, const tp_tensor *t, int dim, const char *op) {
    int d = dim < 0 ? dim + t->ndim : dim;
    if (d < 0 || d >= t->ndim) {
        tp_ctx_fail(c, TP_EINVAL, "op '%s': dim %d out of range for %s", op, dim, TP_SHAPE(t));
        return -1;
    }
    return d;
}

int tp_same_shape(const tp_tensor *a, const tp_tensor *b) {
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
}
