/* ops.h — helpers shared by the op front ends (ops_*.c): argument checks that name the op and
 * the shapes, dtype preparation (CPU computes in f32), output allocation, and the
 * dispatch-then-record sequence every op ends with. */
#ifndef TP_CORE_OPS_H
#define TP_CORE_OPS_H

#include "core/ctx.h"

/* True when the context can run an op: non-NULL, no sticky error. */
static inline int tp_op_ready(tp_ctx *c) {
    return c && c->status == TP_OK;
}

/* A float input ready for the backend: i32 refused, device checked, and on CPU a bf16/f16
 * tensor cast (on the tape) to f32. NULL after failing the ctx. */
tp_tensor *tp_op_float_in(tp_ctx *c, tp_tensor *t, const char *op, const char *arg);
/* An i32 input (ids, positions): dtype and device checked. */
tp_tensor *tp_op_int_in(tp_ctx *c, tp_tensor *t, const char *op, const char *arg);
/* Contiguous version of a float input (taped copy when needed). */
tp_tensor *tp_op_contig(tp_ctx *c, tp_tensor *t);
/* Output dtype for float inputs: CPU f32; otherwise their common dtype, f32 when mixed. */
tp_dtype tp_op_out_dtype(tp_ctx *c, tp_tensor *const *in, int n);
/* Decides recording, runs forward, pushes on the tape; returns n->out or NULL. */
tp_tensor *tp_op_run(tp_ctx *c, tp_node *n);
/* Normalises a possibly negative dim; fails the ctx when out of range. */
int tp_op_dim(tp_ctx *c, const tp_tensor *t, int dim, const char *op);
int tp_same_shape(const tp_tensor *a, const tp_tensor *b);

/* r + x @ w^T (x [..,K], w [N,K], r [..,N]): a transformer layer's residual add folded into the
 * GEMM as its C operand (MATMUL with in[2]), one kernel instead of two. Internal to the harness
 * (the engine uses it); the plugin API keeps tp_linear + tp_add. */
tp_tensor *tp_linear_add(tp_ctx *c, tp_tensor *x, tp_tensor *w, tp_tensor *r);

/* i32 [...] = index of the maximum over the last dim of x [..., V] (first on ties; NaN never
 * wins): greedy decoding picks tokens where the logits are, and copies B ints back instead of
 * B x V floats. Not taped. Internal, like tp_linear_add. */
tp_tensor *tp_argmax_rows(tp_ctx *c, tp_tensor *x);

#endif
