/* tensor.h — the tensor core's public API: tensors, the step context (arena + autograd tape +
 * sticky error), and every op. Host code and plugins include the same header; a plugin compiled
 * with -DTP_PLUGIN calls the same names, which then go through the host's function table (the
 * SQLite loadable-extension pattern), so a plugin links against nothing of the host.
 *
 * Error model: ops return a tensor pointer, or NULL after recording an error in the context
 * (a sticky error, like errno). Any op given a NULL input returns NULL at once, so a forward pass
 * is written as straight-line code and checked once: `if (!y) return tp_ctx_status(ctx);`.
 * Functions that are not ops return tp_status and fill a tp_err.
 *
 * Gradient rule (written once, here): parameter grads accumulate (+=) across backward calls
 * until tp_param_zero_grad; activation grads are per-step buffers, zero-filled at first use and
 * then accumulated, so an activation read by several ops receives the sum. Frozen tensors (model
 * weights) never allocate a grad. tp_backward recycles an intermediate's grad as soon as its
 * producer's backward has run (grad reuse; TP_GRAD_REUSE=0 turns it off): afterwards only params
 * and tensors marked with tp_requires_grad (inputs, or intermediates you want to inspect) hold
 * grads; other intermediates read grad == NULL.
 *
 * Shape letters used in comments across the harness: B batch, T sequence, S key length,
 * H heads, Hkv KV heads, Dh head dim, D model width, V vocab, M soft tokens, K codebook size.
 */
#ifndef TELEPATHY_TENSOR_H
#define TELEPATHY_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_MAX_DIMS 4

typedef enum tp_dtype { TP_F32 = 0, TP_BF16 = 1, TP_F16 = 2, TP_I32 = 3, TP_DTYPE_COUNT } tp_dtype;
typedef enum tp_device { TP_CPU = 0, TP_CUDA = 1 } tp_device;

enum tp_tensor_flags {
    TP_FLAG_PARAM = 1u << 0,         /* trainable leaf: persistent grad, += rule */
    TP_FLAG_REQUIRES_GRAD = 1u << 1, /* param, or computed from one (or marked input) */
    TP_FLAG_OWNS_DATA = 1u << 2,     /* heap tensor that frees its data */
    TP_FLAG_ARENA = 1u << 3,         /* lives in a context arena (step-scoped) */
};

typedef struct tp_tensor tp_tensor;
struct tp_tensor {
    tp_dtype dtype;
    tp_device device;
    int ndim;
    int64_t shape[TP_MAX_DIMS];
    int64_t stride[TP_MAX_DIMS]; /* in elements; views may be non-contiguous */
    void *data;                  /* address of element [0,...,0] */
    tp_tensor *grad;             /* f32, contiguous, same shape; NULL until written */
    tp_tensor *base;             /* for views: tensor owning the storage, else NULL */
    uint32_t flags;
    int32_t node; /* index of the tape node that produced it, -1 for leaves */
    char name[64];
};

/* Shape helper: tp_new(ctx, TP_F32, TP_DIMS(B, T, D)) */
#define TP_DIMS(...)                                                                               \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) {                 \
        __VA_ARGS__                                                                                \
    }

typedef struct tp_ctx tp_ctx;

/* RoPE configuration (HF semantics: rotate_half, inv_freq = theta^(-2i/Dh), optional llama3
 * frequency scaling of inv_freq). Filled by tp_rope_init. */
typedef struct tp_rope_cfg {
    int head_dim;
    double theta;
    int scaling; /* 0 none, 1 llama3 */
    double factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
    float inv_freq[512]; /* head_dim/2 entries */
} tp_rope_cfg;

typedef enum tp_gelu_kind { TP_GELU_ERF = 0, TP_GELU_TANH = 1 } tp_gelu_kind;
typedef enum tp_vq_dist { TP_VQ_L2 = 0, TP_VQ_COSINE = 1 } tp_vq_dist;
typedef enum tp_pool_kind { TP_POOL_MEAN = 0, TP_POOL_SUM = 1, TP_POOL_MAX = 2 } tp_pool_kind;

/* Attention parameters. Mask semantics: key_mask [B,S] (f32 1 = attend, 0 = padding) or NULL;
 * causal: query t (absolute position t + q_offset) sees keys s <= t + q_offset; window > 0
 * additionally hides keys with (t + q_offset) - s >= window (Mistral sliding window). A query
 * row that sees no key at all outputs zeros (never NaN). scale 0 means 1/sqrt(Dh). */
typedef struct tp_attn_cfg {
    int causal;
    int q_offset;
    int window;
    float scale;
} tp_attn_cfg;

/* Counter-based RNG (Philox4x32-10): a draw is a pure function of (seed, stream, offset), so
 * results are reproducible on any backend and thread count. */
typedef struct tp_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t offset; /* advanced by each draw by the number of 32-bit values consumed */
} tp_rng;

/* The tensor API as one list. X(ret, name, (params), (args)) defines tp_<name>; the host fills
 * tp_tensor_api from the same list, so the two can never drift. Append only (ABI). */
#define TP_TENSOR_API(X)                                                                           \
    /* ---- contexts ---- */                                                                       \
    X(tp_status, ctx_status, (const tp_ctx *c), (c))                                               \
    X(const char *, ctx_error, (const tp_ctx *c), (c))                                             \
    X(int, grad_enabled, (const tp_ctx *c), (c))                                                   \
    X(int, set_grad_enabled, (tp_ctx * c, int on), (c, on)) /* returns previous */                 \
    /* ---- creation: step-scoped (arena) ---- */                                                  \
    X(tp_tensor *, new, (tp_ctx * c, tp_dtype dt, int ndim, const int64_t *shape),                 \
      (c, dt, ndim, shape))                                                                        \
    X(tp_tensor *, zeros, (tp_ctx * c, tp_dtype dt, int ndim, const int64_t *shape),               \
      (c, dt, ndim, shape))                                                                        \
    X(tp_tensor *, full, (tp_ctx * c, tp_dtype dt, int ndim, const int64_t *shape, double v),      \
      (c, dt, ndim, shape, v))                                                                     \
    X(tp_tensor *, from_f32, (tp_ctx * c, int ndim, const int64_t *shape, const float *src),       \
      (c, ndim, shape, src))                                                                       \
    X(tp_tensor *, from_i32, (tp_ctx * c, int ndim, const int64_t *shape, const int32_t *src),     \
      (c, ndim, shape, src))                                                                       \
    X(tp_tensor *, randn, (tp_ctx * c, int ndim, const int64_t *shape, float std, tp_rng *rng),    \
      (c, ndim, shape, std, rng))                                                                  \
    /* ---- persistent tensors (params, weights): heap, freed with tensor_free ---- */             \
    X(tp_tensor *, tensor_alloc,                                                                   \
      (tp_dtype dt, tp_device dev, int ndim, const int64_t *shape, tp_err *err),                   \
      (dt, dev, ndim, shape, err))                                                                 \
    X(tp_tensor *, param_alloc, (const char *name, int ndim, const int64_t *shape, tp_err *err),   \
      (name, ndim, shape, err)) /* f32, zero, with grad */                                         \
    X(tp_status, tensor_free, (tp_tensor * t), (t))                                                \
    X(tp_status, fill_normal, (tp_tensor * t, float mean, float std, tp_rng *rng),                 \
      (t, mean, std, rng))                                                                         \
    X(tp_status, fill_uniform, (tp_tensor * t, float lo, float hi, tp_rng *rng), (t, lo, hi, rng)) \
    X(tp_status, fill_value, (tp_tensor * t, double v), (t, v))                                    \
    X(tp_status, copy_into, (tp_tensor * dst, const tp_tensor *src, tp_err *err),                  \
      (dst, src, err)) /* any dtype/layout/device; no tape */                                      \
    X(tp_status, to_f32_buffer, (const tp_tensor *t, float *dst, tp_err *err), (t, dst, err))      \
    X(int64_t, numel, (const tp_tensor *t), (t))                                                   \
    X(int, is_contiguous, (const tp_tensor *t), (t))                                               \
    X(double, item, (const tp_tensor *t, int64_t flat_index), (t, flat_index)) /* as double */     \
    /* ---- views (share storage; recorded on the tape so grads flow to the base) ---- */          \
    X(tp_tensor *, reshape, (tp_ctx * c, tp_tensor * a, int ndim, const int64_t *shape),           \
      (c, a, ndim, shape)) /* copies only if a is not contiguous; one dim may be -1 */             \
    X(tp_tensor *, transpose, (tp_ctx * c, tp_tensor * a, int d0, int d1), (c, a, d0, d1))         \
    X(tp_tensor *, slice, (tp_ctx * c, tp_tensor * a, int dim, int64_t start, int64_t len),        \
      (c, a, dim, start, len))                                                                     \
    X(tp_tensor *, contiguous, (tp_ctx * c, tp_tensor * a), (c, a))                                \
    X(tp_tensor *, cast, (tp_ctx * c, tp_tensor * a, tp_dtype dt), (c, a, dt))                     \
    X(tp_tensor *, concat, (tp_ctx * c, tp_tensor *const *ts, int n, int dim), (c, ts, n, dim))    \
    /* ---- elementwise, NumPy broadcasting of b onto a's shape ---- */                            \
    X(tp_tensor *, add, (tp_ctx * c, tp_tensor * a, tp_tensor * b), (c, a, b))                     \
    X(tp_tensor *, sub, (tp_ctx * c, tp_tensor * a, tp_tensor * b), (c, a, b))                     \
    X(tp_tensor *, mul, (tp_ctx * c, tp_tensor * a, tp_tensor * b), (c, a, b))                     \
    X(tp_tensor *, scale, (tp_ctx * c, tp_tensor * a, float s), (c, a, s))                         \
    X(tp_tensor *, add_scalar, (tp_ctx * c, tp_tensor * a, float s), (c, a, s))                    \
    X(tp_tensor *, silu, (tp_ctx * c, tp_tensor * a), (c, a))                                      \
    X(tp_tensor *, gelu, (tp_ctx * c, tp_tensor * a, tp_gelu_kind k), (c, a, k))                   \
    X(tp_tensor *, tanh, (tp_ctx * c, tp_tensor * a), (c, a))                                      \
    X(tp_tensor *, swiglu, (tp_ctx * c, tp_tensor * gate, tp_tensor * up), (c, gate, up))          \
    X(tp_tensor *, dropout, (tp_ctx * c, tp_tensor * a, float p, tp_rng *rng), (c, a, p, rng))     \
    /* ---- linear algebra ---- */                                                                 \
    /* a [..,M,K] (or [..,K,M] if ta), b [..,K,N] (or [..,N,K] if tb); b may be 2-D (shared) */    \
    X(tp_tensor *, matmul, (tp_ctx * c, tp_tensor * a, tp_tensor * b, int ta, int tb),             \
      (c, a, b, ta, tb))                                                                           \
    /* x [..,K] @ w[N,K]^T + bias[N] (HF nn.Linear layout); bias may be NULL */                    \
    X(tp_tensor *, linear, (tp_ctx * c, tp_tensor * x, tp_tensor * w, tp_tensor * bias),           \
      (c, x, w, bias))                                                                             \
    X(tp_tensor *, embedding, (tp_ctx * c, tp_tensor * weight, tp_tensor * ids),                   \
      (c, weight, ids)) /* weight [V,D], ids i32 [..] -> [..,D]; id out of range = error */        \
    /* ---- normalisation ---- */                                                                  \
    X(tp_tensor *, rmsnorm, (tp_ctx * c, tp_tensor * x, tp_tensor * w, float eps),                 \
      (c, x, w, eps)) /* over last dim; w [D] or NULL */                                           \
    X(tp_tensor *, layernorm,                                                                      \
      (tp_ctx * c, tp_tensor * x, tp_tensor * w, tp_tensor * b, float eps), (c, x, w, b, eps))     \
    X(tp_tensor *, l2_normalize, (tp_ctx * c, tp_tensor * x, float eps), (c, x, eps))              \
    /* ---- transformer pieces ---- */                                                             \
    X(tp_status, rope_init,                                                                        \
      (tp_rope_cfg * cfg, int head_dim, double theta, int scaling, double factor, double lo,       \
       double hi, int orig_max_pos),                                                               \
      (cfg, head_dim, theta, scaling, factor, lo, hi, orig_max_pos))                               \
    /* x [B,H,T,Dh], pos i32 [B,T] (per-row positions, so left padding works) */                   \
    X(tp_tensor *, rope, (tp_ctx * c, tp_tensor * x, tp_tensor * pos, const tp_rope_cfg *cfg),     \
      (c, x, pos, cfg))                                                                            \
    /* q [B,H,T,Dh], k,v [B,Hkv,S,Dh] (H % Hkv == 0) -> [B,H,T,Dh] */                              \
    X(tp_tensor *, attention,                                                                      \
      (tp_ctx * c, tp_tensor * q, tp_tensor * k, tp_tensor * v, tp_tensor * key_mask,              \
       const tp_attn_cfg *cfg),                                                                    \
      (c, q, k, v, key_mask, cfg))                                                                 \
    X(tp_tensor *, softmax, (tp_ctx * c, tp_tensor * x), (c, x))     /* last dim */                \
    X(tp_tensor *, log_softmax, (tp_ctx * c, tp_tensor * x), (c, x)) /* last dim */                \
    /* ---- reductions ---- */                                                                     \
    X(tp_tensor *, sum, (tp_ctx * c, tp_tensor * x, int dim, int keepdim), (c, x, dim, keepdim))   \
    X(tp_tensor *, mean, (tp_ctx * c, tp_tensor * x, int dim, int keepdim), (c, x, dim, keepdim))  \
    X(tp_tensor *, sum_all, (tp_ctx * c, tp_tensor * x), (c, x))  /* -> shape [1] */               \
    X(tp_tensor *, mean_all, (tp_ctx * c, tp_tensor * x), (c, x)) /* -> shape [1] */               \
    /* x [B,T,D], mask [B,T] f32 (1 keep) or NULL -> [B,D] */                                      \
    X(tp_tensor *, pool, (tp_ctx * c, tp_tensor * x, tp_tensor * mask, tp_pool_kind k),            \
      (c, x, mask, k))                                                                             \
    X(tp_tensor *, cosine_matrix, (tp_ctx * c, tp_tensor * a, tp_tensor * b, float eps),           \
      (c, a, b, eps)) /* a [N,D], b [P,D] -> [N,P] */                                              \
    /* ---- losses (-> shape [1]) ---- */                                                          \
    /* logits [N,V], targets i32 [N]; mean over targets != ignore_index (0 targets -> 0) */        \
    X(tp_tensor *, cross_entropy,                                                                  \
      (tp_ctx * c, tp_tensor * logits, tp_tensor * targets, int ignore_index, float smoothing),    \
      (c, logits, targets, ignore_index, smoothing))                                               \
    X(tp_tensor *, mse, (tp_ctx * c, tp_tensor * a, tp_tensor * b), (c, a, b))                     \
    /* ---- quantisation: z [N,D], codebook [K,D] -> q [N,D] = codebook[argmin]; grad to z         \
     * passes straight through; codes (i32 [N], optional) receives the indices ---- */             \
    X(tp_tensor *, vq_nearest,                                                                     \
      (tp_ctx * c, tp_tensor * z, tp_tensor * codebook, tp_vq_dist dist, tp_tensor * *codes),      \
      (c, z, codebook, dist, codes))                                                               \
    X(tp_tensor *, detach, (tp_ctx * c, tp_tensor * a), (c, a)) /* stop-gradient view */           \
    /* ---- autograd ---- */                                                                       \
    /* Runs the tape backwards from out. grad_out NULL means ones (scalar loss). */                \
    X(tp_status, backward, (tp_ctx * c, tp_tensor * out, tp_tensor * grad_out),                    \
      (c, out, grad_out))                                                                          \
    /* Marks a step-scoped tensor as requiring grad (e.g. inputs_embeds for input gradients). */   \
    X(tp_status, requires_grad, (tp_ctx * c, tp_tensor * t), (c, t))                               \
    X(tp_status, param_zero_grad, (tp_tensor * p), (p))                                            \
    /* ---- appended (core): elementwise ops for losses like BCE, entropy bonuses, ratios ---- */  \
    X(tp_tensor *, exp, (tp_ctx * c, tp_tensor * a), (c, a))                                       \
    X(tp_tensor *, ln, (tp_ctx * c, tp_tensor * a), (c, a)) /* natural log; x <= 0: -inf/NaN */    \
    X(tp_tensor *, sigmoid, (tp_ctx * c, tp_tensor * a), (c, a))                                   \
    X(tp_tensor *, relu, (tp_ctx * c, tp_tensor * a), (c, a))                                      \
    X(tp_tensor *, div, (tp_ctx * c, tp_tensor * a, tp_tensor * b), (c, a, b)) /* b onto a */

#ifndef TP_PLUGIN
#define TP_X_DECL(ret, name, params, args) ret tp_##name params;
TP_TENSOR_API(TP_X_DECL)
#undef TP_X_DECL
#endif

typedef struct tp_tensor_api {
#define TP_X_FIELD(ret, name, params, args) ret(*name) params;
    TP_TENSOR_API(TP_X_FIELD)
#undef TP_X_FIELD
} tp_tensor_api;

/* ---- host-only (not in the plugin table): context lifetime and memory accounting ---- */
#ifndef TP_PLUGIN
tp_ctx *tp_ctx_new(tp_device dev);
void tp_ctx_free(tp_ctx *c);
/* Start of a step: the arena rewinds (its chunks are kept, so a warmed-up step allocates
 * nothing), the tape empties, activation grads vanish; persistent tensors are untouched. */
void tp_ctx_reset(tp_ctx *c);
void tp_ctx_clear_error(tp_ctx *c);
tp_status tp_ctx_fail(tp_ctx *c, tp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t tp_ctx_peak_bytes(const tp_ctx *c);  /* arena high-water mark */
size_t tp_ctx_arena_bytes(const tp_ctx *c); /* arena capacity */
/* Number of heap allocations made by the tensor core since process start (the zero-alloc test
 * reads it before and after a warmed-up step). */
uint64_t tp_heap_alloc_count(void);
const tp_tensor_api *tp_tensor_api_table(void);
/* tp_param_alloc on a given device (zero, with a zero grad there): the host's param_add uses it
 * to keep a bridge's params where the run's activations live. */
tp_tensor *tp_param_alloc_on(const char *name, tp_device dev, int ndim, const int64_t *shape,
                             tp_err *err);

size_t tp_dtype_size(tp_dtype dt);
const char *tp_dtype_name(tp_dtype dt);
/* IEEE conversions, round-to-nearest-even; NaN stays NaN, overflow goes to inf. */
uint16_t tp_f32_to_bf16(float f);
float tp_bf16_to_f32(uint16_t h);
uint16_t tp_f32_to_f16(float f);
float tp_f16_to_f32(uint16_t h);

/* Philox4x32-10: fills n 32-bit values for (seed, stream, offset), advancing rng->offset. */
void tp_rng_u32(tp_rng *rng, uint32_t *out, size_t n);
float tp_rng_uniform(tp_rng *rng); /* [0,1) */
float tp_rng_normal(tp_rng *rng);  /* N(0,1) */
/* Wraps memory the caller owns (e.g. an mmap'd safetensors region); never freed by tensor_free
 * beyond the header. */
tp_tensor *tp_tensor_wrap(tp_dtype dt, tp_device dev, int ndim, const int64_t *shape, void *data,
                          tp_err *err);
#endif

#ifdef __cplusplus
}
#endif
#endif
