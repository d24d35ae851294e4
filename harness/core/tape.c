/* tape.c — the eager autograd tape: nodes recorded in creation order (already topological),
 * tp_backward walks them in reverse. Views route their grad to the base through ACCUM on a
 * view of the base's grad; every other op's backward is the backend's. With grad reuse (the
 * default, see core/pool.c) a node output's grad is handed back right after that node's
 * backward, so after tp_backward only params and tensors marked by tp_requires_grad hold
 * grads. */
#include <string.h>

#include "core/ctx.h"

int tp_tape_wants(const tp_ctx *c, tp_tensor *const *in, int n) {
    if (!c->grad_enabled) return 0;
    for (int i = 0; i < n; i++)
        if (in[i] && (in[i]->flags & TP_FLAG_REQUIRES_GRAD)) return 1;
    return 0;
}

tp_status tp_tape_push(tp_ctx *c, tp_node *n) {
    if (!n->record || c->status) return c->status;
    if (c->n_nodes == c->cap_nodes) {
        int cap = c->cap_nodes ? c->cap_nodes * 2 : 256;
        tp_node *p = tp_core_realloc(c->nodes, (size_t)cap * sizeof *p);
        if (!p) return tp_ctx_fail(c, TP_ENOMEM, "tape: cannot grow to %d nodes", cap);
        c->nodes = p;
        c->cap_nodes = cap;
    }
    c->nodes[c->n_nodes] = *n;
    n->out->node = c->n_nodes++;
    n->out->flags |= TP_FLAG_REQUIRES_GRAD;
    return TP_OK;
}

tp_status tp_requires_grad(tp_ctx *c, tp_tensor *t) {
    if (!c) return TP_EINVAL;
    if (c->status) return c->status;
    if (!t) return tp_ctx_fail(c, TP_EINVAL, "requires_grad: NULL tensor");
    if (t->dtype == TP_I32)
        return tp_ctx_fail(c, TP_EDTYPE, "requires_grad: i32 tensor %s cannot have a grad",
                           TP_SHAPE(t));
    if (!(t->flags & TP_FLAG_ARENA) && !(t->flags & TP_FLAG_PARAM))
        return tp_ctx_fail(c, TP_ESTATE,
                           "requires_grad: persistent tensor '%s' is not a param (hint: use "
                           "tp_param_alloc for trainable persistent tensors)",
                           t->name);
    /* KEEP: the caller wants to read this grad after tp_backward, so reuse must not take it */
    t->flags |= TP_FLAG_REQUIRES_GRAD | TP_FLAG_KEEP_GRAD;
    return TP_OK;
}

/* The grad of a view node's input, viewed like the node's output (so ACCUM can add into it). */
static tp_status view_backward(tp_ctx *c, tp_node *n) {
    tp_tensor *g = tp_node_grad(c, n, 0);
    if (!g) return c->status;
    tp_tensor *dst = tp_ctx_view(c, g);
    if (!dst) return c->status;
    switch (n->op) {
    case TP_OP_RESHAPE:
        dst->ndim = n->out->ndim;
        memcpy(dst->shape, n->out->shape, sizeof dst->shape);
        tp_contig_strides(dst->ndim, dst->shape, dst->stride);
        break;
    case TP_OP_TRANSPOSE: {
        int d0 = (int)n->ip[0], d1 = (int)n->ip[1];
        int64_t t = dst->shape[d0];
        dst->shape[d0] = dst->shape[d1];
        dst->shape[d1] = t;
        t = dst->stride[d0];
        dst->stride[d0] = dst->stride[d1];
        dst->stride[d1] = t;
        break;
    }
    case TP_OP_SLICE: {
        int d = (int)n->ip[0];
        dst->data = (float *)dst->data + n->ip[1] * dst->stride[d];
        dst->shape[d] = n->ip[2];
        break;
    }
    default:
        return tp_ctx_fail(c, TP_ESTATE, "tape: op '%s' is not a view", tp_op_names[n->op]);
    }
    tp_node acc = {.op = TP_OP_ACCUM, .n_in = 2, .in = {dst, n->out->grad}};
    return tp_dispatch_fwd(c, &acc);
}

/* g += grad_out (or ones), grad_out cast to contiguous f32 first when it is not. */
static tp_status seed_grad(tp_ctx *c, tp_tensor *g, tp_tensor *grad_out) {
    tp_tensor *seed = grad_out;
    if (!seed) seed = tp_full(c, TP_F32, g->ndim, g->shape, 1.0);
    if (!seed) return c->status;
    tp_node acc = {.op = TP_OP_ACCUM, .n_in = 2, .in = {g, seed}};
    if (seed->dtype != TP_F32 || !tp_is_contiguous(seed)) {
        tp_tensor *s32 = tp_ctx_tensor(c, TP_F32, seed->ndim, seed->shape);
        if (!s32) return c->status;
        tp_node cp = {.op = TP_OP_COPY, .n_in = 1, .in = {seed}, .out = s32};
        if (tp_dispatch_fwd(c, &cp)) return c->status;
        acc.in[1] = s32;
    }
    return tp_dispatch_fwd(c, &acc);
}

tp_status tp_backward(tp_ctx *c, tp_tensor *out, tp_tensor *grad_out) {
    if (!c) return TP_EINVAL;
    if (c->status) return c->status;
    if (!out) return tp_ctx_fail(c, TP_EINVAL, "backward: NULL output");
    if (!(out->flags & TP_FLAG_REQUIRES_GRAD))
        return tp_ctx_fail(c, TP_ESTATE,
                           "backward: output %s does not require grad (hint: no param or "
                           "requires_grad input reaches it, or it was computed under no_grad)",
                           TP_SHAPE(out));
    if (grad_out && (grad_out->ndim != out->ndim ||
                     memcmp(grad_out->shape, out->shape, sizeof(int64_t) * (size_t)out->ndim)))
        return tp_ctx_fail(c, TP_ESHAPE, "backward: grad_out %s does not match output %s",
                           TP_SHAPE(grad_out), TP_SHAPE(out));
    /* activation grads of an earlier backward in this step must not leak into this one */
    for (int i = 0; i < c->n_nodes; i++) c->nodes[i].out->grad = NULL;

    tp_tensor *g = out->grad;
    if (!g) {
        g = tp_ctx_grad_tensor(c, out->ndim, out->shape);
        if (!g) return c->status;
        out->grad = g;
    }
    tp_ctx_bwd_scope_begin(c); /* the seed's temporaries are pooled once it is added */
    tp_status s = seed_grad(c, g, grad_out);
    tp_ctx_bwd_scope_end(c);
    if (s) return s;

    for (int i = out->node; i >= 0; i--) {
        tp_node *n = &c->nodes[i];
        if (!n->out->grad) continue; /* nothing flowed here */
        if (n->op == TP_OP_COPY && n->out->grad == n->in[0]->grad)
            continue; /* a param's copy shares the param's grad (tp_node_grad): already summed */
        tp_ctx_bwd_scope_begin(c);
        if (n->op == TP_OP_RESHAPE || n->op == TP_OP_TRANSPOSE || n->op == TP_OP_SLICE)
            s = view_backward(c, n);
        else
            s = tp_dispatch_bwd(c, n);
        tp_ctx_bwd_scope_end(c);
        if (s) return s;
        /* every reader of n->out's grad was created after n, so has run: hand the block back */
        tp_ctx_release_grad(c, n->out);
    }
    return c->status;
}
