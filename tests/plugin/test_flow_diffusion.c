/* test_flow_diffusion.c — the diffusion bridge, loaded as the real .so (with the flow_match loss
 * .so): shapes, flags and the set_target contract, the flow target (resampled, RMS-normalised
 * target minus N(0,1) noise) against a hand reference, deterministic seeded sampling, every
 * parameter's gradient through the Euler chain against finite differences, end-to-end gradients
 * of the refiner and the flow loss, the flow loss falling over a few hundred AdamW steps (the
 * tensor core's optimiser, telepathy/optim.h) on a tiny synthetic target with samples that end up
 * near their targets, the EMA weights used at eval, and option errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telepathy/optim.h"
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

/* The diffusion bridge and, beside it, the flow_match loss. */
static int df_open(fixture *f) {
    return fx_open(f, "diffusion") && fx_load_loss(f, "flow_match");
}

static double token_rms(const float *x, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)x[i] * x[i];
    return sqrt(s / d);
}

/* ---- shapes, flags, the target contract --------------------------------------------------- */

static void test_shapes_and_contract(void) {
    fixture f;
    if (!df_open(&f)) return;
    TP_CHECK(strcmp(f.plugin->desc.version, "2") == 0);
    tp_bridge_dims dims = mkdims(6, 8, 3);
    inst in;
    tp_err err = {0};
    const char *opts = "tokens=3,width=8,depth=2,heads=2,ffn_mult=2,steps=3,alpha_init=0.5";
    tp_status st = inst_new(&f, opts, &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) goto out;
    TP_CHECK(f.vt->num_tokens(in.state) == 3);
    TP_CHECKF(in.params.n == 15 + 24 * 2 + 1, "%d params", in.params.n);
    TP_CHECK(bridge_flags(&f, &in) == TP_BRIDGE_NEEDS_TARGET);
    TP_CHECK(TP_BRIDGE_HAS(f.vt, set_target));
    unsigned seed = 1;
    tp_tensor *h = persist(TP_DIMS(2, 5, 6), 3.0f, &seed);
    tp_tensor *mask = make_mask(2, 5, (int[]){5, 3});
    tp_tensor *tg = persist(TP_DIMS(2, 4, 8), 0.01f, &seed);
    tp_tensor *tm = make_mask(2, 4, (int[]){4, 2});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    /* eval: soft tokens of RMS |alpha|, no aux */
    tp_ctx_reset(c);
    tp_bridge_out out;
    st = f.vt->forward(in.state, c, h, mask, 0, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(out.soft->ndim == 3 && out.soft->shape[0] == 2 && out.soft->shape[1] == 3 &&
                 out.soft->shape[2] == 8);
        float buf[48];
        TP_CHECK(tp_to_f32_buffer(out.soft, buf, &err) == TP_OK);
        for (int t = 0; t < 6; t++) TP_CHECK_NEAR(token_rms(buf + 8 * t, 8), 0.5, 1e-4);
        TP_CHECK(out.n_aux == 0);
        TP_CHECK(out.n_metrics == 1 && !strcmp(out.metric_name[0], "alpha"));
    }
    /* training without a target: a clear error */
    tp_ctx_reset(c);
    st = f.vt->forward(in.state, c, h, mask, 1, &out, &err);
    TP_CHECK(st == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "diffusion") && strstr(err.msg, "set_target"), "%s", err.msg);
    /* with one: flow_pred / flow_target / t_mean */
    tp_ctx_reset(c);
    TP_CHECK(f.vt->set_target(in.state, tg, tm, &err) == TP_OK);
    st = f.vt->forward(in.state, c, h, mask, 1, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_tensor *v = aux_named(&out, "flow_pred"), *vt = aux_named(&out, "flow_target");
        TP_CHECK(v && vt);
        if (v && vt)
            TP_CHECK(v->ndim == 3 && v->shape[0] == 2 && v->shape[1] == 3 && v->shape[2] == 8 &&
                     vt->shape[1] == 3 && vt->shape[2] == 8);
        TP_CHECK(out.n_metrics == 2 && !strcmp(out.metric_name[1], "t_mean"));
        TP_CHECK(out.metric[1] > 0 && out.metric[1] < 1);
        float buf[48];
        TP_CHECK(tp_to_f32_buffer(out.soft, buf, &err) == TP_OK);
        for (int t = 0; t < 6; t++) TP_CHECK_NEAR(token_rms(buf + 8 * t, 8), 0.5, 1e-4);
    }
    /* the target is for one forward only */
    tp_ctx_reset(c);
    TP_CHECK(f.vt->forward(in.state, c, h, mask, 1, &out, &err) == TP_EINVAL);
    /* bad targets */
    tp_tensor *tg3 = persist(TP_DIMS(3, 4, 8), 0.01f, &seed);
    tp_ctx_reset(c);
    TP_CHECK(f.vt->set_target(in.state, tg3, NULL, &err) == TP_OK);
    TP_CHECK(f.vt->forward(in.state, c, h, mask, 1, &out, &err) == TP_ESHAPE);
    TP_CHECKF(strstr(err.msg, "3 rows"), "%s", err.msg);
    TP_CHECK(f.vt->set_target(in.state, h, NULL, &err) == TP_ESHAPE); /* width 6, not 8 */
    TP_CHECK(f.vt->set_target(in.state, tg, mask, &err) == TP_ESHAPE);
    tp_tensor *empty = make_mask(2, 4, (int[]){4, 0});
    tp_ctx_reset(c);
    TP_CHECK(f.vt->set_target(in.state, tg, empty, &err) == TP_OK);
    TP_CHECK(f.vt->forward(in.state, c, h, mask, 1, &out, &err) == TP_EINVAL);
    TP_CHECKF(strstr(err.msg, "row 1"), "%s", err.msg);
    /* sender input errors */
    tp_ctx_reset(c);
    TP_CHECK(f.vt->forward(in.state, c, tg, NULL, 0, &out, &err) == TP_ESHAPE);
    TP_CHECKF(strstr(err.msg, "[B,T,6]"), "%s", err.msg);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    tp_tensor_free(tg);
    tp_tensor_free(tg3);
    tp_tensor_free(tm);
    tp_tensor_free(empty);
    inst_free(&f, &in);
    /* refiner: no target needed */
    st = inst_new(&f, "mode=refiner,tokens=2,width=8,heads=2,depth=1", &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) TP_CHECK(bridge_flags(&f, &in) == 0);
    inst_free(&f, &in);
out:
    fx_close(&f);
}

/* ---- the flow target ------------------------------------------------------------------------ */

/* Training forward with target tg/tm; copies flow_target into ft. */
static int flow_target_of(fixture *f, inst *in, tp_ctx *c, tp_tensor *h, tp_tensor *tg,
                          tp_tensor *tm, float *ft, int64_t cap) {
    tp_ctx_reset(c);
    tp_bridge_out out;
    tp_err err = {0};
    if (f->vt->set_target(in->state, tg, tm, &err) != TP_OK ||
        f->vt->forward(in->state, c, h, NULL, 1, &out, &err) != TP_OK) {
        TP_CHECKF(0, "training forward: %s", err.msg);
        return 0;
    }
    tp_tensor *vt = aux_named(&out, "flow_target");
    return vt && tp_numel(vt) <= cap && tp_to_f32_buffer(vt, ft, &err) == TP_OK;
}

static void test_flow_target(void) {
    fixture f;
    if (!df_open(&f)) return;
    /* Two instances with the same seed draw the same t and noise. Give one the real target and
     * the other zeros (RMSNorm(0) = 0): the difference of their flow targets (x1 - x0) is x1 =
     * RMSNorm(resample(target)) exactly. B=2, L=3 (row 1: 2 valid + a wild padded value),
     * M=4, d_r=5. */
    tp_bridge_dims dims = mkdims(4, 5, 77);
    const char *opts = "tokens=4,width=8,heads=2,depth=1,ema=off";
    inst a, b;
    tp_err err = {0};
    TP_CHECK(inst_new(&f, opts, &dims, &a, &err) == TP_OK);
    TP_CHECK(inst_new(&f, opts, &dims, &b, &err) == TP_OK);
    unsigned seed = 4;
    tp_tensor *h = persist(TP_DIMS(2, 3, 4), 1.0f, &seed);
    tp_tensor *tg = persist(TP_DIMS(2, 3, 5), 0.01f, &seed);
    ((float *)tg->data)[(1 * 3 + 2) * 5 + 1] = 1e6f; /* padded: must not leak */
    tp_tensor *tm = make_mask(2, 3, (int[]){3, 2});
    tp_tensor *zero = persist(TP_DIMS(2, 3, 5), 0.0f, &seed);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float fa[40], fb[40], fa2[40];
    if (a.state && b.state && flow_target_of(&f, &a, c, h, tg, tm, fa, 40) &&
        flow_target_of(&f, &b, c, h, zero, tm, fb, 40)) {
        const float *e = tg->data;
        for (int r = 0; r < 2; r++) {
            int n = r == 0 ? 3 : 2;
            for (int j = 0; j < 4; j++) {
                double u = (double)j * (n - 1) / 3.0, x[5], ss = 0;
                int lo = (int)floor(u), hi = lo + 1 < n ? lo + 1 : n - 1;
                for (int d = 0; d < 5; d++) {
                    x[d] = (1 - (u - lo)) * e[(r * 3 + lo) * 5 + d] +
                           (u - lo) * e[(r * 3 + hi) * 5 + d];
                    ss += x[d] * x[d];
                }
                double rms = sqrt(ss / 5 + 1e-6);
                for (int d = 0; d < 5; d++) {
                    int k = (r * 4 + j) * 5 + d;
                    TP_CHECK_NEAR(fa[k] - fb[k], x[d] / rms, 2e-4);
                }
            }
        }
        /* and the noise itself (x0 = -flow_target of the zero target) looks N(0,1) and is fresh
         * at the next training forward */
        double s = 0, ss = 0;
        for (int i = 0; i < 40; i++) {
            s -= fb[i];
            ss += (double)fb[i] * fb[i];
        }
        TP_CHECKF(fabs(s / 40) < 0.5 && ss / 40 > 0.4 && ss / 40 < 2.0,
                  "noise mean %g, second moment %g", s / 40, ss / 40);
        if (flow_target_of(&f, &a, c, h, tg, tm, fa2, 40))
            TP_CHECKF(memcmp(fa, fa2, sizeof fa) != 0, "the same noise at two training steps");
    }
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(tg);
    tp_tensor_free(tm);
    tp_tensor_free(zero);
    inst_free(&f, &a);
    inst_free(&f, &b);
    fx_close(&f);
}

/* Perturbs every parameter (zero-initialised adaLN/output layers included) so v is not 0. */
static void perturb(inst *in, unsigned seed, float a) {
    for (int i = 0; i < in->params.n; i++) {
        float *p = in->params.p[i]->data;
        const char *nm = in->params.p[i]->name;
        if (!strcmp(nm, "alpha")) continue;
        for (int64_t k = 0; k < tp_numel(in->params.p[i]); k++) p[k] += a * lcg_unit(&seed);
    }
}

/* The training soft tokens carry nothing of the target (else a task loss could read the
 * answer: the study's phase-10 shortcut): two same-seed bridges given different targets return
 * identical soft tokens and different flow targets. With train_soft = detached the task-loss
 * gradient reaches alpha only. */
static void test_no_target_leak(void) {
    fixture f;
    if (!df_open(&f)) return;
    tp_bridge_dims dims = mkdims(4, 6, 31);
    const char *opts = "tokens=3,width=8,heads=2,depth=1,steps=2,alpha_init=1";
    inst a, b;
    tp_err err = {0};
    TP_CHECK(inst_new(&f, opts, &dims, &a, &err) == TP_OK);
    TP_CHECK(inst_new(&f, opts, &dims, &b, &err) == TP_OK);
    unsigned seed = 6;
    tp_tensor *h = persist(TP_DIMS(2, 3, 4), 1.0f, &seed);
    tp_tensor *t1 = persist(TP_DIMS(2, 2, 6), 0.01f, &seed);
    tp_tensor *t2 = persist(TP_DIMS(2, 2, 6), 5.0f, &seed);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float sa[36], sb[36], fa[36], fb[36];
    int ok = 1;
    for (int k = 0; k < 2 && a.state && b.state; k++) {
        inst *in = k ? &b : &a;
        tp_ctx_reset(c);
        tp_bridge_out out;
        ok = ok && f.vt->set_target(in->state, k ? t2 : t1, NULL, &err) == TP_OK &&
             f.vt->forward(in->state, c, h, NULL, 1, &out, &err) == TP_OK;
        TP_CHECKF(ok, "%s", err.msg);
        if (!ok) break;
        TP_CHECK(tp_to_f32_buffer(out.soft, k ? sb : sa, &err) == TP_OK);
        TP_CHECK(tp_to_f32_buffer(aux_named(&out, "flow_target"), k ? fb : fa, &err) == TP_OK);
    }
    if (ok && a.state && b.state) {
        TP_CHECKF(memcmp(sa, sb, sizeof sa) == 0, "the training soft tokens depend on the target");
        TP_CHECKF(memcmp(fa, fb, sizeof fa) != 0, "the flow target ignores the target");
    }
    inst_free(&f, &a);
    /* detached: a loss on the training soft tokens reaches alpha and nothing else */
    if (inst_new(&f, "tokens=3,width=8,heads=2,depth=1,steps=2,train_soft=detached", &dims, &a,
                 &err) == TP_OK) {
        perturb(&a, 3, 0.3f);
        tp_ctx_reset(c);
        tp_bridge_out out;
        TP_CHECK(f.vt->set_target(a.state, t1, NULL, &err) == TP_OK);
        TP_CHECK(f.vt->forward(a.state, c, h, NULL, 1, &out, &err) == TP_OK);
        float r[36];
        for (int i = 0; i < 36; i++) r[i] = lcg_unit(&seed);
        tp_tensor *loss = tp_sum_all(c, tp_mul(c, out.soft, tp_from_f32(c, TP_DIMS(2, 3, 6), r)));
        TP_CHECK(loss && tp_backward(c, loss, NULL) == TP_OK);
        for (int i = 0; i < a.params.n; i++) {
            tp_tensor *p = a.params.p[i];
            double ss = 0;
            for (int64_t k = 0; p->grad && k < tp_numel(p); k++)
                ss += (double)((float *)p->grad->data)[k] * ((float *)p->grad->data)[k];
            if (!strcmp(p->name, "alpha"))
                TP_CHECKF(ss > 0, "alpha got no gradient");
            else
                TP_CHECKF(ss == 0, "detached soft tokens reached %s", p->name);
        }
    }
    inst_free(&f, &a);
    inst_free(&f, &b);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(t1);
    tp_tensor_free(t2);
    fx_close(&f);
}

/* ---- deterministic sampling --------------------------------------------------------------- */

static void test_sampling_deterministic(void) {
    fixture f;
    if (!df_open(&f)) return;
    tp_bridge_dims dims = mkdims(6, 8, 11);
    const char *opts = "tokens=3,width=8,heads=2,depth=1,steps=4,alpha_init=1";
    inst a, b, s7, d;
    tp_err err = {0};
    TP_CHECK(inst_new(&f, opts, &dims, &a, &err) == TP_OK);
    TP_CHECK(inst_new(&f, opts, &dims, &b, &err) == TP_OK);
    TP_CHECK(inst_new(&f, "tokens=3,width=8,heads=2,depth=1,steps=4,alpha_init=1,sample_seed=7",
                      &dims, &s7, &err) == TP_OK);
    tp_bridge_dims other = dims;
    other.seed = 12;
    TP_CHECK(inst_new(&f, opts, &other, &d, &err) == TP_OK);
    if (!a.state || !b.state || !s7.state || !d.state) goto done;
    perturb(&a, 5, 0.2f);
    perturb(&b, 5, 0.2f);
    perturb(&s7, 5, 0.2f);
    unsigned seed = 2;
    tp_tensor *h = persist(TP_DIMS(2, 4, 6), 1.0f, &seed);
    tp_tensor *tg = persist(TP_DIMS(2, 3, 8), 0.01f, &seed);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float x1[48], x2[48], x3[48], x4[48], x5[48];
    TP_CHECK(run_fwd(&f, &a, c, h, NULL, 0, NULL, x1, 48, NULL) == 48);
    TP_CHECK(run_fwd(&f, &a, c, h, NULL, 0, NULL, x2, 48, NULL) == 48);
    TP_CHECK(run_fwd(&f, &b, c, h, NULL, 0, NULL, x3, 48, NULL) == 48);
    TP_CHECKF(memcmp(x1, x2, sizeof x1) == 0, "two eval forwards of one bridge differ");
    TP_CHECKF(memcmp(x1, x3, sizeof x1) == 0, "two bridges with one seed sample differently");
    TP_CHECK(run_fwd(&f, &s7, c, h, NULL, 0, NULL, x4, 48, NULL) == 48);
    TP_CHECKF(memcmp(x1, x4, sizeof x1) != 0, "sample_seed=7 sampled the run seed's noise");
    /* a training forward (it advances the training stream and, EMA on, copies the weights)
     * leaves sampling unchanged */
    tp_ctx_reset(c);
    tp_bridge_out out;
    TP_CHECK(f.vt->set_target(a.state, tg, NULL, &err) == TP_OK);
    TP_CHECK(f.vt->forward(a.state, c, h, NULL, 1, &out, &err) == TP_OK);
    TP_CHECK(run_fwd(&f, &a, c, h, NULL, 0, NULL, x5, 48, NULL) == 48);
    TP_CHECKF(memcmp(x1, x5, sizeof x1) == 0, "a training forward changed eval sampling");
    /* a different run seed: different weights and noise */
    TP_CHECK(run_fwd(&f, &d, c, h, NULL, 0, NULL, x4, 48, NULL) == 48);
    TP_CHECKF(memcmp(x1, x4, sizeof x1) != 0, "another run seed gave the same samples");
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(tg);
done:
    inst_free(&f, &a);
    inst_free(&f, &b);
    inst_free(&f, &s7);
    inst_free(&f, &d);
    fx_close(&f);
}

/* ---- gradients ------------------------------------------------------------------------------ */

/* Every parameter's gradient through the Euler chain (eval forward, steps = 2) against a 4-point
 * central difference, on up to 24 entries of each tensor. */
static void test_grads_euler(void) {
    fixture f;
    if (!df_open(&f)) return;
    tp_bridge_dims dims = mkdims(5, 6, 21);
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f,
                            "tokens=3,width=8,heads=2,depth=1,ffn_mult=1,steps=2,ema=off,"
                            "alpha_init=1",
                            &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    perturb(&in, 9, 0.3f);
    unsigned seed = 3;
    tp_tensor *h = persist(TP_DIMS(2, 4, 5), 1.5f, &seed);
    tp_tensor *mask = make_mask(2, 4, (int[]){4, 2});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float r[36];
    for (int i = 0; i < 36; i++) r[i] = lcg_unit(&seed);
    /* analytic */
    tp_ctx_reset(c);
    tp_bridge_out out;
    for (int i = 0; i < in.params.n; i++) tp_param_zero_grad(in.params.p[i]);
    st = f.vt->forward(in.state, c, h, mask, 0, &out, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    tp_tensor *loss = NULL;
    if (st == TP_OK) {
        tp_tensor *rt = tp_from_f32(c, TP_DIMS(2, 3, 6), r);
        loss = tp_sum_all(c, tp_mul(c, out.soft, rt));
        TP_CHECKF(loss && tp_backward(c, loss, NULL) == TP_OK, "backward: %s", tp_ctx_error(c));
    }
    fd_opts fo = {.step = 1e-2f, .max_entries = 24};
    if (loss) fd_compare(&f, &in, c, h, mask, r, 36, &fo);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    inst_free(&f, &in);
    fx_close(&f);
}

/* Training forwards: the refiner's task-loss gradient reaches every parameter through the chain;
 * the flow loss reaches every network parameter but not alpha (the soft tokens are not in it). */
static void test_training_gradients(void) {
    fixture f;
    if (!df_open(&f)) return;
    tp_bridge_dims dims = mkdims(5, 6, 23);
    unsigned seed = 8;
    tp_tensor *h = persist(TP_DIMS(2, 4, 5), 1.0f, &seed);
    tp_tensor *tg = persist(TP_DIMS(2, 3, 6), 0.01f, &seed);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    for (int mode = 0; mode < 2; mode++) {
        inst in;
        tp_err err = {0};
        const char *opts = mode ? "mode=refiner,tokens=3,width=8,heads=2,depth=1,steps=3"
                                : "tokens=3,width=8,heads=2,depth=1";
        if (inst_new(&f, opts, &dims, &in, &err) != TP_OK) {
            TP_CHECKF(0, "%s: %s", opts, err.msg);
            continue;
        }
        perturb(&in, 4, 0.3f);
        for (int i = 0; i < in.params.n; i++) tp_param_zero_grad(in.params.p[i]);
        tp_ctx_reset(c);
        tp_bridge_out out;
        if (!mode) TP_CHECK(f.vt->set_target(in.state, tg, NULL, &err) == TP_OK);
        tp_status st = f.vt->forward(in.state, c, h, NULL, 1, &out, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        tp_tensor *loss = NULL;
        if (st == TP_OK && mode) {
            TP_CHECK(out.n_aux == 0);
            float r[36];
            for (int i = 0; i < 36; i++) r[i] = lcg_unit(&seed);
            /* a task-like loss: sum(soft * R) for a fixed random R */
            loss = tp_sum_all(c, tp_mul(c, out.soft, tp_from_f32(c, TP_DIMS(2, 3, 6), r)));
        } else if (st == TP_OK) {
            tp_loss_inputs li = {0};
            li.bridge = &out;
            li.soft = out.soft;
            st = f.fl->compute(NULL, c, &li, &loss, &err);
            TP_CHECKF(st == TP_OK, "flow_match: %s", err.msg);
        }
        if (loss) {
            TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
            for (int i = 0; i < in.params.n; i++) {
                tp_tensor *p = in.params.p[i];
                double ss = 0;
                for (int64_t k = 0; p->grad && k < tp_numel(p); k++)
                    ss += (double)((float *)p->grad->data)[k] * ((float *)p->grad->data)[k];
                size_t nl = strlen(p->name);
                int kb = nl > 6 && !strcmp(p->name + nl - 6, "k.bias");
                if (!mode && !strcmp(p->name, "alpha"))
                    TP_CHECKF(ss == 0, "flow loss reached alpha (|g| %g)", sqrt(ss));
                else if (!kb)
                    TP_CHECKF(ss > 0, "%s: param %s got no gradient", opts, p->name);
            }
        }
        inst_free(&f, &in);
    }
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(tg);
    fx_close(&f);
}

/* ---- learning ------------------------------------------------------------------------------- */

#define LN_CLASSES 4
#define LN_B       8
#define LN_T       4
#define LN_L       5
#define LN_DS      6
#define LN_DR      8

typedef struct toyset {
    float cls_h[LN_CLASSES][LN_DS];       /* what the sender "says" about each class */
    float proto[LN_CLASSES][LN_L][LN_DR]; /* each class's target embeddings */
} toyset;

static void toy_init(toyset *ts) {
    unsigned seed = 99;
    for (int k = 0; k < LN_CLASSES; k++) {
        for (int d = 0; d < LN_DS; d++) ts->cls_h[k][d] = 2.0f * lcg_unit(&seed);
        for (int l = 0; l < LN_L; l++)
            for (int d = 0; d < LN_DR; d++) ts->proto[k][l][d] = 0.003f * lcg_unit(&seed);
    }
}

/* A batch: classes cls[], sender states (class vector + noise), targets. */
static void toy_batch(const toyset *ts, unsigned *seed, int *cls, tp_tensor *h, tp_tensor *tg) {
    float *hp = h->data, *tp = tg->data;
    for (int b = 0; b < LN_B; b++) {
        cls[b] = (int)((lcg_unit(seed) + 1.0f) * 0.5f * LN_CLASSES) % LN_CLASSES;
        for (int t = 0; t < LN_T; t++)
            for (int d = 0; d < LN_DS; d++)
                hp[(b * LN_T + t) * LN_DS + d] = ts->cls_h[cls[b]][d] + 0.3f * lcg_unit(seed);
        memcpy(tp + b * LN_L * LN_DR, ts->proto[cls[b]], sizeof ts->proto[0]);
    }
}

/* Trains with flow_match + AdamW for `steps` steps; fills losses[]. */
static int toy_train(fixture *f, inst *in, const toyset *ts, int steps, float lr, double *losses) {
    tp_err err = {0};
    tp_adamw_cfg ac = tp_adamw_defaults();
    ac.weight_decay = 0;
    tp_adamw *opt = tp_adamw_new(in->params.p, in->params.n, &ac, &err);
    if (!opt) {
        TP_CHECKF(0, "adamw: %s", err.msg);
        return 0;
    }
    tp_tensor *h = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(LN_B, LN_T, LN_DS), &err);
    tp_tensor *tg = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(LN_B, LN_L, LN_DR), &err);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    unsigned seed = 1234;
    int ok = 1, cls[LN_B];
    for (int s = 0; s < steps && ok; s++) {
        toy_batch(ts, &seed, cls, h, tg);
        tp_ctx_reset(c);
        tp_adamw_zero_grad(opt);
        tp_bridge_out out;
        tp_tensor *loss = NULL;
        ok = f->vt->set_target(in->state, tg, NULL, &err) == TP_OK &&
             f->vt->forward(in->state, c, h, NULL, 1, &out, &err) == TP_OK;
        tp_loss_inputs li = {0};
        li.bridge = &out;
        ok = ok && f->fl->compute(NULL, c, &li, &loss, &err) == TP_OK;
        ok = ok && tp_backward(c, loss, NULL) == TP_OK;
        if (ok) losses[s] = tp_item(loss, 0);
        ok = ok && tp_adamw_step(opt, lr, &err) == TP_OK;
        TP_CHECKF(ok, "step %d: %s %s", s, err.msg, tp_ctx_error(c));
    }
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(tg);
    tp_adamw_free(opt);
    return ok;
}

/* Mean cosine between each sampled soft token and its class's normalised, resampled target. */
static double toy_sample_cos(fixture *f, inst *in, const toyset *ts) {
    tp_err err = {0};
    tp_tensor *h = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(LN_B, LN_T, LN_DS), &err);
    tp_tensor *tg = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(LN_B, LN_L, LN_DR), &err);
    unsigned seed = 777;
    int cls[LN_B];
    toy_batch(ts, &seed, cls, h, tg);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    int m = f->vt->num_tokens(in->state);
    float *buf = malloc(sizeof(float) * LN_B * (size_t)m * LN_DR);
    double acc = 0;
    if (buf &&
        run_fwd(f, in, c, h, NULL, 0, NULL, buf, LN_B * m * LN_DR, NULL) == LN_B * m * LN_DR) {
        for (int b = 0; b < LN_B; b++)
            for (int j = 0; j < m; j++) {
                double u = m == 1 ? 0.5 * (LN_L - 1) : (double)j * (LN_L - 1) / (m - 1);
                int lo = (int)floor(u), hi = lo + 1 < LN_L ? lo + 1 : LN_L - 1;
                double dot = 0, n1 = 0, n2 = 0;
                for (int d = 0; d < LN_DR; d++) {
                    double t = (1 - (u - lo)) * ts->proto[cls[b]][lo][d] +
                               (u - lo) * ts->proto[cls[b]][hi][d];
                    double x = buf[(b * m + j) * LN_DR + d];
                    dot += t * x;
                    n1 += t * t;
                    n2 += x * x;
                }
                acc += dot / sqrt(n1 * n2 + 1e-30) / (LN_B * m);
            }
    }
    free(buf);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(tg);
    return acc;
}

static void test_flow_loss_falls(void) {
    fixture f;
    if (!df_open(&f)) return;
    toyset ts;
    toy_init(&ts);
    tp_bridge_dims dims = mkdims(LN_DS, LN_DR, 5);
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f,
                            "tokens=4,width=32,heads=4,depth=2,ffn_mult=2,steps=10,"
                            "ema_decay=0.95",
                            &dims, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    double before = toy_sample_cos(&f, &in, &ts);
    enum { STEPS = 300 };
    double losses[STEPS];
    if (toy_train(&f, &in, &ts, STEPS, 3e-3f, losses)) {
        double first = 0, last = 0;
        for (int i = 0; i < 20; i++) first += losses[i] / 20;
        for (int i = STEPS - 50; i < STEPS; i++) last += losses[i] / 50;
        double after = toy_sample_cos(&f, &in, &ts);
        fprintf(stderr,
                "  flow loss %.3f (first 20 steps) -> %.3f (last 50); sample cos to target "
                "%.3f -> %.3f\n",
                first, last, before, after);
        TP_CHECKF(last < 0.5 * first, "flow loss did not fall: %g -> %g", first, last);
        TP_CHECKF(after > 0.8 && after > before + 0.5,
                  "10-step Euler samples are not near their targets: cos %g (before %g)", after,
                  before);
    }
    inst_free(&f, &in);
    fx_close(&f);
}

/* EMA with decay 0 after n training steps holds the weights of the n-th forward, i.e. those
 * after n-1 updates: its samples equal those of an EMA-less twin trained n-1 steps. With a real
 * decay the samples differ from both. */
static void test_ema(void) {
    fixture f;
    if (!df_open(&f)) return;
    toyset ts;
    toy_init(&ts);
    tp_bridge_dims dims = mkdims(LN_DS, LN_DR, 6);
    const char *base = "tokens=3,width=8,heads=2,depth=1,steps=3";
    char oa[128], ob[128], oc[128];
    snprintf(oa, sizeof oa, "%s,ema=off", base);
    snprintf(ob, sizeof ob, "%s,ema=on,ema_decay=0", base);
    snprintf(oc, sizeof oc, "%s,ema_decay=0.5", base);
    inst a, b, e;
    tp_err err = {0};
    TP_CHECK(inst_new(&f, oa, &dims, &a, &err) == TP_OK);
    TP_CHECK(inst_new(&f, ob, &dims, &b, &err) == TP_OK);
    TP_CHECK(inst_new(&f, oc, &dims, &e, &err) == TP_OK);
    double l[8];
    if (a.state && b.state && e.state && toy_train(&f, &a, &ts, 4, 1e-2f, l) &&
        toy_train(&f, &b, &ts, 5, 1e-2f, l) && toy_train(&f, &e, &ts, 5, 1e-2f, l)) {
        tp_tensor *h = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(2, LN_T, LN_DS), &err);
        unsigned seed = 5;
        for (int i = 0; i < 2 * LN_T * LN_DS; i++) ((float *)h->data)[i] = lcg_unit(&seed);
        tp_ctx *c = tp_ctx_new(TP_CPU);
        float xa[48], xb[48], xe[48], xlive[48];
        TP_CHECK(run_fwd(&f, &a, c, h, NULL, 0, NULL, xa, 48, NULL) == 48);
        TP_CHECK(run_fwd(&f, &b, c, h, NULL, 0, NULL, xb, 48, NULL) == 48);
        TP_CHECK(run_fwd(&f, &e, c, h, NULL, 0, NULL, xe, 48, NULL) == 48);
        TP_CHECKF(memcmp(xa, xb, sizeof xa) == 0,
                  "EMA (decay 0) after 5 steps differs from the weights after 4 updates");
        TP_CHECKF(memcmp(xa, xe, sizeof xa) != 0, "EMA decay 0.5 changed nothing");
        /* the live weights of b (5 updates) are not what its eval used */
        inst_free(&f, &a);
        TP_CHECK(inst_new(&f, oa, &dims, &a, &err) == TP_OK);
        if (a.state && toy_train(&f, &a, &ts, 5, 1e-2f, l)) {
            TP_CHECK(run_fwd(&f, &a, c, h, NULL, 0, NULL, xlive, 48, NULL) == 48);
            TP_CHECKF(memcmp(xlive, xb, sizeof xb) != 0, "eval used the live weights");
        }
        tp_ctx_free(c);
        tp_tensor_free(h);
    }
    inst_free(&f, &a);
    inst_free(&f, &b);
    inst_free(&f, &e);
    fx_close(&f);
}

/* ---- options -------------------------------------------------------------------------------- */

static void test_options(void) {
    fixture f;
    if (!df_open(&f)) return;
    tp_bridge_dims dims = mkdims(6, 8, 1);
    expect_error(&f, "width=12,heads=5", &dims, "heads = 5 does not divide");
    expect_error(&f, "mode=ddpm", &dims, "mode");
    expect_error(&f, "ema=maybe", &dims, "ema");
    expect_error(&f, "ema_decay=1", &dims, "ema_decay");
    expect_error(&f, "depth=9", &dims, "depth");
    expect_error(&f, "steps=0", &dims, "steps");
    expect_error(&f, "alpha_init=big", &dims, "alpha_init");
    tp_bridge_dims nocal = dims;
    nocal.recv_embed_rms = 0;
    expect_error(&f, "width=8,heads=2", &nocal, "recv_embed_rms");
    tp_bridge_dims bad = dims;
    bad.d_receiver = 0;
    expect_error(&f, "", &bad, "receiver width");
    /* the deepest allowed DiT fits the trainer's parameter table (TP_MAX_PARAMS) */
    inst in;
    tp_err err = {0};
    if (inst_new(&f, "width=8,heads=2,depth=8", &dims, &in, &err) == TP_OK)
        TP_CHECK(in.params.n == 16 + 24 * 8 && in.params.n <= TP_MAX_PARAMS);
    else
        TP_CHECKF(0, "depth=8: %s", err.msg);
    inst_free(&f, &in);
    /* the study's settings are the defaults: 10 Euler steps, EMA 0.999, flow */
    if (inst_new(&f, "width=8,heads=2,depth=1", &dims, &in, &err) == TP_OK) {
        TP_CHECK(bridge_flags(&f, &in) == TP_BRIDGE_NEEDS_TARGET);
        TP_CHECK(f.vt->num_tokens(in.state) == 16);
        TP_CHECK(param_named(&in, "alpha") != NULL);
    }
    inst_free(&f, &in);
    if (inst_new(&f, "width=8,heads=2,depth=1,alpha_learnable=false", &dims, &in, &err) == TP_OK)
        TP_CHECK(param_named(&in, "alpha") == NULL);
    inst_free(&f, &in);
    const tp_plugin_desc *d = &f.plugin->desc;
    for (int i = 0; i < d->n_options; i++) {
        if (!strcmp(d->options[i].name, "steps")) TP_CHECK(!strcmp(d->options[i].def, "10"));
        if (!strcmp(d->options[i].name, "ema_decay")) TP_CHECK(!strcmp(d->options[i].def, "0.999"));
    }
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_shapes_and_contract), TP_CASE(test_flow_target),
            TP_CASE(test_no_target_leak), TP_CASE(test_sampling_deterministic),
            TP_CASE(test_grads_euler), TP_CASE(test_training_gradients),
            TP_CASE(test_flow_loss_falls), TP_CASE(test_ema), TP_CASE(test_options))
