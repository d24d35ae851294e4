/* sweep_sql.h — checked SQLite helpers for the sweep files (sweep.c, worker.c, merge.c): errors
 * name the db file and the statement, and write transactions are BEGIN IMMEDIATE so a claim never
 * fails half-way on a lock upgrade. The store's own helpers are private to harness/store. */
#ifndef TP_RUN_SWEEP_SQL_H
#define TP_RUN_SWEEP_SQL_H

#include <sqlite3.h>
#include <stdint.h>

#include "store/store.h"

tp_status tp_sw_err(tp_store *s, int rc, const char *sql, tp_err *err);
tp_status tp_sw_exec(tp_store *s, const char *sql, tp_err *err);
tp_status tp_sw_prepare(tp_store *s, const char *sql, sqlite3_stmt **st, tp_err *err);
/* Steps a statement expected to finish (INSERT/UPDATE/DELETE). */
tp_status tp_sw_done(tp_store *s, sqlite3_stmt *st, const char *sql, tp_err *err);
tp_status tp_sw_begin(tp_store *s, tp_err *err);
tp_status tp_sw_commit(tp_store *s, tp_err *err);
void tp_sw_rollback(tp_store *s);
/* A column as a malloc'd string (NULL for SQL NULL or no memory). */
char *tp_sw_col_dup(sqlite3_stmt *st, int col);

/* This host's name (gethostname, "unknown" on failure). */
const char *tp_sw_host(void);
/* Start time of a local process (/proc/<pid>/stat field 22) or -1. */
int64_t tp_sw_proc_start(int pid);
/* 1 when (pid, start) on this host is gone (or the pid was reused), else 0. */
int tp_sw_proc_gone(int pid, int64_t start);

#endif
