/* cli_script.c — argument parsing and configuration shared by the script-running commands. */
#include "cli/cli_script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "plugin/config.h"

int tp_cli_script_args_parse(const char *cmd, int argc, char **argv, const char *extra_opt,
                             tp_cli_script_args *a) {
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    a->sargs = calloc((size_t)argc + 1, sizeof *a->sargs);
    if (!a->sets || !a->sargs) {
        fprintf(stderr, "telepathy %s: out of memory\n", cmd);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (!strcmp(argv[i], "--")) {
            while (++i < argc) a->sargs[a->nargs++] = argv[i];
        } else if ((v = tp_cli_opt(argc, argv, &i, "--set", &missing))) {
            a->sets[a->nsets++] = v;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing))) {
            a->db = v;
        } else if (extra_opt && (v = tp_cli_opt(argc, argv, &i, extra_opt, &missing))) {
            a->extra = v;
            if (!strcmp(extra_opt, "--seed")) { /* shorthand for --set run.seed=N, in order */
                snprintf(a->seed_set, sizeof a->seed_set, "run.seed=%s", v);
                a->sets[a->nsets++] = a->seed_set;
            }
        } else if (missing) {
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (!a->script) {
            a->script = argv[i];
        } else {
            a->sargs[a->nargs++] = argv[i];
        }
    }
    return 0;
}

void tp_cli_script_args_free(tp_cli_script_args *a) {
    free(a->sets);
    free(a->sargs);
    a->sets = NULL;
    a->sargs = NULL;
}

int tp_cli_script_config(const char *cmd, tp_cli_env *env, const tp_cli_script_args *a,
                         struct tp_config **out) {
    tp_err err = {0};
    if (tp_cli_config(env, out, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    for (int i = 0; i < a->nsets; i++)
        if (tp_config_set_arg(*out, a->sets[i], &err) != TP_OK)
            return tp_cli_usage_error(cmd, "--set %s: %s", a->sets[i], err.msg);
    if (a->db && tp_config_set(*out, "paths.results", a->db, TP_ORIGIN_CLI, "--db", &err) != TP_OK)
        return tp_cli_usage_error(cmd, "--db %s: %s", a->db, err.msg);
    return 0;
}
