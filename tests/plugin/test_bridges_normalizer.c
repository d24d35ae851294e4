/* test_bridges_normalizer.c — the `normalizer` option (plugins/bridges/normalizer.h) through
 * real bridges: calibration_examples, the error of a forward before calibrate, statistics of
 * the first N examples accumulated over calls (extra rows ignored, padding excluded) checked
 * through meanpool's exact output, whiten_recolour with the receiver embedding statistics,
 * frozen vs learnable (parameters, values, finite-difference gradients through mlp), perceiver
 * with the normalizer against the plain perceiver on hand-whitened states, and the
 * errors (width mismatch for recolour, missing recv_embed, calibrate with normalizer off). */
#include "test_bridges_common.h"

static const tp_bridge_dims dims88 = {8, 8, 50, 40, 0.0027f, 1234, 0};

static tp_status calibrate(fixture *f, inst *in, tp_ctx *c, tp_tensor *h, tp_tensor *m,
                           tp_tensor *e, tp_err *err) {
    if (!TP_BRIDGE_HAS(f->vt, calibrate)) return TP_EINVAL;
    tp_ctx_reset(c);
    return f->vt->calibrate(in->state, c, h, m, e, err);
}

/* Per-dimension mean and sd (+1e-6) over the real tokens of examples [0, n) of h [B,T,8]. */
static void stats(const tp_tensor *h, const tp_tensor *mask, int n, double *mu, double *sd) {
    int64_t t = h->shape[1];
    const float *hp = h->data, *mp = mask->data;
    double s[8] = {0}, ss[8] = {0}, cnt = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < t; j++) {
            if (mp[i * t + j] == 0) continue;
            cnt++;
            for (int k = 0; k < 8; k++) {
                double x = hp[(i * t + j) * 8 + k];
                s[k] += x;
                ss[k] += x * x;
            }
        }
    for (int k = 0; k < 8; k++) {
        mu[k] = s[k] / cnt;
        sd[k] = sqrt(ss[k] / cnt - mu[k] * mu[k]) + 1e-6;
    }
}

/* meanpool's output for example e of h under the map x -> (x - mu)/sd * sr + mr. */
static void meanpool_ref(const tp_tensor *h, const tp_tensor *mask, int e, const double *mu,
                         const double *sd, const double *mr, const double *sr, double alpha,
                         double *y) {
    int64_t t = h->shape[1];
    const float *hp = h->data, *mp = mask->data;
    double v[8] = {0}, cnt = 0, ssum = 0;
    for (int j = 0; j < t; j++) {
        if (mp[e * t + j] == 0) continue;
        cnt++;
        for (int k = 0; k < 8; k++) {
            double x = (hp[(e * t + j) * 8 + k] - mu[k]) / sd[k];
            v[k] += sr ? x * sr[k] + mr[k] : x;
        }
    }
    for (int k = 0; k < 8; k++) v[k] /= cnt;
    for (int k = 0; k < 8; k++) ssum += v[k] * v[k];
    for (int k = 0; k < 8; k++) y[k] = alpha * v[k] / sqrt(ssum / 8 + 1e-8);
}

static void test_whiten(void) {
    fixture f;
    if (!fx_open(&f, "meanpool")) return;
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "tokens=1,alpha_init=1", &dims88, &in, &err);
    TP_CHECK(st == TP_OK && TP_BRIDGE_HAS(f.vt, calibration_examples));
    if (st == TP_OK) TP_CHECK(f.vt->calibration_examples(in.state) == 0);
    inst_free(&f, &in);
    st = inst_new(&f, "tokens=2,alpha_init=1,normalizer=whiten,normalizer_examples=5", &dims88, &in,
                  &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    TP_CHECK(f.vt->calibration_examples(in.state) == 5);
    TP_CHECK(in.params.n == 1); /* frozen statistics are no parameters */
    unsigned seed = 12;
    tp_tensor *h = persist(TP_DIMS(7, 4, 8), 3.0f, &seed);
    float *hp = h->data;
    for (int i = 0; i < 7 * 4 * 8; i++) hp[i] += (float)(i % 8) - 2.0f; /* a mean per dim */
    tp_tensor *mask = make_mask(7, 4, (int[]){4, 2, 3, 1, 4, 2, 3});
    for (int i = 0; i < 7; i++) /* padding is garbage that must not enter the statistics */
        for (int j = 0; j < 4; j++)
            if (((float *)mask->data)[i * 4 + j] == 0)
                for (int k = 0; k < 8; k++) hp[(i * 4 + j) * 8 + k] = 1e4f;
    tp_ctx *c = tp_ctx_new(TP_CPU);
    /* before calibration: an error that says what the host must do */
    tp_ctx_reset(c);
    tp_bridge_out out;
    st = f.vt->forward(in.state, c, h, mask, 0, &out, &err);
    TP_CHECK(st != TP_OK && strstr(err.msg, "calibrate") && strstr(err.msg, "5"));
    /* two calls: rows 0..2, then rows 3..6 of which only 3..4 count (N = 5) */
    tp_tensor *h1 = persist(TP_DIMS(3, 4, 8), 1.0f, &seed), *m1 = make_mask(3, 4, (int[]){1, 1, 1});
    tp_tensor *h2 = persist(TP_DIMS(4, 4, 8), 1.0f, &seed),
              *m2 = make_mask(4, 4, (int[]){1, 1, 1, 1});
    memcpy(h1->data, hp, 3 * 32 * sizeof(float));
    memcpy(m1->data, mask->data, 3 * 4 * sizeof(float));
    memcpy(h2->data, hp + 3 * 32, 4 * 32 * sizeof(float));
    memcpy(m2->data, (float *)mask->data + 12, 4 * 4 * sizeof(float));
    TP_CHECK(calibrate(&f, &in, c, h1, m1, NULL, &err) == TP_OK);
    TP_CHECK(calibrate(&f, &in, c, h2, m2, NULL, &err) == TP_OK);
    double mu[8], sd[8], y[8];
    stats(h, mask, 5, mu, sd);
    float got[7 * 2 * 8];
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, got, 7 * 16, &out) == 7 * 16);
    double worst = 0;
    for (int e = 0; e < 7; e++) {
        meanpool_ref(h, mask, e, mu, sd, NULL, NULL, 1.0, y);
        for (int m = 0; m < 2; m++)
            for (int k = 0; k < 8; k++) worst = fmax(worst, fabs(got[(e * 2 + m) * 8 + k] - y[k]));
    }
    TP_CHECKF(worst < 2e-5, "whitened meanpool differs from the hand computation by %g", worst);
    double ne = 0;
    TP_CHECK(metric_named(&out, "normalizer_examples", &ne));
    TP_CHECK_NEAR(ne, 5, 0);
    /* a third call changes nothing: N examples were seen */
    TP_CHECK(calibrate(&f, &in, c, h2, m2, NULL, &err) == TP_OK);
    float again[7 * 16];
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, again, 7 * 16, NULL) == 7 * 16);
    TP_CHECK(memcmp(got, again, sizeof got) == 0);
    /* recolour needs the receiver embedding */
    inst r;
    st = inst_new(&f, "tokens=1,alpha_init=1,normalizer=whiten_recolour", &dims88, &r, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(calibrate(&f, &r, c, h1, m1, NULL, &err) != TP_OK);
        TP_CHECK(strstr(err.msg, "recv_embed") != NULL);
    }
    inst_free(&f, &r);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    tp_tensor_free(h1);
    tp_tensor_free(m1);
    tp_tensor_free(h2);
    tp_tensor_free(m2);
    inst_free(&f, &in);
    fx_close(&f);
}

/* whiten_recolour: columns of the receiver embedding give mu_r, sd_r; frozen and learnable
 * give the same output; learnable exposes the calibrated values as parameters. */
static void test_recolour_and_learnable(void) {
    fixture f;
    if (!fx_open(&f, "meanpool")) return;
    unsigned seed = 40;
    tp_tensor *h = persist(TP_DIMS(3, 5, 8), 2.0f, &seed);
    tp_tensor *mask = make_mask(3, 5, (int[]){5, 3, 4});
    tp_tensor *emb = persist(TP_DIMS(300, 8), 0.01f, &seed); /* > one 256-row block */
    float *ep = emb->data;
    for (int i = 0; i < 300 * 8; i++) ep[i] = ep[i] * (float)(1 + i % 8) + 0.001f * (float)(i % 8);
    double mr[8], sr[8];
    for (int k = 0; k < 8; k++) {
        double s = 0, ss = 0;
        for (int i = 0; i < 300; i++) {
            s += ep[i * 8 + k];
            ss += (double)ep[i * 8 + k] * ep[i * 8 + k];
        }
        mr[k] = s / 300;
        sr[k] = sqrt(ss / 300 - mr[k] * mr[k]) + 1e-6;
    }
    double mu[8], sd[8], y[8];
    stats(h, mask, 3, mu, sd);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float out[2][3 * 8];
    for (int learn = 0; learn < 2; learn++) {
        inst in;
        tp_err err = {0};
        char opts[128];
        snprintf(opts, sizeof opts,
                 "tokens=1,alpha_init=0.3,normalizer=whiten_recolour,normalizer_examples=3,"
                 "normalizer_learnable=%s",
                 learn ? "true" : "false");
        tp_status st = inst_new(&f, opts, &dims88, &in, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st != TP_OK) continue;
        TP_CHECK(in.params.n == (learn ? 5 : 1));
        TP_CHECK(calibrate(&f, &in, c, h, mask, emb, &err) == TP_OK);
        TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, out[learn], 24, NULL) == 24);
        for (int e = 0; e < 3; e++) {
            meanpool_ref(h, mask, e, mu, sd, mr, sr, 0.3, y);
            for (int k = 0; k < 8; k++)
                TP_CHECKF(fabs(out[learn][e * 8 + k] - y[k]) < 1e-5,
                          "learnable=%d: soft[%d,%d] %g, by hand %g", learn, e, k,
                          out[learn][e * 8 + k], y[k]);
        }
        if (learn) {
            tp_tensor *pm = param_named(&in, "normalizer.mu_s");
            tp_tensor *ps = param_named(&in, "normalizer.sd_r");
            TP_CHECK(pm && ps && param_named(&in, "normalizer.sd_s") &&
                     param_named(&in, "normalizer.mu_r"));
            for (int k = 0; pm && ps && k < 8; k++) {
                TP_CHECK_NEAR(((float *)pm->data)[k], mu[k], 1e-5 * (1 + fabs(mu[k])));
                TP_CHECK_NEAR(((float *)ps->data)[k], sr[k], 1e-5 * sr[k]);
            }
        }
        inst_free(&f, &in);
    }
    TP_CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    tp_tensor_free(emb);
    fx_close(&f);
}

/* Learnable statistics get correct gradients (mlp, sender 6 -> receiver 8, whiten). */
static void test_learnable_grad_and_errors(void) {
    fixture f;
    if (!fx_open(&f, "mlp")) return;
    tp_bridge_dims d = {6, 8, 50, 40, 0.0027f, 3, 0};
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f,
                            "tokens=2,hidden=4,alpha_init=0.7,normalizer=whiten,"
                            "normalizer_learnable=true,normalizer_examples=2",
                            &d, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        unsigned seed = 8;
        tp_tensor *h = persist(TP_DIMS(2, 4, 6), 1.5f, &seed);
        tp_tensor *mask = make_mask(2, 4, (int[]){4, 3});
        tp_ctx *c = tp_ctx_new(TP_CPU);
        TP_CHECK(calibrate(&f, &in, c, h, mask, NULL, &err) == TP_OK);
        tp_ctx_free(c);
        TP_CHECK(param_named(&in, "normalizer.mu_s") && param_named(&in, "normalizer.sd_s"));
        grad_check(&f, &in, h, mask, NULL, NULL);
        tp_tensor_free(h);
        tp_tensor_free(mask);
    }
    inst_free(&f, &in);
    /* calibrate with the normalizer off is a host bug worth reporting */
    st = inst_new(&f, "tokens=1,hidden=2", &d, &in, &err);
    if (st == TP_OK) {
        unsigned seed = 1;
        tp_tensor *h = persist(TP_DIMS(1, 2, 6), 1.0f, &seed);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        TP_CHECK(calibrate(&f, &in, c, h, NULL, NULL, &err) != TP_OK);
        TP_CHECK(strstr(err.msg, "normalizer = off") != NULL);
        tp_ctx_free(c);
        tp_tensor_free(h);
    }
    inst_free(&f, &in);
    expect_error(&f, "normalizer=zca", &d, "normalizer");
    /* recolour maps dimensions one to one */
    expect_error(&f, "normalizer=whiten_recolour", &d,
                 "sender width is 6 and the receiver width 8");
    expect_error(&f, "normalizer=whiten,normalizer_examples=0", &d, "normalizer_examples");
    fx_close(&f);
}

/* perceiver with normalizer = whiten equals the plain perceiver (same seed, same parameters)
 * fed the whitened states by hand. */
static void test_perceiver(void) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    tp_bridge_dims d = {8, 8, 50, 40, 0.0027f, 5, 0};
    inst a, b;
    tp_err err = {0};
    tp_status sa = inst_new(&f, "tokens=2,depth=1,heads=2,alpha_init=1", &d, &a, &err);
    tp_status sb = inst_new(&f,
                            "tokens=2,depth=1,heads=2,alpha_init=1,normalizer=whiten,"
                            "normalizer_examples=3",
                            &d, &b, &err);
    TP_CHECKF(sa == TP_OK && sb == TP_OK, "%s", err.msg);
    if (sa == TP_OK && sb == TP_OK) {
        TP_CHECK(a.params.n == b.params.n);
        TP_CHECK(f.vt->calibration_examples(b.state) == 3);
        unsigned seed = 6;
        tp_tensor *h = persist(TP_DIMS(3, 4, 8), 4.0f, &seed);
        float *hp = h->data;
        for (int i = 0; i < 96; i++) hp[i] += (float)(i % 8);
        tp_tensor *mask = make_mask(3, 4, (int[]){4, 2, 3});
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_bridge_out out;
        tp_ctx_reset(c);
        TP_CHECK(f.vt->forward(b.state, c, h, mask, 0, &out, &err) != TP_OK);
        TP_CHECK(strstr(err.msg, "calibrate") != NULL);
        TP_CHECK(calibrate(&f, &b, c, h, mask, NULL, &err) == TP_OK);
        double mu[8], sd[8];
        stats(h, mask, 3, mu, sd);
        tp_tensor *hw = persist(TP_DIMS(3, 4, 8), 1.0f, &seed);
        float *wp = hw->data;
        for (int i = 0; i < 96; i++) wp[i] = (float)((hp[i] - mu[i % 8]) / sd[i % 8]);
        float ya[48], yb[48];
        TP_CHECK(run_fwd(&f, &a, c, hw, mask, 0, NULL, ya, 48, NULL) == 48);
        TP_CHECK(run_fwd(&f, &b, c, h, mask, 0, NULL, yb, 48, &out) == 48);
        double worst = 0;
        for (int i = 0; i < 48; i++) worst = fmax(worst, fabs(ya[i] - yb[i]));
        TP_CHECKF(worst < 1e-6, "perceiver: normalised output differs by %g", worst);
        double ne = 0;
        TP_CHECK(metric_named(&out, "normalizer_examples", &ne) && ne == 3);
        tp_ctx_free(c);
        tp_tensor_free(h);
        tp_tensor_free(hw);
        tp_tensor_free(mask);
    }
    inst_free(&f, &a);
    inst_free(&f, &b);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_whiten), TP_CASE(test_perceiver), TP_CASE(test_recolour_and_learnable),
            TP_CASE(test_learnable_grad_and_errors))
