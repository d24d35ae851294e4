/* plot.c — figures from results.db (see plot.h): SQL -> a gnuplot data file + script in a
 * temporary directory -> gnuplot, whose errors come back in the message. */
#define _XOPEN_SOURCE 700
#include "run/plot.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run/stats.h"
#include "run/table.h"
#include "util/strutil.h"

/* gnuplot strings are double-quoted: keep quotes and backslashes out of labels */
static void clean(char *s) {
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || *s == '\n') *s = '\'';
}

typedef struct pt {
    char series[128];
    double x, v;
} pt;

static int cmp_pt(const void *a, const void *b) {
    const pt *p = a, *q = b;
    int c = strcmp(p->series, q->series);
    if (c) return c;
    return (p->x > q->x) - (p->x < q->x);
}

static tp_status db_err(tp_store *s, tp_err *err) {
    return tp_errf(err, TP_EDB, "plot: %s: %s", tp_store_path(s), sqlite3_errmsg(tp_store_db(s)));
}

static void bind_filters(sqlite3_stmt *q, const tp_plot_opts *o, int first) {
    if (o->experiment) sqlite3_bind_text(q, first, o->experiment, -1, SQLITE_STATIC);
    if (o->origin) sqlite3_bind_text(q, first + 1, o->origin, -1, SQLITE_STATIC);
}

static int run_selected(const tp_plot_opts *o, int64_t id) {
    if (o->n_runs == 0) return 1;
    for (int i = 0; i < o->n_runs; i++)
        if (o->runs[i] == id) return 1;
    return 0;
}

/* xy-shaped kinds: mean ± std over the runs of each (series, x). */
static tp_status data_xy(tp_store *s, const tp_plot_opts *o, const char *xkey, FILE *f,
                         tp_strbuf *plot, int *n_series, int *pct_out, tp_err *err) {
    char xs[256], ss[256], sql[2048];
    TP_TRY(tp_table_key_sql(xkey, xs, sizeof xs, err));
    TP_TRY(tp_table_key_sql(o->series ? o->series : "task", ss, sizeof ss, err));
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(%s, '-'), %s, x.value FROM runs r JOIN results x ON x.run_id = "
             "r.id LEFT JOIN experiments e ON e.id = r.experiment_id WHERE r.status = 'done' AND "
             "x.metric = ?1 AND x.split = ?2 AND (?3 IS NULL OR e.name = ?3) AND (?4 IS NULL OR "
             "r.origin = ?4) AND x.value IS NOT NULL",
             ss, xs);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK) return db_err(s, err);
    sqlite3_bind_text(q, 1, o->metric ? o->metric : "accuracy", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, o->split ? o->split : "eval", -1, SQLITE_STATIC);
    bind_filters(q, o, 3);
    pt *p = NULL;
    int n = 0, cap = 0, skipped = 0;
    tp_status st = TP_OK;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *xv = (const char *)sqlite3_column_text(q, 1);
        char *end;
        double x = xv ? strtod(xv, &end) : NAN;
        if (!xv || *end) {
            skipped++; /* runs without a numeric x (e.g. baselines) are not on this axis */
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            pt *np = realloc(p, (size_t)cap * sizeof *np);
            if (!np) {
                st = tp_errf(err, TP_ENOMEM, "plot: out of memory");
                break;
            }
            p = np;
        }
        tp_strlcpy(p[n].series, (const char *)sqlite3_column_text(q, 0), sizeof p[n].series);
        clean(p[n].series);
        p[n].x = x;
        p[n].v = sqlite3_column_double(q, 2);
        n++;
    }
    sqlite3_finalize(q);
    if (st == TP_OK && n == 0)
        st = tp_errf(err, TP_EINVAL,
                     "plot: no finished runs with metric '%s' and a numeric %s%s%s (%d without "
                     "one)",
                     o->metric ? o->metric : "accuracy", xkey,
                     o->experiment ? " in experiment " : "", o->experiment ? o->experiment : "",
                     skipped);
    if (st != TP_OK) {
        free(p);
        return st;
    }
    qsort(p, (size_t)n, sizeof *p, cmp_pt);
    int pct = 1;
    for (int i = 0; i < n; i++)
        if (p[i].v < 0 || p[i].v > 1) pct = 0;
    double scale = pct ? 100 : 1;
    *pct_out = pct;
    *n_series = 0;
    for (int i = 0; i < n;) {
        int j = i;
        fprintf(f, "# %s\n", p[i].series);
        while (j < n && !strcmp(p[j].series, p[i].series)) {
            int k = j;
            while (k < n && !strcmp(p[k].series, p[i].series) && p[k].x == p[j].x) k++;
            int m = k - j;
            double *v = malloc((size_t)m * sizeof *v), mean = NAN, sd = NAN;
            if (v) {
                for (int t = 0; t < m; t++) v[t] = p[j + t].v;
                tp_stats_mean_std(v, m, &mean, &sd);
                free(v);
            }
            fprintf(f, "%.17g %.17g %.17g %d\n", p[j].x, mean * scale, m > 1 ? sd * scale : 0.0, m);
            j = k;
        }
        fprintf(f, "\n\n");
        tp_strbuf_printf(plot, "%s'data.txt' index %d using 1:2:3 with yerrorlines title \"%s\"",
                         *n_series ? ", " : "", *n_series, p[i].series);
        (*n_series)++;
        i = j;
    }
    tp_strbuf_printf(plot, "\n");
    free(p);
    return TP_OK;
}

static tp_status data_curve(tp_store *s, const tp_plot_opts *o, FILE *f, tp_strbuf *plot,
                            tp_err *err) {
    const char *sql = "SELECT m.run_id, m.step, m.value, COALESCE(r.bridge, '-'), "
                      "COALESCE(r.task, '-'), r.seed FROM metrics m JOIN runs r ON r.id = "
                      "m.run_id LEFT JOIN experiments e ON e.id = r.experiment_id WHERE m.name = "
                      "?1 AND m.value IS NOT NULL AND (?2 IS NULL OR e.name = ?2) AND (?3 IS NULL "
                      "OR r.origin = ?3) ORDER BY m.run_id, m.step";
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK) return db_err(s, err);
    const char *name = o->metric ? o->metric : "train/loss";
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    bind_filters(q, o, 2);
    int64_t cur = -1;
    int idx = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        if (!run_selected(o, id)) continue;
        if (id != cur) {
            if (cur >= 0) fprintf(f, "\n\n");
            char label[256];
            snprintf(label, sizeof label, "run %lld: %s %s%s%s", (long long)id,
                     sqlite3_column_text(q, 3), sqlite3_column_text(q, 4),
                     sqlite3_column_type(q, 5) == SQLITE_NULL ? "" : " seed ",
                     sqlite3_column_type(q, 5) == SQLITE_NULL
                         ? ""
                         : (const char *)sqlite3_column_text(q, 5));
            clean(label);
            tp_strbuf_printf(plot, "%s'data.txt' index %d using 1:2 with lines title \"%s\"",
                             idx ? ", " : "", idx, label);
            idx++;
            cur = id;
        }
        fprintf(f, "%lld %.17g\n", (long long)sqlite3_column_int64(q, 1),
                sqlite3_column_double(q, 2));
    }
    sqlite3_finalize(q);
    if (idx == 0)
        return tp_errf(err, TP_EINVAL, "plot: no run has metric '%s' logged%s%s", name,
                       o->experiment ? " in experiment " : "", o->experiment ? o->experiment : "");
    tp_strbuf_printf(plot, "\n");
    return TP_OK;
}

static tp_status data_latency(tp_store *s, const tp_plot_opts *o, FILE *f, tp_strbuf *plot,
                              tp_err *err) {
    const char *sql = "SELECT l.run_id, l.stage, l.batch, l.ms, l.ms_std FROM latency l JOIN runs "
                      "r ON r.id = l.run_id LEFT JOIN experiments e ON e.id = r.experiment_id "
                      "WHERE (?1 IS NULL OR e.name = ?1) AND (?2 IS NULL OR r.origin = ?2) ORDER "
                      "BY l.run_id, l.id";
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) != SQLITE_OK) return db_err(s, err);
    bind_filters(q, o, 1);
    int n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        if (!run_selected(o, id)) continue;
        char label[256];
        snprintf(label, sizeof label, "%s%s%s (run %lld)", sqlite3_column_text(q, 1),
                 sqlite3_column_type(q, 2) == SQLITE_NULL ? "" : " b=",
                 sqlite3_column_type(q, 2) == SQLITE_NULL ? ""
                                                          : (const char *)sqlite3_column_text(q, 2),
                 (long long)id);
        clean(label);
        double sd = sqlite3_column_type(q, 4) == SQLITE_NULL ? 0 : sqlite3_column_double(q, 4);
        fprintf(f, "\"%s\" %.17g %.17g\n", label, sqlite3_column_double(q, 3), sd);
        n++;
    }
    sqlite3_finalize(q);
    if (n == 0)
        return tp_errf(err, TP_EINVAL, "plot: no latency rows%s%s",
                       o->experiment ? " in experiment " : "", o->experiment ? o->experiment : "");
    tp_strbuf_printf(plot, "'data.txt' using 2:3:xtic(1) title \"ms per call\"\n");
    return TP_OK;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static tp_status run_gnuplot(const char *exe, const char *dir, tp_err *err) {
    pid_t pid = fork();
    if (pid < 0) return tp_errf(err, TP_EIO, "plot: fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        FILE *e = freopen("gnuplot.err", "w", stderr);
        (void)e;
        execlp(exe, exe, "plot.gp", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return TP_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return tp_errf(err, TP_EUNSUP,
                       "plot: '%s' could not be run: install gnuplot (Debian: apt-get install "
                       "gnuplot-nox; scripts/install-deps.sh does it)",
                       exe);
    char path[4200], msg[600] = "";
    snprintf(path, sizeof path, "%s/gnuplot.err", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    return tp_errf(err, TP_EIO, "plot: gnuplot failed: %s", msg[0] ? msg : "(no message)");
}

tp_status tp_plot(tp_store *s, const tp_plot_opts *o, tp_err *err) {
    static const char *const kinds[] = {"scaling", "layers", "xy", "curve", "latency"};
    int kind = -1;
    for (int i = 0; i < 5; i++)
        if (o->kind && !strcmp(o->kind, kinds[i])) kind = i;
    if (kind < 0)
        return tp_errf(err, TP_EINVAL,
                       "plot: kind '%s'; expected scaling, layers, xy, curve or latency",
                       o->kind ? o->kind : "(none)");
    if (kind == 2 && !o->x) return tp_errf(err, TP_EINVAL, "plot: kind xy needs an x key");
    const char *ext = o->out ? strrchr(o->out, '.') : NULL;
    const char *term = NULL;
    if (ext && !strcmp(ext, ".png"))
        term = "pngcairo size 900,600";
    else if (ext && !strcmp(ext, ".svg"))
        term = "svg size 900,600 dynamic";
    else if (ext && !strcmp(ext, ".pdf"))
        term = "pdfcairo size 6in,4in";
    if (!term)
        return tp_errf(err, TP_EINVAL,
                       "plot: output '%s': expected a file ending in .png, .svg or "
                       ".pdf",
                       o->out ? o->out : "(none)");
    char out[4096];
    if (o->out[0] == '/')
        tp_strlcpy(out, o->out, sizeof out);
    else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd)) return tp_errf(err, TP_EIO, "plot: getcwd failed");
        snprintf(out, sizeof out, "%s/%s", cwd, o->out);
    }
    char dir[] = "/tmp/telepathy-plot-XXXXXX";
    if (!mkdtemp(dir)) return tp_errf(err, TP_EIO, "plot: cannot create a temporary directory");
    char path[4200];
    snprintf(path, sizeof path, "%s/data.txt", dir);
    FILE *f = fopen(path, "w");
    tp_strbuf plot;
    tp_strbuf_init(&plot);
    tp_status st = f ? TP_OK : tp_errf(err, TP_EIO, "plot: cannot write %s", path);
    int n_series = 0, pct = 0;
    const char *metric = o->metric ? o->metric : (kind == 3 ? "train/loss" : "accuracy");
    char xlabel[256] = "", ylabel[256];
    snprintf(ylabel, sizeof ylabel, "%s", metric);
    if (st == TP_OK) {
        if (kind == 0) {
            st = data_xy(s, o, "bridge.options.tokens", f, &plot, &n_series, &pct, err);
            snprintf(xlabel, sizeof xlabel, "soft tokens M");
        } else if (kind == 1) {
            st = data_xy(s, o, "layer", f, &plot, &n_series, &pct, err);
            snprintf(xlabel, sizeof xlabel, "sender layer");
        } else if (kind == 2) {
            st = data_xy(s, o, o->x, f, &plot, &n_series, &pct, err);
            snprintf(xlabel, sizeof xlabel, "%s", o->x);
        } else if (kind == 3) {
            st = data_curve(s, o, f, &plot, err);
            snprintf(xlabel, sizeof xlabel, "step");
        } else {
            st = data_latency(s, o, f, &plot, err);
            snprintf(ylabel, sizeof ylabel, "ms per call");
        }
    }
    if (f) fclose(f);
    if (pct) snprintf(ylabel, sizeof ylabel, "%s (%%)", metric);
    if (st == TP_OK && plot.oom) st = tp_errf(err, TP_ENOMEM, "plot: out of memory");
    if (st == TP_OK) {
        char title[256];
        snprintf(title, sizeof title, "%s", o->title ? o->title : "");
        if (!o->title)
            snprintf(title, sizeof title, "%s: %s%s%s", kinds[kind], metric,
                     o->experiment ? " - " : "", o->experiment ? o->experiment : "");
        clean(title);
        clean(xlabel);
        clean(ylabel);
        char outq[4096];
        tp_strlcpy(outq, out, sizeof outq);
        clean(outq);
        snprintf(path, sizeof path, "%s/plot.gp", dir);
        FILE *g = fopen(path, "w");
        if (!g) {
            st = tp_errf(err, TP_EIO, "plot: cannot write %s", path);
        } else {
            fprintf(g, "set terminal %s\nset output \"%s\"\nset title \"%s\" noenhanced\n", term,
                    outq, title);
            fprintf(g,
                    "set xlabel \"%s\" noenhanced\nset ylabel \"%s\" noenhanced\nset grid\n"
                    "set key outside right noenhanced\n",
                    xlabel, ylabel);
            if (kind == 0) fprintf(g, "set logscale x 2\n");
            if (kind == 4)
                fprintf(g, "set style data histograms\nset style histogram errorbars gap 1 lw 1\n"
                           "set style fill solid 0.6 border -1\nset xtics rotate by -35 "
                           "noenhanced\nset yrange [0:*]\n");
            fprintf(g, "plot %s", plot.s ? plot.s : "\n");
            fclose(g);
            st = run_gnuplot(o->gnuplot ? o->gnuplot : "gnuplot", dir, err);
        }
    }
    if (st == TP_OK) {
        struct stat sb;
        if (stat(out, &sb) != 0 || sb.st_size == 0)
            st = tp_errf(err, TP_EIO, "plot: gnuplot wrote no %s", out);
    }
    tp_strbuf_free(&plot);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return st;
}
