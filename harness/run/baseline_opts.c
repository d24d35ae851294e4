/* baseline_opts.c — text_relay / fewshot settings from the run spec (see baseline_opts.h). */
#include "run/baseline_opts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/strutil.h"

void tp_baseline_opts_free(tp_baseline_opts *o) {
    if (!o) return;
    free(o->sender_prompt);
    memset(o, 0, sizeof *o);
}

static tp_status opt_int(const json_t *v, const char *kind, const char *key, int lo, int hi,
                         int *out, tp_err *err) {
    if (!json_is_integer(v) &&
        !(json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
        return tp_errf(err, TP_EINVAL, "run spec: baseline_options.%s (%s): expected an integer",
                       key, kind);
    double d = json_number_value(v);
    if (d < lo || d > hi)
        return tp_errf(err, TP_ERANGE,
                       "run spec: baseline_options.%s (%s) = %g is out of range; expected %d..%d",
                       key, kind, d, lo, hi);
    *out = (int)d;
    return TP_OK;
}

tp_status tp_baseline_opts_resolve(const char *kind, const json_t *opts, uint64_t seed,
                                   tp_baseline_opts *o, tp_err *err) {
    memset(o, 0, sizeof *o);
    int relay = !strcmp(kind, "text_relay"), fewshot = !strcmp(kind, "fewshot");
    if (opts && !json_is_null(opts) && !json_is_object(opts))
        return tp_errf(err, TP_EINVAL, "run spec: 'baseline_options' must be a table");
    if (!relay && !fewshot) {
        if (opts && json_is_object(opts) && json_object_size(opts) > 0)
            return tp_errf(err, TP_EINVAL,
                           "run spec: 'baseline_options' has no meaning for %s; remove it", kind);
        return TP_OK;
    }
    o->labels_in_prompt = 1;
    o->summary_tokens = 50;
    o->k = 5;
    o->seed = seed;
    const char *sp = NULL; /* unless set here, the task supplies it (apply_task) */
    const char *key;
    json_t *v;
    if (opts && json_is_object(opts)) json_object_foreach((json_t *)opts, key, v) {
            if (relay && !strcmp(key, "labels_in_prompt")) {
                if (!json_is_boolean(v))
                    return tp_errf(err, TP_EINVAL,
                                   "run spec: baseline_options.labels_in_prompt: expected true "
                                   "or false");
                o->labels_in_prompt = json_is_true(v);
            } else if (relay && !strcmp(key, "summary_tokens")) {
                TP_TRY(opt_int(v, kind, key, 1, 4096, &o->summary_tokens, err));
            } else if (relay && !strcmp(key, "sender_prompt")) {
                if (!json_is_string(v) || !strstr(json_string_value(v), "{text"))
                    return tp_errf(err, TP_EINVAL,
                                   "run spec: baseline_options.sender_prompt: expected a string "
                                   "with the placeholder {text}");
                sp = json_string_value(v);
            } else if (fewshot && !strcmp(key, "k")) {
                TP_TRY(opt_int(v, kind, key, 0, 1000, &o->k, err));
            } else {
                return tp_errf(err, TP_EINVAL,
                               "run spec: baseline_options.%s is not an option of %s; expected %s",
                               key, kind,
                               relay ? "labels_in_prompt, summary_tokens, sender_prompt" : "k");
            }
        }
    if (relay && sp) {
        o->sender_prompt = tp_strdup(sp);
        if (!o->sender_prompt) return tp_errf(err, TP_ENOMEM, "run spec: out of memory");
    }
    return TP_OK;
}

const char *tp_relay_receiver_template_of(const tp_task_info *info) {
    return info->relay_receiver_template ? info->relay_receiver_template : info->direct_template;
}

tp_status tp_baseline_opts_apply_task(const char *kind, tp_baseline_opts *o, const char *task,
                                      const tp_task_info *info, tp_err *err) {
    if (strcmp(kind, "text_relay") != 0) return TP_OK;
    /* checked even when overridden: a task shipping a broken template is a task bug */
    if (info->relay_sender_template && !strstr(info->relay_sender_template, "{text"))
        return tp_errf(err, TP_EPLUGIN,
                       "task '%s': relay_sender_template has no {text} placeholder, so the "
                       "relay's sender would never see the example; fix the task's info()",
                       task);
    if (info->relay_receiver_template && !strstr(info->relay_receiver_template, "{text"))
        return tp_errf(err, TP_EPLUGIN,
                       "task '%s': relay_receiver_template has no {text} placeholder, so the "
                       "receiver would never see the summary; fix the task's info()",
                       task);
    if (o->sender_prompt) return TP_OK; /* baseline_options.sender_prompt wins */
    o->sender_prompt = tp_strdup(info->relay_sender_template ? info->relay_sender_template
                                                             : TP_RELAY_SENDER_PROMPT);
    if (!o->sender_prompt) return tp_errf(err, TP_ENOMEM, "run spec: out of memory");
    return TP_OK;
}

json_t *tp_baseline_opts_json(const char *kind, const tp_baseline_opts *o) {
    if (!strcmp(kind, "text_relay"))
        return json_pack("{s:b, s:I, s:s}", "labels_in_prompt", o->labels_in_prompt,
                         "summary_tokens", (json_int_t)o->summary_tokens, "sender_prompt",
                         o->sender_prompt ? o->sender_prompt : "");
    if (!strcmp(kind, "fewshot"))
        return json_pack("{s:I, s:I}", "k", (json_int_t)o->k, "seed", (json_int_t)o->seed);
    return NULL;
}
