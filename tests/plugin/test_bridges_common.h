/* test_bridges_common.h — the plugin-test harness shared by the bridge and loss tests
 * (tests/plugin/test_bridges_*.c, test_perceiver.c, test_flow_*.c, test_losses*.c): load a
 * plugin .so through the registry; for losses, an instance from "k=v" options and one compute +
 * backward; for bridges (and a loss beside one), instances from "k=v" option lists,
 * deterministic inputs, forward into host buffers, and a finite-difference gradient check of
 * every parameter of a tiny configuration. */
#ifndef TP_TEST_BRIDGES_COMMON_H
#define TP_TEST_BRIDGES_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/loader.h"
#include "plugin/options.h"
#include "telepathy/bridge.h"
#include "telepathy/loss.h"
#include "telepathy/tensor.h"
#include "tp_test.h"

typedef struct fixture {
    tp_registry *reg;
    const tp_plugin *plugin;
    const tp_bridge_vtable *vt;
    const tp_loss_vtable *fl; /* a loss loaded beside the bridge (fx_load_loss), or NULL */
} fixture;

/* Loads <TELEPATHY_PLUGIN_PATH>/<bridges|losses>/<name>.so into *reg (a new registry when
 * *reg is NULL) and finds it as kind. */
__attribute__((unused)) static tp_status plugin_load(tp_plugin_kind kind, const char *name,
                                                     tp_registry **reg, const tp_plugin **pl,
                                                     tp_err *err) {
    const char *dir = getenv("TELEPATHY_PLUGIN_PATH");
    if (!dir) return tp_errf(err, TP_EINVAL, "TELEPATHY_PLUGIN_PATH is not set (ctest sets it)");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s.so", dir, kind == TP_PLUGIN_LOSS ? "losses" : "bridges",
             name);
    if (!*reg) TP_TRY(tp_registry_new(reg, err));
    TP_TRY(tp_registry_load(*reg, path, err));
    return tp_registry_find(*reg, kind, name, pl, err);
}

__attribute__((unused)) static int fx_open(fixture *f, const char *name) {
    memset(f, 0, sizeof *f);
    tp_err err = {0};
    if (plugin_load(TP_PLUGIN_BRIDGE, name, &f->reg, &f->plugin, &err) != TP_OK) {
        TP_CHECKF(0, "loading bridge %s: %s", name, err.msg);
        tp_registry_free(f->reg);
        f->reg = NULL;
        return 0;
    }
    f->vt = f->plugin->desc.vtable;
    return 1;
}

__attribute__((unused)) static void fx_close(fixture *f) {
    tp_registry_free(f->reg);
}

/* Loads losses/<name>.so into the fixture's registry as f->fl (after fx_open). On failure the
 * fixture is closed. */
__attribute__((unused)) static int fx_load_loss(fixture *f, const char *name) {
    const tp_plugin *pl = NULL;
    tp_err err = {0};
    if (plugin_load(TP_PLUGIN_LOSS, name, &f->reg, &pl, &err) != TP_OK) {
        TP_CHECKF(0, "loading loss %s: %s", name, err.msg);
        fx_close(f);
        f->reg = NULL;
        return 0;
    }
    f->fl = pl->desc.vtable;
    return 1;
}

/* ---- losses ---------------------------------------------------------------------------------- */

typedef struct loss_fx {
    tp_registry *reg;
    const tp_plugin *plugin;
    const tp_loss_vtable *vt;
    tp_options *opts;
    tp_params ps;
    void *state;
} loss_fx;

/* Loads losses/<name>.so and creates one instance with the k=v options. */
__attribute__((unused)) static tp_status lfx_try(loss_fx *f, const char *name, const char *opts,
                                                 const tp_bridge_dims *dims, tp_err *err) {
    memset(f, 0, sizeof *f);
    TP_TRY(plugin_load(TP_PLUGIN_LOSS, name, &f->reg, &f->plugin, err));
    f->vt = f->plugin->desc.vtable;
    const tp_plugin_desc *d = &f->plugin->desc;
    TP_TRY(tp_options_new("loss", name, d->options, d->n_options, &f->opts, err));
    if (opts && *opts) TP_TRY(tp_options_set_list(f->opts, opts, err));
    return f->vt->create(f->opts, dims, &f->ps, &f->state, err);
}

__attribute__((unused)) static void lfx_close(loss_fx *f) {
    if (f->state && f->vt) f->vt->destroy(f->state);
    for (int i = 0; i < f->ps.n; i++) tp_tensor_free(f->ps.p[i]);
    tp_options_free(f->opts);
    tp_registry_free(f->reg);
    memset(f, 0, sizeof *f);
}

__attribute__((unused)) static int lfx_open(loss_fx *f, const char *name, const char *opts,
                                            const tp_bridge_dims *dims) {
    tp_err err = {0};
    tp_status st = lfx_try(f, name, opts, dims, &err);
    TP_CHECKF(st == TP_OK, "%s (%s): %s", name, opts, err.msg);
    if (st != TP_OK) lfx_close(f);
    return st == TP_OK;
}

__attribute__((unused)) static tp_tensor *lfx_param(loss_fx *f, const char *name) {
    for (int i = 0; i < f->ps.n; i++)
        if (!strcmp(f->ps.p[i]->name, name)) return f->ps.p[i];
    return NULL;
}

/* compute on in, then backward of the loss; returns 1 when both ran (the caller then reads the
 * gradients) with *v the loss value (NAN otherwise). With st_out, a failed compute is the
 * caller's to judge (status and error copied out); without, it fails the test (`what` names
 * it). */
__attribute__((unused)) static int lfx_run(loss_fx *f, tp_ctx *c, tp_loss_inputs *in,
                                           const char *what, tp_status *st_out, tp_err *err_out,
                                           double *v) {
    tp_tensor *loss = NULL;
    tp_err err = {0};
    *v = NAN;
    tp_status st = f->vt->compute(f->state, c, in, &loss, &err);
    if (st_out) {
        *st_out = st;
        *err_out = err;
    } else {
        TP_CHECKF(st == TP_OK && loss, "%s compute: %s", what, err.msg);
    }
    if (st != TP_OK || !loss) return 0;
    TP_CHECK(tp_numel(loss) == 1);
    *v = tp_item(loss, 0);
    TP_CHECK(tp_backward(c, loss, NULL) == TP_OK);
    return 1;
}

/* ---- bridges --------------------------------------------------------------------------------- */

typedef struct inst {
    tp_options *opts;
    tp_params params;
    void *state;
} inst;

__attribute__((unused)) static tp_status
inst_new(fixture *f, const char *opts, const tp_bridge_dims *dims, inst *in, tp_err *err) {
    memset(in, 0, sizeof *in);
    const tp_plugin_desc *d = &f->plugin->desc;
    TP_TRY(tp_options_new("bridge", d->name, d->options, d->n_options, &in->opts, err));
    if (opts && *opts) TP_TRY(tp_options_set_list(in->opts, opts, err));
    return f->vt->create(in->opts, dims, &in->params, &in->state, err);
}

__attribute__((unused)) static void inst_free(fixture *f, inst *in) {
    if (in->state) f->vt->destroy(in->state);
    for (int i = 0; i < in->params.n; i++) tp_tensor_free(in->params.p[i]);
    tp_options_free(in->opts);
    memset(in, 0, sizeof *in);
}

__attribute__((unused)) static tp_tensor *param_named(inst *in, const char *name) {
    for (int i = 0; i < in->params.n; i++)
        if (strcmp(in->params.p[i]->name, name) == 0) return in->params.p[i];
    return NULL;
}

__attribute__((unused)) static float lcg_unit(unsigned *seed) { /* [-1, 1) */
    *seed = *seed * 1664525u + 1013904223u;
    return 2.0f * (float)(*seed >> 8) / 16777216.0f - 1.0f;
}

/* Persistent f32 tensor with values in [-a, a). */
__attribute__((unused)) static tp_tensor *persist(int ndim, const int64_t *shape, float a,
                                                  unsigned *seed) {
    tp_err err = {0};
    tp_tensor *t = tp_tensor_alloc(TP_F32, TP_CPU, ndim, shape, &err);
    if (!t) return NULL;
    float *p = t->data;
    for (int64_t i = 0; i < tp_numel(t); i++) p[i] = a * lcg_unit(seed);
    return t;
}

/* Right-padded mask: row i has lens[i] real tokens. */
__attribute__((unused)) static tp_tensor *make_mask(int64_t b, int64_t t, const int *lens) {
    tp_err err = {0};
    tp_tensor *m = tp_tensor_alloc(TP_F32, TP_CPU, TP_DIMS(b, t), &err);
    if (!m) return NULL;
    float *p = m->data;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < t; j++) p[i * t + j] = j < lens[i] ? 1.0f : 0.0f;
    return m;
}

/* The aux output named name, or NULL. */
__attribute__((unused)) static tp_tensor *aux_named(const tp_bridge_out *o, const char *name) {
    for (int i = 0; i < o->n_aux; i++)
        if (!strcmp(o->aux_name[i], name)) return o->aux[i];
    return NULL;
}

__attribute__((unused)) static int metric_named(const tp_bridge_out *o, const char *name,
                                                double *v) {
    for (int i = 0; i < o->n_metrics; i++)
        if (!strcmp(o->metric_name[i], name)) {
            *v = o->metric[i];
            return 1;
        }
    return 0;
}

/* Forward (after a context reset); the output tensor (soft, or the aux `which` if non-NULL)
 * is copied into buf (cap floats). Returns numel or -1. */
__attribute__((unused)) static int64_t run_fwd(fixture *f, inst *in, tp_ctx *c, tp_tensor *h,
                                               tp_tensor *mask, int training, const char *which,
                                               float *buf, int64_t cap, tp_bridge_out *out_copy) {
    tp_ctx_reset(c);
    tp_bridge_out out;
    tp_err err = {0};
    if (f->vt->forward(in->state, c, h, mask, training, &out, &err) != TP_OK) {
        TP_CHECKF(0, "forward: %s", err.msg);
        return -1;
    }
    tp_tensor *t = which ? aux_named(&out, which) : out.soft;
    if (!t) {
        TP_CHECKF(0, "forward gave no %s", which ? which : "soft tokens");
        return -1;
    }
    int64_t n = tp_numel(t);
    if (n > cap || tp_to_f32_buffer(t, buf, &err) != TP_OK) return -1;
    if (out_copy) *out_copy = out;
    return n;
}

/* RMS of row r of a [rows, d] buffer. */
__attribute__((unused)) static double row_rms(const float *buf, int64_t r, int64_t d) {
    double ss = 0;
    for (int64_t k = 0; k < d; k++) ss += (double)buf[r * d + k] * buf[r * d + k];
    return sqrt(ss / (double)d);
}

#define GC_MAX_OUT 4096

/* loss = sum(out * R) in double, out = soft tokens or aux `which`. */
__attribute__((unused)) static double gc_loss(fixture *f, inst *in, tp_ctx *c, tp_tensor *h,
                                              tp_tensor *mask, const char *which, const float *r,
                                              int64_t n) {
    static float buf[GC_MAX_OUT];
    if (run_fwd(f, in, c, h, mask, 1, which, buf, GC_MAX_OUT, NULL) != n) return NAN;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)buf[i] * r[i];
    return s;
}

/* Every parameter's analytic gradient of sum(out * R) against a 4-point central difference,
 * after perturbing all parameters a little (so no weight sits at a symmetric init). Params
 * whose name contains one of `skip` (NULL-terminated) are left out. Returns the worst relative
 * error; fails the test above 2e-2 or on an all-zero gradient. */
__attribute__((unused)) static double grad_check(fixture *f, inst *in, tp_tensor *h,
                                                 tp_tensor *mask, const char *which,
                                                 const char *const *skip) {
    unsigned seed = 11;
    tp_ctx *c = tp_ctx_new(TP_CPU);
    static float r[GC_MAX_OUT];
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < in->params.n; i++) {
        float *p = in->params.p[i]->data;
        for (int64_t k = 0; k < tp_numel(in->params.p[i]); k++) p[k] += 0.05f * lcg_unit(&seed);
    }
    tp_ctx_reset(c);
    tp_bridge_out out;
    tp_err err = {0};
    tp_status st = f->vt->forward(in->state, c, h, mask, 1, &out, &err);
    TP_CHECKF(st == TP_OK, "forward: %s", err.msg);
    if (st != TP_OK) goto done;
    tp_tensor *o = which ? aux_named(&out, which) : out.soft;
    TP_CHECKF(o != NULL, "no output %s", which ? which : "soft");
    if (!o) goto done;
    int64_t m = tp_numel(o);
    TP_CHECK(m <= GC_MAX_OUT);
    if (m > GC_MAX_OUT) goto done;
    for (int64_t i = 0; i < m; i++) r[i] = lcg_unit(&seed);
    for (int i = 0; i < in->params.n; i++) tp_param_zero_grad(in->params.p[i]);
    tp_tensor *loss = tp_sum_all(c, tp_mul(c, o, tp_from_f32(c, o->ndim, o->shape, r)));
    TP_CHECKF(loss && tp_backward(c, loss, NULL) == TP_OK, "backward: %s", tp_ctx_error(c));
    if (!loss) goto done;
    for (int i = 0; i < in->params.n; i++) {
        tp_tensor *p = in->params.p[i];
        int skipped = 0;
        for (const char *const *s = skip; s && *s; s++)
            if (strstr(p->name, *s)) skipped = 1;
        if (skipped) continue;
        TP_CHECKF(p->grad != NULL, "param %s got no grad", p->name);
        if (!p->grad) continue;
        int64_t n = tp_numel(p);
        float *g = p->grad->data, *v = p->data;
        double ms = 0, num = 0, da = 0, db = 0;
        for (int64_t k = 0; k < n; k++) ms += (double)v[k] * v[k];
        const float hh = (float)fmin(1e-2, fmax(1e-3, 0.1 * sqrt(ms / (double)n)));
        for (int64_t k = 0; k < n; k++) {
            float keep = v[k];
            double l[4];
            const float off[4] = {2 * hh, hh, -hh, -2 * hh};
            for (int q = 0; q < 4; q++) {
                v[k] = keep + off[q];
                l[q] = gc_loss(f, in, c, h, mask, which, r, m);
            }
            v[k] = keep;
            double fd = (8 * (l[1] - l[2]) - (l[0] - l[3])) / (12.0 * (double)hh);
            num += (fd - g[k]) * (fd - g[k]);
            da += fd * fd;
            db += (double)g[k] * g[k];
        }
        double rel = sqrt(num) / (sqrt(da) + sqrt(db) + 1e-12);
        TP_CHECKF(sqrt(db) > 1e-7, "param %s has an all-zero gradient", p->name);
        TP_CHECKF(rel < 2e-2, "param %s: relative grad error %g (|g| %g, |fd| %g)", p->name, rel,
                  sqrt(db), sqrt(da));
        if (rel > worst) {
            worst = rel;
            worst_name = p->name;
        }
    }
    fprintf(stderr, "  %s%s%s: %d params, worst relative grad error %.3g (%s)\n",
            f->plugin->desc.name, which ? " " : "", which ? which : "", in->params.n, worst,
            worst_name);
done:
    tp_ctx_free(c);
    return worst;
}

/* sum(soft * r) in double from an eval forward's f32 soft tokens (n of them). */
__attribute__((unused)) static double fd_loss(fixture *f, inst *in, tp_ctx *c, tp_tensor *h,
                                              tp_tensor *mask, const float *r, int64_t n) {
    static float buf[GC_MAX_OUT];
    if (run_fwd(f, in, c, h, mask, 0, NULL, buf, GC_MAX_OUT, NULL) != n) return NAN;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)buf[i] * r[i];
    return s;
}

/* How fd_compare differentiates. */
typedef struct fd_opts {
    float step;              /* 0: 0.1 x the tensor's RMS, within [1e-3, 1e-2] */
    int max_entries;         /* about this many entries per tensor (evenly strided); 0 = all */
    const char *const *zero; /* names (substrings) whose gradient must be exactly 0 */
    const char *label;       /* the summary line's prefix, or NULL */
} fd_opts;

/* The gradients already in the parameters (of sum(soft * r) over m soft values) against a
 * 4-point central difference of fd_loss, for the attention bridges: a key bias must get a zero
 * gradient (softmax ignores a shift shared by every key), every other parameter a non-zero one
 * within 2e-2 relative error. Returns the worst relative error. */
__attribute__((unused)) static double fd_compare(fixture *f, inst *in, tp_ctx *c, tp_tensor *h,
                                                 tp_tensor *mask, const float *r, int64_t m,
                                                 const fd_opts *o) {
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < in->params.n; i++) {
        tp_tensor *p = in->params.p[i];
        int64_t n = tp_numel(p);
        int must_zero = 0;
        for (int z = 0; o->zero && o->zero[z]; z++)
            if (strstr(p->name, o->zero[z])) must_zero = 1;
        if (must_zero) {
            double gg = 0;
            for (int64_t k = 0; p->grad && k < n; k++)
                gg += (double)((float *)p->grad->data)[k] * ((float *)p->grad->data)[k];
            TP_CHECKF(sqrt(gg) == 0, "param %s should get no gradient (|g| %g)", p->name, sqrt(gg));
            continue;
        }
        TP_CHECKF(p->grad != NULL, "param %s got no grad", p->name);
        if (!p->grad) continue;
        float *g = p->grad->data, *v = p->data;
        float hh = o->step;
        if (hh == 0) {
            /* relative to the tensor's scale (latents are ~0.05 and feed a LayerNorm) */
            double ms = 0;
            for (int64_t k = 0; k < n; k++) ms += (double)v[k] * v[k];
            hh = (float)fmin(1e-2, fmax(1e-3, 0.1 * sqrt(ms / (double)n)));
        }
        int64_t stride = o->max_entries > 0 && n > o->max_entries ? n / o->max_entries : 1;
        double num = 0, den_a = 0, den_b = 0;
        for (int64_t k = 0; k < n; k += stride) {
            /* 4-point stencil: truncation O(h^4), so h can be large enough to keep the f32
             * rounding of the forward pass out of the difference */
            float keep = v[k];
            double l[4];
            const float off[4] = {2 * hh, hh, -hh, -2 * hh};
            for (int q = 0; q < 4; q++) {
                v[k] = keep + off[q];
                l[q] = fd_loss(f, in, c, h, mask, r, m);
            }
            v[k] = keep;
            double fd = (8 * (l[1] - l[2]) - (l[0] - l[3])) / (12.0 * (double)hh);
            num += (fd - g[k]) * (fd - g[k]);
            den_a += fd * fd;
            den_b += (double)g[k] * g[k];
        }
        double rel = sqrt(num) / (sqrt(den_a) + sqrt(den_b) + 1e-12);
        size_t nl = strlen(p->name);
        if (nl > 6 && strcmp(p->name + nl - 6, "k.bias") == 0) {
            TP_CHECKF(sqrt(den_b) < 1e-5,
                      "param %s should have a zero gradient: |g| %g (finite differences: %g, "
                      "f32 noise)",
                      p->name, sqrt(den_b), sqrt(den_a));
            continue;
        }
        TP_CHECKF(sqrt(den_b) > 1e-6, "param %s has an all-zero gradient", p->name);
        TP_CHECKF(rel < 2e-2, "param %s: relative grad error %g (|g| %g, |fd| %g)", p->name, rel,
                  sqrt(den_b), sqrt(den_a));
        if (rel > worst) {
            worst = rel;
            worst_name = p->name;
        }
    }
    fprintf(stderr, "  %s%s%d params, worst relative grad error %.3g (%s)\n",
            o->label ? o->label : "", o->label ? ": " : "", in->params.n, worst, worst_name);
    return worst;
}

/* create must fail and its message contain needle. */
__attribute__((unused)) static void expect_error(fixture *f, const char *opts,
                                                 const tp_bridge_dims *dims, const char *needle) {
    inst in;
    tp_err err = {0};
    tp_status st = inst_new(f, opts, dims, &in, &err);
    TP_CHECKF(st != TP_OK, "%s: '%s' was accepted", f->plugin->desc.name, opts);
    TP_CHECKF(strstr(err.msg, needle) != NULL, "%s: '%s': message '%s' lacks '%s'",
              f->plugin->desc.name, opts, err.msg, needle);
    inst_free(f, &in);
}

/* flags() of the bridge (0 when absent). */
__attribute__((unused)) static uint32_t bridge_flags(fixture *f, inst *in) {
    return TP_BRIDGE_HAS(f->vt, flags) ? f->vt->flags(in->state) : 0;
}

#endif
