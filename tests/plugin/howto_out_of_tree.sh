#!/bin/bash
# howto_out_of_tree.sh — follows docs/HOWTO-add-a-bridge.md and docs/HOWTO-add-a-loss.md once:
# writes a small bridge and a small loss the way the checklists say, builds each with the exact
# `cc` command printed in the HOWTO (pkg-config replaced by -I<source>/harness/include, as the
# HOWTO says to do before `make install`), and checks that `telepathy plugins` loads both and
# lists their options. A HOWTO whose command or checklist stops working fails here.
# Env (set by ctest): TELEPATHY = the binary, TP_SOURCE_DIR = the source tree.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
SRC=${TP_SOURCE_DIR:?TP_SOURCE_DIR must point at the source tree}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
unset TELEPATHY_CONFIG
fail=0

# The build command of a HOWTO: the fenced line starting with "cc " and its continuation.
howto_cc() {
  awk '/^ *cc -std=c11/ {on = 1} on {sub(/^ */, ""); sub(/\\$/, ""); printf "%s ", $0; if ($0 !~ /-lm/) next; exit}' "$1"
}

mkdir -p plugins
cat >mybridge.c <<'EOF'
/* mybridge.c — the HOWTO's bridge: masked mean-pool, one linear map to the receiver width,
 * repeated M times, RMS-normalised x alpha. */
#define TP_PLUGIN
#include <stdlib.h>

#include <telepathy/bridge.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

static const tp_option_spec opts[] = {
    {"tokens", TP_OPT_INT, "4", 1, 64, NULL, "number of soft tokens M"},
};
typedef struct st {
    int m, d_r;
    tp_tensor *w, *alpha;
} st;

static tp_status create(const tp_options *o, const tp_bridge_dims *d, tp_params *ps, void **out,
                        tp_err *err) {
    st *s = calloc(1, sizeof *s);
    if (!s) return tp_plugin_api_->errf(err, TP_ENOMEM, "mybridge: out of memory");
    s->m = (int)tp_plugin_api_->opt_int(o, "tokens");
    s->d_r = d->d_receiver;
    s->w = tp_plugin_api_->param_add(ps, "w", TP_DIMS(d->d_receiver, d->d_sender), err);
    s->alpha = s->w ? tp_plugin_api_->param_add(ps, "alpha", TP_DIMS(1), err) : NULL;
    if (!s->alpha) {
        free(s);
        return err->code;
    }
    tp_rng rng = {d->seed, 1, 0};
    tp_fill_normal(s->w, 0, 0.02f, &rng);
    tp_fill_value(s->alpha, d->recv_embed_rms > 0 ? d->recv_embed_rms : 0.03);
    *out = s;
    return TP_OK;
}

static tp_status forward(void *state, tp_ctx *c, tp_tensor *h, tp_tensor *mask, int training,
                         tp_bridge_out *out, tp_err *err) {
    st *s = state;
    int64_t b = h->shape[0];
    tp_tensor *p = tp_linear(c, tp_pool(c, h, mask, TP_POOL_MEAN), s->w, NULL);
    tp_tensor *x = tp_add(c, tp_zeros(c, TP_F32, TP_DIMS(b, s->m, s->d_r)),
                          tp_reshape(c, p, TP_DIMS(b, 1, s->d_r)));
    tp_tensor *soft = tp_mul(c, tp_rmsnorm(c, x, NULL, 1e-6f), s->alpha);
    if (!soft) return tp_plugin_api_->errf(err, tp_ctx_status(c), "mybridge: %s", tp_ctx_error(c));
    out->soft = soft;
    return TP_OK;
}

static int num_tokens(void *s) { return ((st *)s)->m; }
static void destroy(void *s) { free(s); }
static const tp_bridge_vtable vt = {.size = sizeof(tp_bridge_vtable),
                                    .create = create,
                                    .forward = forward,
                                    .num_tokens = num_tokens,
                                    .destroy = destroy};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_BRIDGE;
    d->name = "mybridge";
    d->version = "1";
    d->summary = "HOWTO example: mean-pool + linear, repeated M times";
    d->options = opts;
    d->n_options = 1;
    d->vtable = &vt;
    d->vtable_size = sizeof vt;
    (void)err;
    return TP_OK;
}
EOF

cat >myloss.c <<'EOF'
/* myloss.c — the HOWTO's loss: mean squared soft-token value (an L2 penalty), reads soft tokens. */
#define TP_PLUGIN
#include <stdlib.h>

#include <telepathy/loss.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

static const tp_option_spec opts[] = {
    {"form", TP_OPT_ENUM, "mean", 1, 0, "mean|sum", "mean or sum of squares"},
};
typedef struct st {
    int sum;
} st;

static tp_status create(const tp_options *o, const tp_bridge_dims *d, tp_params *ps, void **out,
                        tp_err *err) {
    st *s = calloc(1, sizeof *s);
    if (!s) return tp_plugin_api_->errf(err, TP_ENOMEM, "myloss: out of memory");
    s->sum = tp_plugin_api_->opt_string(o, "form")[0] == 's';
    *out = s;
    return TP_OK;
}
static uint32_t needs(void *s) { return TP_NEED_SOFT; }
static tp_status compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                         tp_err *err) {
    st *s = state;
    if (!in->soft) return tp_plugin_api_->errf(err, TP_EINVAL, "myloss: no soft tokens");
    tp_tensor *sq = tp_mul(c, in->soft, in->soft);
    *loss = s->sum ? tp_sum_all(c, sq) : tp_mean_all(c, sq);
    if (!*loss) return tp_plugin_api_->errf(err, tp_ctx_status(c), "myloss: %s", tp_ctx_error(c));
    return TP_OK;
}
static void destroy(void *s) { free(s); }
static const tp_loss_vtable vt = {.size = sizeof(tp_loss_vtable),
                                  .create = create,
                                  .needs = needs,
                                  .compute = compute,
                                  .destroy = destroy};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "myloss";
    d->version = "1";
    d->summary = "HOWTO example: mean squared soft tokens";
    d->options = opts;
    d->n_options = 1;
    d->vtable = &vt;
    d->vtable_size = sizeof vt;
    (void)err;
    return TP_OK;
}
EOF

for doc in HOWTO-add-a-bridge HOWTO-add-a-loss; do
  cmd=$(howto_cc "$SRC/docs/$doc.md")
  case "$cmd" in
    *'$(pkg-config --cflags telepathy)'*) ;;
    *) echo "FAIL: $doc.md: no 'cc ... \$(pkg-config --cflags telepathy) ... -lm' command found: '$cmd'"; fail=1; continue ;;
  esac
  cmd=${cmd//'$(pkg-config --cflags telepathy)'/-I$SRC/harness/include}
  echo "$doc: $cmd"
  if ! eval "$cmd" >build.log 2>&1; then
    echo "FAIL: $doc.md's command does not build its example:"; sed 's/^/  /' build.log; fail=1
  fi
done
mv mybridge.so myloss.so plugins/ 2>/dev/null

if ! "$T" plugins --plugin-path "$work/plugins" >out 2>err; then
  echo "FAIL: telepathy plugins refused the HOWTO plugins:"; sed 's/^/  /' err; fail=1
fi
for want in "^bridge +mybridge +1 " "^loss +myloss +1 " "tokens +int" "mean\|sum"; do
  if ! grep -qE -- "$want" out; then
    echo "FAIL: '$want' not listed by telepathy plugins"; sed 's/^/  /' out err; fail=1
  fi
done
[ $fail = 0 ] && echo "ok: both HOWTO examples built with the documented command and loaded"
exit $fail
