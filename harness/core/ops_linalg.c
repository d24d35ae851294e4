/* ops_linalg.c — front ends of matmul (batched, transposes, shared 2-D b), linear (HF
 * nn.Linear: x @ w^T + b, composed from matmul and add) and the embedding gather. */
#include <string.h>

#include "core/ops.h"

tp_tensor *tp_matmul(tp_ctx *c, tp_tensor *a, tp_tensor *b, int ta, int tb) {
    if (!tp_op_ready(c) || !a || !b) return NULL;
    if (a->ndim < 2 || b->ndim < 2 || (b->ndim != 2 && b->ndim != a->ndim)) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'matmul': a %s and b %s: both need >= 2 dims and b must be 2-D or have "
                    "a's rank",
                    TP_SHAPE(a), TP_SHAPE(b));
        return NULL;
    }
    int ar = a->ndim;
    int64_t M = ta ? a->shape[ar - 1] : a->shape[ar - 2];
    int64_t K = ta ? a->shape[ar - 2] : a->shape[ar - 1];
    int64_t Kb = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    int64_t N = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    int batch_ok = b->ndim == 2 || !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)(ar - 2));
    if (K != Kb || !batch_ok) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'matmul': a %s (ta=%d) @ b %s (tb=%d): inner sizes %lld vs %lld%s",
                    TP_SHAPE(a), ta, TP_SHAPE(b), tb, (long long)K, (long long)Kb,
                    batch_ok ? "" : ", batch dims differ");
        return NULL;
    }
    tp_node n = {.op = TP_OP_MATMUL, .n_in = 2, .ip = {ta ? 1 : 0, tb ? 1 : 0}};
    tp_tensor *x = tp_op_float_in(c, a, "matmul", "a"), *y = tp_op_float_in(c, b, "matmul", "b");
    if (!x || !y) return NULL;
    int tr;
    int64_t ld;
    if (!tp_mat_layout(x, &tr, &ld)) x = tp_contiguous(c, x);
    if (y && !tp_mat_layout(y, &tr, &ld)) y = tp_contiguous(c, y);
    if (!x || !y) return NULL;
    n.in[0] = x;
    n.in[1] = y;
    int64_t shape[TP_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ar - 2] = M;
    shape[ar - 1] = N;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 2), ar, shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_linear(tp_ctx *c, tp_tensor *x, tp_tensor *w, tp_tensor *bias) {
    if (!tp_op_ready(c) || !x || !w) return NULL;
    int64_t K = x->shape[x->ndim - 1];
    if (w->ndim != 2 || w->shape[1] != K ||
        (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0]))) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'linear': x %s, w %s, bias %s: expected w [N,%lld] and bias [N] (HF "
                    "nn.Linear layout)",
                    TP_SHAPE(x), TP_SHAPE(w), bias ? TP_SHAPE(bias) : "none", (long long)K);
        return NULL;
    }
    tp_tensor *x2 = x->ndim == 2 ? x : tp_reshape(c, x, 2, (int64_t[]){tp_rows(x), K});
    tp_tensor *y = tp_matmul(c, x2, w, 0, 1);
    if (bias) y = tp_add(c, y, bias);
    if (!y || x->ndim == 2) return y;
    int64_t shape[TP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    return tp_reshape(c, y, x->ndim, shape);
}

tp_tensor *tp_linear_add(tp_ctx *c, tp_tensor *x, tp_tensor *w, tp_tensor *r) {
    if (!tp_op_ready(c) || !x || !w || !r) return NULL;
    int64_t K = x->shape[x->ndim - 1], rows = tp_rows(x);
    if (w->ndim != 2 || w->shape[1] != K || r->ndim != x->ndim ||
        r->shape[r->ndim - 1] != w->shape[0] || tp_numel(r) != rows * w->shape[0]) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'linear_add': x %s, w %s, r %s: expected w [N,%lld] and r shaped like "
                    "x @ w^T",
                    TP_SHAPE(x), TP_SHAPE(w), TP_SHAPE(r), (long long)K);
        return NULL;
    }
    int64_t N = w->shape[0];
    tp_tensor *x2 = x->ndim == 2 ? x : tp_reshape(c, x, 2, (int64_t[]){rows, K});
    tp_tensor *r2 = r->ndim == 2 ? r : tp_reshape(c, r, 2, (int64_t[]){rows, N});
    tp_tensor *a = x2 ? tp_op_float_in(c, x2, "linear_add", "x") : NULL;
    tp_tensor *b = tp_op_float_in(c, w, "linear_add", "w");
    if (!a || !b) return NULL;
    int tr;
    int64_t ld;
    if (!tp_mat_layout(a, &tr, &ld)) a = tp_contiguous(c, a);
    if (a && !tp_mat_layout(b, &tr, &ld)) b = tp_contiguous(c, b);
    if (!a || !b || !r2) return NULL;
    tp_node n = {.op = TP_OP_MATMUL, .n_in = 3, .ip = {0, 1}};
    n.in[0] = a;
    n.in[1] = b;
    tp_dtype od = tp_op_out_dtype(c, n.in, 2);
    /* the residual is the GEMM's C: contiguous, in the output dtype */
    tp_tensor *rr = tp_op_float_in(c, r2, "linear_add", "r");
    if (rr && rr->dtype != od) rr = tp_cast(c, rr, od);
    n.in[2] = tp_op_contig(c, rr);
    if (!n.in[2]) return NULL;
    n.out = tp_ctx_tensor(c, od, 2, (int64_t[]){rows, N});
    tp_tensor *y = tp_op_run(c, &n);
    if (!y || x->ndim == 2) return y;
    return tp_reshape(c, y, r->ndim, r->shape);
}

tp_tensor *tp_embedding(tp_ctx *c, tp_tensor *weight, tp_tensor *ids) {
    if (!tp_op_ready(c) || !weight || !ids) return NULL;
    if (weight->ndim != 2 || ids->ndim > 3) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'embedding': weight %s must be [V,D], ids %s at most 3-D",
                    TP_SHAPE(weight), TP_SHAPE(ids));
        return NULL;
    }
    tp_node n = {.op = TP_OP_EMBEDDING, .n_in = 2};
    if (weight->dtype == TP_I32 || weight->device != c->dev) {
        tp_ctx_fail(c, TP_EDTYPE,
                    "op 'embedding': weight %s must be a float tensor on the "
                    "context's device",
                    TP_SHAPE(weight));
        return NULL;
    }
    /* not cast to f32 on CPU: the kernel converts only the gathered rows of a bf16 table */
    n.in[0] = tp_op_contig(c, weight);
    n.in[1] = tp_op_int_in(c, ids, "embedding", "ids");
    if (!n.in[0] || !n.in[1]) return NULL;
    int64_t shape[TP_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    shape[ids->ndim] = weight->shape[1];
    /* a bf16/f16 weight may need a grad (the model gathers the logit rows of its bf16 hidden
     * states with this op, and those carry the soft tokens' grad): grads are f32 whatever the
     * tensor's dtype (tp_node_grad, tp_param), so the scatter-add needs no rule on the dtype */
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), ids->ndim + 1, shape);
    if (!n.out) return NULL;
    return tp_op_run(c, &n);
}
