/* cli_script.h — the arguments every script-running command shares (`run`, `plan`): the script,
 * its own arguments after `--` or after the script, `--set k=v` (repeatable), `--db PATH`, plus
 * one command-specific valued option (`--seed` for run, `--sweep` for plan); and applying
 * --set/--db to the loaded configuration in command-line order. */
#ifndef TP_CLI_SCRIPT_H
#define TP_CLI_SCRIPT_H

#include "cli/cli.h"

struct tp_config;

typedef struct tp_cli_script_args {
    const char *script, *db;
    const char *extra; /* value of the command's extra option, or NULL */
    const char **sets; /* --set values, in order */
    int nsets;
    char **sargs; /* the script's own arguments */
    int nargs;
    char seed_set[64]; /* "run.seed=N" when the extra option is --seed */
} tp_cli_script_args;

/* Parses argv; extra_opt is the command's one extra valued option ("--seed", "--sweep") or
 * NULL. Returns 0, or the exit code (2 usage, 1 out of memory) after printing why. Always
 * pair with tp_cli_script_args_free. */
int tp_cli_script_args_parse(const char *cmd, int argc, char **argv, const char *extra_opt,
                             tp_cli_script_args *a);
void tp_cli_script_args_free(tp_cli_script_args *a);

/* Loads the configuration and applies --set and --db; returns 0 or the exit code. */
int tp_cli_script_config(const char *cmd, tp_cli_env *env, const tp_cli_script_args *a,
                         struct tp_config **out);

#endif
