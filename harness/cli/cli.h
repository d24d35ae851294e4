/* cli.h — the `telepathy` command table and what every subcommand receives.
 *
 * main.c parses the global options (--config FILE, --plugin-path DIRS, -q, --help) wherever they
 * appear before a "--" argument, removes them, and calls the subcommand with argv[0] = its name
 * and the remaining arguments. Exit codes: 0 success, 1 the command failed (message on stderr),
 * 2 usage error (unknown subcommand or option, missing argument: usage printed to stderr).
 *
 * Configuration and the plugin registry are loaded lazily, on first use, through
 * tp_cli_config() / tp_cli_registry(), so `--help` works even with a broken telepathy.ini. A
 * subcommand that accepts `--set key=value` applies it with tp_config_set() (plugin/config.h)
 * on the config it got from tp_cli_config(), with origin "command line". */
#ifndef TP_CLI_H
#define TP_CLI_H

#include "telepathy/status.h"

struct tp_config;   /* plugin/config.h */
struct tp_registry; /* plugin/loader.h */

typedef struct tp_cli_env {
    const char *argv0;       /* how the binary was invoked (for messages) */
    const char *config_path; /* --config FILE, or NULL (then $TELEPATHY_CONFIG, ./telepathy.ini) */
    const char *plugin_path; /* --plugin-path DIRS (colon-separated), or NULL */
    int quiet;               /* -q: only warnings and errors on stderr */
    /* lazily filled; owned by main, freed at exit */
    struct tp_config *config;
    struct tp_registry *registry;
} tp_cli_env;

/* Loads the configuration once (search order above, plus env and --plugin-path overrides) and
 * returns the cached one afterwards. */
tp_status tp_cli_config(tp_cli_env *env, struct tp_config **out, tp_err *err);
/* Scans the resolved plugin path once (needs the config) and returns the registry. */
tp_status tp_cli_registry(tp_cli_env *env, struct tp_registry **out, tp_err *err);

/* 1 if argv (after argv[0]) contains -h or --help before any "--". */
int tp_cli_wants_help(int argc, char **argv);
/* Prints "telepathy <cmd>: <formatted message>" and "Try 'telepathy <cmd> --help'." to stderr;
 * returns 2 so a subcommand can `return tp_cli_usage_error(...)`. */
int tp_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "telepathy <cmd>: <err->msg>" to stderr and returns 1. */
int tp_cli_fail(const char *cmd, const tp_err *err);

typedef int (*tp_cmd_fn)(int argc, char **argv, tp_cli_env *env);

typedef struct tp_cli_command {
    const char *name;
    const char *help; /* one line for `telepathy --help` */
    tp_cmd_fn fn;
} tp_cli_command;

/* The command table (main.c). Each subcommand lives in cmd_<name>.c. */
extern const tp_cli_command tp_cli_commands[];
extern const int tp_cli_n_commands;

/* found1: cmd_plugins.c, cmd_config.c, cmd_version.c */
int tp_cmd_plugins(int argc, char **argv, tp_cli_env *env);
int tp_cmd_config(int argc, char **argv, tp_cli_env *env);
int tp_cmd_version(int argc, char **argv, tp_cli_env *env);
/* found2: cmd_run.c, cmd_db.c, cmd_ls.c, cmd_show.c */
int tp_cmd_run(int argc, char **argv, tp_cli_env *env);
int tp_cmd_db(int argc, char **argv, tp_cli_env *env);
int tp_cmd_ls(int argc, char **argv, tp_cli_env *env);
int tp_cmd_show(int argc, char **argv, tp_cli_env *env);
/* engine: cmd_generate.c */
int tp_cmd_generate(int argc, char **argv, tp_cli_env *env);
/* files: cmd_make_tiny.c, cmd_import_llama2c.c */
int tp_cmd_make_tiny(int argc, char **argv, tp_cli_env *env);
int tp_cmd_import_llama2c(int argc, char **argv, tp_cli_env *env);
/* tok: cmd_tokenize.c */
int tp_cmd_tokenize(int argc, char **argv, tp_cli_env *env);
/* cuda: cmd_bench.c */
int tp_cmd_bench(int argc, char **argv, tp_cli_env *env);
/* tables: cmd_table.c, cmd_plot.c, cmd_import_preserved.c, cmd_replay.c */
int tp_cmd_table(int argc, char **argv, tp_cli_env *env);
int tp_cmd_import_preserved(int argc, char **argv, tp_cli_env *env);
int tp_cmd_replay(int argc, char **argv, tp_cli_env *env);
int tp_cmd_plot(int argc, char **argv, tp_cli_env *env);
/* sweeps: cmd_plan.c, cmd_work.c, cmd_submit.c, cmd_merge.c, cmd_status.c */
int tp_cmd_plan(int argc, char **argv, tp_cli_env *env);
int tp_cmd_work(int argc, char **argv, tp_cli_env *env);
int tp_cmd_submit(int argc, char **argv, tp_cli_env *env);
int tp_cmd_merge(int argc, char **argv, tp_cli_env *env);
int tp_cmd_status(int argc, char **argv, tp_cli_env *env);
/* later issues add rows here and in main.c's table: generate, make-tiny, import-llama2c, table,
 * bench, ... (declare tp_cmd_<name> here, with the owner's name in a comment). */

#endif
