/* cmd_plan.c — `telepathy plan SCRIPT.lua --sweep NAME`: runs an experiment script in plan mode
 * (tp.run{} records each resolved configuration as a pending item of the sweep instead of running
 * it; run/sweep.h), so workers (`telepathy work`, `telepathy submit --slurm`) can run them. */
#include <lua.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_script.h"
#include "cli/cli_store.h"
#include "plugin/config.h"
#include "run/sweep.h"
#include "script/lua_runtime.h"
#include "util/sha256.h"

static const char *USAGE =
    "usage: telepathy plan SCRIPT.lua --sweep NAME [--db PATH] [--set section.key=value ...]\n"
    "                      [-- SCRIPT-ARGS...]\n"
    "\n"
    "Runs the script without running its configurations: every tp.run{...} resolves its\n"
    "configuration (loading the models it names, opening its task) and records it, with its\n"
    "config hash, as a pending item of sweep NAME in results.db; tp.run returns\n"
    "{status = \"planned\", config_hash, added} and tp.planning is true. Planning again adds\n"
    "only new configurations; one already done in results.db is planned as done.\n"
    "Then: telepathy work --sweep NAME [--gpus 0,1,...]  or  telepathy submit --sweep NAME "
    "--slurm\n"
    "  --sweep NAME   the sweep (letters, digits, '.', '_', '-')\n"
    "  --db PATH      results database (default: [paths] results)\n"
    "  --set k=v      override a configuration value (repeatable)\n"
    "\n"
    "exit status: 0 planned, 1 the script or the db failed, 2 usage error\n";

typedef struct plan_ctx {
    tp_store *s;
    int64_t sweep_id;
    int added, existing;
} plan_ctx;

static tp_status plan_add(void *ctx, const char *spec_json, const char *config_json,
                          const char *config_hash, const char *models_json, int *added,
                          tp_err *err) {
    plan_ctx *p = ctx;
    TP_TRY(tp_sweep_plan_add(p->s, p->sweep_id, config_hash, config_json, spec_json, models_json,
                             added, err));
    if (*added)
        p->added++;
    else
        p->existing++;
    return TP_OK;
}

static tp_status registry_of_env(void *ctx, struct tp_registry **out, tp_err *err) {
    return tp_cli_registry((tp_cli_env *)ctx, out, err);
}

int tp_cmd_plan(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "plan";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    tp_cli_script_args a;
    tp_store *s = NULL;
    tp_lua *rt = NULL;
    tp_sweep sw = {0};
    struct tp_config *c;
    tp_err err = {0};
    int rc = tp_cli_script_args_parse(cmd, argc, argv, "--sweep", &a);
    const char *script = a.script, *sweep = a.extra;
    if (rc) goto out;
    if (!script) {
        rc = tp_cli_usage_error(cmd, "missing the script (telepathy plan SCRIPT.lua --sweep NAME)");
        goto out;
    }
    if (!sweep) {
        rc = tp_cli_usage_error(cmd, "missing --sweep NAME (the sweep the configurations join)");
        goto out;
    }
    if (tp_sweep_name_check(sweep, &err) != TP_OK) {
        rc = tp_cli_usage_error(cmd, "--sweep: %s", err.msg);
        goto out;
    }
    if ((rc = tp_cli_script_config(cmd, env, &a, &c))) goto out;
    const char *path;
    char hex[TP_SHA256_HEX], real[PATH_MAX];
    if (tp_sha256_file_hex(script, hex, &err) != TP_OK || !realpath(script, real)) {
        if (!err.msg[0]) tp_errf(&err, TP_EIO, "%s: cannot resolve the script's path", script);
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (tp_cli_db_path(env, NULL, &path, &err) != TP_OK ||
        tp_store_open(&s, path, TP_STORE_RW, &err) != TP_OK ||
        tp_sweep_ensure(s, sweep, NULL, real, hex, &sw, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    plan_ctx pc = {s, sw.id, 0, 0};
    tp_sweep_plan_hook hook = {plan_add, &pc};
    tp_lua_opts o = {0};
    o.config = c;
    o.registry_fn = registry_of_env;
    o.registry_ctx = env;
    if (tp_lua_new(&rt, &o, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    lua_State *L = tp_lua_state(rt);
    lua_pushlightuserdata(L, &hook);
    lua_setfield(L, LUA_REGISTRYINDEX, TP_SWEEP_PLAN_KEY);
    if (tp_lua_run_file(rt, script, a.nargs, a.sargs, &err) != TP_OK) {
        const char *tb = tp_lua_traceback(rt);
        fprintf(stderr, "telepathy plan: %s\n", *tb ? tb : err.msg);
        fprintf(stderr, "telepathy plan: %d configuration(s) were planned before the error\n",
                pc.added);
        rc = 1;
        goto out;
    }
    tp_sweep_counts cnt;
    if (tp_sweep_count(s, sw.id, &cnt, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    printf("sweep %s: %d new configuration(s) planned, %d already in the sweep; now %lld pending, "
           "%lld running, %lld done, %lld failed\n",
           sweep, pc.added, pc.existing, (long long)cnt.pending, (long long)cnt.running,
           (long long)cnt.done, (long long)cnt.failed);
    if (cnt.pending)
        printf("run them: telepathy work --sweep %s [--gpus 0,1,...]   or   telepathy submit "
               "--sweep %s --slurm\n",
               sweep, sweep);
out:
    tp_lua_free(rt);
    tp_sweep_free(&sw);
    tp_store_close(s);
    tp_cli_script_args_free(&a);
    return rc;
}
