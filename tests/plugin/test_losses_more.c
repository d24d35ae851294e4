/* test_losses_more.c — the study's remaining loss plugins (infonce, reconstruction, anchor, bow,
 * token_weighting, flow_match, vq_commit), loaded as the real .so files: each value against a
 * hand computation (one case per loss spelled out in closed form, the rest against a double
 * reference), each gradient (inputs and the loss's own parameters) against central finite
 * differences of the double reference, needs(), parameter registration, and the clear error of
 * every missing or malformed input and bad option. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_bridges_common.h"

#define MAXN 4096

/* Widths, sender vocabulary and seed; the rest as the trainer fills it. */
static tp_bridge_dims mkdims(int d_s, int d_r, int v_s, uint64_t seed) {
    tp_bridge_dims d;
    memset(&d, 0, sizeof d);
    d.d_sender = d_s;
    d.d_receiver = d_r;
    d.sender_vocab = v_s;
    d.receiver_vocab = 10;
    d.recv_embed_rms = 0.0027f;
    d.seed = seed;
    return d;
}

/* create must fail with a message containing needle. */
static void create_error(const char *name, const char *opts, const tp_bridge_dims *dims,
                         const char *needle) {
    loss_fx f;
    tp_err err = {0};
    tp_status st = lfx_try(&f, name, opts, dims, &err);
    TP_CHECKF(st != TP_OK, "%s (%s) was accepted", name, opts);
    TP_CHECKF(strstr(err.msg, needle) != NULL, "%s (%s): message '%s' lacks '%s'", name, opts,
              err.msg, needle);
    lfx_close(&f);
}

static void fill(double *x, int n, unsigned seed, double a) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = a * (2.0 * (double)(seed >> 8) / 16777216.0 - 1.0);
    }
}

static void to_f(const double *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = (float)x[i];
}

/* Copies double values into an f32 parameter (the reference then uses the same numbers). */
static void set_param(tp_tensor *p, const double *x) {
    float *d = p->data;
    for (int64_t i = 0; i < tp_numel(p); i++) d[i] = (float)x[i];
}

static void get_param(const tp_tensor *p, double *x) {
    const float *d = p->data;
    for (int64_t i = 0; i < tp_numel(p); i++) x[i] = d[i];
}

/* Relative error of the analytic gradient g against central differences of ref over x. */
static double fd_check(double (*ref)(void *), void *ud, double *x, int n, const float *g,
                       const char *what) {
    double num = 0, den_f = 0, den_g = 0;
    for (int i = 0; i < n; i++) {
        const double eps = 1e-5;
        double keep = x[i];
        x[i] = keep + eps;
        double lp = ref(ud);
        x[i] = keep - eps;
        double lm = ref(ud);
        x[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        num += (fd - g[i]) * (fd - g[i]);
        den_f += fd * fd;
        den_g += (double)g[i] * g[i];
    }
    double rel = sqrt(num) / (sqrt(den_f) + sqrt(den_g) + 1e-30);
    TP_CHECKF(den_f > 0, "%s: the reference gradient is zero: the case is degenerate", what);
    TP_CHECKF(rel < 1e-3, "%s: relative gradient error %g (|fd| %g, |g| %g)", what, rel,
              sqrt(den_f), sqrt(den_g));
    return rel;
}

/* grad of t (or zeros when it got none) into out */
static void grad_of(const tp_tensor *t, float *out) {
    tp_err err = {0};
    if (t && t->grad)
        TP_CHECK(tp_to_f32_buffer(t->grad, out, &err) == TP_OK);
    else if (t)
        memset(out, 0, sizeof(float) * (size_t)tp_numel(t));
}

static double log_sum_exp(const double *x, int n, int stride) {
    double mx = x[0];
    for (int i = 1; i < n; i++) mx = fmax(mx, x[i * stride]);
    double z = 0;
    for (int i = 0; i < n; i++) z += exp(x[i * stride] - mx);
    return mx + log(z);
}

/* mean over m of soft [b,m,d] -> a [b,d]; masked mean of h [b,t,ds] -> p [b,ds] */
static void means(const double *soft, int b, int m, int d, const double *h, const double *mask,
                  int t, int ds, double *a, double *p) {
    for (int i = 0; i < b; i++) {
        for (int k = 0; k < d; k++) {
            double s = 0;
            for (int j = 0; j < m; j++) s += soft[(i * m + j) * d + k];
            a[i * d + k] = s / m;
        }
        if (!h) continue;
        double cnt = 0;
        for (int j = 0; j < t; j++) cnt += mask ? mask[i * t + j] : 1;
        for (int k = 0; k < ds; k++) {
            double s = 0;
            for (int j = 0; j < t; j++) s += (mask ? mask[i * t + j] : 1) * h[(i * t + j) * ds + k];
            p[i * ds + k] = s / cnt;
        }
    }
}

static double cosd(const double *x, const double *y, int n) {
    double d = 0, nx = 0, ny = 0;
    for (int i = 0; i < n; i++) {
        d += x[i] * y[i];
        nx += x[i] * x[i];
        ny += y[i] * y[i];
    }
    return d / (fmax(sqrt(nx), 1e-8) * fmax(sqrt(ny), 1e-8));
}

/* ---- infonce ------------------------------------------------------------------------------- */

typedef struct nc_case {
    int b, m, d, t, ds, proj, sym;
    double tau;
    double soft[256], h[256], mask[64], w[64], c[16];
} nc_case;

static double nc_ref(void *ud) {
    nc_case *k = ud;
    double a[64], p0[64], p[64], S[64];
    means(k->soft, k->b, k->m, k->d, k->h, k->mask, k->t, k->ds, a, p0);
    for (int i = 0; i < k->b; i++)
        for (int r = 0; r < k->d; r++) {
            if (!k->proj) {
                p[i * k->d + r] = p0[i * k->ds + r];
                continue;
            }
            double s = k->c[r];
            for (int q = 0; q < k->ds; q++) s += k->w[r * k->ds + q] * p0[i * k->ds + q];
            p[i * k->d + r] = s;
        }
    for (int i = 0; i < k->b; i++)
        for (int j = 0; j < k->b; j++)
            S[i * k->b + j] = cosd(a + i * k->d, p + j * k->d, k->d) / k->tau;
    double l1 = 0, l2 = 0;
    for (int i = 0; i < k->b; i++) {
        l1 += log_sum_exp(S + i * k->b, k->b, 1) - S[i * k->b + i];
        l2 += log_sum_exp(S + i, k->b, k->b) - S[i * k->b + i];
    }
    l1 /= k->b;
    l2 /= k->b;
    return k->sym ? 0.5 * (l1 + l2) : l1;
}

/* Runs the plugin on the case; returns the loss, fills grads of soft and of the projection. */
/* What infonce and reconstruction read: soft tokens, sender states and mask, and the loss's own
 * linear map (parameters wname / bname, when the configuration has them). */
typedef struct sender_case {
    int b, m, d, t, ds;
    const double *soft, *h, *mask, *w, *c;
} sender_case;

/* One compute + backward of such a loss; gradients into g_soft, g_w, g_c (each optional). */
static double sender_run(loss_fx *f, const char *loss, const char *wname, const char *bname,
                         const sender_case *k, float *g_soft, float *g_w, float *g_c) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    float sf[256], hf[256], mf[64];
    to_f(k->soft, sf, k->b * k->m * k->d);
    to_f(k->h, hf, k->b * k->t * k->ds);
    to_f(k->mask, mf, k->b * k->t);
    tp_tensor *w = lfx_param(f, wname), *cb = lfx_param(f, bname);
    if (w) set_param(w, k->w);
    if (cb) set_param(cb, k->c);
    for (int i = 0; i < f->ps.n; i++) tp_param_zero_grad(f->ps.p[i]);
    tp_loss_inputs in = {0};
    in.soft = tp_from_f32(c, TP_DIMS(k->b, k->m, k->d), sf);
    in.sender_h = tp_from_f32(c, TP_DIMS(k->b, k->t, k->ds), hf);
    in.sender_mask = tp_from_f32(c, TP_DIMS(k->b, k->t), mf);
    tp_requires_grad(c, in.soft);
    double v;
    if (lfx_run(f, c, &in, loss, NULL, NULL, &v)) {
        if (g_soft) grad_of(in.soft, g_soft);
        if (g_w && w) grad_of(w, g_w);
        if (g_c && cb) grad_of(cb, g_c);
    }
    tp_ctx_free(c);
    return v;
}

static double nc_run(loss_fx *f, nc_case *k, float *g_soft, float *g_w, float *g_c) {
    sender_case sc = {k->b, k->m, k->d, k->t, k->ds, k->soft, k->h, k->mask, k->w, k->c};
    return sender_run(f, "infonce", "infonce.proj.weight", "infonce.proj.bias", &sc, g_soft, g_w,
                      g_c);
}

static void test_infonce_hand(void) {
    tp_bridge_dims dims = mkdims(2, 2, 10, 1);
    loss_fx f;
    if (!lfx_open(&f, "infonce", "tau=1", &dims)) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    TP_CHECK(f.vt->needs(f.state) == (TP_NEED_SOFT | TP_NEED_SENDER));
    TP_CHECKF(f.ps.n == 0, "equal widths: %d parameters, expected none", f.ps.n);
    /* B=2, M=1, D=2: a = (1,0),(0,1); the sender means equal them (the second example's second
     * sender token is padding with a wild value): S = [[1,0],[0,1]] (tau 1) and both directions
     * give -log(e/(e+1)) = log(1 + 1/e) */
    nc_case k = {.b = 2, .m = 1, .d = 2, .t = 2, .ds = 2, .proj = 0, .sym = 1, .tau = 1};
    double soft[4] = {1, 0, 0, 1}, h[8] = {1, 0, 1, 0, 0, 1, 50, -50}, mask[4] = {1, 1, 1, 0};
    memcpy(k.soft, soft, sizeof soft);
    memcpy(k.h, h, sizeof h);
    memcpy(k.mask, mask, sizeof mask);
    double want = log(1 + exp(-1.0));
    TP_CHECK_NEAR(nc_ref(&k), want, 1e-12);
    TP_CHECK_NEAR(nc_run(&f, &k, NULL, NULL, NULL), want, 1e-6);
    /* a batch of one: only the positive pair -> 0 */
    k.b = 1;
    TP_CHECK_NEAR(nc_run(&f, &k, NULL, NULL, NULL), 0.0, 1e-7);
    lfx_close(&f);
}

static void nc_grad_case(const char *opts, int ds, int proj, int sym, double tau) {
    tp_bridge_dims dims = mkdims(ds, 4, 10, 5);
    loss_fx f;
    if (!lfx_open(&f, "infonce", opts, &dims)) return;
    TP_CHECKF(f.ps.n == (proj ? 2 : 0), "%s: %d parameters", opts, f.ps.n);
    nc_case k = {.b = 3, .m = 2, .d = 4, .t = 3, .ds = ds, .proj = proj, .sym = sym, .tau = tau};
    fill(k.soft, 24, 11, 1.0);
    fill(k.h, 3 * 3 * ds, 12, 2.0);
    for (int i = 0; i < 9; i++) k.mask[i] = (i % 3 == 2 && i > 3) ? 0 : 1;
    if (proj) {
        get_param(lfx_param(&f, "infonce.proj.weight"), k.w);
        get_param(lfx_param(&f, "infonce.proj.bias"), k.c);
        double bound = 1 / sqrt((double)ds), mx = 0;
        for (int i = 0; i < 4 * ds; i++) mx = fmax(mx, fabs(k.w[i]));
        TP_CHECKF(mx <= bound && mx > 0.3 * bound, "projection init max %g (bound %g)", mx, bound);
    }
    float gs[64], gw[64], gc[8];
    double got = nc_run(&f, &k, gs, gw, gc);
    TP_CHECK_NEAR(got, nc_ref(&k), 1e-5 * fmax(1, fabs(got)));
    fd_check(nc_ref, &k, k.soft, 24, gs, "infonce d/dsoft");
    if (proj) {
        fd_check(nc_ref, &k, k.w, 4 * ds, gw, "infonce d/dproj.weight");
        fd_check(nc_ref, &k, k.c, 4, gc, "infonce d/dproj.bias");
    }
    lfx_close(&f);
}

static void test_infonce_grads(void) {
    nc_grad_case("", 4, 0, 1, 0.07); /* tau 0.07, symmetric, equal widths */
    nc_grad_case("symmetric=false,tau=0.5", 4, 0, 0, 0.5);
    nc_grad_case("tau=0.3", 3, 1, 1, 0.3); /* widths differ: projection */
    nc_grad_case("projection=always,tau=0.3", 4, 1, 1, 0.3);
}

static void test_infonce_errors(void) {
    tp_bridge_dims dims = mkdims(3, 4, 10, 1);
    create_error("infonce", "projection=never", &dims, "differs");
    create_error("infonce", "tau=0", &dims, "tau");
    loss_fx f;
    if (!lfx_open(&f, "infonce", "", &dims)) return;
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_loss_inputs in = {0};
    tp_tensor *loss = NULL;
    tp_err err = {0};
    float x[64] = {0};
    in.soft = tp_from_f32(c, TP_DIMS(2, 1, 4), x);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "infonce") && strstr(err.msg, "sender states"), "%s", err.msg);
    in.sender_h = tp_from_f32(c, TP_DIMS(2, 3, 4), x); /* d_s 4, expected 3 */
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
    in.soft = NULL;
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "soft tokens"), "%s", err.msg);
    tp_ctx_free(c);
    lfx_close(&f);
}

/* ---- reconstruction ----------------------------------------------------------------------- */

typedef struct rc_case {
    int b, m, d, t, ds, head, mse;
    double soft[256], h[256], mask[64], w[64], c[16];
} rc_case;

static double rc_ref(void *ud) {
    rc_case *k = ud;
    double a[64], p[64], r[64];
    means(k->soft, k->b, k->m, k->d, k->h, k->mask, k->t, k->ds, a, p);
    int rd = k->head ? k->ds : k->d;
    for (int i = 0; i < k->b; i++)
        for (int q = 0; q < rd; q++) {
            if (!k->head) {
                r[i * rd + q] = a[i * k->d + q];
                continue;
            }
            double s = k->c[q];
            for (int j = 0; j < k->d; j++) s += k->w[q * k->d + j] * a[i * k->d + j];
            r[i * rd + q] = s;
        }
    double l = 0;
    for (int i = 0; i < k->b; i++) {
        if (k->mse) {
            for (int q = 0; q < rd; q++)
                l += pow(r[i * rd + q] - p[i * k->ds + q], 2) / (k->b * rd);
        } else {
            l += (1 - cosd(r + i * rd, p + i * k->ds, rd)) / k->b;
        }
    }
    return l;
}

static double rc_run(loss_fx *f, rc_case *k, float *g_soft, float *g_w, float *g_c) {
    sender_case sc = {k->b, k->m, k->d, k->t, k->ds, k->soft, k->h, k->mask, k->w, k->c};
    return sender_run(f, "reconstruction", "reconstruction.head.weight", "reconstruction.head.bias",
                      &sc, g_soft, g_w, g_c);
}

static void test_reconstruction(void) {
    tp_bridge_dims same = mkdims(2, 2, 10, 1);
    loss_fx f;
    /* hand: B=1, M=1, soft (1,0), sender mean (1,1): 1 - cos = 1 - 1/sqrt2; MSE = 0.5 */
    rc_case k = {.b = 1, .m = 1, .d = 2, .t = 1, .ds = 2, .head = 0, .mse = 0};
    k.soft[0] = 1;
    k.h[0] = k.h[1] = 1;
    k.mask[0] = 1;
    if (lfx_open(&f, "reconstruction", "", &same)) {
        TP_CHECK(f.vt->needs(f.state) == (TP_NEED_SOFT | TP_NEED_SENDER));
        TP_CHECK(f.ps.n == 0);
        TP_CHECK_NEAR(rc_run(&f, &k, NULL, NULL, NULL), 1 - 1 / sqrt(2.0), 1e-6);
        lfx_close(&f);
    }
    if (lfx_open(&f, "reconstruction", "form=mse", &same)) {
        k.mse = 1;
        TP_CHECK_NEAR(rc_run(&f, &k, NULL, NULL, NULL), 0.5, 1e-6);
        lfx_close(&f);
    }
    /* gradients: no head / auto head (widths differ) / forced head, both forms */
    struct {
        const char *opts;
        int ds, head, mse;
    } cs[] = {{"", 4, 0, 0},
              {"form=mse", 4, 0, 1},
              {"", 3, 1, 0},
              {"form=mse", 3, 1, 1},
              {"head=linear", 4, 1, 0}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        tp_bridge_dims dims = mkdims(cs[i].ds, 4, 10, 9);
        if (!lfx_open(&f, "reconstruction", cs[i].opts, &dims)) continue;
        TP_CHECKF(f.ps.n == (cs[i].head ? 2 : 0), "%s: %d params", cs[i].opts, f.ps.n);
        rc_case g = {
            .b = 3, .m = 2, .d = 4, .t = 3, .ds = cs[i].ds, .head = cs[i].head, .mse = cs[i].mse};
        fill(g.soft, 24, 21 + (unsigned)i, 1.0);
        fill(g.h, 9 * cs[i].ds, 22, 2.0);
        for (int j = 0; j < 9; j++) g.mask[j] = j == 8 ? 0 : 1;
        if (g.head) {
            get_param(lfx_param(&f, "reconstruction.head.weight"), g.w);
            get_param(lfx_param(&f, "reconstruction.head.bias"), g.c);
        }
        float gs[64], gw[64], gc[8];
        double got = rc_run(&f, &g, gs, gw, gc);
        TP_CHECK_NEAR(got, rc_ref(&g), 1e-5 * fmax(1, fabs(got)));
        fd_check(rc_ref, &g, g.soft, 24, gs, cs[i].opts);
        if (g.head) {
            fd_check(rc_ref, &g, g.w, 4 * cs[i].ds, gw, "reconstruction head.weight");
            fd_check(rc_ref, &g, g.c, cs[i].ds, gc, "reconstruction head.bias");
        }
        lfx_close(&f);
    }
    tp_bridge_dims diff = mkdims(3, 4, 10, 1);
    create_error("reconstruction", "head=none", &diff, "differs");
    create_error("reconstruction", "form=l1", &diff, "form");
    if (lfx_open(&f, "reconstruction", "", &diff)) {
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_ctx_reset(c);
        tp_loss_inputs in = {0};
        float x[64] = {0};
        in.soft = tp_from_f32(c, TP_DIMS(2, 1, 4), x);
        tp_tensor *loss = NULL;
        tp_err err = {0};
        TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
        TP_CHECKF(strstr(err.msg, "reconstruction") && strstr(err.msg, "sender states"), "%s",
                  err.msg);
        tp_ctx_free(c);
        lfx_close(&f);
    }
}

/* ---- anchor ------------------------------------------------------------------------------- */

typedef struct an_case {
    int b, m, d, l, mse, mean;
    double soft[256], e[256], mask[64];
} an_case;

/* The reference: resample each row's valid positions to m (aligned ends) or take the mean. */
static void an_targets(const an_case *k, double *r) {
    for (int i = 0; i < k->b; i++) {
        int idx[64], n = 0;
        for (int t = 0; t < k->l; t++)
            if (k->mask[i * k->l + t] != 0) idx[n++] = t;
        if (k->mean) {
            for (int q = 0; q < k->d; q++) {
                double s = 0;
                for (int j = 0; j < n; j++) s += k->e[(i * k->l + idx[j]) * k->d + q];
                r[i * k->d + q] = s / n;
            }
            continue;
        }
        for (int j = 0; j < k->m; j++) {
            double u = k->m == 1 ? 0.5 * (n - 1) : (double)j * (n - 1) / (k->m - 1);
            int lo = (int)floor(u);
            int hi = lo + 1 < n ? lo + 1 : n - 1;
            double fr = u - lo;
            for (int q = 0; q < k->d; q++)
                r[(i * k->m + j) * k->d + q] = (1 - fr) * k->e[(i * k->l + idx[lo]) * k->d + q] +
                                               fr * k->e[(i * k->l + idx[hi]) * k->d + q];
        }
    }
}

static double an_ref(void *ud) {
    an_case *k = ud;
    double r[256], x[256];
    an_targets(k, r);
    int rows = k->mean ? 1 : k->m;
    if (k->mean) {
        means(k->soft, k->b, k->m, k->d, NULL, NULL, 0, 0, x, NULL);
    } else {
        memcpy(x, k->soft, sizeof(double) * (size_t)(k->b * k->m * k->d));
    }
    double l = 0;
    int nv = k->b * rows;
    for (int v = 0; v < nv; v++) {
        if (k->mse) {
            for (int q = 0; q < k->d; q++)
                l += pow(x[v * k->d + q] - r[v * k->d + q], 2) / (nv * k->d);
        } else {
            l += (1 - cosd(x + v * k->d, r + v * k->d, k->d)) / nv;
        }
    }
    return l;
}

static double an_run(loss_fx *f, an_case *k, float *g_soft, tp_status *st_out, tp_err *err_out) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    float sf[256], ef[256], mf[64];
    to_f(k->soft, sf, k->b * k->m * k->d);
    to_f(k->e, ef, k->b * k->l * k->d);
    to_f(k->mask, mf, k->b * k->l);
    tp_loss_inputs in = {0};
    in.soft = tp_from_f32(c, TP_DIMS(k->b, k->m, k->d), sf);
    in.target_emb = tp_from_f32(c, TP_DIMS(k->b, k->l, k->d), ef);
    in.target_emb_mask = tp_from_f32(c, TP_DIMS(k->b, k->l), mf);
    tp_requires_grad(c, in.soft);
    double v;
    if (lfx_run(f, c, &in, "anchor", st_out, err_out, &v)) {
        if (g_soft) grad_of(in.soft, g_soft);
    }
    tp_ctx_free(c);
    return v;
}

static void test_anchor(void) {
    tp_bridge_dims dims = mkdims(4, 2, 10, 1);
    loss_fx f;
    if (!lfx_open(&f, "anchor", "form=mse", &dims)) return;
    TP_CHECK(f.vt->needs(f.state) == (TP_NEED_SOFT | TP_NEED_TARGET_EMB));
    TP_CHECK(f.ps.n == 0);
    /* hand: B=1, M=3, D=2, target rows e0=(1,0), e1=(3,2), then a padded row (wild values).
     * Resampled to 3: e0, (e0+e1)/2 = (2,1), e1. soft = (1,0),(2,1),(0,0): only the last token
     * differs, by (3,2): MSE = (9+4)/6 */
    an_case k = {.b = 1, .m = 3, .d = 2, .l = 3, .mse = 1, .mean = 0};
    double soft[6] = {1, 0, 2, 1, 0, 0}, e[6] = {1, 0, 3, 2, 99, -99}, mask[3] = {1, 1, 0};
    memcpy(k.soft, soft, sizeof soft);
    memcpy(k.e, e, sizeof e);
    memcpy(k.mask, mask, sizeof mask);
    TP_CHECK_NEAR(an_ref(&k), 13.0 / 6.0, 1e-12);
    TP_CHECK_NEAR(an_run(&f, &k, NULL, NULL, NULL), 13.0 / 6.0, 1e-6);
    lfx_close(&f);
    /* value and gradient of every form x match, with padding in the middle rows */
    const char *opts[4] = {"form=mse", "form=cosine", "form=mse,match=mean", "match=mean"};
    for (int i = 0; i < 4; i++) {
        if (!lfx_open(&f, "anchor", opts[i], &dims)) continue;
        an_case g = {.b = 3, .m = 4, .d = 3, .l = 5, .mse = i % 2 == 0, .mean = i >= 2};
        fill(g.soft, 36, 31 + (unsigned)i, 1.0);
        fill(g.e, 45, 32, 1.0);
        for (int j = 0; j < 15; j++) g.mask[j] = 1;
        g.mask[4] = g.mask[8] = g.mask[9] = 0; /* rows of 4, 3, 5 tokens */
        g.mask[10] = 0;
        g.mask[11] = 0; /* row 2 starts with padding: only its valid positions count */
        float gs[64];
        double got = an_run(&f, &g, gs, NULL, NULL);
        TP_CHECK_NEAR(got, an_ref(&g), 1e-5 * fmax(1, fabs(got)));
        fd_check(an_ref, &g, g.soft, 36, gs, opts[i]);
        /* M = 1 takes the middle of the row */
        an_case one = g;
        one.m = 1;
        double got1 = an_run(&f, &one, NULL, NULL, NULL);
        TP_CHECK_NEAR(got1, an_ref(&one), 1e-5 * fmax(1, fabs(got1)));
        lfx_close(&f);
    }
    /* errors: an empty target row names the row; no target at all names target_emb */
    if (lfx_open(&f, "anchor", "", &dims)) {
        an_case g = {.b = 2, .m = 2, .d = 2, .l = 2};
        g.mask[0] = g.mask[1] = 1;
        tp_status st;
        tp_err err;
        an_run(&f, &g, NULL, &st, &err);
        TP_CHECK(st == TP_EINVAL);
        TP_CHECKF(strstr(err.msg, "row 1") != NULL, "%s", err.msg);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_ctx_reset(c);
        tp_loss_inputs in = {0};
        float x[8] = {0};
        in.soft = tp_from_f32(c, TP_DIMS(2, 2, 2), x);
        tp_tensor *loss = NULL;
        TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
        TP_CHECKF(strstr(err.msg, "anchor") && strstr(err.msg, "target_emb"), "%s", err.msg);
        in.target_emb = tp_from_f32(c, TP_DIMS(2, 2, 1), x); /* D 1 vs 2 */
        TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
        tp_ctx_free(c);
        lfx_close(&f);
    }
    create_error("anchor", "match=first", &dims, "match");
}

/* ---- bow ---------------------------------------------------------------------------------- */

typedef struct bw_case {
    int b, m, d, v, la;
    double pw;
    double soft[256], w[256], c[64];
    int ids[64];
} bw_case;

static double softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double bw_ref(void *ud) {
    bw_case *k = ud;
    double a[64];
    means(k->soft, k->b, k->m, k->d, NULL, NULL, 0, 0, a, NULL);
    double l = 0;
    for (int i = 0; i < k->b; i++)
        for (int v = 0; v < k->v; v++) {
            double x = k->c[v];
            for (int j = 0; j < k->d; j++) x += k->w[v * k->d + j] * a[i * k->d + j];
            int y = 0;
            for (int t = 0; t < k->la; t++) y |= k->ids[i * k->la + t] == v;
            l += y ? k->pw * softplus(-x) : softplus(x);
        }
    return l / (k->b * k->v);
}

static double bw_run(loss_fx *f, bw_case *k, float *g_soft, float *g_w, float *g_c, tp_status *sto,
                     tp_err *erro) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    float sf[256];
    to_f(k->soft, sf, k->b * k->m * k->d);
    tp_tensor *w = lfx_param(f, "bow.head.weight"), *cb = lfx_param(f, "bow.head.bias");
    set_param(w, k->w);
    set_param(cb, k->c);
    for (int i = 0; i < f->ps.n; i++) tp_param_zero_grad(f->ps.p[i]);
    tp_loss_inputs in = {0};
    in.soft = tp_from_f32(c, TP_DIMS(k->b, k->m, k->d), sf);
    in.answer_ids = tp_from_i32(c, TP_DIMS(k->b, k->la), k->ids);
    tp_requires_grad(c, in.soft);
    double v;
    if (lfx_run(f, c, &in, "bow", sto, erro, &v)) {
        if (g_soft) grad_of(in.soft, g_soft);
        if (g_w) grad_of(w, g_w);
        if (g_c) grad_of(cb, g_c);
    }
    tp_ctx_free(c);
    return v;
}

static void test_bow(void) {
    tp_bridge_dims dims = mkdims(4, 3, 5, 1); /* sender vocab 5, receiver width 3 */
    loss_fx f;
    if (!lfx_open(&f, "bow", "pos_weight=3", &dims)) return;
    TP_CHECK(f.vt->needs(f.state) == (TP_NEED_SOFT | TP_NEED_ANSWER_IDS));
    tp_tensor *hw = lfx_param(&f, "bow.head.weight"), *hb = lfx_param(&f, "bow.head.bias");
    TP_CHECK(f.ps.n == 2 && hw && hb);
    if (!hw || !hb) {
        lfx_close(&f);
        return;
    }
    TP_CHECK(hw->shape[0] == 5 && hw->shape[1] == 3 && hb->shape[0] == 5);
    /* hand: a zero head gives logits 0 -> every term is log 2, a positive term pw * log 2; one
     * example whose answer has ids {1, 1, 4} (a repeat counts once) and padding -1:
     * loss = (3 log2 * 2 + log2 * 3) / 5 = 9/5 log 2 */
    bw_case k = {.b = 1, .m = 2, .d = 3, .v = 5, .la = 4, .pw = 3};
    fill(k.soft, 6, 41, 1.0);
    int ids[4] = {1, 1, 4, -1};
    memcpy(k.ids, ids, sizeof ids);
    TP_CHECK_NEAR(bw_ref(&k), 9.0 / 5.0 * log(2.0), 1e-12);
    TP_CHECK_NEAR(bw_run(&f, &k, NULL, NULL, NULL, NULL, NULL), 9.0 / 5.0 * log(2.0), 1e-6);
    /* random head: value and gradients of soft, head weight and bias */
    bw_case g = {.b = 3, .m = 2, .d = 3, .v = 5, .la = 3, .pw = 3};
    fill(g.soft, 18, 42, 1.0);
    fill(g.w, 15, 43, 2.0);
    fill(g.c, 5, 44, 0.5);
    int gi[9] = {0, 2, -1, 4, 4, 3, -1, -1, -1}; /* the last answer is empty */
    memcpy(g.ids, gi, sizeof gi);
    float gs[64], gw[64], gc[8];
    double got = bw_run(&f, &g, gs, gw, gc, NULL, NULL);
    TP_CHECK_NEAR(got, bw_ref(&g), 1e-5 * fmax(1, fabs(got)));
    fd_check(bw_ref, &g, g.soft, 18, gs, "bow d/dsoft");
    fd_check(bw_ref, &g, g.w, 15, gw, "bow d/dhead.weight");
    fd_check(bw_ref, &g, g.c, 5, gc, "bow d/dhead.bias");
    /* an id past the sender vocabulary names row and id */
    g.ids[1] = 5;
    tp_status st;
    tp_err err;
    bw_run(&f, &g, NULL, NULL, NULL, &st, &err);
    TP_CHECK(st == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "answer_ids[0][1] = 5"), "%s", err.msg);
    g.ids[1] = -7;
    bw_run(&f, &g, NULL, NULL, NULL, &st, &err);
    TP_CHECK(st == TP_ERANGE);
    /* no answer ids */
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_loss_inputs in = {0};
    float x[18] = {0};
    in.soft = tp_from_f32(c, TP_DIMS(3, 2, 3), x);
    tp_tensor *loss = NULL;
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "bow") && strstr(err.msg, "answer_ids"), "%s", err.msg);
    in.answer_ids = tp_from_f32(c, TP_DIMS(3, 1), x); /* f32 ids */
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EDTYPE);
    tp_ctx_free(c);
    lfx_close(&f);
    tp_bridge_dims novocab = dims;
    novocab.sender_vocab = 0;
    create_error("bow", "", &novocab, "sender_vocab");
    create_error("bow", "pos_weight=-1", &dims, "pos_weight");
}

/* ---- token_weighting ------------------------------------------------------------------------ */

typedef struct tw_case {
    int n, v, b, k, by_weights;
    double w;
    double x[256];
    int t[64];
} tw_case;

static double tw_ref(void *ud) {
    tw_case *k = ud;
    int l = k->n / k->b;
    double num = 0, den = 0;
    for (int r = 0; r < k->b; r++) {
        int seen = 0;
        for (int j = 0; j < l; j++) {
            int i = r * l + j;
            if (k->t[i] == -100) continue;
            double wi = seen++ < k->k ? k->w : 1.0;
            double nll = log_sum_exp(k->x + i * k->v, k->v, 1) - k->x[i * k->v + k->t[i]];
            num += wi * nll;
            den += k->by_weights ? wi : 1.0;
        }
    }
    return den > 0 ? num / den : 0;
}

static double tw_run(loss_fx *f, tw_case *k, float *g, tp_status *sto, tp_err *erro) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    float xf[256];
    to_f(k->x, xf, k->n * k->v);
    int lab[16] = {0};
    tp_loss_inputs in = {0};
    in.logits = tp_from_f32(c, TP_DIMS(k->n, k->v), xf);
    in.targets = tp_from_i32(c, TP_DIMS(k->n), k->t);
    in.labels = tp_from_i32(c, TP_DIMS(k->b), lab);
    tp_requires_grad(c, in.logits);
    double v;
    if (lfx_run(f, c, &in, "token_weighting", sto, erro, &v)) {
        if (g) grad_of(in.logits, g);
    }
    tp_ctx_free(c);
    return v;
}

static void test_token_weighting(void) {
    tp_bridge_dims dims = mkdims(4, 4, 10, 1);
    loss_fx f;
    if (!lfx_open(&f, "token_weighting", "k=1,w=2", &dims)) return;
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_LOGITS);
    TP_CHECK(f.ps.n == 0);
    /* hand: all-zero logits over V=4 -> every nll is log 4; rows [1, 2, pad] and [3, pad, pad],
     * k=1, w=2: the first token of each row weighs 2: (2 + 1 + 2) log4 / 3 tokens */
    tw_case k = {.n = 6, .v = 4, .b = 2, .k = 1, .w = 2};
    int t[6] = {1, 2, -100, 3, -100, -100};
    memcpy(k.t, t, sizeof t);
    TP_CHECK_NEAR(tw_ref(&k), 5.0 / 3.0 * log(4.0), 1e-12);
    TP_CHECK_NEAR(tw_run(&f, &k, NULL, NULL, NULL), 5.0 / 3.0 * log(4.0), 1e-6);
    lfx_close(&f);
    if (lfx_open(&f, "token_weighting", "k=1,w=2,normalize=weights", &dims)) {
        k.by_weights = 1; /* 5 log4 / (2 + 1 + 2) */
        TP_CHECK_NEAR(tw_run(&f, &k, NULL, NULL, NULL), log(4.0), 1e-6);
        lfx_close(&f);
    }
    /* value and gradient: default k=10 w=100 (the study's phase 11) with rows longer than k,
     * and a small k */
    struct {
        const char *opts;
        int k, byw;
        double w;
    } cs[] = {{"", 10, 0, 100},
              {"k=2,w=5", 2, 0, 5},
              {"k=2,w=5,normalize=weights", 2, 1, 5},
              {"k=0", 0, 0, 100},
              {"w=1", 10, 0, 1}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        if (!lfx_open(&f, "token_weighting", cs[i].opts, &dims)) continue;
        tw_case g = {.n = 36, .v = 4, .b = 3, .k = cs[i].k, .w = cs[i].w, .by_weights = cs[i].byw};
        fill(g.x, 144, 51 + (unsigned)i, 2.0);
        for (int j = 0; j < 36; j++) {
            int r = j / 12, pos = j % 12;
            int len = r == 0 ? 12 : r == 1 ? 3 : 11;
            g.t[j] = pos < len ? (j * 7) % 4 : -100;
        }
        float gg[256];
        double got = tw_run(&f, &g, gg, NULL, NULL);
        TP_CHECK_NEAR(got, tw_ref(&g), 1e-5 * fmax(1, fabs(got)));
        fd_check(tw_ref, &g, g.x, 144, gg, cs[i].opts);
        lfx_close(&f);
    }
    /* no target at all: 0 */
    if (lfx_open(&f, "token_weighting", "", &dims)) {
        tw_case z = {.n = 4, .v = 4, .b = 2, .k = 10, .w = 100};
        for (int j = 0; j < 4; j++) z.t[j] = -100;
        TP_CHECK_NEAR(tw_run(&f, &z, NULL, NULL, NULL), 0.0, 0);
        /* 5 positions cannot split into 2 rows */
        tw_case odd = {.n = 5, .v = 4, .b = 2};
        tp_status st;
        tp_err err;
        tw_run(&f, &odd, NULL, &st, &err);
        TP_CHECK(st == TP_ESHAPE);
        TP_CHECKF(strstr(err.msg, "token_weighting"), "%s", err.msg);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_ctx_reset(c);
        tp_loss_inputs in = {0};
        float x[8] = {0};
        in.logits = tp_from_f32(c, TP_DIMS(2, 4), x);
        in.targets = tp_from_i32(c, TP_DIMS(2), (int[]){0, 1});
        tp_tensor *loss = NULL;
        TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
        TP_CHECKF(strstr(err.msg, "labels"), "%s", err.msg);
        in.logits = NULL;
        TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
        TP_CHECKF(strstr(err.msg, "no logits"), "%s", err.msg);
        tp_ctx_free(c);
        lfx_close(&f);
    }
    create_error("token_weighting", "normalize=sum", &dims, "normalize");
}

/* ---- flow_match and vq_commit -------------------------------------------------------------- */

typedef struct fm_case {
    int n;
    double p[64], t[64];
} fm_case;

static double fm_ref(void *ud) {
    fm_case *k = ud;
    double s = 0;
    for (int i = 0; i < k->n; i++) s += (k->p[i] - k->t[i]) * (k->p[i] - k->t[i]);
    return s / k->n;
}

static void test_flow_match(void) {
    tp_bridge_dims dims = mkdims(4, 4, 10, 1);
    loss_fx f;
    if (!lfx_open(&f, "flow_match", "", &dims)) return;
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_AUX);
    TP_CHECK(f.ps.n == 0);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    /* hand: pred (1,2,3,4), target (1,0,3,0): (4 + 16) / 4 = 5 */
    tp_bridge_out bo = {0};
    bo.n_aux = 3;
    bo.aux_name[0] = "codes";
    bo.aux[0] = tp_zeros(c, TP_I32, TP_DIMS(2));
    bo.aux_name[1] = "flow_target";
    bo.aux[1] = tp_from_f32(c, TP_DIMS(1, 2, 2), (float[]){1, 0, 3, 0});
    bo.aux_name[2] = "flow_pred";
    bo.aux[2] = tp_from_f32(c, TP_DIMS(1, 2, 2), (float[]){1, 2, 3, 4});
    tp_requires_grad(c, bo.aux[2]);
    tp_requires_grad(c, bo.aux[1]);
    tp_loss_inputs in = {0};
    in.bridge = &bo;
    tp_tensor *loss = NULL;
    tp_err err = {0};
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
    if (loss) {
        TP_CHECK_NEAR(tp_item(loss, 0), 5.0, 1e-6);
        TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
        float g[4] = {0}, gt[4] = {9, 9, 9, 9};
        grad_of(bo.aux[2], g);
        grad_of(bo.aux[1], gt);
        const float want[4] = {0, 1, 0, 2}; /* 2 (p - t) / 4 */
        for (int i = 0; i < 4; i++) TP_CHECK_NEAR(g[i], want[i], 1e-6);
        for (int i = 0; i < 4; i++) TP_CHECKF(gt[i] == 0, "flow_target got gradient %g", gt[i]);
    }
    /* random values: value and gradient against the reference */
    fm_case k = {.n = 24};
    fill(k.p, 24, 61, 2.0);
    fill(k.t, 24, 62, 2.0);
    float pf[24], tf[24], g[24];
    to_f(k.p, pf, 24);
    to_f(k.t, tf, 24);
    tp_ctx_reset(c);
    bo.n_aux = 2;
    bo.aux_name[0] = "flow_pred";
    bo.aux[0] = tp_from_f32(c, TP_DIMS(2, 3, 4), pf);
    bo.aux_name[1] = "flow_target";
    bo.aux[1] = tp_from_f32(c, TP_DIMS(2, 3, 4), tf);
    tp_requires_grad(c, bo.aux[0]);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
    if (loss) {
        TP_CHECK_NEAR(tp_item(loss, 0), fm_ref(&k), 1e-5);
        TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
        grad_of(bo.aux[0], g);
        fd_check(fm_ref, &k, k.p, 24, g, "flow_match d/dpred");
    }
    /* errors: shapes differ; a missing output names it and lists what the bridge gave */
    bo.aux[1] = tp_from_f32(c, TP_DIMS(2, 12), tf);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
    bo.aux_name[1] = "vq_commit";
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "'flow_target'") && strstr(err.msg, "flow_pred, vq_commit"), "%s",
              err.msg);
    in.bridge = NULL;
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "'flow_pred'") && strstr(err.msg, "none"), "%s", err.msg);
    tp_ctx_free(c);
    lfx_close(&f);
}

static void test_vq_commit(void) {
    tp_bridge_dims dims = mkdims(4, 4, 10, 1);
    loss_fx f;
    if (!lfx_open(&f, "vq_commit", "", &dims)) return;
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_AUX);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    /* the bridge's commitment term, computed here the way a VQ bridge does:
     * z = (1,2), q = (0,2): ||sg(z) - q||^2 + 0.25 ||z - sg(q)||^2 = 1 + 0.25 = 1.25, and
     * d/dz = 0.25 * 2 (z - q) = (0.5, 0) */
    tp_tensor *z = tp_from_f32(c, TP_DIMS(1, 2), (float[]){1, 2});
    tp_tensor *q = tp_from_f32(c, TP_DIMS(1, 2), (float[]){0, 2});
    tp_requires_grad(c, z);
    tp_tensor *d1 = tp_sub(c, tp_detach(c, z), q), *d2 = tp_sub(c, z, tp_detach(c, q));
    tp_tensor *commit = tp_add(c, tp_sum_all(c, tp_mul(c, d1, d1)),
                               tp_scale(c, tp_sum_all(c, tp_mul(c, d2, d2)), 0.25f));
    tp_bridge_out bo = {0};
    bo.n_aux = 2;
    bo.aux_name[0] = "codes";
    bo.aux[0] = tp_zeros(c, TP_I32, TP_DIMS(1));
    bo.aux_name[1] = "vq_commit";
    bo.aux[1] = commit;
    tp_loss_inputs in = {0};
    in.bridge = &bo;
    tp_tensor *loss = NULL;
    tp_err err = {0};
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
    if (loss) {
        TP_CHECK(loss->ndim == 1 && loss->shape[0] == 1);
        TP_CHECK_NEAR(tp_item(loss, 0), 1.25, 1e-6);
        TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
        float g[2] = {0};
        grad_of(z, g);
        TP_CHECK_NEAR(g[0], 0.5, 1e-6);
        TP_CHECK_NEAR(g[1], 0.0, 1e-6);
    }
    /* a [1,1] scalar is accepted (reshaped to [1]); a vector is not */
    bo.aux[1] = tp_full(c, TP_F32, TP_DIMS(1, 1), 0.75);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
    if (loss) TP_CHECK(loss->ndim == 1 && tp_item(loss, 0) == 0.75);
    bo.aux[1] = tp_full(c, TP_F32, TP_DIMS(3), 0.75);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
    TP_CHECKF(strstr(err.msg, "3 elements"), "%s", err.msg);
    /* the entropy bonus, when the bridge gives one, is added (include_entropy = true) */
    bo.aux[1] = tp_full(c, TP_F32, TP_DIMS(1), 0.75);
    bo.n_aux = 3;
    bo.aux_name[2] = "vq_entropy_bonus";
    bo.aux[2] = tp_full(c, TP_F32, TP_DIMS(1), -0.125);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
    if (loss) TP_CHECK_NEAR(tp_item(loss, 0), 0.625, 1e-7);
    bo.aux[2] = tp_full(c, TP_F32, TP_DIMS(2), -0.125);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
    TP_CHECKF(strstr(err.msg, "vq_entropy_bonus"), "%s", err.msg);
    bo.n_aux = 1;
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "'vq_commit'") && strstr(err.msg, "codes"), "%s", err.msg);
    lfx_close(&f);
    if (lfx_open(&f, "vq_commit", "include_entropy=false", &dims)) {
        bo.n_aux = 3;
        bo.aux[2] = tp_full(c, TP_F32, TP_DIMS(1), -0.125);
        TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
        if (loss) TP_CHECK_NEAR(tp_item(loss, 0), 0.75, 1e-7);
        lfx_close(&f);
    }
    tp_ctx_free(c);
}

/* With the real vq bridge: the loss is its commitment term (+ its entropy bonus), and its
 * gradient reaches the codebook (which learns only through this loss). */
static void test_vq_commit_with_vq_bridge(void) {
    tp_registry *reg = NULL;
    const tp_plugin *vq = NULL;
    tp_err err = {0};
    if (plugin_load(TP_PLUGIN_BRIDGE, "vq", &reg, &vq, &err) != TP_OK) {
        TP_CHECKF(0, "loading bridge vq: %s", err.msg);
        tp_registry_free(reg);
        return;
    }
    const tp_bridge_vtable *bv = vq->desc.vtable;
    tp_bridge_dims dims = mkdims(6, 8, 10, 3);
    for (int ent = 0; ent < 2; ent++) {
        tp_options *o = NULL;
        tp_params ps = {0};
        void *bs = NULL;
        loss_fx f;
        const char *bopts = ent ? "tokens=2,depth=1,heads=2,codebook=5,entropy_weight=0.1"
                                : "tokens=2,depth=1,heads=2,codebook=5";
        if (tp_options_new("bridge", "vq", vq->desc.options, vq->desc.n_options, &o, &err) !=
                TP_OK ||
            tp_options_set_list(o, bopts, &err) != TP_OK ||
            bv->create(o, &dims, &ps, &bs, &err) != TP_OK) {
            TP_CHECKF(0, "vq (%s): %s", bopts, err.msg);
        } else if (lfx_open(&f, "vq_commit", "", &dims)) {
            double hv[2 * 3 * 6];
            fill(hv, 36, 71, 1.0);
            float hf[36];
            to_f(hv, hf, 36);
            tp_ctx *c = tp_ctx_new(TP_CPU);
            tp_ctx_reset(c);
            tp_bridge_out bo;
            tp_tensor *h = tp_from_f32(c, TP_DIMS(2, 3, 6), hf);
            TP_CHECK(bv->forward(bs, c, h, NULL, 1, &bo, &err) == TP_OK);
            double commit = NAN, bonus = 0;
            for (int i = 0; i < bo.n_aux; i++) {
                if (!strcmp(bo.aux_name[i], "vq_commit")) commit = tp_item(bo.aux[i], 0);
                if (!strcmp(bo.aux_name[i], "vq_entropy_bonus")) bonus = tp_item(bo.aux[i], 0);
            }
            TP_CHECKF(!ent || bonus != 0, "vq with entropy_weight gave no bonus");
            tp_loss_inputs in = {0};
            in.bridge = &bo;
            in.soft = bo.soft;
            tp_tensor *loss = NULL;
            TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_OK);
            if (loss) {
                TP_CHECK_NEAR(tp_item(loss, 0), commit + bonus, 1e-6 * fmax(1, fabs(commit)));
                for (int i = 0; i < ps.n; i++) tp_param_zero_grad(ps.p[i]);
                TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
                int reached = 0;
                for (int i = 0; i < ps.n; i++) {
                    if (strcmp(ps.p[i]->name, "codebook") || !ps.p[i]->grad) continue;
                    float *g = ps.p[i]->grad->data;
                    for (int64_t k = 0; k < tp_numel(ps.p[i]); k++) reached |= g[k] != 0;
                }
                TP_CHECKF(reached, "the commitment loss did not reach the codebook");
            }
            tp_ctx_free(c);
            lfx_close(&f);
        }
        if (bs) bv->destroy(bs);
        for (int i = 0; i < ps.n; i++) tp_tensor_free(ps.p[i]);
        tp_options_free(o);
    }
    tp_registry_free(reg);
}

TP_TEST_RUN(TP_CASE(test_infonce_hand), TP_CASE(test_infonce_grads), TP_CASE(test_infonce_errors),
            TP_CASE(test_reconstruction), TP_CASE(test_anchor), TP_CASE(test_bow),
            TP_CASE(test_token_weighting), TP_CASE(test_flow_match), TP_CASE(test_vq_commit),
            TP_CASE(test_vq_commit_with_vq_bridge))
