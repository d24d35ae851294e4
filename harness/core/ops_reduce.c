/* ops_reduce.c — front ends of the reductions: sum / mean over one dim (keepdim or not),
 * over everything (-> [1]), masked pooling over the sequence (mean / sum / max), and the row
 * argmax greedy decoding takes on the logits' device. */
#include <string.h>

#include "core/ops.h"

static tp_tensor *reduce(tp_ctx *c, tp_tensor *x, int dim, int keepdim, int mean, const char *op) {
    if (!tp_op_ready(c) || !x) return NULL;
    int d = tp_op_dim(c, x, dim, op);
    if (d < 0) return NULL;
    tp_node n = {.op = TP_OP_SUM, .n_in = 1, .ip = {d, keepdim ? 1 : 0}};
    n.fp[0] = mean ? (x->shape[d] ? 1.0f / (float)x->shape[d] : 0.0f) : 1.0f;
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, x, op, "x"));
    if (!n.in[0]) return NULL;
    int64_t shape[TP_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i == d) {
            if (keepdim) shape[nd++] = 1;
        } else {
            shape[nd++] = x->shape[i];
        }
    }
    if (nd == 0) shape[nd++] = 1;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), nd, shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_sum(tp_ctx *c, tp_tensor *x, int dim, int keepdim) {
    return reduce(c, x, dim, keepdim, 0, "sum");
}
tp_tensor *tp_mean(tp_ctx *c, tp_tensor *x, int dim, int keepdim) {
    return reduce(c, x, dim, keepdim, 1, "mean");
}

static tp_tensor *reduce_all(tp_ctx *c, tp_tensor *x, int mean) {
    if (!tp_op_ready(c) || !x) return NULL;
    tp_tensor *flat = tp_reshape(c, x, 1, (int64_t[]){tp_numel(x)});
    return reduce(c, flat, 0, 1, mean, mean ? "mean_all" : "sum_all");
}
tp_tensor *tp_sum_all(tp_ctx *c, tp_tensor *x) {
    return reduce_all(c, x, 0);
}
tp_tensor *tp_mean_all(tp_ctx *c, tp_tensor *x) {
    return reduce_all(c, x, 1);
}

tp_tensor *tp_pool(tp_ctx *c, tp_tensor *x, tp_tensor *mask, tp_pool_kind k) {
    if (!tp_op_ready(c) || !x) return NULL;
    if (x->ndim != 3 ||
        (mask &&
         (mask->ndim != 2 || mask->shape[0] != x->shape[0] || mask->shape[1] != x->shape[1])) ||
        (k != TP_POOL_MEAN && k != TP_POOL_SUM && k != TP_POOL_MAX)) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'pool': x %s must be [B,T,D], mask %s [B,T], kind %d in 0..2",
                    TP_SHAPE(x), mask ? TP_SHAPE(mask) : "none", (int)k);
        return NULL;
    }
    tp_node n = {.op = TP_OP_POOL, .n_in = 2, .ip = {k}};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, x, "pool", "x"));
    if (mask) n.in[1] = tp_op_contig(c, tp_op_float_in(c, mask, "pool", "mask"));
    if (!n.in[0] || (mask && !n.in[1])) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), 2, (int64_t[]){x->shape[0], x->shape[2]});
    return tp_op_run(c, &n);
}

tp_tensor *tp_argmax_rows(tp_ctx *c, tp_tensor *x) {
    if (!tp_op_ready(c) || !x) return NULL;
    if (x->dtype == TP_I32 || x->ndim < 1 || x->shape[x->ndim - 1] < 1)
        return tp_ctx_fail(c, TP_EINVAL,
                           "op 'argmax': needs a float tensor with a non-empty last "
                           "dim, got %s %s",
                           tp_dtype_name(x->dtype), TP_SHAPE(x)),
               NULL;
    tp_node n = {.op = TP_OP_ARGMAX, .n_in = 1};
    n.in[0] = tp_op_contig(c, x);
    if (!n.in[0]) return NULL;
    int64_t shape[TP_MAX_DIMS];
    int nd = x->ndim - 1;
    for (int i = 0; i < nd; i++) shape[i] = x->shape[i];
    if (nd == 0) shape[nd++] = 1;
    n.out = tp_ctx_tensor(c, TP_I32, nd, shape);
    if (!n.out || tp_dispatch_fwd(c, &n)) return NULL; /* an index has no gradient: not taped */
    return n.out;
}
