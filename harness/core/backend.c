/* backend.c — op name tables generated from ops.def, the backend registry (CPU built in, CUDA
 * registered by kernels/), and the dispatcher that picks a backend per node. */
#include <pthread.h>
#include <stdio.h>

#include "core/ctx.h"
#include "core/ops.h"

const char *const tp_op_names[TP_OP_COUNT] = {
#define TP_OP(NAME, name, n_inputs) #name,
#include "core/ops.def"
#undef TP_OP
};

const int tp_op_n_inputs[TP_OP_COUNT] = {
#define TP_OP(NAME, name, n_inputs) n_inputs,
#include "core/ops.def"
#undef TP_OP
};

static const tp_backend_fns *g_cuda;
static int g_fallback_warned[TP_OP_COUNT];

void tp_backend_register_cuda(const tp_backend_fns *tbl) {
    g_cuda = tbl;
}

#ifdef TP_HAVE_CUDA
/* CUDA builds register the backend at the first use of the device, so hosts need no init
 * call; without a usable GPU the table stays NULL and cuda ops fail with a clear error. */
static pthread_once_t g_cuda_once = PTHREAD_ONCE_INIT;
static void cuda_autoregister(void) {
    tp_err e = {0};
    if (!g_cuda && tp_cuda_backend_register(&e) != TP_OK)
        fprintf(stderr, "telepathy: CUDA backend unavailable: %s\n", e.msg);
}
#endif

const tp_backend_fns *tp_backend_get(tp_device dev) {
    if (dev == TP_CPU) return tp_backend_cpu();
    if (dev == TP_CUDA) {
#ifdef TP_HAVE_CUDA
        pthread_once(&g_cuda_once, cuda_autoregister);
#endif
        return g_cuda;
    }
    return NULL;
}

static tp_device node_device(const tp_node *n) {
    if (n->out) return n->out->device;
    for (int i = 0; i < TP_NODE_MAX_IN; i++)
        if (n->in[i]) return n->in[i]->device;
    return TP_CPU;
}

static tp_op_fn pick(tp_ctx *ctx, tp_node *n, int bwd) {
    tp_device dev = node_device(n);
    const char *what = bwd ? "backward" : "forward";
    const tp_backend_fns *be = tp_backend_get(dev);
    if (!be) {
        tp_ctx_fail(ctx, TP_EUNSUP,
                    "op '%s': tensor on cuda but no CUDA backend is registered (hint: build with "
                    "TP_CUDA=ON and run on a GPU machine, or use device=cpu)",
                    tp_op_names[n->op]);
        return NULL;
    }
    tp_op_fn fn = bwd ? be->op[n->op].bwd : be->op[n->op].fwd;
    if (fn && (!be->supports || be->supports(n))) return fn;
    if (dev != TP_CPU && be->host_accessible) {
        const tp_backend_fns *cpu = tp_backend_cpu();
        tp_op_fn cf = bwd ? cpu->op[n->op].bwd : cpu->op[n->op].fwd;
        if (cf) {
            if (!g_fallback_warned[n->op]) {
                g_fallback_warned[n->op] = 1;
                fprintf(stderr, "telepathy: warning: op '%s' %s not supported by %s; using cpu\n",
                        tp_op_names[n->op], what, be->name);
            }
            return cf;
        }
    }
    tp_ctx_fail(ctx, TP_EUNSUP, "op '%s': %s not implemented on backend %s", tp_op_names[n->op],
                what, be->name);
    return NULL;
}

tp_status tp_dispatch_fwd(tp_ctx *ctx, tp_node *n) {
    if (ctx->status) return ctx->status;
    tp_op_fn fn = pick(ctx, n, 0);
    if (!fn) return ctx->status;
    tp_status s = fn(ctx, n);
    if (s != TP_OK)
        return tp_ctx_fail(ctx, s, "op '%s' forward failed: %s", tp_op_names[n->op],
                           tp_status_name(s));
    return ctx->status;
}

tp_status tp_dispatch_bwd(tp_ctx *ctx, tp_node *n) {
    if (ctx->status) return ctx->status;
    tp_op_fn fn = pick(ctx, n, 1);
    if (!fn) return ctx->status;
    tp_status s = fn(ctx, n);
    if (s != TP_OK)
        return tp_ctx_fail(ctx, s, "op '%s' backward failed: %s", tp_op_names[n->op],
                           tp_status_name(s));
    return ctx->status;
}

/* A recorded copy or dtype cast of a param (the f32 master -> bf16 copy a GPU training step
 * computes with) takes the param's own grad as its grad: the copy's backward is the identity, so
 * its consumers may accumulate straight into the param's grad, and tp_backward skips the copy's
 * backward. Same sums, without a zeroed f32 buffer the size of the param and a pass adding it
 * into the param's grad (for the bench's 537M-parameter Perceiver, 8.6 GB of memory traffic
 * per step). NULL when t is not such a copy. */
static tp_tensor *param_copy_grad(tp_ctx *ctx, const tp_tensor *t) {
    if (t->node < 0 || t->node >= ctx->n_nodes) return NULL;
    const tp_node *p = &ctx->nodes[t->node];
    if (p->op != TP_OP_COPY || p->out != t) return NULL;
    const tp_tensor *src = p->in[0];
    if (!src || !(src->flags & TP_FLAG_PARAM) || !src->grad) return NULL;
    tp_tensor *g = src->grad;
    if (g->dtype != TP_F32 || g->device != t->device || !tp_is_contiguous(g) ||
        !tp_is_contiguous(t) || !tp_same_shape(g, t))
        return NULL;
    return g;
}

tp_tensor *tp_node_grad(tp_ctx *ctx, tp_node *n, int i) {
    tp_tensor *t = n->in[i];
    if (!t || !(t->flags & TP_FLAG_REQUIRES_GRAD)) return NULL;
    if (t->grad) return t->grad;
    if ((t->flags & TP_FLAG_ARENA) && (t->grad = param_copy_grad(ctx, t))) return t->grad;
    if (!(t->flags & TP_FLAG_ARENA)) {
        /* a persistent tensor that requires grad is a param whose grad was allocated with it */
        tp_ctx_fail(ctx, TP_ESTATE, "op '%s': persistent tensor '%s' requires grad but has none",
                    tp_op_names[n->op], t->name);
        return NULL;
    }
    /* zero-filled; a pooled block when tp_backward released one of this size (grad reuse) */
    tp_tensor *g = tp_ctx_grad_tensor(ctx, t->ndim, t->shape);
    if (!g) return NULL;
    t->grad = g;
    return g;
}
