/* cli_store.c — option parsing and results-db location for the store subcommands. */
#include "cli/cli_store.h"

#include <string.h>
#include <unistd.h>

#include "plugin/config.h"

const char *tp_cli_opt(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

tp_status tp_cli_db_path(tp_cli_env *env, const char *explicit_db, const char **out, tp_err *err) {
    if (explicit_db) {
        if (!*explicit_db) return tp_errf(err, TP_EINVAL, "--db: empty path");
        *out = explicit_db;
        return TP_OK;
    }
    struct tp_config *c;
    TP_TRY(tp_cli_config(env, &c, err));
    const char *p = tp_config_get(c, "paths.results");
    if (!p || !*p)
        return tp_errf(err, TP_EINVAL,
                       "no results db: set [paths] results in telepathy.ini or pass --db PATH");
    *out = p;
    return TP_OK;
}

tp_status tp_cli_open_ro(tp_cli_env *env, const char *explicit_db, tp_store **out, tp_err *err) {
    const char *path = NULL;
    TP_TRY(tp_cli_db_path(env, explicit_db, &path, err));
    /* A brief read-write open first, where the file is writable, so runs left `running` by a
     * dead process read `interrupted` (and an unreadable file still gets the read-only error). */
    if (access(path, W_OK) == 0) {
        tp_store *rw;
        TP_TRY(tp_store_open(&rw, path, TP_STORE_RW, err));
        tp_store_close(rw);
    }
    return tp_store_open(out, path, TP_STORE_RO, err);
}
