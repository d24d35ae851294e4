/* optim.c — AdamW, global-norm clipping, the LR schedule and a param's storage dtype
 * (telepathy/optim.h). Moments (in the param's dtype: f32, or bf16 for pure-bf16 training) and the
 * step counter live in named tensors so checkpoints can save and restore them verbatim. The
 * updates run as backend ops (ADAMW, SUMSQ, in-place SCALE) on the params' device, so a CUDA
 * backend that implements them trains on the GPU without copies. */
#include "telepathy/optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"

struct tp_adamw {
    tp_adamw_cfg cfg;
    int n;
    tp_tensor **params;
    tp_tensor **state; /* 2n moments (on the params' device) + step (CPU) */
    float *wd;         /* per-param weight decay */
    int64_t t;
    tp_ctx *ctx; /* dispatch and scratch for the update ops, on the params' device */
};

/* Host buffers of the checks, per thread, grown to the largest param count seen and kept: a
 * warmed-up step allocates nothing (tests/core/test_alloc.c). */
typedef struct sumsq_buf {
    float *h;
    double *d;
    tp_tensor **t;
    int cap;
} sumsq_buf;
static _Thread_local sumsq_buf g_sb;

static int sb_reserve(int n) {
    if (n <= g_sb.cap) return 0;
    float *h = tp_core_realloc(g_sb.h, (size_t)n * sizeof *h);
    if (h) g_sb.h = h;
    double *d = tp_core_realloc(g_sb.d, (size_t)n * sizeof *d);
    if (d) g_sb.d = d;
    tp_tensor **t = tp_core_realloc(g_sb.t, (size_t)n * sizeof *t);
    if (t) g_sb.t = t;
    if (!h || !d || !t) return -1;
    g_sb.cap = n;
    return 0;
}

/* Sums of squares of the grads of params (contiguous f32 on ctx's device) into out[i] (NaN for a
 * param without grad). All sums are computed into one device vector and read back once: on the
 * GPU a read-back per tensor was a stream sync each, 58 of them per check for the Perceiver.
 * Returns non-zero on a dispatch error (ctx says why). */
static int grad_sumsqs(tp_ctx *c, tp_tensor *const *params, int n, double *out) {
    if (n <= 0) return 0;
    tp_tensor *acc = tp_ctx_scratch(c, TP_F32, 1, (int64_t[]){n});
    float *h = sb_reserve(n) ? NULL : g_sb.h;
    int bad = !acc || !h;
    for (int i = 0; i < n && !bad; i++) {
        if (!params[i] || !params[i]->grad) continue;
        tp_tensor *o = tp_ctx_view(c, acc);
        if (!o) {
            bad = 1;
            break;
        }
        o->data = (char *)acc->data + (size_t)i * sizeof(float);
        o->shape[0] = 1;
        tp_node nd = {.op = TP_OP_SUMSQ, .n_in = 1, .in = {params[i]->grad}, .out = o};
        bad = tp_dispatch_fwd(c, &nd) != TP_OK;
    }
    tp_err err = {0};
    if (!bad) bad = tp_to_f32_buffer(acc, h, &err) != TP_OK;
    for (int i = 0; i < n && !bad; i++) out[i] = params[i] && params[i]->grad ? (double)h[i] : NAN;
    if (bad && !c->status)
        tp_ctx_fail(c, err.code ? err.code : TP_ENOMEM, "sum of squares: %s",
                    err.msg[0] ? err.msg : "out of memory");
    return bad;
}

tp_adamw_cfg tp_adamw_defaults(void) {
    return (tp_adamw_cfg){0.9f, 0.999f, 1e-8f, 0.01f};
}

void tp_adamw_free(tp_adamw *o) {
    if (!o) return;
    if (o->state)
        for (int i = 0; i < 2 * o->n + 1; i++) tp_tensor_free(o->state[i]);
    tp_core_free(o->state);
    tp_core_free(o->params);
    tp_core_free(o->wd);
    tp_ctx_free(o->ctx);
    tp_core_free(o);
}

tp_adamw *tp_adamw_new(tp_tensor *const *params, int n, const tp_adamw_cfg *cfg, tp_err *err) {
    tp_adamw_cfg c = cfg ? *cfg : tp_adamw_defaults();
    if (!(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 && c.eps > 0 &&
          c.weight_decay >= 0)) {
        tp_errf(err, TP_EINVAL,
                "adamw: betas (%g, %g) must be in [0,1), eps %g > 0, weight_decay %g >= 0", c.beta1,
                c.beta2, c.eps, c.weight_decay);
        return NULL;
    }
    if (n < 0 || (n > 0 && !params)) {
        tp_errf(err, TP_EINVAL, "adamw: bad parameter list");
        return NULL;
    }
    tp_adamw *o = tp_core_calloc(1, sizeof *o);
    if (!o) goto oom;
    o->cfg = c;
    o->n = n;
    o->params = tp_core_calloc((size_t)(n ? n : 1), sizeof *o->params);
    o->state = tp_core_calloc((size_t)(2 * n + 1), sizeof *o->state);
    o->wd = tp_core_calloc((size_t)(n ? n : 1), sizeof *o->wd);
    if (!o->params || !o->state || !o->wd) goto oom;
    for (int i = 0; i < n; i++) o->wd[i] = c.weight_decay;
    tp_device dev = n > 0 && params[0] ? params[0]->device : TP_CPU;
    for (int i = 0; i < n; i++) {
        tp_tensor *p = params[i];
        if (!p || p->device != dev || !(p->flags & TP_FLAG_PARAM) || !tp_is_contiguous(p)) {
            tp_errf(err, TP_EINVAL,
                    "adamw: parameter %d ('%s') must be a tensor from tp_param_alloc (or "
                    "tp_param_alloc_on), all on one device",
                    i, p ? p->name : "(null)");
            tp_adamw_free(o);
            return NULL;
        }
        if ((p->dtype != TP_F32 && p->dtype != TP_BF16) || !p->grad || p->grad->dtype != TP_F32) {
            tp_errf(err, TP_EDTYPE,
                    "adamw: parameter %d ('%s') is %s with a %s grad; expected an f32 or bf16 "
                    "param with an f32 grad (hint: tp_param_set_dtype converts a param)",
                    i, p->name, tp_dtype_name(p->dtype),
                    p->grad ? tp_dtype_name(p->grad->dtype) : "missing");
            tp_adamw_free(o);
            return NULL;
        }
        o->params[i] = p;
        for (int k = 0; k < 2; k++) { /* moments in the param's dtype (torch.optim.AdamW) */
            tp_tensor *s = tp_tensor_alloc(p->dtype, dev, p->ndim, p->shape, err);
            if (!s) {
                tp_adamw_free(o);
                return NULL;
            }
            snprintf(s->name, sizeof s->name, "%.50s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
            o->state[2 * i + k] = s;
        }
    }
    o->state[2 * n] = tp_tensor_alloc(TP_F32, TP_CPU, 1, (int64_t[]){1}, err);
    if (!o->state[2 * n]) {
        tp_adamw_free(o);
        return NULL;
    }
    snprintf(o->state[2 * n]->name, sizeof o->state[2 * n]->name, "step");
    o->ctx = tp_ctx_new(dev);
    if (!o->ctx) goto oom;
    return o;
oom:
    tp_adamw_free(o);
    tp_errf(err, TP_ENOMEM, "adamw: out of memory");
    return NULL;
}

int tp_adamw_state(tp_adamw *o, tp_tensor ***tensors) {
    if (!o) return 0;
    ((float *)o->state[2 * o->n]->data)[0] = (float)o->t;
    if (tensors) *tensors = o->state;
    return 2 * o->n + 1;
}

tp_status tp_adamw_set_weight_decay(tp_adamw *o, int i, float weight_decay, tp_err *err) {
    if (!o || i < 0 || i >= o->n)
        return tp_errf(err, TP_ERANGE, "adamw: param index %d outside 0..%d", i, o ? o->n - 1 : -1);
    if (!(weight_decay >= 0))
        return tp_errf(err, TP_EINVAL, "adamw: weight_decay %g for '%s' must be >= 0", weight_decay,
                       o->params[i]->name);
    o->wd[i] = weight_decay;
    return TP_OK;
}

int64_t tp_adamw_steps(const tp_adamw *o) {
    return o ? o->t : 0;
}

void tp_adamw_zero_grad(tp_adamw *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) tp_param_zero_grad(o->params[i]);
}

/* Checks lr, syncs the step counter and computes every grad's sum of squares into g_sb.d;
 * refuses a non-finite grad, naming it. */
static tp_status step_begin(tp_adamw *o, float lr, tp_err *err) {
    if (!o) return tp_errf(err, TP_EINVAL, "adamw: NULL optimiser");
    if (!(lr >= 0) || !isfinite(lr)) return tp_errf(err, TP_EINVAL, "adamw: lr %g invalid", lr);
    /* the step tensor is authoritative after a checkpoint load */
    float st = ((float *)o->state[2 * o->n]->data)[0];
    if (st >= 0 && (int64_t)st != o->t) o->t = (int64_t)st;
    /* a param converted after tp_adamw_new no longer matches its moments: refuse before any
     * param changes (the op would refuse it halfway through the list) */
    for (int i = 0; i < o->n; i++) {
        const tp_tensor *p = o->params[i];
        if (p->dtype != o->state[2 * i]->dtype)
            return tp_errf(err, TP_EDTYPE,
                           "adamw: param '%s' is %s but its moments are %s (convert params with "
                           "tp_param_set_dtype before tp_adamw_new)",
                           p->name, tp_dtype_name(p->dtype), tp_dtype_name(o->state[2 * i]->dtype));
    }
    tp_ctx *c = o->ctx;
    tp_ctx_reset(c);
    tp_ctx_clear_error(c);
    if (sb_reserve(o->n)) return tp_errf(err, TP_ENOMEM, "adamw: out of memory");
    double *ss = g_sb.d;
    if (grad_sumsqs(c, o->params, o->n, ss)) return tp_errf(err, c->status, "adamw: %s", c->err);
    for (int i = 0; i < o->n; i++) {
        if (!o->params[i]->grad || isfinite(ss[i])) continue;
        return tp_errf(err, TP_ERANGE,
                       "adamw: grad of '%s' is not finite (hint: lower the lr or enable "
                       "gradient clipping)",
                       o->params[i]->name);
    }
    return TP_OK;
}

/* The update of every param, its grad read as grad * gscale. */
static tp_status step_update(tp_adamw *o, float lr, float gscale, tp_err *err) {
    tp_ctx *c = o->ctx;
    o->t++;
    const tp_adamw_cfg *cf = &o->cfg;
    double bc1 = 1.0 - pow(cf->beta1, (double)o->t), bc2 = 1.0 - pow(cf->beta2, (double)o->t);
    for (int i = 0; i < o->n; i++) {
        tp_tensor *p = o->params[i];
        if (!p->grad) continue;
        tp_adamw_hp hp = {
            1.0f - lr * o->wd[i], cf->beta1, cf->beta2, cf->eps, lr / bc1, sqrt(bc2), gscale};
        tp_node nd = {.op = TP_OP_ADAMW,
                      .n_in = 4,
                      .in = {p, p->grad, o->state[2 * i], o->state[2 * i + 1]},
                      .aux = &hp};
        if (tp_dispatch_fwd(c, &nd))
            return tp_errf(err, c->status, "adamw: '%s': %s", p->name, c->err);
    }
    ((float *)o->state[2 * o->n]->data)[0] = (float)o->t;
    return TP_OK;
}

tp_status tp_adamw_step(tp_adamw *o, float lr, tp_err *err) {
    TP_TRY(step_begin(o, lr, err));
    return step_update(o, lr, 1.0f, err);
}

tp_status tp_adamw_step_clipped(tp_adamw *o, float lr, double max_norm, double *grad_norm,
                                tp_err *err) {
    if (grad_norm) *grad_norm = NAN;
    TP_TRY(step_begin(o, lr, err));
    double ss = 0;
    for (int i = 0; i < o->n; i++)
        if (o->params[i]->grad) ss += g_sb.d[i];
    double norm = sqrt(ss);
    if (grad_norm) *grad_norm = norm;
    /* tp_clip_grad_norm's coefficient, in the same float */
    float coef = max_norm > 0 && norm > max_norm ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
    return step_update(o, lr, coef, err);
}

/* One scratch context per device and thread for clipping (created at first use, then reused:
 * no allocation in a warmed-up step). */
static _Thread_local tp_ctx *g_clip_ctx[2];

double tp_clip_grad_norm(tp_tensor *const *params, int n, double max_norm) {
    double ss = 0;
    /* one batched read-back per device: params may live on both */
    for (int dev = 0; dev < 2; dev++) {
        if (sb_reserve(n)) return NAN;
        tp_tensor **on = g_sb.t;
        double *part = g_sb.d;
        int k = 0, bad = 0;
        for (int i = 0; i < n && !bad; i++)
            if (params[i] && params[i]->grad && (int)params[i]->grad->device == dev)
                on[k++] = params[i];
        if (!bad && k) {
            if (!g_clip_ctx[dev]) g_clip_ctx[dev] = tp_ctx_new((tp_device)dev);
            bad = !g_clip_ctx[dev];
            if (!bad) {
                tp_ctx_reset(g_clip_ctx[dev]);
                tp_ctx_clear_error(g_clip_ctx[dev]);
                bad = grad_sumsqs(g_clip_ctx[dev], on, k, part);
            }
            for (int i = 0; i < k && !bad; i++) ss += part[i];
        }
        if (bad) return NAN;
    }
    double norm = sqrt(ss);
    if (!isfinite(norm) || max_norm <= 0 || norm <= max_norm) return norm;
    float coef = (float)(max_norm / (norm + 1e-6));
    for (int i = 0; i < n; i++) {
        if (!params[i] || !params[i]->grad) continue;
        tp_tensor *g = params[i]->grad;
        tp_node nd = {.op = TP_OP_SCALE, .n_in = 1, .in = {g}, .out = g, .fp = {coef}};
        if (tp_dispatch_fwd(g_clip_ctx[g->device], &nd)) return NAN; /* in place */
    }
    return norm;
}

tp_status tp_param_set_dtype(tp_tensor *p, tp_dtype dt, tp_err *err) {
    if (!p || !(p->flags & TP_FLAG_PARAM) || !(p->flags & TP_FLAG_OWNS_DATA) || p->base ||
        !tp_is_contiguous(p))
        return tp_errf(err, TP_EINVAL,
                       "param_set_dtype: '%s' is not a contiguous param from tp_param_alloc",
                       p ? p->name : "(null)");
    if (dt != TP_F32 && dt != TP_BF16)
        return tp_errf(err, TP_EDTYPE, "param_set_dtype: '%s': dtype %s; expected f32 or bf16",
                       p->name, tp_dtype_name(dt));
    if (p->dtype == dt) return TP_OK;
    /* convert into fresh storage, then swap it in: the param keeps its identity (pointers held
     * by a bridge and its grad stay valid) and the old storage is freed through the temporary */
    tp_tensor *t = tp_tensor_alloc(dt, p->device, p->ndim, p->shape, err);
    if (!t) return err && err->code ? err->code : TP_ENOMEM;
    tp_status s = tp_copy_into(t, p, err);
    if (s != TP_OK) {
        tp_tensor_free(t);
        tp_err_prefix(err, "param_set_dtype: '%s'", p->name);
        return s;
    }
    void *d = p->data;
    tp_dtype od = p->dtype;
    p->data = t->data;
    p->dtype = dt;
    t->data = d;
    t->dtype = od;
    tp_tensor_free(t);
    return TP_OK;
}

tp_status tp_lr_check(const tp_lr_schedule *s, tp_err *err) {
    if (!s) return tp_errf(err, TP_EINVAL, "lr schedule: NULL");
    if (s->kind != TP_LR_CONSTANT && s->kind != TP_LR_WARMUP_COSINE)
        return tp_errf(err, TP_EINVAL, "lr schedule: unknown kind %d (0 constant, 1 cosine)",
                       (int)s->kind);
    if (!(s->lr > 0) || !isfinite(s->lr))
        return tp_errf(err, TP_EINVAL, "lr schedule: lr %g must be > 0", s->lr);
    if (s->kind == TP_LR_WARMUP_COSINE &&
        (!(s->min_lr >= 0 && s->min_lr <= s->lr) || s->warmup < 0 || s->total_steps < s->warmup))
        return tp_errf(err, TP_EINVAL,
                       "lr schedule: need 0 <= min_lr (%g) <= lr (%g) and 0 <= warmup (%lld) <= "
                       "total_steps (%lld)",
                       s->min_lr, s->lr, (long long)s->warmup, (long long)s->total_steps);
    return TP_OK;
}

double tp_lr_at(const tp_lr_schedule *s, int64_t step) {
    if (!s) return 0;
    if (s->kind == TP_LR_CONSTANT) return s->lr;
    if (step < s->warmup) return s->lr * (double)step / (double)s->warmup;
    int64_t decay = s->total_steps - s->warmup;
    double progress = decay > 0 ? (double)(step - s->warmup) / (double)decay : 1.0;
    if (progress > 1) progress = 1;
    if (progress < 0) progress = 0;
    return s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(3.141592653589793 * progress));
}

tp_status tp_ema_update(tp_tensor *const *ema, tp_tensor *const *params, int n, float decay,
                        tp_err *err) {
    if (!(decay >= 0 && decay <= 1))
        return tp_errf(err, TP_EINVAL, "ema: decay %g outside [0,1]", decay);
    for (int i = 0; i < n; i++) {
        tp_tensor *e = ema[i], *p = params[i];
        if (!e || !p || e->dtype != TP_F32 || p->dtype != TP_F32 || e->device != TP_CPU ||
            p->device != TP_CPU || !tp_is_contiguous(e) || !tp_is_contiguous(p) ||
            tp_numel(e) != tp_numel(p))
            return tp_errf(err, TP_ESHAPE,
                           "ema: tensor %d ('%s') must match its param ('%s') as contiguous CPU "
                           "f32 of the same size",
                           i, e ? e->name : "(null)", p ? p->name : "(null)");
    }
    for (int i = 0; i < n; i++) {
        float *e = ema[i]->data;
        const float *p = params[i]->data;
        for (int64_t k = 0, m = tp_numel(params[i]); k < m; k++)
            e[k] = decay * e[k] + (1.0f - decay) * p[k];
    }
    return TP_OK;
}
