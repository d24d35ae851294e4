/* cli_store.h — what the results-db subcommands (run, db, ls, show) share: option parsing for
 * "--name value" / "--name=value", and where results.db is (--db, else [paths] results). */
#ifndef TP_CLI_STORE_H
#define TP_CLI_STORE_H

#include "cli/cli.h"
#include "store/store.h"

/* The value of option `name` at argv[*i] ("--db x" advances *i; "--db=x" does not); NULL when
 * argv[*i] is another option. *missing is set when the value is absent. */
const char *tp_cli_opt(int argc, char **argv, int *i, const char *name, int *missing);

/* The results db path: explicit_db if non-NULL, else the configuration's paths.results. */
tp_status tp_cli_db_path(tp_cli_env *env, const char *explicit_db, const char **out, tp_err *err);

/* Opens the results db read-only (ls, show); a missing file is an error saying so. A writable
 * file is first opened read-write for a moment, which marks runs of dead local processes
 * `interrupted`. */
tp_status tp_cli_open_ro(tp_cli_env *env, const char *explicit_db, tp_store **out, tp_err *err);

#endif
