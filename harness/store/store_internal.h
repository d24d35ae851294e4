/* store_internal.h — what the store's .c files share: the handle, checked SQLite helpers that
 * turn a return code into a message naming the db file and the statement, write transactions,
 * and the local-process liveness test used to find interrupted runs. Not for other areas. */
#ifndef TP_STORE_INTERNAL_H
#define TP_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "store/store.h"

struct tp_store {
    sqlite3 *db;
    char *path;
    int readonly;
    int swept;
    char host[256];
};

/* Open flags beyond tp_store_mode, for migrate/check which must see any user_version. */
#define TP_STORE_OPEN_ANY_VERSION 0x100

tp_status tp_store_open_flags(tp_store **out, const char *path, int flags, tp_err *err);

/* Fills err from rc and the connection's last error: "<path>: <sql>: <sqlite message> (<code>)"
 * plus a hint for BUSY / READONLY / CORRUPT / FULL. sql may be a description. */
tp_status tp_sql_err(const tp_store *s, int rc, const char *sql, tp_err *err);
tp_status tp_sql_exec(tp_store *s, const char *sql, tp_err *err);
tp_status tp_sql_prepare(tp_store *s, const char *sql, sqlite3_stmt **st, tp_err *err);
/* Reads a single integer (e.g. a pragma). */
tp_status tp_sql_int(tp_store *s, const char *sql, int64_t *out, tp_err *err);

/* BEGIN IMMEDIATE (takes the write lock now, waiting up to the busy timeout, so the transaction
 * never fails half-way on a lock upgrade), COMMIT, and a ROLLBACK that never fails loudly. */
tp_status tp_store_begin(tp_store *s, tp_err *err);
tp_status tp_store_commit(tp_store *s, tp_err *err);
void tp_store_rollback(tp_store *s);

/* bind_rc: the OR of sqlite3_bind_* results; non-zero becomes an error naming the statement. */
tp_status tp_sql_bound(tp_store *s, int bind_rc, const char *sql, tp_err *err);
/* Binding helpers: NULL strings, NaN doubles and negative counts bind as SQL NULL. */
int tp_bind_text(sqlite3_stmt *st, int i, const char *v);
int tp_bind_real(sqlite3_stmt *st, int i, double v);
int tp_bind_count(sqlite3_stmt *st, int i, int64_t v);

/* Start time of a local process (Linux: /proc/<pid>/stat field 22, clock ticks since boot), or
 * -1 when unknown; used with the pid so a recycled pid is not mistaken for the old run. */
int64_t tp_proc_start_time(int pid);
/* 1 if the process (pid, start) on this host is gone, 0 if alive or unknown. */
int tp_proc_gone(int pid, int64_t start);

#endif
