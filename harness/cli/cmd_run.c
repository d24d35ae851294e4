/* cmd_run.c — `telepathy run SCRIPT.lua`: resolves the configuration (INI, environment, --set,
 * --db), creates the Lua runtime and runs the script under lua_pcall; a script error prints
 * file:line and the traceback and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_script.h"
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
    tp_cli_script_args a;
    struct tp_config *c;
    tp_err err = {0};
    int rc = tp_cli_script_args_parse(cmd, argc, argv, "--seed", &a);
    if (!rc && !a.script)
        rc = tp_cli_usage_error(cmd, "missing the script to run (telepathy run SCRIPT.lua)");
    if (!rc) rc = tp_cli_script_config(cmd, env, &a, &c);
    if (rc) goto out;

    tp_lua_opts o = {0};
    o.config = c;
    o.registry_fn = registry_of_env;
    o.registry_ctx = env;
    tp_lua *rt = NULL;
    if (tp_lua_new(&rt, &o, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (tp_lua_run_file(rt, a.script, a.nargs, a.sargs, &err) != TP_OK) {
        /* the full traceback, not the message truncated to fit tp_err */
        const char *tb = tp_lua_traceback(rt);
        fprintf(stderr, "telepathy run: %s\n", *tb ? tb : err.msg);
        rc = 1;
    }
    tp_lua_free(rt);
out:
    tp_cli_script_args_free(&a);
    return rc;
}
