/* cuda_rope.cu — CUDA RoPE with HF semantics (as cpu_rope.c): angle = float(pos) * inv_freq[i]
 * in f32, cos/sin of it in double rounded to f32 (so tables match the CPU bit for bit),
 * rotate_half pairs (i, i + Dh/2). x [B,H,T,Dh] read through its strides (last one 1: head slices
 * of the fused q|k|v output come uncopied), out contiguous; pos [B,T] i32. One thread per
 * (b, t, h, i) pair; backward applies the inverse rotation and adds into the grad. */
#include <string.h>

#include "cuda_common.h"

struct inv_freq_t {
    float f[512];
};

__global__ void k_rope(const void *x, int xdt, int64_t sb, int64_t sh, int64_t st,
                       const int32_t *pos, void *y, int ydt, float *gy, int64_t B, int64_t H,
                       int64_t T, int64_t Dh, inv_freq_t inv, int inverse) {
    int64_t half = Dh / 2, n = B * H * T * half;
    GRID_LOOP(k, n) {
        int64_t i = k % half, r = k / half; /* r = (b*H + h)*T + t */
        int64_t t = r % T, b = r / (H * T), h = (r / T) % H;
        float ang = (float)pos[b * T + t] * inv.f[i];
        double sd, cd;
        sincos((double)ang, &sd, &cd);
        float c = (float)cd, s = (float)sd;
        if (inverse) s = -s; /* the transpose of a rotation is the rotation by -angle */
        int64_t o = r * Dh, so = b * sb + h * sh + t * st;
        float x1 = ldf(x, xdt, so + i), x2 = ldf(x, xdt, so + i + half);
        float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        if (gy) {
            gy[o + i] += y1;
            gy[o + i + half] += y2;
        } else {
            stf(y, ydt, o + i, y1);
            stf(y, ydt, o + i + half, y2);
        }
    }
}

static tp_status launch(tp_ctx *ctx, tp_node *n, const tp_tensor *src, tp_tensor *dst, int bwd) {
    const tp_rope_cfg *cfg = (const tp_rope_cfg *)n->aux;
    const tp_tensor *x = n->in[0];
    int64_t B = x->shape[0], H = x->shape[1], T = x->shape[2], Dh = x->shape[3];
    int64_t m = B * H * T * (Dh / 2);
    if (!m) return TP_OK;
    inv_freq_t inv;
    for (int i = 0; i < 512; i++) inv.f[i] = i < Dh / 2 ? cfg->inv_freq[i] : 0.0f;
    int64_t ss[4];
    if (bwd) /* the output's grad: contiguous */
        tp_contig_strides(4, src->shape, ss);
    else
        memcpy(ss, src->stride, sizeof ss);
    k_rope<<<tp_cu_blocks(m), TP_CU_THREADS, 0, tp_cu_stream>>>(
        src->data, (int)src->dtype, ss[0], ss[1], ss[2], (const int32_t *)n->in[1]->data,
        bwd ? NULL : dst->data, (int)dst->dtype, bwd ? (float *)dst->data : NULL, B, H, T, Dh, inv,
        bwd);
    CUDA_LAUNCH_CHECK(ctx, bwd ? "rope backward" : "rope");
    return TP_OK;
}

tp_status tp_cu_rope_fwd(tp_ctx *ctx, tp_node *n) {
    return launch(ctx, n, n->in[0], n->out, 0);
}

tp_status tp_cu_rope_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gx = tp_node_grad(ctx, n, 0);
    if (!gx) return ctx->status;
    return launch(ctx, n, n->out->grad, gx, 1);
}
