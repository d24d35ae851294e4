/* cmd_run.c — `telepathy run SCRIPT.lua`: resolves the configuration (INI, environment, --set,
 * --db), creates the Lua runtime and runs the script under lua_pcall; a script error prints
 * file:line and the traceback and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "plugin/config.h"
#include "script/lua_runtime.h"

static const char *USAGE =
    "usage: telepathy run SCRIPT.lua [--set section.key=value ...] [--db PATH] [--seed N]\n"
    "                     [-- SCRIPT-ARGS...]\n"
    "\n"
    "Runs a Lua experiment script. Inside it, `local tp = require \"telepathy\"` gives\n"
    "tp.version, tp.config (the resolved configuration, read-only), tp.plugins(),\n"
    "tp.query(sql, ...) (read-only SQL on results.db, values bound to ? parameters) and\n"
    "tp.log(...). The script's arguments are in `arg` and `...`.\n"
    "  --set section.key=value  override a configuration value (repeatable), e.g.\n"
    "                           --set device.device=cpu --set run.seed=3\n"
    "  --db PATH                results database (default: [paths] results)\n"
    "  --seed N                 shorthand for --set run.seed=N (seeds math.random)\n"
    "\n"
    "exit status: 0 the script finished, 1 it failed (error and traceback on stderr),\n"
    "2 usage error\n";

static tp_status registry_of_env(void *ctx, struct tp_registry **out, tp_err *err) {
    return tp_cli_registry((tp_cli_env *)ctx, out, err);
}

int tp_cmd_run(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "run";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *script = NULL, *db = NULL;
    /* --set values are applied after the config is loaded, in command-line order */
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    char **sargs = calloc((size_t)argc + 1, sizeof *sargs);
    int nsets = 0, nargs = 0, rc = 0;
    if (!sets || !sargs) {
        fprintf(stderr, "telepathy run: out of memory\n");
        rc = 1;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (!strcmp(argv[i], "--")) {
            while (++i < argc) sargs[nargs++] = argv[i];
        } else if ((v = tp_cli_opt(argc, argv, &i, "--set", &missing))) {
            sets[nsets++] = v;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing))) {
            db = v;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--seed", &missing))) {
            static char buf[64];
            snprintf(buf, sizeof buf, "run.seed=%s", v);
            sets[nsets++] = buf;
        } else if (missing) {
            rc = tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
            goto out;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
            goto out;
        } else if (!script) {
            script = argv[i];
        } else {
            sargs[nargs++] = argv[i];
        }
    }
    if (!script) {
        rc = tp_cli_usage_error(cmd, "missing the script to run (telepathy run SCRIPT.lua)");
        goto out;
    }

    tp_err err = {0};
    struct tp_config *c;
    if (tp_cli_config(env, &c, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    for (int i = 0; i < nsets; i++)
        if (tp_config_set_arg(c, sets[i], &err) != TP_OK) {
            rc = tp_cli_usage_error(cmd, "--set %s: %s", sets[i], err.msg);
            goto out;
        }
    if (db && tp_config_set(c, "paths.results", db, TP_ORIGIN_CLI, "--db", &err) != TP_OK) {
        rc = tp_cli_usage_error(cmd, "--db %s: %s", db, err.msg);
        goto out;
    }

    tp_lua_opts o = {0};
    o.config = c;
    o.registry_fn = registry_of_env;
    o.registry_ctx = env;
    tp_lua *rt = NULL;
    if (tp_lua_new(&rt, &o, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (tp_lua_run_file(rt, script, nargs, sargs, &err) != TP_OK) {
        /* the full traceback, not the message truncated to fit tp_err */
        const char *tb = tp_lua_traceback(rt);
        fprintf(stderr, "telepathy run: %s\n", *tb ? tb : err.msg);
        rc = 1;
    }
    tp_lua_free(rt);
out:
    free(sets);
    free(sargs);
    return rc;
}
