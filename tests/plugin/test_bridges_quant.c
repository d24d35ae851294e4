/* test_bridges_quant.c — the quantised bridges vq and fsq, loaded as the real .so files.
 * VQ: shapes and aux outputs, codes = the nearest code (l2 and cosine), the commitment value
 * against a hand computation, the straight-through gradient (dL/dz equals dL/dq computed by
 * hand, the codebook gets nothing from the soft tokens), the commitment gradient of the
 * codebook, perplexity and dead-code metrics against hand counts, the entropy bonus value and
 * its finite-difference gradients, option errors. FSQ: rounding against a hand computation
 * for both variants and mixed levels, reachable extremes, straight-through gradient,
 * finite-difference gradients after the rounding, code metrics, option errors. */
#include "test_bridges_common.h"

static const tp_bridge_dims dims68 = {6, 8, 50, 40, 0.0027f, 1234, 0};

typedef struct run {
    fixture f;
    inst in;
    tp_ctx *c;
    tp_tensor *h, *mask;
    tp_bridge_out out;
} run;

/* Opens `name`, creates it with opts and runs one forward on B x 5 sender states. */
static int run_open(run *r, const char *name, const char *opts, int64_t b, int training) {
    memset(r, 0, sizeof *r);
    if (!fx_open(&r->f, name)) return 0;
    tp_err err = {0};
    tp_status st = inst_new(&r->f, opts, &dims68, &r->in, &err);
    TP_CHECKF(st == TP_OK, "%s %s: %s", name, opts, err.msg);
    if (st != TP_OK) {
        inst_free(&r->f, &r->in);
        fx_close(&r->f);
        return 0;
    }
    unsigned seed = 17;
    r->h = persist(TP_DIMS(b, 5, 6), 2.0f, &seed);
    int lens[8] = {5, 3, 4, 2, 5, 1, 3, 5};
    r->mask = make_mask(b, 5, lens);
    r->c = tp_ctx_new(TP_CPU);
    tp_ctx_reset(r->c);
    st = r->f.vt->forward(r->in.state, r->c, r->h, r->mask, training, &r->out, &err);
    TP_CHECKF(st == TP_OK, "%s forward: %s", name, err.msg);
    return st == TP_OK;
}

static void run_close(run *r) {
    tp_ctx_free(r->c);
    tp_tensor_free(r->h);
    tp_tensor_free(r->mask);
    inst_free(&r->f, &r->in);
    fx_close(&r->f);
}

static float *host(const tp_tensor *t) {
    float *b = malloc((size_t)tp_numel(t) * sizeof *b);
    tp_err err = {0};
    if (b && tp_to_f32_buffer(t, b, &err) != TP_OK) {
        free(b);
        return NULL;
    }
    return b;
}

/* ---- VQ ---------------------------------------------------------------------------------- */

#define VQ_OPTS "tokens=3,depth=1,heads=2,ffn_mult=2,codebook=16,alpha_init=0.5"

static void test_vq_forward(void) {
    for (int cosine = 0; cosine < 2; cosine++) {
        const char *opts = cosine ? VQ_OPTS ",distance=cosine,beta=1" : VQ_OPTS;
        const double beta = cosine ? 1.0 : 0.25;
        run r;
        if (!run_open(&r, "vq", opts, 2, 1)) {
            run_close(&r);
            continue;
        }
        tp_bridge_out *o = &r.out;
        TP_CHECK(o->soft && o->soft->shape[0] == 2 && o->soft->shape[1] == 3 &&
                 o->soft->shape[2] == 8);
        TP_CHECK(r.f.vt->num_tokens(r.in.state) == 3);
        float *soft = host(o->soft);
        for (int t = 0; soft && t < 6; t++) TP_CHECK_NEAR(row_rms(soft, t, 8), 0.5, 5e-5);
        tp_tensor *z = aux_named(o, "vq_z"), *codes = aux_named(o, "codes");
        tp_tensor *commit = aux_named(o, "vq_commit");
        tp_tensor *cb = param_named(&r.in, "codebook");
        TP_CHECK(z && codes && commit && cb && aux_named(o, "vq_entropy_bonus") == NULL);
        if (!z || !codes || !commit || !cb) {
            free(soft);
            run_close(&r);
            continue;
        }
        TP_CHECK(z->shape[0] == 6 && z->shape[1] == 8 && tp_numel(codes) == 6);
        TP_CHECK(tp_numel(commit) == 1);
        float *zb = host(z), *kb = host(codes);
        const float *cp = cb->data;
        double se = 0;
        int hist[16] = {0};
        for (int n = 0; n < 6; n++) {
            /* the chosen code is the nearest (cosine: z is unit-norm, codes compared by angle) */
            int best = -1;
            double bv = INFINITY, zn = 0;
            for (int d = 0; d < 8; d++) zn += (double)zb[n * 8 + d] * zb[n * 8 + d];
            if (cosine) TP_CHECK_NEAR(zn, 1.0, 1e-5);
            for (int k = 0; k < 16; k++) {
                double dist = 0, dot = 0, cn = 0;
                for (int d = 0; d < 8; d++) {
                    double cv = cp[k * 8 + d];
                    dist += (zb[n * 8 + d] - cv) * (zb[n * 8 + d] - cv);
                    dot += zb[n * 8 + d] * cv;
                    cn += cv * cv;
                }
                double v = cosine ? -dot / sqrt(cn) : dist;
                if (v < bv) {
                    bv = v;
                    best = k;
                }
            }
            int k = (int)kb[n];
            TP_CHECKF(k == best, "cosine=%d: row %d got code %d, nearest is %d", cosine, n, k,
                      best);
            hist[k]++;
            double cn = 0;
            for (int d = 0; d < 8; d++) cn += (double)cp[k * 8 + d] * cp[k * 8 + d];
            for (int d = 0; d < 8; d++) {
                double q = cosine ? cp[k * 8 + d] / sqrt(cn) : cp[k * 8 + d];
                se += (zb[n * 8 + d] - q) * (zb[n * 8 + d] - q);
            }
        }
        /* commitment = (1 + beta) * mean((z - q)^2): both terms have the same value */
        double want = (1.0 + beta) * se / 48.0;
        TP_CHECKF(fabs(tp_item(commit, 0) - want) <= 1e-5 * want,
                  "cosine=%d: vq_commit %g, by hand %g", cosine, tp_item(commit, 0), want);
        double ppl = 0, dead = 0, mc = 0, h = 0;
        int distinct = 0;
        for (int k = 0; k < 16; k++)
            if (hist[k]) {
                distinct++;
                h -= hist[k] / 6.0 * log(hist[k] / 6.0);
            }
        TP_CHECK(metric_named(o, "vq_perplexity", &ppl) && metric_named(o, "vq_dead_codes", &dead));
        TP_CHECK(metric_named(o, "vq_commit", &mc));
        TP_CHECK_NEAR(ppl, exp(h), 1e-9);
        TP_CHECK_NEAR(dead, 16 - distinct, 0);
        TP_CHECK_NEAR(mc, tp_item(commit, 0), 1e-12);
        free(soft);
        free(zb);
        free(kb);
        run_close(&r);
    }
}

/* Straight-through: the soft tokens' gradient reaches z unchanged through the quantiser (here
 * width = receiver width, so soft = 0.5 * RMSNorm(q) and dL/dq is written down by hand), the
 * encoder learns, the codebook gets nothing; the commitment loss gives the codebook
 * -2 sum_{n: k_n = k} (z_n - C_k) / (N W) and nothing to unused codes. */
static void test_vq_straight_through(void) {
    run r;
    if (!run_open(&r, "vq", VQ_OPTS ",alpha_learnable=false", 2, 1)) {
        run_close(&r);
        return;
    }
    tp_ctx *c = r.c;
    tp_tensor *soft = r.out.soft, *z = aux_named(&r.out, "vq_z");
    tp_tensor *codes = aux_named(&r.out, "codes"), *cb = param_named(&r.in, "codebook");
    TP_CHECK(z && codes && cb);
    if (!z || !codes || !cb) {
        run_close(&r);
        return;
    }
    float rr[48];
    unsigned seed = 5;
    for (int i = 0; i < 48; i++) rr[i] = lcg_unit(&seed);
    for (int i = 0; i < r.in.params.n; i++) tp_param_zero_grad(r.in.params.p[i]);
    tp_requires_grad(c, z); /* keep its grad past tp_backward (grad reuse drops unmarked ones) */
    tp_tensor *loss = tp_sum_all(c, tp_mul(c, soft, tp_from_f32(c, TP_DIMS(2, 3, 8), rr)));
    TP_CHECK(loss && tp_backward(c, loss, NULL) == TP_OK);
    TP_CHECK(z->grad != NULL);
    float *kb = host(codes);
    const float *cp = cb->data;
    if (z->grad && kb) {
        const float *gz = z->grad->data;
        double worst = 0;
        for (int n = 0; n < 6; n++) {
            const float *q = cp + (int)kb[n] * 8;
            const float *R = rr + n * 8;
            double ss = 0, rq = 0;
            for (int d = 0; d < 8; d++) {
                ss += (double)q[d] * q[d];
                rq += (double)R[d] * q[d];
            }
            double rms = sqrt(ss / 8 + 1e-8);
            for (int d = 0; d < 8; d++) {
                double g = 0.5 * (R[d] / rms - q[d] * rq / (8 * rms * rms * rms));
                worst = fmax(worst, fabs(g - gz[d + n * 8]) / (fabs(g) + 1e-3));
            }
        }
        TP_CHECKF(worst < 1e-3, "dL/dz differs from dL/dq by %g (relative)", worst);
    }
    double cg = 0, eg = 0;
    for (int i = 0; i < 16 * 8; i++) cg += fabs(((float *)cb->grad->data)[i]);
    tp_tensor *enc = param_named(&r.in, "enc.latents");
    for (int i = 0; enc && i < tp_numel(enc); i++) eg += fabs(((float *)enc->grad->data)[i]);
    TP_CHECKF(cg == 0, "the soft tokens gave the codebook a gradient (%g)", cg);
    TP_CHECKF(eg > 0, "no gradient reached the encoder through the quantiser");

    /* the commitment loss trains the codebook */
    tp_tensor_free(NULL);
    for (int i = 0; i < r.in.params.n; i++) tp_param_zero_grad(r.in.params.p[i]);
    tp_ctx_reset(c);
    tp_err err = {0};
    TP_CHECK(r.f.vt->forward(r.in.state, c, r.h, r.mask, 1, &r.out, &err) == TP_OK);
    z = aux_named(&r.out, "vq_z");
    TP_CHECK(tp_backward(c, aux_named(&r.out, "vq_commit"), NULL) == TP_OK);
    float *zb = z ? host(z) : NULL;
    if (zb && kb && cb->grad) {
        double want[16 * 8] = {0}, worst = 0;
        for (int n = 0; n < 6; n++) {
            int k = (int)kb[n];
            for (int d = 0; d < 8; d++)
                want[k * 8 + d] += -2.0 * (zb[n * 8 + d] - cp[k * 8 + d]) / 48.0;
        }
        const float *g = cb->grad->data;
        for (int i = 0; i < 128; i++) worst = fmax(worst, fabs(g[i] - want[i]));
        TP_CHECKF(worst < 1e-6, "commitment gradient of the codebook off by %g", worst);
    }
    free(zb);
    free(kb);
    run_close(&r);
}

/* Finite differences where they are valid: after the quantiser (output projection, alpha) for
 * the soft tokens, and everything for the (smooth) entropy bonus. */
static void test_vq_grads(void) {
    fixture f;
    if (!fx_open(&f, "vq")) return;
    inst in;
    tp_err err = {0};
    tp_status st =
        inst_new(&f, VQ_OPTS ",width=4,entropy_weight=0.1,entropy_tau=0.5", &dims68, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(param_named(&in, "output_proj.weight") &&
                 param_named(&in, "enc.input_proj.weight"));
        unsigned seed = 23;
        tp_tensor *h = persist(TP_DIMS(2, 4, 6), 1.5f, &seed);
        tp_tensor *mask = make_mask(2, 4, (int[]){4, 2});
        const char *skip_soft[] = {"enc.", "codebook", NULL};
        grad_check(&f, &in, h, mask, NULL, skip_soft);
        /* key biases: softmax ignores a shift shared by all keys, their gradient is exactly 0 */
        const char *skip_bonus[] = {"output_proj", "alpha", "k.bias", NULL};
        grad_check(&f, &in, h, mask, "vq_entropy_bonus", skip_bonus);
        /* the bonus value by hand: -w H(mean softmax(-||z - C||^2 / tau)) / log K */
        tp_ctx *c = tp_ctx_new(TP_CPU);
        tp_ctx_reset(c);
        tp_bridge_out out;
        TP_CHECK(f.vt->forward(in.state, c, h, mask, 0, &out, &err) == TP_OK);
        tp_tensor *z = aux_named(&out, "vq_z"), *bonus = aux_named(&out, "vq_entropy_bonus");
        tp_tensor *cb = param_named(&in, "codebook");
        float *zb = z ? host(z) : NULL;
        if (zb && bonus && cb) {
            double pbar[16] = {0};
            for (int n = 0; n < 6; n++) {
                double lg[16], mx = -INFINITY, s = 0;
                for (int k = 0; k < 16; k++) {
                    double dist = 0;
                    for (int d = 0; d < 4; d++) {
                        double e = zb[n * 4 + d] - ((float *)cb->data)[k * 4 + d];
                        dist += e * e;
                    }
                    lg[k] = -dist / 0.5;
                    mx = fmax(mx, lg[k]);
                }
                for (int k = 0; k < 16; k++) s += exp(lg[k] - mx);
                for (int k = 0; k < 16; k++) pbar[k] += exp(lg[k] - mx) / s / 6.0;
            }
            double hh = 0;
            for (int k = 0; k < 16; k++) hh -= pbar[k] * log(pbar[k] + 1e-10);
            double want = -0.1 * hh / log(16.0);
            TP_CHECKF(fabs(tp_item(bonus, 0) - want) < 1e-5, "entropy bonus %g, by hand %g",
                      tp_item(bonus, 0), want);
        }
        free(zb);
        tp_ctx_free(c);
        tp_tensor_free(h);
        tp_tensor_free(mask);
    }
    inst_free(&f, &in);
    fx_close(&f);
}

/* A collapsed codebook (all rows equal) has perplexity 1 and K - 1 dead codes; eval forwards
 * leave the dead-code window alone; a code unused for dead_window training forwards is dead. */
static void test_vq_collapse_and_dead(void) {
    run r;
    if (!run_open(&r, "vq", VQ_OPTS ",dead_window=2", 2, 0)) {
        run_close(&r);
        return;
    }
    double dead = 0, ppl = 0;
    TP_CHECK(metric_named(&r.out, "vq_dead_codes", &dead));
    TP_CHECK_NEAR(dead, 16, 0); /* eval only: nothing counted as used */
    tp_tensor *cb = param_named(&r.in, "codebook");
    float *cp = cb->data;
    for (int k = 1; k < 16; k++) memcpy(cp + k * 8, cp, 8 * sizeof *cp);
    tp_err err = {0};
    for (int step = 0; step < 4; step++) {
        tp_ctx_reset(r.c);
        TP_CHECK(r.f.vt->forward(r.in.state, r.c, r.h, r.mask, 1, &r.out, &err) == TP_OK);
        TP_CHECK(metric_named(&r.out, "vq_perplexity", &ppl) &&
                 metric_named(&r.out, "vq_dead_codes", &dead));
        TP_CHECK_NEAR(ppl, 1.0, 1e-12);
        TP_CHECK_NEAR(dead, 15, 0); /* ties go to the lowest index: only code 0 is used */
    }
    /* make code 5 the only one near: 0 goes dead after dead_window forwards */
    for (int d = 0; d < 8; d++) cp[0 * 8 + d] = 1000.0f;
    float *zb = host(aux_named(&r.out, "vq_z"));
    for (int k = 1; k < 16; k++)
        for (int d = 0; d < 8; d++) cp[k * 8 + d] = k == 5 ? zb[d] : 500.0f;
    free(zb);
    double seen[4];
    for (int step = 0; step < 4; step++) {
        tp_ctx_reset(r.c);
        TP_CHECK(r.f.vt->forward(r.in.state, r.c, r.h, r.mask, 1, &r.out, &err) == TP_OK);
        TP_CHECK(metric_named(&r.out, "vq_dead_codes", &seen[step]));
    }
    /* code 0 was last chosen one forward before: still alive after the first, dead after the
     * second (unused in both of the last 2 forwards) */
    TP_CHECKF(seen[0] == 14 && seen[1] == 15 && seen[2] == 15 && seen[3] == 15,
              "dead codes %g %g %g %g, expected 14 15 15 15 (window 2)", seen[0], seen[1], seen[2],
              seen[3]);
    run_close(&r);
}

static void test_vq_options(void) {
    fixture f;
    if (!fx_open(&f, "vq")) return;
    expect_error(&f, "codebook=0", &dims68, "codebook");
    expect_error(&f, "distance=manhattan", &dims68, "distance");
    expect_error(&f, "heads=3", &dims68, "heads = 3 does not divide");
    expect_error(&f, "codebook=1,entropy_weight=0.1", &dims68, "codebook >= 2");
    expect_error(&f, "beta=-1", &dims68, "beta");
    expect_error(&f, "tokens=0", &dims68, "tokens");
    /* defaults: the study's K = 4096, beta 0.25, codebook init U(+-1/K) */
    inst in;
    tp_err err = {0};
    tp_bridge_dims small = {4, 4, 1, 1, 0.0027f, 2, 0};
    tp_status st = inst_new(&f, "tokens=1,depth=1,heads=1,ffn_mult=1", &small, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    tp_tensor *cb = st == TP_OK ? param_named(&in, "codebook") : NULL;
    TP_CHECK(cb && cb->shape[0] == 4096 && cb->shape[1] == 4);
    double mx = 0;
    for (int i = 0; cb && i < 4096 * 4; i++) mx = fmax(mx, fabs(((float *)cb->data)[i]));
    TP_CHECK(mx <= 1.0 / 4096 && mx > 0.9 / 4096);
    inst_free(&f, &in);
    fx_close(&f);
}

/* ---- FSQ --------------------------------------------------------------------------------- */

/* q by hand from z for one scalar of level L. */
static double fsq_hand(double z, int L, int study) {
    if (study) {
        /* the grid is -floor((L-1)/2)..floor((L-1)/2): a bound that saturates to exactly
         * +-(L-1)/2 for even L rounds inwards (torch.round would leave the grid there) */
        double half = (L - 1) / 2.0, g = floor(half), v = nearbyint(tanh(z) * half);
        return fmax(-g, fmin(g, v)) / half;
    }
    double a = (L - 1) * (1 + 1e-3) / 2, o = L % 2 == 0 ? 0.5 : 0.0;
    double b = tanh(z + atanh(o / a)) * a - o;
    return nearbyint(b) / (double)(L / 2);
}

static void check_fsq_rounding(const char *levels, int study) {
    int lv[8], nd = 0;
    for (char *p = (char *)levels; *p && nd < 8;) {
        int l = (int)strtol(p, &p, 10), rep = 1;
        if (*p == 'x') rep = (int)strtol(p + 1, &p, 10);
        for (int i = 0; i < rep && nd < 8; i++) lv[nd++] = l;
        if (*p == ',' || *p == ':') p++;
    }
    char opts[160];
    snprintf(opts, sizeof opts,
             "tokens=8,depth=1,heads=2,ffn_mult=1,alpha_init=0.5,levels=%s,variant=%s", levels,
             study ? "study" : "exact");
    run r;
    if (!run_open(&r, "fsq", opts, 4, 0)) {
        run_close(&r);
        return;
    }
    /* spread z wide so both ends of each grid are reached: z' = 4 (z - mean z) / sd z per dim,
     * by rescaling the input projection (z = W y + b) */
    tp_tensor *w = param_named(&r.in, "fsq.proj_in.weight");
    tp_tensor *bias = param_named(&r.in, "fsq.proj_in.bias");
    tp_tensor *z0 = aux_named(&r.out, "fsq_z");
    TP_CHECK(w && bias && z0 && w->shape[0] == nd && w->shape[1] == 8);
    float *z0b = z0 ? host(z0) : NULL;
    for (int j = 0; w && bias && z0b && j < nd; j++) {
        double mu = 0, ss = 0;
        for (int n = 0; n < 32; n++) mu += z0b[n * nd + j] / 32.0;
        for (int n = 0; n < 32; n++) ss += (z0b[n * nd + j] - mu) * (z0b[n * nd + j] - mu);
        double sc = 4.0 / sqrt(ss / 32.0);
        for (int k = 0; k < 8; k++) ((float *)w->data)[j * 8 + k] *= (float)sc;
        float *bp = (float *)bias->data + j;
        *bp = (float)((*bp - mu) * sc);
    }
    free(z0b);
    tp_ctx_reset(r.c);
    tp_err err = {0};
    TP_CHECK(r.f.vt->forward(r.in.state, r.c, r.h, r.mask, 0, &r.out, &err) == TP_OK);
    tp_tensor *z = aux_named(&r.out, "fsq_z"), *q = aux_named(&r.out, "fsq_q");
    TP_CHECK(z && q && z->shape[0] == 32 && z->shape[1] == nd);
    float *zb = z ? host(z) : NULL, *qb = q ? host(q) : NULL;
    if (zb && qb) {
        int bad = 0;
        double lo[8], hi[8];
        for (int j = 0; j < nd; j++) lo[j] = INFINITY, hi[j] = -INFINITY;
        for (int n = 0; n < 32; n++)
            for (int j = 0; j < nd; j++) {
                double want = fsq_hand(zb[n * nd + j], lv[j], study), got = qb[n * nd + j];
                if (fabs(want - got) > 1e-6 && !bad++)
                    TP_CHECKF(0, "%s: q[%d,%d] = %g, by hand %g (z %g)", opts, n, j, got, want,
                              zb[n * nd + j]);
                lo[j] = fmin(lo[j], got);
                hi[j] = fmax(hi[j], got);
            }
        TP_CHECKF(!bad, "%s: %d rounding mismatches", opts, bad);
        for (int j = 0; j < nd; j++) {
            /* exact: L values, -floor(L/2) .. L - 1 - floor(L/2), over floor(L/2);
             * study: -(L-1)/2 .. (L-1)/2 rounded inwards, over (L-1)/2 */
            int L = lv[j];
            double wlo = study ? -floor((L - 1) / 2.0) / ((L - 1) / 2.0) : -1.0;
            double whi =
                study ? floor((L - 1) / 2.0) / ((L - 1) / 2.0) : (double)(L - 1 - L / 2) / (L / 2);
            TP_CHECKF(fabs(lo[j] - wlo) < 1e-6 && fabs(hi[j] - whi) < 1e-6,
                      "%s dim %d: range [%g,%g], expected [%g,%g]", opts, j, lo[j], hi[j], wlo,
                      whi);
        }
        /* code metrics by hand */
        int distinct = 0;
        double hsum = 0;
        for (int n = 0; n < 32; n++) {
            int first = 1, cnt = 0;
            for (int m = 0; m < 32; m++) {
                int same = !memcmp(qb + n * nd, qb + m * nd, (size_t)nd * sizeof *qb);
                if (same && m < n) first = 0;
                cnt += same;
            }
            if (first) {
                distinct++;
                hsum -= cnt / 32.0 * log(cnt / 32.0);
            }
        }
        double ppl = 0, uniq = 0;
        TP_CHECK(metric_named(&r.out, "fsq_perplexity", &ppl) &&
                 metric_named(&r.out, "fsq_unique", &uniq));
        TP_CHECK_NEAR(ppl, exp(hsum), 1e-9);
        TP_CHECK_NEAR(uniq, distinct / 32.0, 1e-12);
    }
    float *soft = host(r.out.soft);
    for (int t = 0; soft && t < 32; t++) TP_CHECK_NEAR(row_rms(soft, t, 8), 0.5, 5e-5);
    free(soft);
    free(zb);
    free(qb);
    run_close(&r);
}

static void test_fsq_rounding(void) {
    check_fsq_rounding("8x3", 0);
    check_fsq_rounding("8:8:8", 1);
    check_fsq_rounding("5:3:4:2", 0);
    check_fsq_rounding("5:3x1:4:6", 1); /* study: L = 2 is an error (test_fsq_options) */
}

/* Straight-through: dL/dz = dL/dq * d(bound)/dz / width, i.e. the rounding passes the gradient
 * unchanged; finite differences agree after the rounding (projection out, alpha). */
static void check_fsq_straight_through(const char *levels, int l0, int l1) {
    run r;
    char opts[128];
    snprintf(opts, sizeof opts, "tokens=3,depth=1,heads=2,ffn_mult=1,levels=%s,alpha_init=0.7",
             levels);
    if (!run_open(&r, "fsq", opts, 2, 1)) {
        run_close(&r);
        return;
    }
    tp_ctx *c = r.c;
    tp_tensor *z = aux_named(&r.out, "fsq_z"), *q = aux_named(&r.out, "fsq_q");
    float rr[48];
    unsigned seed = 8;
    for (int i = 0; i < 48; i++) rr[i] = lcg_unit(&seed);
    if (z) tp_requires_grad(c, z); /* keep both grads past tp_backward (grad reuse) */
    if (q) tp_requires_grad(c, q);
    tp_tensor *loss = tp_sum_all(c, tp_mul(c, r.out.soft, tp_from_f32(c, TP_DIMS(2, 3, 8), rr)));
    TP_CHECK(loss && tp_backward(c, loss, NULL) == TP_OK);
    TP_CHECK(z && q && z->grad && q->grad);
    if (z && q && z->grad && q->grad) {
        float *zb = host(z);
        const float *gz = z->grad->data, *gq = q->grad->data;
        const int lv[2] = {l0, l1};
        double worst = 0, tot = 0;
        for (int n = 0; n < 6; n++)
            for (int j = 0; j < 2; j++) {
                int L = lv[j];
                double a = (L - 1) * (1 + 1e-3) / 2, o = L % 2 == 0 ? 0.5 : 0.0;
                double t = tanh(zb[n * 2 + j] + atanh(o / a));
                double want = gq[n * 2 + j] * a * (1 - t * t) / (double)(L / 2);
                worst = fmax(worst, fabs(want - gz[n * 2 + j]));
                tot += fabs(want);
            }
        TP_CHECKF(tot > 0 && worst < 1e-5 * (1 + tot), "dL/dz off by %g (sum |dL/dz| %g)", worst,
                  tot);
        free(zb);
    }
    tp_tensor *pin = param_named(&r.in, "fsq.proj_in.weight");
    double g = 0;
    for (int i = 0; pin && pin->grad && i < tp_numel(pin); i++)
        g += fabs(((float *)pin->grad->data)[i]);
    TP_CHECKF(g > 0, "no gradient reached the projection before the rounding");
    const char *skip[] = {"enc.", "fsq.proj_in", NULL};
    grad_check(&r.f, &r.in, r.h, r.mask, NULL, skip);
    run_close(&r);
}

static void test_fsq_straight_through(void) {
    check_fsq_straight_through("5:4", 5, 4); /* per-dimension rounding */
    check_fsq_straight_through("4x2", 4, 4); /* all levels equal: one rounding call */
}

static void test_fsq_options(void) {
    fixture f;
    if (!fx_open(&f, "fsq")) return;
    expect_error(&f, "levels=8:x", &dims68, "levels");
    expect_error(&f, "levels=1:8", &dims68, "2..1024");
    expect_error(&f, "levels=8x0", &dims68, "LxN");
    expect_error(&f, "levels=8:8:", &dims68, "trailing");
    expect_error(&f, "levels=", &dims68, "levels");
    expect_error(&f, "variant=bogus", &dims68, "variant");
    /* the study's grid for L = 2 is {0}: a dimension that could carry nothing */
    expect_error(&f, "levels=5:2,variant=study", &dims68, "level 2 of dimension 1");
    expect_error(&f, "heads=3", &dims68, "heads = 3 does not divide");
    /* default levels: the study's [8] x 8 */
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(&f, "tokens=1,depth=1,heads=2", &dims68, &in, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    tp_tensor *w = st == TP_OK ? param_named(&in, "fsq.proj_in.weight") : NULL;
    TP_CHECK(w && w->shape[0] == 8);
    inst_free(&f, &in);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_vq_forward), TP_CASE(test_vq_straight_through), TP_CASE(test_vq_grads),
            TP_CASE(test_vq_collapse_and_dead), TP_CASE(test_vq_options),
            TP_CASE(test_fsq_rounding), TP_CASE(test_fsq_straight_through),
            TP_CASE(test_fsq_options))
