/* lua_run.c — tp.model{}, tp.run{} and tp.table{}: the experiment verbs of the `telepathy` Lua
 * module, thin wrappers over harness/run (run.h, table.h).
 *
 *   local m = tp.model{path = "models/llama", alias = "sender"}   -- loaded once per script;
 *       returns {alias, path, fingerprint, arch, layers, hidden, vocab}
 *   local r, err = tp.run{sender = m, receiver = "receiver", task = "toy", ...}
 *       trains + evaluates one configuration (keys: harness/run/run.h), records it in results.db
 *       and returns {run_id, config_hash, status = "done"|"skipped"|"resumed", accuracy, ci_low,
 *       ci_high, n, n_correct, scheme, per_class = {label = acc}, first_loss, final_loss, steps};
 *       a failed run is recorded `failed` (error + Lua traceback) and returns nil, message
 *   tp.planning: true under `telepathy plan`, where tp.run{} records the configuration as a
 *       pending sweep item instead of running it and returns {status = "planned", config_hash,
 *       added} (run/sweep.h)
 *   tp.table{rows = "bridge", cols = "task", metric = "accuracy"}   -- prints the Markdown table
 *       and returns it (print = false only returns it); optional split, experiment
 *
 * The runner (model cache, read-write store connection, registry) lives in one userdata stored
 * in the Lua registry, created on first use and released by its __gc when the state closes. The
 * script's experiment row is named after the script file (arg[0]) with its sha256. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/config.h"
#include "run/run.h"
#include "run/sweep.h"
#include "run/plot.h"
#include "run/table.h"
#include "script/lua_runtime.h"
#include "util/sha256.h"
#include "util/strutil.h"

#define RUNNER_MT  "telepathy.runner"
#define RUNNER_KEY "telepathy.runner.instance"

typedef struct lua_runner {
    tp_runner *runner;
    tp_store *store;
} lua_runner;

static void lr_release(lua_runner *lr) {
    if (lr->runner) tp_runner_free(lr->runner);
    if (lr->store) tp_store_close(lr->store);
    lr->runner = NULL;
    lr->store = NULL;
}

static int lr_gc(lua_State *L) {
    lr_release(luaL_checkudata(L, 1, RUNNER_MT));
    return 0;
}

/* The script's experiment: name = file name without .lua, identity = its sha256. */
static tp_status ensure_experiment(lua_State *L, tp_store *s, int64_t *id, tp_err *err) {
    *id = 0;
    lua_getglobal(L, "arg");
    const char *path = NULL;
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 0);
        path = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!path) return TP_OK;
    char hex[TP_SHA256_HEX];
    if (tp_sha256_file_hex(path, hex, err) != TP_OK) return TP_OK; /* not a file: no experiment */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[256];
    tp_strlcpy(name, base, sizeof name);
    if (tp_str_ends_with(name, ".lua")) name[strlen(name) - 4] = 0;
    return tp_store_experiment_ensure(s, name, path, hex, id, err);
}

/* The runner of this state, created on first use. Errors are returned, not raised. */
static tp_status get_runner(lua_State *L, lua_runner **out, tp_err *err) {
    lua_getfield(L, LUA_REGISTRYINDEX, RUNNER_KEY);
    if (lua_isuserdata(L, -1)) {
        *out = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return TP_OK;
    }
    lua_pop(L, 1);
    tp_lua *rt = tp_lua_from_state(L);
    lua_runner *lr = lua_newuserdatauv(L, sizeof *lr, 0);
    memset(lr, 0, sizeof *lr);
    if (luaL_newmetatable(L, RUNNER_MT)) {
        lua_pushcfunction(L, lr_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lr_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, RUNNER_KEY); /* owned by the registry from now on */

    struct tp_registry *reg;
    TP_TRY(tp_lua_registry(rt, &reg, err));
    struct tp_store *ro;
    TP_TRY(tp_lua_store(rt, &ro, err)); /* creates the file with its schema when missing */
    TP_TRY(tp_store_open(&lr->store, tp_store_path(ro), TP_STORE_RW, err));
    tp_runner_opts o = {0};
    o.registry = reg;
    o.store = lr->store;
    const struct tp_config *cfg = tp_lua_config(rt);
    const char *data = cfg ? tp_config_get(cfg, "paths.data") : NULL;
    o.data_dir = data && data[0] ? data : NULL;
    o.progress = -1;
    char commit[128] = "";
    int dirty = -1;
    if (tp_source_git_info(commit, sizeof commit, &dirty)) o.git_commit = commit;
    o.git_dirty = o.git_commit ? dirty : -1;
    o.lua_version = LUA_RELEASE;
    TP_TRY(ensure_experiment(L, lr->store, &o.experiment_id, err));
    TP_TRY(tp_runner_new(&lr->runner, &o, err));
    *out = lr;
    return TP_OK;
}

/* ---- Lua value -> JSON ------------------------------------------------------------------------
 */

static json_t *to_json(lua_State *L, int idx, int depth, tp_err *err);

static int is_array(lua_State *L, int idx, lua_Integer *n) {
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max) max = k;
        count++;
    }
    *n = count;
    return count > 0 && max == count;
}

static json_t *to_json(lua_State *L, int idx, int depth, tp_err *err) {
    idx = lua_absindex(L, idx);
    if (depth > 16) {
        tp_errf(err, TP_EINVAL, "tp.run: the spec is nested too deeply");
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            tp_errf(err, TP_EINVAL, "tp.run: numbers must be finite");
            return NULL;
        }
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING:
        return json_string(lua_tostring(L, idx));
    case LUA_TTABLE: {
        /* a tp.model{} result stands for its alias */
        if (lua_getfield(L, idx, "alias") == LUA_TSTRING &&
            lua_getfield(L, idx, "fingerprint") == LUA_TSTRING) {
            json_t *s = json_string(lua_tostring(L, -2));
            lua_pop(L, 2);
            return s;
        }
        lua_settop(L, idx);
        lua_Integer n;
        if (is_array(L, idx, &n)) {
            json_t *a = json_array();
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                json_t *v = to_json(L, -1, depth + 1, err);
                lua_pop(L, 1);
                if (!v) {
                    json_decref(a);
                    return NULL;
                }
                json_array_append_new(a, v);
            }
            return a;
        }
        json_t *o = json_object();
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                json_decref(o);
                tp_errf(err, TP_EINVAL, "tp.run: table keys must be names (got a %s key)",
                        luaL_typename(L, -2));
                return NULL;
            }
            json_t *v = to_json(L, -1, depth + 1, err);
            if (!v) {
                lua_pop(L, 2);
                json_decref(o);
                return NULL;
            }
            json_object_set_new(o, lua_tostring(L, -2), v);
            lua_pop(L, 1);
        }
        return o;
    }
    default:
        tp_errf(err, TP_EINVAL, "tp.run: a %s cannot be part of a run spec", luaL_typename(L, idx));
        return NULL;
    }
}

/* ---- tp.model ---------------------------------------------------------------------------------
 */

static void push_model(lua_State *L, const tp_run_model *m) {
    lua_createtable(L, 0, 7);
    lua_pushstring(L, m->alias);
    lua_setfield(L, -2, "alias");
    lua_pushstring(L, m->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, m->fingerprint);
    lua_setfield(L, -2, "fingerprint");
    lua_pushstring(L, tp_arch_name(m->m->cfg.arch));
    lua_setfield(L, -2, "arch");
    lua_pushinteger(L, m->m->cfg.num_hidden_layers);
    lua_setfield(L, -2, "layers");
    lua_pushinteger(L, m->m->cfg.hidden_size);
    lua_setfield(L, -2, "hidden");
    lua_pushinteger(L, m->m->cfg.vocab_size);
    lua_setfield(L, -2, "vocab");
}

static int l_model(lua_State *L) {
    tp_err err = {0};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "path");
    lua_getfield(L, 1, "alias");
    const char *path = luaL_optstring(L, -2, NULL), *alias = luaL_optstring(L, -1, NULL);
    if (!path && !alias)
        return luaL_error(L, "tp.model{}: give path = \"dir\" (and optionally alias = \"name\") or "
                             "alias = a [models] name of telepathy.ini");
    char resolved[4096];
    if (!path) { /* an alias of the INI's [models] section */
        const struct tp_config *cfg = tp_lua_config(tp_lua_from_state(L));
        if (!cfg)
            return luaL_error(L,
                              "tp.model{alias = \"%s\"}: no configuration to resolve it "
                              "from; give path = too",
                              alias);
        if (tp_config_resolve_model(cfg, alias, resolved, sizeof resolved, &err) != TP_OK)
            return luaL_error(L, "tp.model{}: %s", err.msg);
        path = resolved;
    }
    lua_runner *lr;
    const tp_run_model *m = NULL;
    tp_status st = get_runner(L, &lr, &err);
    if (st == TP_OK) st = tp_runner_add_model(lr->runner, path, alias, &m, &err);
    if (st != TP_OK) return luaL_error(L, "tp.model{}: %s", err.msg);
    push_model(L, m);
    return 1;
}

/* ---- tp.run -----------------------------------------------------------------------------------
 */

static void set_num(lua_State *L, const char *k, double v) {
    if (isnan(v)) return; /* absent rather than NaN */
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* ---- plan mode (`telepathy plan`, run/sweep.h) -------------------------------------------------
 * With a tp_sweep_plan_hook in the registry, tp.run{} resolves the spec and hands it to the hook
 * (a pending item of the sweep) instead of running it, and returns {status = "planned",
 * config_hash, added}. */

static const tp_sweep_plan_hook *plan_hook(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, TP_SWEEP_PLAN_KEY);
    const tp_sweep_plan_hook *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

static int plan_run(lua_State *L, lua_runner *lr, const tp_sweep_plan_hook *h, json_t *spec) {
    tp_err err = {0};
    char *canon = NULL, hash[TP_SHA256_HEX] = "";
    char *spec_s = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS), *models_s = NULL;
    json_t *models = json_object();
    tp_status st = spec_s && models ? tp_runner_resolve(lr->runner, spec, &canon, hash, &err)
                                    : tp_errf(&err, TP_ENOMEM, "tp.run: out of memory");
    static const char *const refs[] = {"sender", "receiver"};
    for (int i = 0; st == TP_OK && i < 2; i++) {
        json_t *v = json_object_get(spec, refs[i]);
        const tp_run_model *m;
        if (!json_is_string(v)) continue;
        st = tp_runner_model(lr->runner, json_string_value(v), &m, &err);
        if (st == TP_OK) json_object_set_new(models, m->alias, json_string(m->path));
    }
    if (st == TP_OK && !(models_s = json_dumps(models, JSON_COMPACT | JSON_SORT_KEYS)))
        st = tp_errf(&err, TP_ENOMEM, "tp.run: out of memory");
    int added = 0;
    if (st == TP_OK) st = h->add(h->ctx, spec_s, canon, hash, models_s, &added, &err);
    free(spec_s);
    free(models_s);
    free(canon);
    json_decref(models);
    json_decref(spec);
    if (st != TP_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, "planned");
    lua_setfield(L, -2, "status");
    lua_pushstring(L, hash);
    lua_setfield(L, -2, "config_hash");
    lua_pushboolean(L, added);
    lua_setfield(L, -2, "added");
    return 1;
}

static int l_run(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    tp_err err = {0};
    json_t *spec = to_json(L, 1, 0, &err);
    if (!spec) return luaL_error(L, "%s", err.msg);
    lua_settop(L, 1);
    lua_runner *lr;
    tp_status st = get_runner(L, &lr, &err);
    if (st != TP_OK) {
        json_decref(spec);
        return luaL_error(L, "tp.run: %s", err.msg);
    }
    const tp_sweep_plan_hook *plan = plan_hook(L);
    if (plan) return plan_run(L, lr, plan, spec);
    luaL_traceback(L, L, NULL, 1);
    tp_runner_set_traceback(lr->runner, lua_tostring(L, -1));
    lua_pop(L, 1);
    tp_run_result *res = malloc(sizeof *res);
    if (!res) {
        json_decref(spec);
        return luaL_error(L, "tp.run: out of memory");
    }
    st = tp_runner_run(lr->runner, spec, res, &err);
    tp_runner_set_traceback(lr->runner, NULL);
    json_decref(spec);
    if (st != TP_OK) {
        free(res);
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, 0, 16);
    lua_pushinteger(L, res->run_id);
    lua_setfield(L, -2, "run_id");
    lua_pushstring(L, res->config_hash);
    lua_setfield(L, -2, "config_hash");
    lua_pushstring(L, res->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, res->scheme);
    lua_setfield(L, -2, "scheme");
    set_num(L, "accuracy", res->accuracy);
    set_num(L, "ci_low", res->ci_low);
    set_num(L, "ci_high", res->ci_high);
    lua_pushinteger(L, res->n);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, res->n_correct);
    lua_setfield(L, -2, "n_correct");
    set_num(L, "first_loss", res->first_loss);
    set_num(L, "final_loss", res->final_loss);
    lua_pushinteger(L, res->steps);
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, res->resumed_from_step);
    lua_setfield(L, -2, "resumed_from_step");
    lua_createtable(L, 0, res->n_classes);
    for (int c = 0; c < res->n_classes; c++) {
        if (isnan(res->class_acc[c])) continue;
        lua_pushnumber(L, res->class_acc[c]);
        lua_setfield(L, -2, res->class_name[c]);
    }
    lua_setfield(L, -2, "per_class");
    free(res);
    return 1;
}

/* ---- tp.table ---------------------------------------------------------------------------------
 */

static const char *opt_field(lua_State *L, const char *k) {
    lua_getfield(L, 1, k);
    const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive: it is referenced by the argument table */
    return s;
}

static int l_table(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    tp_table_opts o = {0};
    o.rows = opt_field(L, "rows");
    o.cols = opt_field(L, "cols");
    o.metric = opt_field(L, "metric");
    o.split = opt_field(L, "split");
    o.experiment = opt_field(L, "experiment");
    o.vs = opt_field(L, "vs");
    o.format = opt_field(L, "format");
    o.origin = opt_field(L, "origin");
    o.test = opt_field(L, "test");
    tp_err err = {0};
    lua_runner *lr;
    char *text = NULL;
    tp_status st = get_runner(L, &lr, &err);
    if (st == TP_OK) st = tp_table_render(lr->store, &o, &text, &err);
    if (st != TP_OK) return luaL_error(L, "%s", err.msg);
    lua_getfield(L, 1, "print");
    int quiet = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!quiet) {
        fputs(text, stdout);
        fflush(stdout);
    }
    lua_pushstring(L, text);
    free(text);
    return 1;
}

/* ---- tp.plot: the same figures as `telepathy plot`, from the script's results.db ---------- */

static int l_plot(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    tp_plot_opts o = {0};
    o.kind = opt_field(L, "kind");
    o.out = opt_field(L, "out");
    o.metric = opt_field(L, "metric");
    o.x = opt_field(L, "x");
    o.series = opt_field(L, "series");
    o.split = opt_field(L, "split");
    o.experiment = opt_field(L, "experiment");
    o.origin = opt_field(L, "origin");
    o.title = opt_field(L, "title");
    if (!o.kind || !o.out)
        return luaL_error(L, "tp.plot{}: 'kind' (scaling|layers|xy|curve|latency) and 'out' "
                             "(FILE.png|.svg|.pdf) are required");
    tp_err err = {0};
    lua_runner *lr;
    tp_status st = get_runner(L, &lr, &err);
    if (st == TP_OK) st = tp_plot(lr->store, &o, &err);
    if (st != TP_OK) return luaL_error(L, "tp.plot: %s", err.msg);
    lua_pushstring(L, o.out);
    return 1;
}

tp_status tp_lua_open_run(lua_State *L, tp_lua *rt, tp_err *err) {
    (void)rt;
    (void)err;
    lua_pushcfunction(L, l_model);
    lua_setfield(L, -2, "model");
    lua_pushcfunction(L, l_run);
    lua_setfield(L, -2, "run");
    lua_pushboolean(L, plan_hook(L) != NULL); /* scripts can tell planning from running */
    lua_setfield(L, -2, "planning");
    lua_pushcfunction(L, l_table);
    lua_setfield(L, -2, "table");
    lua_pushcfunction(L, l_plot);
    lua_setfield(L, -2, "plot");
    return TP_OK;
}
