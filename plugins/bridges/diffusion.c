/* diffusion.c — the diffusion bridge of the study's GSM8K phases 12-14 and the exp003 iterative
 * refiner (STUDY.md "Bridges: Diffusion").
 *
 * What it adds: a bridge named "diffusion": a DiT (diffusion transformer) that generates the M
 * soft tokens from noise, conditioned on the sender's layer-l states h [B,T,d_s] (key mask
 * [B,T]). All vectors of the flow live in the RMS-normalised receiver embedding space: noise is
 * N(0,1) per coordinate (RMS ~1), targets are RMS-normalised per token (RMS 1); the soft tokens
 * are RMSNorm(x) * alpha like every bridge's, so the flow never has to learn the receiver's tiny
 * embedding scale (Mistral rows have RMS 0.0027).
 *
 * The network v(x, t | h), width W, `depth` blocks, `heads` heads:
 *   kv   = h Ws^T + bs                               sender states at width W   [B,T,W]
 *   cond = MLP_t(sinusoid(1000 t)) + Wp mean_mask(kv) + bp     (timestep + pooled source) [B,W]
 *          MLP_t = Linear(256->W), SiLU, Linear(W->W) on DiT's 256-dim [cos | sin] embedding
 *   y    = x Wx^T + bx + pos                         x [B,M,d_r] -> [B,M,W], pos learned [M,W]
 *   per block (adaLN-Zero, DiT; cross-attention as in PixArt-alpha):
 *     (s1, g1, a1, s2, g2, a2) = Linear(SiLU(cond))  six [B,1,W] chunks: shift, scale, gate
 *     y += a1 * SelfAttn(LN(y) * (1 + g1) + s1)
 *     y += CrossAttn(LNc(y), kv)                     latents -> sender states, padded keys masked
 *     y += a2 * FFN(LN(y) * (1 + g2) + s2)     FFN: Linear(W->ffn_mult W), GELU (tanh), Linear
 *   (s, g) = Linear(SiLU(cond)); v = (LN(y) * (1 + g) + s) Wo^T + bo        [B,M,d_r]
 * LN is LayerNorm without affine (eps 1e-6), LNc with affine (eps 1e-5). Attentions are
 * nn.MultiheadAttention-style (q/k/v/out projections with biases, scale 1/sqrt(W/heads)).
 * Init (DiT): Linear weights xavier-uniform, biases 0; MLP_t weights N(0, 0.02^2); pos N(0,
 * 0.02^2); every adaLN modulation and the final output layer zero (so v = 0 and every block is
 * the identity at the start); each parameter from its own Philox stream of dims->seed.
 *
 * mode = flow (default; phases 12-14): rectified flow towards the receiver embeddings of the
 *   run's target text (answer or question — a run setting; the host passes them with
 *   set_target before every training forward, flag TP_BRIDGE_NEEDS_TARGET, see bridge.h).
 *   Training: the target rows e [B,L,d_r] are resampled to M vectors by linear interpolation
 *   with aligned ends over each row's valid positions (F.interpolate(mode="linear",
 *   align_corners=True)) and RMS-normalised per token: x1 [B,M,d_r]. Then per example
 *   t ~ U(0,1) (t_dist = uniform) or sigmoid(N(0,1)) (t_dist = logit_normal, SD3), noise
 *   x0 ~ N(0,1), x_t = t x1 + (1 - t) x0, v = v(x_t, t | h), and the forward returns
 *     aux "flow_pred" = v, aux "flow_target" = x1 - x0   (for loss 'flow_match': MSE(v, x1-x0))
 *     soft = the eval sampler's output (below) from fresh training noise
 *   The training soft tokens never contain the target: a one-step estimate x_t + (1 - t) v
 *   would hand the receiver t x1, the answer itself, and a task loss would learn to read it
 *   (the study's phase-10 teacher-forcing shortcut). With train_soft = sample (default) the
 *   Euler chain keeps its tape, so a task loss (phase 14's hybrid) trains the sampler end to
 *   end; train_soft = detached builds it without the tape (no task-loss gradient, less
 *   memory) for flow-only runs.
 *   Eval: Euler from noise, `steps` steps: x <- x + v(x, k/steps | h) / steps, k = 0..steps-1;
 *   soft = RMSNorm(x) * alpha.
 * mode = refiner (exp003, SST-2 85.5%): the same network run as the same `steps`-step Euler
 *   chain from noise in training too, with the tape through every step, so the task loss
 *   trains it end to end (no target, no flow loss).
 * Noise: training draws (t and x0) from a Philox stream of the run seed that advances with each
 *   training forward; every eval forward restarts one fixed stream of `sample_seed` (-1: the
 *   run seed), so sampling is a pure function of (weights, inputs, seed): deterministic.
 * EMA (ema = auto: on for flow, off for refiner, as the study ran them; on | off force it):
 *   the bridge keeps an f32 copy of every parameter. At each training forward, before using
 *   the weights, ema = decay * ema + (1 - decay) * weights (the first one copies), so after n
 *   training steps the EMA has seen the weights of the n forwards, i.e. all but the very last
 *   optimiser update. Eval forwards use the EMA weights once it exists (before any training
 *   forward, the live weights). The EMA lives in the bridge state, not in tp_params (it is not
 *   trained); it goes into checkpoints as the bridge's state (bridge.h, ABI 1.2) together with
 *   the training noise RNG's position, so a resumed run continues bit-identically.
 *   With decay 0.999 the initial weights still weigh 0.999^n after n steps (0.74 at 300,
 *   0.14 at 2,000): short runs evaluate nearly untrained weights; use ema = off or a smaller
 *   ema_decay for them (on toy, 300 steps: 0.92 with ema = off, chance with 0.999).
 * Metrics: "alpha"; in flow training also "t_mean" (mean sampled t of the batch).
 *
 * Version history: 1 — first version. 2 — flow training's soft tokens are the Euler sample
 * (version 1 returned the one-step estimate x_t + (1 - t) v, which leaks the target); option
 * train_soft. (Checkpointed state came later within 2: it changes only what a resumed run
 * computes, which now equals the uninterrupted run.) */
#define TP_PLUGIN
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#include "bridge_util.h"
#include "bridge_state.h"
#include "resampler.h"

#define API             tp_plugin_api_
#define DF_NAME         "diffusion"
#define DF_MAX_DEPTH    8   /* 16 + 24 per block parameters: 208 at most, under TP_MAX_PARAMS */
#define DF_TFREQ        256 /* DiT's timestep frequency embedding size */
#define DF_LN_EPS       1e-6f
#define DF_LNC_EPS      1e-5f
#define DF_RMS_EPS      1e-6f
#define DF_STREAM_BASE  0x6469666600000000ull /* "diff" */
#define DF_STREAM_TRAIN (DF_STREAM_BASE - 1)
#define DF_STREAM_EVAL  (DF_STREAM_BASE - 2)
#define DF_STATE_MAGIC  0x53464944u /* "DIFS" */

static const tp_option_spec df_options[] = {
    {"mode", TP_OPT_ENUM, "flow", 1, 0, "flow|refiner",
     "flow: rectified flow to the target embeddings; refiner: Euler chain trained end to end"},
    {"tokens", TP_OPT_INT, "16", 1, 4096, NULL, "number of soft tokens M"},
    {"width", TP_OPT_INT, "512", 1, 65536, NULL, "DiT width W"},
    {"depth", TP_OPT_INT, "4", 1, DF_MAX_DEPTH, NULL, "number of DiT blocks"},
    {"heads", TP_OPT_INT, "8", 1, 256, NULL, "attention heads (must divide the width)"},
    {"ffn_mult", TP_OPT_INT, "4", 1, 16, NULL, "FFN hidden width = ffn_mult * W"},
    {"steps", TP_OPT_INT, "10", 1, 1000, NULL, "Euler steps (sampling; refiner chain length)"},
    {"train_soft", TP_OPT_ENUM, "sample", 1, 0, "sample|detached",
     "flow training's soft tokens: the Euler sample with its tape (a task loss trains the "
     "sampler) or without"},
    {"t_dist", TP_OPT_ENUM, "uniform", 1, 0, "uniform|logit_normal",
     "training time distribution: U(0,1) or sigmoid(N(0,1))"},
    {"ema", TP_OPT_ENUM, "auto", 1, 0, "auto|on|off",
     "EMA weights for eval: auto = on for flow, off for refiner"},
    {"ema_decay", TP_OPT_FLOAT, "0.999", 0, 0.999999, NULL, "EMA decay per training step"},
    {"sample_seed", TP_OPT_INT, "-1", -1, 2147483647, NULL,
     "seed of the eval noise; -1 = the run seed"},
    {"alpha_init", TP_OPT_FLOAT, "calibrated", 1, 0, "calibrated",
     "output scale: 'calibrated' (median receiver embedding row RMS) or a number"},
    {"alpha_learnable", TP_OPT_BOOL, "true", 1, 0, NULL, "train the output scale alpha"},
};

typedef struct df_block {
    tp_tensor *ada_w, *ada_b; /* [6W,W], [6W] */
    rs_attn self;
    tp_tensor *lnc_w, *lnc_b;
    rs_attn cross;
    rs_ffn ffn;
} df_block;

/* Every tensor of the network; only pointers, so it doubles as an array of slots (df_wset). */
typedef struct df_weights {
    tp_tensor *x_w, *x_b, *pos;
    tp_tensor *t1_w, *t1_b, *t2_w, *t2_b;
    tp_tensor *src_w, *src_b, *pool_w, *pool_b;
    df_block blk[DF_MAX_DEPTH];
    tp_tensor *fada_w, *fada_b, *out_w, *out_b;
    tp_tensor *alpha; /* NULL when fixed */
} df_weights;

#define DF_NSLOTS (sizeof(df_weights) / sizeof(tp_tensor *))
typedef union df_wset {
    df_weights w;
    tp_tensor *slot[DF_NSLOTS];
} df_wset;

typedef struct df_state {
    int refiner;
    int m, width, depth, heads, ffn, steps, d_s, d_r;
    int logit_normal;
    int detached_soft;
    int ema_on;
    float ema_decay;
    int ema_ready;
    int alpha_learnable;
    float alpha0;
    df_wset live, ema;
    tp_rng train_rng;
    uint64_t seed, sample_seed;
    tp_tensor *target, *target_mask; /* from set_target, for the next training forward */
} df_state;

/* ---- parameters ------------------------------------------------------------------------------ */

#define DF_P(dst, name, how, a, ...)                                                               \
    do {                                                                                           \
        (dst) = bu_param(in, ps, (name), TP_DIMS(__VA_ARGS__), (how), (a), err);                   \
        if (!(dst)) return bu_code(err);                                                           \
    } while (0)

static float xavier(int64_t fan_out, int64_t fan_in) {
    return sqrtf(6.0f / (float)(fan_in + fan_out));
}

static tp_status df_make_block(df_state *s, bu_init *in, tp_params *ps, int i, df_block *b,
                               tp_err *err) {
    int64_t w = s->width, f = (int64_t)s->ffn * s->width;
    char n[64], pre[32];
    snprintf(pre, sizeof pre, "blocks.%d", i);
#define DF_N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
    DF_P(b->ada_w, DF_N("adaln.weight"), BU_ZERO, 0, 6 * w, w);
    DF_P(b->ada_b, DF_N("adaln.bias"), BU_ZERO, 0, 6 * w);
    /* DiT's attention init: every projection xavier over its own [W,W] */
    TP_TRY(rs_make_attn_bounds(in, ps, DF_N("self"), w, xavier(w, w), xavier(w, w), &b->self, err));
    DF_P(b->lnc_w, DF_N("ln_cross.weight"), BU_VALUE, 1, w);
    DF_P(b->lnc_b, DF_N("ln_cross.bias"), BU_ZERO, 0, w);
    TP_TRY(
        rs_make_attn_bounds(in, ps, DF_N("cross"), w, xavier(w, w), xavier(w, w), &b->cross, err));
    DF_P(b->ffn.w1, DF_N("ffn.0.weight"), BU_UNIFORM, xavier(f, w), f, w);
    DF_P(b->ffn.b1, DF_N("ffn.0.bias"), BU_ZERO, 0, f);
    DF_P(b->ffn.w2, DF_N("ffn.2.weight"), BU_UNIFORM, xavier(w, f), w, f);
    DF_P(b->ffn.b2, DF_N("ffn.2.bias"), BU_ZERO, 0, w);
#undef DF_N
    return TP_OK;
}

/* All parameters, in a fixed order (the order fixes each one's init stream). */
static tp_status df_make_params(df_state *s, bu_init *in, tp_params *ps, tp_err *err) {
    df_weights *w = &s->live.w;
    int64_t W = s->width;
    DF_P(w->x_w, "x_in.weight", BU_UNIFORM, xavier(W, s->d_r), W, s->d_r);
    DF_P(w->x_b, "x_in.bias", BU_ZERO, 0, W);
    DF_P(w->pos, "pos", BU_NORMAL, 0.02f, s->m, W);
    DF_P(w->t1_w, "t_mlp.0.weight", BU_NORMAL, 0.02f, W, DF_TFREQ);
    DF_P(w->t1_b, "t_mlp.0.bias", BU_ZERO, 0, W);
    DF_P(w->t2_w, "t_mlp.2.weight", BU_NORMAL, 0.02f, W, W);
    DF_P(w->t2_b, "t_mlp.2.bias", BU_ZERO, 0, W);
    DF_P(w->src_w, "src_in.weight", BU_UNIFORM, xavier(W, s->d_s), W, s->d_s);
    DF_P(w->src_b, "src_in.bias", BU_ZERO, 0, W);
    DF_P(w->pool_w, "src_pool.weight", BU_UNIFORM, xavier(W, W), W, W);
    DF_P(w->pool_b, "src_pool.bias", BU_ZERO, 0, W);
    for (int i = 0; i < s->depth; i++) TP_TRY(df_make_block(s, in, ps, i, &w->blk[i], err));
    DF_P(w->fada_w, "final.adaln.weight", BU_ZERO, 0, 2 * W, W);
    DF_P(w->fada_b, "final.adaln.bias", BU_ZERO, 0, 2 * W);
    DF_P(w->out_w, "final.out.weight", BU_ZERO, 0, s->d_r, W);
    DF_P(w->out_b, "final.out.bias", BU_ZERO, 0, s->d_r);
    if (s->alpha_learnable) DF_P(w->alpha, "alpha", BU_VALUE, s->alpha0, 1);
    return TP_OK;
}
#undef DF_P

/* ---- create / destroy ------------------------------------------------------------------------ */

static void df_free_ema(df_state *s) {
    for (size_t i = 0; i < DF_NSLOTS; i++)
        if (s->ema.slot[i]) tp_tensor_free(s->ema.slot[i]);
    memset(&s->ema, 0, sizeof s->ema);
    s->ema_ready = 0;
}

/* Parameters belong to the host's tp_params (it frees them); the EMA copies are ours. */
static void df_destroy(void *state) {
    df_state *s = state;
    if (!s) return;
    df_free_ema(s);
    free(s);
}

static tp_status df_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    *state = NULL;
    TP_TRY(bu_dims_ok(DF_NAME, dims, err));
    df_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "diffusion: out of memory");
    tp_status st = TP_OK;
    const char *mode = API->opt_string(o, "mode");
    const char *td = API->opt_string(o, "t_dist");
    const char *ema = API->opt_string(o, "ema");
    const char *tsoft = API->opt_string(o, "train_soft");
    if (mode && !strcmp(mode, "flow")) {
        s->refiner = 0;
    } else if (mode && !strcmp(mode, "refiner")) {
        s->refiner = 1;
    } else {
        st = API->errf(err, TP_EINVAL, "diffusion: option mode = '%s': expected flow|refiner",
                       mode ? mode : "(null)");
        goto fail;
    }
    if (td && !strcmp(td, "uniform")) {
        s->logit_normal = 0;
    } else if (td && !strcmp(td, "logit_normal")) {
        s->logit_normal = 1;
    } else {
        st = API->errf(err, TP_EINVAL,
                       "diffusion: option t_dist = '%s': expected uniform|logit_normal",
                       td ? td : "(null)");
        goto fail;
    }
    if (tsoft && !strcmp(tsoft, "sample")) {
        s->detached_soft = 0;
    } else if (tsoft && !strcmp(tsoft, "detached")) {
        s->detached_soft = 1;
    } else {
        st = API->errf(err, TP_EINVAL,
                       "diffusion: option train_soft = '%s': expected sample|detached",
                       tsoft ? tsoft : "(null)");
        goto fail;
    }
    if (ema && !strcmp(ema, "auto")) {
        s->ema_on = !s->refiner;
    } else if (ema && !strcmp(ema, "on")) {
        s->ema_on = 1;
    } else if (ema && !strcmp(ema, "off")) {
        s->ema_on = 0;
    } else {
        st = API->errf(err, TP_EINVAL, "diffusion: option ema = '%s': expected auto|on|off",
                       ema ? ema : "(null)");
        goto fail;
    }
    s->m = (int)API->opt_int(o, "tokens");
    s->width = (int)API->opt_int(o, "width");
    s->depth = (int)API->opt_int(o, "depth");
    s->heads = (int)API->opt_int(o, "heads");
    s->ffn = (int)API->opt_int(o, "ffn_mult");
    s->steps = (int)API->opt_int(o, "steps");
    double decay = API->opt_float(o, "ema_decay");
    int64_t sseed = API->opt_int(o, "sample_seed");
    s->alpha_learnable = API->opt_bool(o, "alpha_learnable");
    s->d_s = dims->d_sender;
    s->d_r = dims->d_receiver;
    s->seed = dims->seed;
    s->sample_seed = sseed < 0 ? dims->seed : (uint64_t)sseed;
    if (s->m < 1 || s->width < 1 || s->steps < 1 || s->ffn < 1) {
        st = API->errf(err, TP_EINVAL,
                       "diffusion: options tokens = %d, width = %d, steps = %d, ffn_mult = %d: "
                       "each must be >= 1",
                       s->m, s->width, s->steps, s->ffn);
        goto fail;
    }
    if (s->depth < 1 || s->depth > DF_MAX_DEPTH) {
        st = API->errf(err, TP_EINVAL, "diffusion: option depth = %d: expected 1..%d", s->depth,
                       DF_MAX_DEPTH);
        goto fail;
    }
    if (s->heads < 1 || s->width % s->heads != 0) {
        st = API->errf(err, TP_EINVAL,
                       "diffusion: option heads = %d does not divide the width %d; pick heads "
                       "that divide it",
                       s->heads, s->width);
        goto fail;
    }
    if (!(decay >= 0 && decay < 1)) {
        st = API->errf(err, TP_EINVAL, "diffusion: option ema_decay = %g: expected 0 <= d < 1",
                       decay);
        goto fail;
    }
    s->ema_decay = (float)decay;
    if ((st = bu_alpha_parse(DF_NAME, o, dims, &s->alpha0, err)) != TP_OK) goto fail;
    s->train_rng = (tp_rng){s->seed, DF_STREAM_TRAIN, 0};
    bu_init in = {DF_NAME, s->seed, DF_STREAM_BASE, 0};
    if ((st = df_make_params(s, &in, ps, err)) != TP_OK) goto fail;
    *state = s;
    return TP_OK;
fail:
    free(s);
    return st;
}

static int df_num_tokens(void *state) {
    return ((df_state *)state)->m;
}

static uint32_t df_flags(void *state) {
    return ((df_state *)state)->refiner ? 0u : (uint32_t)TP_BRIDGE_NEEDS_TARGET;
}

static tp_status df_set_target(void *state, tp_tensor *target, tp_tensor *mask, tp_err *err) {
    df_state *s = state;
    if (!target) return API->errf(err, TP_EINVAL, "diffusion: set_target: no target tensor");
    if (target->ndim != 3 || target->shape[2] != s->d_r || target->shape[1] < 1)
        return API->errf(err, TP_ESHAPE,
                         "diffusion: set_target: target must be [B,L>=1,%d] (receiver "
                         "embeddings); got %d dims",
                         s->d_r, target->ndim);
    if (mask && (mask->ndim != 2 || mask->shape[0] != target->shape[0] ||
                 mask->shape[1] != target->shape[1]))
        return API->errf(err, TP_ESHAPE, "diffusion: set_target: mask must be [%lld,%lld]",
                         (long long)target->shape[0], (long long)target->shape[1]);
    if (mask && mask->dtype != TP_F32)
        return API->errf(err, TP_EDTYPE, "diffusion: set_target: mask must be f32 (1 = token)");
    s->target = target;
    s->target_mask = mask;
    return TP_OK;
}

/* ---- EMA ------------------------------------------------------------------------------------- */

/* ema = decay * ema + (1 - decay) * live for every parameter; the first call copies. */
static tp_status df_ema_update(df_state *s, tp_ctx *c, tp_err *err) {
    for (size_t i = 0; i < DF_NSLOTS; i++) {
        tp_tensor *p = s->live.slot[i];
        if (!p) continue;
        tp_tensor *e = s->ema.slot[i];
        if (!s->ema_ready) {
            e = tp_tensor_alloc(TP_F32, p->device, p->ndim, p->shape, err);
            if (!e) return err->code ? err->code : TP_ENOMEM;
            snprintf(e->name, sizeof e->name, "ema.%.58s", p->name);
            s->ema.slot[i] = e;
            TP_TRY(tp_copy_into(e, p, err));
            continue;
        }
        float d = s->ema_decay;
        if (p->device == TP_CPU && p->dtype == TP_F32 && tp_is_contiguous(p) &&
            tp_is_contiguous(e)) {
            float *ed = e->data;
            const float *pd = p->data;
            int64_t n = tp_numel(p);
            for (int64_t k = 0; k < n; k++) ed[k] = d * ed[k] + (1.0f - d) * pd[k];
            continue;
        }
        /* other devices: the same update as ops (no tape: these are not trained tensors) */
        int prev = tp_set_grad_enabled(c, 0);
        tp_tensor *u = tp_add(c, tp_scale(c, e, d), tp_scale(c, p, 1.0f - d));
        tp_set_grad_enabled(c, prev);
        if (!u)
            return API->errf(err, tp_ctx_status(c) ? tp_ctx_status(c) : TP_EINVAL,
                             "diffusion: EMA update: %s", tp_ctx_error(c));
        TP_TRY(tp_copy_into(e, u, err));
    }
    s->ema_ready = 1;
    return TP_OK;
}

/* ---- the network ----------------------------------------------------------------------------- */

/* Chunk i of width W of a modulation [B,1,n*W]. */
static tp_tensor *df_chunk(const df_state *s, tp_ctx *c, tp_tensor *mod, int i) {
    return tp_slice(c, mod, 2, (int64_t)i * s->width, s->width);
}

/* LN(x) * (1 + scale) + shift, scale/shift [B,1,W] broadcast over the tokens. */
static tp_tensor *df_modulate(tp_ctx *c, tp_tensor *x, tp_tensor *shift, tp_tensor *scale) {
    tp_tensor *xn = tp_layernorm(c, x, NULL, NULL, DF_LN_EPS);
    return tp_add(c, tp_mul(c, xn, tp_add_scalar(c, scale, 1.0f)), shift);
}

/* DiT's timestep embedding [B,256] = [cos(1000 t f_i) | sin(1000 t f_i)], f_i = 10000^(-i/128). */
static tp_tensor *df_temb(tp_ctx *c, const float *t, int64_t b, float *e) {
    const int half = DF_TFREQ / 2;
    for (int64_t r = 0; r < b; r++)
        for (int i = 0; i < half; i++) {
            double f = exp(-log(10000.0) * (double)i / (double)half);
            double arg = 1000.0 * (double)t[r] * f;
            e[r * DF_TFREQ + i] = (float)cos(arg);
            e[r * DF_TFREQ + half + i] = (float)sin(arg);
        }
    return tp_from_f32(c, TP_DIMS(b, DF_TFREQ), e);
}

/* What every network call of one forward shares: the sender states at width W and the pooled
 * source term of the condition. */
typedef struct df_src {
    tp_tensor *kv;    /* [B,T,W] */
    tp_tensor *mask;  /* [B,T] or NULL */
    tp_tensor *cpool; /* [B,W] */
} df_src;

static df_src df_source(const df_state *s, tp_ctx *c, const df_weights *w, tp_tensor *h,
                        tp_tensor *mask) {
    df_src src = {0};
    src.kv = tp_linear(c, bu_f32(c, h), w->src_w, w->src_b);
    src.mask = mask;
    src.cpool = tp_linear(c, tp_pool(c, src.kv, mask, TP_POOL_MEAN), w->pool_w, w->pool_b);
    (void)s;
    return src;
}

/* v(x, t | source): x [B,M,d_r], t [B] on the host -> [B,M,d_r]; ebuf: B*256 floats of
 * scratch for the timestep embedding. */
static tp_tensor *df_net(const df_state *s, tp_ctx *c, const df_weights *w, const df_src *src,
                         tp_tensor *x, const float *t, float *ebuf) {
    if (!x || !src->kv || !src->cpool) return NULL;
    int64_t b = x->shape[0];
    tp_tensor *te = df_temb(c, t, b, ebuf);
    tp_tensor *cond =
        tp_linear(c, tp_silu(c, tp_linear(c, te, w->t1_w, w->t1_b)), w->t2_w, w->t2_b);
    cond = tp_add(c, cond, src->cpool);
    tp_tensor *sc = tp_reshape(c, tp_silu(c, cond), TP_DIMS(b, 1, s->width)); /* [B,1,W] */
    tp_tensor *y = tp_add(c, tp_linear(c, x, w->x_w, w->x_b), w->pos);        /* [B,M,W] */
    for (int i = 0; i < s->depth; i++) {
        const df_block *bl = &w->blk[i];
        tp_tensor *mod = tp_linear(c, sc, bl->ada_w, bl->ada_b); /* [B,1,6W] */
        tp_tensor *h1 = df_modulate(c, y, df_chunk(s, c, mod, 0), df_chunk(s, c, mod, 1));
        y = tp_add(c, y,
                   tp_mul(c, rs_mha(c, &bl->self, s->width, s->heads, h1, h1, NULL),
                          df_chunk(s, c, mod, 2)));
        tp_tensor *hc = tp_layernorm(c, y, bl->lnc_w, bl->lnc_b, DF_LNC_EPS);
        y = tp_add(c, y, rs_mha(c, &bl->cross, s->width, s->heads, hc, src->kv, src->mask));
        tp_tensor *h2 = df_modulate(c, y, df_chunk(s, c, mod, 3), df_chunk(s, c, mod, 4));
        tp_tensor *f = rs_ffn_forward(c, &bl->ffn, h2, TP_GELU_TANH);
        y = tp_add(c, y, tp_mul(c, f, df_chunk(s, c, mod, 5)));
    }
    tp_tensor *fm = tp_linear(c, sc, w->fada_w, w->fada_b); /* [B,1,2W] */
    y = df_modulate(c, y, df_chunk(s, c, fm, 0), df_chunk(s, c, fm, 1));
    return tp_linear(c, y, w->out_w, w->out_b);
}

/* The Euler chain from x0 over `steps` steps (t_k = k/steps). */
static tp_tensor *df_euler(const df_state *s, tp_ctx *c, const df_weights *w, const df_src *src,
                           tp_tensor *x, float *tbuf, float *ebuf) {
    int64_t b = x ? x->shape[0] : 0;
    float dt = 1.0f / (float)s->steps;
    for (int k = 0; k < s->steps && x; k++) {
        for (int64_t r = 0; r < b; r++) tbuf[r] = (float)k * dt;
        x = tp_add(c, x, tp_scale(c, df_net(s, c, w, src, x, tbuf, ebuf), dt));
    }
    return x;
}

/* Interpolation weights [B,M,L] resampling each target row's valid positions to M (aligned
 * ends); NULL with err set when a row is empty. */
static tp_tensor *df_resample_weights(const df_state *s, tp_ctx *c, tp_tensor *mask, int64_t b,
                                      int64_t l, tp_err *err) {
    int64_t m = s->m;
    float *mk = malloc((size_t)(b * l) * sizeof *mk);
    float *w = calloc((size_t)(b * m * l), sizeof *w);
    int64_t *idx = malloc((size_t)l * sizeof *idx);
    tp_tensor *out = NULL;
    if (!mk || !w || !idx) {
        API->errf(err, TP_ENOMEM, "diffusion: out of memory");
        goto done;
    }
    if (mask) {
        if (tp_to_f32_buffer(mask, mk, err) != TP_OK) goto done;
    } else {
        for (int64_t i = 0; i < b * l; i++) mk[i] = 1.0f;
    }
    for (int64_t r = 0; r < b; r++) {
        int64_t n = 0;
        for (int64_t t = 0; t < l; t++)
            if (mk[r * l + t] != 0.0f) idx[n++] = t;
        if (n == 0) {
            API->errf(err, TP_EINVAL,
                      "diffusion: target row %lld has no token (mask all 0): nothing to flow "
                      "towards; check the run's target text for empty answers/questions",
                      (long long)r);
            goto done;
        }
        for (int64_t j = 0; j < m; j++) {
            double u =
                m == 1 ? 0.5 * (double)(n - 1) : (double)j * (double)(n - 1) / (double)(m - 1);
            int64_t lo = (int64_t)floor(u);
            if (lo > n - 1) lo = n - 1;
            int64_t hi = lo + 1 < n ? lo + 1 : n - 1;
            double f = u - (double)lo;
            w[(r * m + j) * l + idx[lo]] += (float)(1.0 - f);
            w[(r * m + j) * l + idx[hi]] += (float)f;
        }
    }
    out = tp_from_f32(c, TP_DIMS(b, m, l), w);
    if (!out)
        API->errf(err, tp_ctx_status(c) ? tp_ctx_status(c) : TP_ENOMEM, "diffusion: %s",
                  tp_ctx_error(c));
done:
    free(mk);
    free(w);
    free(idx);
    return out;
}

/* The resampled, RMS-normalised target x1 [B,M,d_r] (no grad). */
static tp_tensor *df_target(df_state *s, tp_ctx *c, int64_t b, tp_err *err) {
    tp_tensor *tg = s->target;
    if (tg->shape[0] != b) {
        API->errf(err, TP_ESHAPE,
                  "diffusion: the target has %lld rows but the sender batch has %lld",
                  (long long)tg->shape[0], (long long)b);
        return NULL;
    }
    tp_tensor *rw = df_resample_weights(s, c, s->target_mask, b, tg->shape[1], err);
    if (!rw) return NULL;
    tp_tensor *tf = tg->dtype == TP_F32 ? tg : tp_cast(c, tg, TP_F32);
    return tp_detach(c, tp_rmsnorm(c, tp_matmul(c, rw, tf, 0, 0), NULL, DF_RMS_EPS));
}

/* n values of t for the batch, from the training stream: U(0,1) = Phi(z) or sigmoid(z). */
static tp_status df_sample_t(df_state *s, tp_ctx *c, float *t, int64_t b, tp_err *err) {
    tp_tensor *z = tp_randn(c, TP_DIMS(b), 1.0f, &s->train_rng);
    if (!z)
        return API->errf(err, tp_ctx_status(c) ? tp_ctx_status(c) : TP_ENOMEM, "diffusion: %s",
                         tp_ctx_error(c));
    for (int64_t r = 0; r < b; r++) {
        double zv = tp_item(z, r);
        t[r] = (float)(s->logit_normal ? 1.0 / (1.0 + exp(-zv)) : 0.5 * erfc(-zv / sqrt(2.0)));
    }
    return TP_OK;
}

static tp_status df_forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                            tp_bridge_out *out, tp_err *err) {
    df_state *s = state;
    memset(out, 0, sizeof *out);
    tp_tensor *target = s->target;
    s->target = NULL; /* step-scoped: never reused by a later forward */
    TP_TRY(bu_check_input(DF_NAME, s->d_s, h, mask, err));
    int64_t b = h->shape[0];
    int flow_train = training && !s->refiner;
    if (flow_train && !target)
        return API->errf(err, TP_EINVAL,
                         "diffusion: mode = flow trains towards the receiver embeddings of the "
                         "run's target text, but the host gave none before this training forward "
                         "(set_target); set the run's target text (answer|question) or use "
                         "mode = refiner");
    if (training && s->ema_on) TP_TRY(df_ema_update(s, c, err));
    const df_weights *w = (!training && s->ema_on && s->ema_ready) ? &s->ema.w : &s->live.w;

    /* host scratch: t per example, then its 256-dim embedding */
    float *tbuf = malloc((size_t)b * (1 + DF_TFREQ) * sizeof *tbuf);
    if (!tbuf) return API->errf(err, TP_ENOMEM, "diffusion: out of memory");
    float *ebuf = tbuf + b;
    tp_status st = TP_OK;
    df_src src = df_source(s, c, w, h, mask);
    tp_tensor *x = NULL;
    double t_mean = 0;
    if (flow_train) {
        s->target = target;
        tp_tensor *x1 = df_target(s, c, b, err);
        s->target = NULL;
        if (!x1) {
            st = err->code ? err->code : TP_EINVAL;
            goto done;
        }
        if ((st = df_sample_t(s, c, tbuf, b, err)) != TP_OK) goto done;
        for (int64_t r = 0; r < b; r++) t_mean += tbuf[r] / (double)b;
        tp_tensor *x0 = tp_randn(c, TP_DIMS(b, s->m, s->d_r), 1.0f, &s->train_rng);
        tp_tensor *tt = tp_from_f32(c, TP_DIMS(b, 1, 1), tbuf);
        /* x_t = t x1 + (1 - t) x0 = x0 + t (x1 - x0) */
        tp_tensor *vt = tp_sub(c, x1, x0);
        tp_tensor *xt = tp_add(c, x0, tp_mul(c, vt, tt));
        tp_tensor *v = df_net(s, c, w, &src, xt, tbuf, ebuf);
        out->n_aux = 2;
        out->aux_name[0] = "flow_pred";
        out->aux[0] = v;
        out->aux_name[1] = "flow_target";
        out->aux[1] = tp_detach(c, vt);
    }
    /* the soft tokens: the Euler sampler from noise, conditioned on the sender only (eval,
     * refiner training, flow training — never x_t, which holds the target) */
    {
        tp_rng eval_rng = {s->sample_seed, DF_STREAM_EVAL, 0};
        tp_rng *rng = training ? &s->train_rng : &eval_rng;
        tp_tensor *x0 = tp_randn(c, TP_DIMS(b, s->m, s->d_r), 1.0f, rng);
        int detach = flow_train && s->detached_soft;
        int prev = detach ? tp_set_grad_enabled(c, 0) : 0;
        x = df_euler(s, c, w, &src, x0, tbuf, ebuf);
        if (detach) tp_set_grad_enabled(c, prev);
    }
    tp_tensor *alpha = w->alpha ? w->alpha : tp_full(c, TP_F32, TP_DIMS(1), s->alpha0);
    tp_tensor *soft = tp_mul(c, tp_rmsnorm(c, x, NULL, DF_RMS_EPS), alpha);
    if (!soft || (out->n_aux && (!out->aux[0] || !out->aux[1]))) {
        st = tp_ctx_status(c);
        st = API->errf(err, st ? st : TP_EINVAL, "diffusion: forward failed: %s", tp_ctx_error(c));
        memset(out, 0, sizeof *out);
        goto done;
    }
    out->soft = soft;
    out->metric_name[0] = "alpha";
    out->metric[0] = w->alpha ? tp_item(w->alpha, 0) : s->alpha0;
    out->n_metrics = 1;
    if (flow_train) {
        out->metric_name[1] = "t_mean";
        out->metric[1] = t_mean;
        out->n_metrics = 2;
    }
done:
    free(tbuf);
    return st;
}

/* ---- checkpointed state ----------------------------------------------------------------------
 * The training noise RNG's position, whether the EMA exists yet, and (ema on) the EMA weights,
 * one f32 block per parameter in slot order — zeros before the first training forward. The EMA
 * is state rather than registered parameters: everything in tp_params is trained by the
 * optimiser (and clipped, decayed), which the EMA must not be. */

static size_t df_ema_floats(const df_state *s) {
    size_t n = 0;
    for (size_t i = 0; i < DF_NSLOTS; i++)
        if (s->live.slot[i]) n += (size_t)tp_numel(s->live.slot[i]);
    return n;
}

static size_t df_state_size(void *state) {
    df_state *s = state;
    return BS_HEADER + BS_RNG + 8u + (s->ema_on ? 4u * df_ema_floats(s) : 0u);
}

static tp_status df_save_state(void *state, void *buf, size_t n, tp_err *err) {
    df_state *s = state;
    bs_cur c = bs_begin_write(buf, n, DF_STATE_MAGIC, 1);
    bs_put_rng(&c, &s->train_rng);
    bs_put_u64(&c, (uint64_t)s->ema_ready);
    for (size_t i = 0; s->ema_on && i < DF_NSLOTS; i++) {
        tp_tensor *p = s->live.slot[i];
        if (!p) continue;
        size_t k = 4u * (size_t)tp_numel(p);
        if (c.off + k > c.n) break; /* bs_end_write reports it */
        if (!s->ema_ready) {
            memset(c.w + c.off, 0, k);
        } else {
            /* the EMA may live on the GPU: a host f32 copy, as the checkpoint does for params */
            float *tmp = malloc(k ? k : 1);
            if (!tmp) return API->errf(err, TP_ENOMEM, "diffusion: out of memory");
            tp_status st = tp_to_f32_buffer(s->ema.slot[i], tmp, err);
            if (st == TP_OK) memcpy(c.w + c.off, tmp, k);
            free(tmp);
            TP_TRY(st);
        }
        c.off += k;
    }
    return bs_end_write(&c, DF_NAME, err);
}

/* One EMA slot from k bytes of host f32 values. */
static tp_status df_ema_fill(df_state *s, size_t i, const unsigned char *src, size_t k,
                             tp_err *err) {
    tp_tensor *p = s->live.slot[i], *e = s->ema.slot[i];
    if (!e) {
        e = tp_tensor_alloc(TP_F32, p->device, p->ndim, p->shape, err);
        if (!e) return err->code ? err->code : TP_ENOMEM;
        snprintf(e->name, sizeof e->name, "ema.%.58s", p->name);
        s->ema.slot[i] = e;
    }
    if (e->device == TP_CPU && tp_is_contiguous(e)) {
        memcpy(e->data, src, k);
        return TP_OK;
    }
    tp_tensor *h = tp_tensor_alloc(TP_F32, TP_CPU, p->ndim, p->shape, err);
    if (!h) return err->code ? err->code : TP_ENOMEM;
    memcpy(h->data, src, k);
    tp_status st = tp_copy_into(e, h, err);
    tp_tensor_free(h);
    return st;
}

static tp_status df_load_state(void *state, const void *buf, size_t n, tp_err *err) {
    df_state *s = state;
    bs_cur c;
    tp_rng rng;
    uint64_t ready;
    TP_TRY(bs_begin_read(&c, buf, n, DF_STATE_MAGIC, 1, DF_NAME, err));
    TP_TRY(bs_get_rng(&c, &s->train_rng, &rng, DF_NAME, "training noise", err));
    if (!bs_get(&c, &ready, sizeof ready) || ready > 1)
        return API->errf(err, TP_EFORMAT, "diffusion: state's EMA flag is missing or not 0/1");
    size_t need = s->ema_on ? 4u * df_ema_floats(s) : 0u;
    if (c.n - c.off != need)
        return API->errf(err, TP_EFORMAT,
                         "diffusion: state holds %zu bytes of EMA weights; ema = %s with these "
                         "options needs %zu",
                         c.n - c.off, s->ema_on ? "on" : "off", need);
    if (ready && !s->ema_on)
        return API->errf(err, TP_EFORMAT, "diffusion: state has EMA weights but ema is off");
    /* everything checked: commit */
    s->train_rng = rng;
    if (!ready) {
        df_free_ema(s);
        return TP_OK;
    }
    for (size_t i = 0; i < DF_NSLOTS; i++) {
        if (!s->live.slot[i]) continue;
        size_t k = 4u * (size_t)tp_numel(s->live.slot[i]);
        TP_TRY(df_ema_fill(s, i, c.r + c.off, k, err));
        c.off += k;
    }
    s->ema_ready = 1;
    return bs_end_read(&c, DF_NAME, err);
}

static const tp_bridge_vtable df_vtable = {
    .size = sizeof(tp_bridge_vtable),
    .create = df_create,
    .forward = df_forward,
    .num_tokens = df_num_tokens,
    .destroy = df_destroy,
    .flags = df_flags,
    .set_target = df_set_target,
    .state_size = df_state_size,
    .save_state = df_save_state,
    .load_state = df_load_state,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = "diffusion";
    d->version = "2";
    d->summary = "DiT (adaLN + cross-attention) generating soft tokens: rectified flow to the "
                 "target embeddings, or the exp003 Euler refiner";
    d->options = df_options;
    d->n_options = (int)(sizeof df_options / sizeof df_options[0]);
    d->vtable = &df_vtable;
    d->vtable_size = sizeof df_vtable;
    (void)err;
    return TP_OK;
}
