/* schema_sql.h — the results.db schema embedded in the binary at build time
 * (cmake/embed_schema_gen.cmake generates the definitions from the .sql files in schema/), so the
 * store never reads the source tree at run time. */
#ifndef TP_STORE_SCHEMA_SQL_H
#define TP_STORE_SCHEMA_SQL_H

typedef struct tp_schema_migration {
    int version;      /* the user_version this migration produces */
    const char *name; /* file name, e.g. "002_splits_environment.sql" (for messages) */
    const char *sql;  /* the migration's statements; the runner sets user_version itself */
} tp_schema_migration;

/* schema/results.sql: the current schema, including its PRAGMA user_version line. */
extern const char *const tp_schema_current_sql;
/* The user_version this binary reads and writes (= the last migration's number). */
extern const int tp_schema_version;
/* schema/migrations/NNN_*.sql in order; tp_schema_migrations[i].version == i + 1. */
extern const tp_schema_migration tp_schema_migrations[];
extern const int tp_schema_n_migrations;

#endif
