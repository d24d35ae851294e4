/* ops_norm.c — front ends of the normalisations over the last dim (RMSNorm, LayerNorm,
 * L2-normalise) and the cosine-similarity matrix built from them. */
#include "core/ops.h"

static int vec_ok(tp_ctx *c, const char *op, const char *arg, const tp_tensor *x,
                  const tp_tensor *w) {
    if (!w) return 1;
    if (w->ndim != 1 || w->shape[0] != x->shape[x->ndim - 1]) {
        tp_ctx_fail(c, TP_ESHAPE, "op '%s': %s %s must be [%lld] for x %s", op, arg, TP_SHAPE(w),
                    (long long)x->shape[x->ndim - 1], TP_SHAPE(x));
        return 0;
    }
    return 1;
}

tp_tensor *tp_rmsnorm(tp_ctx *c, tp_tensor *x, tp_tensor *w, float eps) {
    if (!tp_op_ready(c) || !x) return NULL;
    if (!vec_ok(c, "rmsnorm", "w", x, w)) return NULL;
    tp_node n = {.op = TP_OP_RMSNORM, .n_in = 2, .fp = {eps}};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, x, "rmsnorm", "x"));
    if (w) n.in[1] = tp_op_contig(c, tp_op_float_in(c, w, "rmsnorm", "w"));
    if (!n.in[0] || (w && !n.in[1])) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 2), x->ndim, x->shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_layernorm(tp_ctx *c, tp_tensor *x, tp_tensor *w, tp_tensor *b, float eps) {
    if (!tp_op_ready(c) || !x) return NULL;
    if (!vec_ok(c, "layernorm", "w", x, w) || !vec_ok(c, "layernorm", "b", x, b)) return NULL;
    tp_node n = {.op = TP_OP_LAYERNORM, .n_in = 3, .fp = {eps}};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, x, "layernorm", "x"));
    if (w) n.in[1] = tp_op_contig(c, tp_op_float_in(c, w, "layernorm", "w"));
    if (b) n.in[2] = tp_op_contig(c, tp_op_float_in(c, b, "layernorm", "b"));
    if (!n.in[0] || (w && !n.in[1]) || (b && !n.in[2])) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 3), x->ndim, x->shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_l2_normalize(tp_ctx *c, tp_tensor *x, float eps) {
    if (!tp_op_ready(c) || !x) return NULL;
    tp_node n = {.op = TP_OP_L2NORM, .n_in = 1, .fp = {eps}};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, x, "l2_normalize", "x"));
    if (!n.in[0]) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), x->ndim, x->shape);
    return tp_op_run(c, &n);
}

/* Normalises each row with max(|row|, eps) (F.normalize) and takes all dot products. */
tp_tensor *tp_cosine_matrix(tp_ctx *c, tp_tensor *a, tp_tensor *b, float eps) {
    if (!tp_op_ready(c) || !a || !b) return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1]) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'cosine_matrix': a %s and b %s must be [N,D] and [P,D]",
                    TP_SHAPE(a), TP_SHAPE(b));
        return NULL;
    }
    return tp_matmul(c, tp_l2_normalize(c, a, eps), tp_l2_normalize(c, b, eps), 0, 1);
}
