/* table.c — the metric table of `telepathy table` and tp.table{} (see table.h): one SQL query for
 * the runs, cells built in C, McNemar marks from the predictions table, three renderers. */
#include "run/table.h"

#include <ctype.h>
#include <stddef.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/stats.h"
#include "util/strutil.h"

static const char *const run_cols[] = {
    "bridge", "task",       "sender",  "receiver",      "seed",   "task_version",  "status",
    "device", "git_commit", "attempt", "experiment_id", "origin", "bridge_version"};

tp_status tp_table_key_sql(const char *key, char *out, size_t cap, tp_err *err) {
    if (!strcmp(key, "experiment")) { /* the experiment's name (experiments.name) */
        snprintf(out, cap, "e.name");
        return TP_OK;
    }
    for (size_t i = 0; i < sizeof run_cols / sizeof *run_cols; i++)
        if (!strcmp(key, run_cols[i])) {
            snprintf(out, cap, "CAST(r.%s AS TEXT)", key);
            return TP_OK;
        }
    if (!key[0]) return tp_errf(err, TP_EINVAL, "table: empty key");
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.')
            return tp_errf(err, TP_EINVAL,
                           "table: key '%s': expected a runs column (bridge, task, sender, "
                           "receiver, seed, ...), experiment, or a config path like "
                           "bridge.options.tokens",
                           key);
    snprintf(out, cap, "CAST(json_extract(r.config_json, '$.%s') AS TEXT)", key);
    return TP_OK;
}

typedef struct trun {
    int64_t id, n, seed;
    int has_seed, ri, ci;
    double v;
    char scheme[32], tver[32], fair[128];
    double p; /* McNemar p vs the baseline (raw, then Holm-adjusted); NaN = not tested */
    int no_pairs;
} trun;

enum { TEST_MCNEMAR = 0, TEST_BOOTSTRAP = 1, TEST_TTEST = 2 };

typedef struct tbl {
    int test; /* TEST_*: how cells are compared with the --vs row */
    trun *runs;
    int nrun, caprun;
    char **rows, **cols;
    int nr, nc;
    int pct;
    int64_t common_n; /* the most common number of examples a run scored (-1 unknown) */
} tbl;

static int find_or_add(char ***list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i], s)) return i;
    char **nl = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    if (!nl) return -1;
    *list = nl;
    nl[*n] = tp_strdup(s);
    if (!nl[*n]) return -1;
    return (*n)++;
}

static void tbl_free(tbl *t) {
    for (int i = 0; i < t->nr; i++) free(t->rows[i]);
    for (int i = 0; i < t->nc; i++) free(t->cols[i]);
    free(t->rows);
    free(t->cols);
    free(t->runs);
}

static tp_status db_err(tp_store *s, tp_err *err) {
    return tp_errf(err, TP_EDB, "table: %s: %s", tp_store_path(s), sqlite3_errmsg(tp_store_db(s)));
}

static tp_status load_runs(tp_store *s, const tp_table_opts *o, const char *metric,
                           const char *split, tbl *t, tp_err *err) {
    char rk[256], ck[256];
    TP_TRY(tp_table_key_sql(o->rows, rk, sizeof rk, err));
    if (o->cols)
        TP_TRY(tp_table_key_sql(o->cols, ck, sizeof ck, err));
    else
        snprintf(ck, sizeof ck, "'%s'", "all");
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT r.id, COALESCE(%s, '-'), COALESCE(%s, '-'), x.value, x.scheme, x.n, "
             "r.task_version, r.seed FROM runs r JOIN results x ON x.run_id = r.id LEFT JOIN "
             "experiments e ON e.id = r.experiment_id WHERE r.status = 'done' AND x.metric = ?1 "
             "AND x.split = ?2 AND (?3 IS NULL OR e.name = ?3) AND (?4 IS NULL OR r.origin = ?4) "
             "AND x.value IS NOT NULL ORDER BY r.id, x.scheme",
             rk, ck);
    sqlite3 *db = tp_store_db(s);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) return db_err(s, err);
    sqlite3_bind_text(q, 1, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, split, -1, SQLITE_STATIC);
    if (o->experiment) sqlite3_bind_text(q, 3, o->experiment, -1, SQLITE_STATIC);
    if (o->origin) sqlite3_bind_text(q, 4, o->origin, -1, SQLITE_STATIC);
    int rc;
    tp_status st = TP_OK;
    t->pct = 1;
    while (st == TP_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (t->nrun == t->caprun) {
            int cap = t->caprun ? 2 * t->caprun : 64;
            trun *nr = realloc(t->runs, (size_t)cap * sizeof *nr);
            if (!nr) {
                st = tp_errf(err, TP_ENOMEM, "table: out of memory");
                break;
            }
            t->runs = nr;
            t->caprun = cap;
        }
        trun *r = &t->runs[t->nrun];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(q, 0);
        r->ri = find_or_add(&t->rows, &t->nr, (const char *)sqlite3_column_text(q, 1));
        r->ci = find_or_add(&t->cols, &t->nc, (const char *)sqlite3_column_text(q, 2));
        if (r->ri < 0 || r->ci < 0) {
            st = tp_errf(err, TP_ENOMEM, "table: out of memory");
            break;
        }
        r->v = sqlite3_column_double(q, 3);
        const char *sc = (const char *)sqlite3_column_text(q, 4);
        tp_strlcpy(r->scheme, sc ? sc : "", sizeof r->scheme);
        r->n = sqlite3_column_type(q, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 5);
        const char *tv = (const char *)sqlite3_column_text(q, 6);
        tp_strlcpy(r->tver, tv ? tv : "?", sizeof r->tver);
        r->has_seed = sqlite3_column_type(q, 7) != SQLITE_NULL;
        r->seed = sqlite3_column_int64(q, 7);
        r->p = NAN;
        if (r->v < 0 || r->v > 1) t->pct = 0;
        t->nrun++;
    }
    if (st == TP_OK && rc != SQLITE_DONE) st = db_err(s, err);
    sqlite3_finalize(q);
    if (st != TP_OK) return st;
    /* stored fairness warnings (run/fairness.h: results rows fairness_warning/<code>) */
    const char *fq = "SELECT substr(metric, 18) FROM results WHERE run_id = ?1 AND split = ?2 AND "
                     "metric LIKE 'fairness_warning/%' AND value > 0 ORDER BY metric";
    if (sqlite3_prepare_v2(db, fq, -1, &q, NULL) != SQLITE_OK) return db_err(s, err);
    for (int i = 0; i < t->nrun; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, t->runs[i].id);
        sqlite3_bind_text(q, 2, split, -1, SQLITE_STATIC);
        size_t off = 0;
        while (sqlite3_step(q) == SQLITE_ROW && off < sizeof t->runs[i].fair) {
            const char *c = (const char *)sqlite3_column_text(q, 0);
            off += (size_t)snprintf(t->runs[i].fair + off, sizeof t->runs[i].fair - off, "%s%s",
                                    off ? "+" : "", c ? c : "?");
        }
    }
    sqlite3_finalize(q);
    /* the most common example count (ties: the first seen); other counts are flagged */
    int best = 0;
    t->common_n = -1;
    for (int i = 0; i < t->nrun; i++) {
        int k = 0;
        for (int j = 0; j < t->nrun; j++) k += t->runs[j].n == t->runs[i].n;
        if (k > best) {
            best = k;
            t->common_n = t->runs[i].n;
        }
    }
    return TP_OK;
}

/* McNemar of run a against baseline run b on their paired predictions. */
static tp_status mcnemar_runs(sqlite3_stmt *q, int64_t a, int64_t b, const char *split, double *p,
                              int *pairs) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, a);
    sqlite3_bind_int64(q, 2, b);
    sqlite3_bind_text(q, 3, split, -1, SQLITE_STATIC);
    *pairs = 0;
    *p = NAN;
    if (sqlite3_step(q) != SQLITE_ROW) return TP_EDB;
    *pairs = sqlite3_column_int(q, 2);
    if (*pairs > 0) {
        tp_mcnemar mc;
        tp_stats_mcnemar(sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1), &mc);
        *p = mc.p;
    }
    return TP_OK;
}

/* The paired outcomes (a correct, b correct) of two runs on their shared examples. */
static tp_status paired_outcomes(sqlite3_stmt *q, int64_t a, int64_t b, const char *split,
                                 double **x, double **y, int *n) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, a);
    sqlite3_bind_int64(q, 2, b);
    sqlite3_bind_text(q, 3, split, -1, SQLITE_STATIC);
    *x = *y = NULL;
    *n = 0;
    int cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            double *nx = realloc(*x, (size_t)cap * sizeof *nx);
            if (nx) *x = nx;
            double *ny = realloc(*y, (size_t)cap * sizeof *ny);
            if (ny) *y = ny;
            if (!nx || !ny) return TP_ENOMEM;
        }
        (*x)[*n] = sqlite3_column_int(q, 0);
        (*y)[*n] = sqlite3_column_int(q, 1);
        (*n)++;
    }
    return TP_OK;
}

static const char *const SQL_COUNTS =
    "SELECT COALESCE(SUM(a.correct = 1 AND b.correct = 0), 0), COALESCE(SUM(a.correct = 0 "
    "AND b.correct = 1), 0), COUNT(*) FROM predictions a JOIN predictions b ON b.run_id = ?2 "
    "AND b.split = a.split AND (CASE WHEN a.example_hash IS NOT NULL AND b.example_hash IS "
    "NOT NULL THEN a.example_hash = b.example_hash ELSE a.example_id = b.example_id END) "
    "WHERE a.run_id = ?1 AND a.split = ?3 AND a.correct IS NOT NULL AND b.correct IS NOT NULL";
static const char *const SQL_PAIRS =
    "SELECT a.correct, b.correct FROM predictions a JOIN predictions b ON b.run_id = ?2 "
    "AND b.split = a.split AND (CASE WHEN a.example_hash IS NOT NULL AND b.example_hash IS "
    "NOT NULL THEN a.example_hash = b.example_hash ELSE a.example_id = b.example_id END) "
    "WHERE a.run_id = ?1 AND a.split = ?3 AND a.correct IS NOT NULL AND b.correct IS NOT NULL "
    "ORDER BY a.example_id";

/* the baseline run of the same seed, else the baseline's first run in that column */
static const trun *baseline_for(const tbl *t, int base, const trun *r, int same_seed_only) {
    const trun *pb = NULL;
    for (int j = 0; j < t->nrun; j++) {
        const trun *c = &t->runs[j];
        if (c->ri != base || c->ci != r->ci) continue;
        if (c->has_seed && r->has_seed && c->seed == r->seed) return c;
        if (!pb && !same_seed_only) pb = c;
    }
    return pb;
}

/* t-test: one test per cell over the seeds it shares with the baseline cell. */
static void ttest_cells(tbl *t, int base) {
    for (int i = 0; i < t->nrun; i++) {
        trun *r = &t->runs[i];
        if (r->ri == base) continue;
        int first = 1;
        for (int j = 0; j < i; j++)
            if (t->runs[j].ri == r->ri && t->runs[j].ci == r->ci) first = 0;
        if (!first) continue; /* the cell's test is carried by its first run */
        double x[256], y[256];
        int n = 0;
        for (int j = i; j < t->nrun && n < 256; j++) {
            const trun *c = &t->runs[j];
            if (c->ri != r->ri || c->ci != r->ci) continue;
            const trun *pb = baseline_for(t, base, c, 1);
            if (!pb) continue;
            x[n] = c->v;
            y[n++] = pb->v;
        }
        tp_ttest tt;
        tp_err e = {0};
        if (n >= 2 && tp_stats_paired_t(x, y, n, &tt, &e) == TP_OK)
            r->p = tt.p;
        else
            r->no_pairs = 1;
    }
}

static tp_status significance(tp_store *s, const tp_table_opts *o, const char *split, tbl *t,
                              tp_err *err) {
    int base = -1;
    for (int i = 0; i < t->nr; i++)
        if (!strcmp(t->rows[i], o->vs)) base = i;
    if (base < 0) {
        tp_strbuf b;
        tp_strbuf_init(&b);
        for (int i = 0; i < t->nr; i++) tp_strbuf_printf(&b, "%s%s", i ? ", " : "", t->rows[i]);
        tp_status st = tp_errf(err, TP_EINVAL, "table: --vs %s: no row has %s = %s (rows: %s)",
                               o->vs, o->rows, o->vs, b.len ? b.s : "none");
        tp_strbuf_free(&b);
        return st;
    }
    if (t->test == TEST_TTEST) {
        ttest_cells(t, base);
    } else {
        sqlite3_stmt *q = NULL;
        const char *sql = t->test == TEST_MCNEMAR ? SQL_COUNTS : SQL_PAIRS;
        if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK)
            return db_err(s, err);
        for (int i = 0; i < t->nrun; i++) {
            trun *r = &t->runs[i];
            if (r->ri == base) continue;
            const trun *pb = baseline_for(t, base, r, 0);
            if (!pb) continue;
            int pairs = 0;
            tp_status st = TP_OK;
            if (t->test == TEST_MCNEMAR) {
                st = mcnemar_runs(q, r->id, pb->id, split, &r->p, &pairs);
            } else {
                double *x, *y;
                st = paired_outcomes(q, r->id, pb->id, split, &x, &y, &pairs);
                tp_paired_boot pbs;
                if (st == TP_OK && pairs >= 2 &&
                    tp_stats_paired_bootstrap(x, y, pairs, TP_STATS_BOOT_B, 1, 0.95, &pbs, err) ==
                        TP_OK)
                    r->p = pbs.p;
                else if (st == TP_OK)
                    pairs = 0;
                free(x);
                free(y);
            }
            if (st != TP_OK) {
                sqlite3_finalize(q);
                return st == TP_ENOMEM ? tp_errf(err, TP_ENOMEM, "table: out of memory")
                                       : db_err(s, err);
            }
            r->no_pairs = pairs == 0;
        }
        sqlite3_finalize(q);
    }
    int m = 0;
    for (int i = 0; i < t->nrun; i++) m += !isnan(t->runs[i].p);
    if (m == 0) return TP_OK;
    double *p = malloc((size_t)m * sizeof *p);
    if (!p) return tp_errf(err, TP_ENOMEM, "table: out of memory");
    int k = 0;
    for (int i = 0; i < t->nrun; i++)
        if (!isnan(t->runs[i].p)) p[k++] = t->runs[i].p;
    tp_status st = tp_stats_holm(p, m, p, err);
    k = 0;
    for (int i = 0; st == TP_OK && i < t->nrun; i++)
        if (!isnan(t->runs[i].p)) t->runs[i].p = p[k++];
    free(p);
    return st;
}

/* ---- one cell -------------------------------------------------------------------------------- */

typedef struct cellv {
    int n; /* runs */
    double mean, std, p;
    int tested, untested;
    int64_t examples; /* examples per run when the cell's runs agree, else -1 */
    char seeds[256];  /* the runs' seeds, ';'-joined in run order ("?" = not recorded) */
    char flags[512];
} cellv;

static void add_flag(char *flags, size_t cap, const char *f) {
    size_t l = strlen(flags);
    snprintf(flags + l, cap - l, "%s[%s]", l ? " " : "", f);
}

/* Distinct values of a field among the cell's runs, '+'-joined; returns how many. */
static int distinct(const tbl *t, int ri, int ci, size_t off, char *out, size_t cap) {
    out[0] = 0;
    int n = 0;
    for (int i = 0; i < t->nrun; i++) {
        const trun *r = &t->runs[i];
        if (r->ri != ri || r->ci != ci) continue;
        const char *v = (const char *)r + off;
        int seen = 0;
        for (int j = 0; j < i; j++) {
            const trun *q = &t->runs[j];
            if (q->ri == ri && q->ci == ci && !strcmp((const char *)q + off, v)) seen = 1;
        }
        if (seen) continue;
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", n ? "+" : "", v[0] ? v : "''");
        n++;
    }
    return n;
}

static int cell_of(const tbl *t, int ri, int ci, cellv *c) {
    memset(c, 0, sizeof *c);
    c->p = NAN;
    double *v = malloc(((size_t)t->nrun + 1) * sizeof *v);
    if (!v) return -1;
    int64_t n0 = -2;
    int ndiff = 0;
    for (int i = 0; i < t->nrun; i++) {
        const trun *r = &t->runs[i];
        if (r->ri != ri || r->ci != ci) continue;
        v[c->n++] = r->v;
        if (n0 == -2) n0 = r->n;
        if (r->n != n0 || r->n != t->common_n) ndiff = 1;
        if (!isnan(r->p)) {
            c->tested++;
            if (isnan(c->p) || r->p > c->p) c->p = r->p;
        } else if (r->no_pairs) {
            c->untested++;
        }
    }
    if (c->n == 0) {
        free(v);
        return 0;
    }
    tp_stats_mean_std(v, c->n, &c->mean, &c->std);
    free(v);
    c->examples = n0;
    for (int i = 0; i < t->nrun; i++)
        if (t->runs[i].ri == ri && t->runs[i].ci == ci && t->runs[i].n != n0) c->examples = -1;
    char buf[256];
    if (distinct(t, ri, ci, offsetof(trun, scheme), buf, sizeof buf) > 1) {
        char f[300];
        snprintf(f, sizeof f, "schemes: %s", buf);
        add_flag(c->flags, sizeof c->flags, f);
    }
    if (distinct(t, ri, ci, offsetof(trun, tver), buf, sizeof buf) > 1) {
        char f[300];
        snprintf(f, sizeof f, "task versions: %s", buf);
        add_flag(c->flags, sizeof c->flags, f);
    }
    distinct(t, ri, ci, offsetof(trun, fair), buf, sizeof buf);
    if (strcmp(buf, "''") != 0) {
        char f[300];
        /* runs without a warning contribute '' to the list: drop it */
        char *e = strstr(buf, "''+");
        if (e) memmove(e, e + 3, strlen(e + 3) + 1);
        size_t l = strlen(buf);
        if (l > 3 && !strcmp(buf + l - 3, "+''")) buf[l - 3] = 0;
        snprintf(f, sizeof f, "fairness: %s", buf);
        add_flag(c->flags, sizeof c->flags, f);
    }
    if (ndiff) {
        char f[300] = "N=";
        size_t off = 2;
        int k = 0;
        for (int i = 0; i < t->nrun && off < sizeof f - 24; i++) {
            const trun *r = &t->runs[i];
            if (r->ri != ri || r->ci != ci) continue;
            int seen = 0;
            for (int j = 0; j < i; j++)
                if (t->runs[j].ri == ri && t->runs[j].ci == ci && t->runs[j].n == r->n) seen = 1;
            if (seen) continue;
            if (r->n < 0)
                off += (size_t)snprintf(f + off, sizeof f - off, "%s?", k++ ? "," : "");
            else
                off += (size_t)snprintf(f + off, sizeof f - off, "%s%lld", k++ ? "," : "",
                                        (long long)r->n);
        }
        add_flag(c->flags, sizeof c->flags, f);
    }
    if (c->untested && !c->tested)
        add_flag(c->flags, sizeof c->flags,
                 t->test == TEST_TTEST ? "fewer than 2 seeds paired with the baseline"
                                       : "no paired predictions");
    /* the seeds, and a seed used twice ("5 seeds" that were fewer, seeds defaulted to 42) */
    size_t off = 0;
    int dup = 0;
    int64_t dup_seed = 0;
    for (int i = 0; i < t->nrun; i++) {
        const trun *r = &t->runs[i];
        if (r->ri != ri || r->ci != ci) continue;
        if (off < sizeof c->seeds - 24) {
            if (r->has_seed)
                off += (size_t)snprintf(c->seeds + off, sizeof c->seeds - off, "%s%lld",
                                        off ? ";" : "", (long long)r->seed);
            else
                off +=
                    (size_t)snprintf(c->seeds + off, sizeof c->seeds - off, "%s?", off ? ";" : "");
        }
        for (int j = 0; j < i && !dup; j++) {
            const trun *q = &t->runs[j];
            if (q->ri == ri && q->ci == ci && q->has_seed && r->has_seed && q->seed == r->seed) {
                dup = 1;
                dup_seed = r->seed;
            }
        }
    }
    if (dup) {
        char f[64];
        snprintf(f, sizeof f, "seed %lld used twice", (long long)dup_seed);
        add_flag(c->flags, sizeof c->flags, f);
    }
    return 1;
}

static const char *mark(double p) {
    if (isnan(p)) return "";
    return p < 0.001 ? "***" : p < 0.01 ? "**" : p < 0.05 ? "*" : "";
}

/* ---- renderers ------------------------------------------------------------------------------- */

static void latex_escape(tp_strbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '_':
        case '%':
        case '&':
        case '#':
        case '$':
        case '{':
        case '}':
            tp_strbuf_printf(b, "\\%c", *s);
            break;
        case '~':
            tp_strbuf_append(b, "\\textasciitilde{}");
            break;
        case '^':
            tp_strbuf_append(b, "\\textasciicircum{}");
            break;
        case '\\':
            tp_strbuf_append(b, "\\textbackslash{}");
            break;
        default:
            tp_strbuf_appendn(b, s, 1);
        }
    }
}

static void csv_field(tp_strbuf *b, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        tp_strbuf_append(b, s);
        return;
    }
    tp_strbuf_append(b, "\"");
    for (; *s; s++) tp_strbuf_append(b, *s == '"' ? "\"\"" : (char[2]){*s, 0});
    tp_strbuf_append(b, "\"");
}

static void notes(tp_strbuf *b, const tp_table_opts *o, const tbl *t, const char *pre,
                  const char *post) {
    if (t->common_n >= 0)
        tp_strbuf_printf(b,
                         "%sn = runs (seeds) per cell; each run scored %lld examples unless its "
                         "cell says [N=...].%s\n",
                         pre, (long long)t->common_n, post);
    else
        tp_strbuf_printf(b,
                         "%sn = runs (seeds) per cell; examples per run not recorded unless a "
                         "cell says [N=...].%s\n",
                         pre, post);
    if (o->vs && t->test == TEST_MCNEMAR)
        tp_strbuf_printf(b,
                         "%sMarks: McNemar vs %s on paired predictions (exact below %d discordant "
                         "pairs, else chi-square with continuity correction), Holm-adjusted over "
                         "the table, largest over a cell's seeds: * p<0.05, ** p<0.01, *** "
                         "p<0.001.%s\n",
                         pre, o->vs, TP_STATS_MCNEMAR_EXACT_BELOW, post);
    else if (o->vs && t->test == TEST_BOOTSTRAP)
        tp_strbuf_printf(b,
                         "%sMarks: paired bootstrap (%d resamples) of the accuracy difference vs "
                         "%s on paired predictions, Holm-adjusted over the table, largest over a "
                         "cell's seeds: * p<0.05, ** p<0.01, *** p<0.001.%s\n",
                         pre, TP_STATS_BOOT_B, o->vs, post);
    else if (o->vs)
        tp_strbuf_printf(b,
                         "%sMarks: paired t-test vs %s over the seeds a cell shares with it, "
                         "Holm-adjusted over the table: * p<0.05, ** p<0.01, *** p<0.001.%s\n",
                         pre, o->vs, post);
}

static void fmt_value(char *out, size_t cap, const cellv *c, double scale, int latex) {
    if (c->n > 1)
        snprintf(out, cap, latex ? "$%.1f \\pm %.1f$" : "%.1f ± %.1f", c->mean * scale,
                 c->std * scale);
    else
        snprintf(out, cap, latex ? "$%.1f$" : "%.1f", c->mean * scale);
}

static tp_status render(const tp_table_opts *o, const char *metric, const tbl *t, int fmt,
                        tp_strbuf *b, tp_err *err) {
    double scale = t->pct ? 100.0 : 1.0;
    char val[128];
    cellv c;
    if (fmt == 2) { /* csv: one line per cell, raw values */
        csv_field(b, o->rows);
        tp_strbuf_append(b, ",");
        csv_field(b, o->cols ? o->cols : "column");
        tp_strbuf_append(b, ",metric,mean,std,n_runs,seeds,examples,p_vs_baseline,flags\n");
        for (int r = 0; r < t->nr; r++)
            for (int k = 0; k < t->nc; k++) {
                int have = cell_of(t, r, k, &c);
                if (have < 0) return tp_errf(err, TP_ENOMEM, "table: out of memory");
                if (!have) continue;
                csv_field(b, t->rows[r]);
                tp_strbuf_append(b, ",");
                csv_field(b, o->cols ? t->cols[k] : metric);
                tp_strbuf_append(b, ",");
                csv_field(b, metric);
                tp_strbuf_printf(b, ",%.6g,", c.mean);
                if (c.n > 1) tp_strbuf_printf(b, "%.6g", c.std);
                tp_strbuf_printf(b, ",%d,%s,", c.n, c.seeds);
                if (c.examples >= 0) tp_strbuf_printf(b, "%lld", (long long)c.examples);
                tp_strbuf_append(b, ",");
                if (!isnan(c.p)) tp_strbuf_printf(b, "%.6g", c.p);
                tp_strbuf_append(b, ",");
                csv_field(b, c.flags);
                tp_strbuf_append(b, "\n");
            }
        return TP_OK;
    }
    if (fmt == 1) { /* latex + booktabs */
        tp_strbuf_append(b, "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n"
                            "\\begin{tabular}{l");
        for (int k = 0; k < t->nc; k++) tp_strbuf_append(b, "c");
        tp_strbuf_append(b, "}\n\\toprule\n");
        latex_escape(b, o->rows);
        for (int k = 0; k < t->nc; k++) {
            tp_strbuf_append(b, " & ");
            latex_escape(b, o->cols ? t->cols[k] : metric);
        }
        tp_strbuf_append(b, " \\\\\n\\midrule\n");
        for (int r = 0; r < t->nr; r++) {
            latex_escape(b, t->rows[r]);
            for (int k = 0; k < t->nc; k++) {
                int have = cell_of(t, r, k, &c);
                if (have < 0) return tp_errf(err, TP_ENOMEM, "table: out of memory");
                tp_strbuf_append(b, " & ");
                if (!have) {
                    tp_strbuf_append(b, "--");
                    continue;
                }
                fmt_value(val, sizeof val, &c, scale, 1);
                tp_strbuf_printf(b, "%s {\\scriptsize (n=%d)}", val, c.n);
                if (mark(c.p)[0]) tp_strbuf_printf(b, "$^{%s}$", mark(c.p));
                if (c.flags[0]) {
                    tp_strbuf_append(b, " {\\scriptsize ");
                    latex_escape(b, c.flags);
                    tp_strbuf_append(b, "}");
                }
            }
            tp_strbuf_append(b, " \\\\\n");
        }
        tp_strbuf_append(b, "\\bottomrule\n\\end{tabular}\n\\caption{");
        latex_escape(b, metric);
        tp_strbuf_append(b, t->pct ? " (\\%)" : "");
        tp_strbuf_append(b, " by ");
        latex_escape(b, o->rows);
        if (o->cols) {
            tp_strbuf_append(b, " $\\times$ ");
            latex_escape(b, o->cols);
        }
        tp_strbuf_append(b, ". Mean $\\pm$ sample std over runs (seeds).");
        tp_strbuf_append(b, "}\n\\end{table}\n");
        notes(b, o, t, "% ", "");
        return TP_OK;
    }
    tp_strbuf_printf(b, "%s%s by %s%s%s\n\n", metric, t->pct ? " (%)" : "", o->rows,
                     o->cols ? " x " : "", o->cols ? o->cols : "");
    tp_strbuf_printf(b, "| %s |", o->rows);
    for (int k = 0; k < t->nc; k++) tp_strbuf_printf(b, " %s |", o->cols ? t->cols[k] : metric);
    tp_strbuf_append(b, "\n|---|");
    for (int k = 0; k < t->nc; k++) tp_strbuf_append(b, "---|");
    tp_strbuf_append(b, "\n");
    for (int r = 0; r < t->nr; r++) {
        tp_strbuf_printf(b, "| %s |", t->rows[r]);
        for (int k = 0; k < t->nc; k++) {
            int have = cell_of(t, r, k, &c);
            if (have < 0) return tp_errf(err, TP_ENOMEM, "table: out of memory");
            if (!have) {
                tp_strbuf_append(b, " – |");
                continue;
            }
            fmt_value(val, sizeof val, &c, scale, 0);
            tp_strbuf_printf(b, " %s (n=%d)%s%s%s |", val, c.n, mark(c.p), c.flags[0] ? " " : "",
                             c.flags);
        }
        tp_strbuf_append(b, "\n");
    }
    if (t->nr == 0)
        tp_strbuf_append(b, "(no finished runs with this metric)\n");
    else {
        tp_strbuf_append(b, "\n");
        notes(b, o, t, "", "");
    }
    return TP_OK;
}

tp_status tp_table_render(tp_store *s, const tp_table_opts *o, char **out, tp_err *err) {
    *out = NULL;
    if (!o->rows)
        return tp_errf(err, TP_EINVAL, "table: 'rows' (a key such as \"bridge\") is required");
    int fmt = 0;
    if (!o->format || !strcmp(o->format, "md") || !strcmp(o->format, "markdown"))
        fmt = 0;
    else if (!strcmp(o->format, "latex") || !strcmp(o->format, "tex"))
        fmt = 1;
    else if (!strcmp(o->format, "csv"))
        fmt = 2;
    else
        return tp_errf(err, TP_EINVAL, "table: format '%s'; expected md, latex or csv", o->format);
    const char *metric = o->metric ? o->metric : "accuracy";
    const char *split = o->split ? o->split : "eval";
    tbl t;
    memset(&t, 0, sizeof t);
    if (!o->test || !strcmp(o->test, "mcnemar"))
        t.test = TEST_MCNEMAR;
    else if (!strcmp(o->test, "bootstrap"))
        t.test = TEST_BOOTSTRAP;
    else if (!strcmp(o->test, "ttest"))
        t.test = TEST_TTEST;
    else
        return tp_errf(err, TP_EINVAL, "table: test '%s'; expected mcnemar, bootstrap or ttest",
                       o->test);
    tp_status st = load_runs(s, o, metric, split, &t, err);
    if (st == TP_OK && o->vs && t.nrun > 0) st = significance(s, o, split, &t, err);
    tp_strbuf b;
    tp_strbuf_init(&b);
    if (st == TP_OK) st = render(o, metric, &t, fmt, &b, err);
    if (st == TP_OK && b.oom) st = tp_errf(err, TP_ENOMEM, "table: out of memory");
    tbl_free(&t);
    if (st == TP_OK)
        *out = tp_strbuf_take(&b);
    else
        tp_strbuf_free(&b);
    return st;
}
