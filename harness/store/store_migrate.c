/* store_migrate.c — schema evolution and verification of results.db: forward migrations (one
 * transaction each, user_version bumped inside it) and `telepathy db check` (integrity_check,
 * foreign_key_check, journal mode, user_version, and a table-by-table comparison against the
 * schema embedded in the binary). */
#include "store/store_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/schema_sql.h"

/* ---- migrate -------------------------------------------------------------------------------- */

static tp_status apply_one(tp_store *s, int target, int *done, tp_err *err) {
    int64_t cur = 0;
    TP_TRY(tp_store_begin(s, err));
    tp_status st = tp_sql_int(s, "PRAGMA user_version", &cur, err);
    if (st == TP_OK && cur >= target) { /* another process migrated meanwhile */
        tp_store_rollback(s);
        *done = 1;
        return TP_OK;
    }
    if (st == TP_OK) {
        const tp_schema_migration *m = &tp_schema_migrations[cur];
        st = tp_sql_exec(s, m->sql, err);
        if (st == TP_OK) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d", m->version);
            st = tp_sql_exec(s, sql, err);
        }
        if (st == TP_OK) {
            int64_t bad = 0;
            st = tp_sql_int(s, "SELECT count(*) FROM pragma_foreign_key_check", &bad, err);
            if (st == TP_OK && bad)
                st = tp_errf(err, TP_EDB, "%s: %lld row(s) violate foreign keys", s->path,
                             (long long)bad);
        }
        if (st != TP_OK) tp_err_prefix(err, "migration schema/migrations/%s", m->name);
    }
    if (st == TP_OK) return tp_store_commit(s, err);
    tp_store_rollback(s);
    return st;
}

tp_status tp_store_migrate(const char *path, int target, int *from, int *to, tp_err *err) {
    if (target < 1 || target > tp_schema_version)
        return tp_errf(err, TP_EINVAL,
                       "%s: cannot migrate to schema version %d (this telepathy "
                       "knows 1..%d)",
                       path ? path : "?", target, tp_schema_version);
    tp_store *s;
    TP_TRY(tp_store_open_flags(&s, path, TP_STORE_RW | TP_STORE_OPEN_ANY_VERSION, err));
    int64_t uv = 0, objs = 0;
    tp_status st = tp_sql_int(s, "PRAGMA user_version", &uv, err);
    if (st == TP_OK) st = tp_sql_int(s, "SELECT count(*) FROM sqlite_master", &objs, err);
    if (st == TP_OK && uv == 0 && objs > 0)
        st = tp_errf(err, TP_EDB,
                     "%s: not a telepathy results db (user_version 0 but it has %lld schema "
                     "objects); refusing to migrate it",
                     path, (long long)objs);
    if (st == TP_OK && uv > target)
        st = tp_errf(err, TP_EDB,
                     "%s: schema version %lld is newer than %d; this telepathy cannot migrate "
                     "backwards — use the newer telepathy that wrote it",
                     path, (long long)uv, target);
    if (from) *from = (int)uv;
    /* table rebuilds in future migrations need foreign keys off; checked per migration instead */
    if (st == TP_OK) st = tp_sql_exec(s, "PRAGMA foreign_keys = OFF", err);
    for (int done = 0; st == TP_OK && !done;) st = apply_one(s, target, &done, err);
    if (st == TP_OK) st = tp_sql_exec(s, "PRAGMA foreign_keys = ON", err);
    if (st == TP_OK) st = tp_sql_int(s, "PRAGMA user_version", &uv, err);
    if (st == TP_OK && to) *to = (int)uv;
    tp_store_close(s);
    return st;
}

/* ---- schema comparison ---------------------------------------------------------------------- */

typedef struct strlist {
    char **v;
    int n;
} strlist;

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) sqlite3_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Runs sql and appends each row, columns from `skip` on joined by '|', to out. Returns the
 * SQLite error text (static or sqlite-owned) on failure, NULL on success. */
static const char *collect(sqlite3 *db, const char *sql, int skip, strlist *out) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return sqlite3_errmsg(db);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char *row = sqlite3_mprintf("%s", "");
        for (int c = skip; row && c < sqlite3_column_count(st); c++) {
            const char *t = (const char *)sqlite3_column_text(st, c);
            char *next = sqlite3_mprintf("%s%s%s", row, c > skip ? "|" : "", t ? t : "NULL");
            sqlite3_free(row);
            row = next;
        }
        char **nv = row ? realloc(out->v, (size_t)(out->n + 1) * sizeof *nv) : NULL;
        if (!nv) {
            sqlite3_free(row);
            sqlite3_finalize(st);
            return "out of memory";
        }
        out->v = nv;
        out->v[out->n++] = row;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? NULL : sqlite3_errmsg(db);
}

static int find(const strlist *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return i;
    return -1;
}

static void report(tp_store_problem_fn fn, void *ctx, int *count, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(tp_store_problem_fn fn, void *ctx, int *count, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (*count)++;
    if (fn) fn(ctx, buf);
}

/* Index description without the creation-order column: "name|unique|origin|partial:cols". */
static const char *describe_indexes(sqlite3 *db, const char *table, strlist *out) {
    strlist idx = {0};
    char *sql = sqlite3_mprintf("PRAGMA index_list(\"%w\")", table);
    const char *e = sql ? collect(db, sql, 1, &idx) : "out of memory";
    sqlite3_free(sql);
    for (int i = 0; !e && i < idx.n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s", idx.v[i]);
        char *bar = strchr(name, '|');
        if (bar) *bar = 0;
        strlist cols = {0};
        sql = sqlite3_mprintf("PRAGMA index_info(\"%w\")", name);
        e = sql ? collect(db, sql, 2, &cols) : "out of memory";
        sqlite3_free(sql);
        char *d = sqlite3_mprintf("%s:", idx.v[i]);
        for (int c = 0; d && c < cols.n; c++) {
            char *nd = sqlite3_mprintf("%s%s%s", d, c ? "," : "", cols.v[c]);
            sqlite3_free(d);
            d = nd;
        }
        strlist_free(&cols);
        char **nv = d ? realloc(out->v, (size_t)(out->n + 1) * sizeof *nv) : NULL;
        if (!nv) {
            sqlite3_free(d);
            e = "out of memory";
            break;
        }
        out->v = nv;
        out->v[out->n++] = d;
    }
    strlist_free(&idx);
    return e;
}

static void diff_table(sqlite3 *ref, sqlite3 *db, const char *t, tp_store_problem_fn fn, void *ctx,
                       int *count) {
    strlist a = {0}, b = {0};
    char *sql = sqlite3_mprintf("PRAGMA table_info(\"%w\")", t);
    const char *e = collect(ref, sql, 0, &a);
    if (!e) e = collect(db, sql, 0, &b);
    sqlite3_free(sql);
    if (e) {
        report(fn, ctx, count, "table %s: could not read its columns: %s", t, e);
        goto out;
    }
    /* rows are "cid|name|type|notnull|default|pk" */
    for (int i = 0; i < a.n || i < b.n; i++) {
        if (i >= b.n)
            report(fn, ctx, count,
                   "table %s: column missing: expected '%s' (cid|name|type|"
                   "notnull|default|pk)",
                   t, a.v[i]);
        else if (i >= a.n)
            report(fn, ctx, count, "table %s: unexpected column '%s'", t, b.v[i]);
        else if (strcmp(a.v[i], b.v[i]))
            report(fn, ctx, count,
                   "table %s: column differs: expected '%s', found '%s' (cid|name|type|notnull|"
                   "default|pk)",
                   t, a.v[i], b.v[i]);
    }
    strlist_free(&a);
    strlist_free(&b);
    e = describe_indexes(ref, t, &a);
    if (!e) e = describe_indexes(db, t, &b);
    if (e) {
        report(fn, ctx, count, "table %s: could not read its indexes: %s", t, e);
        goto out;
    }
    for (int i = 0; i < a.n; i++)
        if (find(&b, a.v[i]) < 0)
            report(fn, ctx, count,
                   "table %s: index missing or different: expected '%s' "
                   "(name|unique|origin|partial:columns)",
                   t, a.v[i]);
    for (int i = 0; i < b.n; i++) {
        if (find(&a, b.v[i]) >= 0) continue;
        size_t len = strcspn(b.v[i], "|");
        int named_in_ref = 0;
        for (int j = 0; j < a.n; j++)
            if (!strncmp(a.v[j], b.v[i], len) && a.v[j][len] == '|') named_in_ref = 1;
        /* an index people added for their own queries is harmless; a changed or extra
         * constraint index is not */
        if (named_in_ref)
            report(fn, ctx, count, "table %s: index differs: found '%s'", t, b.v[i]);
        else if (!strncmp(b.v[i], "sqlite_autoindex", 16))
            report(fn, ctx, count, "table %s: unexpected constraint index '%s'", t, b.v[i]);
    }
out:
    strlist_free(&a);
    strlist_free(&b);
}

int tp_store_schema_diff(sqlite3 *ref, sqlite3 *db, tp_store_problem_fn fn, void *ctx) {
    const char *tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                         "'sqlite_%' ORDER BY name";
    strlist a = {0}, b = {0};
    int count = 0;
    const char *e = collect(ref, tables, 0, &a);
    if (e) {
        report(fn, ctx, &count, "reference schema: %s", e);
        goto out;
    }
    if ((e = collect(db, tables, 0, &b))) {
        report(fn, ctx, &count, "could not list tables: %s", e);
        goto out;
    }
    for (int i = 0; i < a.n; i++) {
        if (find(&b, a.v[i]) < 0)
            report(fn, ctx, &count, "table missing: %s", a.v[i]);
        else
            diff_table(ref, db, a.v[i], fn, ctx, &count);
    }
    for (int i = 0; i < b.n; i++)
        if (find(&a, b.v[i]) < 0)
            report(fn, ctx, &count, "unexpected table: %s (not in schema version %d)", b.v[i],
                   tp_schema_version);
out:
    strlist_free(&a);
    strlist_free(&b);
    return count;
}

/* ---- check ---------------------------------------------------------------------------------- */

tp_status tp_store_check(const char *path, tp_store_problem_fn fn, void *ctx, int *n_problems,
                         tp_err *err) {
    *n_problems = 0;
    tp_store *s;
    TP_TRY(tp_store_open_flags(&s, path, TP_STORE_RO | TP_STORE_OPEN_ANY_VERSION, err));
    int count = 0;
    strlist rows = {0};
    const char *e = collect(s->db, "PRAGMA integrity_check", 0, &rows);
    if (e) {
        tp_status st = tp_errf(err, TP_EDB,
                               "%s: PRAGMA integrity_check: %s — not a database, "
                               "or damaged beyond checking",
                               path, e);
        strlist_free(&rows);
        tp_store_close(s);
        return st;
    }
    for (int i = 0; i < rows.n; i++)
        if (strcmp(rows.v[i], "ok")) report(fn, ctx, &count, "integrity_check: %s", rows.v[i]);
    strlist_free(&rows);

    /* rows: table|rowid|parent|fkid */
    if ((e = collect(s->db, "PRAGMA foreign_key_check", 0, &rows)))
        report(fn, ctx, &count, "foreign_key_check could not run: %s", e);
    for (int i = 0; i < rows.n; i++)
        report(fn, ctx, &count, "foreign_key_check: %s (table|rowid|missing parent|fk)", rows.v[i]);
    strlist_free(&rows);

    if ((e = collect(s->db, "PRAGMA journal_mode", 0, &rows)))
        report(fn, ctx, &count, "journal_mode could not be read: %s", e);
    else if (rows.n != 1 || strcmp(rows.v[0], "wal"))
        report(fn, ctx, &count, "journal_mode is '%s', expected 'wal' (open it once read-write)",
               rows.n ? rows.v[0] : "?");
    strlist_free(&rows);

    int64_t uv = 0;
    tp_status st = tp_sql_int(s, "PRAGMA user_version", &uv, err);
    if (st == TP_OK) {
        if (uv == 0)
            report(fn, ctx, &count, "user_version is 0: empty or not a telepathy results db");
        else if (uv < tp_schema_version)
            report(fn, ctx, &count,
                   "user_version %lld is older than %d: run `telepathy db migrate --db %s`",
                   (long long)uv, tp_schema_version, path);
        else if (uv > tp_schema_version)
            report(fn, ctx, &count, "user_version %lld is newer than this telepathy's %d",
                   (long long)uv, tp_schema_version);
        else {
            sqlite3 *ref = NULL;
            char *emsg = NULL;
            if (sqlite3_open(":memory:", &ref) != SQLITE_OK ||
                sqlite3_exec(ref, tp_schema_current_sql, NULL, NULL, &emsg) != SQLITE_OK) {
                st = tp_errf(err, TP_EDB, "embedded schema/results.sql does not load: %s",
                             emsg ? emsg : sqlite3_errmsg(ref));
                sqlite3_free(emsg);
            } else {
                count += tp_store_schema_diff(ref, s->db, fn, ctx);
            }
            sqlite3_close(ref);
        }
    }
    tp_store_close(s);
    *n_problems = count;
    return st;
}
