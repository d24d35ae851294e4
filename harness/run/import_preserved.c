/* import_preserved.c — readers for each layout of the study's preserved result files, and the
 * one routine that records a study run (see import_preserved.h). */
#include "run/import_preserved.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "run/stats.h"
#include "util/canon_json.h"
#include "util/sha256.h"
#include "util/strutil.h"

#define LLAMA   "meta-llama/Meta-Llama-3.1-8B-Instruct"
#define MISTRAL "mistralai/Mistral-7B-Instruct-v0.3"

typedef struct ictx {
    tp_store *s;
    tp_import_report *rep;
    const char *root;
    const char *rel; /* file path relative to root */
    char exp[256];   /* top folder */
    char sha[TP_SHA256_HEX];
} ictx;

/* One study run, as the readers describe it. */
typedef struct srun {
    const char *entry; /* key inside the file ("" = the whole file) */
    const char *task, *bridge, *sender, *receiver;
    int has_seed;
    int64_t seed;
    json_t *study;                   /* the file's own settings for this run (borrowed) */
    json_t *norm;                    /* harness-style keys (borrowed; may be NULL) */
    double acc_pct;                  /* NaN = not given */
    int64_t correct, total;          /* -1 = not given */
    json_t *per_class;               /* {class: {correct, total}} or NULL */
    const char *per_class_pct[8][2]; /* {"positive", "positive_accuracy"} pairs (no counts) */
    json_t *samples;
    const char *f_id, *f_text, *f_gold, *f_pred;
} srun;

static void srun_init(srun *r) {
    memset(r, 0, sizeof *r);
    r->acc_pct = NAN;
    r->correct = r->total = -1;
}

/* ---- JSON helpers: every missing or mistyped field is an error naming the file ------------- */

static tp_status need(const ictx *c, json_t *o, const char *key, json_t **out, tp_err *err) {
    *out = json_object_get(o, key);
    if (!*out)
        return tp_errf(err, TP_EFORMAT, "%s/%s: field '%s' is missing", c->root, c->rel, key);
    return TP_OK;
}

static tp_status need_num(const ictx *c, json_t *o, const char *key, double *v, tp_err *err) {
    json_t *j;
    TP_TRY(need(c, o, key, &j, err));
    if (!json_is_number(j))
        return tp_errf(err, TP_EFORMAT, "%s/%s: field '%s': expected a number", c->root, c->rel,
                       key);
    *v = json_number_value(j);
    return TP_OK;
}

static tp_status need_int(const ictx *c, json_t *o, const char *key, int64_t *v, tp_err *err) {
    json_t *j;
    TP_TRY(need(c, o, key, &j, err));
    if (!json_is_integer(j))
        return tp_errf(err, TP_EFORMAT, "%s/%s: field '%s': expected an integer", c->root, c->rel,
                       key);
    *v = json_integer_value(j);
    return TP_OK;
}

/* accuracy (percent), correct and total of an object like {"accuracy": 93.5, "correct": 187,
 * "total": 200}; correct/total optional. */
static tp_status acc_fields(const ictx *c, json_t *o, srun *r, tp_err *err) {
    TP_TRY(need_num(c, o, "accuracy", &r->acc_pct, err));
    if (json_object_get(o, "correct") || json_object_get(o, "total")) {
        TP_TRY(need_int(c, o, "correct", &r->correct, err));
        TP_TRY(need_int(c, o, "total", &r->total, err));
    }
    return TP_OK;
}

static const char *model_name(const char *short_name) {
    if (!strcmp(short_name, "llama") || !strcmp(short_name, "Llama")) return LLAMA;
    if (!strcmp(short_name, "mistral") || !strcmp(short_name, "Mistral")) return MISTRAL;
    return short_name;
}

/* ---- recording --------------------------------------------------------------------------------
 */

static tp_status exec1(tp_store *s, const char *sql, int64_t id, const char *t1, const char *t2,
                       tp_err *err) {
    sqlite3 *db = tp_store_db(s);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(db));
    sqlite3_bind_int64(q, 1, id);
    if (t1) sqlite3_bind_text(q, 2, t1, -1, SQLITE_TRANSIENT);
    if (t2) sqlite3_bind_text(q, 3, t2, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return tp_errf(err, TP_EDB, "%s: %s", tp_store_path(s), sqlite3_errmsg(db));
    return TP_OK;
}

static tp_status add_predictions(ictx *c, const srun *r, int64_t id, tp_err *err) {
    size_t n = json_array_size(r->samples);
    if (!json_is_array(r->samples))
        return tp_errf(err, TP_EFORMAT, "%s/%s: samples: expected a list", c->root, c->rel);
    tp_prediction_row *p = calloc(n + 1, sizeof *p);
    char(*ids)[32] = calloc(n + 1, sizeof *ids);
    char(*hx)[2][TP_SHA256_HEX] = calloc(n + 1, sizeof *hx);
    tp_status st = TP_OK;
    if (!p || !ids || !hx) st = tp_errf(err, TP_ENOMEM, "import: out of memory");
    for (size_t i = 0; st == TP_OK && i < n; i++) {
        json_t *e = json_array_get(r->samples, i);
        json_t *text = json_object_get(e, r->f_text), *gold = json_object_get(e, r->f_gold);
        json_t *pred = json_object_get(e, r->f_pred), *ok = json_object_get(e, "correct");
        json_t *idv = r->f_id ? json_object_get(e, r->f_id) : NULL;
        if (!json_is_object(e) || !json_is_string(text) || !json_is_string(gold) ||
            !json_is_string(pred) || !json_is_boolean(ok) || (r->f_id && !json_is_integer(idv))) {
            st = tp_errf(err, TP_EFORMAT,
                         "%s/%s: sample %zu: expected %s%s (string), %s, %s (strings) and "
                         "correct (true/false)",
                         c->root, c->rel, i, r->f_id ? "an integer idx, " : "", r->f_text,
                         r->f_gold, r->f_pred);
            break;
        }
        snprintf(ids[i], sizeof ids[i], "%lld",
                 idv ? (long long)json_integer_value(idv) : (long long)i);
        const char *t = json_string_value(text);
        size_t tl = strlen(t);
        /* a text the file cut ("...") is not the example's text: no hash to pair it by */
        int cut = tl >= 3 && !strcmp(t + tl - 3, "...");
        if (!cut) tp_sha256_hex(t, tl, hx[i][0]);
        tp_sha256_hex(json_string_value(gold), strlen(json_string_value(gold)), hx[i][1]);
        p[i].split = "eval";
        p[i].example_id = ids[i];
        p[i].example_hash = cut ? NULL : hx[i][0];
        p[i].target_hash = hx[i][1];
        p[i].gold = json_string_value(gold);
        p[i].prediction = json_string_value(pred);
        p[i].correct = json_is_true(ok);
        p[i].score = NAN;
    }
    if (st == TP_OK && n > 0) st = tp_store_predictions_add(c->s, id, p, (int)n, err);
    if (st == TP_OK) c->rep->predictions += (int)n;
    free(p);
    free(ids);
    free(hx);
    return st;
}

static tp_status add_results(ictx *c, const srun *r, int64_t id, tp_err *err) {
    tp_result_row rows[64];
    char names[64][96];
    int n = 0;
    double v = r->acc_pct / 100;
    double lo = NAN, hi = NAN;
    if (r->total >= 0) {
        if (r->total == 0 || r->correct < 0 || r->correct > r->total)
            return tp_errf(err, TP_EFORMAT, "%s/%s%s%s: correct %lld of total %lld", c->root,
                           c->rel, r->entry[0] ? "#" : "", r->entry, (long long)r->correct,
                           (long long)r->total);
        v = (double)r->correct / (double)r->total;
        /* the stated percentage must agree with the counts (stale result files exist) */
        if (!isnan(r->acc_pct) && fabs(r->acc_pct - 100 * v) > 0.05)
            return tp_errf(err, TP_EFORMAT,
                           "%s/%s%s%s: accuracy %.4g%% contradicts correct/total = %lld/%lld",
                           c->root, c->rel, r->entry[0] ? "#" : "", r->entry, r->acc_pct,
                           (long long)r->correct, (long long)r->total);
        tp_stats_wilson(r->correct, r->total, 0.95, &lo, &hi);
    }
    rows[n++] = (tp_result_row){"accuracy",   v,     lo, hi, isnan(lo) ? NULL : "wilson", r->total,
                                "unrecorded", "eval"};
    if (r->per_class) {
        const char *k;
        json_t *o;
        json_object_foreach(r->per_class, k, o) {
            if (n >= 60) break;
            ictx cc = *c;
            int64_t ck, ct;
            TP_TRY(need_int(&cc, o, "correct", &ck, err));
            TP_TRY(need_int(&cc, o, "total", &ct, err));
            if (ct <= 0 || ck < 0 || ck > ct)
                return tp_errf(err, TP_EFORMAT, "%s/%s: per-class '%s': correct %lld of %lld",
                               c->root, c->rel, k, (long long)ck, (long long)ct);
            double clo, chi;
            tp_stats_wilson(ck, ct, 0.95, &clo, &chi);
            snprintf(names[n], sizeof names[n], "accuracy/%s", k);
            rows[n] = (tp_result_row){names[n], (double)ck / ct, clo,   chi, "wilson",
                                      ct,       "unrecorded",    "eval"};
            n++;
        }
    }
    for (int i = 0; i < 8 && r->per_class_pct[i][0]; i++) {
        double pc;
        TP_TRY(need_num(c, r->study, r->per_class_pct[i][1], &pc, err));
        snprintf(names[n], sizeof names[n], "accuracy/%s", r->per_class_pct[i][0]);
        rows[n] = (tp_result_row){names[n], pc / 100, NAN, NAN, NULL, -1, "unrecorded", "eval"};
        n++;
    }
    return tp_store_results_add(c->s, id, rows, n, err);
}

/* Records r; *id = the new run, or 0 when it was imported before. */
static tp_status record(ictx *c, const srun *r, int64_t *id, tp_err *err) {
    *id = 0;
    char source[1024];
    snprintf(source, sizeof source, "%s%s%s", c->rel, r->entry[0] ? "#" : "", r->entry);
    json_t *cfg = r->norm ? json_deep_copy(r->norm) : json_object();
    json_object_set_new(cfg, "origin", json_string("study"));
    json_object_set_new(cfg, "source", json_string(source));
    json_object_set_new(cfg, "file_sha256", json_string(c->sha));
    json_object_set(cfg, "study", r->study ? r->study : json_null());
    if (!json_object_get(cfg, "task") && r->task)
        json_object_set_new(cfg, "task", json_pack("{s:s}", "name", r->task));
    if (!json_object_get(cfg, "bridge") && r->bridge)
        json_object_set_new(cfg, "bridge", json_pack("{s:s}", "name", r->bridge));
    if (r->has_seed) json_object_set_new(cfg, "seed", json_integer(r->seed));
    char *canon = NULL, hash[TP_SHA256_HEX];
    tp_status st = tp_canon_json_hash(cfg, &canon, hash, err);
    json_decref(cfg);
    if (st != TP_OK) return st;
    int64_t found = 0;
    tp_run_status rs;
    st = tp_store_run_find(c->s, hash, &found, &rs, NULL, err);
    if (st == TP_OK && found && rs == TP_RUN_DONE) {
        c->rep->existing++;
        free(canon);
        return TP_OK;
    }
    int64_t exp_id = 0;
    if (st == TP_OK) st = tp_store_experiment_ensure(c->s, c->exp, NULL, "", &exp_id, err);
    tp_run_meta m = {0};
    m.experiment_id = exp_id;
    m.config_json = canon;
    m.config_hash = hash;
    m.seed = r->seed;
    m.task = r->task;
    m.bridge = r->bridge;
    m.sender = r->sender;
    m.receiver = r->receiver;
    m.git_dirty = -1;
    m.device = NULL;
    int attempt;
    if (st == TP_OK) st = tp_store_run_begin(c->s, &m, id, &attempt, err);
    free(canon);
    if (st != TP_OK) return st;
    st = exec1(c->s, "UPDATE runs SET origin = 'study', source = ?2 WHERE id = ?1", *id, source,
               NULL, err);
    if (st == TP_OK && !r->has_seed)
        st = exec1(c->s, "UPDATE runs SET seed = NULL WHERE id = ?1", *id, NULL, NULL, err);
    if (st == TP_OK) st = add_results(c, r, *id, err);
    if (st == TP_OK && r->samples) st = add_predictions(c, r, *id, err);
    tp_err e2 = {0};
    tp_store_run_finish(c->s, *id, st == TP_OK ? TP_RUN_DONE : TP_RUN_FAILED,
                        st == TP_OK ? NULL : err->msg, NULL, &e2);
    if (st == TP_OK) c->rep->runs++;
    return st;
}

static tp_status add_series(ictx *c, int64_t id, json_t *arr, const char *name, tp_err *err) {
    if (!id || !arr) return TP_OK;
    if (!json_is_array(arr))
        return tp_errf(err, TP_EFORMAT, "%s/%s: '%s': expected a list of numbers", c->root, c->rel,
                       name);
    size_t n = json_array_size(arr);
    if (n == 0) return TP_OK;
    tp_metric_row *m = calloc(n, sizeof *m);
    if (!m) return tp_errf(err, TP_ENOMEM, "import: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_number(v)) {
            free(m);
            return tp_errf(err, TP_EFORMAT, "%s/%s: '%s'[%zu]: expected a number", c->root, c->rel,
                           name, i);
        }
        m[i] = (tp_metric_row){(int64_t)i, name, json_number_value(v)};
    }
    tp_status st = tp_store_metrics_add(c->s, id, m, (int)n, err);
    free(m);
    return st;
}

/* ---- readers, one per layout --------------------------------------------------------------------
 */

/* "eval_sst2_results.json" -> "sst2" */
static void task_from_name(const char *base, const char *prefix, const char *suffix, char *out,
                           size_t cap) {
    size_t lp = strlen(prefix), ls = strlen(suffix), lb = strlen(base);
    if (lb > lp + ls && !strncmp(base, prefix, lp) && !strcmp(base + lb - ls, suffix)) {
        size_t n = lb - lp - ls < cap - 1 ? lb - lp - ls : cap - 1;
        memcpy(out, base + lp, n);
        out[n] = 0;
    } else {
        tp_strlcpy(out, "?", cap);
    }
}

static const char *base_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* harness-style keys from a study config.json (soft_tokens, depth, source_layer, steps, ...) */
static json_t *norm_from_config(json_t *cfg, const char *task, const char *bridge) {
    json_t *n = json_object();
    json_t *opts = json_object();
    json_t *v;
    if ((v = json_object_get(cfg, "soft_tokens")) || (v = json_object_get(cfg, "num_latents")) ||
        (v = json_object_get(cfg, "total_latent_tokens")) ||
        (v = json_object_get(cfg, "num_soft_tokens")))
        json_object_set(opts, "tokens", v);
    if ((v = json_object_get(cfg, "depth"))) json_object_set(opts, "depth", v);
    if ((v = json_object_get(cfg, "heads"))) json_object_set(opts, "heads", v);
    json_object_set_new(n, "bridge", json_pack("{s:s, s:o}", "name", bridge, "options", opts));
    json_object_set_new(n, "task", json_pack("{s:s}", "name", task));
    if ((v = json_object_get(cfg, "source_layer"))) json_object_set(n, "layer", v);
    json_t *train = json_object();
    if ((v = json_object_get(cfg, "steps"))) json_object_set(train, "steps", v);
    if ((v = json_object_get(cfg, "batch_size"))) json_object_set(train, "batch", v);
    if ((v = json_object_get(cfg, "lr"))) {
        /* the study wrote lr as a string ("2e-4") in some files */
        if (json_is_string(v))
            json_object_set_new(train, "lr", json_real(strtod(json_string_value(v), NULL)));
        else
            json_object_set(train, "lr", v);
    }
    if ((v = json_object_get(cfg, "diversity_weight"))) json_object_set(train, "diversity", v);
    json_object_set_new(n, "train", train);
    return n;
}

static tp_status read_eval(ictx *c, json_t *root, json_t *config, tp_err *err) {
    char task[64];
    task_from_name(base_of(c->rel), "eval_", "_results.json", task, sizeof task);
    srun r;
    srun_init(&r);
    r.entry = "";
    r.task = task;
    r.bridge = "perceiver";
    r.sender = config && json_is_string(json_object_get(config, "source_model"))
                   ? json_string_value(json_object_get(config, "source_model"))
                   : LLAMA;
    r.receiver = config && json_is_string(json_object_get(config, "target_model"))
                     ? json_string_value(json_object_get(config, "target_model"))
                     : MISTRAL;
    /* the run's settings: the folder's config.json, plus the eval file's own scalars */
    json_t *study = config ? json_deep_copy(config) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "samples") && strcmp(k, "per_class") && strcmp(k, "by_magnitude"))
            json_object_set(study, k, v);
    }
    if (json_object_get(root, "cot_steps")) r.bridge = "latent_cot";
    r.study = study;
    json_t *norm = norm_from_config(study, task, r.bridge);
    r.norm = norm;
    tp_status st = acc_fields(c, root, &r, err);
    json_t *pc = json_object_get(root, "per_class");
    if (!pc) pc = json_object_get(root, "by_magnitude");
    r.per_class = pc;
    int npc = 0;
    json_object_foreach(root, k, v) {
        size_t l = strlen(k);
        if (npc < 7 && l > 9 && !strcmp(k + l - 9, "_accuracy") && json_is_number(v)) {
            static char cls[8][64];
            tp_strlcpy(cls[npc], k, l - 9 + 1 < sizeof cls[npc] ? l - 9 + 1 : sizeof cls[npc]);
            r.per_class_pct[npc][0] = cls[npc];
            r.per_class_pct[npc][1] = k;
            npc++;
        }
    }
    r.samples = json_object_get(root, "samples");
    if (r.samples) {
        json_t *s0 = json_array_get(r.samples, 0);
        r.f_id = "idx";
        if (json_object_get(s0, "question")) {
            r.f_text = "question";
            r.f_gold = "gold_answer";
            r.f_pred = "pred_answer";
        } else {
            r.f_text = "text";
            r.f_gold = "label";
            r.f_pred = "prediction";
        }
    }
    int64_t id;
    if (st == TP_OK) st = record(c, &r, &id, err);
    json_decref(norm);
    json_decref(study);
    return st;
}

/* random / majority / noise / text baselines ({name: {accuracy, correct, total, per_class}} or
 * {name: number}) */
static tp_status read_baseline_entry(ictx *c, const char *key, json_t *v, const char *task,
                                     json_t *cls_dist, tp_err *err) {
    static const struct {
        const char *key, *bridge;
        int who; /* 0 none, 1 sender (Llama), 2 receiver (Mistral) */
    } map[] = {
        {"random_baseline", "random", 0},        {"random", "random", 0},
        {"majority_baseline", "majority", 0},    {"majority", "majority", 0},
        {"noise_baseline", "noise", 2},          {"mistral_text_baseline", "receiver_direct", 2},
        {"mistral_text", "receiver_direct", 2},  {"llama_text_baseline", "sender_direct", 1},
        {"llama_text", "sender_direct", 1},      {"llama_direct", "sender_direct", 1},
        {"mistral_direct", "receiver_direct", 2}};
    int mi = -1;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(key, map[i].key)) mi = (int)i;
    if (mi < 0)
        return tp_errf(err, TP_EFORMAT,
                       "%s/%s: baseline '%s': no reader for it (expected random, majority, "
                       "noise, mistral_text or llama_text baselines)",
                       c->root, c->rel, key);
    srun r;
    srun_init(&r);
    r.entry = key;
    r.task = task;
    r.bridge = map[mi].bridge;
    r.sender = map[mi].who == 1 ? LLAMA : NULL;
    r.receiver = map[mi].who == 2 ? MISTRAL : NULL;
    r.study = v;
    if (json_is_number(v)) {
        r.acc_pct = json_number_value(v);
        /* the majority baseline is over the class distribution the file gives */
        if (!strncmp(key, "majority", 8) && json_is_object(cls_dist)) {
            int64_t tot = 0, mx = 0;
            const char *k;
            json_t *x;
            json_object_foreach(cls_dist, k, x) {
                tot += json_integer_value(x);
                if (json_integer_value(x) > mx) mx = json_integer_value(x);
            }
            r.correct = mx;
            r.total = tot;
        }
    } else if (json_is_object(v)) {
        TP_TRY(acc_fields(c, v, &r, err));
        r.per_class = json_object_get(v, "per_class");
    } else {
        return tp_errf(err, TP_EFORMAT, "%s/%s: '%s': expected a number or an object", c->root,
                       c->rel, key);
    }
    json_t *norm =
        json_pack("{s:{s:s}, s:{s:s}}", "task", "name", task, "bridge", "name", r.bridge);
    r.norm = norm;
    int64_t id;
    tp_status st = record(c, &r, &id, err);
    json_decref(norm);
    return st;
}

static tp_status read_baselines(ictx *c, json_t *root, tp_err *err) {
    char task[64];
    task_from_name(base_of(c->rel), "", "_baselines.json", task, sizeof task);
    json_t *dist = json_object_get(root, "class_distribution");
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (!strcmp(k, "class_distribution") || !strcmp(k, "majority_class")) continue;
        TP_TRY(read_baseline_entry(c, k, v, task, dist, err));
    }
    return TP_OK;
}

static tp_status read_ablations(ictx *c, json_t *root, tp_err *err) {
    json_t *meta = json_object_get(root, "meta"), *bl = json_object_get(root, "baselines");
    json_t *ex = json_object_get(root, "experiments");
    if (!json_is_object(meta) || !json_is_object(bl) || !json_is_object(ex))
        return tp_errf(err, TP_EFORMAT, "%s/%s: expected objects meta, baselines, experiments",
                       c->root, c->rel);
    const char *k;
    json_t *v;
    json_object_foreach(bl, k, v) TP_TRY(read_baseline_entry(c, k, v, "sst2", NULL, err));
    json_object_foreach(ex, k, v) {
        json_t *cfg;
        TP_TRY(need(c, v, "config", &cfg, err));
        json_t *bt = json_object_get(cfg, "bridge_type");
        if (!json_is_string(bt))
            return tp_errf(err, TP_EFORMAT,
                           "%s/%s: experiments.%s.config.bridge_type: expected "
                           "a string",
                           c->root, c->rel, k);
        static const char *const types[][2] = {{"continuous", "perceiver"},
                                               {"diffusion", "diffusion_refiner"},
                                               {"mlp", "mlp"},
                                               {"linear", "linear"},
                                               {"meanpool", "meanpool"},
                                               {"identity", "identity"}};
        const char *bridge = NULL;
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (!strcmp(json_string_value(bt), types[i][0])) bridge = types[i][1];
        if (!bridge)
            return tp_errf(err, TP_EFORMAT, "%s/%s: experiments.%s: unknown bridge_type '%s'",
                           c->root, c->rel, k, json_string_value(bt));
        char bname[96], entry[160];
        json_t *trained = json_object_get(cfg, "trained");
        snprintf(bname, sizeof bname, "%s%s", bridge, json_is_false(trained) ? " (untrained)" : "");
        snprintf(entry, sizeof entry, "experiments.%s", k);
        json_t *study = json_deep_copy(cfg);
        json_object_set(study, "meta_args", json_object_get(meta, "args"));
        json_t *norm = norm_from_config(cfg, "sst2", bname);
        srun r;
        srun_init(&r);
        r.entry = entry;
        r.task = "sst2";
        r.bridge = bname;
        json_t *sm = json_object_get(cfg, "source_model"),
               *tm = json_object_get(cfg, "target_model");
        r.sender = json_is_string(sm) ? model_name(json_string_value(sm)) : LLAMA;
        r.receiver = json_is_string(tm) ? model_name(json_string_value(tm)) : MISTRAL;
        r.study = study;
        r.norm = norm;
        int64_t id = 0;
        tp_status st = acc_fields(c, v, &r, err);
        if (st == TP_OK) st = record(c, &r, &id, err);
        if (st == TP_OK)
            st = add_series(c, id, json_object_get(v, "train_losses"), "study/train_loss", err);
        json_t *fl = json_object_get(v, "final_loss");
        if (st == TP_OK && id && json_is_number(fl)) {
            tp_metric_row m = {0, "study/final_loss", json_number_value(fl)};
            json_t *steps = json_object_get(cfg, "steps");
            if (json_is_integer(steps)) m.step = json_integer_value(steps);
            st = tp_store_metrics_add(c->s, id, &m, 1, err);
        }
        json_decref(norm);
        json_decref(study);
        TP_TRY(st);
    }
    return TP_OK;
}

static tp_status read_cot_relay(ictx *c, json_t *root, tp_err *err) {
    json_t *cfg, *sum;
    TP_TRY(need(c, root, "config", &cfg, err));
    TP_TRY(need(c, root, "summary", &sum, err));
    json_t *ds = json_object_get(cfg, "dataset");
    srun r;
    srun_init(&r);
    r.entry = "";
    r.task = json_is_string(ds) ? json_string_value(ds) : "?";
    r.bridge = "cot_relay";
    r.sender = LLAMA;
    r.receiver = MISTRAL;
    r.study = cfg;
    TP_TRY(acc_fields(c, sum, &r, err));
    r.samples = json_object_get(root, "detailed_results");
    r.f_text = "text";
    r.f_gold = "true_label";
    r.f_pred = "pred_label";
    json_t *norm =
        json_pack("{s:{s:s}, s:{s:s}}", "task", "name", r.task, "bridge", "name", r.bridge);
    r.norm = norm;
    int64_t id;
    tp_status st = record(c, &r, &id, err);
    json_decref(norm);
    double ms;
    if (st == TP_OK && id && need_num(c, sum, "avg_latency_ms", &ms, err) == TP_OK) {
        tp_latency_row l = {"cot_relay", 1, -1, r.total, ms, NAN, -1, "study"};
        st = tp_store_latency_add(c->s, id, &l, 1, err);
    }
    return st;
}

static tp_status read_fewshot(ictx *c, json_t *root, tp_err *err) {
    json_t *cfg, *res;
    TP_TRY(need(c, root, "config", &cfg, err));
    TP_TRY(need(c, root, "results", &res, err));
    json_t *seeds = json_object_get(cfg, "seeds"), *ds = json_object_get(cfg, "dataset");
    if (!json_is_array(seeds) || !json_is_string(ds))
        return tp_errf(err, TP_EFORMAT, "%s/%s: config: expected seeds (a list) and dataset",
                       c->root, c->rel);
    const char *model;
    json_t *mr;
    json_object_foreach(res, model, mr) {
        json_t *accs = json_object_get(mr, "seeds");
        if (!json_is_array(accs) || json_array_size(accs) != json_array_size(seeds))
            return tp_errf(err, TP_EFORMAT,
                           "%s/%s: results.%s.seeds: expected one accuracy per config seed (%zu)",
                           c->root, c->rel, model, json_array_size(seeds));
        const char *full = model_name(model);
        int is_sender = !strcmp(full, LLAMA);
        for (size_t i = 0; i < json_array_size(seeds); i++) {
            json_t *sd = json_array_get(seeds, i), *a = json_array_get(accs, i);
            if (!json_is_integer(sd) || !json_is_number(a))
                return tp_errf(err, TP_EFORMAT, "%s/%s: seeds[%zu]: expected numbers", c->root,
                               c->rel, i);
            char entry[128];
            snprintf(entry, sizeof entry, "results.%s.seeds[%zu]", model, i);
            srun r;
            srun_init(&r);
            r.entry = entry;
            r.task = json_string_value(ds);
            r.bridge = is_sender ? "sender_fewshot" : "receiver_fewshot";
            r.sender = is_sender ? LLAMA : NULL;
            r.receiver = is_sender ? NULL : full;
            r.has_seed = 1;
            r.seed = json_integer_value(sd);
            r.acc_pct = json_number_value(a);
            r.study = cfg;
            json_t *norm =
                json_pack("{s:{s:s}, s:{s:s, s:{s:O}}}", "task", "name", r.task, "bridge", "name",
                          r.bridge, "options", "shots", json_object_get(cfg, "shots"));
            r.norm = norm;
            int64_t id;
            tp_status st = record(c, &r, &id, err);
            json_decref(norm);
            TP_TRY(st);
        }
    }
    return TP_OK;
}

static tp_status read_gsm8k_bridge(ictx *c, json_t *root, tp_err *err) {
    json_t *cfg, *bres, *base;
    TP_TRY(need(c, root, "config", &cfg, err));
    TP_TRY(need(c, root, "bridge_results", &bres, err));
    TP_TRY(need(c, root, "baseline_results", &base, err));
    const char *k;
    json_t *v;
    json_object_foreach(base, k, v) TP_TRY(read_baseline_entry(c, k, v, "gsm8k", NULL, err));
    srun r;
    srun_init(&r);
    r.entry = "bridge_results";
    r.task = "gsm8k";
    r.bridge = "unspecified_bridge"; /* the file does not name the architecture */
    r.sender = LLAMA;
    r.receiver = MISTRAL;
    json_t *seed = json_object_get(cfg, "seed");
    if (json_is_integer(seed)) {
        r.has_seed = 1;
        r.seed = json_integer_value(seed);
    }
    r.study = cfg;
    TP_TRY(acc_fields(c, bres, &r, err));
    r.samples = json_object_get(root, "sample_predictions");
    r.f_text = "question";
    r.f_gold = "true_answer";
    r.f_pred = "pred_answer";
    json_t *norm = norm_from_config(cfg, "gsm8k", r.bridge);
    r.norm = norm;
    int64_t id;
    tp_status st = record(c, &r, &id, err);
    json_decref(norm);
    if (st == TP_OK)
        st = add_series(c, id, json_object_get(root, "training_losses"), "study/train_loss_epoch",
                        err);
    if (st == TP_OK)
        st = add_series(c, id, json_object_get(root, "eval_accuracies"),
                        "study/eval_accuracy_epoch", err);
    return st;
}

static tp_status read_latency(ictx *c, json_t *root, tp_err *err) {
    json_t *cfg, *res;
    TP_TRY(need(c, root, "config", &cfg, err));
    TP_TRY(need(c, root, "results", &res, err));
    int64_t nsamp;
    TP_TRY(need_int(c, cfg, "num_samples", &nsamp, err));
    /* a run without an accuracy: record it through the same path with the latency rows only */
    json_t *norm = json_pack("{s:{s:s}}", "bridge", "name", "latency_benchmark");
    char *canon = NULL, hash[TP_SHA256_HEX];
    json_t *full = json_deep_copy(norm);
    json_object_set_new(full, "origin", json_string("study"));
    json_object_set_new(full, "source", json_string(c->rel));
    json_object_set_new(full, "file_sha256", json_string(c->sha));
    json_object_set(full, "study", cfg);
    json_decref(norm);
    tp_status st = tp_canon_json_hash(full, &canon, hash, err);
    json_decref(full);
    if (st != TP_OK) return st;
    int64_t found = 0, id = 0, exp_id = 0;
    tp_run_status rs;
    st = tp_store_run_find(c->s, hash, &found, &rs, NULL, err);
    if (st == TP_OK && found && rs == TP_RUN_DONE) {
        c->rep->existing++;
        free(canon);
        return TP_OK;
    }
    if (st == TP_OK) st = tp_store_experiment_ensure(c->s, c->exp, NULL, "", &exp_id, err);
    tp_run_meta m = {0};
    m.experiment_id = exp_id;
    m.config_json = canon;
    m.config_hash = hash;
    m.bridge = "latency_benchmark";
    m.sender = LLAMA;
    m.receiver = MISTRAL;
    m.git_dirty = -1;
    int attempt;
    if (st == TP_OK) st = tp_store_run_begin(c->s, &m, &id, &attempt, err);
    free(canon);
    if (st != TP_OK) return st;
    st = exec1(c->s, "UPDATE runs SET origin = 'study', source = ?2, seed = NULL WHERE id = ?1", id,
               c->rel, NULL, err);
    const char *path;
    json_t *arr;
    json_object_foreach(res, path, arr) {
        if (st != TP_OK) break;
        if (!json_is_array(arr)) {
            st = tp_errf(err, TP_EFORMAT, "%s/%s: results.%s: expected a list", c->root, c->rel,
                         path);
            break;
        }
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) {
            int64_t b;
            double avg, sd;
            st = need_int(c, e, "batch_size", &b, err);
            if (st == TP_OK) st = need_num(c, e, "avg_latency_s", &avg, err);
            if (st == TP_OK) st = need_num(c, e, "std_latency_s", &sd, err);
            if (st != TP_OK) break;
            /* avg_latency_s times all num_samples examples: per call = avg / (num_samples / b) */
            double calls = (double)nsamp / (double)b;
            const char *stage = !strcmp(path, "direct_mistral") ? "receiver_direct" : path;
            tp_latency_row l = {stage, b,      -1, -1, avg * 1000 / calls, sd * 1000 / calls,
                                -1,    "study"};
            st = tp_store_latency_add(c->s, id, &l, 1, err);
            if (st != TP_OK) break;
        }
    }
    tp_err e2 = {0};
    tp_store_run_finish(c->s, id, st == TP_OK ? TP_RUN_DONE : TP_RUN_FAILED,
                        st == TP_OK ? NULL : err->msg, NULL, &e2);
    if (st == TP_OK) c->rep->runs++;
    return st;
}

static tp_status read_lora(ictx *c, json_t *root, tp_err *err) {
    json_t *cfg, *res;
    TP_TRY(need(c, root, "config", &cfg, err));
    TP_TRY(need(c, root, "results", &res, err));
    json_t *ds = json_object_get(cfg, "dataset"), *rank = json_object_get(cfg, "rank");
    const char *k;
    json_t *v;
    json_object_foreach(res, k, v) {
        char *end;
        if (strncmp(k, "seed_", 5) != 0 || !k[5])
            return tp_errf(err, TP_EFORMAT, "%s/%s: results.%s: expected keys seed_<integer>",
                           c->root, c->rel, k);
        long long seed = strtoll(k + 5, &end, 10);
        if (*end)
            return tp_errf(err, TP_EFORMAT, "%s/%s: results.%s: expected keys seed_<integer>",
                           c->root, c->rel, k);
        char entry[96];
        snprintf(entry, sizeof entry, "results.%s", k);
        srun r;
        srun_init(&r);
        r.entry = entry;
        r.task = json_is_string(ds) ? json_string_value(ds) : "?";
        r.bridge = "receiver_lora";
        r.receiver = MISTRAL;
        r.has_seed = 1;
        r.seed = seed;
        json_t *study = json_deep_copy(cfg);
        json_object_set(study, "run", v);
        r.study = study;
        TP_TRY(acc_fields(c, v, &r, err));
        json_t *norm = json_pack("{s:{s:s}, s:{s:s, s:{s:O}}}", "task", "name", r.task, "bridge",
                                 "name", r.bridge, "options", "rank", rank ? rank : json_null());
        r.norm = norm;
        int64_t id;
        tp_status st = record(c, &r, &id, err);
        json_decref(norm);
        json_decref(study);
        TP_TRY(st);
    }
    return TP_OK;
}

/* ---- the walk -------------------------------------------------------------------------------- */

typedef struct flist {
    char **p;
    int n, cap;
} flist;

static tp_status walk(const char *root, const char *rel, flist *fl, tp_err *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return tp_errf(err, TP_EIO, "import-preserved: %s: cannot open the directory", dir);
    struct dirent *e;
    tp_status st = TP_OK;
    while (st == TP_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char r2[4096], full[8192];
        snprintf(r2, sizeof r2, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r2);
        struct stat sb;
        if (stat(full, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            st = walk(root, r2, fl, err);
        } else {
            size_t l = strlen(r2);
            if (l < 5 || strcmp(r2 + l - 5, ".json")) continue;
            if (fl->n == fl->cap) {
                int cap = fl->cap ? fl->cap * 2 : 32;
                char **np = realloc(fl->p, (size_t)cap * sizeof *np);
                if (!np) {
                    st = tp_errf(err, TP_ENOMEM, "import: out of memory");
                    break;
                }
                fl->p = np;
                fl->cap = cap;
            }
            fl->p[fl->n++] = tp_strdup(r2);
        }
    }
    closedir(d);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *load(const char *root, const char *rel, tp_err *err) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) tp_errf(err, TP_EFORMAT, "%s:%d: %s", path, je.line, je.text);
    return j;
}

static tp_status read_file(ictx *c, const flist *fl, int *used_config, tp_err *err) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", c->root, c->rel);
    TP_TRY(tp_sha256_file_hex(path, c->sha, err));
    const char *slash = strchr(c->rel, '/');
    size_t el = slash ? (size_t)(slash - c->rel) : strlen(c->rel);
    if (el >= sizeof c->exp) el = sizeof c->exp - 1;
    memcpy(c->exp, c->rel, el);
    c->exp[el] = 0;
    const char *base = base_of(c->rel);
    if (!strcmp(base, "config.json")) return TP_OK; /* read with the eval file beside it */
    json_t *root = load(c->root, c->rel, err);
    if (!root) return TP_EFORMAT;
    tp_status st;
    json_t *exp = json_object_get(root, "experiment");
    if (!json_is_object(root)) {
        st = tp_errf(err, TP_EFORMAT, "%s: expected a JSON object", path);
    } else if (!strncmp(base, "eval_", 5) && json_object_get(root, "samples")) {
        /* its folder's config.json, when there is one */
        char cfgrel[4096];
        snprintf(cfgrel, sizeof cfgrel, "%.*sconfig.json", (int)(base - c->rel), c->rel);
        json_t *cfg = NULL;
        for (int i = 0; i < fl->n; i++)
            if (!strcmp(fl->p[i], cfgrel)) {
                cfg = load(c->root, cfgrel, err);
                if (!cfg) {
                    json_decref(root);
                    return TP_EFORMAT;
                }
                used_config[i] = 1;
            }
        st = read_eval(c, root, cfg, err);
        json_decref(cfg);
    } else if (strstr(base, "_baselines.json")) {
        st = read_baselines(c, root, err);
    } else if (json_object_get(root, "experiments") && json_object_get(root, "baselines")) {
        st = read_ablations(c, root, err);
    } else if (json_is_string(exp) && !strncmp(json_string_value(exp), "cot_relay", 9)) {
        st = read_cot_relay(c, root, err);
    } else if (json_is_string(exp) && !strncmp(json_string_value(exp), "fewshot_", 8)) {
        st = read_fewshot(c, root, err);
    } else if (json_is_string(exp) && !strcmp(json_string_value(exp), "gsm8k_bridge")) {
        st = read_gsm8k_bridge(c, root, err);
    } else if (json_is_string(exp) &&
               !strcmp(json_string_value(exp), "batched_latency_benchmark")) {
        st = read_latency(c, root, err);
    } else if (json_is_string(exp) && !strncmp(json_string_value(exp), "lora_", 5)) {
        st = read_lora(c, root, err);
    } else {
        st = tp_errf(err, TP_EFORMAT,
                     "%s: no reader for this layout (expected eval_<task>_results.json, "
                     "<task>_baselines.json, an ablation results.json, or an exp009 file with "
                     "\"experiment\": cot_relay_*, fewshot_*, gsm8k_bridge, "
                     "batched_latency_benchmark, lora_*)",
                     path);
    }
    json_decref(root);
    return st;
}

tp_status tp_import_preserved(tp_store *s, const char *dir, tp_import_report *rep, tp_err *err) {
    memset(rep, 0, sizeof *rep);
    flist fl = {0};
    tp_status st = walk(dir, "", &fl, err);
    if (st == TP_OK && fl.n == 0)
        st = tp_errf(err, TP_EINVAL, "import-preserved: %s: no .json files there", dir);
    if (st == TP_OK) qsort(fl.p, (size_t)fl.n, sizeof *fl.p, cmp_str);
    int *used = calloc((size_t)fl.n + 1, sizeof *used);
    if (st == TP_OK && !used) st = tp_errf(err, TP_ENOMEM, "import: out of memory");
    ictx c = {s, rep, dir, NULL, "", ""};
    for (int i = 0; st == TP_OK && i < fl.n; i++) {
        c.rel = fl.p[i];
        st = read_file(&c, &fl, used, err);
        if (st == TP_OK && strcmp(base_of(fl.p[i]), "config.json")) rep->files++;
    }
    /* a config.json no eval file used would be silently ignored: refuse instead */
    for (int i = 0; st == TP_OK && i < fl.n; i++) {
        if (strcmp(base_of(fl.p[i]), "config.json")) continue;
        if (!used[i])
            st = tp_errf(err, TP_EFORMAT,
                         "%s/%s: a config.json without an eval_<task>_results.json beside it "
                         "(no run to attach it to)",
                         dir, fl.p[i]);
        else
            rep->files++;
    }
    for (int i = 0; i < fl.n; i++) free(fl.p[i]);
    free(fl.p);
    free(used);
    return st;
}
