/* test_bridges_probe.c — the linear_probe baseline, loaded as the real .so: the classifier
 * contract (flag CLASSIFIER, no soft tokens, aux class_logits [B,C]), logits against a hand
 * computation on the L2-normalised last-token state (and the mean-pool option), padded
 * positions inert, finite-difference gradients, the n_classes error, and that logistic
 * regression trained with the tensor core learns a separable synthetic problem. */
#include "test_bridges_common.h"

static const tp_bridge_dims dims3 = {6, 8, 50, 40, 0.0027f, 77, 3};

static void test_contract_and_values(void) {
    fixture f;
    if (!fx_open(&f, "linear_probe")) return;
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "", &dims3, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    TP_CHECK(bridge_flags(&f, &in) == TP_BRIDGE_CLASSIFIER);
    TP_CHECK(f.vt->num_tokens(in.state) == 0);
    tp_tensor *w = param_named(&in, "weight"), *b = param_named(&in, "bias");
    TP_CHECK(in.params.n == 2 && w && b && w->shape[0] == 3 && w->shape[1] == 6);
    unsigned seed = 4;
    tp_tensor *h = persist(TP_DIMS(2, 5, 6), 2.0f, &seed);
    tp_tensor *mask = make_mask(2, 5, (int[]){5, 2});
    tp_ctx *c = tp_ctx_new(TP_CPU);
    float got[6];
    tp_bridge_out out;
    /* zero init, as sklearn starts: all logits 0 */
    TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, "class_logits", got, 6, &out) == 6);
    TP_CHECK(out.soft == NULL);
    tp_tensor *cl = aux_named(&out, "class_logits");
    TP_CHECK(cl && cl->ndim == 2 && cl->shape[0] == 2 && cl->shape[1] == 3);
    for (int i = 0; i < 6; i++) TP_CHECK(got[i] == 0.0f);
    /* random weights: logits = W v/|v| + b, v = the last real token */
    for (int i = 0; i < 18; i++) ((float *)w->data)[i] = lcg_unit(&seed);
    for (int i = 0; i < 3; i++) ((float *)b->data)[i] = lcg_unit(&seed);
    for (int pool = 0; pool < 2; pool++) {
        if (pool) {
            inst_free(&f, &in);
            st = inst_new(&f, "pool=mean", &dims3, &in, &err);
            TP_CHECKF(st == TP_OK, "%s", err.msg);
            if (st != TP_OK) break;
            w = param_named(&in, "weight");
            b = param_named(&in, "bias");
            unsigned s2 = 99;
            for (int i = 0; i < 18; i++) ((float *)w->data)[i] = lcg_unit(&s2);
            for (int i = 0; i < 3; i++) ((float *)b->data)[i] = lcg_unit(&s2);
        }
        TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, "class_logits", got, 6, NULL) == 6);
        const float *hp = h->data, *mp = mask->data;
        for (int e = 0; e < 2; e++) {
            double v[6] = {0}, n2 = 0, cnt = 0;
            for (int t = 0; t < 5; t++) {
                if (mp[e * 5 + t] == 0) continue;
                if (!pool)
                    for (int k = 0; k < 6; k++) v[k] = hp[(e * 5 + t) * 6 + k];
                else
                    for (int k = 0; k < 6; k++) v[k] += hp[(e * 5 + t) * 6 + k];
                cnt++;
            }
            for (int k = 0; pool && k < 6; k++) v[k] /= cnt;
            for (int k = 0; k < 6; k++) n2 += v[k] * v[k];
            for (int cl2 = 0; cl2 < 3; cl2++) {
                double z = ((float *)b->data)[cl2];
                for (int k = 0; k < 6; k++) z += ((float *)w->data)[cl2 * 6 + k] * v[k] / sqrt(n2);
                TP_CHECKF(fabs(z - got[e * 3 + cl2]) < 1e-5, "pool=%d: logit[%d,%d] %g, by hand %g",
                          pool, e, cl2, got[e * 3 + cl2], z);
            }
        }
        /* padded positions of example 1 are inert */
        float before[6];
        memcpy(before, got, sizeof got);
        ((float *)h->data)[(1 * 5 + 4) * 6 + 2] = 1e4f;
        TP_CHECK(run_fwd(&f, &in, c, h, mask, 0, "class_logits", got, 6, NULL) == 6);
        TP_CHECK(memcmp(before, got, sizeof got) == 0);
    }
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    inst_free(&f, &in);
    /* a probe needs a classification task */
    tp_bridge_dims none = dims3;
    none.n_classes = 0;
    expect_error(&f, "", &none, "n_classes");
    expect_error(&f, "pool=first", &dims3, "pool");
    fx_close(&f);
}

static void test_grad(void) {
    fixture f;
    if (!fx_open(&f, "linear_probe")) return;
    for (int pool = 0; pool < 2; pool++) {
        inst in;
        tp_err err = {0};
        tp_status st = inst_new(&f, pool ? "pool=mean" : "", &dims3, &in, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            unsigned seed = 31;
            tp_tensor *h = persist(TP_DIMS(3, 4, 6), 1.5f, &seed);
            tp_tensor *mask = make_mask(3, 4, (int[]){4, 2, 3});
            grad_check(&f, &in, h, mask, "class_logits", NULL);
            tp_tensor_free(h);
            tp_tensor_free(mask);
        }
        inst_free(&f, &in);
    }
    fx_close(&f);
}

/* Synthetic 3-class problem: the last real token carries 2 * e_class + noise (0.4), the other
 * tokens are noise and the padding is huge. Full-batch gradient descent on the softmax
 * cross-entropy of class_logits (logistic regression, trained with the tensor core) must reach
 * >= 95% on 96 held-out examples, from 1/3 at the zero init. */
#define PR_N 96
#define PR_T 4
#define PR_D 6
static void make_set(unsigned *seed, tp_tensor **h, tp_tensor **mask, int32_t *labels) {
    int lens[PR_N];
    for (int i = 0; i < PR_N; i++) lens[i] = 2 + (int)((lcg_unit(seed) + 1.0f) * 1.4f);
    *h = persist(TP_DIMS(PR_N, PR_T, PR_D), 0.4f, seed);
    *mask = make_mask(PR_N, PR_T, lens);
    float *hp = (*h)->data;
    for (int i = 0; i < PR_N; i++) {
        labels[i] = i % 3;
        hp[(i * PR_T + lens[i] - 1) * PR_D + labels[i]] += 2.0f;
        for (int t = lens[i]; t < PR_T; t++)
            for (int k = 0; k < PR_D; k++) hp[(i * PR_T + t) * PR_D + k] = 1e3f;
    }
}

static double accuracy(fixture *f, inst *in, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                       const int32_t *labels) {
    float lg[PR_N * 3];
    if (run_fwd(f, in, c, h, mask, 0, "class_logits", lg, PR_N * 3, NULL) != PR_N * 3) return -1;
    int ok = 0;
    for (int i = 0; i < PR_N; i++) {
        int best = 0; /* ties go to the lowest class, as argmax does */
        for (int k = 1; k < 3; k++)
            if (lg[i * 3 + k] > lg[i * 3 + best]) best = k;
        ok += best == labels[i];
    }
    return ok / (double)PR_N;
}

static void test_learns_separable(void) {
    fixture f;
    if (!fx_open(&f, "linear_probe")) return;
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "", &dims3, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK) {
        fx_close(&f);
        return;
    }
    unsigned seed = 2024;
    tp_tensor *h, *mask, *vh, *vmask;
    int32_t labels[PR_N], vlabels[PR_N];
    make_set(&seed, &h, &mask, labels);
    make_set(&seed, &vh, &vmask, vlabels);
    tp_ctx *c = tp_ctx_new(TP_CPU);
    double acc0 = accuracy(&f, &in, c, vh, vmask, vlabels);
    TP_CHECK_NEAR(acc0, 1.0 / 3.0, 1e-9);
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        tp_ctx_reset(c);
        tp_bridge_out out;
        if (f.vt->forward(in.state, c, h, mask, 1, &out, &err) != TP_OK) {
            TP_CHECKF(0, "forward: %s", err.msg);
            break;
        }
        for (int i = 0; i < in.params.n; i++) tp_param_zero_grad(in.params.p[i]);
        tp_tensor *loss = tp_cross_entropy(c, aux_named(&out, "class_logits"),
                                           tp_from_i32(c, TP_DIMS(PR_N), labels), -100, 0.0f);
        if (!loss || tp_backward(c, loss, NULL) != TP_OK) {
            TP_CHECKF(0, "loss/backward: %s", tp_ctx_error(c));
            break;
        }
        if (step == 0) first = tp_item(loss, 0);
        last = tp_item(loss, 0);
        for (int i = 0; i < in.params.n; i++) {
            tp_tensor *p = in.params.p[i];
            float *v = p->data, *g = p->grad->data;
            for (int64_t k = 0; k < tp_numel(p); k++) v[k] -= 2.0f * g[k];
        }
    }
    double acc = accuracy(&f, &in, c, vh, vmask, vlabels);
    fprintf(stderr, "  probe: loss %.3f -> %.3f, held-out accuracy %.3f -> %.3f\n", first, last,
            acc0, acc);
    TP_CHECK_NEAR(first, log(3.0), 1e-5);
    TP_CHECKF(last < 0.5 * first, "loss only fell from %g to %g", first, last);
    TP_CHECKF(acc >= 0.95, "held-out accuracy %g < 0.95", acc);
    tp_ctx_free(c);
    tp_tensor_free(h);
    tp_tensor_free(mask);
    tp_tensor_free(vh);
    tp_tensor_free(vmask);
    inst_free(&f, &in);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_contract_and_values), TP_CASE(test_grad), TP_CASE(test_learns_separable))
