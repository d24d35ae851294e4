/* cpu_rope.c — CPU reference RoPE, HF semantics: angle = float(pos) * inv_freq[i] in float32
 * (as transformers' matmul of position_ids and inv_freq), rotate_half pairs (i, i + Dh/2).
 * x: (B, H, T, Dh) with any strides whose last is 1 (the engine passes head slices of the
 * fused q|k|v projection without a copy); out and grads contiguous; pos: (B, T) i32. */
#include <math.h>

#include "core/cpu.h"

/* src is read through strides ss (elements; ss[3] == 1); dst is contiguous */
static void rope_rows(tp_node *n, const float *src, const int64_t *ss, float *dst, int inverse) {
    const tp_rope_cfg *cfg = n->aux;
    const tp_tensor *x = n->in[0];
    int64_t B = x->shape[0], H = x->shape[1], T = x->shape[2], Dh = x->shape[3], half = Dh / 2;
    const int32_t *pos = I32(n->in[1]);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            float p = (float)pos[b * T + t];
            for (int64_t i = 0; i < half; i++) {
                float ang = p * cfg->inv_freq[i];
                float c = (float)cos((double)ang), s = (float)sin((double)ang);
                if (inverse) s = -s; /* the transpose of a rotation is the rotation by -angle */
                for (int64_t h = 0; h < H; h++) {
                    int64_t o = ((b * H + h) * T + t) * Dh;
                    int64_t so = b * ss[0] + h * ss[1] + t * ss[2];
                    float x1 = src[so + i], x2 = src[so + i + half];
                    dst[o + i] += x1 * c - x2 * s;
                    dst[o + i + half] += x2 * c + x1 * s;
                }
            }
        }
}

tp_status tp_cpu_rope_fwd(tp_ctx *ctx, tp_node *n) {
    float *y = F32(n->out);
    int64_t m = tp_numel(n->out);
    for (int64_t i = 0; i < m; i++) y[i] = 0.0f;
    rope_rows(n, F32(n->in[0]), n->in[0]->stride, y, 0);
    return TP_OK;
}

tp_status tp_cpu_rope_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    int64_t cs[4];
    tp_contig_strides(4, n->out->shape, cs);
    rope_rows(n, F32(n->out->grad), cs, F32(gx), 1);
    return TP_OK;
}
