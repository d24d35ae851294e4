/* normalizer.h — the `normalizer` option every bridge of the study can take (STUDY.md phase 1,
 * the study's StatisticalNormalizer; issue 6 "normalizer as an option of every bridge").
 *
 * Per-dimension affine map of the sender states before the bridge body:
 *   whiten            h' = (h - mu_s) / sd_s
 *   whiten_recolour   h' = (h - mu_s) / sd_s * sd_r + mu_r
 * mu_s, sd_s: mean and standard deviation of each sender dimension over the real (mask 1)
 * tokens of the first N training examples; mu_r, sd_r: mean and standard deviation of each
 * dimension over the rows of the receiver's input embedding matrix (so the states look like
 * receiver embeddings, as the study's normaliser intended; needs d_sender == d_receiver).
 * sd = sqrt(var) + 1e-6, so a constant dimension maps to 0 instead of NaN.
 *
 * The statistics come from the host through the bridge's calibrate() (bridge.h, ABI 1.1): the
 * host asks calibration_examples() for N and passes the sender states of the first N training
 * examples (calls accumulate, in double) and the receiver embedding matrix. A forward before
 * any calibration is an error, never an identity map in disguise.
 *   normalizer_learnable = false: the statistics are frozen (kept by the bridge, not saved in
 *     checkpoints: the host recomputes them by calibrating on the same examples before resuming
 *     or evaluating).
 *   normalizer_learnable = true: they become parameters "normalizer.{mu_s,sd_s,mu_r,sd_r}"
 *     initialised by calibration and trained with the bridge (the study's phase 3).
 * The metric "normalizer_examples" reports how many examples the statistics came from.
 *
 * Include after bridge_util.h. */
#ifndef TP_NORMALIZER_H
#define TP_NORMALIZER_H

#define NZ_OPTIONS                                                                                 \
    {"normalizer",                                                                                 \
     TP_OPT_ENUM,                                                                                  \
     "off",                                                                                        \
     1,                                                                                            \
     0,                                                                                            \
     "off|whiten|whiten_recolour",                                                                 \
     "per-dimension whitening of sender states (statistics of N training examples); "              \
     "whiten_recolour maps them to the receiver embedding statistics"},                            \
        {"normalizer_examples",                                                                    \
         TP_OPT_INT,                                                                               \
         "1000",                                                                                   \
         1,                                                                                        \
         10000000,                                                                                 \
         NULL,                                                                                     \
         "N: training examples the normalizer statistics are computed from"},                      \
    {                                                                                              \
        "normalizer_learnable", TP_OPT_BOOL, "false", 1, 0, NULL,                                  \
            "train the normalizer statistics after calibration (else frozen)"                      \
    }

#define NZ_SD_EPS 1e-6

enum { NZ_OFF = 0, NZ_WHITEN = 1, NZ_RECOLOUR = 2 };

typedef struct nz_state {
    const char *bridge;
    int mode, learnable, n_want, d_s, d_r;
    int64_t n_seen;                               /* examples accumulated so far */
    int recv_done;                                /* receiver statistics computed */
    double *sum, *sumsq;                          /* [d_s] */
    double count;                                 /* real tokens seen */
    float *mu_s, *sd_s, *mu_r, *sd_r;             /* frozen values (host) */
    tp_tensor *p_mu_s, *p_sd_s, *p_mu_r, *p_sd_r; /* learnable: parameters */
} nz_state;

BU_STATIC void nz_free(nz_state *z) {
    free(z->sum);
    free(z->sumsq);
    free(z->mu_s);
    free(z->sd_s);
    free(z->mu_r);
    free(z->sd_r);
    memset(z, 0, sizeof *z);
}

BU_STATIC tp_status nz_create(nz_state *z, bu_init *in, const tp_options *o,
                              const tp_bridge_dims *dims, tp_params *ps, tp_err *err) {
    memset(z, 0, sizeof *z);
    z->bridge = in->bridge;
    const char *mode = BU_API->opt_string(o, "normalizer");
    if (!mode || !strcmp(mode, "off")) return TP_OK;
    if (!strcmp(mode, "whiten"))
        z->mode = NZ_WHITEN;
    else if (!strcmp(mode, "whiten_recolour"))
        z->mode = NZ_RECOLOUR;
    else
        return BU_API->errf(err, TP_EINVAL,
                            "%s: option normalizer = '%s': expected off, whiten or "
                            "whiten_recolour",
                            in->bridge, mode);
    z->n_want = (int)BU_API->opt_int(o, "normalizer_examples");
    z->learnable = BU_API->opt_bool(o, "normalizer_learnable");
    z->d_s = dims->d_sender;
    z->d_r = dims->d_receiver;
    if (z->mode == NZ_RECOLOUR && z->d_s != z->d_r)
        return BU_API->errf(err, TP_EINVAL,
                            "%s: normalizer = whiten_recolour maps sender dimensions onto "
                            "receiver dimensions one to one, but the sender width is %d and the "
                            "receiver width %d; use normalizer = whiten",
                            in->bridge, z->d_s, z->d_r);
    size_t n = (size_t)z->d_s;
    z->sum = calloc(n, sizeof *z->sum);
    z->sumsq = calloc(n, sizeof *z->sumsq);
    z->mu_s = calloc(n, sizeof *z->mu_s);
    z->sd_s = calloc(n, sizeof *z->sd_s);
    z->mu_r = calloc(n, sizeof *z->mu_r);
    z->sd_r = calloc(n, sizeof *z->sd_r);
    if (!z->sum || !z->sumsq || !z->mu_s || !z->sd_s || !z->mu_r || !z->sd_r)
        return BU_API->errf(err, TP_ENOMEM, "%s: out of memory", in->bridge);
    if (z->learnable) {
        /* identity until calibrated; calibration overwrites the values */
        int64_t d = z->d_s;
        z->p_mu_s = bu_param(in, ps, "normalizer.mu_s", TP_DIMS(d), BU_ZERO, 0, err);
        if (!z->p_mu_s) return bu_code(err);
        z->p_sd_s = bu_param(in, ps, "normalizer.sd_s", TP_DIMS(d), BU_VALUE, 1, err);
        if (!z->p_sd_s) return bu_code(err);
        if (z->mode == NZ_RECOLOUR) {
            z->p_mu_r = bu_param(in, ps, "normalizer.mu_r", TP_DIMS(d), BU_ZERO, 0, err);
            if (!z->p_mu_r) return bu_code(err);
            z->p_sd_r = bu_param(in, ps, "normalizer.sd_r", TP_DIMS(d), BU_VALUE, 1, err);
            if (!z->p_sd_r) return bu_code(err);
        }
    }
    return TP_OK;
}

BU_STATIC int nz_examples(const nz_state *z) {
    return z->mode == NZ_OFF ? 0 : z->n_want;
}

/* Writes host values into a parameter (any device). */
BU_STATIC tp_status nz_store(nz_state *z, tp_ctx *c, tp_tensor *p, const float *v, tp_err *err) {
    tp_tensor *t = tp_from_f32(c, TP_DIMS(p->shape[0]), v);
    if (!t) return bu_fail(z->bridge, c, "normalizer calibration", err);
    return tp_copy_into(p, t, err);
}

/* Per-column mean and sd of the receiver embedding [V,D], read in row blocks to the host. */
BU_STATIC tp_status nz_recv_stats(nz_state *z, tp_ctx *c, tp_tensor *e, tp_err *err) {
    if (e->ndim != 2 || e->shape[1] != z->d_r)
        return BU_API->errf(err, TP_ESHAPE,
                            "%s: normalizer: the receiver embedding must be [V,%d]; got ndim %d",
                            z->bridge, z->d_r, e->ndim);
    int64_t v = e->shape[0], d = e->shape[1], blk = 256;
    double *s = calloc((size_t)d, sizeof *s), *ss = calloc((size_t)d, sizeof *ss);
    float *buf = malloc((size_t)(blk * d) * sizeof *buf);
    tp_status st = TP_OK;
    if (!s || !ss || !buf) st = BU_API->errf(err, TP_ENOMEM, "%s: out of memory", z->bridge);
    for (int64_t r = 0; r < v && st == TP_OK; r += blk) {
        int64_t n = r + blk <= v ? blk : v - r;
        tp_tensor *rows = tp_slice(c, e, 0, r, n);
        if (!rows) {
            st = bu_fail(z->bridge, c, "normalizer: reading the receiver embedding", err);
            break;
        }
        st = tp_to_f32_buffer(rows, buf, err);
        for (int64_t i = 0; i < n && st == TP_OK; i++)
            for (int64_t k = 0; k < d; k++) {
                double x = buf[i * d + k];
                s[k] += x;
                ss[k] += x * x;
            }
    }
    if (st == TP_OK && v > 0) {
        for (int64_t k = 0; k < d; k++) {
            double mu = s[k] / (double)v, var = ss[k] / (double)v - mu * mu;
            z->mu_r[k] = (float)mu;
            z->sd_r[k] = (float)(sqrt(var > 0 ? var : 0) + NZ_SD_EPS);
        }
        z->recv_done = 1;
    } else if (st == TP_OK) {
        st = BU_API->errf(err, TP_EINVAL, "%s: normalizer: the receiver embedding has no rows",
                          z->bridge);
    }
    free(s);
    free(ss);
    free(buf);
    if (st == TP_OK && z->learnable) {
        TP_TRY(nz_store(z, c, z->p_mu_r, z->mu_r, err));
        TP_TRY(nz_store(z, c, z->p_sd_r, z->sd_r, err));
    }
    return st;
}

/* Accumulates the sender statistics of (up to N - seen) more examples. */
BU_STATIC tp_status nz_calibrate(nz_state *z, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                                 tp_tensor *recv_embed, tp_err *err) {
    if (z->mode == NZ_OFF)
        return BU_API->errf(err, TP_EINVAL,
                            "%s: calibrate called, but normalizer = off needs no statistics",
                            z->bridge);
    TP_TRY(bu_check_input(z->bridge, z->d_s, h, mask, err));
    if (z->mode == NZ_RECOLOUR && !z->recv_done) {
        if (!recv_embed)
            return BU_API->errf(err, TP_EINVAL,
                                "%s: normalizer = whiten_recolour needs the receiver embedding "
                                "matrix in calibrate (recv_embed is NULL)",
                                z->bridge);
        TP_TRY(nz_recv_stats(z, c, recv_embed, err));
    }
    int64_t b = h->shape[0], t = h->shape[1], d = z->d_s;
    int64_t use = z->n_want - z->n_seen;
    if (use <= 0) return TP_OK;
    if (use > b) use = b;
    float *hb = malloc((size_t)(b * t * d) * sizeof *hb);
    float *mb = malloc((size_t)(b * t) * sizeof *mb);
    tp_status st = TP_OK;
    if (!hb || !mb) st = BU_API->errf(err, TP_ENOMEM, "%s: out of memory", z->bridge);
    if (st == TP_OK) st = tp_to_f32_buffer(h, hb, err);
    if (st == TP_OK && mask) st = tp_to_f32_buffer(mask, mb, err);
    for (int64_t i = 0; i < use && st == TP_OK; i++)
        for (int64_t j = 0; j < t; j++) {
            float w = mask ? mb[i * t + j] : 1.0f;
            if (w == 0.0f) continue;
            const float *x = hb + (i * t + j) * d;
            for (int64_t k = 0; k < d; k++) {
                z->sum[k] += (double)w * x[k];
                z->sumsq[k] += (double)w * x[k] * x[k];
            }
            z->count += w;
        }
    free(hb);
    free(mb);
    if (st != TP_OK) return st;
    z->n_seen += use;
    if (!(z->count > 0))
        return BU_API->errf(err, TP_EINVAL,
                            "%s: normalizer: the calibration examples have no tokens", z->bridge);
    for (int64_t k = 0; k < d; k++) {
        double mu = z->sum[k] / z->count, var = z->sumsq[k] / z->count - mu * mu;
        z->mu_s[k] = (float)mu;
        z->sd_s[k] = (float)(sqrt(var > 0 ? var : 0) + NZ_SD_EPS);
    }
    if (z->learnable) {
        TP_TRY(nz_store(z, c, z->p_mu_s, z->mu_s, err));
        TP_TRY(nz_store(z, c, z->p_sd_s, z->sd_s, err));
    }
    return TP_OK;
}

/* h (f32) -> normalised h; an uncalibrated normalizer is an error. */
BU_STATIC tp_tensor *nz_apply(nz_state *z, tp_ctx *c, tp_tensor *h, tp_err *err) {
    if (z->mode == NZ_OFF || !h) return h;
    if (z->n_seen == 0 || (z->mode == NZ_RECOLOUR && !z->recv_done)) {
        BU_API->errf(err, TP_EINVAL,
                     "%s: normalizer = %s has no statistics yet: the host must call the bridge's "
                     "calibrate() with the first %d training examples before the first forward",
                     z->bridge, z->mode == NZ_RECOLOUR ? "whiten_recolour" : "whiten", z->n_want);
        return NULL;
    }
    int64_t d = z->d_s;
    tp_tensor *mu = z->learnable ? z->p_mu_s : tp_from_f32(c, TP_DIMS(d), z->mu_s);
    tp_tensor *sd = z->learnable ? z->p_sd_s : tp_from_f32(c, TP_DIMS(d), z->sd_s);
    tp_tensor *x = tp_div(c, tp_sub(c, h, mu), sd);
    if (z->mode == NZ_RECOLOUR) {
        tp_tensor *mr = z->learnable ? z->p_mu_r : tp_from_f32(c, TP_DIMS(d), z->mu_r);
        tp_tensor *sr = z->learnable ? z->p_sd_r : tp_from_f32(c, TP_DIMS(d), z->sd_r);
        x = tp_add(c, tp_mul(c, x, sr), mr);
    }
    if (!x) bu_fail(z->bridge, c, "normalizer", err);
    return x;
}

BU_STATIC void nz_metrics(const nz_state *z, tp_bridge_out *out) {
    if (z->mode != NZ_OFF) bu_metric(out, "normalizer_examples", (double)z->n_seen);
}

#endif
