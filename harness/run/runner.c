/* runner.c — one run from specification to recorded result (see run.h): resolve + hash, skip a
 * finished config, begin (or restart) the run row, train with resume, evaluate, write
 * predictions / results / environment, finish as done or failed. */
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run/baselines.h"
#include "run/batch.h"
#include "run/evaluator.h"
#include "run/fairness.h"
#include "run/fewshot.h"
#include "run/gen_eval.h"
#include "run/relay.h"
#include "run/run_config.h"
#include "run/trainer.h"
#include "util/canon_json.h"
#include "util/sha256.h"
#include "util/strutil.h"

#define MAX_MODELS 64

tp_status tp_run_model_load(tp_run_model *rm, const char *path, tp_err *err);

struct tp_runner {
    tp_registry *reg;
    tp_store *store;
    char data_dir[4096];
    int has_data_dir;
    char ckpt_dir[4096];
    int64_t experiment_id;
    char git_commit[128];
    int has_git, git_dirty;
    int progress;
    char lua_version[64];
    tp_run_model *models[MAX_MODELS];
    int n_models;
    double *last_losses;
    int n_last;
    char *traceback;
};

void tp_runner_set_traceback(tp_runner *r, const char *tb) {
    free(r->traceback);
    r->traceback = tb ? tp_strdup(tb) : NULL;
}

const char *tp_runner_data_dir(const tp_runner *r) {
    return r->has_data_dir ? r->data_dir : NULL;
}

tp_registry *tp_runner_registry(const tp_runner *r) {
    return r->reg;
}

int tp_runner_last_losses(const tp_runner *r, const double **losses) {
    *losses = r->last_losses;
    return r->n_last;
}

tp_status tp_runner_new(tp_runner **out, const tp_runner_opts *o, tp_err *err) {
    *out = NULL;
    if (!o || !o->registry) return tp_errf(err, TP_EINVAL, "runner: a plugin registry is required");
    tp_runner *r = calloc(1, sizeof *r);
    if (!r) return tp_errf(err, TP_ENOMEM, "runner: out of memory");
    r->reg = o->registry;
    r->store = o->store;
    if (o->data_dir && o->data_dir[0]) {
        tp_strlcpy(r->data_dir, o->data_dir, sizeof r->data_dir);
        r->has_data_dir = 1;
    }
    if (o->ckpt_dir && o->ckpt_dir[0]) {
        tp_strlcpy(r->ckpt_dir, o->ckpt_dir, sizeof r->ckpt_dir);
    } else if (o->store) {
        /* next to results.db: <dir>/checkpoints */
        char tmp[4096];
        tp_strlcpy(tmp, tp_store_path(o->store), sizeof tmp);
        char *slash = strrchr(tmp, '/');
        if (slash)
            *slash = 0;
        else
            strcpy(tmp, ".");
        snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/checkpoints", tmp);
    }
    r->experiment_id = o->experiment_id;
    if (o->git_commit) {
        tp_strlcpy(r->git_commit, o->git_commit, sizeof r->git_commit);
        r->has_git = 1;
    }
    r->git_dirty = o->git_dirty;
    r->progress = o->progress < 0 ? isatty(2) : o->progress;
    if (o->lua_version) tp_strlcpy(r->lua_version, o->lua_version, sizeof r->lua_version);
    *out = r;
    return TP_OK;
}

void tp_runner_free(tp_runner *r) {
    if (!r) return;
    for (int i = 0; i < r->n_models; i++) {
        /* a second alias (tp_runner_add_model) shares an earlier entry's weights: free once */
        int shared = 0;
        for (int j = 0; j < i; j++) shared |= r->models[j]->m == r->models[i]->m;
        if (!shared) tp_model_free(r->models[i]->m);
    }
    for (int i = 0; i < r->n_models; i++) free(r->models[i]); /* after: the loop above reads them */
    free(r->last_losses);
    free(r->traceback);
    free(r);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

tp_status tp_runner_add_model(tp_runner *r, const char *path, const char *alias,
                              const tp_run_model **out, tp_err *err) {
    char real[PATH_MAX];
    if (!realpath(path, real))
        return tp_errf(err, TP_EIO,
                       "model '%s': no such directory (expected a Hugging Face model directory; "
                       "`telepathy make-tiny DIR` makes a tiny one)",
                       path);
    const char *name = alias && alias[0] ? alias : base_name(real);
    for (int i = 0; i < r->n_models; i++) {
        tp_run_model *m = r->models[i];
        if (!strcmp(m->alias, name) && strcmp(m->path, real) != 0)
            return tp_errf(err, TP_EINVAL, "model alias '%s' already names %s (not %s)", name,
                           m->path, real);
    }
    for (int i = 0; i < r->n_models; i++)
        if (!strcmp(r->models[i]->path, real)) {
            if (alias && alias[0] && strcmp(r->models[i]->alias, alias) != 0 &&
                r->n_models < MAX_MODELS) {
                /* a second alias for a loaded model shares its weights */
                tp_run_model *a = malloc(sizeof *a);
                if (!a) return tp_errf(err, TP_ENOMEM, "runner: out of memory");
                *a = *r->models[i];
                tp_strlcpy(a->alias, alias, sizeof a->alias);
                a->m = NULL; /* not owned */
                r->models[r->n_models++] = a;
                a->m = r->models[i]->m;
                *out = a;
                return TP_OK;
            }
            *out = r->models[i];
            return TP_OK;
        }
    if (r->n_models >= MAX_MODELS)
        return tp_errf(err, TP_ERANGE, "runner: more than %d models in one script", MAX_MODELS);
    tp_run_model *m = calloc(1, sizeof *m);
    if (!m) return tp_errf(err, TP_ENOMEM, "runner: out of memory");
    tp_status st = tp_run_model_load(m, real, err);
    if (st != TP_OK) {
        free(m);
        return st;
    }
    tp_strlcpy(m->alias, name, sizeof m->alias);
    r->models[r->n_models++] = m;
    *out = m;
    return TP_OK;
}

tp_status tp_runner_model(tp_runner *r, const char *ref, const tp_run_model **out, tp_err *err) {
    for (int i = 0; i < r->n_models; i++)
        if (!strcmp(r->models[i]->alias, ref)) {
            *out = r->models[i];
            return TP_OK;
        }
    if (!strchr(ref, '/') && access(ref, F_OK) != 0) {
        char names[1024] = "";
        size_t o = 0;
        for (int i = 0; i < r->n_models && o < sizeof names; i++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                                  r->models[i]->alias);
        return tp_errf(err, TP_EINVAL,
                       "model '%s' is neither a loaded alias nor a directory; load it first with "
                       "tp.model{path=..., alias=\"%s\"} (loaded: %s)",
                       ref, ref, r->n_models ? names : "none");
    }
    return tp_runner_add_model(r, ref, NULL, out, err);
}

tp_status tp_runner_resolve(tp_runner *r, const json_t *spec, char **canon, char *hash,
                            tp_err *err) {
    tp_run_cfg c;
    tp_status st = tp_run_cfg_resolve(r, spec, &c, err);
    if (st == TP_OK) {
        *canon = c.canon;
        c.canon = NULL;
        strcpy(hash, c.hash);
    }
    tp_run_cfg_free(&c);
    return st;
}

/* ---- store helpers --------------------------------------------------------------------------- */

struct eval_ctx;
typedef struct rec {
    tp_runner *r;
    int64_t run_id;
    tp_trainer *t; /* quick evals */
    struct eval_ctx *e;
    int qn;
} rec;

static tp_status sink_metrics(void *user, const char *const *names, const double *vals,
                              const int64_t *steps, int n, tp_err *err) {
    rec *c = user;
    if (!c->r->store) return TP_OK;
    tp_metric_row *rows = malloc((size_t)n * sizeof *rows);
    if (!rows) return tp_errf(err, TP_ENOMEM, "runner: out of memory");
    for (int i = 0; i < n; i++) rows[i] = (tp_metric_row){steps[i], names[i], vals[i]};
    tp_status st = tp_store_metrics_add(c->r->store, c->run_id, rows, n, err);
    free(rows);
    return st;
}

static tp_status sink_ckpt(void *user, const char *path, int step, tp_err *err) {
    rec *c = user;
    (void)step;
    if (!c->r->store) return TP_OK;
    char hex[TP_SHA256_HEX];
    TP_TRY(tp_sha256_file_hex(path, hex, err));
    FILE *f = fopen(path, "rb");
    int64_t bytes = -1;
    if (f) {
        fseek(f, 0, SEEK_END);
        bytes = ftell(f);
        fclose(f);
    }
    return tp_store_artifact_add(c->r->store, c->run_id, "checkpoint", path, hex, bytes, err);
}

static tp_status last_checkpoint(tp_store *s, int64_t run_id, char *path, size_t cap, int *found,
                                 tp_err *err) {
    *found = 0;
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT path FROM artifacts WHERE run_id = ? AND kind = 'checkpoint' "
                      "ORDER BY id DESC";
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(tp_store_db(s)));
    sqlite3_bind_int64(q, 1, run_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(q, 0);
        if (p && access(p, R_OK) == 0) {
            tp_strlcpy(path, p, cap);
            *found = 1;
            break;
        }
    }
    sqlite3_finalize(q);
    return TP_OK;
}

/* Losses of steps [0, n) recorded by an earlier attempt (NaN where missing). */
static tp_status prior_losses(tp_store *s, int64_t run_id, double *out, int n, tp_err *err) {
    for (int i = 0; i < n; i++) out[i] = NAN;
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT step, value FROM metrics WHERE run_id = ? AND name = 'train/loss'";
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(tp_store_db(s)));
    sqlite3_bind_int64(q, 1, run_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t st = sqlite3_column_int64(q, 0);
        if (st >= 0 && st < n) out[st] = sqlite3_column_double(q, 1);
    }
    sqlite3_finalize(q);
    return TP_OK;
}

static void result_init(tp_run_result *res) {
    memset(res, 0, sizeof *res);
    res->accuracy = res->ci_low = res->ci_high = NAN;
    res->first_loss = res->final_loss = NAN;
}

/* Fills res from the stored rows of a finished run. */
static tp_status load_result(tp_store *s, int64_t run_id, tp_run_result *res, tp_err *err) {
    sqlite3 *db = tp_store_db(s);
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT metric, value, ci_low, ci_high, n, scheme FROM results WHERE "
                      "run_id = ? AND split = 'eval' ORDER BY id";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(db));
    sqlite3_bind_int64(q, 1, run_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(q, 0);
        double v = sqlite3_column_double(q, 1);
        int64_t n = sqlite3_column_int64(q, 4);
        if (!m) continue;
        if (!strcmp(m, "accuracy")) {
            res->accuracy = v;
            res->ci_low = sqlite3_column_double(q, 2);
            res->ci_high = sqlite3_column_double(q, 3);
            res->n = n;
            res->n_correct = (int64_t)llround(v * (double)n);
            const char *sc = (const char *)sqlite3_column_text(q, 5);
            tp_strlcpy(res->scheme, sc ? sc : "", sizeof res->scheme);
        } else if (!strncmp(m, "accuracy/", 9) && res->n_classes < TP_RUN_MAX_CLASSES) {
            int k = res->n_classes++;
            tp_strlcpy(res->class_name[k], m + 9, sizeof res->class_name[k]);
            res->class_acc[k] = v;
            res->class_n[k] = n;
        }
    }
    sqlite3_finalize(q);
    sql = "SELECT MIN(step), MAX(step), COUNT(*) FROM metrics WHERE run_id = ? AND "
          "name = 'train/loss'";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(db));
    sqlite3_bind_int64(q, 1, run_id);
    int64_t lo = -1, hi = -1;
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 2) > 0) {
        lo = sqlite3_column_int64(q, 0);
        hi = sqlite3_column_int64(q, 1);
        res->steps = (int)(hi + 1);
    }
    sqlite3_finalize(q);
    if (lo >= 0) {
        sql = "SELECT step, value FROM metrics WHERE run_id = ? AND name = 'train/loss' AND "
              "step IN (?, ?)";
        if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
            return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(db));
        sqlite3_bind_int64(q, 1, run_id);
        sqlite3_bind_int64(q, 2, lo);
        sqlite3_bind_int64(q, 3, hi);
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (sqlite3_column_int64(q, 0) == lo) res->first_loss = sqlite3_column_double(q, 1);
            if (sqlite3_column_int64(q, 0) == hi) res->final_loss = sqlite3_column_double(q, 1);
        }
        sqlite3_finalize(q);
    }
    return TP_OK;
}

/* ---- evaluation and recording ---------------------------------------------------------------- */

typedef struct eval_ctx {
    tp_run_cfg *cfg;
    tp_dataset ds;
    int have_ds;
    int64_t *idx;
    int n;
    const tp_example **rows;
} eval_ctx;

static tp_status eval_load(tp_run_cfg *cfg, eval_ctx *e, tp_err *err) {
    memset(e, 0, sizeof *e);
    e->cfg = cfg;
    const tp_task_vtable *tv = cfg->task->desc.vtable;
    TP_TRY(tv->load(cfg->task_state, "eval", &e->ds, err));
    e->have_ds = 1;
    if (e->ds.n == 0)
        return tp_errf(err, TP_EINVAL, "task '%s': the evaluation split (%s) has no rows",
                       cfg->task->desc.name, e->ds.source);
    if (cfg->info.is_generation) { /* no classes: a seeded uniform subset (gen_eval.h) */
        TP_TRY(tp_gen_subset(&e->ds, cfg->eval_n, cfg->eval_seed, &e->idx, &e->n, err));
    } else {
        for (int64_t i = 0; i < e->ds.n; i++)
            if (e->ds.rows[i].label < 0 || e->ds.rows[i].label >= cfg->info.n_labels)
                return tp_errf(err, TP_EFORMAT,
                               "%s:%lld: label index %d is not one of the task's %d "
                               "classes",
                               e->ds.source, (long long)e->ds.rows[i].line, e->ds.rows[i].label,
                               cfg->info.n_labels);
        TP_TRY(tp_eval_subset(&e->ds, cfg->info.n_labels, cfg->eval_n, cfg->eval_seed, &e->idx,
                              &e->n, err));
    }
    e->rows = malloc(((size_t)e->n + 1) * sizeof *e->rows);
    if (!e->rows) return tp_errf(err, TP_ENOMEM, "runner: out of memory");
    for (int i = 0; i < e->n; i++) e->rows[i] = &e->ds.rows[e->idx[i]];
    return TP_OK;
}

static void eval_free(eval_ctx *e) {
    if (e->have_ds) {
        const tp_task_vtable *tv = e->cfg->task->desc.vtable;
        tv->free_dataset(e->cfg->task_state, &e->ds);
    }
    free(e->idx);
    free(e->rows);
    memset(e, 0, sizeof *e);
}

static tp_status quick_eval(void *user, int step, double *acc, tp_err *err) {
    rec *q = user;
    (void)step;
    tp_scorer s;
    tp_trainer_scorer(q->t, &s);
    if (q->e->cfg->info.is_generation) { /* exact match of the extracted answers, no records */
        tp_run_result tmp;
        result_init(&tmp);
        TP_TRY(tp_gen_evaluate(q->e->cfg, &s, tp_trainer_ctx(q->t), q->e->rows, q->qn, NULL, 0,
                               &tmp, err));
        *acc = tmp.accuracy;
        return TP_OK;
    }
    tp_eval_out o;
    /* the first quick_eval_n rows of the (stratified) evaluation subset */
    TP_TRY(tp_score(&s, tp_trainer_ctx(q->t), q->e->rows, q->qn, &o, err));
    int k = 0;
    for (int i = 0; i < q->qn; i++) k += o.pred[i] == q->e->rows[i]->label;
    *acc = q->qn ? (double)k / q->qn : NAN;
    tp_eval_out_free(&o);
    return TP_OK;
}

static void hash_str(const char *s, char *hex) {
    tp_sha256_hex(s, strlen(s), hex);
}

/* Scores the evaluation subset and records predictions + results. */
static tp_status evaluate_and_record(tp_runner *r, tp_run_cfg *cfg, int64_t run_id,
                                     const tp_scorer *sc, tp_ctx *ctx, eval_ctx *e,
                                     tp_run_result *res, tp_err *err) {
    if (cfg->info.is_generation)
        return tp_gen_evaluate(cfg, sc, ctx, e->rows, e->n, r->store, run_id, res, err);
    tp_eval_out o;
    TP_TRY(tp_score(sc, ctx, e->rows, e->n, &o, err));
    int C = cfg->info.n_labels;
    int64_t k = 0, cn[TP_MAX_LABELS] = {0}, ck[TP_MAX_LABELS] = {0};
    tp_prediction_row *pr = calloc((size_t)e->n + 1, sizeof *pr);
    char(*hx)[3][TP_SHA256_HEX] = calloc((size_t)e->n + 1, sizeof *hx);
    char(*ids)[24] = calloc((size_t)e->n + 1, sizeof *ids);
    tp_status st = TP_OK;
    if (!pr || !hx || !ids) st = tp_errf(err, TP_ENOMEM, "runner: out of memory");
    for (int i = 0; i < e->n && st == TP_OK; i++) {
        const tp_example *x = e->rows[i];
        int ok = o.pred[i] == x->label;
        k += ok;
        cn[x->label]++;
        ck[x->label] += ok;
        /* prompt = everything the answering model is conditioned on that comes from the task */
        char *prompt = NULL;
        if (cfg->kind == TP_KIND_BRIDGE) {
            char *sp = tp_fill_template(cfg->info.sender_template, x->text);
            if (sp) {
                size_t n = strlen(sp) + strlen(cfg->primer) + 16;
                prompt = malloc(n);
                if (prompt) snprintf(prompt, n, "%s\x1e%s", sp, cfg->primer);
            }
            free(sp);
        } else {
            prompt = tp_fill_template(cfg->info.direct_template, x->text);
        }
        if (!prompt) {
            st = tp_errf(err, TP_ENOMEM, "runner: out of memory");
            break;
        }
        hash_str(x->text, hx[i][0]);
        hash_str(prompt, hx[i][1]);
        hash_str(cfg->info.labels[x->label], hx[i][2]);
        free(prompt);
        snprintf(ids[i], sizeof ids[i], "%lld", (long long)x->id);
        pr[i].split = "eval";
        pr[i].example_id = ids[i];
        pr[i].example_hash = hx[i][0];
        pr[i].prompt_hash = hx[i][1];
        pr[i].target_hash = hx[i][2];
        pr[i].gold = cfg->info.labels[x->label];
        pr[i].prediction =
            o.pred[i] >= 0 ? cfg->info.labels[o.pred[i]] : (o.text && o.text[i] ? o.text[i] : "");
        pr[i].correct = ok;
        pr[i].score = o.score[i];
    }
    res->n = e->n;
    res->n_correct = k;
    res->accuracy = e->n ? (double)k / e->n : NAN;
    tp_wilson95(k, e->n, &res->ci_low, &res->ci_high);
    tp_strlcpy(res->scheme, tp_scorer_scheme(sc), sizeof res->scheme);
    res->n_classes = C;
    for (int c = 0; c < C; c++) {
        tp_strlcpy(res->class_name[c], cfg->info.labels[c], sizeof res->class_name[c]);
        res->class_n[c] = cn[c];
        res->class_acc[c] = cn[c] ? (double)ck[c] / cn[c] : NAN;
    }
    if (st == TP_OK && r->store) st = tp_store_predictions_add(r->store, run_id, pr, e->n, err);
    if (st == TP_OK && r->store)
        st = tp_eval_record_outputs(r->store, run_id, sc, e->rows, e->n, err);
    if (st == TP_OK && r->store) {
        tp_result_row rows[1 + TP_MAX_LABELS];
        char names[TP_MAX_LABELS][96];
        int n = 0;
        rows[n++] = (tp_result_row){"accuracy", res->accuracy, res->ci_low,          res->ci_high,
                                    "wilson",   e->n,          tp_scorer_scheme(sc), "eval"};
        for (int c = 0; c < C; c++) {
            if (!cn[c]) continue;
            double lo, hi;
            tp_wilson95(ck[c], cn[c], &lo, &hi);
            snprintf(names[c], sizeof names[c], "accuracy/%s", cfg->info.labels[c]);
            rows[n++] = (tp_result_row){names[c], res->class_acc[c],    lo,    hi, "wilson",
                                        cn[c],    tp_scorer_scheme(sc), "eval"};
        }
        st = tp_store_results_add(r->store, run_id, rows, n, err);
    }
    free(pr);
    free(hx);
    free(ids);
    tp_eval_out_free(&o);
    return st;
}

static tp_status run_bridge(tp_runner *r, tp_run_cfg *cfg, int64_t run_id, int attempt,
                            tp_run_result *res, tp_err *err) {
    tp_trainer *t = NULL;
    TP_TRY(tp_trainer_new(&t, cfg, err));
    eval_ctx e;
    tp_status st = eval_load(cfg, &e, err);
    char dir[4200] = "";
    if (st == TP_OK && r->ckpt_dir[0]) snprintf(dir, sizeof dir, "%s/%s", r->ckpt_dir, cfg->hash);
    if (st == TP_OK && attempt > 1 && r->store) {
        char path[4096];
        int found;
        st = last_checkpoint(r->store, run_id, path, sizeof path, &found, err);
        if (st == TP_OK && found) {
            double *prior = malloc(((size_t)cfg->steps + 1) * sizeof *prior);
            if (!prior) st = tp_errf(err, TP_ENOMEM, "runner: out of memory");
            if (st == TP_OK) st = prior_losses(r->store, run_id, prior, cfg->steps, err);
            int step = 0;
            if (st == TP_OK) st = tp_trainer_resume(t, path, prior, cfg->steps, &step, err);
            free(prior);
            if (st == TP_OK) {
                res->resumed_from_step = step;
                tp_strlcpy(res->status, "resumed", sizeof res->status);
            }
        }
    }
    rec rc = {r, run_id, t, &e, e.n < cfg->quick_eval_n ? e.n : cfg->quick_eval_n};
    tp_train_sink sink = {&rc, sink_metrics, sink_ckpt, quick_eval};
    if (st == TP_OK) st = tp_trainer_train(t, dir[0] ? dir : NULL, &sink, r->progress, err);
    const double *losses;
    int n = tp_trainer_losses(t, &losses);
    free(r->last_losses);
    r->last_losses = NULL;
    r->n_last = 0;
    if (n > 0) {
        r->last_losses = malloc((size_t)n * sizeof *losses);
        if (r->last_losses) {
            memcpy(r->last_losses, losses, (size_t)n * sizeof *losses);
            r->n_last = n;
        }
        res->first_loss = losses[0];
        res->final_loss = losses[n - 1];
    }
    res->steps = n;
    if (st == TP_OK) {
        tp_scorer sc;
        tp_trainer_scorer(t, &sc);
        st = evaluate_and_record(r, cfg, run_id, &sc, tp_trainer_ctx(t), &e, res, err);
    }
    eval_free(&e);
    tp_trainer_free(t);
    return st;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* The relay's two halves as latency rows, per evaluation batch: text_relay_summary (the sender's
 * greedy summary; seq_len = summary_tokens) and text_relay_receiver (the rest of the scoring:
 * the receiver reading the summary and answering; seq_len = max_new_tokens). */
static tp_status record_relay_latency(tp_runner *r, const tp_run_cfg *cfg, int64_t run_id,
                                      const tp_relay *rl, double total_ms, tp_err *err) {
    double mean, sd;
    int maxb;
    int n = tp_relay_latency(rl, &mean, &sd, &maxb);
    if (n == 0) return TP_OK;
    double recv = (total_ms - mean * n) / n;
    tp_latency_row rows[2] = {
        {"text_relay_summary", maxb, cfg->bopts.summary_tokens, n, mean, sd, -1, "cpu"},
        {"text_relay_receiver", maxb, cfg->max_new_tokens, n, recv > 0 ? recv : 0, NAN, -1, "cpu"},
    };
    return tp_store_latency_add(r->store, run_id, rows, 2, err);
}

/* text_relay (relay.c) and fewshot (fewshot.c): their own prefix, the same evaluation */
static tp_status run_text_baseline(tp_runner *r, tp_run_cfg *cfg, int64_t run_id,
                                   tp_run_result *res, tp_err *err) {
    tp_relay *rl = NULL;
    tp_fewshot *fs = NULL;
    tp_scorer sc;
    tp_ctx *ctx;
    if (cfg->kind == TP_KIND_TEXT_RELAY) {
        TP_TRY(tp_relay_new(&rl, cfg, err));
        tp_relay_scorer(rl, &sc);
        ctx = tp_relay_ctx(rl);
    } else {
        TP_TRY(tp_fewshot_new(&fs, cfg, err));
        tp_fewshot_scorer(fs, &sc);
        ctx = tp_fewshot_ctx(fs);
    }
    eval_ctx e;
    tp_status st = eval_load(cfg, &e, err);
    double t0 = now_ms();
    if (st == TP_OK) st = evaluate_and_record(r, cfg, run_id, &sc, ctx, &e, res, err);
    double total = now_ms() - t0;
    if (st == TP_OK && rl && r->store) st = record_relay_latency(r, cfg, run_id, rl, total, err);
    eval_free(&e);
    tp_relay_free(rl);
    tp_fewshot_free(fs);
    return st;
}

static tp_status run_baseline(tp_runner *r, tp_run_cfg *cfg, int64_t run_id, tp_run_result *res,
                              tp_err *err) {
    if (cfg->kind == TP_KIND_TEXT_RELAY || cfg->kind == TP_KIND_FEWSHOT)
        return run_text_baseline(r, cfg, run_id, res, err);
    tp_baseline *b = NULL;
    TP_TRY(tp_baseline_new(&b, cfg, err));
    eval_ctx e;
    tp_status st = eval_load(cfg, &e, err);
    if (st == TP_OK) {
        tp_scorer sc;
        tp_baseline_scorer(b, &sc);
        st = evaluate_and_record(r, cfg, run_id, &sc, tp_baseline_ctx(b), &e, res, err);
    }
    eval_free(&e);
    tp_baseline_free(b);
    return st;
}

static char *plugins_json(const tp_run_cfg *c, int shas) {
    json_t *j = json_object();
    const tp_plugin *ps[2 + TP_RUN_MAX_LOSSES];
    int n = 0;
    ps[n++] = c->task;
    if (c->bridge) ps[n++] = c->bridge;
    for (int i = 0; i < c->n_losses; i++) ps[n++] = c->losses[i].plugin;
    for (int i = 0; i < n; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s/%s", tp_plugin_kind_name(ps[i]->desc.kind), ps[i]->desc.name);
        json_object_set_new(j, key, json_string(shas ? ps[i]->sha256 : ps[i]->desc.version));
    }
    char *out = NULL;
    tp_canon_json(j, &out, NULL);
    json_decref(j);
    return out;
}

/* A spec that could not be resolved is still recorded (as failed), under the hash of the spec
 * itself, so the script's log and the db agree on what went wrong. */
static void record_unresolved(tp_runner *r, const json_t *spec, const tp_err *why) {
    if (!r->store) return;
    json_t *j = json_pack("{s:O}", "unresolved_spec", spec);
    char *canon = NULL, hash[TP_SHA256_HEX];
    tp_err e2 = {0};
    if (!j || tp_canon_json_hash(j, &canon, hash, &e2) != TP_OK) {
        json_decref(j);
        return;
    }
    json_decref(j);
    tp_run_meta meta = {0};
    meta.experiment_id = r->experiment_id;
    meta.config_json = canon;
    meta.config_hash = hash;
    meta.git_dirty = -1;
    json_t *v = json_object_get(spec, "task");
    meta.task = json_is_string(v) ? json_string_value(v) : NULL;
    v = json_object_get(spec, "baseline");
    if (!json_is_string(v)) v = json_object_get(spec, "bridge");
    meta.bridge = json_is_string(v) ? json_string_value(v) : NULL;
    v = json_object_get(spec, "seed");
    meta.seed = json_is_integer(v) ? json_integer_value(v) : 0;
    int64_t id;
    int attempt;
    if (tp_store_run_begin(r->store, &meta, &id, &attempt, &e2) == TP_OK)
        tp_store_run_finish(r->store, id, TP_RUN_FAILED, why->msg, r->traceback, &e2);
    free(canon);
}

tp_status tp_runner_run(tp_runner *r, const json_t *spec, tp_run_result *res, tp_err *err) {
    result_init(res);
    tp_run_cfg cfg;
    tp_status st = tp_run_cfg_resolve(r, spec, &cfg, err);
    if (st != TP_OK) {
        record_unresolved(r, spec, err);
        tp_run_cfg_free(&cfg);
        return st;
    }
    tp_strlcpy(res->config_hash, cfg.hash, sizeof res->config_hash);
    tp_strlcpy(res->status, "done", sizeof res->status);
    int64_t run_id = 0;
    int attempt = 1;
    if (r->store) {
        tp_run_status rs;
        st = tp_store_run_find(r->store, cfg.hash, &run_id, &rs, NULL, err);
        if (st == TP_OK && run_id > 0 && rs == TP_RUN_DONE) {
            res->run_id = run_id;
            st = load_result(r->store, run_id, res, err);
            tp_strlcpy(res->status, "skipped", sizeof res->status);
            tp_run_cfg_free(&cfg);
            return st;
        }
        if (st != TP_OK) {
            tp_run_cfg_free(&cfg);
            return st;
        }
        char *pj = plugins_json(&cfg, 0);
        char seedbuf[32];
        (void)seedbuf;
        tp_run_meta meta = {0};
        meta.experiment_id = r->experiment_id;
        meta.config_json = cfg.canon;
        meta.config_hash = cfg.hash;
        meta.seed = cfg.kind == TP_KIND_BRIDGE    ? (int64_t)cfg.seed
                    : cfg.kind == TP_KIND_FEWSHOT ? (int64_t)cfg.bopts.seed /* picks the shots */
                                                  : 0;
        meta.task = cfg.task->desc.name;
        meta.task_version = cfg.task->desc.version;
        meta.bridge =
            cfg.kind == TP_KIND_BRIDGE ? cfg.bridge->desc.name : tp_run_kind_name(cfg.kind);
        meta.bridge_version = cfg.kind == TP_KIND_BRIDGE ? cfg.bridge->desc.version : "1";
        meta.sender = cfg.sender ? cfg.sender->alias : NULL;
        meta.receiver = cfg.receiver ? cfg.receiver->alias : NULL;
        meta.plugins_json = pj;
        meta.git_commit = r->has_git ? r->git_commit : NULL;
        meta.git_dirty = r->git_dirty;
        meta.device = "cpu";
        st = tp_store_run_begin(r->store, &meta, &run_id, &attempt, err);
        free(pj);
        if (st != TP_OK) {
            tp_run_cfg_free(&cfg);
            return st;
        }
        res->run_id = run_id;
        char *shas = plugins_json(&cfg, 1);
        tp_environment env = {0};
        env.plugins_json = shas;
        env.lua_version = r->lua_version[0] ? r->lua_version : NULL;
        env.build_type = "cpu";
        st = tp_store_environment_set(r->store, run_id, &env, err);
        free(shas);
    }
    if (st == TP_OK) {
        if (cfg.kind == TP_KIND_BRIDGE)
            st = run_bridge(r, &cfg, run_id, attempt, res, err);
        else
            st = run_baseline(r, &cfg, run_id, res, err);
    }
    if (st == TP_OK && r->store && run_id > 0) { /* fairness.h: recorded, never fatal */
        tp_fairness fw;
        tp_fairness_check(&cfg, &fw);
        st = tp_fairness_record(r->store, run_id, &fw, err);
    }
    if (r->store && run_id > 0) {
        tp_err e2 = {0};
        tp_status fs = tp_store_run_finish(
            r->store, run_id, st == TP_OK ? TP_RUN_DONE : TP_RUN_FAILED,
            st == TP_OK ? NULL : err->msg, st == TP_OK ? NULL : r->traceback, &e2);
        if (st == TP_OK && fs != TP_OK) {
            *err = e2;
            st = fs;
        }
    }
    tp_run_cfg_free(&cfg);
    return st;
}
