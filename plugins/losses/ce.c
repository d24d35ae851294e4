/* ce.c — the task cross-entropy loss, in the two forms the study's scoring schemes need
 * (STUDY.md "Receiver input and scoring": the loss must match the scheme).
 *
 * What it adds: a loss named "ce" with option mode =
 *   sequence     token CE over the label sequence including EOS, as the study's training
 *                scripts computed it (HF `labels=` with -100 on primer, soft tokens and padding):
 *                mean over positions i with targets[i] != -100 of -log softmax(logits[i])[t_i].
 *                Uses in->logits [N,V] (receiver logits at the label positions) and
 *                in->targets i32 [N]; matches scoring `generate` and `loglik`.
 *   first_token  CE over the label-restricted first-token logits: in->first_logits [B,C] holds,
 *                for each example, the receiver logits of the first token of each of the C label
 *                words at the answer position; target in->labels i32 [B]. Matches scoring
 *                `first_token`.
 * label_smoothing e mixes the one-hot target with the uniform distribution over the V (or C)
 * classes, as torch.nn.functional.cross_entropy(label_smoothing=e) does:
 *   (1 - e) * (-log p_t) + e * mean_j(-log p_j).
 * needs() declares TP_NEED_LOGITS or TP_NEED_FIRST_TOKEN accordingly, so the trainer computes
 * only what this mode reads. A batch with no target positions gives 0 (tp_cross_entropy's rule).
 *
 * Version history: 1 — first version. */
#define TP_PLUGIN
#include <stdlib.h>
#include <string.h>

#include <telepathy/loss.h>
#include <telepathy/plugin.h>

TP_PLUGIN_DEFINE_API;

#define API       tp_plugin_api_
#define CE_IGNORE (-100)

static const tp_option_spec ce_options[] = {
    {"mode", TP_OPT_ENUM, "sequence", 1, 0, "sequence|first_token",
     "sequence: CE over the label tokens incl. EOS; first_token: CE over label first tokens"},
    {"label_smoothing", TP_OPT_FLOAT, "0", 0, 1, NULL, "label smoothing epsilon in [0,1]"},
};

typedef struct ce_state {
    int first_token;
    float smoothing;
} ce_state;

static tp_status ce_create(const tp_options *o, const tp_bridge_dims *dims, tp_params *ps,
                           void **state, tp_err *err) {
    const char *mode = API->opt_string(o, "mode");
    ce_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, "ce: out of memory");
    if (mode && strcmp(mode, "first_token") == 0) {
        s->first_token = 1;
    } else if (!mode || strcmp(mode, "sequence") != 0) {
        free(s);
        return API->errf(err, TP_EINVAL, "ce: option mode = '%s': expected sequence|first_token",
                         mode ? mode : "(null)");
    }
    double e = API->opt_float(o, "label_smoothing");
    if (!(e >= 0 && e <= 1)) {
        free(s);
        return API->errf(err, TP_EINVAL, "ce: option label_smoothing = %g: expected 0..1", e);
    }
    s->smoothing = (float)e;
    *state = s;
    return TP_OK;
}

static uint32_t ce_needs(void *state) {
    return ((ce_state *)state)->first_token ? TP_NEED_FIRST_TOKEN : TP_NEED_LOGITS;
}

/* logits must be [N,C] and targets i32 [N]; what = the names used in messages. */
static tp_status ce_check(tp_tensor *logits, tp_tensor *targets, const char *lname,
                          const char *tname, tp_err *err) {
    if (!logits || !targets)
        return API->errf(err, TP_EINVAL, "ce: the trainer gave no %s (this mode reads %s and %s)",
                         !logits ? lname : tname, lname, tname);
    if (logits->ndim != 2)
        return API->errf(err, TP_ESHAPE, "ce: %s must be 2-D [N,C]; got %d dims", lname,
                         logits->ndim);
    if (targets->dtype != TP_I32) return API->errf(err, TP_EDTYPE, "ce: %s must be i32", tname);
    if (targets->ndim != 1 || targets->shape[0] != logits->shape[0])
        return API->errf(err, TP_ESHAPE, "ce: %s must be [%lld] to match %s", tname,
                         (long long)logits->shape[0], lname);
    return TP_OK;
}

static tp_status ce_compute(void *state, tp_ctx *c, const tp_loss_inputs *in, tp_tensor **loss,
                            tp_err *err) {
    ce_state *s = state;
    *loss = NULL;
    tp_tensor *logits = s->first_token ? in->first_logits : in->logits;
    tp_tensor *targets = s->first_token ? in->labels : in->targets;
    TP_TRY(s->first_token ? ce_check(logits, targets, "first_logits", "labels", err)
                          : ce_check(logits, targets, "logits", "targets", err));
    tp_tensor *l = tp_cross_entropy(c, logits, targets, CE_IGNORE, s->smoothing);
    if (!l) {
        tp_status st = tp_ctx_status(c);
        return API->errf(err, st ? st : TP_EINVAL, "ce: %s", tp_ctx_error(c));
    }
    *loss = l;
    return TP_OK;
}

static void ce_destroy(void *state) {
    free(state);
}

static const tp_loss_vtable ce_vtable = {
    .size = sizeof(tp_loss_vtable),
    .create = ce_create,
    .needs = ce_needs,
    .compute = ce_compute,
    .destroy = ce_destroy,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_LOSS;
    d->name = "ce";
    d->version = "1";
    d->summary = "cross-entropy over the label tokens (sequence) or label first tokens";
    d->options = ce_options;
    d->n_options = (int)(sizeof ce_options / sizeof ce_options[0]);
    d->vtable = &ce_vtable;
    d->vtable_size = sizeof ce_vtable;
    (void)err;
    return TP_OK;
}
