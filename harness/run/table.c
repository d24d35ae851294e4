/* table.c — the metric table of tp.table{} (see table.h), computed from results.db with SQL. */
#include "run/table.h"

#include <ctype.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strutil.h"

static const char *const run_cols[] = {"bridge",     "task",           "sender",  "receiver",
                                       "seed",       "task_version",   "status",  "device",
                                       "git_commit", "bridge_version", "attempt", "experiment_id"};

/* SQL expression for a key: a runs column or json_extract on the config (path chars checked). */
static tp_status key_sql(const char *key, char *out, size_t cap, tp_err *err) {
    for (size_t i = 0; i < sizeof run_cols / sizeof *run_cols; i++)
        if (!strcmp(key, run_cols[i])) {
            snprintf(out, cap, "CAST(r.%s AS TEXT)", key);
            return TP_OK;
        }
    if (!key[0]) return tp_errf(err, TP_EINVAL, "tp.table: empty key");
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.')
            return tp_errf(err, TP_EINVAL,
                           "tp.table: key '%s': expected a runs column (bridge, task, sender, "
                           "receiver, seed, ...) or a config path like bridge.options.tokens",
                           key);
    snprintf(out, cap, "CAST(json_extract(r.config_json, '$.%s') AS TEXT)", key);
    return TP_OK;
}

typedef struct cell {
    char *row, *col;
    double sum, sumsq;
    int n;
    int mixed;
    char scheme[32];
    double v[64]; /* for a two-pass std when n is small */
} cell;

static int find_or_add(char ***list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i], s)) return i;
    char **nl = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    if (!nl) return -1;
    *list = nl;
    nl[*n] = tp_strdup(s);
    return (*n)++;
}

tp_status tp_table_render(tp_store *s, const tp_table_opts *o, char **out, tp_err *err) {
    *out = NULL;
    if (!o->rows)
        return tp_errf(err, TP_EINVAL,
                       "tp.table: 'rows' (a key such as \"bridge\") is "
                       "required");
    const char *metric = o->metric ? o->metric : "accuracy";
    const char *split = o->split ? o->split : "eval";
    char rk[256], ck[256];
    TP_TRY(key_sql(o->rows, rk, sizeof rk, err));
    if (o->cols)
        TP_TRY(key_sql(o->cols, ck, sizeof ck, err));
    else
        snprintf(ck, sizeof ck, "'%s'", "all");
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(%s, '-'), COALESCE(%s, '-'), x.value, x.scheme FROM runs r JOIN "
             "results x ON x.run_id = r.id LEFT JOIN experiments e ON e.id = r.experiment_id "
             "WHERE r.status = 'done' AND x.metric = ?1 AND x.split = ?2 AND (?3 IS NULL OR "
             "e.name = ?3) ORDER BY r.id",
             rk, ck);
    sqlite3 *db = tp_store_db(s);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return tp_errf(err, TP_EDB, "tp.table: %s: %s", tp_store_path(s), sqlite3_errmsg(db));
    sqlite3_bind_text(q, 1, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, split, -1, SQLITE_STATIC);
    if (o->experiment)
        sqlite3_bind_text(q, 3, o->experiment, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 3);
    char **rows = NULL, **cols = NULL;
    int nr = 0, nc = 0, ncell = 0;
    cell *cells = NULL;
    int rc, pct = 1;
    tp_status st = TP_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && st == TP_OK) {
        const char *r = (const char *)sqlite3_column_text(q, 0);
        const char *c = (const char *)sqlite3_column_text(q, 1);
        double v = sqlite3_column_double(q, 2);
        const char *sc = (const char *)sqlite3_column_text(q, 3);
        if (v < 0 || v > 1) pct = 0;
        int ri = find_or_add(&rows, &nr, r ? r : "-"), ci = find_or_add(&cols, &nc, c ? c : "-");
        if (ri < 0 || ci < 0) {
            st = tp_errf(err, TP_ENOMEM, "tp.table: out of memory");
            break;
        }
        cell *cl = NULL;
        for (int i = 0; i < ncell; i++)
            if (!strcmp(cells[i].row, rows[ri]) && !strcmp(cells[i].col, cols[ci])) cl = &cells[i];
        if (!cl) {
            cell *ncs = realloc(cells, (size_t)(ncell + 1) * sizeof *cells);
            if (!ncs) {
                st = tp_errf(err, TP_ENOMEM, "tp.table: out of memory");
                break;
            }
            cells = ncs;
            cl = &cells[ncell++];
            memset(cl, 0, sizeof *cl);
            cl->row = rows[ri];
            cl->col = cols[ci];
            tp_strlcpy(cl->scheme, sc ? sc : "", sizeof cl->scheme);
        }
        if (strcmp(cl->scheme, sc ? sc : "") != 0) cl->mixed = 1;
        if (cl->n < 64) cl->v[cl->n] = v;
        cl->sum += v;
        cl->n++;
    }
    if (st == TP_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        st = tp_errf(err, TP_EDB, "tp.table: %s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
    tp_strbuf b;
    tp_strbuf_init(&b);
    if (st == TP_OK) {
        double scale = pct ? 100.0 : 1.0;
        tp_strbuf_printf(&b, "%s%s by %s%s%s\n\n", metric, pct ? " (%)" : "", o->rows,
                         o->cols ? " x " : "", o->cols ? o->cols : "");
        tp_strbuf_printf(&b, "| %s |", o->rows);
        for (int c = 0; c < nc; c++) tp_strbuf_printf(&b, " %s |", o->cols ? cols[c] : metric);
        tp_strbuf_append(&b, "\n|---|");
        for (int c = 0; c < nc; c++) tp_strbuf_append(&b, "---|");
        tp_strbuf_append(&b, "\n");
        for (int r = 0; r < nr; r++) {
            tp_strbuf_printf(&b, "| %s |", rows[r]);
            for (int c = 0; c < nc; c++) {
                cell *cl = NULL;
                for (int i = 0; i < ncell; i++)
                    if (cells[i].row == rows[r] && cells[i].col == cols[c]) cl = &cells[i];
                if (!cl) {
                    tp_strbuf_append(&b, " – |");
                    continue;
                }
                double mean = cl->sum / cl->n, ss = 0;
                int m = cl->n < 64 ? cl->n : 64;
                for (int i = 0; i < m; i++) ss += (cl->v[i] - mean) * (cl->v[i] - mean);
                if (cl->n > 1)
                    tp_strbuf_printf(&b, " %.1f ± %.1f (n=%d)%s |", mean * scale,
                                     sqrt(ss / (m - 1)) * scale, cl->n,
                                     cl->mixed ? " [mixed schemes!]" : "");
                else
                    tp_strbuf_printf(&b, " %.1f (n=1)%s |", mean * scale,
                                     cl->mixed ? " [mixed schemes!]" : "");
            }
            tp_strbuf_append(&b, "\n");
        }
        if (nr == 0) tp_strbuf_append(&b, "(no finished runs with this metric)\n");
        if (b.oom) st = tp_errf(err, TP_ENOMEM, "tp.table: out of memory");
    }
    for (int i = 0; i < nr; i++) free(rows[i]);
    for (int i = 0; i < nc; i++) free(cols[i]);
    free(rows);
    free(cols);
    free(cells);
    if (st == TP_OK)
        *out = tp_strbuf_take(&b);
    else
        tp_strbuf_free(&b);
    return st;
}
