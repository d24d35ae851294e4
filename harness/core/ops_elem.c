/* ops_elem.c — front ends of the elementwise ops: binary with broadcasting of b onto a (add and
 * mul also accept a broadcast onto b), unary activations, swiglu and seeded dropout. Inputs
 * may be strided; outputs are contiguous. */
#include "core/ops.h"

/* Can b be broadcast onto a's shape (trailing-aligned, b's dims 1 or equal)? */
static int bcastable(const tp_tensor *a, const tp_tensor *b) {
    if (b->ndim > a->ndim) return 0;
    for (int i = 1; i <= b->ndim; i++) {
        int64_t bd = b->shape[b->ndim - i], ad = a->shape[a->ndim - i];
        if (bd != 1 && bd != ad) return 0;
    }
    return 1;
}

static tp_tensor *binary(tp_ctx *c, tp_op op, const char *name, tp_tensor *a, tp_tensor *b) {
    if (!tp_op_ready(c) || !a || !b) return NULL;
    if (!bcastable(a, b)) {
        if ((op == TP_OP_ADD || op == TP_OP_MUL) && bcastable(b, a)) {
            tp_tensor *t = a;
            a = b;
            b = t;
        } else {
            tp_ctx_fail(c, TP_ESHAPE,
                        "op '%s': b %s cannot be broadcast onto a %s (hint: b's trailing dims must "
                        "be 1 or equal to a's)",
                        name, TP_SHAPE(b), TP_SHAPE(a));
            return NULL;
        }
    }
    tp_node n = {.op = op, .n_in = 2};
    n.in[0] = tp_op_float_in(c, a, name, "a");
    n.in[1] = tp_op_float_in(c, b, name, "b");
    if (!n.in[0] || !n.in[1]) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 2), a->ndim, a->shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_add(tp_ctx *c, tp_tensor *a, tp_tensor *b) {
    return binary(c, TP_OP_ADD, "add", a, b);
}
tp_tensor *tp_sub(tp_ctx *c, tp_tensor *a, tp_tensor *b) {
    return binary(c, TP_OP_SUB, "sub", a, b);
}
tp_tensor *tp_mul(tp_ctx *c, tp_tensor *a, tp_tensor *b) {
    return binary(c, TP_OP_MUL, "mul", a, b);
}

static tp_tensor *unary(tp_ctx *c, tp_op op, tp_tensor *a, int64_t ip, float fp) {
    if (!tp_op_ready(c) || !a) return NULL;
    tp_node n = {.op = op, .n_in = 1, .ip = {ip}, .fp = {fp}};
    n.in[0] = tp_op_float_in(c, a, tp_op_names[op], "input");
    if (!n.in[0]) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), a->ndim, a->shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_scale(tp_ctx *c, tp_tensor *a, float s) {
    return unary(c, TP_OP_SCALE, a, 0, s);
}
tp_tensor *tp_add_scalar(tp_ctx *c, tp_tensor *a, float s) {
    return unary(c, TP_OP_ADD_SCALAR, a, 0, s);
}
tp_tensor *tp_silu(tp_ctx *c, tp_tensor *a) {
    return unary(c, TP_OP_SILU, a, 0, 0);
}
tp_tensor *tp_tanh(tp_ctx *c, tp_tensor *a) {
    return unary(c, TP_OP_TANH, a, 0, 0);
}
tp_tensor *tp_gelu(tp_ctx *c, tp_tensor *a, tp_gelu_kind k) {
    if (tp_op_ready(c) && k != TP_GELU_ERF && k != TP_GELU_TANH) {
        tp_ctx_fail(c, TP_EINVAL, "op 'gelu': unknown kind %d (0 erf, 1 tanh)", (int)k);
        return NULL;
    }
    return unary(c, TP_OP_GELU, a, k, 0);
}

tp_tensor *tp_swiglu(tp_ctx *c, tp_tensor *gate, tp_tensor *up) {
    if (!tp_op_ready(c) || !gate || !up) return NULL;
    if (!tp_same_shape(gate, up)) {
        tp_ctx_fail(c, TP_ESHAPE, "op 'swiglu': gate %s and up %s differ", TP_SHAPE(gate),
                    TP_SHAPE(up));
        return NULL;
    }
    tp_node n = {.op = TP_OP_SWIGLU, .n_in = 2};
    n.in[0] = tp_op_float_in(c, gate, "swiglu", "gate");
    n.in[1] = tp_op_float_in(c, up, "swiglu", "up");
    if (!n.in[0] || !n.in[1]) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 2), gate->ndim, gate->shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_dropout(tp_ctx *c, tp_tensor *a, float p, tp_rng *rng) {
    if (!tp_op_ready(c) || !a) return NULL;
    if (!(p >= 0.0f && p < 1.0f) || !rng) {
        tp_ctx_fail(c, TP_EINVAL, "op 'dropout': p=%g must be in [0,1) and rng non-NULL", p);
        return NULL;
    }
    if (p == 0.0f) return a;
    /* the mask is a pure function of (seed, stream, offset): backward regenerates it */
    tp_node n = {.op = TP_OP_DROPOUT,
                 .n_in = 1,
                 .ip = {(int64_t)rng->seed, (int64_t)rng->stream, (int64_t)rng->offset},
                 .fp = {p}};
    n.in[0] = tp_op_float_in(c, a, "dropout", "input");
    if (!n.in[0]) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), a->ndim, a->shape);
    rng->offset += (uint64_t)tp_numel(a);
    return tp_op_run(c, &n);
}

/* appended API: exp, ln, sigmoid, relu, div */
tp_tensor *tp_exp(tp_ctx *c, tp_tensor *a) {
    return unary(c, TP_OP_EXP, a, 0, 0);
}
tp_tensor *tp_ln(tp_ctx *c, tp_tensor *a) {
    return unary(c, TP_OP_LN, a, 0, 0);
}
tp_tensor *tp_sigmoid(tp_ctx *c, tp_tensor *a) {
    return unary(c, TP_OP_SIGMOID, a, 0, 0);
}
tp_tensor *tp_relu(tp_ctx *c, tp_tensor *a) {
    return unary(c, TP_OP_RELU, a, 0, 0);
}
tp_tensor *tp_div(tp_ctx *c, tp_tensor *a, tp_tensor *b) {
    return binary(c, TP_OP_DIV, "div", a, b);
}
