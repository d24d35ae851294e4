/* ops_transformer.c — front ends of RoPE (with HF inv_freq and llama3 frequency scaling),
 * attention (GQA, causal, key padding, sliding window, q_offset) and softmax / log-softmax. */
#include <math.h>
#include <string.h>

#include "core/ops.h"

/* inv_freq exactly as transformers computes it: in float32, base ** (arange(0,dim,2)/dim), then
 * _compute_llama3_parameters for scaling 1 (also in float32). */
tp_status tp_rope_init(tp_rope_cfg *cfg, int head_dim, double theta, int scaling, double factor,
                       double lo, double hi, int orig_max_pos) {
    if (!cfg) return TP_EINVAL;
    if (head_dim <= 0 || head_dim % 2 || head_dim / 2 > 512 || !(theta > 0) ||
        (scaling != 0 && scaling != 1))
        return TP_EINVAL;
    if (scaling == 1 && !(factor > 0 && lo > 0 && hi > lo && orig_max_pos > 0)) return TP_EINVAL;
    memset(cfg, 0, sizeof *cfg);
    cfg->head_dim = head_dim;
    cfg->theta = theta;
    cfg->scaling = scaling;
    cfg->factor = factor;
    cfg->low_freq_factor = lo;
    cfg->high_freq_factor = hi;
    cfg->original_max_pos = orig_max_pos;
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        cfg->inv_freq[i] = 1.0f / powf((float)theta, e);
    }
    if (scaling == 1) {
        float fac = (float)factor, lf = (float)lo, hf = (float)hi, old = (float)orig_max_pos;
        float low_wl = old / lf, high_wl = old / hf;
        for (int i = 0; i < half; i++) {
            float inv = cfg->inv_freq[i];
            float wl = (float)(2.0 * 3.141592653589793) / inv;
            float v = wl > low_wl ? inv / fac : inv;
            float smooth = (old / wl - lf) / (float)(hi - lo);
            float smoothed = (1.0f - smooth) * v / fac + smooth * v;
            int medium = !(wl < high_wl) && !(wl > low_wl);
            cfg->inv_freq[i] = medium ? smoothed : v;
        }
    }
    return TP_OK;
}

tp_tensor *tp_rope(tp_ctx *c, tp_tensor *x, tp_tensor *pos, const tp_rope_cfg *cfg) {
    if (!tp_op_ready(c) || !x || !pos) return NULL;
    if (!cfg) {
        tp_ctx_fail(c, TP_EINVAL, "op 'rope': NULL cfg (hint: fill it with tp_rope_init)");
        return NULL;
    }
    if (x->ndim != 4 || pos->ndim != 2 || pos->shape[0] != x->shape[0] ||
        pos->shape[1] != x->shape[2] || x->shape[3] != cfg->head_dim) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'rope': x %s must be [B,H,T,Dh=%d] and pos %s [B,T] (i32 positions)",
                    TP_SHAPE(x), cfg->head_dim, TP_SHAPE(pos));
        return NULL;
    }
    tp_node n = {.op = TP_OP_ROPE, .n_in = 2};
    /* the backends read x through its strides when its last dim is dense (the engine's head
     * slices of the fused q|k|v projection): a copy per rope was ~4 us per layer on the GPU */
    n.in[0] = tp_op_float_in(c, x, "rope", "x");
    if (n.in[0] && n.in[0]->stride[3] != 1) n.in[0] = tp_contiguous(c, n.in[0]);
    n.in[1] = tp_op_int_in(c, pos, "rope", "pos");
    tp_rope_cfg *cp = tp_arena_alloc(&c->host, sizeof *cp);
    if (!cp) tp_ctx_fail(c, TP_ENOMEM, "op 'rope': arena full");
    if (!n.in[0] || !n.in[1] || !cp) return NULL;
    *cp = *cfg;
    n.aux = cp;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), 4, x->shape);
    return tp_op_run(c, &n);
}

static tp_tensor *kv_in(tp_ctx *c, tp_tensor *t) {
    if (!t) return NULL;
    /* rows must be dense and not overlap: the backends use the row stride as a GEMM leading
     * dimension (CPU) or a load pitch (CUDA) */
    int ok = t->stride[3] == 1 && t->stride[2] >= t->shape[3] && t->stride[2] > 0 &&
             t->stride[1] >= 0 && t->stride[0] >= 0;
    return ok ? t : tp_contiguous(c, t);
}

tp_tensor *tp_attention(tp_ctx *c, tp_tensor *q, tp_tensor *k, tp_tensor *v, tp_tensor *key_mask,
                        const tp_attn_cfg *cfg) {
    if (!tp_op_ready(c) || !q || !k || !v) return NULL;
    int ok = q->ndim == 4 && k->ndim == 4 && v->ndim == 4 && tp_same_shape(k, v) &&
             k->shape[0] == q->shape[0] && k->shape[3] == q->shape[3] && k->shape[1] > 0 &&
             q->shape[1] % k->shape[1] == 0;
    if (ok && key_mask)
        ok = key_mask->ndim == 2 && key_mask->shape[0] == q->shape[0] &&
             key_mask->shape[1] == k->shape[2];
    if (!ok) {
        tp_ctx_fail(c, TP_ESHAPE,
                    "op 'attention': q %s, k %s, v %s, key_mask %s: expected q [B,H,T,Dh], k,v "
                    "[B,Hkv,S,Dh] with H %% Hkv == 0, key_mask [B,S]",
                    TP_SHAPE(q), TP_SHAPE(k), TP_SHAPE(v), key_mask ? TP_SHAPE(key_mask) : "none");
        return NULL;
    }
    tp_node n = {.op = TP_OP_ATTENTION, .n_in = 4};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, q, "attention", "q"));
    /* k and v are read through their batch/head strides when rows are dense (a KV cache's
     * prefix, head slices of the fused q|k|v output): copying them was two kernels per layer
     * per decode step on the GPU */
    n.in[1] = kv_in(c, tp_op_float_in(c, k, "attention", "k"));
    n.in[2] = kv_in(c, tp_op_float_in(c, v, "attention", "v"));
    if (key_mask) n.in[3] = tp_op_contig(c, tp_op_float_in(c, key_mask, "attention", "key_mask"));
    tp_attn_cfg *cp = tp_arena_alloc(&c->host, sizeof *cp);
    if (!cp) tp_ctx_fail(c, TP_ENOMEM, "op 'attention': arena full");
    if (!n.in[0] || !n.in[1] || !n.in[2] || (key_mask && !n.in[3]) || !cp) return NULL;
    *cp = cfg ? *cfg : (tp_attn_cfg){0};
    if (cp->scale == 0.0f) cp->scale = 1.0f / sqrtf((float)q->shape[3]);
    n.aux = cp;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 3), 4, q->shape);
    return tp_op_run(c, &n);
}

static tp_tensor *softmax_like(tp_ctx *c, tp_op op, tp_tensor *x) {
    if (!tp_op_ready(c) || !x) return NULL;
    tp_node n = {.op = op, .n_in = 1};
    n.in[0] = tp_op_contig(c, tp_op_float_in(c, x, tp_op_names[op], "x"));
    if (!n.in[0]) return NULL;
    n.out = tp_ctx_tensor(c, tp_op_out_dtype(c, n.in, 1), x->ndim, x->shape);
    return tp_op_run(c, &n);
}

tp_tensor *tp_softmax(tp_ctx *c, tp_tensor *x) {
    return softmax_like(c, TP_OP_SOFTMAX, x);
}
tp_tensor *tp_log_softmax(tp_ctx *c, tp_tensor *x) {
    return softmax_like(c, TP_OP_LOG_SOFTMAX, x);
}
