/* test_losses.c — the ce and diversity loss plugins, loaded as real .so files: values against
 * hand computations in double, gradients against the closed forms (ce) or central finite
 * differences (diversity), needs() per mode, and clear errors on missing or malformed inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_bridges_common.h"

/* One instance of losses/<name>.so; these losses own no parameters. */
static int loss_open(loss_fx *f, const char *name, const char *opts) {
    tp_bridge_dims dims = {.d_sender = 8, .d_receiver = 8, .recv_embed_rms = 0.0027f, .seed = 1};
    if (!lfx_open(f, name, opts, &dims)) return 0;
    TP_CHECKF(f->ps.n == 0, "loss %s registered %d parameters", name, f->ps.n);
    return 1;
}

/* Hand CE with PyTorch's label smoothing for rows [n,v]; grad (optional) gets dL/dlogits. */
static double ref_ce(const float *x, const int *t, int n, int v, double eps, double *grad) {
    int valid = 0;
    for (int i = 0; i < n; i++) valid += t[i] != -100;
    double loss = 0;
    if (grad) memset(grad, 0, sizeof(double) * (size_t)(n * v));
    for (int i = 0; i < n; i++) {
        if (t[i] == -100) continue;
        double mx = x[i * v];
        for (int j = 1; j < v; j++) mx = fmax(mx, x[i * v + j]);
        double z = 0;
        for (int j = 0; j < v; j++) z += exp(x[i * v + j] - mx);
        double lse = mx + log(z), mean_nll = 0;
        for (int j = 0; j < v; j++) mean_nll += (lse - x[i * v + j]) / v;
        loss += (1 - eps) * (lse - x[i * v + t[i]]) + eps * mean_nll;
        if (grad)
            for (int j = 0; j < v; j++) {
                double p = exp(x[i * v + j] - lse);
                double q = (1 - eps) * (j == t[i]) + eps / v;
                grad[i * v + j] = (p - q) / valid;
            }
    }
    return valid ? loss / valid : 0;
}

/* Runs the loss with logits x [n,v] and targets t as the given input slots; checks value and
 * gradient against ref_ce. */
static void check_ce(loss_fx *f, int first_token, const float *x, const int *t, int n, int v,
                     double eps) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_tensor *lg = tp_from_f32(c, TP_DIMS(n, v), x);
    tp_tensor *tg = tp_from_i32(c, TP_DIMS(n), t);
    TP_CHECK(lg && tg && tp_requires_grad(c, lg) == TP_OK);
    tp_loss_inputs in = {0};
    if (first_token) {
        in.first_logits = lg;
        in.labels = tg;
    } else {
        in.logits = lg;
        in.targets = tg;
    }
    tp_tensor *loss = NULL;
    tp_err err = {0};
    tp_status st = f->vt->compute(f->state, c, &in, &loss, &err);
    TP_CHECKF(st == TP_OK && loss, "compute: %s", err.msg);
    if (st == TP_OK && loss) {
        double g_ref[64];
        double want = ref_ce(x, t, n, v, eps, g_ref);
        TP_CHECK(tp_numel(loss) == 1);
        TP_CHECK_NEAR(tp_item(loss, 0), want, 1e-5 * fmax(1, fabs(want)));
        TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
        TP_CHECK(lg->grad != NULL);
        if (lg->grad) {
            float g[64];
            TP_CHECK(tp_to_f32_buffer(lg->grad, g, &err) == TP_OK);
            for (int i = 0; i < n * v; i++) TP_CHECK_NEAR(g[i], g_ref[i], 1e-6);
        }
    }
    tp_ctx_free(c);
}

static void test_ce_sequence(void) {
    loss_fx f;
    if (!loss_open(&f, "ce", "")) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_LOGITS);
    /* 4 label positions over a vocab of 5; one padded position (-100) */
    const float x[20] = {1.0f, -0.5f, 2.0f,  0.3f, -1.2f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
                         3.0f, 1.0f,  -2.0f, 0.5f, 0.25f, 0.1f, 0.2f, 0.3f, 0.4f, -3.0f};
    const int t[4] = {2, -100, 0, 4};
    /* the closed form for row 0, spelled out: -log softmax(x0)[2] */
    double z = exp(1.0) + exp(-0.5) + exp(2.0) + exp(0.3) + exp(-1.2);
    double row0 = log(z) - 2.0;
    TP_CHECK_NEAR(ref_ce(x, (int[]){2, -100, -100, -100}, 4, 5, 0, NULL), row0, 1e-6);
    check_ce(&f, 0, x, t, 4, 5, 0.0);
    /* all positions ignored: 0 */
    check_ce(&f, 0, x, (int[]){-100, -100, -100, -100}, 4, 5, 0.0);
    lfx_close(&f);

    if (!loss_open(&f, "ce", "mode=sequence,label_smoothing=0.1")) return;
    check_ce(&f, 0, x, t, 4, 5, 0.1);
    lfx_close(&f);
}

static void test_ce_first_token(void) {
    loss_fx f;
    if (!loss_open(&f, "ce", "mode=first_token")) return;
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_FIRST_TOKEN);
    const float x[6] = {2.0f, -1.0f, 0.5f, 0.5f, -0.3f, 1.7f};
    const int y[3] = {0, 1, 1};
    /* spelled out: mean(log(1+e^-3), log 2, log(1+e^-2)) */
    double want = (log(1 + exp(-3.0)) + log(2.0) + log(1 + exp(-2.0))) / 3;
    TP_CHECK_NEAR(ref_ce(x, y, 3, 2, 0, NULL), want, 1e-6);
    check_ce(&f, 1, x, y, 3, 2, 0.0);
    /* sequence inputs are not what this mode reads */
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_loss_inputs in = {0};
    in.logits = tp_from_f32(c, TP_DIMS(3, 2), x);
    in.targets = tp_from_i32(c, TP_DIMS(3), y);
    tp_tensor *loss = NULL;
    tp_err err = {0};
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "first_logits") != NULL, "message: %s", err.msg);
    tp_ctx_free(c);
    lfx_close(&f);

    if (!loss_open(&f, "ce", "mode=first_token,label_smoothing=0.2")) return;
    check_ce(&f, 1, x, y, 3, 2, 0.2);
    lfx_close(&f);
}

static void test_ce_errors(void) {
    loss_fx f;
    if (!loss_open(&f, "ce", "")) return;
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_loss_inputs in = {0};
    tp_tensor *loss = NULL;
    tp_err err = {0};
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "no logits") != NULL, "message: %s", err.msg);
    const float x[6] = {0};
    in.logits = tp_from_f32(c, TP_DIMS(3, 2), x);
    in.targets = tp_from_f32(c, TP_DIMS(3), x); /* f32 targets */
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EDTYPE);
    TP_CHECKF(strstr(err.msg, "i32") != NULL, "message: %s", err.msg);
    in.targets = tp_from_i32(c, TP_DIMS(2), (int[]){0, 1});
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
    /* a target id past the vocabulary is the core's error, passed on */
    in.targets = tp_from_i32(c, TP_DIMS(3), (int[]){0, 1, 7});
    tp_status st = f.vt->compute(f.state, c, &in, &loss, &err);
    TP_CHECKF(st != TP_OK, "target 7 with a vocabulary of 2 was accepted");
    tp_ctx_free(c);
    lfx_close(&f);
    /* bad option values are refused by the schema */
    tp_err e2 = {0};
    loss_fx g;
    tp_options *o = NULL;
    if (loss_open(&g, "ce", "")) {
        const tp_plugin_desc *d = &g.plugin->desc;
        TP_CHECK(tp_options_new("loss", "ce", d->options, d->n_options, &o, &e2) == TP_OK);
        TP_CHECK(tp_options_set_list(o, "mode=tokens", &e2) != TP_OK);
        TP_CHECK(tp_options_set_list(o, "label_smoothing=1.5", &e2) != TP_OK);
        tp_options_free(o);
        lfx_close(&g);
    }
}

/* ---- diversity ---------------------------------------------------------------------------- */

/* Reference cosine form over soft [b, k] (flattened sets). */
static double ref_cos(const double *s, int b, int k) {
    if (b < 2) return 0;
    double tot = 0;
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) {
            if (i == j) continue;
            double d = 0, ni = 0, nj = 0;
            for (int q = 0; q < k; q++) {
                d += s[i * k + q] * s[j * k + q];
                ni += s[i * k + q] * s[i * k + q];
                nj += s[j * k + q] * s[j * k + q];
            }
            tot += d / (sqrt(ni) * sqrt(nj));
        }
    return tot / (b * (b - 1));
}

/* Reference entropy form: sum zbar log zbar, zbar = softmax(mean_b(f_b/rms(f_b))/tau). */
static double ref_ent(const double *s, int b, int k, double tau) {
    double ubar[256] = {0};
    for (int i = 0; i < b; i++) {
        double ss = 0;
        for (int q = 0; q < k; q++) ss += s[i * k + q] * s[i * k + q];
        double rms = sqrt(ss / k);
        for (int q = 0; q < k; q++) ubar[q] += s[i * k + q] / rms / b;
    }
    double mx = ubar[0] / tau;
    for (int q = 1; q < k; q++) mx = fmax(mx, ubar[q] / tau);
    double z = 0;
    for (int q = 0; q < k; q++) z += exp(ubar[q] / tau - mx);
    double lse = mx + log(z), acc = 0;
    for (int q = 0; q < k; q++) {
        double lp = ubar[q] / tau - lse;
        acc += exp(lp) * lp;
    }
    return acc;
}

/* Runs the plugin on soft [b,m,d]; returns the loss and fills grad (dL/dsoft) if non-NULL. */
static double run_div(loss_fx *f, const float *soft, int b, int m, int d, float *grad) {
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_tensor *s = tp_from_f32(c, TP_DIMS(b, m, d), soft);
    if (grad) tp_requires_grad(c, s);
    tp_loss_inputs in = {0};
    in.soft = s;
    tp_tensor *loss = NULL;
    tp_err err = {0};
    double v = NAN;
    tp_status st = f->vt->compute(f->state, c, &in, &loss, &err);
    TP_CHECKF(st == TP_OK && loss, "compute: %s", err.msg);
    if (st == TP_OK && loss) {
        TP_CHECK(tp_numel(loss) == 1);
        v = tp_item(loss, 0);
        if (grad) {
            TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
            if (s->grad)
                TP_CHECK(tp_to_f32_buffer(s->grad, grad, &err) == TP_OK);
            else
                memset(grad, 0, sizeof(float) * (size_t)(b * m * d));
        }
    }
    tp_ctx_free(c);
    return v;
}

/* Value vs ref (double), gradient vs central differences of ref. */
static void check_div(loss_fx *f, int entropy, double tau, const float *soft, int b, int m, int d) {
    int n = b * m * d;
    double s[256];
    for (int i = 0; i < n; i++) s[i] = soft[i];
    double want = entropy ? ref_ent(s, b, m * d, tau) : ref_cos(s, b, m * d);
    float g[256];
    double got = run_div(f, soft, b, m, d, g);
    TP_CHECK_NEAR(got, want, 1e-5 * fmax(1, fabs(want)));
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        const double eps = 1e-5;
        double keep = s[i];
        s[i] = keep + eps;
        double lp = entropy ? ref_ent(s, b, m * d, tau) : ref_cos(s, b, m * d);
        s[i] = keep - eps;
        double lm = entropy ? ref_ent(s, b, m * d, tau) : ref_cos(s, b, m * d);
        s[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        num += (fd - g[i]) * (fd - g[i]);
        den += fd * fd;
    }
    if (b >= 2 || entropy) {
        TP_CHECKF(den > 0, "reference gradient is zero: the case is degenerate");
        TP_CHECKF(sqrt(num) <= 1e-3 * sqrt(den), "gradient error %g (|fd| %g)", sqrt(num),
                  sqrt(den));
    }
}

static void fill(float *x, int n, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = 2.0f * (float)(seed >> 8) / 16777216.0f - 1.0f;
    }
}

static void test_diversity_cosine(void) {
    loss_fx f;
    if (!loss_open(&f, "diversity", "")) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_SOFT);
    /* a hand case: 3 examples, M=1, D=2: (1,0), (0,1), (1,1) ->
     * cos = 0, 1/sqrt2, 1/sqrt2 (each pair twice) -> mean = (2*sqrt2/2)/3 */
    const float h3[6] = {1, 0, 0, 1, 1, 1};
    double want = (0 + 2 * (1 / sqrt(2.0))) / 3;
    TP_CHECK_NEAR(run_div(&f, h3, 3, 1, 2, NULL), want, 1e-6);
    /* identical sets: 1; opposite sets: -1 */
    const float same[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    TP_CHECK_NEAR(run_div(&f, same, 2, 2, 2, NULL), 1.0, 1e-6);
    const float opp[4] = {1, -2, -1, 2};
    TP_CHECK_NEAR(run_div(&f, opp, 2, 1, 2, NULL), -1.0, 1e-6);
    /* a batch of one: 0 */
    TP_CHECK_NEAR(run_div(&f, h3, 1, 1, 2, NULL), 0.0, 0);
    float x[60];
    fill(x, 60, 3);
    check_div(&f, 0, 1, x, 4, 3, 5);
    lfx_close(&f);
}

static void test_diversity_entropy(void) {
    loss_fx f;
    if (!loss_open(&f, "diversity", "form=entropy")) return;
    TP_CHECK(f.vt->needs(f.state) == TP_NEED_SOFT);
    /* a hand case: 2 examples, M=1, D=2: (1,1) and (3,-3)/... -> u = (1,1), (1,-1); ubar = (1,0)
     * zbar = softmax(1,0) = (e/(e+1), 1/(e+1)); loss = sum zbar log zbar */
    const float h2[4] = {1, 1, 3, -3};
    double p = exp(1.0) / (exp(1.0) + 1), q = 1 - p;
    TP_CHECK_NEAR(run_div(&f, h2, 2, 1, 2, NULL), p * log(p) + q * log(q), 1e-6);
    float x[60];
    fill(x, 60, 7);
    check_div(&f, 1, 1.0, x, 4, 3, 5);
    check_div(&f, 1, 1.0, x, 1, 6, 5); /* a batch of one still has a value and a gradient */
    /* collapse scores worse (higher loss) than a diverse batch */
    float col[60];
    for (int i = 0; i < 4; i++) memcpy(col + i * 15, x, 15 * sizeof(float));
    double l_col = run_div(&f, col, 4, 3, 5, NULL), l_div = run_div(&f, x, 4, 3, 5, NULL);
    TP_CHECKF(l_col > l_div, "collapsed batch %g vs diverse %g", l_col, l_div);
    /* bounded by -log(M*D) (uniform zbar) */
    TP_CHECK(l_div >= -log(15.0) - 1e-6);
    lfx_close(&f);

    if (!loss_open(&f, "diversity", "form=entropy,tau=0.25")) return;
    check_div(&f, 1, 0.25, x, 4, 3, 5);
    lfx_close(&f);
}

static void test_diversity_errors(void) {
    loss_fx f;
    if (!loss_open(&f, "diversity", "")) return;
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_loss_inputs in = {0};
    tp_tensor *loss = NULL;
    tp_err err = {0};
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "soft tokens") != NULL, "message: %s", err.msg);
    const float x[6] = {1, 2, 3, 4, 5, 6};
    in.soft = tp_from_f32(c, TP_DIMS(2, 3), x);
    TP_CHECK(f.vt->compute(f.state, c, &in, &loss, &err) == TP_ESHAPE);
    TP_CHECKF(strstr(err.msg, "[B,M,D]") != NULL, "message: %s", err.msg);
    tp_ctx_free(c);
    lfx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_ce_sequence), TP_CASE(test_ce_first_token), TP_CASE(test_ce_errors),
            TP_CASE(test_diversity_cosine), TP_CASE(test_diversity_entropy),
            TP_CASE(test_diversity_errors))
