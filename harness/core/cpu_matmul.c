/* cpu_matmul.c — CPU MATMUL through OpenBLAS cblas_sgemm: one GEMM per batch index, strided
 * views passed with their leading dimension (a column-major view flips the transpose flag),
 * backward as two GEMMs accumulating (beta = 1) into the grads; a shared 2-D b sums its grad
 * over the batch. */
#include <cblas.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/cpu.h"

/* OpenBLAS threads: 1 unless TP_BLAS_THREADS (or the user's own OPENBLAS_NUM_THREADS) says
 * otherwise. The CPU backend runs tiny models, tests and the demo, whose GEMMs are small: there
 * OpenBLAS's spinning worker threads cost more than they give (the trainer test ran 2.4x faster
 * single-threaded on a shared 2-core machine), and a GPU run does not use BLAS at all. */
void openblas_set_num_threads(int num_threads); /* in case cblas.h is another vendor's */
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_threads(void) {
    const char *t = getenv("TP_BLAS_THREADS");
    if (t && atoi(t) > 0)
        openblas_set_num_threads(atoi(t));
    else if (!getenv("OPENBLAS_NUM_THREADS"))
        openblas_set_num_threads(1);
}
void tp_cpu_blas_init(void) {
    pthread_once(&g_blas_once, blas_threads);
}

typedef struct {
    const float *p;
    int trans; /* storage is column-major (a transposed view) */
    int64_t ld;
    int64_t st0, st1; /* batch strides (padded to two batch dims) */
} mat;

static mat mat_of(const tp_tensor *t) {
    mat m = {.p = F32(t)};
    tp_mat_layout(t, &m.trans, &m.ld);
    int64_t sh[4], st[4];
    tp_shape4(t, sh, st);
    m.st0 = t->ndim == 2 ? 0 : st[0];
    m.st1 = t->ndim == 2 ? 0 : st[1];
    return m;
}

/* C[M,N] (row-major, ldc) = beta*C + op(X) op(Y), op(X) [M,K], op(Y) [K,N]. */
static void gemm(int tx, const float *x, int64_t ldx, int ty, const float *y, int64_t ldy, float *c,
                 int64_t ldc, int64_t M, int64_t N, int64_t K, float beta) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) c[i * ldc + j] = 0.0f;
        return;
    }
    cblas_sgemm(CblasRowMajor, tx ? CblasTrans : CblasNoTrans, ty ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, 1.0f, x, (int)ldx, y, (int)ldy, beta, c, (int)ldc);
}

typedef struct {
    int64_t nb0, nb1, M, N, K;
    int ta, tb;
} dims;

static dims dims_of(const tp_node *n) {
    const tp_tensor *a = n->in[0], *o = n->out;
    int64_t sh[4], st[4];
    tp_shape4(o, sh, st);
    dims d = {sh[0], sh[1], sh[2], sh[3], 0, (int)n->ip[0], (int)n->ip[1]};
    d.K = d.ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    return d;
}

tp_status tp_cpu_matmul_fwd(tp_ctx *ctx, tp_node *n) {
    dims d = dims_of(n);
    mat A = mat_of(n->in[0]), B = mat_of(n->in[1]);
    float *C = F32(n->out);
    const tp_tensor *res = n->n_in > 2 ? n->in[2] : NULL; /* contiguous, shaped like out */
    if (res) memcpy(C, F32(res), sizeof(float) * (size_t)tp_numel(n->out));
    for (int64_t i0 = 0; i0 < d.nb0; i0++)
        for (int64_t i1 = 0; i1 < d.nb1; i1++) {
            float *c = C + (i0 * d.nb1 + i1) * d.M * d.N;
            gemm(d.ta ^ A.trans, A.p + i0 * A.st0 + i1 * A.st1, A.ld, d.tb ^ B.trans,
                 B.p + i0 * B.st0 + i1 * B.st1, B.ld, c, d.N, d.M, d.N, d.K, res ? 1.0f : 0.0f);
        }
    return TP_OK;
}

tp_status tp_cpu_matmul_bwd(tp_ctx *ctx, tp_node *n) {
    tp_tensor *ga = tp_node_grad(ctx, n, 0), *gb = tp_node_grad(ctx, n, 1);
    tp_tensor *gr = n->n_in > 2 ? tp_node_grad(ctx, n, 2) : NULL;
    if (ctx->status) return ctx->status;
    if (gr) { /* the residual's grad is the output's */
        float *dr = F32(gr);
        const float *go = F32(n->out->grad);
        for (int64_t i = 0, m = tp_numel(gr); i < m; i++) dr[i] += go[i];
    }
    dims d = dims_of(n);
    mat A = mat_of(n->in[0]), B = mat_of(n->in[1]);
    const float *G = F32(n->out->grad);
    int b_shared = n->in[1]->ndim == 2;
    int fa = d.ta ^ A.trans, fb = d.tb ^ B.trans; /* flags that give A_log, B_log from memory */
    for (int64_t i0 = 0; i0 < d.nb0; i0++)
        for (int64_t i1 = 0; i1 < d.nb1; i1++) {
            int64_t bi = i0 * d.nb1 + i1;
            const float *g = G + bi * d.M * d.N;
            const float *a = A.p + i0 * A.st0 + i1 * A.st1, *b = B.p + i0 * B.st0 + i1 * B.st1;
            if (ga) {
                float *da = F32(ga) + bi * d.M * d.K;
                if (!d.ta) /* dA [M,K] = dC [M,N] @ B_log^T */
                    gemm(0, g, d.N, !fb, b, B.ld, da, d.K, d.M, d.K, d.N, 1.0f);
                else /* dA^T [K,M] = B_log [K,N] @ dC^T */
                    gemm(fb, b, B.ld, 1, g, d.N, da, d.M, d.K, d.M, d.N, 1.0f);
            }
            if (gb) {
                float *db = F32(gb) + (b_shared ? 0 : bi * d.K * d.N);
                if (!d.tb) /* dB [K,N] = A_log^T [K,M] @ dC */
                    gemm(!fa, a, A.ld, 0, g, d.N, db, d.N, d.K, d.N, d.M, 1.0f);
                else /* dB^T [N,K] = dC^T [N,M] @ A_log [M,K] */
                    gemm(1, g, d.N, fa, a, A.ld, db, d.K, d.N, d.K, d.M, 1.0f);
            }
        }
    return TP_OK;
}
