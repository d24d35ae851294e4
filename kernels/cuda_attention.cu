/* cuda_attention.cu — CUDA scaled-dot-product attention with grouped KV heads, causal mask with
 * q_offset, sliding window and key padding (semantics of cpu_attention.c).
 * Forward: for up to 32 query rows per head with bf16 K/V (decode, the Perceiver's latents, the
 * receiver's short inputs) a kernel with one block per query row; otherwise a fused flash-style
 * kernel, one block per tile of 16 query rows of one head, keys and
 * values streamed through shared memory with an online softmax, so no score matrix is written;
 * the row log-sum-exp is saved for backward (-inf for a row that sees no key: its output is 0).
 * Backward: through GEMMs, since the study's sequences are short: the G = H/Hkv query heads of a
 * KV group are contiguous in q, so q viewed as [B*Hkv, G*T, Dh] against k [B*Hkv, S, Dh] makes
 * every product one strided batch (scores, dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

struct attn_args {
    const void *q, *k, *v, *mask;
    int qdt, kdt, vdt, mdt;
    void *o;
    int odt;
    float *lse;
    int64_t B, H, Hkv, T, S, Dh;
    int64_t ks[3], vs[3]; /* k, v strides of batch, head, row (rows dense) */
    int causal, q_offset, window;
    float scale;
};

/* visible key range [lo, hi) of query t, before the padding mask */
__device__ __forceinline__ void key_range(const attn_args &a, int64_t t, int64_t *lo, int64_t *hi) {
    int64_t qpos = t + a.q_offset;
    *hi = a.causal ? min(a.S, qpos + 1) : a.S;
    *lo = a.window > 0 ? max((int64_t)0, qpos - a.window + 1) : 0;
    if (*hi < 0) *hi = 0;
}

/* Forward, tiled: one block per (b, h, tile of QT query rows). The tile's queries (scaled) and
 * its output accumulators live in shared memory as f32; keys and values stream through in chunks
 * of SC rows, loaded once per block (not once per query row, as the first warp-per-row kernel
 * did: 216 us per sender layer and 940 us per Perceiver cross-attention on the H100, more than the
 * layer's GEMMs). Per chunk: scores for every (row, key) pair, an online-softmax update per row
 * (one warp per row), then O = O * corr + P V. What made it fast, measured on the H100 (ncu):
 * - bf16 rows come in as 16-byte vectors: element-wise loads in a loop were latency-bound
 *   (one ~700-cycle round trip per element per thread; 53 us per sender layer);
 * - each score thread computes four keys against one query row (four independent FMAs per
 *   shared load), and when rows x keys leave threads idle (decode: one row; the Perceiver's
 *   head dim 512), 2..32 neighbouring lanes split the head dim and reduce by shuffles;
 * - rows past the tile's real rows do no work (decode has one).
 * Layout, in floats: Q[QT][Dh+1] O[QT][Dh] K[SC][Dh+1] V[SC][Dh] P[QT][SC] usable[SC] m l corr
 * [QT]; the +1 pads keep the lanes of a warp, which walk keys or dims, on distinct banks. */
#define ATTN_QT      16
#define ATTN_THREADS 256

static int attn_chunk(int64_t Dh) {
    int64_t sc = 8192 / (Dh > 0 ? Dh : 1);
    sc = sc < 8 ? 8 : sc > 64 ? 64 : sc;
    return (int)(sc & ~7); /* a multiple of 8: the score loop takes keys in fours */
}

static size_t attn_smem_bytes(int64_t Dh, int SC) {
    return sizeof(float) * (size_t)(ATTN_QT * (Dh + 1) + ATTN_QT * Dh + SC * (Dh + 1) + SC * Dh +
                                    ATTN_QT * SC + SC + 3 * ATTN_QT);
}

/* rows [0, n) of Dh dense elements each, the first at element off and the next ones pitch
 * elements apart, into smem rows of pitch ld, times mul; 16-byte vectors when the operand is bf16
 * and every row start is 16-byte aligned */
__device__ __forceinline__ void load_rows(const void *p, int dt, int64_t off, int64_t pitch, int n,
                                          int Dh, float *dst, int ld, float mul, int tid, int nt) {
    if (dt == (int)TP_BF16 && (Dh & 7) == 0 && (off & 7) == 0 && (pitch & 7) == 0 &&
        (((uintptr_t)p & 15) == 0)) {
        const __nv_bfloat16 *src = (const __nv_bfloat16 *)p + off;
        const int nv = n * Dh / 8, per_row = Dh / 8;
#pragma unroll 4
        for (int i = tid; i < nv; i += nt) {
            int r = i / per_row, d = (i - r * per_row) * 8;
            uint4 u = *(const uint4 *)(src + r * pitch + d);
            const __nv_bfloat162 *h2 = (const __nv_bfloat162 *)&u;
            float *o = dst + r * ld + d;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = __bfloat1622float2(h2[j]);
                o[2 * j] = f.x * mul;
                o[2 * j + 1] = f.y * mul;
            }
        }
        return;
    }
#pragma unroll 4
    for (int i = tid; i < n * Dh; i += nt) {
        int r = i / Dh, d = i - r * Dh;
        dst[r * ld + d] = ldf(p, dt, off + r * pitch + d) * mul;
    }
}

__global__ void k_attn_tile(attn_args a, int SC) {
    extern __shared__ float sm[];
    const int QT = ATTN_QT;
    const int Dh = (int)a.Dh, Dq = Dh + 1, ntile = (int)((a.T + QT - 1) / QT);
    const int64_t bh = blockIdx.x / ntile, t0 = (int64_t)(blockIdx.x % ntile) * QT;
    const int64_t h = bh % a.H, b = bh / a.H, kvh = h / (a.H / a.Hkv);
    const int nq = (int)min((int64_t)QT, a.T - t0);
    float *Qs = sm, *Os = Qs + QT * Dq, *Ks = Os + QT * Dh, *Vs = Ks + SC * Dq;
    float *Ps = Vs + SC * Dh, *Ms = Ps + QT * SC, *rm = Ms + SC, *rl = rm + QT, *rc = rl + QT;
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, warp = tid >> 5;
    const int nwarp = nt >> 5, SC4 = SC / 4, D4 = (Dh + 3) / 4;
    const int64_t qbase = (bh * a.T + t0) * Dh;
    const int64_t kbase = b * a.ks[0] + kvh * a.ks[1], vbase = b * a.vs[0] + kvh * a.vs[1];
    /* score work split: items = (row, key quad); nseg lanes share an item's head dim */
    const int items = nq * SC4;
    int nseg = 1;
    while (nseg < 32 && nseg * 2 * items <= nt && nseg * 2 <= Dh) nseg *= 2;

    load_rows(a.q, a.qdt, qbase, Dh, nq, Dh, Qs, Dq, a.scale, tid, nt);
    for (int i = tid; i < nq * Dh; i += nt) Os[i] = 0.0f;
    for (int r = tid; r < QT; r += nt) {
        rm[r] = -INFINITY;
        rl[r] = 0.0f;
    }
    /* keys any row of the tile may see: the first row has the lowest window start, the last
     * row the highest causal end */
    int64_t lo_all, hi_all, lo1, hi1;
    key_range(a, t0, &lo_all, &hi1);
    key_range(a, t0 + nq - 1, &lo1, &hi_all);
    for (int64_t s0 = lo_all; s0 < hi_all; s0 += SC) {
        const int nk = (int)min((int64_t)SC, hi_all - s0);
        __syncthreads(); /* the previous chunk's K, V, P are consumed */
        load_rows(a.k, a.kdt, kbase + s0 * a.ks[2], a.ks[2], nk, Dh, Ks, Dq, 1.0f, tid, nt);
        load_rows(a.v, a.vdt, vbase + s0 * a.vs[2], a.vs[2], nk, Dh, Vs, Dh, 1.0f, tid, nt);
        for (int s = tid; s < SC; s += nt)
            Ms[s] = s < nk && !(a.mask && ldf(a.mask, a.mdt, b * a.S + s0 + s) == 0.0f);
        __syncthreads();
        /* scores: item -> row r, keys sl + j*SC4 (j < 4), dims seg + k*nseg; every thread runs
         * the same number of rounds so the shuffles see full warps */
        for (int base = 0; base < items * nseg; base += nt) {
            int idx = base + tid, it = idx / nseg, seg = idx - it * nseg;
            bool act = it < items;
            int r = act ? it / SC4 : 0, sl = act ? it - r * SC4 : 0;
            float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
            if (act && sl < nk) {
                const float *qr = Qs + r * Dq, *k0 = Ks + sl * Dq;
                for (int d = seg; d < Dh; d += nseg) {
                    float qv = qr[d];
                    d0 += qv * k0[d];
                    d1 += qv * k0[SC4 * Dq + d];
                    d2 += qv * k0[2 * SC4 * Dq + d];
                    d3 += qv * k0[3 * SC4 * Dq + d];
                }
            }
            for (int o = nseg >> 1; o > 0; o >>= 1) {
                d0 += __shfl_xor_sync(0xffffffffu, d0, o);
                d1 += __shfl_xor_sync(0xffffffffu, d1, o);
                d2 += __shfl_xor_sync(0xffffffffu, d2, o);
                d3 += __shfl_xor_sync(0xffffffffu, d3, o);
            }
            if (act && seg == 0) {
                float dj[4] = {d0, d1, d2, d3};
                int64_t lo, hi;
                key_range(a, t0 + r, &lo, &hi);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    int s = sl + j * SC4;
                    int64_t ks = s0 + s;
                    bool vis = s < nk && Ms[s] != 0.0f && ks >= lo && ks < hi;
                    Ps[r * SC + s] = vis ? dj[j] : -INFINITY;
                }
            }
        }
        __syncthreads();
        for (int r = warp; r < nq; r += nwarp) {
            float mx = -INFINITY;
            for (int s = lane; s < SC; s += 32) mx = fmaxf(mx, Ps[r * SC + s]);
            mx = warp_max(mx);
            float m_old = rm[r], m_new = fmaxf(m_old, mx), sum = 0.0f;
            for (int s = lane; s < SC; s += 32) {
                float sc = Ps[r * SC + s];
                float p = sc == -INFINITY ? 0.0f : expf(sc - m_new);
                Ps[r * SC + s] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                float corr = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
                rl[r] = rl[r] * corr + sum;
                rm[r] = m_new;
                rc[r] = corr;
            }
        }
        __syncthreads();
        /* O = O * corr + P V: thread -> row r, dims dl + j*D4 (j < 4): lanes walk dims */
        for (int i = tid; i < nq * D4; i += nt) {
            int r = i / D4, dl = i - r * D4;
            const float *pr = Ps + r * SC;
            float c = rc[r], o[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int d = dl + j * D4;
                o[j] = d < Dh ? Os[r * Dh + d] * c : 0.0f;
            }
            if (dl + 3 * D4 < Dh) { /* all four dims exist: the common case */
                const float *v0 = Vs + dl;
                for (int s = 0; s < nk; s++) {
                    float p = pr[s];
                    o[0] += p * v0[s * Dh];
                    o[1] += p * v0[s * Dh + D4];
                    o[2] += p * v0[s * Dh + 2 * D4];
                    o[3] += p * v0[s * Dh + 3 * D4];
                }
            } else {
                for (int s = 0; s < nk; s++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        int d = dl + j * D4;
                        if (d < Dh) o[j] += pr[s] * Vs[s * Dh + d];
                    }
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int d = dl + j * D4;
                if (d < Dh) Os[r * Dh + d] = o[j];
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < nq * Dh; i += nt) {
        float l = rl[i / Dh];
        stf(a.o, a.odt, qbase + i, l > 0.0f ? Os[i] / l : 0.0f);
    }
    if (a.lse)
        for (int r = tid; r < nq; r += nt)
            a.lse[bh * a.T + t0 + r] = rl[r] > 0.0f ? rm[r] + logf(rl[r]) : -INFINITY;
}

/* Short query tiles, one block per query row: the KV-cache step (T = 1) and the Perceiver's 16
 * latents. The tiled kernel above walks the keys in chunks with two barriers each, which at a few
 * rows is latency: 18 us per sender layer per generated token, 109 us for the bridge's
 * cross-attention (8 blocks of 16 rows at head dim 512; ncu, rounds 2-3). Here each block scores
 * every visible key of its row at once: min(32, Dh/8) lanes share a key (CH 16-byte loads each,
 * four keys in flight per lane group), the scores sit in shared memory for one block-wide max and
 * sum, then P V runs with Dh/2 threads per key group (bf16 pairs) and the groups' partial rows
 * are summed in shared memory. 1024 threads, so a few hundred keys are read in one or two rounds
 * of loads per thread (at 256 threads decode was latency-bound: 21 us per layer). */
#define ROWS_THREADS 1024

template <int CH>
__global__ void __launch_bounds__(ROWS_THREADS) k_attn_rows(attn_args a, int Spad) {
    tp_cu_pdl_trigger(); /* the o GEMV may stream its weights meanwhile */
    extern __shared__ float sm[];
    const int Dh = (int)a.Dh, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int nwarp = ROWS_THREADS / 32;
    const int64_t row = blockIdx.x, bh = row / a.T, t = row % a.T;
    const int64_t h = bh % a.H, b = bh / a.H, kvh = h / (a.H / a.Hkv);
    float *qs = sm, *ps = qs + Dh, *red = ps + Spad, *part = red + 32;
    for (int d = tid; d < Dh; d += ROWS_THREADS) qs[d] = ldf(a.q, a.qdt, row * Dh + d) * a.scale;
    __syncthreads();
    int64_t lo, hi;
    key_range(a, t, &lo, &hi);
    const int n = hi > lo ? (int)(hi - lo) : 0;
    /* scores: LPK lanes per key, lane seg holds dims [seg*8*CH, (seg+1)*8*CH) */
    const int LPK = Dh / (8 * CH), KPW = 32 / LPK, sub = lane / LPK, seg = lane % LPK;
    float qr[8 * CH];
#pragma unroll
    for (int i = 0; i < 8 * CH; i++) qr[i] = qs[seg * 8 * CH + i];
    const __nv_bfloat16 *kp =
        (const __nv_bfloat16 *)a.k + b * a.ks[0] + kvh * a.ks[1] + seg * 8 * CH;
    const int step = nwarp * KPW;
    for (int base = warp * KPW; base < n; base += 4 * step) { /* warp-uniform bound */
        uint4 u[4][CH];
        float mk[4]; /* the padding mask, loaded with the keys (not after the dot products) */
#pragma unroll
        for (int r = 0; r < 4; r++) {
            int j = base + r * step + sub;
#pragma unroll
            for (int c = 0; c < CH; c++)
                u[r][c] = j < n ? *((const uint4 *)(kp + (lo + j) * a.ks[2]) + c)
                                : make_uint4(0, 0, 0, 0);
            mk[r] = a.mask && j < n && seg == 0 ? ldf(a.mask, a.mdt, b * a.S + lo + j) : 1.0f;
        }
#pragma unroll
        for (int r = 0; r < 4; r++) {
            int j = base + r * step + sub;
            float dot = 0.0f;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                const __nv_bfloat162 *k2 = (const __nv_bfloat162 *)&u[r][c];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float2 f = __bfloat1622float2(k2[e]);
                    dot = fmaf(qr[c * 8 + 2 * e], f.x, fmaf(qr[c * 8 + 2 * e + 1], f.y, dot));
                }
            }
            for (int o = LPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
            if (j < n && seg == 0) ps[j] = mk[r] != 0.0f ? dot : -INFINITY;
        }
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = tid; j < n; j += ROWS_THREADS) mx = fmaxf(mx, ps[j]);
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = tid; j < n; j += ROWS_THREADS) {
        float p = mx == -INFINITY ? 0.0f : expf(ps[j] - mx);
        ps[j] = p;
        sum += p;
    }
    sum = block_sum(sum, red); /* its barriers also publish ps */
    /* P V: thread -> (key group g, bf16 pair dp) */
    const int DP = Dh / 2, NG = ROWS_THREADS / DP, g = tid / DP, dp = tid % DP;
    const __nv_bfloat16 *vp = (const __nv_bfloat16 *)a.v + b * a.vs[0] + kvh * a.vs[1] + 2 * dp;
    float ax = 0.0f, ay = 0.0f;
#pragma unroll 8
    for (int j = g; j < n; j += NG) {
        float p = ps[j];
        float2 f = __bfloat1622float2(*(const __nv_bfloat162 *)(vp + (lo + j) * a.vs[2]));
        ax = fmaf(p, f.x, ax);
        ay = fmaf(p, f.y, ay);
    }
    part[g * Dh + 2 * dp] = ax;
    part[g * Dh + 2 * dp + 1] = ay;
    __syncthreads();
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int d = tid; d < Dh; d += ROWS_THREADS) {
        float o = 0.0f;
        for (int k = 0; k < NG; k++) o += part[k * Dh + d];
        stf(a.o, a.odt, row * Dh + d, o * inv);
    }
    if (a.lse && tid == 0) a.lse[row] = sum > 0.0f ? mx + logf(sum) : -INFINITY;
}

/* Rows per (b, h) up to which the row kernel may run (TP_CUDA_ATTN_ROWS_MAX_T overrides; 0 =
 * off). Past one row it runs only while its blocks are few (B*H*T <= 256), where the tiled
 * kernel leaves most SMs idle: H100, the bridge at B=1 (128 rows of Dh 512) 1.02 -> 0.77 ms, but
 * the receiver's 23-row inputs (736 rows at B=1, 5,888 at B=8) ran slower than tiled (6.82 ->
 * 7.26 and 8.92 -> 14.22 ms a forward). */
static int rows_max_t(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TP_CUDA_ATTN_ROWS_MAX_T");
        v = e && *e ? atoi(e) : 32;
    }
    return v;
}

/* Shared memory of the row kernel for this problem, or 0 when it does not apply. */
static size_t rows_smem(const attn_args &a, int *Spad) {
    const int64_t Dh = a.Dh;
    if (a.T > rows_max_t() || a.kdt != (int)TP_BF16 || a.vdt != (int)TP_BF16) return 0;
    if (a.T > 1 && a.B * a.H * a.T > 256) return 0;
    if (Dh < 8 || Dh > 512 || (Dh & (Dh - 1))) return 0;
    if (((uintptr_t)a.k & 15) || ((uintptr_t)a.v & 3)) return 0;
    for (int i = 0; i < 3; i++)
        if ((a.ks[i] & 7) || (a.vs[i] & 1)) return 0;
    *Spad = (int)((a.S + 3) & ~3LL);
    size_t bytes = sizeof(float) * (size_t)(Dh + *Spad + 32 + (ROWS_THREADS / (Dh / 2)) * Dh);
    return bytes <= 48 * 1024 ? bytes : 0;
}

static attn_args args_of(const tp_node *n) {
    const tp_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *mk = n->in[3];
    const tp_attn_cfg *cfg = (const tp_attn_cfg *)n->aux;
    attn_args a;
    memset(&a, 0, sizeof a);
    a.q = q->data;
    a.k = k->data;
    a.v = v->data;
    a.mask = mk ? mk->data : NULL;
    a.qdt = (int)q->dtype;
    a.kdt = (int)k->dtype;
    a.vdt = (int)v->dtype;
    a.mdt = mk ? (int)mk->dtype : 0;
    a.B = q->shape[0];
    a.H = q->shape[1];
    a.T = q->shape[2];
    a.Dh = q->shape[3];
    a.Hkv = k->shape[1];
    a.S = k->shape[2];
    for (int i = 0; i < 3; i++) {
        a.ks[i] = k->stride[i];
        a.vs[i] = v->stride[i];
    }
    a.causal = cfg->causal;
    a.q_offset = cfg->q_offset;
    a.window = cfg->window;
    a.scale = cfg->scale;
    return a;
}

tp_status tp_cu_attention_fwd(tp_ctx *ctx, tp_node *n) {
    attn_args a = args_of(n);
    a.o = n->out->data;
    a.odt = (int)n->out->dtype;
    if (n->record) {
        int64_t sh[3] = {a.B, a.H, a.T};
        n->saved[0] = tp_ctx_scratch(ctx, TP_F32, 3, sh);
        if (!n->saved[0]) return ctx->status;
        a.lse = (float *)n->saved[0]->data;
    }
    int64_t rows = a.B * a.H * a.T;
    if (!rows) return TP_OK;
    if (a.Dh == 0) {
        if (a.lse) CUDA_CHECK(ctx, cudaMemsetAsync(a.lse, 0, (size_t)rows * 4, tp_cu_stream));
        return TP_OK;
    }
    int Spad = 0;
    size_t rsm = rows_smem(a, &Spad);
    if (rsm) {
        unsigned blocks = (unsigned)(a.B * a.H * a.T);
        if (a.Dh <= 256)
            k_attn_rows<1><<<blocks, ROWS_THREADS, rsm, tp_cu_stream>>>(a, Spad);
        else
            k_attn_rows<2><<<blocks, ROWS_THREADS, rsm, tp_cu_stream>>>(a, Spad);
        CUDA_LAUNCH_CHECK(ctx, "attention (rows)");
        return TP_OK;
    }
    int SC = attn_chunk(a.Dh);
    size_t smem = attn_smem_bytes(a.Dh, SC);
    if (smem > 200 * 1024)
        return tp_ctx_fail(ctx, TP_EUNSUP,
                           "op 'attention' on cuda: head dim %lld needs %zu bytes of shared "
                           "memory per block (limit 200 KiB)",
                           (long long)a.Dh, smem);
    static size_t smem_set = 48 * 1024; /* the default dynamic limit; raised once as needed */
    if (smem > smem_set) {
        CUDA_CHECK(ctx, cudaFuncSetAttribute(
                            k_attn_tile, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
        smem_set = 200 * 1024;
    }
    int64_t blocks = a.B * a.H * ((a.T + ATTN_QT - 1) / ATTN_QT);
    k_attn_tile<<<(unsigned)blocks, ATTN_THREADS, smem, tp_cu_stream>>>(a, SC);
    CUDA_LAUNCH_CHECK(ctx, "attention");
    return TP_OK;
}

/* P[bk, r, s] = visible ? exp(P - lse) : 0, with bk = b*Hkv + kvh, r = g*T + t (in place) */
__global__ void k_probs(float *P, const float *lse, attn_args a, int64_t G) {
    int64_t n = a.B * a.Hkv * G * a.T * a.S;
    GRID_LOOP(k, n) {
        int64_t s = k % a.S, rowflat = k / a.S; /* = (bk*G + g)*T + t = (b*H + h)*T + t */
        int64_t t = rowflat % a.T, b = rowflat / (a.H * a.T);
        int64_t lo, hi;
        key_range(a, t, &lo, &hi);
        float l = lse[rowflat];
        bool vis = s >= lo && s < hi && l != -INFINITY &&
                   !(a.mask && ldf(a.mask, a.mdt, b * a.S + s) == 0.0f);
        P[k] = vis ? expf(P[k] - l) : 0.0f;
    }
}

/* dS = P * (dP - rowsum(P * dP)), one warp per row (in place in dP) */
__global__ void k_dsoftmax(const float *P, float *dP, int64_t rows, int64_t S) {
    int lane = threadIdx.x & 31;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += nw) {
        const float *p = P + r * S;
        float *dp = dP + r * S;
        float d = 0;
        for (int64_t s = lane; s < S; s += 32) d += p[s] * dp[s];
        d = warp_sum(d);
        for (int64_t s = lane; s < S; s += 32) dp[s] = p[s] * (dp[s] - d);
    }
}

/* t as a contiguous f32 tensor (itself, or a scratch copy) for the GEMMs of the backward */
static tp_tensor *contig_f32(tp_ctx *ctx, tp_tensor *t) {
    if (t->dtype == TP_F32 && tp_is_contiguous(t)) return t;
    tp_tensor *o = tp_ctx_scratch(ctx, TP_F32, t->ndim, t->shape);
    if (!o) return NULL;
    if (tp_cu_copy_strided_hook(o, t) != TP_OK) {
        tp_ctx_fail(ctx, TP_ECUDA, "op 'attention' backward: copy of an input failed");
        return NULL;
    }
    return o;
}

tp_status tp_cu_attention_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *gq = tp_node_grad(ctx, n, 0), *gk = tp_node_grad(ctx, n, 1);
    tp_tensor *gv = tp_node_grad(ctx, n, 2);
    if (ctx->status) return ctx->status;
    attn_args a = args_of(n);
    if ((!gq && !gk && !gv) || !a.T || !a.S || !a.Dh || !a.B) return TP_OK;
    if (!n->saved[0])
        return tp_ctx_fail(ctx, TP_ESTATE, "op 'attention': backward without saved lse");
    int64_t G = a.H / a.Hkv, BK = a.B * a.Hkv, GT = G * a.T;
    tp_tensor *q = contig_f32(ctx, n->in[0]);
    tp_tensor *k = contig_f32(ctx, n->in[1]); /* k, v may be strided (see the front end) */
    tp_tensor *v = contig_f32(ctx, n->in[2]);
    int64_t psh[3] = {BK, GT, a.S};
    tp_tensor *P = tp_ctx_scratch(ctx, TP_F32, 3, psh);
    if (!q || !k || !v || !P) return ctx->status;
    const float *dO = (const float *)n->out->grad->data;
    float *p = (float *)P->data;
    /* scores: P = scale * Q K^T */
    TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, q->data, a.Dh, GT * a.Dh, 1, TP_F32, k->data, a.Dh,
                         a.S * a.Dh, p, TP_F32, a.S, GT * a.S, GT, a.S, a.Dh, BK, a.scale, 0.0f));
    int64_t np = BK * GT * a.S;
    k_probs<<<tp_cu_blocks(np), TP_CU_THREADS, 0, tp_cu_stream>>>(
        p, (const float *)n->saved[0]->data, a, G);
    CUDA_LAUNCH_CHECK(ctx, "attention backward probs");
    if (gv) /* dV += P^T dO */
        TP_TRY(tp_cu_gemm_dt(ctx, 1, TP_F32, p, a.S, GT * a.S, 0, TP_F32, dO, a.Dh, GT * a.Dh,
                             gv->data, TP_F32, a.Dh, a.S * a.Dh, a.S, a.Dh, GT, BK, 1.0f, 1.0f));
    if (!gq && !gk) return TP_OK;
    tp_tensor *dPt = tp_ctx_scratch(ctx, TP_F32, 3, psh);
    if (!dPt) return ctx->status;
    float *dp = (float *)dPt->data;
    /* dP = dO V^T; dS = P * (dP - rowsum(P dP)) */
    TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, dO, a.Dh, GT * a.Dh, 1, TP_F32, v->data, a.Dh, a.S * a.Dh,
                         dp, TP_F32, a.S, GT * a.S, GT, a.S, a.Dh, BK, 1.0f, 0.0f));
    int64_t rows = BK * GT;
    k_dsoftmax<<<tp_cu_blocks(rows * 32), TP_CU_THREADS, 0, tp_cu_stream>>>(p, dp, rows, a.S);
    CUDA_LAUNCH_CHECK(ctx, "attention backward dsoftmax");
    if (gq) /* dQ += scale * dS K */
        TP_TRY(tp_cu_gemm_dt(ctx, 0, TP_F32, dp, a.S, GT * a.S, 0, TP_F32, k->data, a.Dh,
                             a.S * a.Dh, gq->data, TP_F32, a.Dh, GT * a.Dh, GT, a.Dh, a.S, BK,
                             a.scale, 1.0f));
    if (gk) /* dK += scale * dS^T Q */
        TP_TRY(tp_cu_gemm_dt(ctx, 1, TP_F32, dp, a.S, GT * a.S, 0, TP_F32, q->data, a.Dh, GT * a.Dh,
                             gk->data, TP_F32, a.Dh, a.S * a.Dh, a.S, a.Dh, GT, BK, a.scale, 1.0f));
    return TP_OK;
}
