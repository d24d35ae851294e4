/* ops_loss.c — front ends of the losses (cross-entropy with ignore index and label smoothing,
 * MSE) and the straight-through nearest-codebook quantiser. */
#include "core/ops.h"

tp_tensor *tp_cross_entropy(tp_ctx *c, tp_tensor *logits, tp_tensor *targets, int ignore_index,
                            float smoothing) {
    if (!tp_op_ready(c) || !logits || !targets) return NULL;
    if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0]) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'cross_entropy': logits %s must be [N,V], targets %s [N]",
                    TP_SHAPE(logits), TP_SHAPE(targets));
        return NULL;
    }
    if (!(smoothing >= 0.0f && smoothing <= 1.0f)) {
        tp_ctx_fail(c, TP_EINVAL, "op 'cross_entropy': label smoothing %g outside [0,1]",
                    smoothing);
        return NULL;
    }
    tp_node n = {.op = TP_OP_CROSS_ENTROPY, .n_in = 2, .ip = {ignore_index}, .fp = {smoothing}};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, logits, "cross_entropy", "logits"));
    n.in[1] = tp_op_int_in(c, targets, "cross_entropy", "targets");
    if (!n.in[0] || !n.in[1]) return NULL;
    n.out = tp_ctx_tensor(c, TP_F32, 1, (int64_t[]){1});
    return tp_op_run(c, &n);
}

tp_tensor *tp_mse(tp_ctx *c, tp_tensor *a, tp_tensor *b) {
    if (!tp_op_ready(c) || !a || !b) return NULL;
    if (!tp_same_shape(a, b)) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'mse': a %s and b %s differ", TP_SHAPE(a), TP_SHAPE(b));
        return NULL;
    }
    tp_tensor *d = tp_sub(c, a, b);
    return tp_mean_all(c, tp_mul(c, d, d));
}

tp_tensor *tp_vq_nearest(tp_ctx *c, tp_tensor *z, tp_tensor *codebook, tp_vq_dist dist,
                         tp_tensor **codes) {
    if (!tp_op_ready(c) || !z || !codebook) return NULL;
    if (z->ndim != 2 || codebook->ndim != 2 || z->shape[1] != codebook->shape[1] ||
        codebook->shape[0] < 1 || (dist != TP_VQ_L2 && dist != TP_VQ_COSINE)) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'vq_nearest': z %s must be [N,D], codebook %s [K>=1,D], dist %d in 0..1",
                    TP_SHAPE(z), TP_SHAPE(codebook), (int)dist);
        return NULL;
    }
    tp_node n = {.op = TP_OP_VQ, .n_in = 2, .ip = {dist}};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, z, "vq_nearest", "z"));
    n.in[1] = tp_op_contig(c, tp_op_float_in(c, codebook, "vq_nearest", "codebook"));
    if (!n.in[0] || !n.in[1]) return NULL;
    n.saved[0] = tp_ctx_tensor(c, TP_I32, 1, (int64_t[]){z->shape[0]});
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 2), 2, z->shape);
    tp_tensor *q = tp_op_run(c, &n);
    if (q && codes) *codes = n.saved[0];
    return q;
}
