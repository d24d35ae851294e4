/* bow.c — the bag-of-words loss of the study's GSM8K phase 9 (STUDY.md "Losses": a BCE head
 * over the sender vocabulary, weight 5): the soft tokens must carry which words the answer
 * contains.
 *
 * What it adds: a loss named "bow" that owns a head Linear(d_r -> V_s) ("bow.head.weight"
 * [V_s,d_r], "bow.head.bias" [V_s], nn.Linear's default init U(+-1/sqrt(d_r)) from Philox
 * streams of dims->seed; V_s = dims->sender_vocab) and reads the soft tokens in->soft [B,M,d_r]
 * and in->answer_ids i32 [B,La] (the sender-tokenizer ids of each example's answer text, -1 =
 * padding; see loss.h):
 *   a_b  = (1/M) sum_m soft[b,m,:]                 mean soft token
 *   x_b  = W a_b + c                               [B,V_s] logits
 *   y_bv = 1 if id v occurs in answer b, else 0    (a set: repeats count once)
 *   loss = mean_{b,v} [ pos_weight y_bv softplus(-x_bv) + (1 - y_bv) softplus(x_bv) ]
 * which is torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight) with its default mean over all
 * B*V_s terms. softplus is computed stably as relu(x) + log(1 + exp(-|x|)).
 * An answer id outside [0, V_s) other than the padding -1 is an error naming the row and id.
 * needs() = TP_NEED_SOFT | TP_NEED_ANSWER_IDS.
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
#define BW_STREAM_BASE 0x626f770000000000ull /* "bow" */

static const tp_option_spec bw_options[] = {
    {"pos_weight", TP_OPT_FLOAT, "1", 0, 1e6, NULL,
     "weight of the positive (word present) terms, as BCEWithLogitsLoss(pos_weight)"},
};

typedef struct bw_state {
    float pos_weight;
    int d_r, v;
    tp_tensor *w, *b; /* [V,d_r], [V] */
} bw_state;

static tp_status bw_param(tp_params *ps, const char *name, int ndim, const int64_t *shape,
                          float bound, uint64_t seed, uint64_t stream, tp_tensor **out,
                          tp_err *err) {
    *out = API->param_add(ps, name, ndim, shape, err);
    if (!*out) return err && err->code ? err->code : TP_ENOMEM;
    tp_rng rng = {seed, BW_STREAM_BASE + stream, 0};
    tp_status st = tp_fill_uniform(*out, -bound, bound, &rng);
    if (st != TP_OK) return API->errf(err, st, "bow: initialising '%s' failed", name);
    return TP_OK;
}

static tp_status bw_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    if (!dims || dims->d_receiver <= 0)
        return API->errf(err, TP_EINVAL, "bow: receiver width %d: must be > 0",
                         dims ? dims->d_receiver : 0);
    if (dims->sender_vocab <= 0)
        return API->errf(err, TP_EINVAL,
                         "bow: the sender vocabulary size is %d; the head needs dims.sender_vocab "
                         "> 0",
                         dims->sender_vocab);
    double pw = API->opt_float(o, "pos_weight");
    if (!(pw >= 0) || !isfinite(pw))
        return API->errf(err, TP_EINVAL, "bow: option pos_weight = %g: expected a number >= 0", pw);
    bw_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "bow: out of memory");
    s->pos_weight = (float)pw;
    s->d_r = dims->d_receiver;
    s->v = dims->sender_vocab;
    float bound = 1.0f / sqrtf((float)s->d_r);
    tp_status st =
        bw_param(ps, "bow.head.weight", TP_DIMS(s->v, s->d_r), bound, dims->seed, 0, &s->w, err);
    if (st == TP_OK)
        st = bw_param(ps, "bow.head.bias", TP_DIMS(s->v), bound, dims->seed, 1, &s->b, err);
    if (st != TP_OK) {
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static uint32_t bw_needs(void *state) {
    (void)state;
    return TP_NEED_SOFT | TP_NEED_ANSWER_IDS;
}

/* coef = 1 - y + pw*y and py = pw*y as [B,V] host arrays from the answer ids. */
static tp_status bw_targets(const bw_state *s, tp_ctx *c, tp_tensor *ids, int64_t b, float *coef,
                            float *py, tp_err *err) {
    (void)c;
    int64_t la = ids->shape[1], v = s->v;
    float *buf = malloc((size_t)(b * la > 0 ? b * la : 1) * sizeof *buf);
    if (!buf) return API->errf(err, TP_ENOMEM, "bow: out of memory");
    tp_status st = TP_OK;
    /* element reads work on any device; the ids of a batch are a few hundred values */
    for (int64_t i = 0; i < b * la; i++) buf[i] = (float)tp_item(ids, i);
    for (int64_t i = 0; i < b * v; i++) {
        coef[i] = 1.0f;
        py[i] = 0.0f;
    }
    for (int64_t r = 0; r < b && st == TP_OK; r++)
        for (int64_t t = 0; t < la; t++) {
            float id = buf[r * la + t];
            if (id == -1.0f) continue;
            if (!(id >= 0.0f && id < (float)v) || id != floorf(id)) {
                st = API->errf(err, TP_ERANGE,
                               "bow: answer_ids[%lld][%lld] = %g is not a sender token id in "
                               "[0,%d) (-1 marks padding)",
                               (long long)r, (long long)t, (double)id, s->v);
                break;
            }
            int64_t k = r * v + (int64_t)id;
            coef[k] = s->pos_weight;
            py[k] = s->pos_weight;
        }
    free(buf);
    return st;
}

static tp_status bw_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    bw_state *s = state;
    *loss = NULL;
    tp_tensor *soft = in->soft, *ids = in->answer_ids;
    if (!soft) return API->errf(err, TP_EINVAL, "bow: the trainer gave no soft tokens");
    if (!ids)
        return API->errf(err, TP_EINVAL,
                         "bow: the trainer gave no answer_ids (the sender-tokenizer ids of each "
                         "example's answer text)");
    if (soft->ndim != 3 || soft->shape[2] != s->d_r)
        return API->errf(err, TP_ESHAPE, "bow: soft tokens must be [B,M,%d]; got %d dims", s->d_r,
                         soft->ndim);
    int64_t b = soft->shape[0];
    if (ids->ndim != 2 || ids->shape[0] != b)
        return API->errf(err, TP_ESHAPE, "bow: answer_ids must be [%lld,La]; got %d dims",
                         (long long)b, ids->ndim);
    if (ids->dtype != TP_I32) return API->errf(err, TP_EDTYPE, "bow: answer_ids must be i32");
    float *coef = malloc((size_t)(b * s->v) * sizeof *coef);
    float *py = malloc((size_t)(b * s->v) * sizeof *py);
    if (!coef || !py) {
        free(coef);
        free(py);
        return API->errf(err, TP_ENOMEM, "bow: out of memory (B = %lld, V = %d)", (long long)b,
                         s->v);
    }
    tp_status st = bw_targets(s, c, ids, b, coef, py, err);
    tp_tensor *ct = NULL, *pt = NULL;
    if (st == TP_OK) {
        ct = tp_from_f32(c, TP_DIMS(b, s->v), coef);
        pt = tp_from_f32(c, TP_DIMS(b, s->v), py);
    }
    free(coef);
    free(py);
    if (st != TP_OK) return st;
    tp_tensor *x = tp_linear(c, tp_mean(c, soft, 1, 0), s->w, s->b); /* [B,V] */
    /* softplus(x) = relu(x) + log(1 + exp(-|x|)); softplus(-x) = softplus(x) - x, so the
     * per-term loss is softplus(x) * (1 - y + pw y) - pw y x */
    tp_tensor *ax = tp_add(c, tp_relu(c, x), tp_relu(c, tp_scale(c, x, -1.0f)));
    tp_tensor *sp = tp_add(c, tp_relu(c, x),
                           tp_ln(c, tp_add_scalar(c, tp_exp(c, tp_scale(c, ax, -1.0f)), 1.0f)));
    tp_tensor *l = tp_mean_all(c, tp_sub(c, tp_mul(c, sp, ct), tp_mul(c, x, pt)));
    if (!l) {
        st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "bow: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void bw_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable bw_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = bw_create,
    .needs = bw_needs,
    .compute = bw_compute,
    .destroy = bw_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "bow";
    d->version = "1";
    d->summary = "bag-of-words BCE head over the sender vocabulary (words of the answer)";
    d->options = bw_options;
    d->n_options = (int)(sizeof bw_options / sizeof bw_options[0]);
    d->vtable = &bw_vtable;
    d->vtable_size = sizeof bw_vtable;
    (void)err;
    return TP_OK;
}
