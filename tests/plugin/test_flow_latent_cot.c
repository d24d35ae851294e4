/* test_flow_latent_cot.c — the latent_cot bridge, loaded as the real .so: steps*latents soft
 * tokens of RMS |alpha|, padded sender keys without influence, the recurrence (a round depends on
 * earlier rounds, never on later ones), every parameter's gradient against finite differences on
 * a tiny configuration (with and without projections), steps = 1, and option errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_bridges_common.h"

static tp_bridge_dims mkdims(int d_s, int d_r, uint64_t seed) {
    tp_bridge_dims d;
    memset(&d, 0, sizeof d);
    d.d_sender = d_s;
    d.d_receiver = d_r;
    d.sender_vocab = 50;
    d.receiver_vocab = 40;
    d.recv_embed_rms = 0.0027f;
    d.seed = seed;
    return d;
}

static void test_shape_rms_mask(void) {
    fixture f;
    if (!fx_open(&f, "latent_cot")) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "1") == 0);
    tp_bridge_dims dims = mkdims(6, 8, 7);
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "steps=3,latents=2,depth=2,heads=2,ffn_mult=2,alpha_init=0.4",
                            &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto out;
    TP_CHECK(f.vt->num_tokens(in.state) == 6);
    /* width = receiver width 8 != sender 6: input projection only; 36 per block + latents,
     * step_emb, the previous-round LayerNorm (2), input projection (2), alpha */
    TP_CHECKF(in.params.n == 2 * 36 + 7, "%d params", in.params.n);
    TP_CHECK(param_named(&in, "input_proj.weight") && !param_named(&in, "output_proj.weight"));
    tp_tensor *se = param_named(&in, "step_emb");
    TP_CHECK(se && se->shape[0] == 3 && se->shape[1] == 8);
    unsigned seed = 1;
    tp_tensor *h = persist(TP_DIMS(2, 5, 6), 3.0f, &seed);
    tp_tensor *mask = make_mask(2, 5, (int[]){5, 3});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_bridge_out out;
    st = f.vt->forward(in.state, c, h, mask, 1, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    float a[96], b[96];
    if (st == TP_OK) {
        TP_CHECK(out.soft->ndim == 3 && out.soft->shape[0] == 2 && out.soft->shape[1] == 6 &&
                 out.soft->shape[2] == 8);
        TP_CHECK(tp_to_f32_buffer(out.soft, a, &err) == TP_OK);
        for (int t = 0; t < 12; t++) {
            double ss = 0;
            for (int d = 0; d < 8; d++) ss += (double)a[t * 8 + d] * a[t * 8 + d];
            TP_CHECK_NEAR(sqrt(ss / 8), 0.4, 0.4 * 1e-4);
        }
        TP_CHECK(out.n_metrics == 1 && !strcmp(out.metric_name[0], "alpha"));
    }
    /* training and eval are the same function (no noise, no dropout) */
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 96, NULL) == 96);
    TP_CHECK(memcmp(a, b, sizeof a) == 0);
    /* padded keys are inert; a real key matters, for its example only */
    float *hp = h->data;
    for (int t = 3; t < 5; t++)
        for (int d = 0; d < 6; d++) hp[(5 + t) * 6 + d] = 1000.0f * (float)(t + d + 1);
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 96, NULL) == 96);
    double maxd = 0;
    for (int i = 0; i < 96; i++) maxd = fmax(maxd, fabs((double)a[i] - b[i]));
    TP_CHECKF(maxd <= 1e-6, "padded keys changed the output by %g", maxd);
    hp[(5 + 1) * 6 + 2] += 1.5f;
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, NULL, b, 96, NULL) == 96);
    double d0 = 0, d1 = 0;
    for (int i = 0; i < 48; i++) d0 = fmax(d0, fabs((double)a[i] - b[i]));
    for (int i = 48; i < 96; i++) d1 = fmax(d1, fabs((double)a[i] - b[i]));
    TP_CHECKF(d1 > 1e-4 && d0 == 0, "example 1 changed by %g, example 0 by %g", d1, d0);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    inst_free(&f, &in);
out:
    fx_close(&f);
}

/* Round k reads rounds < k: changing round 2's step embedding leaves rounds 0-1 alone; changing
 * round 0's changes every later round. */
static void test_recurrence(void) {
    fixture f;
    if (!fx_open(&f, "latent_cot")) return;
    tp_bridge_dims dims = mkdims(8, 8, 3);
    inst in;
    tp_err err = {0};
    if (inst_new(&f, "steps=3,latents=2,depth=1,heads=2,alpha_init=1", &dims, &in, &err) != TP_OK) {
        TP_CHECKF(0, "%s", err.msg);
        fx_close(&f);
        return;
    }
    unsigned seed = 2;
    tp_tensor *h = persist(TP_DIMS(1, 4, 8), 1.0f, &seed);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float a[48], b[48];
    tp_tensor *se = param_named(&in, "step_emb");
    TP_CHECK(run_fwd(&f, &in, c, h, NULL, 0, NULL, a, 48, NULL) == 48);
    float *sp = se->data;
    sp[2 * 8 + 3] += 0.5f; /* round 2 */
    TP_CHECK(run_fwd(&f, &in, c, h, NULL, 0, NULL, b, 48, NULL) == 48);
    sp[2 * 8 + 3] -= 0.5f;
    double early = 0, late = 0;
    for (int i = 0; i < 32; i++) early = fmax(early, fabs((double)a[i] - b[i]));
    for (int i = 32; i < 48; i++) late = fmax(late, fabs((double)a[i] - b[i]));
    TP_CHECKF(early == 0 && late > 1e-4,
              "round 2's embedding changed rounds 0-1 by %g, round 2 "
              "by %g",
              early, late);
    sp[0 * 8 + 3] += 0.5f; /* round 0 reaches rounds 1 and 2 through the recurrence */
    TP_CHECK(run_fwd(&f, &in, c, h, NULL, 0, NULL, b, 48, NULL) == 48);
    sp[0 * 8 + 3] -= 0.5f;
    for (int r = 0; r < 3; r++) {
        double dr = 0;
        for (int i = r * 16; i < r * 16 + 16; i++) dr = fmax(dr, fabs((double)a[i] - b[i]));
        TP_CHECKF(dr > 1e-4, "round 0's embedding did not reach round %d (%g)", r, dr);
    }
    tp_ctx_free(c);
    tp_tensor_free(h);
    inst_free(&f, &in);
    fx_close(&f);
}

/* Every parameter's gradient vs a 4-point central difference (the perceiver test's method). */
static void lc_grad_check(const char *opts, const tp_bridge_dims *dims, int expect_params,
                          const char *const *zero_grad) {
    fixture f;
    if (!fx_open(&f, "latent_cot")) return;
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
    tp_tensor *hs = persist(TP_DIMS(2, 4, dims->d_sender), 1.5f, &seed);
    tp_tensor *mask = make_mask(2, 4, (int[]){4, 2});
    /* LayerNorms away from 1/0 and sharper attention (see test_perceiver.c) */
    for (int i = 0; i < in.params.n; i++) {
        float *p = in.params.p[i]->data;
        const char *nm = in.params.p[i]->name;
        float mul = strstr(nm, ".q.weight") || strstr(nm, ".k.weight") ? 3.0f : 1.0f;
        for (int64_t k = 0; k < tp_numel(in.params.p[i]); k++)
            p[k] = mul * p[k] + 0.05f * lcg_unit(&seed);
    }
    tp_ctx *c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(c);
    tp_bridge_out out;
    float r[512];
    int m = 0;
    st = f.vt->forward(in.state, c, hs, mask, 1, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto done;
    m = (int)tp_numel(out.soft);
    TP_CHECK(m <= 512);
    for (int i = 0; i < m; i++) r[i] = lcg_unit(&seed);
    for (int i = 0; i < in.params.n; i++) tp_param_zero_grad(in.params.p[i]);
    tp_tensor *loss =
        tp_sum_all(c, tp_mul(c, out.soft, tp_from_f32(c, out.soft->ndim, out.soft->shape, r)));
    TP_CHECKF(loss && tp_backward(c, loss, NULL) == TP_OK, "backward: %s", tp_ctx_error(c));
    if (!loss) goto done;
    /* one step for all: 1e-2 keeps f32 rounding out of the small gradients of the
     * previous-round attention (2 keys, nearly uniform weights), and the 4-point stencil's
     * O(h^4) error stays small even for the ~0.05-sized latents */
    fd_opts fo = {.step = 1e-2f, .zero = zero_grad, .label = opts};
    fd_compare(&f, &in, c, hs, mask, r, m, &fo);
done:
    tp_ctx_free(c);
    tp_tensor_free(hs);
    tp_tensor_free(mask);
    inst_free(&f, &in);
    fx_close(&f);
}

static void test_grads(void) {
    tp_bridge_dims d = mkdims(6, 8, 1234);
    /* three rounds (the previous-round attention in use), input projection, learnable alpha */
    lc_grad_check("steps=3,latents=2,depth=1,heads=2,ffn_mult=1,alpha_init=0.7", &d, 36 + 7, NULL);
    /* internal width 4: input and output projections, fixed alpha */
    lc_grad_check("steps=2,latents=2,depth=1,heads=2,ffn_mult=1,width=4,alpha_init=0.5,"
                  "alpha_learnable=false",
                  &d, 36 + 8, NULL);
}

static void test_single_step(void) {
    /* one round: nothing precedes it, so the previous-round parts get no gradient */
    tp_bridge_dims d = mkdims(8, 8, 5);
    static const char *const unused[] = {"cross_prev", "ln_prev", NULL};
    lc_grad_check("steps=1,latents=3,depth=1,heads=2,ffn_mult=1,alpha_init=1", &d, 36 + 5, unused);
}

static void test_options(void) {
    fixture f;
    if (!fx_open(&f, "latent_cot")) return;
    tp_bridge_dims dims = mkdims(6, 8, 1);
    expect_error(&f, "heads=3", &dims, "heads = 3 does not divide");
    expect_error(&f, "steps=0", &dims, "steps");
    expect_error(&f, "latents=0", &dims, "latents");
    expect_error(&f, "depth=7", &dims, "depth");
    expect_error(&f, "alpha_init=warm", &dims, "alpha_init");
    tp_bridge_dims nocal = dims;
    nocal.recv_embed_rms = 0;
    expect_error(&f, "heads=2", &nocal, "recv_embed_rms");
    tp_bridge_dims bad = dims;
    bad.d_sender = 0;
    expect_error(&f, "", &bad, "sender width");
    /* the deepest allowed stack fits the trainer's parameter table (TP_MAX_PARAMS) */
    inst in;
    tp_err err = {0};
    if (inst_new(&f, "heads=2,depth=6", &dims, &in, &err) == TP_OK)
        TP_CHECK(in.params.n == 7 + 36 * 6 && in.params.n <= TP_MAX_PARAMS);
    else
        TP_CHECKF(0, "depth=6: %s", err.msg);
    inst_free(&f, &in);
    /* the study's phase 19 shape is the default: 4 steps x 8 latents */
    if (inst_new(&f, "heads=2,depth=1", &dims, &in, &err) == TP_OK)
        TP_CHECK(f.vt->num_tokens(in.state) == 32);
    inst_free(&f, &in);
    /* a sender state of the wrong width is an error, not a crash */
    if (inst_new(&f, "steps=2,latents=1,heads=2,depth=1", &dims, &in, &err) == TP_OK) {
        unsigned seed = 1;
        tp_tensor *h = persist(TP_DIMS(1, 3, 7), 1.0f, &seed);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_bridge_out out;
        TP_CHECK(f.vt->forward(in.state, c, h, NULL, 0, &out, &err) == TP_ESHAPE);
        TP_CHECKF(strstr(err.msg, "[B,T,6]"), "%s", err.msg);
        tp_ctx_free(c);
        tp_tensor_free(h);
    }
    inst_free(&f, &in);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_shape_rms_mask), TP_CASE(test_recurrence), TP_CASE(test_grads),
            TP_CASE(test_single_step), TP_CASE(test_options))
