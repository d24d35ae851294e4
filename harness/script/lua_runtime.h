/* lua_runtime.h — the embedded Lua 5.4 runtime behind `telepathy run script.lua`: a state with
 * the safe standard libraries, `require "telepathy"` returning the harness module, scripts run
 * under lua_pcall with a traceback handler, math.random seeded from the run seed.
 *
 * The module is extensible without touching this area's files' logic: a later capability
 * (tp.model, tp.run, tp.table, ...) adds one line to lua_extras.def naming a tp_lua_extra_fn,
 * or calls tp_lua_register_extra() before tp_lua_new (tests do this). Each function is called
 * with the module table on top of the stack and sets its fields there.
 *
 * Conventions for bindings (STYLE.md): harness objects are full userdata with a named metatable
 * (checked with luaL_checkudata), created zeroed before the resource is acquired, with __gc and
 * __close sharing one idempotent release; the C core returns a tp_status and the thin Lua
 * wrapper calls luaL_error only at its very end, after releasing what it owns. */
#ifndef TP_SCRIPT_LUA_RUNTIME_H
#define TP_SCRIPT_LUA_RUNTIME_H

#include <lua.h>
#include <stdint.h>

#include "telepathy/status.h"

struct tp_config;   /* plugin/config.h */
struct tp_registry; /* plugin/loader.h */
struct tp_store;    /* store/store.h */

typedef struct tp_lua tp_lua;

/* Supplies the plugin registry on first use (so a script that never asks for plugins does not
 * need a valid plugin path). */
typedef tp_status (*tp_lua_registry_fn)(void *ctx, struct tp_registry **out, tp_err *err);

typedef struct tp_lua_opts {
    const struct tp_config *config; /* tp.config; NULL = empty table */
    struct tp_registry *registry;   /* tp.plugins(); or NULL and registry_fn below */
    tp_lua_registry_fn registry_fn;
    void *registry_ctx;
    /* results db for tp.query; NULL = the config's paths.results. Created (empty schema) if the
     * file does not exist yet, then opened read-only. */
    const char *db_path;
    int64_t seed; /* math.randomseed(seed) */
    int has_seed; /* 0: use the config's run.seed (0 without a config) */
} tp_lua_opts;

tp_status tp_lua_new(tp_lua **out, const tp_lua_opts *opts, tp_err *err);
/* Closes the state (running every __gc) and the read-only db connection. Safe on NULL. */
void tp_lua_free(tp_lua *rt);
lua_State *tp_lua_state(tp_lua *rt);
/* The runtime that owns L (every binding can find its context). */
tp_lua *tp_lua_from_state(lua_State *L);

/* Runs a script file. args become the global `arg` (arg[0] = path, arg[1..n] = args). On a Lua
 * error: TP_ESCRIPT with "file:line: message" and the traceback in err (truncated to fit);
 * the full traceback stays available from tp_lua_traceback() for the run record. A missing or
 * unreadable file is TP_EIO; a syntax error is TP_ESCRIPT naming file:line. */
tp_status tp_lua_run_file(tp_lua *rt, const char *path, int argc, char **argv, tp_err *err);
/* Runs code from a string; chunkname is how messages name it (e.g. "=(test)" or "@x.lua"). */
tp_status tp_lua_run_string(tp_lua *rt, const char *chunkname, const char *code, tp_err *err);
/* Message + traceback of the last failed run ("" if none); valid until the next run. */
const char *tp_lua_traceback(const tp_lua *rt);

/* ---- what bindings use ---------------------------------------------------------------------- */
const struct tp_config *tp_lua_config(const tp_lua *rt);
tp_status tp_lua_registry(tp_lua *rt, struct tp_registry **out, tp_err *err);
/* The shared read-only connection for tp.query, opened on first use. */
tp_status tp_lua_store(tp_lua *rt, struct tp_store **out, tp_err *err);

/* Adds fields to the module table (on top of the stack). Returns TP_OK or fills err; it must not
 * raise Lua errors itself. */
typedef tp_status (*tp_lua_extra_fn)(lua_State *L, tp_lua *rt, tp_err *err);
/* Registers fn for every runtime created afterwards (process-wide, up to 32). */
tp_status tp_lua_register_extra(const char *name, tp_lua_extra_fn fn, tp_err *err);

/* Module pieces defined in this area (lua_tp.c, lua_query.c). */
tp_status tp_lua_open_core(lua_State *L, tp_lua *rt, tp_err *err);
tp_status tp_lua_open_query(lua_State *L, tp_lua *rt, tp_err *err);

#endif
