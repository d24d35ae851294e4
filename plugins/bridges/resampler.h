/* resampler.h — the Perceiver-resampler encoder shared by the quantised bridges (vq, fsq): the
 * design of perceiver.c (STUDY.md "Bridges"; the study's VQ and FSQ bridges put their
 * quantiser behind this same resampler), without its output projection, RMS x alpha and
 * dropout, which the quantised bridges replace with their own.
 *
 *   kv = h W_in^T + b_in                      only if d_s != W
 *   x  = latents                              [M,W], init N(0, 0.02^2)
 *   depth x (pre-LayerNorm, no positional encodings):
 *     x += CrossAttn(LN1(x), kv)              padded keys masked
 *     x += SelfAttn(LN2(x))
 *     x += W2 GELU_erf(W1 LN3(x) + b1) + b2   FFN ffn_mult * W
 * Attention is nn.MultiheadAttention's (q/k/v/out projections with biases, `heads` heads);
 * init as PyTorch's defaults (q/k/v xavier-uniform over the stacked in_proj, biases 0,
 * out/FFN/input projections U(+-1/sqrt(fan_in)), LayerNorm 1/0). Parameters are named
 * "enc.*" and draw from the includer's bu_init streams.
 *
 * Include after bridge_util.h. */
#ifndef TP_RESAMPLER_H
#define TP_RESAMPLER_H

#define RS_MAX_DEPTH 8
#define RS_LN_EPS    1e-5f

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

typedef struct rs_block {
    tp_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b, *ln3_w, *ln3_b;
    rs_attn cross, self;
    tp_tensor *ff1_w, *ff1_b, *ff2_w, *ff2_b;
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

BU_STATIC tp_status rs_make_attn(bu_init *in, tp_params *ps, const char *pre, int64_t w, rs_attn *a,
                                 tp_err *err) {
    float xav = sqrtf(6.0f / (float)(4 * w)), lin = 1.0f / sqrtf((float)w);
    char n[64];
#define RS_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
    RS_P(a->wq, RS_N("q.weight"), BU_UNIFORM, xav, w, w);
    RS_P(a->bq, RS_N("q.bias"), BU_ZERO, 0, w);
    RS_P(a->wk, RS_N("k.weight"), BU_UNIFORM, xav, w, w);
    RS_P(a->bk, RS_N("k.bias"), BU_ZERO, 0, w);
    RS_P(a->wv, RS_N("v.weight"), BU_UNIFORM, xav, w, w);
    RS_P(a->bv, RS_N("v.bias"), BU_ZERO, 0, w);
    RS_P(a->wo, RS_N("out.weight"), BU_UNIFORM, lin, w, w);
    RS_P(a->bo, RS_N("out.bias"), BU_ZERO, 0, w);
#undef RS_N
    return TP_OK;
}

/* Reads the RS_OPTIONS and creates the encoder's parameters. */
BU_STATIC tp_status rs_create(rs_enc *e, bu_init *in, const tp_options *o,
                              const tp_bridge_dims *dims, tp_params *ps, tp_err *err) {
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
    int64_t w = e->width, f = (int64_t)e->ffn * e->width;
    RS_P(e->latents, "enc.latents", BU_NORMAL, 0.02f, e->m, w);
    if (e->d_s != e->width) {
        float b = 1.0f / sqrtf((float)e->d_s);
        RS_P(e->in_w, "enc.input_proj.weight", BU_UNIFORM, b, w, e->d_s);
        RS_P(e->in_b, "enc.input_proj.bias", BU_UNIFORM, b, w);
    }
    for (int i = 0; i < e->depth; i++) {
        rs_block *bl = &e->blocks[i];
        char n[64], pre[32];
        snprintf(pre, sizeof pre, "enc.blocks.%d", i);
#define RS_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
        RS_P(bl->ln1_w, RS_N("ln1.weight"), BU_VALUE, 1, w);
        RS_P(bl->ln1_b, RS_N("ln1.bias"), BU_ZERO, 0, w);
        TP_TRY(rs_make_attn(in, ps, RS_N("cross"), w, &bl->cross, err));
        RS_P(bl->ln2_w, RS_N("ln2.weight"), BU_VALUE, 1, w);
        RS_P(bl->ln2_b, RS_N("ln2.bias"), BU_ZERO, 0, w);
        TP_TRY(rs_make_attn(in, ps, RS_N("self"), w, &bl->self, err));
        RS_P(bl->ln3_w, RS_N("ln3.weight"), BU_VALUE, 1, w);
        RS_P(bl->ln3_b, RS_N("ln3.bias"), BU_ZERO, 0, w);
        RS_P(bl->ff1_w, RS_N("ffn.0.weight"), BU_UNIFORM, 1.0f / sqrtf((float)w), f, w);
        RS_P(bl->ff1_b, RS_N("ffn.0.bias"), BU_UNIFORM, 1.0f / sqrtf((float)w), f);
        RS_P(bl->ff2_w, RS_N("ffn.2.weight"), BU_UNIFORM, 1.0f / sqrtf((float)f), w, f);
        RS_P(bl->ff2_b, RS_N("ffn.2.bias"), BU_UNIFORM, 1.0f / sqrtf((float)f), w);
#undef RS_N
    }
    return TP_OK;
}
#undef RS_P

/* [B,T,W] -> [B,H,T,Dh] contiguous. */
BU_STATIC tp_tensor *rs_heads(tp_ctx *c, tp_tensor *x, int64_t b, int64_t t, int h, int64_t dh) {
    return tp_contiguous(c, tp_transpose(c, tp_reshape(c, x, TP_DIMS(b, t, h, dh)), 1, 2));
}

BU_STATIC tp_tensor *rs_attention(const rs_enc *e, tp_ctx *c, const rs_attn *a, tp_tensor *q_in,
                                  tp_tensor *kv_in, tp_tensor *key_mask) {
    if (!q_in || !kv_in) return NULL;
    int64_t b = q_in->shape[0], tq = q_in->shape[1], tk = kv_in->shape[1];
    int64_t dh = e->width / e->heads;
    tp_tensor *q = rs_heads(c, tp_linear(c, q_in, a->wq, a->bq), b, tq, e->heads, dh);
    tp_tensor *k = rs_heads(c, tp_linear(c, kv_in, a->wk, a->bk), b, tk, e->heads, dh);
    tp_tensor *v = rs_heads(c, tp_linear(c, kv_in, a->wv, a->bv), b, tk, e->heads, dh);
    tp_attn_cfg cfg = {0, 0, 0, 0.0f};
    tp_tensor *o = tp_attention(c, q, k, v, key_mask, &cfg);
    o = tp_reshape(c, tp_transpose(c, o, 1, 2), TP_DIMS(b, tq, e->width));
    return tp_linear(c, o, a->wo, a->bo);
}

/* h [B,T,d_s] f32, mask [B,T] or NULL -> [B,M,W]; NULL with the context's error on failure. */
BU_STATIC tp_tensor *rs_forward(const rs_enc *e, tp_ctx *c, tp_tensor *h, tp_tensor *mask) {
    if (!h) return NULL;
    int64_t b = h->shape[0];
    tp_tensor *kv = e->in_w ? tp_linear(c, h, e->in_w, e->in_b) : h;
    tp_tensor *x = bu_broadcast(c, e->latents, b);
    for (int i = 0; i < e->depth; i++) {
        const rs_block *bl = &e->blocks[i];
        tp_tensor *xn = tp_layernorm(c, x, bl->ln1_w, bl->ln1_b, RS_LN_EPS);
        x = tp_add(c, x, rs_attention(e, c, &bl->cross, xn, kv, mask));
        xn = tp_layernorm(c, x, bl->ln2_w, bl->ln2_b, RS_LN_EPS);
        x = tp_add(c, x, rs_attention(e, c, &bl->self, xn, xn, NULL));
        xn = tp_layernorm(c, x, bl->ln3_w, bl->ln3_b, RS_LN_EPS);
        tp_tensor *f = tp_gelu(c, tp_linear(c, xn, bl->ff1_w, bl->ff1_b), TP_GELU_ERF);
        x = tp_add(c, x, tp_linear(c, f, bl->ff2_w, bl->ff2_b));
    }
    return x;
}

#endif
