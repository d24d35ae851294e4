/* anchor.c — the anchor loss of the study's GSM8K phases 3-6 (STUDY.md "Losses": anchor the soft
 * tokens to the receiver's embeddings of the answer, later of the question; MSE, then cosine in
 * phase 3.1; weight 1-2).
 *
 * What it adds: a loss named "anchor" over the soft tokens in->soft [B,M,D] and the target
 * in->target_emb [B,L,D] with in->target_emb_mask [B,L] (NULL = every position): the receiver's
 * input embeddings of each example's answer or question text. Which text it is is the run's
 * target setting, shared with the diffusion bridge, so both always anchor to the same thing.
 *   match = resample (default): the target row b (its n_b valid positions, in order) is
 *     resampled to M vectors by linear interpolation with aligned ends
 *     (F.interpolate(mode="linear", align_corners=True) over the valid positions):
 *       u_j = j (n_b - 1) / (M - 1)   (M = 1: u_0 = (n_b - 1) / 2)
 *       r[b,j] = (1 - f) e[lo] + f e[lo + 1],  lo = floor(u_j), f = u_j - lo
 *     and soft token j is compared with r[b,j];
 *   match = mean: the mean soft token (1/M) sum_m soft[b,m] is compared with the masked mean
 *     of the target row.
 *   form = mse:    loss = mean over every compared coordinate of (soft - r)^2
 *   form = cosine: loss = mean over compared vectors of 1 - cos(soft, r)   (F.normalize eps)
 * A row without any target token is an error naming the row (it has nothing to anchor to).
 * The target is frozen; the gradient reaches the soft tokens only.
 * needs() = TP_NEED_SOFT | TP_NEED_TARGET_EMB.
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/loss.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#define API        tp_plugin_api_
#define AN_COS_EPS 1e-8f

static const tp_option_spec an_options[] = {
    {"form", TP_OPT_ENUM, "cosine", 1, 0, "mse|cosine",
     "mse: mean squared error; cosine: mean of 1 - cos over compared vectors"},
    {"match", TP_OPT_ENUM, "resample", 1, 0, "resample|mean",
     "resample: target resampled to M positions, token by token; mean: mean vs mean"},
};

typedef struct an_state {
    int mse, mean;
} an_state;

static tp_status an_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    (void)dims;
    (void)ps;
    *state = NULL;
    const char *form = API->opt_string(o, "form");
    const char *match = API->opt_string(o, "match");
    int mse, mean;
    if (form && !strcmp(form, "mse"))
        mse = 1;
    else if (form && !strcmp(form, "cosine"))
        mse = 0;
    else
        return API->errf(err, TP_EINVAL, "anchor: option form = '%s': expected mse|cosine",
                         form ? form : "(null)");
    if (match && !strcmp(match, "resample"))
        mean = 0;
    else if (match && !strcmp(match, "mean"))
        mean = 1;
    else
        return API->errf(err, TP_EINVAL, "anchor: option match = '%s': expected resample|mean",
                         match ? match : "(null)");
    an_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "anchor: out of memory");
    s->mse = mse;
    s->mean = mean;
    *state = s;
    return TP_OK;
}

static uint32_t an_needs(void *state) {
    (void)state;
    return TP_NEED_SOFT | TP_NEED_TARGET_EMB;
}

/* The interpolation weights [B,M,L] (resample) or the masked-mean weights [B,1,L] (mean) of the
 * target rows, from the mask; NULL with err set when a row is empty. */
static tp_tensor *an_weights(tp_ctx *c, tp_tensor *mask, int64_t b, int64_t l, int64_t m, int mean,
                             tp_err *err) {
    int64_t rows = mean ? 1 : m;
    float *mk = malloc((size_t)(b * l) * sizeof *mk);
    float *w = calloc((size_t)(b * rows * l), sizeof *w);
    int64_t *idx = malloc((size_t)l * sizeof *idx);
    tp_tensor *out = NULL;
    if (!mk || !w || !idx) {
        API->errf(err, TP_ENOMEM, "anchor: out of memory");
        goto done;
    }
    if (mask) {
        tp_status st = tp_to_f32_buffer(mask, mk, err);
        if (st != TP_OK) goto done;
    } else {
        for (int64_t i = 0; i < b * l; i++) mk[i] = 1.0f;
    }
    for (int64_t r = 0; r < b; r++) {
        int64_t n = 0;
        for (int64_t t = 0; t < l; t++)
            if (mk[r * l + t] != 0.0f) idx[n++] = t;
        if (n == 0) {
            API->errf(err, TP_EINVAL,
                      "anchor: target row %lld has no token (target_emb_mask is all 0): nothing "
                      "to anchor to; check the run's target text for empty answers/questions",
                      (long long)r);
            goto done;
        }
        float *wr = w + r * rows * l;
        if (mean) {
            for (int64_t k = 0; k < n; k++) wr[idx[k]] = 1.0f / (float)n;
            continue;
        }
        for (int64_t j = 0; j < m; j++) {
            double u =
                m == 1 ? 0.5 * (double)(n - 1) : (double)j * (double)(n - 1) / (double)(m - 1);
            int64_t lo = (int64_t)floor(u);
            if (lo > n - 1) lo = n - 1;
            int64_t hi = lo + 1 < n ? lo + 1 : n - 1;
            double f = u - (double)lo;
            wr[j * l + idx[lo]] += (float)(1.0 - f);
            wr[j * l + idx[hi]] += (float)f;
        }
    }
    out = tp_from_f32(c, TP_DIMS(b, rows, l), w);
    if (!out)
        API->errf(err, tp_ctx_status(c) ? tp_ctx_status(c) : TP_ENOMEM, "anchor: %s",
                  tp_ctx_error(c));
done:
    free(mk);
    free(w);
    free(idx);
    return out;
}

static tp_status an_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    an_state *s = state;
    *loss = NULL;
    tp_tensor *soft = in->soft, *tgt = in->target_emb, *mask = in->target_emb_mask;
    if (!soft) return API->errf(err, TP_EINVAL, "anchor: the trainer gave no soft tokens");
    if (!tgt)
        return API->errf(err, TP_EINVAL,
                         "anchor: the trainer gave no target_emb (the receiver embeddings of the "
                         "answer or question text); the run must set a target text");
    if (soft->ndim != 3)
        return API->errf(err, TP_ESHAPE, "anchor: soft tokens must be [B,M,D]; got %d dims",
                         soft->ndim);
    int64_t b = soft->shape[0], m = soft->shape[1], d = soft->shape[2];
    if (tgt->ndim != 3 || tgt->shape[0] != b || tgt->shape[2] != d)
        return API->errf(err, TP_ESHAPE,
                         "anchor: target_emb must be [%lld,L,%lld] like the soft "
                         "tokens; got %d dims",
                         (long long)b, (long long)d, tgt->ndim);
    int64_t l = tgt->shape[1];
    if (mask && (mask->ndim != 2 || mask->shape[0] != b || mask->shape[1] != l))
        return API->errf(err, TP_ESHAPE, "anchor: target_emb_mask must be [%lld,%lld]",
                         (long long)b, (long long)l);
    if (l < 1) return API->errf(err, TP_ESHAPE, "anchor: target_emb has no positions (L = 0)");
    tp_tensor *w = an_weights(c, mask, b, l, m, s->mean, err);
    if (!w) return err->code ? err->code : TP_EINVAL;
    tp_tensor *tf = tgt->dtype == TP_F32 ? tgt : tp_cast(c, tgt, TP_F32);
    tp_tensor *r = tp_detach(c, tp_matmul(c, w, tf, 0, 0)); /* [B,M,D] or [B,1,D] */
    tp_tensor *x = s->mean ? tp_mean(c, soft, 1, 1) : soft;
    tp_tensor *l_ = NULL;
    if (s->mse) {
        l_ = tp_mse(c, x, r);
    } else {
        tp_tensor *cos = tp_sum(
            c, tp_mul(c, tp_l2_normalize(c, x, AN_COS_EPS), tp_l2_normalize(c, r, AN_COS_EPS)), 2,
            0);
        l_ = tp_add_scalar(c, tp_scale(c, tp_mean_all(c, cos), -1.0f), 1.0f);
    }
    if (!l_) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "anchor: %s", tp_ctx_error(c));
    }
    *loss = l_;
    return TP_OK;
}

static void an_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable an_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = an_create,
    .needs = an_needs,
    .compute = an_compute,
    .destroy = an_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "anchor";
    d->version = "1";
    d->summary = "soft tokens anchored to the receiver embeddings of the answer or question";
    d->options = an_options;
    d->n_options = (int)(sizeof an_options / sizeof an_options[0]);
    d->vtable = &an_vtable;
    d->vtable_size = sizeof an_vtable;
    (void)err;
    return TP_OK;
}
