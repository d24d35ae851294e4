/* fsq.c — the finite-scalar-quantisation bridge (STUDY.md "Bridges": FSQ, levels [8]x8 or
 * [5]x32, optional; the study's telepathy/latent_bridge_v15.py; Mentzer et al. 2023, "Finite
 * Scalar Quantization: VQ-VAE Made Simple").
 *
 * What it adds: a bridge named "fsq". Levels L_1..L_d come from the option levels: "8x8"
 * (eight 8s), "5x32", "5:5:4" or "5,5,4" (':' fits inside a "k=v,k=v" option list).
 *   y    = Perceiver resampler of the sender states     [B,M,W]   (resampler.h)
 *   z    = y W_in^T + b_in                              [B,M,d]   one scalar per level
 *   variant = exact (the paper's bound, exactly L_j values per dimension):
 *     a_j = (L_j - 1)(1 + 1e-3)/2,  o_j = 0.5 for even L_j else 0
 *     b_j = tanh(z_j + atanh(o_j / a_j)) * a_j - o_j
 *     q_j = round(b_j) / floor(L_j / 2)
 *     ((1 + eps) as vector-quantize-pytorch has it: with (1 - eps), L = 2 needs atanh(> 1))
 *   variant = study (latent_bridge_v15.py; for even L only L - 1 values are reachable):
 *     b_j = tanh(z_j) * (L_j - 1)/2,  q_j = round(b_j) / ((L_j - 1)/2)
 *     rounded onto the grid -floor((L_j-1)/2)..floor((L_j-1)/2) (where tanh saturates to
 *     exactly +-1, torch.round could leave it; here it rounds inwards)
 *   x    = q W_out^T + b_out                            [B,M,d_r]
 *   soft = RMSNorm(x) * alpha
 * round is straight-through (forward round, backward identity), done as a nearest-neighbour
 * match of each scalar against its dimension's integer grid (tp_vq_nearest on [n,1]), so it
 * runs on every backend. Projections have nn.Linear's default init. No codebook, no auxiliary
 * loss. Aux outputs: "fsq_z" [N,d] (z before the bound), "fsq_q" [N,d] (the quantised values).
 * Metrics: alpha; fsq_perplexity = exp(H) of this batch's code histogram (a code = the tuple
 * of the d rounded values); fsq_unique = distinct codes / N (the study's "diversity").
 *
 * Options: the resampler's (tokens, depth, heads, width, ffn_mult), levels, variant,
 * alpha_init, alpha_learnable, and the normalizer options (normalizer.h).
 *
 * Training note (tests/run/test_run_bridges_toy.c): information passes only where the
 * between-example spread of z reaches the grid's step (about 2/(L-1) near 0). Over the tiny
 * random sender, whose states share one large component, it is ~1% of the step: every example
 * gets the same code, and the straight-through gradient then pushes z past the grid's edge into
 * the flat of tanh (Adam keeps the step size as tanh' vanishes), so the codes never move again.
 * normalizer = whiten (spread ~0.2 at init) and lr <= 5e-4 avoid both.
 *
 * Version history: 1 — first version. 2 — variant = study rejects L = 2 (one reachable value)
 * instead of training a dimension that carries nothing. */
#define TP_PLUGIN
#include <stdint.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "normalizer.h"
#include "resampler.h"

#define FSQ_NAME        "fsq"
#define FSQ_STREAM_BASE 0x6673710000000000ull /* "fsq" */
#define FSQ_MAX_DIMS    256
#define FSQ_MAX_LEVEL   1024
#define FSQ_EPS         1e-3

static const tp_option_spec fsq_options[] = {
    RS_OPTIONS,
    {"levels", TP_OPT_STRING, "8x8", 1, 0, NULL,
     "levels per FSQ dimension, 2..1024 each: L or LxN (N copies), separated by ',' or ':'"},
    {"variant", TP_OPT_ENUM, "exact", 1, 0, "exact|study",
     "exact: the FSQ paper's bound (L values per dim); study: tanh*(L-1)/2 as the study coded it"},
    BU_ALPHA_OPTIONS,
    NZ_OPTIONS,
};

typedef struct fsq_state {
    rs_enc enc;
    int d_s, d_r, nd, study, uniform; /* uniform: all levels equal */
    int level[FSQ_MAX_DIMS];
    float shift[FSQ_MAX_DIMS], half[FSQ_MAX_DIMS], offset[FSQ_MAX_DIMS], inv_width[FSQ_MAX_DIMS];
    int lo[FSQ_MAX_DIMS], hi[FSQ_MAX_DIMS]; /* integer grid of each dimension */
    tp_tensor *in_w, *in_b, *out_w, *out_b;
    bu_alpha alpha;
    nz_state nz;
} fsq_state;

static void fsq_destroy(void *state) {
    fsq_state *s = state;
    if (!s) return;
    nz_free(&s->nz);
    free(s);
}

/* "8,8,8" or "8x8" (eight 8s) or "5x4:3": items L or LxN separated by ',' or ':' (':' fits
 * inside a "k=v,k=v" option list). */
static tp_status fsq_parse_levels(fsq_state *s, const char *txt, tp_err *err) {
    const char *p = txt ? txt : "";
    s->nd = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10), rep = 1;
        if (end != p && *end == 'x') {
            const char *r = end + 1;
            rep = strtol(r, &end, 10);
            if (end == r) rep = 0;
        }
        if (end == p || v < 2 || v > FSQ_MAX_LEVEL || rep < 1 ||
            (*end && *end != ',' && *end != ':'))
            return BU_API->errf(err, TP_EINVAL,
                                FSQ_NAME
                                ": option levels = '%s': expected levels 2..%d as L or "
                                "LxN (N copies) separated by ',' or ':' (e.g. 8x8 or 5:5:4)",
                                txt, FSQ_MAX_LEVEL);
        if (s->nd + rep > FSQ_MAX_DIMS)
            return BU_API->errf(err, TP_EINVAL, FSQ_NAME ": option levels: more than %d values",
                                FSQ_MAX_DIMS);
        for (long i = 0; i < rep; i++) s->level[s->nd++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return BU_API->errf(err, TP_EINVAL, FSQ_NAME ": option levels = '%s': trailing '%c'",
                                txt, *end);
    }
    if (s->nd == 0)
        return BU_API->errf(err, TP_EINVAL,
                            FSQ_NAME ": option levels is empty: expected e.g. 8x8 or 5:5:4");
    s->uniform = 1;
    for (int j = 0; j < s->nd; j++) {
        int l = s->level[j];
        /* the study's bound keeps floor((L-1)/2) steps each side: for L = 2 that is the single
         * value 0, a dimension that carries nothing whatever the encoder does */
        if (s->study && l < 3)
            return BU_API->errf(err, TP_EINVAL,
                                FSQ_NAME ": option levels = '%s': level %d of dimension %d with "
                                         "variant = study has one reachable value (the grid is "
                                         "-floor((L-1)/2)..floor((L-1)/2)); use L >= 3 or "
                                         "variant = exact",
                                txt, l, j);
        if (l != s->level[0]) s->uniform = 0;
        if (s->study) {
            s->half[j] = (float)(l - 1) / 2.0f;
            s->offset[j] = 0;
            s->shift[j] = 0;
            s->hi[j] = (l - 1) / 2;
            s->lo[j] = -s->hi[j];
            s->inv_width[j] = 1.0f / s->half[j];
        } else {
            double a = (l - 1) * (1 + FSQ_EPS) / 2, o = l % 2 == 0 ? 0.5 : 0.0;
            s->half[j] = (float)a;
            s->offset[j] = (float)o;
            s->shift[j] = (float)atanh(o / a);
            s->lo[j] = -(l / 2);
            s->hi[j] = s->lo[j] + l - 1;
            s->inv_width[j] = 1.0f / (float)(l / 2);
        }
    }
    return TP_OK;
}

static tp_status fsq_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                            void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(FSQ_NAME, dims, err));
    fsq_state *s = calloc(1, sizeof *s);
    if (!s) return BU_API->errf(err, TP_ENOMEM, FSQ_NAME ": out of memory");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    const char *variant = BU_API->opt_string(o, "variant");
    s->study = variant && !strcmp(variant, "study");
    bu_init in = {FSQ_NAME, dims->seed, FSQ_STREAM_BASE, 0};
    tp_status st = fsq_parse_levels(s, BU_API->opt_string(o, "levels"), err);
    if (st == TP_OK) st = rs_create(&s->enc, &in, o, dims, ps, err);
    if (st == TP_OK)
        st = bu_linear(&in, ps, "fsq.proj_in", s->enc.width, s->nd, &s->in_w, &s->in_b, err);
    if (st == TP_OK)
        st = bu_linear(&in, ps, "fsq.proj_out", s->nd, s->d_r, &s->out_w, &s->out_b, err);
    if (st == TP_OK) st = bu_alpha_make(&in, o, dims, ps, &s->alpha, err);
    if (st == TP_OK) st = nz_create(&s->nz, &in, o, dims, ps, err);
    if (st != TP_OK) {
        fsq_destroy(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

/* Straight-through rounding of v [n,1] onto the integers lo..hi. */
static tp_tensor *fsq_round(tp_ctx *c, tp_tensor *v, int lo, int hi) {
    float grid[FSQ_MAX_LEVEL];
    for (int i = lo; i <= hi; i++) grid[i - lo] = (float)i;
    tp_tensor *g = tp_from_f32(c, TP_DIMS(hi - lo + 1, 1), grid);
    return tp_vq_nearest(c, v, g, TP_VQ_L2, NULL);
}

/* bounded b [N,d] -> rounded integers [N,d] (straight-through). */
static tp_tensor *fsq_round_all(fsq_state *s, tp_ctx *c, tp_tensor *b) {
    if (!b) return NULL;
    int64_t n = b->shape[0];
    if (s->uniform)
        return tp_reshape(c,
                          fsq_round(c, tp_reshape(c, b, TP_DIMS(n * s->nd, 1)), s->lo[0], s->hi[0]),
                          TP_DIMS(n, s->nd));
    tp_tensor *cols[FSQ_MAX_DIMS];
    for (int j = 0; j < s->nd; j++)
        cols[j] = fsq_round(c, tp_contiguous(c, tp_slice(c, b, 1, j, 1)), s->lo[j], s->hi[j]);
    for (int j = 0; j < s->nd; j++)
        if (!cols[j]) return NULL;
    return tp_concat(c, cols, s->nd, 1);
}

/* Code statistics of this batch from the rounded integers r [N,d]. */
static int fsq_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static tp_status fsq_usage(fsq_state *s, tp_tensor *r, double *ppl, double *uniq, tp_err *err) {
    int64_t n = r->shape[0];
    float *buf = malloc((size_t)(n * s->nd) * sizeof *buf);
    uint64_t *code = malloc((size_t)n * sizeof *code);
    tp_status st = TP_OK;
    if (!buf || !code) st = BU_API->errf(err, TP_ENOMEM, FSQ_NAME ": out of memory");
    if (st == TP_OK) st = tp_to_f32_buffer(r, buf, err);
    if (st == TP_OK) {
        /* a hash of the tuple (FNV-1a); distinct tuples collide with negligible probability */
        for (int64_t i = 0; i < n; i++) {
            uint64_t hsh = 1469598103934665603ull;
            for (int j = 0; j < s->nd; j++) {
                hsh ^= (uint64_t)(int64_t)lrintf(buf[i * s->nd + j] - (float)s->lo[j]);
                hsh *= 1099511628211ull;
            }
            code[i] = hsh;
        }
        qsort(code, (size_t)n, sizeof *code, fsq_cmp);
        double h = 0;
        int64_t distinct = 0;
        for (int64_t i = 0; i < n;) {
            int64_t j = i;
            while (j < n && code[j] == code[i]) j++;
            double p = (double)(j - i) / (double)n;
            h -= p * log(p);
            distinct++;
            i = j;
        }
        *ppl = exp(h);
        *uniq = n ? (double)distinct / (double)n : 0;
    }
    free(buf);
    free(code);
    return st;
}

static tp_status fsq_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                             tp_bridge_out *out, tp_err *err) {
    fsq_state *s = state;
    (void)training;
    memset(out, 0, sizeof *out);
    TP_TRY(bu_check_input(FSQ_NAME, s->d_s, h, mask, err));
    int64_t b = h->shape[0], m = s->enc.m, n = b * m, d = s->nd;
    tp_tensor *x = nz_apply(&s->nz, c, bu_f32(c, h), err);
    if (!x) return err->code ? err->code : bu_fail(FSQ_NAME, c, "forward", err);
    tp_tensor *y = rs_forward(&s->enc, c, x, mask);
    tp_tensor *z = tp_reshape(c, tp_linear(c, y, s->in_w, s->in_b), TP_DIMS(n, d));
    tp_tensor *shift = tp_from_f32(c, TP_DIMS(d), s->shift);
    tp_tensor *half = tp_from_f32(c, TP_DIMS(d), s->half);
    tp_tensor *off = tp_from_f32(c, TP_DIMS(d), s->offset);
    tp_tensor *bnd = tp_sub(c, tp_mul(c, tp_tanh(c, tp_add(c, z, shift)), half), off);
    tp_tensor *r = fsq_round_all(s, c, bnd);
    tp_tensor *q = tp_mul(c, r, tp_from_f32(c, TP_DIMS(d), s->inv_width));
    x = tp_linear(c, tp_reshape(c, q, TP_DIMS(b, m, d)), s->out_w, s->out_b);
    tp_tensor *soft = bu_alpha_apply(c, &s->alpha, x);
    if (!soft) return bu_fail(FSQ_NAME, c, "forward", err);
    double ppl = 0, uniq = 0;
    TP_TRY(fsq_usage(s, r, &ppl, &uniq, err));
    out->soft = soft;
    bu_aux(out, "fsq_z", z);
    bu_aux(out, "fsq_q", q);
    bu_alpha_metric(&s->alpha, out);
    bu_metric(out, "fsq_perplexity", ppl);
    bu_metric(out, "fsq_unique", uniq);
    nz_metrics(&s->nz, out);
    return TP_OK;
}

static int fsq_num_tokens(void *state) {
    return ((fsq_state *)state)->enc.m;
}

static uint32_t fsq_flags(void *state) {
    (void)state;
    return 0;
}

static int fsq_calibration_examples(void *state) {
    return nz_examples(&((fsq_state *)state)->nz);
}

static tp_status fsq_calibrate(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask,
                               tp_tensor *recv_embed, tp_err *err) {
    return nz_calibrate(&((fsq_state *)state)->nz, c, h, mask, recv_embed, err);
}

static const tp_bridge_vtable fsq_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = fsq_create,
    .forward = fsq_forward,
    .num_tokens = fsq_num_tokens,
    .destroy = fsq_destroy,
    .flags = fsq_flags,
    .calibration_examples = fsq_calibration_examples,
    .calibrate = fsq_calibrate,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = FSQ_NAME;
    d->version = "2";
    d->summary = "FSQ: Perceiver -> projection to len(levels) scalars, tanh bound, "
                 "straight-through rounding -> projection; RMS-normalised x alpha";
    d->options = fsq_options;
    d->n_options = (int)(sizeof fsq_options / sizeof fsq_options[0]);
    d->vtable = &fsq_vtable;
    d->vtable_size = sizeof fsq_vtable;
    (void)err;
    return TP_OK;
}
