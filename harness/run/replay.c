/* replay.c — re-running a stored run and comparing old with new (see replay.h). */
#include "run/replay.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/run.h"
#include "util/strutil.h"

/* ---- config -> spec ------------------------------------------------------------------------- */

static json_t *path_get(json_t *root, const char *path) {
    char buf[256];
    tp_strlcpy(buf, path, sizeof buf);
    json_t *cur = root;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur;
}

/* spec[key] = config[path] when present */
static void copy(json_t *spec, const char *key, json_t *cfg, const char *path) {
    json_t *v = path_get(cfg, path);
    if (v && !json_is_null(v)) json_object_set(spec, key, v);
}

tp_status tp_replay_spec(const char *config_json, const char *sender_alias,
                         const char *receiver_alias, json_t **out, tp_err *err) {
    *out = NULL;
    json_error_t je;
    json_t *cfg = json_loads(config_json, 0, &je);
    if (!cfg) return tp_errf(err, TP_EFORMAT, "replay: stored config: %s", je.text);
    json_t *kind = json_object_get(cfg, "kind");
    const char *k = json_is_string(kind) ? json_string_value(kind) : "";
    json_t *spec = json_object();
    tp_status st = TP_OK;
    copy(spec, "task", cfg, "task.name");
    copy(spec, "task_options", cfg, "task.options");
    copy(spec, "eval_n", cfg, "eval.n");
    if (json_integer_value(path_get(cfg, "eval.n")) > 0) copy(spec, "eval_seed", cfg, "eval.seed");
    copy(spec, "eval_batch", cfg, "eval.batch");
    copy(spec, "scoring", cfg, "eval.scoring");
    copy(spec, "max_new_tokens", cfg, "eval.max_new_tokens");
    if (!strcmp(k, "bridge")) {
        json_object_set_new(spec, "sender", json_string(sender_alias ? sender_alias : ""));
        json_object_set_new(spec, "receiver", json_string(receiver_alias ? receiver_alias : ""));
        copy(spec, "bridge", cfg, "bridge.name");
        copy(spec, "bridge_options", cfg, "bridge.options");
        json_t *ls = json_object_get(cfg, "losses"), *arr = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(ls, i, l) {
            json_array_append_new(arr,
                                  json_pack("{s:O, s:O, s:O}", "name", json_object_get(l, "name"),
                                            "weight", json_object_get(l, "weight"), "options",
                                            json_object_get(l, "options")));
        }
        json_object_set_new(spec, "losses", arr);
        copy(spec, "layer", cfg, "layer");
        copy(spec, "seed", cfg, "seed");
        static const char *const train[] = {"steps",        "batch",    "lr",
                                            "weight_decay", "clip",     "warmup",
                                            "min_lr_ratio", "schedule", "precision"};
        for (size_t t = 0; t < sizeof train / sizeof *train; t++) {
            char p[64];
            snprintf(p, sizeof p, "train.%s", train[t]);
            copy(spec, train[t], cfg, p);
        }
        copy(spec, "primer", cfg, "receiver_input.primer");
        copy(spec, "target", cfg, "receiver_input.target");
        copy(spec, "bos", cfg, "receiver_input.bos");
        copy(spec, "max_receiver_len", cfg, "receiver_input.max_len");
        copy(spec, "sender_bos", cfg, "sender_input.bos");
        copy(spec, "max_sender_len", cfg, "sender_input.max_len");
        copy(spec, "eval_every", cfg, "eval_every");
        copy(spec, "quick_eval_n", cfg, "quick_eval_n");
        copy(spec, "checkpoint_every", cfg, "checkpoint_every");
    } else if (!strcmp(k, "sender_direct") || !strcmp(k, "receiver_direct") ||
               !strcmp(k, "text_relay") || !strcmp(k, "fewshot")) {
        json_object_set_new(spec, "baseline", json_string(k));
        int snd = !strcmp(k, "sender_direct");
        json_object_set_new(spec, snd ? "sender" : "receiver",
                            json_string((snd ? sender_alias : receiver_alias)
                                            ? (snd ? sender_alias : receiver_alias)
                                            : ""));
        /* the relay's sender writes the summary the receiver classifies */
        if (!strcmp(k, "text_relay"))
            json_object_set_new(spec, "sender", json_string(sender_alias ? sender_alias : ""));
        json_t *bo = json_object_get(cfg, "baseline_options");
        if (json_is_object(bo)) {
            json_t *opts = json_deep_copy(bo);
            /* fewshot's shot-drawing seed is the run seed, stored inside its options */
            json_t *seed = json_object_get(opts, "seed");
            if (seed && !strcmp(k, "fewshot")) {
                json_object_set(spec, "seed", seed);
                json_object_del(opts, "seed");
            }
            json_object_set_new(spec, "baseline_options", opts);
        }
        copy(spec, "sender_bos", cfg, "direct_input.bos");
        copy(spec, "max_receiver_len", cfg, "direct_input.max_len");
    } else {
        st = tp_errf(err, TP_EUNSUP,
                     "replay: run kind '%s': expected bridge, sender_direct, receiver_direct, "
                     "text_relay or fewshot",
                     k[0] ? k : "(none)");
    }
    json_decref(cfg);
    if (st != TP_OK) {
        json_decref(spec);
        return st;
    }
    *out = spec;
    return TP_OK;
}

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct rctx {
    const tp_replay_opts *o;
    tp_replay_report *rep;
} rctx;

static void warnf(rctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(rctx *c, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->rep->warnings++;
    if (c->o->warn) c->o->warn(c->o->warn_ctx, buf);
}

/* Paths where a and b differ (at most max reported). */
static int json_diff(json_t *a, json_t *b, const char *path, char out[][256], int n, int max) {
    if (json_equal(a, b)) return n;
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            char p[256];
            snprintf(p, sizeof p, "%s%s%s", path, path[0] ? "." : "", k);
            json_t *w = json_object_get(b, k);
            if (!w) {
                if (n < max) snprintf(out[n++], 256, "%s (only in the stored config)", p);
            } else {
                n = json_diff(v, w, p, out, n, max);
            }
        }
        json_object_foreach(b, k, v) {
            if (json_object_get(a, k)) continue;
            if (n < max)
                snprintf(out[n++], 256, "%s%s%s (only in the rebuilt config)", path,
                         path[0] ? "." : "", k);
        }
        return n;
    }
    if (n < max) {
        char *sa = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
        char *sb = json_dumps(b, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(out[n++], 256, "%s: stored %.80s, now %.80s", path[0] ? path : "(root)",
                 sa ? sa : "?", sb ? sb : "?");
        free(sa);
        free(sb);
    }
    return n;
}

static char *col_text(sqlite3_stmt *q, int i) {
    const char *t = (const char *)sqlite3_column_text(q, i);
    return t ? tp_strdup(t) : NULL;
}

typedef struct runrow {
    char *config, *hash, *status, *origin, *sender, *receiver, *git, *plugins_sha;
    int git_dirty;
} runrow;

static void runrow_free(runrow *r) {
    free(r->config);
    free(r->hash);
    free(r->status);
    free(r->origin);
    free(r->sender);
    free(r->receiver);
    free(r->git);
    free(r->plugins_sha);
}

static tp_status read_run(tp_store *s, int64_t id, runrow *r, tp_err *err) {
    memset(r, 0, sizeof *r);
    sqlite3 *db = tp_store_db(s);
    sqlite3_stmt *q;
    const char *sql = "SELECT r.config_json, r.config_hash, r.status, r.origin, r.sender, "
                      "r.receiver, r.git_commit, ifnull(r.git_dirty, -1), e.plugins_json FROM runs "
                      "r LEFT JOIN environment e ON e.run_id = r.id WHERE r.id = ?";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "replay: %s: %s", tp_store_path(s), sqlite3_errmsg(db));
    sqlite3_bind_int64(q, 1, id);
    tp_status st = TP_OK;
    if (sqlite3_step(q) == SQLITE_ROW) {
        r->config = col_text(q, 0);
        r->hash = col_text(q, 1);
        r->status = col_text(q, 2);
        r->origin = col_text(q, 3);
        r->sender = col_text(q, 4);
        r->receiver = col_text(q, 5);
        r->git = col_text(q, 6);
        r->git_dirty = sqlite3_column_int(q, 7);
        r->plugins_sha = col_text(q, 8);
    } else {
        st = tp_errf(err, TP_EINVAL, "replay: %s has no run %lld", tp_store_path(s), (long long)id);
    }
    sqlite3_finalize(q);
    return st;
}

static void check_plugin(rctx *c, tp_plugin_kind kind, json_t *p, json_t *shas) {
    const char *name = json_string_value(json_object_get(p, "name"));
    const char *ver = json_string_value(json_object_get(p, "version"));
    if (!name) return;
    const tp_plugin *pl;
    tp_err e = {0};
    if (tp_registry_find(c->o->reg, kind, name, &pl, &e) != TP_OK) {
        warnf(c, "plugin %s/%s is not on the plugin path now", tp_plugin_kind_name(kind), name);
        return;
    }
    if (ver && strcmp(ver, pl->desc.version) != 0)
        warnf(c, "plugin %s/%s: version %s at run time, %s now", tp_plugin_kind_name(kind), name,
              ver, pl->desc.version);
    char key[256];
    snprintf(key, sizeof key, "%s/%s", tp_plugin_kind_name(kind), name);
    const char *sha = json_string_value(json_object_get(shas, key));
    if (!sha)
        warnf(c, "plugin %s: no .so hash was recorded for the run", key);
    else if (strcmp(sha, pl->sha256) != 0)
        warnf(c,
              "plugin %s: the .so differs from the one the run used (sha256 %.12s..., now "
              "%.12s...)",
              key, sha, pl->sha256);
}

static tp_status add_model(rctx *c, tp_runner *rn, json_t *m, const char *override,
                           const char *alias, const char *role, tp_err *err) {
    const char *path = override ? override : json_string_value(json_object_get(m, "path"));
    const char *fp = json_string_value(json_object_get(m, "fingerprint"));
    if (!path)
        return tp_errf(err, TP_EFORMAT, "replay: the stored config has no %s model path", role);
    const tp_run_model *rm;
    TP_TRY(tp_runner_add_model(rn, path, alias, &rm, err));
    if (fp && strcmp(fp, rm->fingerprint) != 0)
        warnf(c, "%s model %s: weight fingerprint %.20s... at run time, %.20s... now", role, path,
              fp, rm->fingerprint);
    return TP_OK;
}

/* ---- old vs new ------------------------------------------------------------------------------ */

typedef struct pred {
    char *id, *hash, *pred;
    int correct; /* -1 NULL */
    int has_score;
    double score;
} pred;

static int cmp_pred(const void *a, const void *b) {
    return strcmp(((const pred *)a)->id, ((const pred *)b)->id);
}

static tp_status load_preds(tp_store *s, int64_t id, pred **out, int *n, tp_err *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q;
    const char *sql = "SELECT example_id, example_hash, prediction, correct, score FROM "
                      "predictions WHERE run_id = ? AND split = 'eval'";
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "replay: %s: %s", tp_store_path(s),
                       sqlite3_errmsg(tp_store_db(s)));
    sqlite3_bind_int64(q, 1, id);
    int cap = 0;
    tp_status st = TP_OK;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            pred *np = realloc(*out, (size_t)cap * sizeof *np);
            if (!np) {
                st = tp_errf(err, TP_ENOMEM, "replay: out of memory");
                break;
            }
            *out = np;
        }
        pred *p = &(*out)[(*n)++];
        p->id = col_text(q, 0);
        p->hash = col_text(q, 1);
        p->pred = col_text(q, 2);
        p->correct = sqlite3_column_type(q, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(q, 3);
        p->has_score = sqlite3_column_type(q, 4) != SQLITE_NULL;
        p->score = sqlite3_column_double(q, 4);
    }
    sqlite3_finalize(q);
    if (*n) qsort(*out, (size_t)*n, sizeof **out, cmp_pred);
    return st;
}

static void free_preds(pred *p, int n) {
    for (int i = 0; i < n; i++) {
        free(p[i].id);
        free(p[i].hash);
        free(p[i].pred);
    }
    free(p);
}

static int same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void compare_preds(rctx *c, const pred *a, int na, const pred *b, int nb) {
    tp_replay_report *r = c->rep;
    int i = 0, j = 0, hash_diff = 0;
    int64_t only_old_ok = 0, only_new_ok = 0;
    while (i < na || j < nb) {
        int k = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i].id, b[j].id);
        if (k < 0) {
            r->only_old++;
            i++;
        } else if (k > 0) {
            r->only_new++;
            j++;
        } else {
            r->pairs++;
            if (!same_str(a[i].hash, b[j].hash)) hash_diff++;
            int same = same_str(a[i].pred, b[j].pred) && a[i].correct == b[j].correct &&
                       a[i].has_score == b[j].has_score &&
                       (!a[i].has_score || memcmp(&a[i].score, &b[j].score, sizeof(double)) == 0);
            r->pred_same += same;
            only_old_ok += a[i].correct == 1 && b[j].correct == 0;
            only_new_ok += a[i].correct == 0 && b[j].correct == 1;
            i++;
            j++;
        }
    }
    tp_stats_mcnemar(only_old_ok, only_new_ok, &r->mc);
    if (hash_diff)
        warnf(c,
              "data: %d of %d examples have a different text hash than at run time (the data "
              "changed)",
              hash_diff, r->pairs);
    if (r->only_old || r->only_new)
        warnf(c, "data: %d examples scored only at run time, %d only now", r->only_old,
              r->only_new);
}

static tp_status load_losses(tp_store *s, int64_t id, double **v, int *n, tp_err *err) {
    *v = NULL;
    *n = 0;
    sqlite3_stmt *q;
    const char *sql = "SELECT step, value FROM metrics WHERE run_id = ? AND name = 'train/loss' "
                      "ORDER BY step";
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "replay: %s: %s", tp_store_path(s),
                       sqlite3_errmsg(tp_store_db(s)));
    sqlite3_bind_int64(q, 1, id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t step = sqlite3_column_int64(q, 0);
        if (step < 0 || step > 100000000) continue;
        if (step >= *n) {
            double *nv = realloc(*v, (size_t)(step + 1) * sizeof *nv);
            if (!nv) {
                sqlite3_finalize(q);
                return tp_errf(err, TP_ENOMEM, "replay: out of memory");
            }
            for (int64_t k = *n; k <= step; k++) nv[k] = NAN;
            *v = nv;
            *n = (int)step + 1;
        }
        (*v)[step] = sqlite3_column_type(q, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 1);
    }
    sqlite3_finalize(q);
    return TP_OK;
}

static double accuracy_of(tp_store *s, int64_t id, int64_t *n) {
    sqlite3_stmt *q;
    double v = NAN;
    *n = -1;
    const char *sql = "SELECT value, n FROM results WHERE run_id = ? AND split = 'eval' AND "
                      "metric = 'accuracy' ORDER BY id LIMIT 1";
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK) return v;
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        v = sqlite3_column_double(q, 0);
        *n = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    return v;
}

static tp_status compare(rctx *c, tp_store *dst, tp_err *err) {
    tp_replay_report *r = c->rep;
    tp_store *src = c->o->src;
    r->old_acc = accuracy_of(src, c->o->run_id, &r->old_n);
    r->new_acc = accuracy_of(dst, r->new_run_id, &r->new_n);
    double *la, *lb;
    int na, nb;
    TP_TRY(load_losses(src, c->o->run_id, &la, &na, err));
    tp_status st = load_losses(dst, r->new_run_id, &lb, &nb, err);
    for (int i = 0; st == TP_OK && i < (na > nb ? na : nb); i++) {
        int ha = i < na && !isnan(la[i]), hb = i < nb && !isnan(lb[i]);
        if (ha && hb) {
            r->loss_steps++;
            r->loss_same += memcmp(&la[i], &lb[i], sizeof(double)) == 0;
        } else if (ha || hb) {
            r->loss_only_one++;
        }
    }
    free(la);
    free(lb);
    pred *pa = NULL, *pb = NULL;
    int ma = 0, mb = 0;
    if (st == TP_OK) st = load_preds(src, c->o->run_id, &pa, &ma, err);
    if (st == TP_OK) st = load_preds(dst, r->new_run_id, &pb, &mb, err);
    if (st == TP_OK) compare_preds(c, pa, ma, pb, mb);
    free_preds(pa, ma);
    free_preds(pb, mb);
    r->identical = st == TP_OK && memcmp(&r->old_acc, &r->new_acc, sizeof(double)) == 0 &&
                   r->loss_steps == r->loss_same && r->loss_only_one == 0 &&
                   r->pairs == r->pred_same && r->only_old == 0 && r->only_new == 0 && r->pairs > 0;
    return st;
}

/* ---- the replay ------------------------------------------------------------------------------ */

tp_status tp_replay(const tp_replay_opts *o, tp_replay_report *rep, tp_err *err) {
    memset(rep, 0, sizeof *rep);
    rep->old_acc = rep->new_acc = NAN;
    rctx c = {o, rep};
    if (!o->into) return tp_errf(err, TP_EINVAL, "replay: a results db to replay into is required");
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(tp_store_path(o->src), a) && realpath(o->into, b) && !strcmp(a, b))
        return tp_errf(err, TP_EINVAL,
                       "replay: %s: replaying into the run's own db would only find the run done; "
                       "give another db",
                       o->into);
    runrow rr;
    TP_TRY(read_run(o->src, o->run_id, &rr, err));
    tp_status st = TP_OK;
    if (rr.origin && !strcmp(rr.origin, "study"))
        st = tp_errf(err, TP_EINVAL,
                     "replay: run %lld was imported from the study's result files (origin study); "
                     "there is no harness configuration to re-run",
                     (long long)o->run_id);
    else if (strcmp(rr.status, "done") != 0)
        st = tp_errf(err, TP_ESTATE, "replay: run %lld is %s, not done; nothing to compare with",
                     (long long)o->run_id, rr.status);
    json_t *cfg = NULL, *spec = NULL, *shas = NULL;
    if (st == TP_OK) {
        json_error_t je;
        cfg = json_loads(rr.config, 0, &je);
        if (!cfg)
            st = tp_errf(err, TP_EFORMAT, "replay: run %lld: config: %s", (long long)o->run_id,
                         je.text);
    }
    const char *kind = cfg ? json_string_value(json_object_get(cfg, "kind")) : NULL;
    const char *salias = rr.sender ? rr.sender : "sender";
    const char *ralias = rr.receiver ? rr.receiver : "receiver";
    if (st == TP_OK) st = tp_replay_spec(rr.config, salias, ralias, &spec, err);
    /* code, plugins */
    if (st == TP_OK) {
        if (!rr.git || !o->git_commit)
            warnf(&c, "code: commit %s at run time, %s now (cannot compare)",
                  rr.git ? rr.git : "unknown", o->git_commit ? o->git_commit : "unknown");
        else if (strcmp(rr.git, o->git_commit) != 0)
            warnf(&c, "code: the run was made by commit %.12s, this build is %.12s", rr.git,
                  o->git_commit);
        if (rr.git_dirty == 1) warnf(&c, "code: the run's tree had uncommitted changes");
        if (o->git_dirty == 1) warnf(&c, "code: this build's tree has uncommitted changes");
        json_error_t je;
        shas = rr.plugins_sha ? json_loads(rr.plugins_sha, 0, &je) : json_object();
        if (!shas) shas = json_object();
        check_plugin(&c, TP_PLUGIN_TASK, json_object_get(cfg, "task"), shas);
        if (json_object_get(cfg, "bridge"))
            check_plugin(&c, TP_PLUGIN_BRIDGE, json_object_get(cfg, "bridge"), shas);
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(cfg, "losses"), i, l)
            check_plugin(&c, TP_PLUGIN_LOSS, l, shas);
    }
    tp_store *dst = NULL;
    tp_runner *rn = NULL;
    if (st == TP_OK) st = tp_store_open(&dst, o->into, TP_STORE_RW, err);
    if (st == TP_OK) {
        tp_runner_opts ro = {0};
        ro.registry = o->reg;
        ro.store = dst;
        ro.data_dir = o->data_dir;
        ro.git_commit = o->git_commit;
        ro.git_dirty = o->git_dirty;
        ro.progress = 0;
        st = tp_runner_new(&rn, &ro, err);
    }
    /* models, with their fingerprints */
    if (st == TP_OK && !strcmp(kind, "bridge")) {
        st = add_model(&c, rn, json_object_get(cfg, "sender"), o->sender_path, salias, "sender",
                       err);
        if (st == TP_OK)
            st = add_model(&c, rn, json_object_get(cfg, "receiver"), o->receiver_path, ralias,
                           "receiver", err);
    } else if (st == TP_OK) {
        int snd = !strcmp(kind, "sender_direct");
        st = add_model(&c, rn, json_object_get(cfg, "model"),
                       snd ? o->sender_path : o->receiver_path, snd ? salias : ralias,
                       snd ? "sender" : "receiver", err);
        if (st == TP_OK && !strcmp(kind, "text_relay"))
            st = add_model(&c, rn, json_object_get(cfg, "sender"), o->sender_path, salias, "sender",
                           err);
    }
    /* the rebuilt config must be the stored one */
    if (st == TP_OK) {
        char *canon = NULL, hash[65];
        st = tp_runner_resolve(rn, spec, &canon, hash, err);
        if (st == TP_OK) {
            rep->hash_match = !strcmp(hash, rr.hash);
            if (!rep->hash_match) {
                json_error_t je;
                json_t *now = json_loads(canon, 0, &je);
                char diffs[8][256];
                int nd = now ? json_diff(cfg, now, "", diffs, 0, 8) : 0;
                for (int i = 0; i < nd; i++) warnf(&c, "config: %s", diffs[i]);
                if (nd == 0) warnf(&c, "config: the rebuilt config hashes differently");
                json_decref(now);
            }
        }
        free(canon);
    }
    if (st == TP_OK) {
        tp_run_result *res = calloc(1, sizeof *res);
        if (!res) st = tp_errf(err, TP_ENOMEM, "replay: out of memory");
        if (st == TP_OK) st = tp_runner_run(rn, spec, res, err);
        if (st == TP_OK) rep->new_run_id = res->run_id;
        free(res);
    }
    if (st == TP_OK) st = compare(&c, dst, err);
    tp_runner_free(rn);
    tp_store_close(dst);
    json_decref(spec);
    json_decref(cfg);
    json_decref(shas);
    runrow_free(&rr);
    return st;
}

static void pct(FILE *f, double v) {
    if (isnan(v))
        fprintf(f, "%12s", "-");
    else
        fprintf(f, "%11.2f%%", 100 * v);
}

void tp_replay_print(const tp_replay_report *r, int64_t old_id, FILE *f) {
    fprintf(f, "%-22s %12s %12s\n", "", "original", "replay");
    fprintf(f, "%-22s %12lld %12lld\n", "run", (long long)old_id, (long long)r->new_run_id);
    fprintf(f, "%-22s", "accuracy");
    pct(f, r->old_acc);
    fputc(' ', f);
    pct(f, r->new_acc);
    fputc('\n', f);
    fprintf(f, "%-22s %12lld %12lld\n", "examples", (long long)r->old_n, (long long)r->new_n);
    fprintf(f, "config hash            %s\n", r->hash_match ? "same" : "DIFFERENT (see warnings)");
    fprintf(f, "training losses        %d of %d steps bit-identical%s\n", r->loss_same,
            r->loss_steps, r->loss_only_one ? " (some steps logged by one side only)" : "");
    fprintf(f, "predictions            %d of %d examples identical (prediction, correct, score)\n",
            r->pred_same, r->pairs);
    fprintf(f,
            "McNemar                only original correct %lld, only replay correct %lld, p = %.4g "
            "(%s)\n",
            (long long)r->mc.b, (long long)r->mc.c, r->mc.p,
            r->mc.exact ? "exact binomial" : "chi-square, continuity corrected");
    fprintf(f, "verdict                %s\n",
            r->identical ? "bit-identical" : "DIFFERS from the original");
}
