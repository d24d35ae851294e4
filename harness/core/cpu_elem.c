/* cpu_elem.c — CPU reference kernels for the layout and elementwise families: COPY, ACCUM,
 * CONCAT, add/sub/mul/div with broadcasting, scale, add_scalar, silu, gelu (erf/tanh), tanh,
 * exp, ln, sigmoid, relu, swiglu, dropout. Inputs may be strided (4-dim padded iteration); outputs
 * and grads are contiguous, so the flat output index k is also the index into a's grad. */
#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/rng.h"

#define FOR4(sh)                                                                                   \
    for (int64_t i0 = 0; i0 < sh[0]; i0++)                                                         \
        for (int64_t i1 = 0; i1 < sh[1]; i1++)                                                     \
            for (int64_t i2 = 0; i2 < sh[2]; i2++)                                                 \
                for (int64_t i3 = 0; i3 < sh[3]; i3++)
#define OFF(st) (i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3])

/* ---- COPY / ACCUM / CONCAT ---- */
tp_status tp_cpu_copy_fwd(tp_ctx *ctx, tp_node *n) {
    tp_cpu_copy_strided(n->out, n->in[0]);
    return TP_OK;
}

tp_status tp_cpu_copy_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0);
    if (!ga) return ctx->status;
    const float *g = F32(n->out->grad);
    float *d = F32(ga);
    int64_t m = tp_numel(ga);
    for (int64_t i = 0; i < m; i++) d[i] += g[i];
    return TP_OK;
}

tp_status tp_cpu_accum_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t sh[4], sd[4], ss[4];
    tp_shape4(n->in[0], sh, sd);
    tp_shape4(n->in[1], sh, ss);
    float *d = F32(n->in[0]);
    const float *s = F32(n->in[1]);
    FOR4(sh) d[OFF(sd)] += s[OFF(ss)];
    return TP_OK;
}

/* out's slab for input i along dim d, as a strided header. */
static tp_tensor slab(const tp_tensor *full, int d, int64_t start, int64_t len) {
    tp_tensor v = *full;
    v.data = (char *)full->data + start * full->stride[d] * (int64_t)tp_dtype_size(full->dtype);
    v.shape[d] = len;
    return v;
}

tp_status tp_cpu_concat_fwd(tp_ctx *ctx, tp_node *n) {
    int d = (int)n->ip[0];
    int64_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        tp_tensor v = slab(n->out, d, at, n->in[i]->shape[d]);
        tp_cpu_copy_strided(&v, n->in[i]);
        at += n->in[i]->shape[d];
    }
    return TP_OK;
}

tp_status tp_cpu_concat_bwd(tp_ctx *ctx, tp_node *n) {
    int d = (int)n->ip[0];
    int64_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        tp_tensor *ga = tp_node_grad(ctx, n, i);
        if (ctx->status) return ctx->status;
        if (ga) {
            tp_tensor v = slab(n->out->grad, d, at, n->in[i]->shape[d]);
            int64_t sh[4], sd[4], ss[4];
            tp_shape4(ga, sh, sd);
            tp_shape4(&v, sh, ss);
            float *dd = F32(ga);
            const float *s = F32(&v);
            FOR4(sh) dd[OFF(sd)] += s[OFF(ss)];
        }
        at += n->in[i]->shape[d];
    }
    return TP_OK;
}

/* ---- binary ---- */
static tp_status binary_fwd(tp_node *n) {
    int64_t sh[4], sa[4], sb[4];
    tp_shape4(n->in[0], sh, sa);
    tp_bcast_strides(n->in[0], n->in[1], sb);
    const float *a = F32(n->in[0]), *b = F32(n->in[1]);
    float *o = F32(n->out);
    int64_t k = 0;
    switch (n->op) {
    case TP_OP_ADD:
        FOR4(sh) o[k++] = a[OFF(sa)] + b[OFF(sb)];
        break;
    case TP_OP_SUB:
        FOR4(sh) o[k++] = a[OFF(sa)] - b[OFF(sb)];
        break;
    case TP_OP_MUL:
        FOR4(sh) o[k++] = a[OFF(sa)] * b[OFF(sb)];
        break;
    case TP_OP_DIV:
        FOR4(sh) o[k++] = a[OFF(sa)] / b[OFF(sb)];
        break;
    default:
        return TP_ESTATE;
    }
    return TP_OK;
}

static tp_status binary_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0), *gb = tp_node_grad(ctx, n, 1);
    if (ctx->status) return ctx->status;
    int64_t sh[4], sa[4], sb[4], sgb[4] = {0};
    tp_shape4(n->in[0], sh, sa);
    tp_bcast_strides(n->in[0], n->in[1], sb);
    if (gb) tp_bcast_strides(n->in[0], gb, sgb);
    const float *a = F32(n->in[0]), *b = F32(n->in[1]), *g = F32(n->out->grad);
    float *da = ga ? F32(ga) : NULL, *db = gb ? F32(gb) : NULL;
    int64_t k = 0;
    FOR4(sh) {
        float gk = g[k];
        switch (n->op) {
        case TP_OP_ADD:
            if (da) da[k] += gk;
            if (db) db[OFF(sgb)] += gk;
            break;
        case TP_OP_SUB:
            if (da) da[k] += gk;
            if (db) db[OFF(sgb)] -= gk;
            break;
        case TP_OP_DIV: {
            float bv = b[OFF(sb)];
            if (da) da[k] += gk / bv;
            if (db) db[OFF(sgb)] -= gk * a[OFF(sa)] / (bv * bv);
            break;
        }
        default:
            if (da) da[k] += gk * b[OFF(sb)];
            if (db) db[OFF(sgb)] += gk * a[OFF(sa)];
            break;
        }
        k++;
    }
    return TP_OK;
}

tp_status tp_cpu_add_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(n);
}
tp_status tp_cpu_add_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}
tp_status tp_cpu_sub_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(n);
}
tp_status tp_cpu_sub_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}
tp_status tp_cpu_mul_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(n);
}
tp_status tp_cpu_mul_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}
tp_status tp_cpu_div_fwd(tp_ctx *ctx, tp_node *n) {
    return binary_fwd(n);
}
tp_status tp_cpu_div_bwd(tp_ctx *ctx, tp_node *n) {
    return binary_bwd(ctx, n);
}

/* ---- unary: value and derivative in one place ---- */
static const float SQRT_2_OVER_PI = 0.7978845608028654f;

static inline float sigm(float x) {
    return 1.0f / (1.0f + expf(-x));
}

static float act(const tp_node *n, float x) {
    switch (n->op) {
    case TP_OP_SCALE:
        return x * n->fp[0];
    case TP_OP_ADD_SCALAR:
        return x + n->fp[0];
    case TP_OP_SILU:
        return x * sigm(x);
    case TP_OP_TANH:
        return tanhf(x);
    case TP_OP_EXP:
        return expf(x);
    case TP_OP_LN:
        return logf(x);
    case TP_OP_SIGMOID:
        return sigm(x);
    case TP_OP_RELU:
        return x > 0.0f ? x : 0.0f;
    case TP_OP_GELU:
        if (n->ip[0] == TP_GELU_ERF) return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
        return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    default:
        return NAN;
    }
}

static float dact(const tp_node *n, float x) {
    switch (n->op) {
    case TP_OP_SCALE:
        return n->fp[0];
    case TP_OP_ADD_SCALAR:
        return 1.0f;
    case TP_OP_SILU: {
        float s = sigm(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case TP_OP_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case TP_OP_EXP:
        return expf(x);
    case TP_OP_LN:
        return 1.0f / x;
    case TP_OP_SIGMOID: {
        float s = sigm(x);
        return s * (1.0f - s);
    }
    case TP_OP_RELU:
        return x > 0.0f ? 1.0f : 0.0f;
    case TP_OP_GELU:
        if (n->ip[0] == TP_GELU_ERF)
            return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
                   x * expf(-0.5f * x * x) * 0.3989422804014327f;
        else {
            float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
            float t = tanhf(u);
            return 0.5f * (1.0f + t) +
                   0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
        }
    default:
        return NAN;
    }
}

static tp_status unary_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t sh[4], sa[4];
    tp_shape4(n->in[0], sh, sa);
    const float *a = F32(n->in[0]);
    float *o = F32(n->out);
    int64_t k = 0;
    FOR4(sh) o[k++] = act(n, a[OFF(sa)]);
    return TP_OK;
}

static tp_status unary_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0);
    if (!ga) return ctx->status;
    int64_t sh[4], sa[4];
    tp_shape4(n->in[0], sh, sa);
    const float *a = F32(n->in[0]), *g = F32(n->out->grad);
    float *d = F32(ga);
    int64_t k = 0;
    FOR4(sh) {
        d[k] += g[k] * dact(n, a[OFF(sa)]);
        k++;
    }
    return TP_OK;
}

tp_status tp_cpu_scale_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cpu_scale_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cpu_add_scalar_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cpu_add_scalar_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cpu_silu_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cpu_silu_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cpu_gelu_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cpu_gelu_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
tp_status tp_cpu_tanh_fwd(tp_ctx *ctx, tp_node *n) {
    return unary_fwd(ctx, n);
}
tp_status tp_cpu_tanh_bwd(tp_ctx *ctx, tp_node *n) {
    return unary_bwd(ctx, n);
}
#define UNARY_FNS(name)                                                                            \
    tp_status tp_cpu_##name##_fwd(tp_ctx *ctx, tp_node *n) {                                       \
        return unary_fwd(ctx, n);                                                                  \
    }                                                                                              \
    tp_status tp_cpu_##name##_bwd(tp_ctx *ctx, tp_node *n) {                                       \
        return unary_bwd(ctx, n);                                                                  \
    }
UNARY_FNS(exp)
UNARY_FNS(ln)
UNARY_FNS(sigmoid)
UNARY_FNS(relu)

/* ---- swiglu: silu(gate) * up ---- */
tp_status tp_cpu_swiglu_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t sh[4], sg[4], su[4];
    tp_shape4(n->in[0], sh, sg);
    tp_shape4(n->in[1], sh, su);
    const float *g = F32(n->in[0]), *u = F32(n->in[1]);
    float *o = F32(n->out);
    int64_t k = 0;
    FOR4(sh) {
        float x = g[OFF(sg)];
        o[k++] = x * sigm(x) * u[OFF(su)];
    }
    return TP_OK;
}

tp_status tp_cpu_swiglu_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gg = tp_node_grad(ctx, n, 0), *gu = tp_node_grad(ctx, n, 1);
    if (ctx->status) return ctx->status;
    int64_t sh[4], sg[4], su[4];
    tp_shape4(n->in[0], sh, sg);
    tp_shape4(n->in[1], sh, su);
    const float *g = F32(n->in[0]), *u = F32(n->in[1]), *dy = F32(n->out->grad);
    float *dg = gg ? F32(gg) : NULL, *du = gu ? F32(gu) : NULL;
    int64_t k = 0;
    FOR4(sh) {
        float x = g[OFF(sg)], s = sigm(x);
        if (dg) dg[k] += dy[k] * u[OFF(su)] * s * (1.0f + x * (1.0f - s));
        if (du) du[k] += dy[k] * x * s;
        k++;
    }
    return TP_OK;
}

/* ---- dropout: keep element k iff uniform(seed, stream, offset + k) >= p ---- */
static float keep_scale(const tp_node *n, int64_t k) {
    tp_rng r = {(uint64_t)n->ip[0], (uint64_t)n->ip[1], 0};
    float u = tp_rng_u32_to_uniform(tp_rng_at(&r, (uint64_t)n->ip[2] + (uint64_t)k));
    return u >= n->fp[0] ? 1.0f / (1.0f - n->fp[0]) : 0.0f;
}

tp_status tp_cpu_dropout_fwd(tp_ctx *ctx, tp_node *n) {
    int64_t sh[4], sa[4];
    tp_shape4(n->in[0], sh, sa);
    const float *a = F32(n->in[0]);
    float *o = F32(n->out);
    int64_t k = 0;
    FOR4(sh) {
        o[k] = a[OFF(sa)] * keep_scale(n, k);
        k++;
    }
    return TP_OK;
}

tp_status tp_cpu_dropout_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0);
    if (!ga) return ctx->status;
    const float *g = F32(n->out->grad);
    float *d = F32(ga);
    int64_t m = tp_numel(ga);
    for (int64_t k = 0; k < m; k++) d[k] += g[k] * keep_scale(n, k);
    return TP_OK;
}
