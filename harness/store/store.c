/* store.c — opening results.db: connection pragmas (WAL, busy timeout, foreign keys), the schema
 * version gate (create fresh / refuse older or newer), the read-only mode used by scripts, the
 * sweep that marks runs of dead local processes `interrupted`, and the checked-SQL helpers the
 * other store files use. */
#include "store/store_internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/schema_sql.h"

/* ---- checked SQL helpers ------------------------------------------------------------------ */

/* One line, at most ~100 chars of the statement, for messages. */
static void sql_brief(const char *sql, char *out, size_t cap) {
    size_t j = 0;
    int space = 0;
    for (const char *p = sql; *p && j + 4 < cap; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            space = j > 0;
            continue;
        }
        if (space) out[j++] = ' ';
        space = 0;
        out[j++] = *p;
        if (j >= 100 && p[1]) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
    }
    out[j] = 0;
}

static const char *sql_hint(const tp_store *s, int rc) {
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return " — another connection held the lock longer than the busy timeout; is a sqlite3 "
               "shell or a long query keeping a transaction open?";
    case SQLITE_READONLY:
        return s && s->readonly ? " — this connection is read-only (scripts and `ls`/`show` only "
                                  "read results.db)"
                                : " — check the permissions of the db file and its directory";
    case SQLITE_AUTH:
        return " — only SELECT and read-only PRAGMAs are allowed on a read-only connection";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return " — run `telepathy db check` and restore the file from a backup if it fails";
    case SQLITE_FULL:
        return " — the disk is full";
    case SQLITE_CANTOPEN:
        return " — check that the directory exists and is writable";
    default:
        break;
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return " — the referenced run/experiment id does not exist";
    return "";
}

tp_status tp_sql_err(const tp_store *s, int rc, const char *sql, tp_err *err) {
    char brief[128];
    sql_brief(sql ? sql : "", brief, sizeof brief);
    const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    return tp_errf(err, TP_EDB, "%s: %s: %s (%s)%s", s && s->path ? s->path : "results db", brief,
                   msg, sqlite3_errstr(rc), sql_hint(s, rc));
}

tp_status tp_sql_exec(tp_store *s, const char *sql, tp_err *err) {
    char *emsg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) {
        char brief[128];
        sql_brief(sql, brief, sizeof brief);
        tp_errf(err, TP_EDB, "%s: %s: %s (%s)%s", s->path, brief, emsg ? emsg : "?",
                sqlite3_errstr(rc), sql_hint(s, rc));
        sqlite3_free(emsg);
        return TP_EDB;
    }
    return TP_OK;
}

tp_status tp_sql_prepare(tp_store *s, const char *sql, sqlite3_stmt **st, tp_err *err) {
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) return tp_sql_err(s, rc, sql, err);
    return TP_OK;
}

tp_status tp_sql_int(tp_store *s, const char *sql, int64_t *out, tp_err *err) {
    sqlite3_stmt *st;
    TP_TRY(tp_sql_prepare(s, sql, &st, err));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return TP_OK;
    }
    tp_status ret = rc == SQLITE_DONE
                        ? tp_errf(err, TP_EDB, "%s: %s: returned no row", s->path, sql)
                        : tp_sql_err(s, rc, sql, err);
    sqlite3_finalize(st);
    return ret;
}

tp_status tp_store_begin(tp_store *s, tp_err *err) {
    return tp_sql_exec(s, "BEGIN IMMEDIATE", err);
}

tp_status tp_store_commit(tp_store *s, tp_err *err) {
    tp_status st = tp_sql_exec(s, "COMMIT", err);
    if (st != TP_OK) tp_store_rollback(s);
    return st;
}

void tp_store_rollback(tp_store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

tp_status tp_sql_bound(tp_store *s, int bind_rc, const char *sql, tp_err *err) {
    if (bind_rc == SQLITE_OK) return TP_OK;
    int rc = sqlite3_errcode(s->db);
    return tp_sql_err(s, rc != SQLITE_OK ? rc : SQLITE_MISUSE, sql, err);
}

int tp_bind_text(sqlite3_stmt *st, int i, const char *v) {
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int tp_bind_real(sqlite3_stmt *st, int i, double v) {
    return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

int tp_bind_count(sqlite3_stmt *st, int i, int64_t v) {
    return v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

/* ---- local process liveness --------------------------------------------------------------- */

int64_t tp_proc_start_time(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* comm (field 2) may hold spaces and ')': fields resume after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p) return -1;
    }
    char *end;
    long long v = strtoll(p + 1, &end, 10);
    return end == p + 1 ? -1 : (int64_t)v;
}

int tp_proc_gone(int pid, int64_t start) {
    if (pid <= 0) return 0;
    if (kill(pid, 0) == -1 && errno == ESRCH) return 1;
    /* alive pid: still ours only if it started when the run's process did (pid reuse) */
    if (start >= 0) {
        int64_t now = tp_proc_start_time(pid);
        if (now >= 0 && now != start) return 1;
    }
    return 0;
}

/* ---- open ----------------------------------------------------------------------------------- */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Switching a new file to WAL needs a brief exclusive lock that can return BUSY without the busy
 * handler when several processes create the db at once, so retry here up to the timeout. */
static tp_status set_wal(tp_store *s, tp_err *err) {
    const char *sql = "PRAGMA journal_mode=WAL";
    for (int waited = 0;; waited += 5) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                const char *mode = (const char *)sqlite3_column_text(st, 0);
                int ok = mode && (!strcmp(mode, "wal") || !strcmp(mode, "memory"));
                char got[32];
                snprintf(got, sizeof got, "%s", mode ? mode : "?");
                sqlite3_finalize(st);
                if (ok) return TP_OK;
                return tp_errf(err, TP_EDB,
                               "%s: could not switch to WAL journal mode (got '%s'); keep "
                               "results.db on a local filesystem",
                               s->path, got);
            }
        }
        sqlite3_finalize(st);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            return tp_sql_err(s, rc, sql, err);
        if (waited >= TP_STORE_BUSY_TIMEOUT_MS) return tp_sql_err(s, rc, sql, err);
        sleep_ms(5);
    }
}

/* Creates the current schema in an empty file. Another process may win the race: then the
 * version it wrote is used. */
static tp_status create_fresh(tp_store *s, int64_t *uv, tp_err *err) {
    TP_TRY(tp_store_begin(s, err));
    int64_t objs = 0;
    tp_status st = tp_sql_int(s, "PRAGMA user_version", uv, err);
    if (st == TP_OK) st = tp_sql_int(s, "SELECT count(*) FROM sqlite_master", &objs, err);
    if (st == TP_OK && *uv == 0 && objs == 0) {
        st = tp_sql_exec(s, tp_schema_current_sql, err);
        if (st != TP_OK) tp_err_prefix(err, "creating the schema (schema/results.sql)");
        if (st == TP_OK) st = tp_sql_int(s, "PRAGMA user_version", uv, err);
        if (st == TP_OK) return tp_store_commit(s, err);
    }
    tp_store_rollback(s);
    if (st == TP_OK && *uv == 0)
        return tp_errf(err, TP_EDB,
                       "%s: not a telepathy results db (user_version 0 but it has %lld schema "
                       "objects); pass another --db path",
                       s->path, (long long)objs);
    return st;
}

static tp_status check_version(tp_store *s, int64_t uv, tp_err *err) {
    if (uv == tp_schema_version) return TP_OK;
    if (uv < tp_schema_version)
        return tp_errf(err, TP_EDB,
                       "%s: results db has schema version %lld, older than this telepathy's %d; "
                       "back it up, then run `telepathy db migrate --db %s`",
                       s->path, (long long)uv, tp_schema_version, s->path);
    return tp_errf(err, TP_EDB,
                   "%s: results db has schema version %lld, newer than this telepathy's %d; use "
                   "the newer telepathy that wrote it",
                   s->path, (long long)uv, tp_schema_version);
}

/* Marks `running` rows of this host whose process is gone as `interrupted`. The UPDATE repeats
 * the pid condition so a run restarted meanwhile by a live process is left alone. */
static tp_status sweep_interrupted(tp_store *s, tp_err *err) {
    const char *sel = "SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?1";
    sqlite3_stmt *st;
    TP_TRY(tp_sql_prepare(s, sel, &st, err));
    tp_status bst = tp_sql_bound(s, sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC), sel, err);
    if (bst != TP_OK) {
        sqlite3_finalize(st);
        return bst;
    }
    struct gone {
        int64_t id;
        int pid;
    } *g = NULL;
    int n = 0, cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int pid = sqlite3_column_int(st, 1);
        int64_t start =
            sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
        if (!tp_proc_gone(pid, start)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct gone *ng = realloc(g, (size_t)cap * sizeof *g);
            if (!ng) {
                free(g);
                sqlite3_finalize(st);
                return tp_errf(err, TP_ENOMEM, "%s: out of memory listing running runs", s->path);
            }
            g = ng;
        }
        g[n].id = sqlite3_column_int64(st, 0);
        g[n++].pid = pid;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(g);
        return tp_sql_err(s, rc, sel, err);
    }
    if (n == 0) return TP_OK;

    const char *upd = "UPDATE runs SET status = 'interrupted', "
                      "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                      "error = printf('process %d on %s ended without finishing the run "
                      "(killed or crashed)', pid, host) "
                      "WHERE id = ?1 AND status = 'running' AND pid = ?2 AND host = ?3";
    tp_status ret = tp_store_begin(s, err);
    if (ret == TP_OK)
        ret = tp_sql_prepare(s, upd, &st, err);
    else
        st = NULL;
    for (int i = 0; ret == TP_OK && i < n; i++) {
        rc = sqlite3_bind_int64(st, 1, g[i].id);
        rc |= sqlite3_bind_int(st, 2, g[i].pid);
        rc |= sqlite3_bind_text(st, 3, s->host, -1, SQLITE_STATIC);
        ret = tp_sql_bound(s, rc, upd, err);
        if (ret != TP_OK) break;
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) ret = tp_sql_err(s, rc, upd, err);
        s->swept += sqlite3_changes(s->db);
        sqlite3_reset(st);
    }
    free(g);
    sqlite3_finalize(st);
    if (ret == TP_OK) ret = tp_store_commit(s, err);
    if (ret != TP_OK) {
        tp_store_rollback(s);
        s->swept = 0;
    }
    return ret;
}

/* Scripts and `ls`/`show` may only read: deny every action except reads, and PRAGMAs except
 * those that only report. Belt and braces on top of SQLITE_OPEN_READONLY + query_only (which a
 * script could otherwise switch off with `PRAGMA query_only=0` and then ATTACH another file). */
static int ro_authorizer(void *ctx, int action, const char *a, const char *b, const char *dbn,
                         const char *trigger) {
    (void)ctx, (void)dbn, (void)trigger;
    static const char *const with_arg[] = {"table_info",      "table_xinfo", "index_list",
                                           "index_info",      "index_xinfo", "foreign_key_list",
                                           "integrity_check", "quick_check", "foreign_key_check"};
    static const char *const bare[] = {
        "user_version", "journal_mode", "query_only",     "database_list", "compile_options",
        "page_count",   "page_size",    "schema_version", "foreign_keys",  "table_list"};
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        return SQLITE_OK;
    case SQLITE_UPDATE:
        /* SQLite itself asks this for sqlite_master when a pragma table-valued function
         * (pragma_table_info(...)) is prepared; real writes to it still fail: the connection is
         * SQLITE_OPEN_READONLY and defensive */
        return a && !strcmp(a, "sqlite_master") ? SQLITE_OK : SQLITE_DENY;
    case SQLITE_PRAGMA:
        for (size_t i = 0; i < sizeof with_arg / sizeof *with_arg; i++)
            if (a && !strcmp(a, with_arg[i])) return SQLITE_OK;
        for (size_t i = 0; b == NULL && i < sizeof bare / sizeof *bare; i++)
            if (a && !strcmp(a, bare[i])) return SQLITE_OK;
        return SQLITE_DENY;
    default:
        return SQLITE_DENY;
    }
}

tp_status tp_store_open_flags(tp_store **out, const char *path, int flags, tp_err *err) {
    *out = NULL;
    if (!path || !*path)
        return tp_errf(err, TP_EINVAL, "results db: empty path (set [paths] results or --db)");
    int ro = (flags & 0xff) == TP_STORE_RO;
    struct stat sb;
    if (ro && strcmp(path, ":memory:") && stat(path, &sb) != 0)
        return tp_errf(err, TP_EIO,
                       "%s: no results db there yet (it is created by the first run; check "
                       "--db / [paths] results)",
                       path);
    tp_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return tp_errf(err, TP_ENOMEM, "%s: out of memory opening the results db", path);
    }
    s->readonly = ro;
    if (gethostname(s->host, sizeof s->host - 1) != 0) snprintf(s->host, sizeof s->host, "unknown");

    int oflags = ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
    tp_status st = TP_OK;
    if (rc != SQLITE_OK) {
        st = tp_sql_err(s, rc, "open", err);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    if ((rc = sqlite3_busy_timeout(s->db, TP_STORE_BUSY_TIMEOUT_MS)) != SQLITE_OK) {
        st = tp_sql_err(s, rc, "busy_timeout", err);
        goto fail;
    }
    if ((st = tp_sql_exec(s, "PRAGMA foreign_keys = ON", err))) goto fail;
    if (ro) {
        if ((st = tp_sql_exec(s, "PRAGMA query_only = 1", err))) goto fail;
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    } else {
        if ((st = set_wal(s, err))) goto fail;
        /* NORMAL is durable against a killed process in WAL mode; only power loss can drop the
         * last transactions, never corrupt the file */
        if ((st = tp_sql_exec(s, "PRAGMA synchronous = NORMAL", err))) goto fail;
    }

    int64_t uv = 0;
    if ((st = tp_sql_int(s, "PRAGMA user_version", &uv, err))) goto fail;
    if (!(flags & TP_STORE_OPEN_ANY_VERSION)) {
        if (uv == 0 && ro)
            st = tp_errf(err, TP_EDB, "%s: empty or not a telepathy results db (user_version 0)",
                         path);
        else if (uv == 0)
            st = create_fresh(s, &uv, err);
        if (st == TP_OK) st = check_version(s, uv, err);
        if (st == TP_OK && !ro) st = sweep_interrupted(s, err);
        if (st) goto fail;
    }
    if (ro && (rc = sqlite3_set_authorizer(s->db, ro_authorizer, NULL)) != SQLITE_OK) {
        st = tp_sql_err(s, rc, "set_authorizer", err);
        goto fail;
    }
    *out = s;
    return TP_OK;
fail:
    tp_store_close(s);
    return st;
}

tp_status tp_store_open(tp_store **out, const char *path, tp_store_mode mode, tp_err *err) {
    if (mode != TP_STORE_RW && mode != TP_STORE_RO)
        return tp_errf(err, TP_EINVAL, "%s: unknown store mode %d", path ? path : "?", (int)mode);
    return tp_store_open_flags(out, path, (int)mode, err);
}

void tp_store_close(tp_store *s) {
    if (!s) return;
    if (s->db) {
        tp_store_rollback(s);
        sqlite3_close_v2(s->db);
    }
    free(s->path);
    free(s);
}

sqlite3 *tp_store_db(tp_store *s) {
    return s->db;
}
const char *tp_store_path(const tp_store *s) {
    return s->path;
}
int tp_store_readonly(const tp_store *s) {
    return s->readonly;
}
int tp_store_swept(const tp_store *s) {
    return s->swept;
}
