/* sweep_sql.c — the checked SQLite helpers and local-process tests of sweep_sql.h. */
#include "run/sweep_sql.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/strutil.h"

static const char *hint(int rc) {
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return " — the disk (or the file size limit) is full; free space and run the worker again: "
               "its claim returns to pending";
    case SQLITE_IOERR:
        return " — an I/O error writing the db (disk full, file size limit or a failing disk?)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return " — another connection held the lock longer than the busy timeout";
    case SQLITE_READONLY:
        return " — check the permissions of the db file and its directory";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return " — run `telepathy db check` on it";
    default:
        return "";
    }
}

tp_status tp_sw_err(tp_store *s, int rc, const char *sql, tp_err *err) {
    char brief[112];
    tp_strlcpy(brief, sql ? sql : "", sizeof brief);
    for (char *p = brief; *p; p++)
        if (*p == '\n') *p = ' ';
    sqlite3 *db = tp_store_db(s);
    return tp_errf(err, TP_EDB, "%s: %s: %s (%s)%s", tp_store_path(s), brief,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), sqlite3_errstr(rc), hint(rc));
}

tp_status tp_sw_exec(tp_store *s, const char *sql, tp_err *err) {
    int rc = sqlite3_exec(tp_store_db(s), sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TP_OK : tp_sw_err(s, rc, sql, err);
}

tp_status tp_sw_prepare(tp_store *s, const char *sql, sqlite3_stmt **st, tp_err *err) {
    int rc = sqlite3_prepare_v2(tp_store_db(s), sql, -1, st, NULL);
    return rc == SQLITE_OK ? TP_OK : tp_sw_err(s, rc, sql, err);
}

tp_status tp_sw_done(tp_store *s, sqlite3_stmt *st, const char *sql, tp_err *err) {
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? TP_OK : tp_sw_err(s, rc, sql, err);
}

tp_status tp_sw_begin(tp_store *s, tp_err *err) {
    return tp_sw_exec(s, "BEGIN IMMEDIATE", err);
}

tp_status tp_sw_commit(tp_store *s, tp_err *err) {
    tp_status st = tp_sw_exec(s, "COMMIT", err);
    if (st != TP_OK) tp_sw_rollback(s);
    return st;
}

void tp_sw_rollback(tp_store *s) {
    if (!sqlite3_get_autocommit(tp_store_db(s)))
        sqlite3_exec(tp_store_db(s), "ROLLBACK", NULL, NULL, NULL);
}

char *tp_sw_col_dup(sqlite3_stmt *st, int col) {
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? tp_strdup(t) : NULL;
}

const char *tp_sw_host(void) {
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    return host;
}

int64_t tp_sw_proc_start(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and ')' */
    if (!p) return -1;
    for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
    if (!p) return -1;
    char *end;
    long long v = strtoll(p + 1, &end, 10);
    return end == p + 1 ? -1 : (int64_t)v;
}

int tp_sw_proc_gone(int pid, int64_t start) {
    if (pid <= 0) return 0;
    if (kill(pid, 0) == -1 && errno == ESRCH) return 1;
    if (start >= 0) {
        int64_t now = tp_sw_proc_start(pid);
        if (now >= 0 && now != start) return 1;
    }
    return 0;
}
