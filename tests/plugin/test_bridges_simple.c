/* test_bridges_simple.c — the mlp, linear, meanpool, identity and prompt_tuning bridges, loaded
 * as the real .so files: output shapes, per-token RMS = |alpha|, padded positions inert, exact
 * outputs of the weightless floors (meanpool, identity) and of linear, finite-difference
 * gradients of every parameter on tiny configurations, flags, init determinism, option and
 * input errors. */
#include "test_bridges_common.h"

static const tp_bridge_dims dims68 = {6, 8, 50, 40, 0.0027f, 1234, 0};
static const tp_bridge_dims dims88 = {8, 8, 50, 40, 0.0027f, 1234, 0};

/* Shape [2,3,8], RMS of every soft token = 0.0027 (calibrated alpha), metric alpha, padded
 * sender positions without influence (except prompt_tuning, which reads no sender state). */
static void check_basic(const char *name, const tp_bridge_dims *dims, uint32_t want_flags) {
    fixture f;
    if (!fx_open(&f, name)) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "tokens=3", dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s: %s", name, err.msg);
    if (st != TP_OK) goto out;
    TP_CHECK(f.vt->num_tokens(in.state) == 3);
    TP_CHECKF(bridge_flags(&f, &in) == want_flags, "%s: flags %u, expected %u", name,
              bridge_flags(&f, &in), want_flags);
    unsigned seed = 3;
    tp_tensor *h = persist(TP_DIMS(2, 5, dims->d_sender), 2.0f, &seed);
    tp_tensor *mask = make_mask(2, 5, (int[]){5, 3});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float a[48], b[48];
    tp_bridge_out out;
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, a, 48, &out) == 48);
    TP_CHECK(out.soft->ndim == 3 && out.soft->shape[0] == 2 && out.soft->shape[1] == 3 &&
             out.soft->shape[2] == 8);
    for (int t = 0; t < 6; t++) TP_CHECK_NEAR(row_rms(a, t, 8), 0.0027, 0.0027 * 1e-4);
    double alpha = 0;
    TP_CHECK(metric_named(&out, "alpha", &alpha));
    TP_CHECK_NEAR(alpha, 0.0027, 1e-9);
    /* padded positions of example 1 (t >= 3) get wild values: nothing may change */
    float *hp = h->data;
    for (int t = 3; t < 5; t++)
        for (int d = 0; d < dims->d_sender; d++)
            hp[(1 * 5 + t) * dims->d_sender + d] = 1000.0f * (float)(t + d + 1);
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 48, NULL) == 48);
    TP_CHECKF(memcmp(a, b, sizeof a) == 0, "%s: padded sender positions changed the output", name);
    /* a real token of example 1 matters (not for prompt tuning, which ignores the sender) */
    hp[(1 * 5 + 2) * dims->d_sender + 1] += 1.5f;
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 48, NULL) == 48);
    double d0 = 0, d1 = 0;
    for (int i = 0; i < 24; i++) d0 = fmax(d0, fabs((double)a[i] - b[i]));
    for (int i = 24; i < 48; i++) d1 = fmax(d1, fabs((double)a[i] - b[i]));
    TP_CHECKF(d0 == 0, "%s: example 0 changed when only example 1's input did", name);
    if (want_flags & TP_BRIDGE_RECEIVER_TEXT)
        TP_CHECKF(d1 == 0, "%s: the sender changed the soft prompt", name);
    else
        TP_CHECKF(d1 > 1e-7, "%s: a real token of example 1 had no effect", name);
    /* a wrongly shaped input is an error naming the expected shape, not a crash */
    tp_tensor *bad = persist(TP_DIMS(1, 3, dims->d_sender + 1), 1.0f, &seed);
    char want[32];
    snprintf(want, sizeof want, "[B,T,%d]", dims->d_sender);
    tp_ctx_reset(c);
    TP_CHECK(f.vt->forward(in.state, c, bad, NULL, 0, &out, &err) == TP_ESHAPE);
    TP_CHECKF(strstr(err.msg, want) != NULL, "%s: '%s' lacks %s", name, err.msg, want);
    tp_tensor_free(bad);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    inst_free(&f, &in);
out:
    fx_close(&f);
}

static void test_basic(void) {
    check_basic("mlp", &dims68, 0);
    check_basic("linear", &dims68, 0);
    check_basic("meanpool", &dims88, 0);
    check_basic("identity", &dims88, 0);
    check_basic("prompt_tuning", &dims68, TP_BRIDGE_RECEIVER_TEXT);
}

/* alpha * x / sqrt(mean(x^2) + 1e-8) of a vector, as tp_rmsnorm computes it */
static void rms_alpha(const double *x, int d, double alpha, double *y) {
    double ss = 0;
    for (int k = 0; k < d; k++) ss += x[k] * x[k];
    double inv = 1.0 / sqrt(ss / d + 1e-8);
    for (int k = 0; k < d; k++) y[k] = alpha * x[k] * inv;
}

/* meanpool: mean of the real tokens; identity: the last real token, with a row padded on the
 * left as well, so "last" really means the last mask-1 position. */
static void test_floors_exact(void) {
    for (int which = 0; which < 2; which++) {
        const char *name = which ? "identity" : "meanpool";
        fixture f;
        if (!fx_open(&f, name)) continue;
        inst in;
        tp_err err = {0};
        tp_status st = inst_new(&f, "tokens=2,alpha_init=0.5", &dims88, &in, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(in.params.n == 1 && param_named(&in, "alpha"));
            unsigned seed = 7;
            tp_tensor *h = persist(TP_DIMS(2, 4, 8), 3.0f, &seed);
            tp_tensor *mask = make_mask(2, 4, (int[]){3, 4});
            float *mp = mask->data;
            mp[4 + 0] = 0; /* example 1: positions 1..3 real (left pad) ... */
            mp[4 + 3] = 0; /* ... and position 3 padded: real tokens are 1 and 2 */
            tp_ctx *c = tp_ctx_new(TP_CPU);
            float got[32];
            TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, got, 32, NULL) == 32);
            const float *hp = h->data;
            for (int b = 0; b < 2; b++) {
                double v[8] = {0}, y[8];
                if (which) {
                    int last = 2; /* example 0: lens 3; example 1: real 1..2 */
                    for (int k = 0; k < 8; k++) v[k] = hp[(b * 4 + last) * 8 + k];
                } else {
                    double n = 0;
                    for (int t = 0; t < 4; t++) {
                        if (mp[b * 4 + t] == 0) continue;
                        n++;
                        for (int k = 0; k < 8; k++) v[k] += hp[(b * 4 + t) * 8 + k];
                    }
                    for (int k = 0; k < 8; k++) v[k] /= n;
                }
                rms_alpha(v, 8, 0.5, y);
                for (int m = 0; m < 2; m++)
                    for (int k = 0; k < 8; k++)
                        TP_CHECKF(fabs(got[(b * 2 + m) * 8 + k] - y[k]) < 1e-6,
                                  "%s: soft[%d,%d,%d] = %g, expected %g", name, b, m, k,
                                  got[(b * 2 + m) * 8 + k], y[k]);
            }
            /* an example without any real token is an error, not a silent zero */
            float *m1 = mask->data;
            for (int t = 0; t < 4; t++) m1[4 + t] = 0;
            tp_ctx_reset(c);
            tp_bridge_out out;
            TP_CHECK(f.vt->forward(in.state, c, h, mask, 0, &out, &err) != TP_OK);
            TP_CHECKF(strstr(err.msg, "no tokens") != NULL, "%s: '%s'", name, err.msg);
            tp_ctx_free(c);
            tp_tensor_free(h);
            tp_tensor_free(mask);
        }
        inst_free(&f, &in);
        /* no weights: the widths must agree, and the message names both */
        expect_error(&f, "", &dims68, "sender width (6) must equal the receiver width (8)");
        fx_close(&f);
    }
}

/* linear: every soft token is RMSNorm(W mean + b) * alpha, the same in all M slots. */
static void test_linear_exact(void) {
    fixture f;
    if (!fx_open(&f, "linear")) return;
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "tokens=4,alpha_init=2,alpha_learnable=false", &dims68, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_tensor *w = param_named(&in, "proj.weight"), *bias = param_named(&in, "proj.bias");
        TP_CHECK(in.params.n == 2 && w && bias && w->shape[0] == 8 && w->shape[1] == 6);
        /* nn.Linear init: U(+-1/sqrt(6)) */
        double bound = 1.0 / sqrt(6.0), mx = 0;
        for (int i = 0; w && i < 48; i++) mx = fmax(mx, fabs(((float *)w->data)[i]));
        TP_CHECK(mx <= bound && mx > 0.5 * bound);
        unsigned seed = 9;
        tp_tensor *h = persist(TP_DIMS(1, 3, 6), 1.0f, &seed);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        float got[32];
        TP_CHECK(run_fwd(&f, &in, c, h, NULL, 0, NULL, got, 32, NULL) == 32);
        double p[6] = {0}, x[8], y[8];
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < 6; k++) p[k] += ((float *)h->data)[t * 6 + k] / 3.0;
        for (int o = 0; o < 8; o++) {
            x[o] = ((float *)bias->data)[o];
            for (int k = 0; k < 6; k++) x[o] += (double)((float *)w->data)[o * 6 + k] * p[k];
        }
        rms_alpha(x, 8, 2.0, y);
        for (int m = 0; m < 4; m++)
            for (int o = 0; o < 8; o++) TP_CHECK_NEAR(got[m * 8 + o], y[o], 1e-5);
        tp_ctx_free(c);
        tp_tensor_free(h);
    }
    inst_free(&f, &in);
    fx_close(&f);
}

static void check_grad(const char *name, const char *opts, const tp_bridge_dims *dims,
                       int expect_params) {
    fixture f;
    if (!fx_open(&f, name)) return;
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, opts, dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s %s: %s", name, opts, err.msg);
    if (st == TP_OK) {
        TP_CHECKF(in.params.n == expect_params, "%s: %d params, expected %d", name, in.params.n,
                  expect_params);
        unsigned seed = 21;
        tp_tensor *h = persist(TP_DIMS(2, 4, dims->d_sender), 1.5f, &seed);
        tp_tensor *mask = make_mask(2, 4, (int[]){4, 2});
        grad_check(&f, &in, h, mask, NULL, NULL);
        tp_tensor_free(h);
        tp_tensor_free(mask);
    }
    inst_free(&f, &in);
    fx_close(&f);
}

static void test_grads(void) {
    check_grad("mlp", "tokens=2,hidden=5,alpha_init=0.7", &dims68, 7);
    check_grad("linear", "tokens=3,alpha_init=0.7", &dims68, 3);
    check_grad("meanpool", "tokens=2,alpha_init=0.7", &dims88, 1);
    check_grad("identity", "tokens=2,alpha_init=0.7", &dims88, 1);
    check_grad("prompt_tuning", "tokens=3,alpha_init=0.7", &dims68, 2);
}

static void test_mlp_shapes_and_init(void) {
    fixture f;
    if (!fx_open(&f, "mlp")) return;
    inst in;
    tp_err err = {0};
    tp_bridge_dims d = {12, 16, 50, 40, 0.0027f, 5, 0};
    tp_status st = inst_new(&f, "tokens=4,hidden=32", &d, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_tensor *w1 = param_named(&in, "fc1.weight"), *w2 = param_named(&in, "fc2.weight");
        tp_tensor *w3 = param_named(&in, "fc3.weight"), *b3 = param_named(&in, "fc3.bias");
        TP_CHECK(w1 && w1->shape[0] == 32 && w1->shape[1] == 12);
        TP_CHECK(w2 && w2->shape[0] == 32 && w2->shape[1] == 32);
        TP_CHECK(w3 && w3->shape[0] == 4 * 16 && w3->shape[1] == 32);
        TP_CHECK(b3 && b3->shape[0] == 64);
    }
    inst_free(&f, &in);
    /* the default hidden width is the study's 2048 */
    st = inst_new(&f, "tokens=1", &(tp_bridge_dims){4, 4, 1, 1, 0.0027f, 1, 0}, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    tp_tensor *w1 = st == TP_OK ? param_named(&in, "fc1.weight") : NULL;
    TP_CHECK(w1 && w1->shape[0] == 2048);
    inst_free(&f, &in);
    fx_close(&f);
}

static void test_determinism(void) {
    const char *names[] = {"mlp", "linear", "prompt_tuning"};
    for (int i = 0; i < 3; i++) {
        fixture f;
        if (!fx_open(&f, names[i])) continue;
        inst a, b, d;
        tp_err err = {0};
        tp_bridge_dims other = dims68;
        other.seed = 4321;
        const char *o = i == 0 ? "tokens=2,hidden=4" : "tokens=2";
        TP_CHECK(inst_new(&f, o, &dims68, &a, &err) == TP_OK);
        TP_CHECK(inst_new(&f, o, &dims68, &b, &err) == TP_OK);
        TP_CHECK(inst_new(&f, o, &other, &d, &err) == TP_OK);
        if (a.state && b.state && d.state && a.params.n == b.params.n && a.params.n == d.params.n) {
            int same = 1, differ = 0;
            for (int k = 0; k < a.params.n; k++) {
                size_t bytes = (size_t)tp_numel(a.params.p[k]) * sizeof(float);
                if (memcmp(a.params.p[k]->data, b.params.p[k]->data, bytes)) same = 0;
                if (memcmp(a.params.p[k]->data, d.params.p[k]->data, bytes)) differ = 1;
            }
            TP_CHECKF(same, "%s: same seed gave different parameters", names[i]);
            TP_CHECKF(differ, "%s: a different seed gave identical parameters", names[i]);
        }
        inst_free(&f, &a);
        inst_free(&f, &b);
        inst_free(&f, &d);
        fx_close(&f);
    }
}

static void test_option_errors(void) {
    const char *names[] = {"mlp", "linear", "meanpool", "identity", "prompt_tuning"};
    for (int i = 0; i < 5; i++) {
        fixture f;
        if (!fx_open(&f, names[i])) continue;
        const tp_bridge_dims *d = i == 2 || i == 3 ? &dims88 : &dims68;
        expect_error(&f, "tokens=0", d, "tokens");
        expect_error(&f, "alpha_init=bogus", d, "alpha_init");
        tp_bridge_dims nocal = *d;
        nocal.recv_embed_rms = 0;
        expect_error(&f, "", &nocal, "recv_embed_rms");
        tp_bridge_dims bad = *d;
        bad.d_sender = 0;
        expect_error(&f, "", &bad, "sender width");
        fx_close(&f);
    }
    fixture f;
    if (fx_open(&f, "mlp")) {
        expect_error(&f, "hidden=0", &dims68, "hidden");
        fx_close(&f);
    }
    if (fx_open(&f, "prompt_tuning")) {
        expect_error(&f, "normalizer=whiten", &dims68, "normalizer");
        fx_close(&f);
    }
}

TP_TEST_RUN(TP_CASE(test_basic), TP_CASE(test_floors_exact), TP_CASE(test_linear_exact),
            TP_CASE(test_grads), TP_CASE(test_mlp_shapes_and_init), TP_CASE(test_determinism),
            TP_CASE(test_option_errors))
