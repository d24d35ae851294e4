/* run_config.c — run specification (JSON from Lua or a test) -> resolved tp_run_cfg + canonical
 * JSON + config hash. Every key is checked (unknown ones get "did you mean"), every number is
 * range-checked with a message naming the key, and every default is written into the config
 * before hashing. */
#include "run/run_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/options.h"
#include "telepathy/optim.h"
#include "util/canon_json.h"
#include "util/strutil.h"

static const char *const spec_keys[] = {
    "baseline",
    "baseline_options",
    "sender",
    "receiver",
    "task",
    "task_options",
    "bridge",
    "bridge_options",
    "losses",
    "layer",
    "seed",
    "steps",
    "batch",
    "lr",
    "weight_decay",
    "clip",
    "warmup",
    "schedule",
    "min_lr_ratio",
    "eval_n",
    "eval_seed",
    "eval_batch",
    "scoring",
    "max_new_tokens",
    "primer",
    "bos",
    "sender_bos",
    "max_sender_len",
    "max_receiver_len",
    "eval_every",
    "quick_eval_n",
    "checkpoint_every",
    "target",
    "precision",
};
#define N_SPEC_KEYS ((int)(sizeof spec_keys / sizeof spec_keys[0]))

const char *tp_scoring_name(tp_scoring s) {
    switch (s) {
    case TP_SCORE_FIRST_TOKEN:
        return "first_token";
    case TP_SCORE_GENERATE:
        return "generate";
    case TP_SCORE_LOGLIK:
        return "loglik";
    }
    return "?";
}

const char *tp_run_kind_name(tp_run_kind k) {
    switch (k) {
    case TP_KIND_BRIDGE:
        return "bridge";
    case TP_KIND_SENDER_DIRECT:
        return "sender_direct";
    case TP_KIND_RECEIVER_DIRECT:
        return "receiver_direct";
    case TP_KIND_TEXT_RELAY:
        return "text_relay";
    case TP_KIND_FEWSHOT:
        return "fewshot";
    }
    return "?";
}

static int scoring_parse(const char *s, tp_scoring *out) {
    if (!strcmp(s, "first_token"))
        *out = TP_SCORE_FIRST_TOKEN;
    else if (!strcmp(s, "generate"))
        *out = TP_SCORE_GENERATE;
    else if (!strcmp(s, "loglik"))
        *out = TP_SCORE_LOGLIK;
    else
        return -1;
    return 0;
}

static tp_status check_keys(const json_t *spec, tp_err *err) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)spec, k, v) {
        int found = 0;
        for (int i = 0; i < N_SPEC_KEYS; i++)
            if (!strcmp(k, spec_keys[i])) found = 1;
        if (found) continue;
        const char *s = tp_suggest(k, spec_keys, N_SPEC_KEYS);
        char list[1024];
        tp_str_join_list(list, sizeof list, spec_keys, N_SPEC_KEYS);
        if (s)
            return tp_errf(err, TP_EINVAL, "run spec: unknown key '%s'; did you mean '%s'?", k, s);
        return tp_errf(err, TP_EINVAL, "run spec: unknown key '%s'; known keys: %s", k, list);
    }
    return TP_OK;
}

/* Integer setting: absent -> def; a real must be integral; range [lo, hi]. */
static tp_status get_int(const json_t *spec, const char *key, int64_t def, int64_t lo, int64_t hi,
                         int64_t *out, tp_err *err) {
    json_t *v = json_object_get(spec, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return TP_OK;
    }
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v))
        d = json_real_value(v);
    else if (json_is_boolean(v) && (lo == 0 && hi == 1))
        d = json_is_true(v);
    else
        return tp_errf(err, TP_EINVAL, "run spec: '%s' must be an integer", key);
    if (d != floor(d))
        return tp_errf(err, TP_EINVAL, "run spec: '%s' = %g must be an integer", key, d);
    if (d < (double)lo || d > (double)hi)
        return tp_errf(err, TP_ERANGE, "run spec: '%s' = %.0f is out of range; expected %lld..%lld",
                       key, d, (long long)lo, (long long)hi);
    *out = json_is_integer(v) ? json_integer_value(v) : (int64_t)d;
    return TP_OK;
}

static tp_status get_int32(const json_t *spec, const char *key, int def, int lo, int hi, int *out,
                           tp_err *err) {
    int64_t v;
    TP_TRY(get_int(spec, key, def, lo, hi, &v, err));
    *out = (int)v;
    return TP_OK;
}

static tp_status get_real(const json_t *spec, const char *key, double def, double lo, double hi,
                          double *out, tp_err *err) {
    json_t *v = json_object_get(spec, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return TP_OK;
    }
    if (!json_is_number(v)) return tp_errf(err, TP_EINVAL, "run spec: '%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return tp_errf(err, TP_ERANGE, "run spec: '%s' = %g is out of range; expected %g..%g", key,
                       d, lo, hi);
    *out = d;
    return TP_OK;
}

static tp_status get_bool(const json_t *spec, const char *key, int def, int *out, tp_err *err) {
    json_t *v = json_object_get(spec, key);
    if (!v || json_is_null(v))
        *out = def;
    else if (json_is_boolean(v))
        *out = json_is_true(v);
    else
        return tp_errf(err, TP_EINVAL, "run spec: '%s' must be true or false", key);
    return TP_OK;
}

/* String setting; NULL when absent. */
static tp_status get_str(const json_t *spec, const char *key, const char **out, tp_err *err) {
    json_t *v = json_object_get(spec, key);
    *out = NULL;
    if (!v || json_is_null(v)) return TP_OK;
    if (!json_is_string(v)) return tp_errf(err, TP_EINVAL, "run spec: '%s' must be a string", key);
    *out = json_string_value(v);
    return TP_OK;
}

/* Plugin options from a JSON object (or absent). */
static tp_status make_opts(const tp_plugin *p, const json_t *obj, const char *key, tp_options **out,
                           tp_err *err) {
    TP_TRY(tp_options_new(tp_plugin_kind_name(p->desc.kind), p->desc.name, p->desc.options,
                          p->desc.n_options, out, err));
    if (obj && !json_is_null(obj)) {
        if (!json_is_object(obj)) {
            tp_options_free(*out);
            *out = NULL;
            return tp_errf(err, TP_EINVAL, "run spec: '%s' must be a table of options", key);
        }
        tp_status st = tp_options_set_object(*out, obj, err);
        if (st != TP_OK) {
            tp_options_free(*out);
            *out = NULL;
            return st;
        }
    }
    return TP_OK;
}

static tp_status add_loss(tp_runner *r, tp_run_cfg *c, const char *name, double weight,
                          const json_t *opts, tp_err *err) {
    if (c->n_losses >= TP_RUN_MAX_LOSSES)
        return tp_errf(err, TP_ERANGE, "run spec: more than %d losses", TP_RUN_MAX_LOSSES);
    if (!isfinite(weight))
        return tp_errf(err, TP_EINVAL, "run spec: loss '%s': weight must be a finite number", name);
    const tp_plugin *p;
    TP_TRY(tp_registry_find(tp_runner_registry(r), TP_PLUGIN_LOSS, name, &p, err));
    for (int i = 0; i < c->n_losses; i++)
        if (c->losses[i].plugin == p)
            return tp_errf(err, TP_EINVAL, "run spec: loss '%s' is listed twice", name);
    tp_run_loss *l = &c->losses[c->n_losses];
    l->plugin = p;
    l->weight = weight;
    char key[160];
    snprintf(key, sizeof key, "losses.%s.options", name);
    TP_TRY(make_opts(p, opts, key, &l->opts, err));
    /* ce follows the scoring scheme unless told otherwise (STUDY.md: the loss matches the
     * scheme: sequence CE for generate/loglik, restricted first-token CE for first_token) */
    if (!strcmp(name, "ce") && !tp_options_is_set(l->opts, "mode")) {
        const char *mode = c->scoring == TP_SCORE_FIRST_TOKEN ? "first_token" : "sequence";
        tp_status st = tp_options_set(l->opts, "mode", mode, err);
        if (st != TP_OK) {
            tp_options_free(l->opts);
            return st;
        }
    }
    c->n_losses++;
    return TP_OK;
}

static tp_status parse_losses(tp_runner *r, tp_run_cfg *c, const json_t *v, tp_err *err) {
    if (!v || json_is_null(v)) {
        TP_TRY(add_loss(r, c, "ce", 1.0, NULL, err));
        return add_loss(r, c, "diversity", 0.1, NULL, err);
    }
    if (json_is_object(v)) { /* {ce = 1, diversity = 0.1} */
        const char *k;
        json_t *w;
        /* sorted, so the order (and the float sum) does not depend on the table's order */
        const char *names[TP_RUN_MAX_LOSSES + 1];
        int n = 0;
        json_object_foreach((json_t *)v, k, w) {
            if (n > TP_RUN_MAX_LOSSES)
                return tp_errf(err, TP_ERANGE, "run spec: more than %d losses", TP_RUN_MAX_LOSSES);
            names[n++] = k;
        }
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
                const char *t = names[j];
                names[j] = names[j - 1];
                names[j - 1] = t;
            }
        for (int i = 0; i < n; i++) {
            w = json_object_get(v, names[i]);
            if (!json_is_number(w))
                return tp_errf(err, TP_EINVAL, "run spec: losses.%s: expected a weight (number)",
                               names[i]);
            TP_TRY(add_loss(r, c, names[i], json_number_value(w), NULL, err));
        }
        if (n == 0) return tp_errf(err, TP_EINVAL, "run spec: 'losses' is empty");
        return TP_OK;
    }
    if (!json_is_array(v))
        return tp_errf(err, TP_EINVAL,
                       "run spec: 'losses' must be a list of {name=, weight=, options=} or a "
                       "table name = weight");
    size_t i;
    json_t *e;
    if (json_array_size(v) == 0) return tp_errf(err, TP_EINVAL, "run spec: 'losses' is empty");
    json_array_foreach(v, i, e) {
        const char *name = NULL;
        double w = 1.0;
        json_t *o = NULL;
        if (json_is_string(e)) {
            name = json_string_value(e);
        } else if (json_is_object(e)) {
            const char *k;
            json_t *x;
            json_object_foreach(e, k, x) {
                if (!strcmp(k, "name") || !strcmp(k, "1")) {
                    if (!json_is_string(x))
                        return tp_errf(err, TP_EINVAL,
                                       "run spec: losses[%zu].name: expected a "
                                       "string",
                                       i + 1);
                    name = json_string_value(x);
                } else if (!strcmp(k, "weight")) {
                    if (!json_is_number(x))
                        return tp_errf(err, TP_EINVAL,
                                       "run spec: losses[%zu].weight: expected a "
                                       "number",
                                       i + 1);
                    w = json_number_value(x);
                } else if (!strcmp(k, "options")) {
                    o = x;
                } else {
                    return tp_errf(err, TP_EINVAL,
                                   "run spec: losses[%zu]: unknown key '%s'; expected name, "
                                   "weight, options",
                                   i + 1, k);
                }
            }
        }
        if (!name)
            return tp_errf(err, TP_EINVAL, "run spec: losses[%zu]: expected a loss name", i + 1);
        TP_TRY(add_loss(r, c, name, w, o, err));
    }
    return TP_OK;
}

static json_t *model_json(const tp_run_model *m) {
    return json_pack("{s:s, s:s}", "path", m->path, "fingerprint", m->fingerprint);
}

static json_t *plugin_json(const tp_plugin *p, const tp_options *o) {
    return json_pack("{s:s, s:s, s:o}", "name", p->desc.name, "version", p->desc.version, "options",
                     tp_options_json(o));
}

/* Builds the canonical JSON and its hash from the resolved struct. */
static tp_status build_json(tp_run_cfg *c, tp_err *err) {
    json_t *j = json_object();
    json_object_set_new(j, "format", json_integer(TP_RUN_FORMAT));
    json_object_set_new(j, "kind", json_string(tp_run_kind_name(c->kind)));
    json_object_set_new(j, "task", plugin_json(c->task, c->task_opts));
    json_object_set_new(j, "device", json_string("cpu"));
    json_object_set_new(j, "dtype", json_string("f32"));
    json_t *ev =
        json_pack("{s:s, s:I, s:I, s:s, s:I, s:I}", "subset", c->eval_n ? "stratified" : "full",
                  "n", (json_int_t)c->eval_n, "seed", (json_int_t)(c->eval_n ? c->eval_seed : 0),
                  "scoring", tp_scoring_name(c->scoring), "max_new_tokens",
                  (json_int_t)c->max_new_tokens, "batch", (json_int_t)c->eval_batch);
    json_object_set_new(j, "eval", ev);
    if (c->kind == TP_KIND_BRIDGE) {
        json_object_set_new(j, "sender", model_json(c->sender));
        json_object_set_new(j, "receiver", model_json(c->receiver));
        json_object_set_new(j, "bridge", plugin_json(c->bridge, c->bridge_opts));
        json_t *ls = json_array();
        for (int i = 0; i < c->n_losses; i++) {
            json_t *l = plugin_json(c->losses[i].plugin, c->losses[i].opts);
            json_object_set_new(l, "weight", json_real(c->losses[i].weight));
            json_array_append_new(ls, l);
        }
        json_object_set_new(j, "losses", ls);
        json_object_set_new(j, "layer", json_integer(c->layer));
        json_object_set_new(j, "seed", json_integer((json_int_t)c->seed));
        json_t *tr =
            json_pack("{s:I, s:I, s:f, s:f, s:f, s:I, s:s, s:f}", "steps", (json_int_t)c->steps,
                      "batch", (json_int_t)c->batch, "lr", c->lr, "weight_decay", c->weight_decay,
                      "clip", c->clip, "warmup", (json_int_t)c->warmup, "schedule",
                      c->cosine ? "cosine" : "constant", "min_lr_ratio", c->min_lr_ratio);
        /* only a non-default precision is written: every f32 run keeps the hash it had before
         * the key existed */
        if (c->bf16_params) json_object_set_new(tr, "precision", json_string("bf16"));
        json_object_set_new(j, "train", tr);
        json_object_set_new(j, "receiver_input",
                            json_pack("{s:s, s:b, s:I, s:s}", "primer", c->primer, "bos", c->bos,
                                      "max_len", (json_int_t)c->max_receiver_len, "target",
                                      c->target_question ? "question" : "answer"));
        json_object_set_new(j, "sender_input",
                            json_pack("{s:b, s:I}", "bos", c->sender_bos, "max_len",
                                      (json_int_t)c->max_sender_len));
        json_object_set_new(j, "eval_every", json_integer(c->eval_every));
        json_object_set_new(j, "quick_eval_n", json_integer(c->quick_eval_n));
        json_object_set_new(j, "checkpoint_every", json_integer(c->checkpoint_every));
    } else {
        const tp_run_model *m = c->kind == TP_KIND_SENDER_DIRECT ? c->sender : c->receiver;
        json_object_set_new(j, "model", model_json(m));
        if (c->kind == TP_KIND_TEXT_RELAY) json_object_set_new(j, "sender", model_json(c->sender));
        json_t *bo = tp_baseline_opts_json(tp_run_kind_name(c->kind), &c->bopts);
        if (bo) json_object_set_new(j, "baseline_options", bo);
        json_object_set_new(j, "direct_input",
                            json_pack("{s:b, s:I}", "bos", c->sender_bos, "max_len",
                                      (json_int_t)c->max_receiver_len));
    }
    tp_status st = tp_canon_json_hash(j, &c->canon, c->hash, err);
    json_decref(j);
    return st;
}

tp_status tp_run_cfg_resolve(tp_runner *r, const json_t *spec, tp_run_cfg *c, tp_err *err) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(spec)) return tp_errf(err, TP_EINVAL, "run spec: expected a table");
    TP_TRY(check_keys(spec, err));
    const char *s;
    TP_TRY(get_str(spec, "baseline", &s, err));
    if (!s)
        c->kind = TP_KIND_BRIDGE;
    else if (!strcmp(s, "sender_direct"))
        c->kind = TP_KIND_SENDER_DIRECT;
    else if (!strcmp(s, "receiver_direct"))
        c->kind = TP_KIND_RECEIVER_DIRECT;
    else if (!strcmp(s, "text_relay"))
        c->kind = TP_KIND_TEXT_RELAY;
    else if (!strcmp(s, "fewshot"))
        c->kind = TP_KIND_FEWSHOT;
    else
        return tp_errf(err, TP_EINVAL,
                       "run spec: baseline = '%s'; expected sender_direct, receiver_direct, "
                       "text_relay or fewshot",
                       s);
    {
        int64_t bseed; /* fewshot draws its shots with the run seed */
        TP_TRY(get_int(spec, "seed", 42, 0, INT64_MAX, &bseed, err));
        TP_TRY(tp_baseline_opts_resolve(tp_run_kind_name(c->kind),
                                        json_object_get(spec, "baseline_options"), (uint64_t)bseed,
                                        &c->bopts, err));
    }

    /* models */
    const char *sref, *rref;
    TP_TRY(get_str(spec, "sender", &sref, err));
    TP_TRY(get_str(spec, "receiver", &rref, err));
    if (c->kind != TP_KIND_RECEIVER_DIRECT && c->kind != TP_KIND_FEWSHOT) {
        if (!sref)
            return tp_errf(err, TP_EINVAL,
                           "run spec: 'sender' (a model alias or path) is "
                           "required");
        TP_TRY(tp_runner_model(r, sref, &c->sender, err));
    }
    if (c->kind != TP_KIND_SENDER_DIRECT) {
        if (!rref)
            return tp_errf(err, TP_EINVAL,
                           "run spec: 'receiver' (a model alias or path) "
                           "is required");
        TP_TRY(tp_runner_model(r, rref, &c->receiver, err));
    }

    /* task, opened now: its info supplies defaults that must be part of the hash */
    const char *task;
    TP_TRY(get_str(spec, "task", &task, err));
    if (!task) return tp_errf(err, TP_EINVAL, "run spec: 'task' is required (e.g. \"toy\")");
    TP_TRY(tp_registry_find(tp_runner_registry(r), TP_PLUGIN_TASK, task, &c->task, err));
    TP_TRY(make_opts(c->task, json_object_get(spec, "task_options"), "task_options", &c->task_opts,
                     err));
    const tp_task_vtable *tv = c->task->desc.vtable;
    TP_TRY(tv->open(c->task_opts, tp_runner_data_dir(r), &c->task_state, err));
    /* zero-filled (again) on purpose: a task built for an older ABI minor fills only the
     * members it knows, and the ones appended since must read as NULL / 0 (task.h) */
    memset(&c->info, 0, sizeof c->info);
    TP_TRY(tv->info(c->task_state, &c->info));
    TP_TRY(tp_baseline_opts_apply_task(tp_run_kind_name(c->kind), &c->bopts, task, &c->info, err));
    if (!c->info.is_generation && c->info.n_labels < 2)
        return tp_errf(err, TP_EUNSUP, "task '%s': a classification task needs >= 2 labels", task);

    /* scoring */
    TP_TRY(get_str(spec, "scoring", &s, err));
    if (!s) s = c->info.default_scoring ? c->info.default_scoring : "first_token";
    if (scoring_parse(s, &c->scoring) != 0)
        return tp_errf(err, TP_EINVAL,
                       "run spec: scoring = '%s'; expected first_token, generate or loglik", s);
    if (c->info.is_generation && c->scoring != TP_SCORE_GENERATE) /* run/gen_eval.h */
        return tp_errf(err, TP_EINVAL,
                       "run spec: scoring = '%s': task '%s' is a generation task, scored by "
                       "generate",
                       s, task);
    TP_TRY(get_int32(spec, "max_new_tokens",
                     c->info.max_new_tokens > 0 ? c->info.max_new_tokens : 5, 1, 512,
                     &c->max_new_tokens, err));
    TP_TRY(get_int32(spec, "eval_n", 0, 0, 1 << 30, &c->eval_n, err));
    int64_t es;
    TP_TRY(get_int(spec, "eval_seed", 0, 0, INT64_MAX, &es, err));
    c->eval_seed = (uint64_t)es;
    TP_TRY(get_int32(spec, "eval_batch", 32, 1, 4096, &c->eval_batch, err));
    TP_TRY(get_bool(spec, "sender_bos", 1, &c->sender_bos, err));
    const tp_run_model *scorer = c->kind == TP_KIND_SENDER_DIRECT ? c->sender : c->receiver;
    int maxpos = scorer->m->cfg.max_position_embeddings;
    TP_TRY(get_int32(spec, "max_receiver_len", maxpos, 1, 1 << 30, &c->max_receiver_len, err));
    if (c->max_receiver_len > maxpos)
        return tp_errf(err, TP_ERANGE,
                       "run spec: max_receiver_len = %d exceeds the model's "
                       "max_position_embeddings %d (%s)",
                       c->max_receiver_len, maxpos, scorer->path);

    if (c->kind == TP_KIND_BRIDGE) {
        const char *bridge;
        TP_TRY(get_str(spec, "bridge", &bridge, err));
        if (!bridge) bridge = "perceiver";
        if (!strcmp(bridge, "sender_direct") || !strcmp(bridge, "receiver_direct"))
            return tp_errf(err, TP_EINVAL,
                           "run spec: '%s' is a baseline; write baseline = \"%s\" instead of "
                           "bridge",
                           bridge, bridge);
        TP_TRY(tp_registry_find(tp_runner_registry(r), TP_PLUGIN_BRIDGE, bridge, &c->bridge, err));
        TP_TRY(make_opts(c->bridge, json_object_get(spec, "bridge_options"), "bridge_options",
                         &c->bridge_opts, err));
        TP_TRY(parse_losses(r, c, json_object_get(spec, "losses"), err));
        int nl = c->sender->m->cfg.num_hidden_layers;
        /* the range is checked by the trainer (so the failure is recorded on the run) */
        TP_TRY(get_int32(spec, "layer", nl / 2, -1000000, 1000000, &c->layer, err));
        int64_t seed;
        TP_TRY(get_int(spec, "seed", 42, 0, INT64_MAX, &seed, err));
        c->seed = (uint64_t)seed;
        TP_TRY(get_int32(spec, "steps", 2000, 0, 100000000, &c->steps, err));
        TP_TRY(get_int32(spec, "batch", 16, 1, 65536, &c->batch, err));
        TP_TRY(get_real(spec, "lr", 2e-4, 0, 10, &c->lr, err));
        TP_TRY(get_real(spec, "weight_decay", 0.01, 0, 10, &c->weight_decay, err));
        TP_TRY(get_real(spec, "clip", 1.0, 0, 1e9, &c->clip, err));
        TP_TRY(get_int32(spec, "warmup", 0, 0, 100000000, &c->warmup, err));
        TP_TRY(get_real(spec, "min_lr_ratio", 0, 0, 1, &c->min_lr_ratio, err));
        TP_TRY(get_str(spec, "schedule", &s, err));
        if (!s || !strcmp(s, "constant"))
            c->cosine = 0;
        else if (!strcmp(s, "cosine"))
            c->cosine = 1;
        else
            return tp_errf(err, TP_EINVAL,
                           "run spec: schedule = '%s'; expected constant or "
                           "cosine",
                           s);
        if (c->warmup > c->steps)
            return tp_errf(err, TP_ERANGE, "run spec: warmup = %d exceeds steps = %d", c->warmup,
                           c->steps);
        TP_TRY(get_str(spec, "primer", &s, err));
        if (!s) s = c->info.receiver_primer ? c->info.receiver_primer : "";
        c->primer = tp_strdup(s);
        if (!c->primer) return tp_errf(err, TP_ENOMEM, "run spec: out of memory");
        TP_TRY(get_bool(spec, "bos", 0, &c->bos, err));
        TP_TRY(get_str(spec, "target", &s, err));
        if (!s || !strcmp(s, "answer"))
            c->target_question = 0;
        else if (!strcmp(s, "question"))
            c->target_question = 1;
        else
            return tp_errf(err, TP_EINVAL, "run spec: target = '%s'; expected answer or question",
                           s);
        TP_TRY(get_int32(spec, "max_sender_len", 256, 1, 1 << 30, &c->max_sender_len, err));
        TP_TRY(get_int32(spec, "eval_every", 0, 0, 100000000, &c->eval_every, err));
        TP_TRY(get_int32(spec, "quick_eval_n", 64, 1, 1 << 30, &c->quick_eval_n, err));
        TP_TRY(get_int32(spec, "checkpoint_every", 0, 0, 100000000, &c->checkpoint_every, err));
        TP_TRY(get_str(spec, "precision", &s, err));
        if (s && strcmp(s, "f32") && strcmp(s, "bf16"))
            return tp_errf(err, TP_EINVAL,
                           "run spec: precision = '%s'; expected f32 (f32 bridge params, the "
                           "default) or bf16 (bf16 params and AdamW moments, f32 grads)",
                           s);
        c->bf16_params = s && !strcmp(s, "bf16");
        if (c->checkpoint_every == 0) c->checkpoint_every = c->steps > 0 ? (c->steps + 3) / 4 : 1;
    } else {
        static const char *const train_only[] = {"bridge",
                                                 "bridge_options",
                                                 "losses",
                                                 "layer",
                                                 "steps",
                                                 "batch",
                                                 "lr",
                                                 "weight_decay",
                                                 "clip",
                                                 "warmup",
                                                 "schedule",
                                                 "min_lr_ratio",
                                                 "primer",
                                                 "bos",
                                                 "max_sender_len",
                                                 "eval_every",
                                                 "quick_eval_n",
                                                 "checkpoint_every",
                                                 "target",
                                                 "precision"};
        for (size_t i = 0; i < sizeof train_only / sizeof *train_only; i++)
            if (json_object_get(spec, train_only[i]))
                return tp_errf(err, TP_EINVAL,
                               "run spec: '%s' has no meaning for baseline %s (it trains "
                               "nothing); remove it",
                               train_only[i], tp_run_kind_name(c->kind));
        /* the seed of a baseline only names the replicate; it does not change the result, so it
         * is not part of its identity (a sweep over seeds runs each baseline once) */
    }
    return build_json(c, err);
}

void tp_run_cfg_free(tp_run_cfg *c) {
    if (!c) return;
    if (c->task && c->task_state) {
        const tp_task_vtable *tv = c->task->desc.vtable;
        tv->close(c->task_state);
    }
    tp_options_free(c->task_opts);
    tp_options_free(c->bridge_opts);
    for (int i = 0; i < c->n_losses; i++) tp_options_free(c->losses[i].opts);
    free(c->primer);
    free(c->canon);
    tp_baseline_opts_free(&c->bopts);
    memset(c, 0, sizeof *c);
}

double tp_run_lr_at(const tp_run_cfg *c, int step) {
    /* HF semantics: get_constant_schedule_with_warmup / get_cosine_schedule_with_warmup */
    if (c->cosine) {
        tp_lr_schedule s = {TP_LR_WARMUP_COSINE, c->lr, c->lr * c->min_lr_ratio, c->warmup,
                            c->steps};
        return tp_lr_at(&s, step);
    }
    if (c->warmup > 0 && step < c->warmup) return c->lr * (double)step / (double)c->warmup;
    return c->lr;
}
