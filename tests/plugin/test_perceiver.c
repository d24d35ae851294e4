/* test_perceiver.c — the perceiver bridge, loaded as the real .so through the plugin registry:
 * output shape, per-token RMS = |alpha|, padded keys without influence, every parameter's
 * gradient against central finite differences on a tiny configuration (direct and projected
 * variants), init statistics, determinism, dropout only in training, option errors; output and
 * every gradient against two float64 references in tests/plugin/golden/: perceiver_ref.py (plain
 * Python, committed output) and perceiver_golden.py (PyTorch nn.MultiheadAttention; its output is
 * checked when present, skipped with a message otherwise). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "test_bridges_common.h"

/* Designated initialisers: tp_bridge_dims grows at its end (ABI minors). */
#define DIMS(ds, dr, sv, rv, rms, sd)                                                              \
    ((tp_bridge_dims){.d_sender = (ds),                                                            \
                      .d_receiver = (dr),                                                          \
                      .sender_vocab = (sv),                                                        \
                      .receiver_vocab = (rv),                                                      \
                      .recv_embed_rms = (rms),                                                     \
                      .seed = (sd)})

static const tp_bridge_dims tiny_dims = {.d_sender = 6,
                                         .d_receiver = 8,
                                         .sender_vocab = 50,
                                         .receiver_vocab = 40,
                                         .recv_embed_rms = 0.0027f,
                                         .seed = 1234};

static void test_shape_and_rms(void) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    tp_bridge_dims dims = DIMS(12, 16, 50, 40, 0.0027f, 7);
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "tokens=3,depth=2,heads=2,ffn_mult=2", &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto out;
    TP_CHECK(f.vt->num_tokens(in.state) == 3);
    unsigned seed = 1;
    tp_tensor *h = persist(TP_DIMS(2, 5, 12), 3.0f, &seed);
    tp_tensor *mask = make_mask(2, 5, (int[]){5, 3});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_bridge_out out;
    st = f.vt->forward(in.state, c, h, mask, 0, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(out.soft->ndim == 3 && out.soft->shape[0] == 2 && out.soft->shape[1] == 3 &&
                 out.soft->shape[2] == 16);
        float buf[2 * 3 * 16];
        TP_CHECK(tp_to_f32_buffer(out.soft, buf, &err) == TP_OK);
        /* calibrated alpha: every soft token has RMS = recv_embed_rms */
        for (int t = 0; t < 6; t++) {
            double ss = 0;
            for (int d = 0; d < 16; d++) ss += (double)buf[t * 16 + d] * buf[t * 16 + d];
            TP_CHECK_NEAR(sqrt(ss / 16), 0.0027, 0.0027 * 1e-4);
        }
        TP_CHECK(out.n_metrics == 1 && strcmp(out.metric_name[0], "alpha") == 0);
        TP_CHECK_NEAR(out.metric[0], 0.0027, 1e-9);
    }
    inst_free(&f, &in);

    /* a negative number: RMS = |alpha| */
    st = inst_new(&f, "tokens=4,heads=4,alpha_init=-0.3", &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        float buf[2 * 4 * 16];
        TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, buf, 2 * 4 * 16, NULL) == 2 * 4 * 16);
        for (int t = 0; t < 8; t++) {
            double ss = 0;
            for (int d = 0; d < 16; d++) ss += (double)buf[t * 16 + d] * buf[t * 16 + d];
            TP_CHECK_NEAR(sqrt(ss / 16), 0.3, 0.3 * 1e-4);
        }
        TP_CHECK(param_named(&in, "alpha") != NULL);
    }
    inst_free(&f, &in);

    /* fixed alpha: no alpha parameter, still reported */
    st = inst_new(&f, "tokens=2,heads=2,alpha_init=0.03,alpha_learnable=false", &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(param_named(&in, "alpha") == NULL);
        float buf[2 * 2 * 16];
        tp_bridge_out o2;
        TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, buf, 64, &o2) == 64);
        TP_CHECK_NEAR(o2.metric[0], 0.03, 1e-7);
    }
    inst_free(&f, &in);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
out:
    fx_close(&f);
}

static void test_mask(void) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    inst in;
    tp_err err = {0};
    tp_status st =
        inst_new(&f, "tokens=3,depth=2,heads=2,ffn_mult=2,alpha_init=1", &tiny_dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    unsigned seed = 5;
    tp_tensor *h = persist(TP_DIMS(2, 6, 6), 2.0f, &seed);
    tp_tensor *mask = make_mask(2, 6, (int[]){6, 3});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float a[2 * 3 * 8], b[2 * 3 * 8];
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, a, 48, NULL) == 48);
    /* padded positions of example 1 (t >= 3) get wild values: nothing may change */
    float *hp = h->data;
    for (int t = 3; t < 6; t++)
        for (int d = 0; d < 6; d++) hp[(1 * 6 + t) * 6 + d] = 1000.0f * (float)(t + d + 1);
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 48, NULL) == 48);
    double maxd = 0;
    for (int i = 0; i < 48; i++) maxd = fmax(maxd, fabs((double)a[i] - b[i]));
    TP_CHECKF(maxd <= 1e-6, "padded keys changed the output by %g", maxd);
    /* a real token of example 1 must matter (else the check above proves nothing) */
    hp[(1 * 6 + 1) * 6 + 2] += 1.5f;
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 48, NULL) == 48);
    double d1 = 0, d0 = 0;
    for (int i = 0; i < 24; i++) d0 = fmax(d0, fabs((double)a[i] - b[i]));
    for (int i = 24; i < 48; i++) d1 = fmax(d1, fabs((double)a[i] - b[i]));
    TP_CHECKF(d1 > 1e-4, "changing an unpadded token changed example 1 by only %g", d1);
    TP_CHECKF(d0 == 0, "example 0 changed by %g when only example 1's input changed", d0);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    inst_free(&f, &in);
    fx_close(&f);
}

static void pv_grad_check(const char *opts, const tp_bridge_dims *dims, int64_t b, int64_t t,
                          const int *lens, int expect_params) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, opts, dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s: %s", opts, err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    TP_CHECKF(in.params.n == expect_params, "%s: %d params, expected %d", opts, in.params.n,
              expect_params);
    unsigned seed = 11;
    tp_tensor *hs = persist(TP_DIMS(b, t, dims->d_sender), 1.5f, &seed);
    tp_tensor *mask = make_mask(b, t, lens);
    int m = 0;
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float r[512];
    /* perturb every parameter a little so LayerNorm weights/biases are not all 1/0, and
     * sharpen the attention (q, k x3): at init the scores are nearly uniform, the q/k gradients
     * tiny, and the check would measure f32 noise instead of the backward pass */
    for (int i = 0; i < in.params.n; i++) {
        float *p = in.params.p[i]->data;
        const char *nm = in.params.p[i]->name;
        float mul = strstr(nm, ".q.weight") || strstr(nm, ".k.weight") ? 3.0f : 1.0f;
        for (int64_t k = 0; k < tp_numel(in.params.p[i]); k++) {
            seed = seed * 1664525u + 1013904223u;
            p[k] = mul * p[k] + 0.05f * (2.0f * (float)(seed >> 8) / 16777216.0f - 1.0f);
        }
    }
    /* analytic */
    tp_ctx_reset(c);
    tp_bridge_out out;
    st = f.vt->forward(in.state, c, hs, mask, 1, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto done;
    m = (int)tp_numel(out.soft);
    TP_CHECK(m <= 512);
    for (int i = 0; i < m; i++) {
        seed = seed * 1664525u + 1013904223u;
        r[i] = 2.0f * (float)(seed >> 8) / 16777216.0f - 1.0f;
    }
    for (int i = 0; i < in.params.n; i++) tp_param_zero_grad(in.params.p[i]);
    tp_tensor *rt = tp_from_f32(c, out.soft->ndim, out.soft->shape, r);
    tp_tensor *loss = tp_sum_all(c, tp_mul(c, out.soft, rt));
    TP_CHECKF(loss && tp_backward(c, loss, NULL) == TP_OK, "backward: %s", tp_ctx_error(c));
    if (!loss) goto done;
    fd_opts fo = {.label = opts};
    fd_compare(&f, &in, c, hs, mask, r, m, &fo);
done:
    tp_ctx_free(c);
    tp_tensor_free(hs);
    tp_tensor_free(mask);
    inst_free(&f, &in);
    fx_close(&f);
}

static void test_grad_direct(void) {
    /* d_s 6 != width 8 = d_r: input projection, no output projection; 26 per block + latents +
     * input_proj (2) + alpha */
    pv_grad_check("tokens=3,depth=2,heads=2,ffn_mult=2,alpha_init=0.7", &tiny_dims, 2, 5,
                  (int[]){5, 3}, 2 * 26 + 4);
}

static void test_grad_projected(void) {
    /* width 4: input and output projections (output init std 0.01 would make soft tokens
     * nearly constant; the perturbation above breaks that) */
    pv_grad_check("tokens=2,depth=1,heads=2,ffn_mult=2,width=4,alpha_init=0.5", &tiny_dims, 2, 4,
                  (int[]){2, 4}, 26 + 6);
}

static void test_grad_same_width_fixed_alpha(void) {
    tp_bridge_dims d = DIMS(8, 8, 50, 40, 0.0027f, 99);
    /* no projections at all, alpha not a parameter */
    pv_grad_check("tokens=2,depth=1,heads=4,ffn_mult=1,alpha_init=1,alpha_learnable=false", &d, 2,
                  3, (int[]){3, 1}, 26 + 1);
}

static double stddev(const tp_tensor *t) {
    const float *p = t->data;
    int64_t n = tp_numel(t);
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        s += p[i];
        ss += (double)p[i] * p[i];
    }
    return sqrt(ss / n - (s / n) * (s / n));
}

static void test_projected_variant_and_init(void) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    tp_bridge_dims dims = DIMS(48, 64, 50, 40, 0.0027f, 3);
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "tokens=64,depth=1,heads=8,width=32", &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_tensor *lat = param_named(&in, "latents"), *ip = param_named(&in, "input_proj.weight");
        tp_tensor *op = param_named(&in, "output_proj.weight");
        TP_CHECK(lat && lat->shape[0] == 64 && lat->shape[1] == 32);
        TP_CHECK(ip && ip->shape[0] == 32 && ip->shape[1] == 48);
        TP_CHECK(op && op->shape[0] == 64 && op->shape[1] == 32);
        if (lat) TP_CHECK_NEAR(stddev(lat), 0.02, 0.0015);
        if (op) TP_CHECK_NEAR(stddev(op), 0.01, 0.001);
        unsigned seed = 3;
        tp_tensor *h = persist(TP_DIMS(3, 4, 48), 1.0f, &seed);
        tp_tensor *mask = make_mask(3, 4, (int[]){4, 2, 1});
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_ctx_reset(c);
        tp_bridge_out out;
        st = f.vt->forward(in.state, c, h, mask, 0, &out, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK)
            TP_CHECK(out.soft->shape[0] == 3 && out.soft->shape[1] == 64 &&
                     out.soft->shape[2] == 64);
        tp_ctx_free(c);
        tp_tensor_free(h);
        tp_tensor_free(mask);
    }
    inst_free(&f, &in);
    /* width = receiver width: no output projection; sender width differs: input projection */
    st = inst_new(&f, "tokens=2,heads=8", &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(param_named(&in, "output_proj.weight") == NULL);
        TP_CHECK(param_named(&in, "input_proj.weight") != NULL);
        tp_tensor *l = param_named(&in, "latents");
        TP_CHECK(l && l->shape[1] == 64);
    }
    inst_free(&f, &in);
    tp_bridge_dims same = DIMS(64, 64, 50, 40, 0.0027f, 3);
    st = inst_new(&f, "tokens=2,heads=8", &same, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) TP_CHECK(param_named(&in, "input_proj.weight") == NULL);
    inst_free(&f, &in);
    fx_close(&f);
}

static void test_determinism_and_dropout(void) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    inst a, b, d;
    tp_err err = {0};
    TP_CHECK(inst_new(&f, "tokens=3,heads=2", &tiny_dims, &a, &err) == TP_OK);
    TP_CHECK(inst_new(&f, "tokens=3,heads=2", &tiny_dims, &b, &err) == TP_OK);
    tp_bridge_dims other = tiny_dims;
    other.seed = 4321;
    TP_CHECK(inst_new(&f, "tokens=3,heads=2", &other, &d, &err) == TP_OK);
    if (a.state && b.state && d.state) {
        TP_CHECK(a.params.n == b.params.n && a.params.n == d.params.n);
        int same = 1, differ = 0;
        for (int i = 0; i < a.params.n; i++) {
            size_t bytes = (size_t)tp_numel(a.params.p[i]) * sizeof(float);
            if (memcmp(a.params.p[i]->data, b.params.p[i]->data, bytes)) same = 0;
            if (memcmp(a.params.p[i]->data, d.params.p[i]->data, bytes)) differ = 1;
        }
        TP_CHECKF(same, "same seed gave different parameters");
        TP_CHECKF(differ, "a different seed gave identical parameters");
    }
    inst_free(&f, &a);
    inst_free(&f, &b);
    inst_free(&f, &d);

    /* dropout acts in training only */
    inst p0, p1;
    TP_CHECK(inst_new(&f, "tokens=3,heads=2,alpha_init=1", &tiny_dims, &p0, &err) == TP_OK);
    TP_CHECK(inst_new(&f, "tokens=3,heads=2,alpha_init=1,dropout=0.5", &tiny_dims, &p1, &err) ==
             TP_OK);
    if (p0.state && p1.state) {
        unsigned seed = 9;
        tp_tensor *h = persist(TP_DIMS(2, 4, 6), 1.0f, &seed);
        tp_tensor *mask = make_mask(2, 4, (int[]){4, 4});
        tp_ctx *c = tp_ctx_new(TP_CPU);
        float x0[48], x1[48], x2[48];
        TP_CHECK(run_fwd(&f, &p0, c, h, mask, 0, NULL, x0, 48, NULL) == 48);
        TP_CHECK(run_fwd(&f, &p1, c, h, mask, 0, NULL, x1, 48, NULL) == 48);
        TP_CHECK(run_fwd(&f, &p1, c, h, mask, 1, NULL, x2, 48, NULL) == 48);
        TP_CHECKF(memcmp(x0, x1, sizeof x0) == 0, "dropout changed the output in eval mode");
        TP_CHECKF(memcmp(x1, x2, sizeof x1) != 0, "dropout=0.5 did nothing in training mode");
        tp_ctx_free(c);
        tp_tensor_free(h);
        tp_tensor_free(mask);
    }
    inst_free(&f, &p0);
    inst_free(&f, &p1);
    fx_close(&f);
}

static void test_option_errors(void) {
    fixture f;
    if (!fx_open(&f, "perceiver")) return;
    expect_error(&f, "heads=3", &tiny_dims, "heads = 3 does not divide");
    expect_error(&f, "tokens=0", &tiny_dims, "tokens");
    expect_error(&f, "alpha_init=bogus", &tiny_dims, "alpha_init");
    tp_bridge_dims nocal = tiny_dims;
    nocal.recv_embed_rms = 0;
    expect_error(&f, "", &nocal, "recv_embed_rms");
    tp_bridge_dims bad = tiny_dims;
    bad.d_sender = 0;
    expect_error(&f, "", &bad, "sender width");
    /* a wrongly shaped input is an error, not a crash */
    inst in;
    tp_err err = {0};
    if (inst_new(&f, "tokens=2,heads=2", &tiny_dims, &in, &err) == TP_OK) {
        unsigned seed = 1;
        tp_tensor *h = persist(TP_DIMS(1, 3, 7), 1.0f, &seed);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_bridge_out out;
        TP_CHECK(f.vt->forward(in.state, c, h, NULL, 0, &out, &err) == TP_ESHAPE);
        TP_CHECK(strstr(err.msg, "[B,T,6]") != NULL);
        tp_ctx_free(c);
        tp_tensor_free(h);
    }
    inst_free(&f, &in);
    fx_close(&f);
}

/* ---- golden values: tests/plugin/golden/perceiver_ref.py (pure Python float64) and
 * perceiver_golden.py (PyTorch float64, nn.MultiheadAttention) ---------------------------- */

static tp_tensor *golden_tensor(tp_st_model *g, const char *name, const char *file) {
    const tp_st_tensor *t = tp_st_find(g, name);
    TP_CHECKF(t != NULL, "%s: no tensor '%s'", file, name);
    if (!t) return NULL;
    tp_err err = {0};
    tp_tensor *x = tp_tensor_alloc(TP_F32, TP_CPU, t->ndim, t->shape, &err);
    if (x && tp_st_read_f32(t, x->data, (size_t)tp_numel(x), &err) != TP_OK) {
        TP_CHECKF(0, "%s: %s", file, err.msg);
        tp_tensor_free(x);
        return NULL;
    }
    return x;
}

static double l2(const float *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

static double rel_err(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

/* which: "ref" (pure-Python float64 reference, committed, must exist) or "torch" (PyTorch,
 * present once perceiver_golden.py has been run where torch is installed). */
static void golden_case(const char *which, const char *cfg) {
    const char *src = getenv("TP_SOURCE_DIR");
    char file[4096];
    snprintf(file, sizeof file, "%s/tests/plugin/golden/perceiver_%s_%s.safetensors",
             src ? src : TP_SOURCE_DIR, which, cfg);
    FILE *probe = fopen(file, "rb");
    if (!probe) {
        if (strcmp(which, "torch") == 0)
            fprintf(stderr,
                    "SKIP golden torch %s: %s absent (run tests/plugin/golden/perceiver_golden.py "
                    "where torch is installed and copy its output there)\n",
                    cfg, file);
        else
            TP_CHECKF(0, "%s is missing (tests/plugin/golden/perceiver_ref.py writes it)", file);
        return;
    }
    fclose(probe);
    tp_err err = {0};
    tp_st_model *g = NULL;
    if (tp_st_open(&g, file, &err) != TP_OK) {
        TP_CHECKF(0, "%s", err.msg);
        return;
    }
    fixture f;
    if (!fx_open(&f, "perceiver")) {
        tp_st_close(g);
        return;
    }
    const char *opts = tp_st_metadata(g, "options");
    const char *ds = tp_st_metadata(g, "d_sender"), *dr = tp_st_metadata(g, "d_receiver");
    TP_CHECKF(opts && ds && dr, "%s: metadata options/d_sender/d_receiver missing", file);
    tp_bridge_dims dims = DIMS(ds ? atoi(ds) : 0, dr ? atoi(dr) : 0, 10, 10, 0.0027f, 1);
    inst in;
    tp_status st = inst_new(&f, opts, &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s: %s", file, err.msg);
    tp_tensor *h = golden_tensor(g, "input.h", file), *mask = golden_tensor(g, "input.mask", file);
    tp_tensor *r = golden_tensor(g, "input.r", file), *want = golden_tensor(g, "output.soft", file);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    if (st != TP_OK || !h || !mask || !r || !want) goto done;
    /* the same parameter set under the same names, PyTorch's values copied in */
    int n_golden = 0;
    for (int i = 0; i < tp_st_count(g); i++) {
        const char *nm = tp_st_at(g, i)->name;
        if (strncmp(nm, "input.", 6) && strncmp(nm, "output.", 7) && strncmp(nm, "grad.", 5))
            n_golden++;
    }
    TP_CHECKF(n_golden == in.params.n, "%s: %d parameters in the file, %d in the plugin", file,
              n_golden, in.params.n);
    for (int i = 0; i < in.params.n; i++) {
        tp_tensor *p = in.params.p[i];
        const tp_st_tensor *t = tp_st_find(g, p->name);
        TP_CHECKF(t != NULL, "%s: the plugin's parameter %s is not in the file", file, p->name);
        if (!t || tp_st_read_f32(t, p->data, (size_t)tp_numel(p), &err) != TP_OK) {
            TP_CHECKF(t == NULL, "%s: %s", file, err.msg);
            goto done;
        }
        tp_param_zero_grad(p);
    }
    tp_ctx_reset(c);
    tp_bridge_out out;
    st = f.vt->forward(in.state, c, h, mask, 1, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto done;
    int64_t n = tp_numel(want);
    TP_CHECK(tp_numel(out.soft) == n);
    float *got = malloc((size_t)n * sizeof *got);
    if (got && tp_numel(out.soft) == n && tp_to_f32_buffer(out.soft, got, &err) == TP_OK) {
        double e = rel_err(got, want->data, n);
        TP_CHECKF(e < 1e-5, "%s: soft tokens differ from the reference by %g (relative)", file, e);
        fprintf(stderr, "  golden %s %s: soft tokens relative error %.3g\n", which, cfg, e);
    }
    free(got);
    tp_tensor *rt = tp_from_f32(c, out.soft->ndim, out.soft->shape, r->data);
    tp_tensor *loss = tp_sum_all(c, tp_mul(c, out.soft, rt));
    TP_CHECKF(loss && tp_backward(c, loss, NULL) == TP_OK, "backward: %s", tp_ctx_error(c));
    /* f32 backward vs float64 reference: each gradient to 1e-4 of its own norm, plus 2e-6 of
     * the largest gradient norm — rounding in f32 is relative to the largest terms, and a
     * parameter whose gradient is 1000x smaller than the rest (self-attention q/k on a
     * near-uniform attention; the key bias, exactly 0) cannot be closer than that */
    double big = 0, worst = 0;
    tp_tensor *ref[TP_MAX_PARAMS] = {0};
    for (int i = 0; loss && i < in.params.n; i++) {
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", in.params.p[i]->name);
        ref[i] = golden_tensor(g, gname, file);
        if (ref[i]) big = fmax(big, l2(ref[i]->data, tp_numel(ref[i])));
    }
    for (int i = 0; loss && i < in.params.n; i++) {
        tp_tensor *p = in.params.p[i];
        TP_CHECKF(p->grad != NULL, "%s got no gradient", p->name);
        if (!ref[i] || !p->grad) continue;
        int64_t k = tp_numel(p);
        double norm = l2(ref[i]->data, k), diff = rel_err(p->grad->data, ref[i]->data, k) * norm;
        TP_CHECKF(diff <= 1e-4 * norm + 2e-6 * big,
                  "%s: gradient differs from the reference by %g (its norm %g, largest %g)",
                  p->name, diff, norm, big);
        if (norm > 1e-3 * big) worst = fmax(worst, diff / norm);
    }
    for (int i = 0; i < in.params.n; i++) tp_tensor_free(ref[i]);
    fprintf(stderr,
            "  golden %s %s: worst relative gradient error %.3g (parameters with |g| > 1e-3 of the "
            "largest)\n",
            which, cfg, worst);
done:
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    tp_tensor_free(r);
    tp_tensor_free(want);
    inst_free(&f, &in);
    fx_close(&f);
    tp_st_close(g);
}

static void test_golden(void) {
    golden_case("ref", "direct");
    golden_case("ref", "projected");
    golden_case("torch", "direct");
    golden_case("torch", "projected");
}

TP_TEST_RUN(TP_CASE(test_shape_and_rms), TP_CASE(test_mask), TP_CASE(test_grad_direct),
            TP_CASE(test_grad_projected), TP_CASE(test_grad_same_width_fixed_alpha),
            TP_CASE(test_projected_variant_and_init), TP_CASE(test_determinism_and_dropout),
            TP_CASE(test_option_errors), TP_CASE(test_golden))
