/* reconstruction.c — the reconstruction loss of the study's early GSM8K phases (STUDY.md
 * "Losses" and phases 1 and 8: 1 - cos(mean soft, mean sender state); phase 8 added a
 * reconstruction head).
 *
 * What it adds: a loss named "reconstruction" over the soft tokens in->soft [B,M,d_r] and the
 * sender states in->sender_h [B,T,d_s] with mask in->sender_mask [B,T] (NULL = every token):
 *   a_b = (1/M) sum_m soft[b,m,:]                          mean soft token, [B,d_r]
 *   h_b = sum_t mask[b,t] h[b,t,:] / sum_t mask[b,t]       masked mean sender state, [B,d_s]
 *   r_b = W a_b + c    the reconstruction head d_r -> d_s ("reconstruction.head.*"): present
 *                      with head = linear, or with head = auto when the widths differ;
 *                      r_b = a_b with head = none (needs d_s == d_r)
 *   form = cosine (default): loss = mean_b (1 - cos(r_b, h_b))        in [0, 2]
 *   form = mse:              loss = mean_{b,k} (r_b[k] - h_b[k])^2
 * The head starts as nn.Linear's default (U(+-1/sqrt(d_r))), from Philox streams of dims->seed.
 * The sender states are frozen: the gradient reaches the bridge through a and the head.
 * Cosine uses F.normalize's rule (a zero vector stays zero, eps 1e-8).
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
#define RC_COS_EPS     1e-8f
#define RC_STREAM_BASE 0x7265636f00000000ull /* "reco" */

static const tp_option_spec rc_options[] = {
    {"form", TP_OPT_ENUM, "cosine", 1, 0, "cosine|mse",
     "cosine: mean of 1 - cos(reconstruction, mean sender state); mse: mean squared error"},
    {"head", TP_OPT_ENUM, "auto", 1, 0, "auto|linear|none",
     "learned head from the mean soft token to the sender width: auto = only if widths differ"},
};

typedef struct rc_state {
    int mse;
    int d_s, d_r;
    tp_tensor *w, *b; /* [d_s,d_r], [d_s] or NULL */
} rc_state;

static tp_status rc_param(tp_params *ps, const char *name, int ndim, const int64_t *shape,
                          float bound, uint64_t seed, uint64_t stream, tp_tensor **out,
                          tp_err *err) {
    *out = API->param_add(ps, name, ndim, shape, err);
    if (!*out) return err && err->code ? err->code : TP_ENOMEM;
    tp_rng rng = {seed, RC_STREAM_BASE + stream, 0};
    tp_status st = tp_fill_uniform(*out, -bound, bound, &rng);
    if (st != TP_OK) return API->errf(err, st, "reconstruction: initialising '%s' failed", name);
    return TP_OK;
}

static tp_status rc_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    if (!dims || dims->d_sender <= 0 || dims->d_receiver <= 0)
        return API->errf(err, TP_EINVAL,
                         "reconstruction: sender width %d / receiver width %d: both must be > 0",
                         dims ? dims->d_sender : 0, dims ? dims->d_receiver : 0);
    const char *form = API->opt_string(o, "form");
    const char *head = API->opt_string(o, "head");
    int mse, want;
    if (form && !strcmp(form, "cosine"))
        mse = 0;
    else if (form && !strcmp(form, "mse"))
        mse = 1;
    else
        return API->errf(err, TP_EINVAL, "reconstruction: option form = '%s': expected cosine|mse",
                         form ? form : "(null)");
    if (head && !strcmp(head, "auto"))
        want = dims->d_sender != dims->d_receiver;
    else if (head && !strcmp(head, "linear"))
        want = 1;
    else if (head && !strcmp(head, "none"))
        want = 0;
    else
        return API->errf(err, TP_EINVAL,
                         "reconstruction: option head = '%s': expected auto|linear|none",
                         head ? head : "(null)");
    if (!want && dims->d_sender != dims->d_receiver)
        return API->errf(err, TP_EINVAL,
                         "reconstruction: head = none, but the sender width %d differs from the "
                         "receiver width %d; use head = auto or linear",
                         dims->d_sender, dims->d_receiver);
    rc_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "reconstruction: out of memory");
    s->mse = mse;
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    if (want) {
        float bound = 1.0f / sqrtf((float)s->d_r);
        tp_status st = rc_param(ps, "reconstruction.head.weight", TP_DIMS(s->d_s, s->d_r), bound,
                                dims->seed, 0, &s->w, err);
        if (st == TP_OK)
            st = rc_param(ps, "reconstruction.head.bias", TP_DIMS(s->d_s), bound, dims->seed, 1,
                          &s->b, err);
        if (st != TP_OK) {
            free(s);
            return st;
        }
    }
    *state = s;
    return TP_OK;
}

static uint32_t rc_needs(void *state) {
    (void)state;
    return TP_NEED_SOFT | TP_NEED_SENDER;
}

static tp_status rc_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    rc_state *s = state;
    *loss = NULL;
    tp_tensor *soft = in->soft, *h = in->sender_h, *mask = in->sender_mask;
    if (!soft) return API->errf(err, TP_EINVAL, "reconstruction: the trainer gave no soft tokens");
    if (!h) return API->errf(err, TP_EINVAL, "reconstruction: the trainer gave no sender states");
    if (soft->ndim != 3 || soft->shape[2] != s->d_r)
        return API->errf(err, TP_ESHAPE,
                         "reconstruction: soft tokens must be [B,M,%d]; got %d dims", s->d_r,
                         soft->ndim);
    int64_t b = soft->shape[0];
    if (h->ndim != 3 || h->shape[0] != b || h->shape[2] != s->d_s)
        return API->errf(err, TP_ESHAPE, "reconstruction: sender states must be [%lld,T,%d]",
                         (long long)b, s->d_s);
    if (mask && (mask->ndim != 2 || mask->shape[0] != b || mask->shape[1] != h->shape[1]))
        return API->errf(err, TP_ESHAPE, "reconstruction: sender mask must be [%lld,%lld]",
                         (long long)b, (long long)h->shape[1]);
    tp_tensor *r = tp_mean(c, soft, 1, 0); /* [B,d_r] */
    if (s->w) r = tp_linear(c, r, s->w, s->b);
    tp_tensor *hf = h->dtype == TP_F32 ? h : tp_cast(c, h, TP_F32);
    tp_tensor *hm = tp_pool(c, hf, mask, TP_POOL_MEAN); /* [B,d_s] */
    tp_tensor *l;
    if (s->mse) {
        l = tp_mse(c, r, hm);
    } else {
        tp_tensor *cos = tp_sum(
            c, tp_mul(c, tp_l2_normalize(c, r, RC_COS_EPS), tp_l2_normalize(c, hm, RC_COS_EPS)), 1,
            0); /* [B] */
        l = tp_add_scalar(c, tp_scale(c, tp_mean_all(c, cos), -1.0f), 1.0f);
    }
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "reconstruction: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void rc_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable rc_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = rc_create,
    .needs = rc_needs,
    .compute = rc_compute,
    .destroy = rc_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "reconstruction";
    d->version = "1";
    d->summary = "1 - cos (or MSE) between the (projected) mean soft token and mean sender state";
    d->options = rc_options;
    d->n_options = (int)(sizeof rc_options / sizeof rc_options[0]);
    d->vtable = &rc_vtable;
    d->vtable_size = sizeof rc_vtable;
    (void)err;
    return TP_OK;
}
