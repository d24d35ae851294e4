/* cmd_db.c — `telepathy db migrate|check`: bring results.db to this binary's schema version (the
 * only way the schema changes), and verify a file (integrity, foreign keys, version, schema). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_store.h"
#include "store/schema_sql.h"

static const char *USAGE =
    "usage: telepathy db migrate [--db PATH]\n"
    "       telepathy db check [--db PATH]\n"
    "\n"
    "  migrate   apply the schema migrations the file lacks (one transaction each); back the\n"
    "            file up first. Other telepathy commands refuse an older file until then.\n"
    "  check     PRAGMA integrity_check and foreign_key_check, WAL mode, user_version, and\n"
    "            every table, column and index against this binary's schema; lists each\n"
    "            problem. Read-only.\n"
    "  --db PATH results database (default: [paths] results)\n"
    "\n"
    "exit status: 0 ok, 1 failed or problems found, 2 usage error\n";

static void print_problem(void *ctx, const char *problem) {
    printf("%s: %s\n", (const char *)ctx, problem);
}

static int do_migrate(const char *path) {
    struct stat sb;
    tp_err err = {0};
    if (stat(path, &sb) != 0) {
        tp_errf(&err, TP_EIO,
                "%s: no results db there (nothing to migrate; it is created by the "
                "first run)",
                path);
        return tp_cli_fail("db", &err);
    }
    int from = 0, to = 0;
    if (tp_store_migrate(path, tp_schema_version, &from, &to, &err) != TP_OK)
        return tp_cli_fail("db", &err);
    if (from == to) {
        printf("%s: already at schema version %d\n", path, to);
        return 0;
    }
    printf("%s: schema version %d -> %d\n", path, from, to);
    for (int v = from + 1; v <= to; v++) printf("  applied %s\n", tp_schema_migrations[v - 1].name);
    return 0;
}

static int do_check(const char *path) {
    tp_err err = {0};
    int n = 0;
    if (tp_store_check(path, print_problem, (void *)path, &n, &err) != TP_OK)
        return tp_cli_fail("db", &err);
    if (n) {
        printf("%s: %d problem(s)\n", path, n);
        return 1;
    }
    printf("%s: ok (schema version %d)\n", path, tp_schema_version);
    return 0;
}

int tp_cmd_db(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "db";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *action = NULL, *db = NULL;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else if (argv[i][0] == '-')
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!action)
            action = argv[i];
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!action) return tp_cli_usage_error(cmd, "missing the action: migrate or check");
    if (strcmp(action, "migrate") && strcmp(action, "check"))
        return tp_cli_usage_error(cmd, "unknown action '%s' (expected migrate or check)", action);
    tp_err err = {0};
    const char *path;
    if (tp_cli_db_path(env, db, &path, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    return !strcmp(action, "migrate") ? do_migrate(path) : do_check(path);
}
