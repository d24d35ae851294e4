/* vq.c — the vector-quantised bridge (STUDY.md "Bridges": VQ; the study's
 * telepathy/latent_bridge_vq.py: SST-2 94%, codebook collapse to perplexity 1 on GSM8K).
 *
 * What it adds: a bridge named "vq":
 *   z    = Perceiver resampler of the sender states           [B,M,W]   (resampler.h)
 *   cosine distance: z and the codebook rows are L2-normalised first (both sides of the match)
 *   k_n  = argmin_k d(z_n, C_k)                               codebook C [K,W]
 *   q_n  = C[k_n], straight-through: forward q, backward dL/dz = dL/dq (tp_vq_nearest)
 *   x    = q (x W_out^T + b_out only if W != d_r; W_out init N(0, 0.01^2))
 *   soft = RMSNorm(x) * alpha
 * The codebook learns only through the commitment loss, returned as the aux output
 *   "vq_commit" [1] = mean((sg(z) - C[k])^2) + beta * mean((z - sg(C[k]))^2)
 * (means over all N = B*M vectors and W dims, the study's F.mse_loss; a loss plugin adds it
 * to the objective). Optional entropy bonus (entropy_weight w > 0), aux "vq_entropy_bonus" [1]
 *   = -w * H(p_bar) / log K,  p_bar = mean_n softmax_k(-d(z_n, C_k) / entropy_tau)
 * a differentiable stand-in for the code-usage entropy (hard usage has no gradient); adding it
 * to the loss rewards spreading the batch over the codebook. Also aux "vq_z" [N,W] (the
 * vectors that were matched) and "codes" (i32 [N]).
 * Codebook init U(+-1/K) as the study's nn.Embedding init.
 *
 * Metrics: alpha; vq_perplexity = exp(H) of this batch's code histogram (1 = collapse, K =
 * uniform); vq_dead_codes = codes not chosen in any of the last dead_window training forwards
 * (all unchosen codes count until dead_window forwards have run); vq_commit.
 *
 * Options: the resampler's (tokens, depth, heads, width, ffn_mult), codebook (K), distance
 * (l2 | cosine), beta, entropy_weight, entropy_tau, dead_window, alpha_init, alpha_learnable,
 * and the normalizer options (normalizer.h).
 *
 * Checkpointed state (bridge.h, ABI 1.2): the dead-code bookkeeping (training forwards so far
 * and the forward that last chose each code), so vq_dead_codes after a resume continues the
 * uninterrupted run's.
 *
 * Version history: 1 — first version (the checkpointed counters came later; they change only
 * the metrics of a resumed run, which now equal the uninterrupted run's). */
#define TP_PLUGIN
#include <stdint.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "bridge_state.h"
#include "normalizer.h"
#include "resampler.h"

#define VQ_NAME        "vq"
#define VQ_STREAM_BASE 0x7671000000000000ull /* "vq" */
#define VQ_P_EPS       1e-10f
#define VQ_STATE_MAGIC 0x53515156u /* "VQQS" */

static const tp_option_spec vq_options[] = {
    RS_OPTIONS,
    {"codebook", TP_OPT_INT, "4096", 1, 1048576, NULL, "codebook size K"},
    {"distance", TP_OPT_ENUM, "l2", 1, 0, "l2|cosine",
     "nearest code by squared L2 distance, or by cosine (L2-normalised z and codes)"},
    {"beta", TP_OPT_FLOAT, "0.25", 0, 100, NULL, "commitment weight beta"},
    {"entropy_weight", TP_OPT_FLOAT, "0", 0, 100, NULL,
     "w of the entropy bonus -w*H(usage)/log K (0 = off; the study's variant: 0.1)"},
    {"entropy_tau", TP_OPT_FLOAT, "1", 1e-6, 1e6, NULL,
     "temperature of the soft code assignment used by the entropy bonus"},
    {"dead_window", TP_OPT_INT, "100", 1, 100000000, NULL,
     "a code unused in this many training forwards counts as dead"},
    BU_ALPHA_OPTIONS,
    NZ_OPTIONS,
};

typedef struct vq_state {
    rs_enc enc;
    int d_s, d_r, k, cosine;
    float beta, ent_w, ent_tau;
    int64_t dead_window, steps; /* training forwards so far */
    int64_t *last_used;         /* [K]: training forward that last chose the code, -1 never */
    tp_tensor *codebook;        /* [K,W] */
    tp_tensor *out_w, *out_b;
    bu_alpha alpha;
    nz_state nz;
} vq_state;

static void vq_destroy(void *state) {
    vq_state *s = state;
    if (!s) return;
    nz_free(&s->nz);
    free(s->last_used);
    free(s);
}

static tp_status vq_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(VQ_NAME, dims, err));
    vq_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, VQ_NAME ": out of memory");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    s->k = (int)BU_API->opt_int(o, "codebook");
    const char *dist = BU_API->opt_string(o, "distance");
    s->cosine = dist && !strcmp(dist, "cosine");
    s->beta = (float)BU_API->opt_float(o, "beta");
    s->ent_w = (float)BU_API->opt_float(o, "entropy_weight");
    s->ent_tau = (float)BU_API->opt_float(o, "entropy_tau");
    s->dead_window = BU_API->opt_int(o, "dead_window");
    bu_init in = {VQ_NAME, dims->seed, VQ_STREAM_BASE, 0};
    tp_status st = rs_create(&s->enc, &in, o, dims, ps, err);
    int64_t w = s->enc.width;
    if (st == TP_OK && s->k < 1)
        st = BU_API->errf(err, TP_EINVAL, VQ_NAME ": option codebook = %d: expected K >= 1", s->k);
    if (st == TP_OK && s->k < 2 && s->ent_w > 0)
        st = BU_API->errf(err, TP_EINVAL,
                          VQ_NAME ": entropy_weight > 0 needs codebook >= 2 (H / log K)");
    if (st == TP_OK) {
        s->last_used = malloc((size_t)s->k * sizeof *s->last_used);
        if (!s->last_used) st = BU_API->errf(err, TP_ENOMEM, VQ_NAME ": out of memory");
        for (int i = 0; st == TP_OK && i < s->k; i++) s->last_used[i] = -1;
    }
    if (st == TP_OK) {
        s->codebook =
            bu_param(&in, ps, "codebook", TP_DIMS(s->k, w), BU_UNIFORM, 1.0f / (float)s->k, err);
        if (!s->codebook) st = bu_code(err);
    }
    if (st == TP_OK && w != s->d_r) {
        s->out_w =
            bu_param(&in, ps, "output_proj.weight", TP_DIMS(s->d_r, w), BU_NORMAL, 0.01f, err);
        if (s->out_w)
            s->out_b = bu_param(&in, ps, "output_proj.bias", TP_DIMS(s->d_r), BU_ZERO, 0, err);
        if (!s->out_w || !s->out_b) st = bu_code(err);
    }
    if (st == TP_OK) st = bu_alpha_make(&in, o, dims, ps, &s->alpha, err);
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        vq_destroy(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

/* -w * H(mean_n softmax(-d(z_n, C) / tau)) / log K, differentiable in z and C. */
static tp_tensor *vq_entropy_bonus(vq_state *s, tp_ctx *c, tp_tensor *z, tp_tensor *cb) {
    tp_tensor *zc = tp_matmul(c, z, cb, 0, 1); /* [N,K] */
    tp_tensor *logits;
    if (s->cosine) {
        logits = tp_scale(c, zc, 1.0f / s->ent_tau);
    } else {
        /* -||z - c||^2 = 2 z.c - ||c||^2 - ||z||^2; the last term is constant per row */
        tp_tensor *cn = tp_sum(c, tp_mul(c, cb, cb), 1, 0); /* [K] */
        logits = tp_scale(c, tp_sub(c, tp_scale(c, zc, 2.0f), cn), 1.0f / s->ent_tau);
    }
    tp_tensor *pbar = tp_mean(c, tp_softmax(c, logits), 0, 0); /* [K] */
    tp_tensor *plogp = tp_sum_all(c, tp_mul(c, pbar, tp_ln(c, tp_add_scalar(c, pbar, VQ_P_EPS))));
    return tp_scale(c, plogp, s->ent_w / logf((float)s->k)); /* = -w H / log K */
}

/* Perplexity of this batch's codes; updates the dead-code bookkeeping in training. */
static tp_status vq_usage(vq_state *s, tp_tensor *codes, int training, double *perplexity,
                          int64_t *dead, tp_err *err) {
    int64_t n = tp_numel(codes);
    float *buf = malloc((size_t)n * sizeof *buf);
    int64_t *cnt = calloc((size_t)s->k, sizeof *cnt);
    tp_status st = TP_OK;
    if (!buf || !cnt) st = BU_API->errf(err, TP_ENOMEM, VQ_NAME ": out of memory");
    if (st == TP_OK) st = tp_to_f32_buffer(codes, buf, err);
    for (int64_t i = 0; i < n && st == TP_OK; i++) {
        int64_t k = (int64_t)buf[i];
        if (k < 0 || k >= s->k) {
            st = BU_API->errf(err, TP_ERANGE, VQ_NAME ": code %lld outside [0,%d)", (long long)k,
                              s->k);
            break;
        }
        cnt[k]++;
        if (training) s->last_used[k] = s->steps;
    }
    if (st == TP_OK) {
        double h = 0;
        for (int k = 0; k < s->k; k++)
            if (cnt[k]) {
                double p = (double)cnt[k] / (double)n;
                h -= p * log(p);
            }
        *perplexity = exp(h);
        if (training) s->steps++;
        int64_t d = 0;
        for (int k = 0; k < s->k; k++)
            if (s->last_used[k] < 0 || s->steps - s->last_used[k] > s->dead_window) d++;
        *dead = d;
    }
    free(buf);
    free(cnt);
    return st;
}

static tp_status vq_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    vq_state *s = state;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(VQ_NAME, s->d_s, h, mask, err));
    int64_t b = h->shape[0], m = s->enc.m, w = s->enc.width;
    tp_tensor *x = nz_apply(&s->nz, c, bu_f32(c, h), err);
    if (!x) return err->code ? err->code : bu_fail(VQ_NAME, c, "forward", err);
    tp_tensor *z = tp_reshape(c, rs_forward(&s->enc, c, x, mask), TP_DIMS(b * m, w)); /* [N,W] */
    tp_tensor *cb = s->codebook;
    if (s->cosine) {
        z = tp_l2_normalize(c, z, 1e-12f);
        cb = tp_l2_normalize(c, cb, 1e-12f);
    }
    tp_tensor *codes = NULL;
    tp_tensor *q = tp_vq_nearest(c, z, cb, s->cosine ? TP_VQ_COSINE : TP_VQ_L2, &codes);
    /* the codebook's own path: the chosen rows again, now with a gradient to the codebook */
    tp_tensor *qc = q ? tp_embedding(c, cb, codes) : NULL;
    tp_tensor *commit = tp_add(c, tp_mse(c, tp_detach(c, z), qc),
                               tp_scale(c, tp_mse(c, z, tp_detach(c, qc)), s->beta));
    tp_tensor *bonus = s->ent_w > 0 ? vq_entropy_bonus(s, c, z, cb) : NULL;
    x = tp_reshape(c, q, TP_DIMS(b, m, w));
    if (s->out_w) x = tp_linear(c, x, s->out_w, s->out_b);
    tp_tensor *soft = bu_alpha_apply(c, &s->alpha, x);
    if (!soft || !commit || (s->ent_w > 0 && !bonus)) return bu_fail(VQ_NAME, c, "forward", err);
    double ppl = 0;
    int64_t dead = 0;
    TP_TRY(vq_usage(s, codes, training, &ppl, &dead, err));
    out->soft = soft;
    bu_aux(out, "vq_commit", commit);
    if (bonus) bu_aux(out, "vq_entropy_bonus", bonus);
    bu_aux(out, "vq_z", z);
    bu_aux(out, "codes", codes);
    bu_alpha_metric(&s->alpha, out);
    bu_metric(out, "vq_perplexity", ppl);
    bu_metric(out, "vq_dead_codes", (double)dead);
    bu_metric(out, "vq_commit", tp_item(commit, 0));
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int vq_num_tokens(void *state) {
    return ((vq_state *)state)->enc.m;
}

static uint32_t vq_flags(void *state) {
    (void)state;
    return 0;
}

static int vq_calibration_examples(void *state) {
    return nz_examples(&((vq_state *)state)->nz);
}

static tp_status vq_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                              tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((vq_state *)state)->nz, c, h, mask, recv_embed, err);
}

/* Checkpointed state: steps, K, last_used[K] (int64 each). */
static size_t vq_state_size(void *state) {
    return BS_HEADER + 16u + 8u * (size_t)((vq_state *)state)->k;
}

static tp_status vq_save_state(void *state, void *buf, size_t n, tp_err *err) {
    vq_state *s = state;
    bs_cur c = bs_begin_write(buf, n, VQ_STATE_MAGIC, 1);
    bs_put_u64(&c, (uint64_t)s->steps);
    bs_put_u64(&c, (uint64_t)s->k);
    bs_put(&c, s->last_used, 8u * (size_t)s->k);
    return bs_end_write(&c, VQ_NAME, err);
}

static tp_status vq_load_state(void *state, const void *buf, size_t n, tp_err *err) {
    vq_state *s = state;
    bs_cur c;
    int64_t steps, k;
    TP_TRY(bs_begin_read(&c, buf, n, VQ_STATE_MAGIC, 1, VQ_NAME, err));
    if (!bs_get(&c, &steps, 8) || !bs_get(&c, &k, 8))
        return BU_API->errf(err, TP_EFORMAT, VQ_NAME ": state ends inside its counters");
    if (k != s->k || steps < 0)
        return BU_API->errf(err, TP_EFORMAT,
                            VQ_NAME ": state of a codebook of %lld codes after %lld forwards; "
                                    "this one has %d codes",
                            (long long)k, (long long)steps, s->k);
    if (c.n - c.off != 8u * (size_t)k)
        return BU_API->errf(err, TP_EFORMAT,
                            VQ_NAME ": state holds %zu bytes of counters for %lld codes",
                            c.n - c.off, (long long)k);
    const unsigned char *used = c.r + c.off;
    for (int64_t i = 0; i < k; i++) {
        int64_t u;
        memcpy(&u, used + 8u * (size_t)i, sizeof u);
        if (u < -1 || u >= steps)
            return BU_API->errf(err, TP_EFORMAT,
                                VQ_NAME ": state says code %lld was last used at forward %lld, "
                                        "outside [-1, %lld)",
                                (long long)i, (long long)u, (long long)steps);
    }
    memcpy(s->last_used, used, 8u * (size_t)k);
    s->steps = steps;
    return TP_OK;
}

static const tp_bridge_vtable vq_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = vq_create,
    .forward = vq_forward,
    .num_tokens = vq_num_tokens,
    .destroy = vq_destroy,
    .flags = vq_flags,
    .calibration_examples = vq_calibration_examples,
    .calibrate = vq_calibrate,
    .state_size = vq_state_size,
    .save_state = vq_save_state,
    .load_state = vq_load_state,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = VQ_NAME;
    d->version = "1";
    d->summary = "VQ: Perceiver -> nearest of K codes (straight-through; aux vq_commit); "
                 "RMS-normalised x alpha";
    d->options = vq_options;
    d->n_options = (int)(sizeof vq_options / sizeof vq_options[0]);
    d->vtable = &vq_vtable;
    d->vtable_size = sizeof vq_vtable;
    (void)err;
    return TP_OK;
}
