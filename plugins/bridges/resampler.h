/* resampler.h — the Perceiver-resampler encoder of perceiver.c (STUDY.md "Bridges") and its
 * pieces, shared by the bridges built from them: perceiver (the encoder + output projection,
 * RMS x alpha, dropout), vq and fsq (the encoder behind their quantisers), latent_cot (the
 * attention and FFN blocks, applied recurrently) and diffusion (the attention blocks).
 *
 *   kv = h W_in^T + b_in                      only if d_s != W
 *   x  = latents                              [M,W], init N(0, 0.02^2)
 *   depth x (pre-LayerNorm, no positional encodings):
 *     x += CrossAttn(LN1(x), kv)              padded keys masked
 *     x += SelfAttn(LN2(x))
 *     x += W2 GELU_erf(W1 LN3(x) + b1) + b2   FFN ffn_mult * W
 * Attention is nn.MultiheadAttention's (q/k/v/out projections with biases, `heads` heads);
 * init as PyTorch's defaults (q/k/v xavier-uniform over the stacked in_proj, biases 0,
 * out/FFN/input projections U(+-1/sqrt(fan_in)), LayerNorm 1/0). Parameter names carry the
 * includer's prefix (vq, fsq: "enc."; perceiver: none) and draw from the includer's bu_init
 * streams, in a fixed order (the order fixes each one's init stream: checkpoint keys and
 * initial values must not move).
 *
 * Include after bridge_util.h. */
#ifndef TP_RESAMPLER_H
#define TP_RESAMPLER_H

#define RS_MAX_DEPTH 8
#define RS_LN_EPS    1e-5f /* nn.LayerNorm default */

#define RS_OPTIONS                                                                                   \
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M (learned latents)"},        \
        {"depth", TP_OPT_INT, "2", 1, RS_MAX_DEPTH, NULL, "number of Perceiver blocks"},             \
        {"heads", TP_OPT_INT, "8", 1, 256, NULL, "attention heads (must divide the encoder width)"}, \
        {"width", TP_OPT_INT, "0", 0, 65536, NULL, "encoder width W; 0 = receiver width"}, {         \
        "ffn_mult", TP_OPT_INT, "4", 1, 16, NULL, "FFN hidden width = ffn_mult * W"                  \
    }

typedef struct rs_attn {
    tp_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
} rs_attn;

typedef struct rs_ffn {
    tp_tensor *w1, *b1, *w2, *b2;
} rs_ffn;

typedef struct rs_block {
    tp_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b, *ln3_w, *ln3_b;
    rs_attn cross, self;
    rs_ffn ffn;
} rs_block;

typedef struct rs_enc {
    int m, depth, heads, width, ffn, d_s;
    tp_tensor *latents, *in_w, *in_b;
    rs_block blocks[RS_MAX_DEPTH];
} rs_enc;

#define RS_P(dst, name, how, a, ...)                                                               \
    do {                                                                                           \
        (dst) = bu_param(in, ps, (name), TP_DIMS(__VA_ARGS__), (how), (a), err);                   \
        if (!(dst)) return bu_code(err);                                                           \
    } while (0)

/* One attention's parameters "<pre>.{q,k,v,out}.{weight,bias}" [W,W]/[W]: q/k/v weights
 * U(+-qkv_bound), out weight U(+-out_bound), biases 0. */
BU_STATIC tp_status rs_make_attn_bounds(bu_init *in, tp_params *ps, const char *pre, int64_t w,
                                        float qkv_bound, float out_bound, rs_attn *a, tp_err *err) {
    char n[64];
#define RS_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
    RS_P(a->wq, RS_N("q.weight"), BU_UNIFORM, qkv_bound, w, w);
    RS_P(a->bq, RS_N("q.bias"), BU_ZERO, 0, w);
    RS_P(a->wk, RS_N("k.weight"), BU_UNIFORM, qkv_bound, w, w);
    RS_P(a->bk, RS_N("k.bias"), BU_ZERO, 0, w);
    RS_P(a->wv, RS_N("v.weight"), BU_UNIFORM, qkv_bound, w, w);
    RS_P(a->bv, RS_N("v.bias"), BU_ZERO, 0, w);
    RS_P(a->wo, RS_N("out.weight"), BU_UNIFORM, out_bound, w, w);
    RS_P(a->bo, RS_N("out.bias"), BU_ZERO, 0, w);
#undef RS_N
    return TP_OK;
}

/* nn.MultiheadAttention's init: xavier over the stacked [3W,W] in_proj, out U(+-1/sqrt(W)). */
BU_STATIC tp_status rs_make_attn(bu_init *in, tp_params *ps, const char *pre, int64_t w, rs_attn *a,
                                 tp_err *err) {
    return rs_make_attn_bounds(in, ps, pre, w, sqrtf(6.0f / (float)(4 * w)), 1.0f / sqrtf((float)w),
                               a, err);
}

/* "<pre>.0" Linear(W -> f) and "<pre>.2" Linear(f -> W), PyTorch's default init. */
BU_STATIC tp_status rs_make_ffn(bu_init *in, tp_params *ps, const char *pre, int64_t w, int64_t f,
                                rs_ffn *ff, tp_err *err) {
    char n[64];
    snprintf(n, sizeof n, "%s.0", pre);
    TP_TRY(bu_linear(in, ps, n, w, f, &ff->w1, &ff->b1, err));
    snprintf(n, sizeof n, "%s.2", pre);
    return bu_linear(in, ps, n, f, w, &ff->w2, &ff->b2, err);
}

/* Reads the RS_OPTIONS into e and checks them; creates nothing (so option errors come before
 * any parameter exists). */
BU_STATIC tp_status rs_configure(rs_enc *e, const bu_init *in, const tp_options *o,
                                 const tp_bridge_dims *dims, tp_err *err) {
    memset(e, 0, sizeof *e);
    e->m = (int)BU_API->opt_int(o, "tokens");
    e->depth = (int)BU_API->opt_int(o, "depth");
    e->heads = (int)BU_API->opt_int(o, "heads");
    e->width = (int)BU_API->opt_int(o, "width");
    e->ffn = (int)BU_API->opt_int(o, "ffn_mult");
    e->d_s = dims->d_sender;
    if (e->width == 0) e->width = dims->d_receiver;
    if (e->m < 1)
        return BU_API->errf(err, TP_EINVAL, "%s: option tokens = %d: expected M >= 1", in->bridge,
                            e->m);
    if (e->depth < 1 || e->depth > RS_MAX_DEPTH)
        return BU_API->errf(err, TP_EINVAL, "%s: option depth = %d: expected 1..%d", in->bridge,
                            e->depth, RS_MAX_DEPTH);
    if (e->heads < 1 || e->width % e->heads != 0)
        return BU_API->errf(err, TP_EINVAL,
                            "%s: option heads = %d does not divide the encoder width %d (width "
                            "option or receiver width); pick heads that divide it",
                            in->bridge, e->heads, e->width);
    return TP_OK;
}

/* The encoder's parameters, names prefixed with `prefix` ("" or e.g. "enc."). */
BU_STATIC tp_status rs_make_params(rs_enc *e, bu_init *in, const char *prefix, tp_params *ps,
                                   tp_err *err) {
    int64_t w = e->width, f = (int64_t)e->ffn * e->width;
    char n[64], pre[32];
    snprintf(n, sizeof n, "%slatents", prefix);
    RS_P(e->latents, n, BU_NORMAL, 0.02f, e->m, w);
    if (e->d_s != e->width) {
        snprintf(n, sizeof n, "%sinput_proj", prefix);
        TP_TRY(bu_linear(in, ps, n, e->d_s, w, &e->in_w, &e->in_b, err));
    }
    for (int i = 0; i < e->depth; i++) {
        rs_block *bl = &e->blocks[i];
        snprintf(pre, sizeof pre, "%sblocks.%d", prefix, i);
#define RS_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
        RS_P(bl->ln1_w, RS_N("ln1.weight"), BU_VALUE, 1, w);
        RS_P(bl->ln1_b, RS_N("ln1.bias"), BU_ZERO, 0, w);
        TP_TRY(rs_make_attn(in, ps, RS_N("cross"), w, &bl->cross, err));
        RS_P(bl->ln2_w, RS_N("ln2.weight"), BU_VALUE, 1, w);
        RS_P(bl->ln2_b, RS_N("ln2.bias"), BU_ZERO, 0, w);
        TP_TRY(rs_make_attn(in, ps, RS_N("self"), w, &bl->self, err));
        RS_P(bl->ln3_w, RS_N("ln3.weight"), BU_VALUE, 1, w);
        RS_P(bl->ln3_b, RS_N("ln3.bias"), BU_ZERO, 0, w);
        TP_TRY(rs_make_ffn(in, ps, RS_N("ffn"), w, f, &bl->ffn, err));
#undef RS_N
    }
    return TP_OK;
}

/* Reads the RS_OPTIONS and creates the encoder's parameters, named "enc.*". */
BU_STATIC tp_status rs_create(rs_enc *e, bu_init *in, const tp_options *o,
                              const tp_bridge_dims *dims, tp_params *ps, tp_err *err) {
    TP_TRY(rs_configure(e, in, o, dims, err));
    return rs_make_params(e, in, "enc.", ps, err);
}

/* "output_proj.{weight,bias}" [d_r,W]/[d_r]: weight N(0, 0.01^2), bias 0. */
BU_STATIC tp_status rs_make_out_proj(bu_init *in, tp_params *ps, int64_t w, int64_t d_r,
                                     tp_tensor **ow, tp_tensor **ob, tp_err *err) {
    RS_P(*ow, "output_proj.weight", BU_NORMAL, 0.01f, d_r, w);
    RS_P(*ob, "output_proj.bias", BU_ZERO, 0, d_r);
    return TP_OK;
}
#undef RS_P

/* [B,T,W] -> [B,H,T,Dh] contiguous (as the attention kernels want it). */
BU_STATIC tp_tensor *rs_heads(tp_ctx *c, tp_tensor *x, int64_t b, int64_t t, int h, int64_t dh) {
    return tp_contiguous(c, tp_transpose(c, tp_reshape(c, x, TP_DIMS(b, t, h, dh)), 1, 2));
}

/* nn.MultiheadAttention(q_in -> kv_in) of width w, key_mask [B,S] or NULL. */
BU_STATIC tp_tensor *rs_mha(tp_ctx *c, const rs_attn *a, int64_t w, int heads, tp_tensor *q_in,
                            tp_tensor *kv_in, tp_tensor *key_mask) {
    if (!q_in || !kv_in) return NULL;
    int64_t b = q_in->shape[0], tq = q_in->shape[1], tk = kv_in->shape[1];
    int64_t dh = w / heads;
    tp_tensor *q = rs_heads(c, tp_linear(c, q_in, a->wq, a->bq), b, tq, heads, dh);
    tp_tensor *k = rs_heads(c, tp_linear(c, kv_in, a->wk, a->bk), b, tk, heads, dh);
    tp_tensor *v = rs_heads(c, tp_linear(c, kv_in, a->wv, a->bv), b, tk, heads, dh);
    tp_attn_cfg cfg = {0, 0, 0, 0.0f};
    tp_tensor *o = tp_attention(c, q, k, v, key_mask, &cfg); /* [B,H,Tq,Dh] */
    o = tp_reshape(c, tp_transpose(c, o, 1, 2), TP_DIMS(b, tq, w));
    return tp_linear(c, o, a->wo, a->bo);
}

/* W2 act(W1 x + b1) + b2. */
BU_STATIC tp_tensor *rs_ffn_forward(tp_ctx *c, const rs_ffn *ff, tp_tensor *x, tp_gelu_kind act) {
    tp_tensor *f = tp_gelu(c, tp_linear(c, x, ff->w1, ff->b1), act);
    return tp_linear(c, f, ff->w2, ff->b2);
}

/* x + dropout(branch) (dropout only when p > 0). */
BU_STATIC tp_tensor *rs_residual(tp_ctx *c, tp_tensor *x, tp_tensor *branch, float p, tp_rng *rng) {
    if (p > 0) branch = tp_dropout(c, branch, p, rng);
    return tp_add(c, x, branch);
}

/* h [B,T,d_s] f32, mask [B,T] or NULL -> [B,M,W], with dropout p on each residual branch
 * (p = 0: none, rng unused); NULL with the context's error on failure. */
BU_STATIC tp_tensor *rs_forward_dropout(const rs_enc *e, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                                        float p, tp_rng *rng) {
    if (!h) return NULL;
    int64_t b = h->shape[0];
    tp_tensor *kv = e->in_w ? tp_linear(c, h, e->in_w, e->in_b) : h;
    tp_tensor *x = bu_broadcast(c, e->latents, b);
    for (int i = 0; i < e->depth; i++) {
        const rs_block *bl = &e->blocks[i];
        tp_tensor *xn = tp_layernorm(c, x, bl->ln1_w, bl->ln1_b, RS_LN_EPS);
        x = rs_residual(c, x, rs_mha(c, &bl->cross, e->width, e->heads, xn, kv, mask), p, rng);
        xn = tp_layernorm(c, x, bl->ln2_w, bl->ln2_b, RS_LN_EPS);
        x = rs_residual(c, x, rs_mha(c, &bl->self, e->width, e->heads, xn, xn, NULL), p, rng);
        xn = tp_layernorm(c, x, bl->ln3_w, bl->ln3_b, RS_LN_EPS);
        x = rs_residual(c, x, rs_ffn_forward(c, &bl->ffn, xn, TP_GELU_ERF), p, rng);
    }
    return x;
}

/* h [B,T,d_s] f32, mask [B,T] or NULL -> [B,M,W]; NULL with the context's error on failure. */
BU_STATIC tp_tensor *rs_forward(const rs_enc *e, tp_ctx *c, tp_tensor *h, tp_tensor *mask) {
    return rs_forward_dropout(e, c, h, mask, 0.0f, NULL);
}

#endif
