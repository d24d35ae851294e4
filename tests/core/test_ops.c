/* test_ops.c — the ggml-style op table: each case builds one op (often on a transposed or
 * sliced view, with odd sizes) from random leaves, checks the forward against a naive double
 * reference, and the backward against central finite differences of the loss
 * L = sum(out * R) (R a fixed random projection). The measured normalised errors are printed
 * per case; argv[1] filters by op name. Error measure: max |x - ref| / max(max |ref|, 1). */
/* the case table leaves trailing fields (eps, ip, fp) to their zero defaults */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/ops.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

#define MAXIN 4
#define MAXEL 4096

typedef struct tcase tcase;
struct tcase {
    const char *op, *desc;
    int n_in;
    int ndim[MAXIN];
    int64_t shape[MAXIN][4];
    int grad[MAXIN]; /* check grad of this input */
    float scale;     /* input std (0: 1) */
    tp_tensor *(*build)(tp_ctx *c, tp_tensor **x, const tcase *tc);
    /* reference: inputs as double arrays; writes out (numel known from the forward) */
    void (*ref)(const tcase *tc, double **x, double *out);
    double fwd_tol, grad_tol;
    double eps; /* finite-difference step (0: 1e-2) */
    int ip[8];  /* op parameters; ip[6], ip[7]: dims of a view transpose */
    float fp[2];
};

static int64_t nel(const tcase *tc, int i) {
    int64_t n = 1;
    for (int d = 0; d < tc->ndim[i]; d++) n *= tc->shape[i][d];
    return n;
}

/* ---- harness ---- */
static float g_data[MAXIN][MAXEL];

static void make_data(const tcase *tc) {
    tp_rng r = {1234, (uint64_t)(uintptr_t)tc->desc[0], 0};
    for (int i = 0; i < tc->n_in; i++)
        for (int64_t k = 0; k < nel(tc, i); k++)
            g_data[i][k] = tp_rng_normal(&r) * (tc->scale ? tc->scale : 1.0f);
}

static tp_tensor *forward(tp_ctx *c, const tcase *tc, tp_tensor **x, int want_grad) {
    for (int i = 0; i < tc->n_in; i++) {
        x[i] = tp_from_f32(c, tc->ndim[i], tc->shape[i], g_data[i]);
        if (want_grad && tc->grad[i]) tp_requires_grad(c, x[i]);
    }
    return tc->build(c, x, tc);
}

static double proj_loss(const tp_tensor *out, const float *R) {
    double s = 0;
    for (int64_t k = 0; k < tp_numel(out); k++) s += tp_item(out, k) * R[k];
    return s;
}

static void run_case(const tcase *tc) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *x[MAXIN] = {0};
    make_data(tc);
    tp_tensor *out = forward(c, tc, x, 0);
    TP_CHECKF(out != NULL, "%s %s: forward failed: %s", tc->op, tc->desc, tp_ctx_error(c));
    if (!out) {
        tp_ctx_free(c);
        return;
    }
    int64_t no = tp_numel(out);
    /* forward vs reference */
    double fe = 0;
    if (tc->ref) {
        double *xin[MAXIN], *ref = calloc((size_t)no, sizeof(double));
        for (int i = 0; i < tc->n_in; i++) {
            xin[i] = malloc(sizeof(double) * (size_t)nel(tc, i));
            for (int64_t k = 0; k < nel(tc, i); k++) xin[i][k] = g_data[i][k];
        }
        tc->ref(tc, xin, ref);
        double mx = 1, md = 0;
        for (int64_t k = 0; k < no; k++) {
            mx = fmax(mx, fabs(ref[k]));
            md = fmax(md, fabs(tp_item(out, k) - ref[k]));
        }
        fe = md / mx;
        for (int i = 0; i < tc->n_in; i++) free(xin[i]);
        free(ref);
        TP_CHECKF(fe <= tc->fwd_tol, "%s %s: forward error %.3g > %.3g", tc->op, tc->desc, fe,
                  tc->fwd_tol);
    }
    /* backward vs central differences */
    double ge = 0;
    int any = 0;
    for (int i = 0; i < tc->n_in; i++) any |= tc->grad[i];
    if (any) {
        float *R = malloc(sizeof(float) * (size_t)no);
        tp_rng r = {99, 7, 0};
        for (int64_t k = 0; k < no; k++) R[k] = tp_rng_normal(&r);
        tp_ctx_reset(c);
        out = forward(c, tc, x, 1);
        tp_tensor *Rt = tp_from_f32(c, out ? out->ndim : 1, out ? out->shape : (int64_t[]){1}, R);
        tp_tensor *loss = tp_sum_all(c, tp_mul(c, out, Rt));
        tp_status s = tp_backward(c, loss, NULL);
        TP_CHECKF(s == TP_OK, "%s %s: backward failed: %s", tc->op, tc->desc, tp_ctx_error(c));
        if (s == TP_OK) {
            double eps = tc->eps ? tc->eps : 1e-2;
            tp_ctx *c2 = tp_ctx_new(TP_CPU);
            for (int i = 0; i < tc->n_in; i++) {
                if (!tc->grad[i]) continue;
                TP_CHECKF(x[i]->grad != NULL, "%s: input %d got no grad", tc->op, i);
                if (!x[i]->grad) continue;
                double mx = 1e-3, md = 0;
                for (int64_t k = 0; k < nel(tc, i); k++) {
                    float keep = g_data[i][k];
                    tp_tensor *y[MAXIN];
                    g_data[i][k] = keep + (float)eps;
                    tp_ctx_reset(c2);
                    double lp = proj_loss(forward(c2, tc, y, 0), R);
                    g_data[i][k] = keep - (float)eps;
                    tp_ctx_reset(c2);
                    double lm = proj_loss(forward(c2, tc, y, 0), R);
                    g_data[i][k] = keep;
                    double num = (lp - lm) / (2 * eps), ana = tp_item(x[i]->grad, k);
                    mx = fmax(mx, fabs(num));
                    md = fmax(md, fabs(num - ana));
                }
                double e = md / mx;
                if (e > ge) ge = e;
            }
            TP_CHECKF(ge <= tc->grad_tol, "%s %s: grad error %.3g > %.3g", tc->op, tc->desc, ge,
                      tc->grad_tol);
            tp_ctx_free(c2);
        }
        free(R);
    }
    fprintf(stderr, "  %-14s %-34s fwd_err %.2e  grad_err %.2e\n", tc->op, tc->desc, fe, ge);
    tp_ctx_free(c);
}

/* ---- builders and references ---- */
#define B_(name) static tp_tensor *b_##name(tp_ctx *c, tp_tensor **x, const tcase *tc)
#define R_(name) static void r_##name(const tcase *tc, double **x, double *o)

/* add/sub/mul: a [3,5,7] transposed view (1,2) -> [3,7,5]; b [7,1] broadcast (or [5]) */
B_(add) {
    return tp_add(c, tp_transpose(c, x[0], 1, 2), x[1]);
}
B_(sub) {
    return tp_sub(c, tp_transpose(c, x[0], 1, 2), x[1]);
}
B_(mul) {
    return tp_mul(c, tp_transpose(c, x[0], 1, 2), x[1]);
}
static void r_binop(const tcase *tc, double **x, double *o, int op) {
    int64_t A = tc->shape[0][0], B = tc->shape[0][1], C = tc->shape[0][2];
    int64_t b0 = tc->shape[1][0], b1 = tc->ndim[1] == 2 ? tc->shape[1][1] : 0;
    for (int64_t i = 0; i < A; i++)
        for (int64_t j = 0; j < C; j++)
            for (int64_t k = 0; k < B; k++) {
                double a = x[0][(i * B + k) * C + j], b;
                if (tc->ndim[1] == 2)
                    b = x[1][(b0 == 1 ? 0 : j) * b1 + (b1 == 1 ? 0 : k)];
                else
                    b = x[1][b0 == 1 ? 0 : k];
                if (op == 3) b = exp(b) + 0.5;
                o[(i * C + j) * B + k] = op == 0   ? a + b
                                         : op == 1 ? a - b
                                         : op == 2 ? a * b
                                                   : a / b;
            }
}
R_(add) {
    r_binop(tc, x, o, 0);
}
R_(sub) {
    r_binop(tc, x, o, 1);
}
R_(mul) {
    r_binop(tc, x, o, 2);
}
B_(div) { /* the divisor exp(b) + 0.5 stays away from 0 */
    return tp_div(c, tp_transpose(c, x[0], 1, 2), tp_add_scalar(c, tp_exp(c, x[1]), 0.5f));
}
R_(div) {
    r_binop(tc, x, o, 3);
}

/* unary on a sliced view: x [6,9] -> slice dim 1 [2, 2+5) */
static double uref(const tcase *tc, double v) {
    const char *op = tc->op;
    if (!strcmp(op, "scale")) return v * tc->fp[0];
    if (!strcmp(op, "add_scalar")) return v + tc->fp[0];
    if (!strcmp(op, "silu")) return v / (1 + exp(-v));
    if (!strcmp(op, "tanh")) return tanh(v);
    if (!strcmp(op, "exp")) return exp(v);
    if (!strcmp(op, "ln")) return log(v * v + 0.5);
    if (!strcmp(op, "sigmoid")) return 1 / (1 + exp(-v));
    if (!strcmp(op, "relu")) return v > 0 ? v : 0;
    if (!strcmp(op, "gelu") && tc->ip[0] == 0) return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    if (!strcmp(op, "gelu"))
        return 0.5 * v * (1 + tanh(sqrt(2 / 3.141592653589793) * (v + 0.044715 * v * v * v)));
    return NAN;
}
B_(unary) {
    tp_tensor *v = tp_slice(c, x[0], 1, 2, 5);
    const char *op = tc->op;
    if (!strcmp(op, "scale")) return tp_scale(c, v, tc->fp[0]);
    if (!strcmp(op, "add_scalar")) return tp_add_scalar(c, v, tc->fp[0]);
    if (!strcmp(op, "silu")) return tp_silu(c, v);
    if (!strcmp(op, "tanh")) return tp_tanh(c, v);
    if (!strcmp(op, "exp")) return tp_exp(c, v);
    if (!strcmp(op, "ln")) return tp_ln(c, tp_add_scalar(c, tp_mul(c, v, v), 0.5f)); /* > 0 */
    if (!strcmp(op, "sigmoid")) return tp_sigmoid(c, v);
    if (!strcmp(op, "relu")) return tp_relu(c, v);
    return tp_gelu(c, v, (tp_gelu_kind)tc->ip[0]);
}
R_(unary) {
    int64_t R = tc->shape[0][0], C = tc->shape[0][1];
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < 5; j++) o[i * 5 + j] = uref(tc, x[0][i * C + 2 + j]);
}

B_(swiglu) {
    return tp_swiglu(c, x[0], tp_transpose(c, x[1], 0, 1));
}
R_(swiglu) {
    int64_t R = tc->shape[0][0], C = tc->shape[0][1];
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) {
            double g = x[0][i * C + j], u = x[1][j * R + i];
            o[i * C + j] = g / (1 + exp(-g)) * u;
        }
}

/* matmul: ta/tb from ip; a given as transposed view when ip[2] */
B_(matmul) {
    tp_tensor *a = x[0], *b = x[1];
    if (tc->ip[2]) a = tp_transpose(c, a, -1, -2);
    return tp_matmul(c, a, b, tc->ip[0], tc->ip[1]);
}
R_(matmul) {
    /* logical A: leaf a [..,r,s]; if ip[2] view-transposed; if ta transposed again */
    int nd = tc->ndim[0];
    int64_t r = tc->shape[0][nd - 2], s = tc->shape[0][nd - 1], nb = 1;
    for (int d = 0; d < nd - 2; d++) nb *= tc->shape[0][d];
    int flipA = (tc->ip[2] != 0) ^ (tc->ip[0] != 0);
    int64_t M = flipA ? s : r, K = flipA ? r : s;
    int bnd = tc->ndim[1];
    int64_t br = tc->shape[1][bnd - 2], bc = tc->shape[1][bnd - 1];
    int64_t N = tc->ip[1] ? br : bc;
    for (int64_t bi = 0; bi < nb; bi++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = flipA ? x[0][bi * r * s + k * s + i] : x[0][bi * r * s + i * s + k];
                    const double *B = x[1] + (bnd == 2 ? 0 : bi * br * bc);
                    double bv = tc->ip[1] ? B[j * bc + k] : B[k * bc + j];
                    acc += av * bv;
                }
                o[(bi * M + i) * N + j] = acc;
            }
}

B_(linear) {
    return tp_linear(c, x[0], x[1], tc->n_in > 2 ? x[2] : NULL);
}
R_(linear) {
    int64_t K = tc->shape[1][1], N = tc->shape[1][0], R = nel(tc, 0) / K;
    for (int64_t r = 0; r < R; r++)
        for (int64_t n = 0; n < N; n++) {
            double acc = tc->n_in > 2 ? x[2][n] : 0;
            for (int64_t k = 0; k < K; k++) acc += x[0][r * K + k] * x[1][n * K + k];
            o[r * N + n] = acc;
        }
}

B_(linear_add) {
    return tp_linear_add(c, x[0], x[1], x[2]);
}
R_(linear_add) {
    int64_t K = tc->shape[1][1], N = tc->shape[1][0], R = nel(tc, 0) / K;
    for (int64_t r = 0; r < R; r++)
        for (int64_t n = 0; n < N; n++) {
            double acc = x[2][r * N + n];
            for (int64_t k = 0; k < K; k++) acc += x[0][r * K + k] * x[1][n * K + k];
            o[r * N + n] = acc;
        }
}

static const int32_t g_ids[7] = {3, 0, 9, 3, 5, 9, 1};
B_(embedding) {
    return tp_embedding(c, x[0], tp_from_i32(c, 2, (int64_t[]){7, 1}, g_ids));
}
R_(embedding) {
    int64_t D = tc->shape[0][1];
    for (int i = 0; i < 7; i++)
        for (int64_t d = 0; d < D; d++) o[i * D + d] = x[0][g_ids[i] * D + d];
}

B_(rmsnorm) {
    return tp_rmsnorm(c, x[0], tc->n_in > 1 ? x[1] : NULL, 1e-5f);
}
R_(rmsnorm) {
    int64_t D = tc->shape[0][tc->ndim[0] - 1], R = nel(tc, 0) / D;
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += x[0][r * D + d] * x[0][r * D + d];
        double rs = 1 / sqrt(ss / D + 1e-5);
        for (int64_t d = 0; d < D; d++)
            o[r * D + d] = x[0][r * D + d] * rs * (tc->n_in > 1 ? x[1][d] : 1);
    }
}

B_(layernorm) {
    return tp_layernorm(c, x[0], x[1], x[2], 1e-5f);
}
R_(layernorm) {
    int64_t D = tc->shape[0][tc->ndim[0] - 1], R = nel(tc, 0) / D;
    for (int64_t r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int64_t d = 0; d < D; d++) m += x[0][r * D + d];
        m /= D;
        for (int64_t d = 0; d < D; d++) v += (x[0][r * D + d] - m) * (x[0][r * D + d] - m);
        v /= D;
        for (int64_t d = 0; d < D; d++)
            o[r * D + d] = (x[0][r * D + d] - m) / sqrt(v + 1e-5) * x[1][d] + x[2][d];
    }
}

B_(l2norm) {
    return tp_l2_normalize(c, x[0], 1e-6f);
}
R_(l2norm) {
    int64_t D = tc->shape[0][tc->ndim[0] - 1], R = nel(tc, 0) / D;
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += x[0][r * D + d] * x[0][r * D + d];
        for (int64_t d = 0; d < D; d++) o[r * D + d] = x[0][r * D + d] / fmax(sqrt(ss), 1e-6);
    }
}

B_(cosine) {
    return tp_cosine_matrix(c, x[0], x[1], 1e-8f);
}
R_(cosine) {
    int64_t N = tc->shape[0][0], P = tc->shape[1][0], D = tc->shape[0][1];
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < P; j++) {
            double ab = 0, aa = 0, bb = 0;
            for (int64_t d = 0; d < D; d++) {
                ab += x[0][i * D + d] * x[1][j * D + d];
                aa += x[0][i * D + d] * x[0][i * D + d];
                bb += x[1][j * D + d] * x[1][j * D + d];
            }
            o[i * P + j] = ab / (sqrt(aa) * sqrt(bb));
        }
}

/* softmax/log_softmax on a transposed view of [7,3,5] -> [7,5,3] */
B_(softmax) {
    tp_tensor *v = tp_transpose(c, x[0], 1, 2);
    return tc->ip[0] ? tp_log_softmax(c, v) : tp_softmax(c, v);
}
R_(softmax) {
    int64_t A = tc->shape[0][0], B = tc->shape[0][1], C = tc->shape[0][2];
    for (int64_t i = 0; i < A; i++)
        for (int64_t j = 0; j < C; j++) {
            double mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < B; k++) mx = fmax(mx, x[0][(i * B + k) * C + j]);
            for (int64_t k = 0; k < B; k++) s += exp(x[0][(i * B + k) * C + j] - mx);
            for (int64_t k = 0; k < B; k++) {
                double lp = x[0][(i * B + k) * C + j] - mx - log(s);
                o[(i * C + j) * B + k] = tc->ip[0] ? lp : exp(lp);
            }
        }
}

/* rope: x [B,H,T,Dh], positions per row (left padding style) */
static const int32_t g_pos[2 * 5] = {0, 1, 2, 3, 4, 7, 8, 9, 100, 4096};
static tp_rope_cfg g_rope;
B_(rope) {
    tp_rope_init(&g_rope, (int)tc->shape[0][3], tc->ip[0] ? 500000.0 : 10000.0, tc->ip[0], 8.0, 1.0,
                 4.0, 64);
    return tp_rope(c, x[0], tp_from_i32(c, 2, (int64_t[]){2, 5}, g_pos), &g_rope);
}
R_(rope) {
    int64_t B = tc->shape[0][0], H = tc->shape[0][1], T = tc->shape[0][2], Dh = tc->shape[0][3];
    int64_t hf = Dh / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t i = 0; i < hf; i++) {
                    double ang = (double)g_pos[b * T + t] * g_rope.inv_freq[i];
                    const double *xr = x[0] + ((b * H + h) * T + t) * Dh;
                    double *orow = o + ((b * H + h) * T + t) * Dh;
                    orow[i] = xr[i] * cos(ang) - xr[i + hf] * sin(ang);
                    orow[i + hf] = xr[i + hf] * cos(ang) + xr[i] * sin(ang);
                }
}

/* attention: ip = {causal, q_offset, window, use_mask}; q [B,H,T,Dh], k,v [B,Hkv,S,Dh] */
static const float g_kmask[2 * 6] = {1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1};
B_(attention) {
    tp_attn_cfg cfg = {tc->ip[0], tc->ip[1], tc->ip[2], 0};
    tp_tensor *m = NULL;
    if (tc->ip[3]) m = tp_from_f32(c, 2, (int64_t[]){2, tc->shape[1][2]}, g_kmask);
    return tp_attention(c, x[0], x[1], x[2], m, &cfg);
}
R_(attention) {
    int64_t B = tc->shape[0][0], H = tc->shape[0][1], T = tc->shape[0][2], Dh = tc->shape[0][3];
    int64_t Hk = tc->shape[1][1], S = tc->shape[1][2];
    double sc = 1 / sqrt((double)Dh), p[64];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                const double *q = x[0] + ((b * H + h) * T + t) * Dh;
                const double *k = x[1] + (b * Hk + h / (H / Hk)) * S * Dh;
                const double *v = x[2] + (b * Hk + h / (H / Hk)) * S * Dh;
                double mx = -INFINITY, sum = 0;
                int64_t qp = t + tc->ip[1];
                for (int64_t s = 0; s < S; s++) {
                    int vis = (!tc->ip[3] || g_kmask[b * S + s] != 0) && (!tc->ip[0] || s <= qp) &&
                              (tc->ip[2] <= 0 || qp - s < tc->ip[2]);
                    p[s] = -INFINITY;
                    if (!vis) continue;
                    double d = 0;
                    for (int64_t i = 0; i < Dh; i++) d += q[i] * k[s * Dh + i];
                    p[s] = d * sc;
                    mx = fmax(mx, p[s]);
                }
                double *orow = o + ((b * H + h) * T + t) * Dh;
                for (int64_t i = 0; i < Dh; i++) orow[i] = 0;
                if (mx == -INFINITY) continue;
                for (int64_t s = 0; s < S; s++) sum += p[s] == -INFINITY ? 0 : exp(p[s] - mx);
                for (int64_t s = 0; s < S; s++) {
                    if (p[s] == -INFINITY) continue;
                    double w = exp(p[s] - mx) / sum;
                    for (int64_t i = 0; i < Dh; i++) orow[i] += w * v[s * Dh + i];
                }
            }
}

/* cross-entropy: logits [6,7] via a slice of [6,9]; targets with one ignored */
static const int32_t g_tgt[6] = {2, -100, 6, 0, 3, 3};
B_(ce) {
    tp_tensor *l = tp_slice(c, x[0], 1, 1, 7);
    return tp_cross_entropy(c, l, tp_from_i32(c, 1, (int64_t[]){6}, g_tgt), -100, tc->fp[0]);
}
R_(ce) {
    double tot = 0;
    int cnt = 0;
    for (int r = 0; r < 6; r++) {
        if (g_tgt[r] == -100) continue;
        const double *l = x[0] + r * 9 + 1;
        double mx = -INFINITY, s = 0, mean = 0;
        for (int v = 0; v < 7; v++) mx = fmax(mx, l[v]);
        for (int v = 0; v < 7; v++) s += exp(l[v] - mx), mean += l[v] / 7;
        double lse = mx + log(s);
        tot += (1 - tc->fp[0]) * (lse - l[g_tgt[r]]) + tc->fp[0] * (lse - mean);
        cnt++;
    }
    o[0] = tot / cnt;
}

B_(mse) {
    return tp_mse(c, x[0], x[1]);
}
R_(mse) {
    double s = 0;
    for (int64_t k = 0; k < nel(tc, 0); k++) s += (x[0][k] - x[1][k]) * (x[0][k] - x[1][k]);
    o[0] = s / (double)nel(tc, 0);
}

/* sum/mean over dim ip[0] with keepdim ip[1] (ip[2]: mean) of a [3,4,5] transposed (0,2) view */
B_(sum) {
    tp_tensor *v = tp_transpose(c, x[0], 0, 2);
    return tc->ip[2] ? tp_mean(c, v, tc->ip[0], tc->ip[1]) : tp_sum(c, v, tc->ip[0], tc->ip[1]);
}
R_(sum) {
    /* view shape [5,4,3]: element (i,j,k) = leaf (k,j,i) */
    int64_t A = 5, B = 4, C = 3, sh[3] = {5, 4, 3};
    int d = tc->ip[0];
    memset(o, 0, sizeof(double) * (size_t)(60 / sh[d]));
    for (int64_t i = 0; i < A; i++)
        for (int64_t j = 0; j < B; j++)
            for (int64_t k = 0; k < C; k++) {
                int64_t idx[3] = {i, j, k}, oi = 0;
                for (int e = 0; e < 3; e++)
                    if (e != d) oi = oi * sh[e] + idx[e];
                o[oi] += x[0][(k * 4 + j) * 5 + i] / (tc->ip[2] ? (double)sh[d] : 1.0);
            }
}
B_(sum_all) {
    return tc->ip[2] ? tp_mean_all(c, x[0]) : tp_sum_all(c, x[0]);
}
R_(sum_all) {
    double s = 0;
    for (int64_t k = 0; k < nel(tc, 0); k++) s += x[0][k];
    o[0] = tc->ip[2] ? s / (double)nel(tc, 0) : s;
}

static const float g_pmask[3 * 4] = {1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1};
B_(pool) {
    tp_tensor *m = tc->ip[1] ? tp_from_f32(c, 2, (int64_t[]){3, 4}, g_pmask) : NULL;
    return tp_pool(c, x[0], m, (tp_pool_kind)tc->ip[0]);
}
R_(pool) {
    int64_t B = 3, T = 4, D = tc->shape[0][2];
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) {
            double s = 0, w = 0, mx = -INFINITY;
            for (int64_t t = 0; t < T; t++) {
                double m = tc->ip[1] ? g_pmask[b * T + t] : 1;
                double v = x[0][(b * T + t) * D + d];
                s += m * v;
                w += m;
                if (m != 0) mx = fmax(mx, v);
            }
            o[b * D + d] = tc->ip[0] == 0   ? (w ? s / w : 0)
                           : tc->ip[0] == 1 ? s
                                            : (mx == -INFINITY ? 0 : mx);
        }
}

B_(concat) {
    tp_tensor *ts[3] = {x[0], tp_transpose(c, x[1], 0, 1), x[2]};
    return tp_concat(c, ts, 3, 1);
}
R_(concat) {
    int64_t R = tc->shape[0][0], c0 = tc->shape[0][1], c1 = tc->shape[1][0], c2 = tc->shape[2][1];
    int64_t W = c0 + c1 + c2;
    for (int64_t r = 0; r < R; r++) {
        for (int64_t j = 0; j < c0; j++) o[r * W + j] = x[0][r * c0 + j];
        for (int64_t j = 0; j < c1; j++) o[r * W + c0 + j] = x[1][j * R + r];
        for (int64_t j = 0; j < c2; j++) o[r * W + c0 + c1 + j] = x[2][r * c2 + j];
    }
}

/* reshape of a transposed view (forces a copy) then a slice */
B_(reshape) {
    tp_tensor *v = tp_reshape(c, tp_transpose(c, x[0], 0, 1), 2, (int64_t[]){-1, 3});
    return tp_slice(c, v, 0, 1, 4);
}
R_(reshape) {
    int64_t R = tc->shape[0][0], C = tc->shape[0][1];
    /* transposed [C,R] flattened row-major, viewed [-1,3], rows 1..4 */
    for (int64_t k = 0; k < 12; k++) {
        int64_t f = 3 + k, i = f / R, j = f % R;
        o[k] = x[0][j * C + i];
    }
}

B_(cast) {
    return tp_cast(c, tp_cast(c, x[0], tc->ip[0] ? TP_F16 : TP_BF16), TP_F32);
}
R_(cast) {
    for (int64_t k = 0; k < nel(tc, 0); k++)
        o[k] = tc->ip[0] ? tp_f16_to_f32(tp_f32_to_f16((float)x[0][k]))
                         : tp_bf16_to_f32(tp_f32_to_bf16((float)x[0][k]));
}

B_(dropout) {
    tp_rng r = {77, 3, 5};
    return tp_dropout(c, x[0], tc->fp[0], &r);
}

B_(vq) {
    return tp_vq_nearest(c, x[0], x[1], (tp_vq_dist)tc->ip[0], NULL);
}
R_(vq) {
    int64_t N = tc->shape[0][0], D = tc->shape[0][1], K = tc->shape[1][0];
    for (int64_t i = 0; i < N; i++) {
        int64_t best = 0;
        double bv = INFINITY;
        for (int64_t k = 0; k < K; k++) {
            double dist = 0, dot = 0, zn = 0, cn = 0;
            for (int64_t d = 0; d < D; d++) {
                double z = x[0][i * D + d], cc = x[1][k * D + d];
                dist += (z - cc) * (z - cc);
                dot += z * cc, zn += z * z, cn += cc * cc;
            }
            double v = tc->ip[0] ? -dot / sqrt(zn * cn) : dist;
            if (v < bv) bv = v, best = k;
        }
        for (int64_t d = 0; d < D; d++) o[i * D + d] = x[1][best * D + d];
    }
}

/* ---- view variants: the leaf is transposed (d0, d1) before the op; the reference runs the
 * plain reference on the materialised transpose ---- */
static double *transposed(const tcase *tc, int i, const double *src, int d0, int d1,
                          int64_t vshape[4]) {
    int nd = tc->ndim[i];
    int64_t sh[4] = {1, 1, 1, 1}, st[4], vst[4];
    for (int d = 0; d < nd; d++) sh[d] = tc->shape[i][d];
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) st[d] = s, s *= sh[d];
    memcpy(vshape, sh, sizeof sh);
    vshape[d0] = sh[d1], vshape[d1] = sh[d0];
    s = 1;
    for (int d = nd - 1; d >= 0; d--) vst[d] = s, s *= vshape[d];
    double *dst = malloc(sizeof(double) * (size_t)s);
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t e = 0; e < sh[3]; e++) {
                    int64_t idx[4] = {a, b, c, e}, v[4] = {a, b, c, e};
                    v[d0] = idx[d1], v[d1] = idx[d0];
                    int64_t so = 0, vo = 0;
                    for (int d = 0; d < nd; d++) so += idx[d] * st[d], vo += v[d] * vst[d];
                    dst[vo] = src[so];
                }
    return dst;
}

static void ref_on_view(const tcase *tc, double **x, double *o,
                        void (*ref)(const tcase *, double **, double *)) {
    tcase t2 = *tc;
    double *xs[MAXIN];
    for (int i = 0; i < tc->n_in; i++) xs[i] = x[i];
    xs[0] = transposed(tc, 0, x[0], tc->ip[6], tc->ip[7], t2.shape[0]);
    ref(&t2, xs, o);
    free(xs[0]);
}

B_(rmsnorm_view) {
    return tp_rmsnorm(c, tp_transpose(c, x[0], tc->ip[6], tc->ip[7]), x[1], 1e-5f);
}
R_(rmsnorm_view) {
    ref_on_view(tc, x, o, r_rmsnorm);
}
B_(layernorm_view) {
    return tp_layernorm(c, tp_transpose(c, x[0], tc->ip[6], tc->ip[7]), x[1], x[2], 1e-5f);
}
R_(layernorm_view) {
    ref_on_view(tc, x, o, r_layernorm);
}
B_(attention_view) { /* q leaf [B,T,H,Dh] as the transformer makes it, viewed [B,H,T,Dh] */
    tp_attn_cfg cfg = {tc->ip[0], tc->ip[1], tc->ip[2], 0};
    return tp_attention(c, tp_transpose(c, x[0], 1, 2), x[1], x[2], NULL, &cfg);
}
R_(attention_view) {
    tcase t2 = *tc;
    double *xs[3] = {NULL, x[1], x[2]};
    xs[0] = transposed(tc, 0, x[0], 1, 2, t2.shape[0]);
    r_attention(&t2, xs, o);
    free(xs[0]);
}

static const tcase g_cases[] = {
    // clang-format off
    {"add", "[3,5,7]^T(1,2) + [7,1]", 2, {3, 2}, {{3, 5, 7}, {7, 1}}, {1, 1}, 0, b_add, r_add, 1e-6, 1e-3},
    {"add", "[3,5,7]^T(1,2) + [5]", 2, {3, 1}, {{3, 5, 7}, {5}}, {1, 1}, 0, b_add, r_add, 1e-6, 1e-3},
    {"sub", "[3,5,7]^T(1,2) - [7,5]", 2, {3, 2}, {{3, 5, 7}, {7, 5}}, {1, 1}, 0, b_sub, r_sub, 1e-6, 1e-3},
    {"mul", "[3,5,7]^T(1,2) * [1,5]", 2, {3, 2}, {{3, 5, 7}, {1, 5}}, {1, 1}, 0, b_mul, r_mul, 1e-6, 1e-3},
    {"scale", "slice [6,9]", 1, {2}, {{6, 9}}, {1}, 0, b_unary, r_unary, 1e-6, 1e-3, 0, {0}, {-1.7f}},
    {"add_scalar", "slice [6,9]", 1, {2}, {{6, 9}}, {1}, 0, b_unary, r_unary, 1e-6, 1e-3, 0, {0}, {0.3f}},
    {"silu", "slice [6,9]", 1, {2}, {{6, 9}}, {1}, 2, b_unary, r_unary, 1e-5, 1e-3},
    {"tanh", "slice [6,9]", 1, {2}, {{6, 9}}, {1}, 0, b_unary, r_unary, 1e-5, 1e-3},
    {"gelu", "erf, slice [6,9]", 1, {2}, {{6, 9}}, {1}, 2, b_unary, r_unary, 1e-5, 1e-3, 0, {0}},
    {"gelu", "tanh, slice [6,9]", 1, {2}, {{6, 9}}, {1}, 2, b_unary, r_unary, 1e-5, 1e-3, 0, {1}},
    {"exp", "slice [6,9]", 1, {2}, {{6, 9}}, {1}, 0, b_unary, r_unary, 1e-6, 1e-3},
    {"ln", "of x^2+0.5, slice [6,9]", 1, {2}, {{6, 9}}, {1}, 0, b_unary, r_unary, 1e-6, 1e-3, 1e-3},
    {"sigmoid", "slice [6,9]", 1, {2}, {{6, 9}}, {1}, 2, b_unary, r_unary, 1e-6, 1e-3},
    {"relu", "slice [6,9] (eps 1e-3)", 1, {2}, {{6, 9}}, {1}, 0, b_unary, r_unary, 0, 1e-3, 1e-3},
    {"div", "[3,5,7]^T(1,2) / (exp([7,1])+0.5)", 2, {3, 2}, {{3, 5, 7}, {7, 1}}, {1, 1}, 0, b_div, r_div, 1e-6, 1e-3},
    {"swiglu", "[5,7] * [7,5]^T", 2, {2, 2}, {{5, 7}, {7, 5}}, {1, 1}, 0, b_swiglu, r_swiglu, 1e-5, 1e-3},
    {"matmul", "[2,3,5,7] @ [2,3,7,4]", 2, {4, 4}, {{2, 3, 5, 7}, {2, 3, 7, 4}}, {1, 1}, 0, b_matmul, r_matmul, 1e-5, 1e-3},
    {"matmul", "[3,5,7] @ [4,7]^T tb", 2, {3, 2}, {{3, 5, 7}, {4, 7}}, {1, 1}, 0, b_matmul, r_matmul, 1e-5, 1e-3, 0, {0, 1, 0}},
    {"matmul", "[7,5]^T ta @ [7,3]", 2, {2, 2}, {{7, 5}, {7, 3}}, {1, 1}, 0, b_matmul, r_matmul, 1e-5, 1e-3, 0, {1, 0, 0}},
    {"matmul", "view[5,7]^T @ [5,3]", 2, {2, 2}, {{5, 7}, {5, 3}}, {1, 1}, 0, b_matmul, r_matmul, 1e-5, 1e-3, 0, {0, 0, 1}},
    {"matmul", "ta+view+tb [2,6,5]", 2, {3, 3}, {{2, 6, 5}, {2, 3, 5}}, {1, 1}, 0, b_matmul, r_matmul, 1e-5, 1e-3, 0, {1, 1, 1}},
    {"linear", "[2,3,5] w[4,5] b[4]", 3, {3, 2, 1}, {{2, 3, 5}, {4, 5}, {4}}, {1, 1, 1}, 0, b_linear, r_linear, 1e-5, 1e-3},
    {"linear", "[3,5] w[4,5] no bias", 2, {2, 2}, {{3, 5}, {4, 5}}, {1, 1}, 0, b_linear, r_linear, 1e-5, 1e-3},
    {"linear_add", "[2,3,5] w[4,5] + r[2,3,4]", 3, {3, 2, 3}, {{2, 3, 5}, {4, 5}, {2, 3, 4}}, {1, 1, 1}, 0, b_linear_add, r_linear_add, 1e-5, 1e-3},
    {"embedding", "[11,6] ids[7,1]", 1, {2}, {{11, 6}}, {1}, 0, b_embedding, r_embedding, 0, 1e-3},
    {"rmsnorm", "[3,2,13] w[13]", 2, {3, 1}, {{3, 2, 13}, {13}}, {1, 1}, 0, b_rmsnorm, r_rmsnorm, 1e-5, 2e-3, 1e-3},
    {"rmsnorm", "[4,9] no w", 1, {2}, {{4, 9}}, {1}, 0, b_rmsnorm, r_rmsnorm, 1e-5, 2e-3, 1e-3},
    {"rmsnorm", "[13,4]^T w[13]", 2, {2, 1}, {{13, 4}, {13}}, {1, 1}, 0, b_rmsnorm_view, r_rmsnorm_view, 1e-5, 2e-3, 1e-3, {0, 0, 0, 0, 0, 0, 0, 1}},
    {"layernorm", "[2,9,3]^T(1,2)", 3, {3, 1, 1}, {{2, 9, 3}, {9}, {9}}, {1, 1, 1}, 0, b_layernorm_view, r_layernorm_view, 1e-5, 2e-3, 1e-3, {0, 0, 0, 0, 0, 0, 1, 2}},
    {"attention", "q as [B,T,H,Dh]^T(1,2), causal", 3, {4, 4, 4}, {{2, 5, 4, 6}, {2, 2, 5, 6}, {2, 2, 5, 6}}, {1, 1, 1}, 0, b_attention_view, r_attention_view, 1e-5, 2e-3, 0, {1, 0, 0, 0}},
    {"layernorm", "[5,11] w b", 3, {2, 1, 1}, {{5, 11}, {11}, {11}}, {1, 1, 1}, 0, b_layernorm, r_layernorm, 1e-5, 2e-3, 1e-3},
    {"l2norm", "[5,7]", 1, {2}, {{5, 7}}, {1}, 0, b_l2norm, r_l2norm, 1e-6, 2e-3, 1e-3},
    {"cosine", "[4,6] x [5,6]", 2, {2, 2}, {{4, 6}, {5, 6}}, {1, 1}, 0, b_cosine, r_cosine, 1e-5, 2e-3, 1e-3},
    {"softmax", "[7,3,5]^T(1,2)", 1, {3}, {{7, 3, 5}}, {1}, 0, b_softmax, r_softmax, 1e-6, 1e-3},
    {"log_softmax", "[7,3,5]^T(1,2)", 1, {3}, {{7, 3, 5}}, {1}, 0, b_softmax, r_softmax, 1e-6, 1e-3, 0, {1}},
    {"rope", "[2,3,5,8] theta 1e4", 1, {4}, {{2, 3, 5, 8}}, {1}, 0, b_rope, r_rope, 1e-5, 1e-3},
    {"rope", "[2,2,5,16] llama3 scaling", 1, {4}, {{2, 2, 5, 16}}, {1}, 0, b_rope, r_rope, 1e-5, 1e-3, 0, {1}},
    {"attention", "GQA 4/2 causal", 3, {4, 4, 4}, {{2, 4, 5, 6}, {2, 2, 5, 6}, {2, 2, 5, 6}}, {1, 1, 1}, 0, b_attention, r_attention, 1e-5, 2e-3, 0, {1, 0, 0, 0}},
    {"attention", "mask+causal+q_offset", 3, {4, 4, 4}, {{2, 2, 3, 4}, {2, 1, 6, 4}, {2, 1, 6, 4}}, {1, 1, 1}, 0, b_attention, r_attention, 1e-5, 2e-3, 0, {1, 3, 0, 1}},
    {"attention", "window 2 + empty rows", 3, {4, 4, 4}, {{2, 3, 6, 5}, {2, 3, 6, 5}, {2, 3, 6, 5}}, {1, 1, 1}, 0, b_attention, r_attention, 1e-5, 2e-3, 0, {1, 0, 2, 1}},
    {"attention", "no mask, T!=S", 3, {4, 4, 4}, {{1, 2, 3, 7}, {1, 2, 5, 7}, {1, 2, 5, 7}}, {1, 1, 1}, 0, b_attention, r_attention, 1e-5, 2e-3, 0, {0, 0, 0, 0}},
    {"cross_entropy", "[6,9] slice, ignore", 1, {2}, {{6, 9}}, {1}, 0, b_ce, r_ce, 1e-6, 1e-3},
    {"cross_entropy", "smoothing 0.1", 1, {2}, {{6, 9}}, {1}, 0, b_ce, r_ce, 1e-6, 1e-3, 0, {0}, {0.1f}},
    {"mse", "[3,7]", 2, {2, 2}, {{3, 7}, {3, 7}}, {1, 1}, 0, b_mse, r_mse, 1e-6, 1e-3},
    {"sum", "dim 1 of [5,4,3] view", 1, {3}, {{3, 4, 5}}, {1}, 0, b_sum, r_sum, 1e-6, 1e-3, 0, {1, 0, 0}},
    {"mean", "dim 0 keepdim", 1, {3}, {{3, 4, 5}}, {1}, 0, b_sum, r_sum, 1e-6, 1e-3, 0, {0, 1, 1}},
    {"sum", "dim 2", 1, {3}, {{3, 4, 5}}, {1}, 0, b_sum, r_sum, 1e-6, 1e-3, 0, {2, 0, 0}},
    {"sum_all", "[3,5]", 1, {2}, {{3, 5}}, {1}, 0, b_sum_all, r_sum_all, 1e-6, 1e-3},
    {"mean_all", "[3,5]", 1, {2}, {{3, 5}}, {1}, 0, b_sum_all, r_sum_all, 1e-6, 1e-3, 0, {0, 0, 1}},
    {"pool", "mean masked", 1, {3}, {{3, 4, 5}}, {1}, 0, b_pool, r_pool, 1e-6, 1e-3, 0, {0, 1}},
    {"pool", "sum masked", 1, {3}, {{3, 4, 5}}, {1}, 0, b_pool, r_pool, 1e-6, 1e-3, 0, {1, 1}},
    {"pool", "max masked", 1, {3}, {{3, 4, 5}}, {1}, 0, b_pool, r_pool, 1e-6, 1e-3, 1e-3, {2, 1}},
    {"pool", "mean no mask", 1, {3}, {{3, 4, 5}}, {1}, 0, b_pool, r_pool, 1e-6, 1e-3, 0, {0, 0}},
    {"concat", "3 inputs, one view", 3, {2, 2, 2}, {{3, 2}, {4, 3}, {3, 5}}, {1, 1, 1}, 0, b_concat, r_concat, 0, 1e-3},
    {"reshape", "of transposed + slice", 1, {2}, {{5, 3}}, {1}, 0, b_reshape, r_reshape, 0, 1e-3},
    {"cast", "f32->bf16->f32 (eps 0.25)", 1, {2}, {{4, 5}}, {1}, 0, b_cast, r_cast, 0, 4e-2, 0.25},
    {"cast", "f32->f16->f32 (eps 0.05)", 1, {2}, {{4, 5}}, {1}, 0, b_cast, r_cast, 0, 1e-2, 0.05, {1}},
    {"dropout", "p=0.3 [6,7]", 1, {2}, {{6, 7}}, {1}, 0, b_dropout, NULL, 0, 1e-3, 0, {0}, {0.3f}},
    {"vq", "l2 [5,4] K=6", 2, {2, 2}, {{5, 4}, {6, 4}}, {0, 0}, 0, b_vq, r_vq, 0, 0},
    {"vq", "cosine [5,4] K=6", 2, {2, 2}, {{5, 4}, {6, 4}}, {0, 0}, 0, b_vq, r_vq, 0, 0, 0, {1}},
    // clang-format on
};

static const char *g_filter;

/* With a CUDA backend registered, every case also runs on the GPU: forward and input grads are
 * compared with the CPU reference (normalised max error <= 1e-4 in f32). An op the backend does
 * not support (TP_EUNSUP) is listed as such, not failed. */
static void cuda_compare(const tcase *tc) {
    tp_ctx *cc = tp_ctx_new(TP_CPU), *gc = tp_ctx_new(TP_CUDA);
    tp_tensor *xc[MAXIN], *xg[MAXIN];
    make_data(tc);
    tp_tensor *oc = forward(cc, tc, xc, 1), *og = forward(gc, tc, xg, 1);
    if (!og && tp_ctx_status(gc) == TP_EUNSUP) { /* ggml habit: listed, not failed */
        fprintf(stderr, "  cuda %-14s %-34s not supported: %s\n", tc->op, tc->desc,
                tp_ctx_error(gc));
        tp_ctx_free(cc);
        tp_ctx_free(gc);
        return;
    }
    TP_CHECKF(og != NULL, "cuda %s %s: %s", tc->op, tc->desc, tp_ctx_error(gc));
    double fe = 0, ge = 0;
    if (oc && og) {
        double mx = 1, md = 0;
        for (int64_t k = 0; k < tp_numel(oc); k++) {
            mx = fmax(mx, fabs(tp_item(oc, k)));
            md = fmax(md, fabs(tp_item(oc, k) - tp_item(og, k)));
        }
        fe = md / mx;
        int any = (oc->flags & TP_FLAG_REQUIRES_GRAD) != 0;
        if (any && tp_backward(cc, tp_sum_all(cc, oc), NULL) == TP_OK) {
            TP_CHECKF(tp_backward(gc, tp_sum_all(gc, og), NULL) == TP_OK, "cuda %s backward: %s",
                      tc->op, tp_ctx_error(gc));
            for (int i = 0; i < tc->n_in; i++) {
                if (!tc->grad[i] || !xc[i]->grad || !xg[i]->grad) continue;
                double gm = 1, gd = 0;
                for (int64_t k = 0; k < nel(tc, i); k++) {
                    gm = fmax(gm, fabs(tp_item(xc[i]->grad, k)));
                    gd = fmax(gd, fabs(tp_item(xc[i]->grad, k) - tp_item(xg[i]->grad, k)));
                }
                ge = fmax(ge, gd / gm);
            }
        }
    }
    fprintf(stderr, "  cuda %-14s %-34s fwd_err %.2e  grad_err %.2e\n", tc->op, tc->desc, fe, ge);
    TP_CHECKF(fe <= 1e-4 && ge <= 1e-4, "cuda %s %s: fwd %.3g grad %.3g vs cpu", tc->op, tc->desc,
              fe, ge);
    tp_ctx_free(cc);
    tp_ctx_free(gc);
}

static void test_table(void) {
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++) {
        if (g_filter && strcmp(g_filter, g_cases[i].op)) continue;
        run_case(&g_cases[i]);
        if (tp_backend_get(TP_CUDA)) cuda_compare(&g_cases[i]);
    }
}

/* VQ's backward is straight-through (finite differences see a step function): dz == dq. */
static void test_vq_straight_through(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_rng r = {5, 0, 0};
    tp_tensor *z = tp_randn(c, TP_DIMS(5, 4), 1.0f, &r), *cb = tp_randn(c, TP_DIMS(6, 4), 1.0f, &r);
    tp_requires_grad(c, z);
    tp_tensor *codes = NULL;
    tp_tensor *q = tp_vq_nearest(c, z, cb, TP_VQ_L2, &codes);
    tp_tensor *w = tp_randn(c, TP_DIMS(5, 4), 1.0f, &r);
    TP_CHECK(tp_backward(c, tp_sum_all(c, tp_mul(c, q, w)), NULL) == TP_OK);
    TP_CHECK(codes && codes->dtype == TP_I32 && codes->shape[0] == 5);
    for (int64_t k = 0; z->grad && k < 20; k++)
        TP_CHECK_NEAR(tp_item(z->grad, k), tp_item(w, k), 1e-6);
    for (int64_t i = 0; codes && i < 5; i++)
        for (int d = 0; d < 4; d++)
            TP_CHECK_NEAR(tp_item(q, i * 4 + d), tp_item(cb, tp_item(codes, i) * 4 + d), 0);
    tp_ctx_free(c);
}

/* Dropout: reproducible from the rng, keeps about 1-p, scales kept values by 1/(1-p). */
static void test_dropout_stats(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *x = tp_full(c, TP_F32, TP_DIMS(100, 100), 1.0);
    tp_rng r1 = {9, 1, 0}, r2 = {9, 1, 0};
    tp_tensor *a = tp_dropout(c, x, 0.25f, &r1), *b = tp_dropout(c, x, 0.25f, &r2);
    TP_CHECK(r1.offset == 10000);
    int64_t kept = 0, same = 1;
    for (int64_t k = 0; k < 10000; k++) {
        double v = tp_item(a, k);
        kept += v != 0;
        same &= v == tp_item(b, k);
        TP_CHECK(v == 0 || fabs(v - 1 / 0.75) < 1e-6);
    }
    TP_CHECK(same);
    TP_CHECKF(fabs(kept / 1e4 - 0.75) < 0.02, "kept %lld", (long long)kept);
    tp_tensor *d = tp_dropout(c, x, 0.25f, &r1); /* next draw differs */
    int diff = 0;
    for (int64_t k = 0; k < 100; k++) diff += tp_item(d, k) != tp_item(a, k);
    TP_CHECK(diff > 0);
    tp_ctx_free(c);
}

/* Every non-view op has a CPU forward; every differentiable one a backward. */
static void test_backend_table(void) {
    const tp_backend_fns *cpu = tp_backend_cpu();
    for (int op = 0; op < TP_OP_COUNT; op++) {
        if (op == TP_OP_RESHAPE || op == TP_OP_TRANSPOSE || op == TP_OP_SLICE) continue;
        TP_CHECKF(cpu->op[op].fwd != NULL, "op %s has no cpu forward", tp_op_names[op]);
        if (op != TP_OP_ACCUM && op != TP_OP_ADAMW && op != TP_OP_SUMSQ && op != TP_OP_ARGMAX)
            TP_CHECKF(cpu->op[op].bwd != NULL, "op %s has no cpu backward", tp_op_names[op]);
    }
}

/* Grad flows through a matmul whose output feeds two consumers, and into a param (+=). */
static void test_grad_accumulates(void) {
    tp_err e = {0};
    tp_tensor *p = tp_param_alloc("w", TP_DIMS(3), &e);
    tp_fill_value(p, 2.0);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    for (int step = 0; step < 2; step++) {
        tp_ctx_reset(c);
        tp_tensor *y = tp_mul(c, p, p);                /* 4 */
        tp_tensor *l = tp_sum_all(c, tp_add(c, y, y)); /* d/dp = 4p = 8 */
        TP_CHECK(tp_backward(c, l, NULL) == TP_OK);
    }
    for (int k = 0; k < 3; k++) TP_CHECK_NEAR(tp_item(p->grad, k), 16.0, 1e-6); /* 2 steps */
    tp_param_zero_grad(p);
    TP_CHECK_NEAR(tp_item(p->grad, 0), 0.0, 0);
    /* no_grad: nothing recorded, backward refuses */
    tp_ctx_reset(c);
    int prev = tp_set_grad_enabled(c, 0);
    tp_tensor *y = tp_sum_all(c, tp_mul(c, p, p));
    TP_CHECK(prev == 1 && y && !(y->flags & TP_FLAG_REQUIRES_GRAD));
    TP_CHECK(tp_backward(c, y, NULL) == TP_ESTATE);
    tp_set_grad_enabled(c, 1);
    tp_ctx_free(c);
    tp_tensor_free(p);
}

/* backward(out, grad_out) equals backward(sum(out * grad_out)); two losses in one step add up in
 * a param's grad; an input read twice gets the sum; a param used through a transposed view
 * gets its grad routed to the base. */
static void test_backward_forms(void) {
    tp_err e = {0};
    tp_tensor *w = tp_param_alloc("w", TP_DIMS(3, 2), &e);
    tp_rng r = {4, 4, 0};
    tp_fill_normal(w, 0, 1, &r);
    float X[12], G[8], g1[6], gx1[12];
    for (int k = 0; k < 12; k++) X[k] = tp_rng_normal(&r);
    for (int k = 0; k < 8; k++) G[k] = tp_rng_normal(&r);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_tensor *x = tp_from_f32(c, TP_DIMS(4, 3), X), *go = tp_from_f32(c, TP_DIMS(4, 2), G);
    tp_requires_grad(c, x);
    TP_CHECK(tp_backward(c, tp_matmul(c, x, w, 0, 0), go) == TP_OK);
    tp_to_f32_buffer(w->grad, g1, &e);
    tp_to_f32_buffer(x->grad, gx1, &e);
    tp_param_zero_grad(w);
    tp_ctx_reset(c);
    x = tp_from_f32(c, TP_DIMS(4, 3), X);
    go = tp_from_f32(c, TP_DIMS(4, 2), G);
    tp_requires_grad(c, x);
    /* w used through a transposed view: x @ (w^T)^T == x @ w */
    tp_tensor *wt = tp_transpose(c, w, 0, 1);
    tp_tensor *l = tp_sum_all(c, tp_mul(c, tp_matmul(c, x, wt, 0, 1), go));
    TP_CHECK(tp_backward(c, l, NULL) == TP_OK);
    for (int k = 0; k < 6; k++) TP_CHECK_NEAR(tp_item(w->grad, k), g1[k], 1e-5);
    for (int k = 0; k < 12; k++) TP_CHECK_NEAR(tp_item(x->grad, k), gx1[k], 1e-5);
    /* a second loss in the same step adds to the param grad; the input grad accumulates too */
    tp_tensor *l2 = tp_sum_all(c, tp_mul(c, tp_matmul(c, x, w, 0, 0), go));
    TP_CHECK(tp_backward(c, l2, NULL) == TP_OK);
    for (int k = 0; k < 6; k++) TP_CHECK_NEAR(tp_item(w->grad, k), 2 * g1[k], 1e-5);
    for (int k = 0; k < 12; k++) TP_CHECK_NEAR(tp_item(x->grad, k), 2 * gx1[k], 1e-5);
    /* an input read twice: d/dx sum(x*x) = 2x */
    tp_ctx_reset(c);
    tp_tensor *z = tp_randn(c, TP_DIMS(5), 1.0f, &r);
    tp_requires_grad(c, z);
    TP_CHECK(tp_backward(c, tp_sum_all(c, tp_mul(c, z, z)), NULL) == TP_OK);
    for (int k = 0; k < 5; k++) TP_CHECK_NEAR(tp_item(z->grad, k), 2 * tp_item(z, k), 1e-6);
    /* detach stops the gradient */
    tp_ctx_reset(c);
    z = tp_randn(c, TP_DIMS(5), 1.0f, &r);
    tp_requires_grad(c, z);
    tp_tensor *s = tp_sum_all(c, tp_mul(c, z, tp_detach(c, z)));
    TP_CHECK(tp_backward(c, s, NULL) == TP_OK);
    for (int k = 0; k < 5; k++) TP_CHECK_NEAR(tp_item(z->grad, k), tp_item(z, k), 1e-6);
    tp_ctx_free(c);
    tp_tensor_free(w);
}

/* bf16/f16 inputs on CPU are cast to f32 on the tape: a bf16 weight in linear gives the f32
 * result of the rounded weight, an embedding table in bf16 gathers rounded rows. */
static void test_half_inputs(void) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_rng r = {8, 8, 0};
    tp_tensor *x = tp_randn(c, TP_DIMS(3, 5), 1.0f, &r), *w = tp_randn(c, TP_DIMS(4, 5), 1.0f, &r);
    tp_tensor *wb = tp_cast(c, w, TP_BF16), *wr = tp_cast(c, wb, TP_F32);
    tp_tensor *y1 = tp_linear(c, x, wb, NULL), *y2 = tp_linear(c, x, wr, NULL);
    TP_CHECK(y1 && y2 && y1->dtype == TP_F32);
    for (int64_t k = 0; y1 && y2 && k < 12; k++) TP_CHECK(tp_item(y1, k) == tp_item(y2, k));
    tp_tensor *e =
        tp_embedding(c, tp_cast(c, w, TP_F16), tp_from_i32(c, TP_DIMS(2), ((int32_t[]){3, 1})));
    TP_CHECK(e && e->dtype == TP_F32);
    for (int d = 0; e && d < 5; d++)
        TP_CHECK(tp_item(e, d) == tp_f16_to_f32(tp_f32_to_f16((float)tp_item(w, 15 + d))));
    tp_ctx_free(c);
}

int main(int argc, char **argv) {
#ifdef TP_HAVE_CUDA
    tp_err cerr = {0};
    if (tp_cuda_backend_register(&cerr) != TP_OK)
        fprintf(stderr, "test_ops: CUDA backend not available (%s); CPU only\n", cerr.msg);
#endif
    if (argc > 1) g_filter = argv[1];
    static const tp_test_case cases[] = {
        TP_CASE(test_table),         TP_CASE(test_vq_straight_through), TP_CASE(test_dropout_stats),
        TP_CASE(test_backend_table), TP_CASE(test_grad_accumulates),    TP_CASE(test_half_inputs),
        TP_CASE(test_backward_forms)};
    int n = (int)(sizeof cases / sizeof cases[0]);
    if (g_filter) n = 1; /* the filter selects ops inside the table */
    return tp_test_main(1, argv, cases, n);
}
