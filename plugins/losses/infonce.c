/* infonce.c — in-batch contrastive (InfoNCE) loss between what the bridge sent and what the
 * sender saw (STUDY.md "Losses", phase 2: tau 0.07, weight 0.5 then 0.1).
 *
 * What it adds: a loss named "infonce" over the soft tokens in->soft [B,M,d_r] and the sender
 * states in->sender_h [B,T,d_s] with key mask in->sender_mask [B,T] (NULL = every token):
 *   a_b = (1/M) sum_m soft[b,m,:]                          mean soft token, [B,d_r]
 *   h_b = sum_t mask[b,t] h[b,t,:] / sum_t mask[b,t]       masked mean sender state, [B,d_s]
 *   p_b = W h_b + c      a learned projection d_s -> d_r ("infonce.proj.*"), present when the
 *                        widths differ (projection = auto) or always (projection = always);
 *                        p_b = h_b when absent (projection = never needs d_s == d_r)
 *   S[i,j] = cos(a_i, p_j) / tau                           [B,B]
 *   loss   = CE(S, diag)                    i.e. mean_i -log softmax_j(S[i,:])[i]
 *   symmetric = true (default): loss = (CE(S, diag) + CE(S^T, diag)) / 2, as CLIP does.
 * The positive pair of example i is (a_i, p_i); the other B-1 examples of the batch are its
 * negatives. A batch of one has only the positive: the loss is exactly 0. The sender states are
 * frozen, so the gradient reaches the bridge through a and the projection through p.
 * The projection starts as nn.Linear's default (U(+-1/sqrt(d_s)) for weight and bias), drawn
 * from Philox streams of dims->seed.
 * needs() = TP_NEED_SOFT | TP_NEED_SENDER.
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

#define API            tp_plugin_api_
#define NC_COS_EPS     1e-8f
#define NC_STREAM_BASE 0x696e666f00000000ull /* "info" */

static const tp_option_spec nc_options[] = {
    {"tau", TP_OPT_FLOAT, "0.07", 1e-6, 1e6, NULL, "temperature of the cosine logits"},
    {"projection", TP_OPT_ENUM, "auto", 1, 0, "auto|always|never",
     "learned projection of the mean sender state: auto = only when the widths differ"},
    {"symmetric", TP_OPT_BOOL, "true", 1, 0, NULL,
     "average soft->sender and sender->soft directions (CLIP); false: soft->sender only"},
};

typedef struct nc_state {
    float tau;
    int symmetric;
    int d_s, d_r;
    tp_tensor *w, *b; /* [d_r,d_s], [d_r] or NULL */
} nc_state;

static tp_status nc_param(tp_params *ps, const char *name, int ndim, const int64_t *shape,
                          float bound, uint64_t seed, uint64_t stream, tp_tensor **out,
                          tp_err *err) {
    *out = API->param_add(ps, name, ndim, shape, err);
    if (!*out) return err && err->code ? err->code : TP_ENOMEM;
    tp_rng rng = {seed, NC_STREAM_BASE + stream, 0};
    tp_status st = tp_fill_uniform(*out, -bound, bound, &rng);
    if (st != TP_OK) return API->errf(err, st, "infonce: initialising '%s' failed", name);
    return TP_OK;
}

static tp_status nc_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    if (!dims || dims->d_sender <= 0 || dims->d_receiver <= 0)
        return API->errf(err, TP_EINVAL,
                         "infonce: sender width %d / receiver width %d: both must be > 0",
                         dims ? dims->d_sender : 0, dims ? dims->d_receiver : 0);
    double tau = API->opt_float(o, "tau");
    if (!(tau > 0) || !isfinite(tau))
        return API->errf(err, TP_EINVAL, "infonce: option tau = %g: expected a number > 0", tau);
    const char *proj = API->opt_string(o, "projection");
    int want;
    if (proj && !strcmp(proj, "auto"))
        want = dims->d_sender != dims->d_receiver;
    else if (proj && !strcmp(proj, "always"))
        want = 1;
    else if (proj && !strcmp(proj, "never"))
        want = 0;
    else
        return API->errf(err, TP_EINVAL,
                         "infonce: option projection = '%s': expected auto|always|never",
                         proj ? proj : "(null)");
    if (!want && dims->d_sender != dims->d_receiver)
        return API->errf(err, TP_EINVAL,
                         "infonce: projection = never, but the sender width %d differs from the "
                         "receiver width %d; use projection = auto",
                         dims->d_sender, dims->d_receiver);
    nc_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "infonce: out of memory");
    s->tau = (float)tau;
    s->symmetric = API->opt_bool(o, "symmetric");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    if (want) {
        float bound = 1.0f / sqrtf((float)s->d_s);
        tp_status st = nc_param(ps, "infonce.proj.weight", TP_DIMS(s->d_r, s->d_s), bound,
                                dims->seed, 0, &s->w, err);
        if (st == TP_OK)
            st = nc_param(ps, "infonce.proj.bias", TP_DIMS(s->d_r), bound, dims->seed, 1, &s->b,
                          err);
        if (st != TP_OK) {
            free(s);
            return st;
        }
    }
    *state = s;
    return TP_OK;
}

static uint32_t nc_needs(void *state) {
    (void)state;
    return TP_NEED_SOFT | TP_NEED_SENDER;
}

static tp_status nc_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    nc_state *s = state;
    *loss = NULL;
    tp_tensor *soft = in->soft, *h = in->sender_h, *mask = in->sender_mask;
    if (!soft) return API->errf(err, TP_EINVAL, "infonce: the trainer gave no soft tokens");
    if (!h) return API->errf(err, TP_EINVAL, "infonce: the trainer gave no sender states");
    if (soft->ndim != 3 || soft->shape[2] != s->d_r)
        return API->errf(err, TP_ESHAPE, "infonce: soft tokens must be [B,M,%d]; got %d dims",
                         s->d_r, soft->ndim);
    int64_t b = soft->shape[0];
    if (h->ndim != 3 || h->shape[0] != b || h->shape[2] != s->d_s)
        return API->errf(err, TP_ESHAPE, "infonce: sender states must be [%lld,T,%d]", (long long)b,
                         s->d_s);
    if (mask && (mask->ndim != 2 || mask->shape[0] != b || mask->shape[1] != h->shape[1]))
        return API->errf(err, TP_ESHAPE, "infonce: sender mask must be [%lld,%lld]", (long long)b,
                         (long long)h->shape[1]);
    int32_t *diag = malloc((size_t)b * sizeof *diag);
    if (!diag) return API->errf(err, TP_ENOMEM, "infonce: out of memory");
    for (int64_t i = 0; i < b; i++) diag[i] = (int32_t)i;
    tp_tensor *tg = tp_from_i32(c, TP_DIMS(b), diag);
    free(diag);
    tp_tensor *a = tp_mean(c, soft, 1, 0); /* [B,d_r] */
    tp_tensor *hf = h->dtype == TP_F32 ? h : tp_cast(c, h, TP_F32);
    tp_tensor *p = tp_pool(c, hf, mask, TP_POOL_MEAN); /* [B,d_s] */
    if (s->w) p = tp_linear(c, p, s->w, s->b);
    tp_tensor *sim = tp_scale(c, tp_cosine_matrix(c, a, p, NC_COS_EPS), 1.0f / s->tau);
    tp_tensor *l = tp_cross_entropy(c, sim, tg, -100, 0.0f);
    if (s->symmetric) {
        tp_tensor *lt =
            tp_cross_entropy(c, tp_contiguous(c, tp_transpose(c, sim, 0, 1)), tg, -100, 0.0f);
        l = tp_scale(c, tp_add(c, l, lt), 0.5f);
    }
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "infonce: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

/* Parameters belong to the host's tp_params. */
static void nc_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable nc_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = nc_create,
    .needs = nc_needs,
    .compute = nc_compute,
    .destroy = nc_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "infonce";
    d->version = "1";
    d->summary = "in-batch InfoNCE between the mean soft token and the mean sender state";
    d->options = nc_options;
    d->n_options = (int)(sizeof nc_options / sizeof nc_options[0]);
    d->vtable = &nc_vtable;
    d->vtable_size = sizeof nc_vtable;
    (void)err;
    return TP_OK;
}
