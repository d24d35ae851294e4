/* lua_runtime.c — the Lua state behind `telepathy run`: safe standard libraries only, text-only
 * chunk loading, `require "telepathy"` through package.preload, the extension list, the seeded
 * math.random, and script execution under lua_pcall with a traceback handler. */
#include "script/lua_runtime.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/config.h"
#include "store/store.h"
#include "util/strutil.h"

struct tp_lua {
    lua_State *L;
    tp_lua_opts opts;
    char *db_path;
    struct tp_store *store; /* read-only, opened by the first tp.query */
    char *traceback;
};

static const char *const RUNTIME_KEY = "telepathy.runtime";

/* ---- extension list ------------------------------------------------------------------------- */

#define TP_LUA_EXTRA(name, fn) tp_status fn(lua_State *L, tp_lua *rt, tp_err *err);
#include "script/lua_extras.def"
#undef TP_LUA_EXTRA

typedef struct extra {
    const char *name;
    tp_lua_extra_fn fn;
} extra;

static const extra builtin_extras[] = {
    {"core", tp_lua_open_core},
    {"query", tp_lua_open_query},
#define TP_LUA_EXTRA(name, fn) {#name, fn},
#include "script/lua_extras.def"
#undef TP_LUA_EXTRA
};

static extra added_extras[32];
static int n_added;

tp_status tp_lua_register_extra(const char *name, tp_lua_extra_fn fn, tp_err *err) {
    if (!name || !fn) return tp_errf(err, TP_EINVAL, "tp_lua_register_extra: name and fn needed");
    for (int i = 0; i < n_added; i++)
        if (!strcmp(added_extras[i].name, name)) {
            added_extras[i].fn = fn; /* re-registering replaces (tests) */
            return TP_OK;
        }
    if (n_added == (int)(sizeof added_extras / sizeof *added_extras))
        return tp_errf(err, TP_ERANGE, "tp_lua_register_extra('%s'): more than %d extensions", name,
                       (int)(sizeof added_extras / sizeof *added_extras));
    added_extras[n_added++] = (extra){name, fn};
    return TP_OK;
}

/* require "telepathy": builds the module table once per state (require caches it). Runs inside
 * the script's protected call, so turning a failed extension into a Lua error here is safe. */
static int luaopen_telepathy(lua_State *L) {
    tp_lua *rt = tp_lua_from_state(L);
    tp_err err = {0};
    tp_status st = TP_OK;
    lua_newtable(L);
    int mod = lua_gettop(L);
    const char *failed = NULL;
    for (size_t i = 0; st == TP_OK && i < sizeof builtin_extras / sizeof *builtin_extras; i++) {
        st = builtin_extras[i].fn(L, rt, &err);
        failed = builtin_extras[i].name;
        lua_settop(L, mod); /* the module table stays on top whatever the extension left */
    }
    for (int i = 0; st == TP_OK && i < n_added; i++) {
        st = added_extras[i].fn(L, rt, &err);
        failed = added_extras[i].name;
        lua_settop(L, mod);
    }
    if (st != TP_OK) return luaL_error(L, "require \"telepathy\": %s: %s", failed, err.msg);
    return 1;
}

/* ---- safe environment ----------------------------------------------------------------------- */

/* Only text chunks: precompiled bytecode is not verified by Lua and can crash the process. */
static const char *const safe_prelude =
    "local _load, _loadfile, select, error = load, loadfile, select, error\n"
    "load = function(chunk, name, mode, ...)\n"
    "  if select('#', ...) > 0 then return _load(chunk, name, 't', ...) end\n"
    "  return _load(chunk, name, 't')\n"
    "end\n"
    "loadfile = function(file, mode, ...)\n"
    "  if file == nil then error('loadfile: a file name is required', 2) end\n"
    "  if select('#', ...) > 0 then return _loadfile(file, 't', ...) end\n"
    "  return _loadfile(file, 't')\n"
    "end\n"
    "dofile = function(file)\n"
    "  if file == nil then error('dofile: a file name is required', 2) end\n"
    "  return assert(_loadfile(file, 't'))()\n"
    "end\n";

static void keep_fields(lua_State *L, const char *lib, const char *const *keep) {
    lua_getglobal(L, lib);
    lua_newtable(L);
    for (int i = 0; keep[i]; i++) {
        lua_getfield(L, -2, keep[i]);
        lua_setfield(L, -2, keep[i]);
    }
    lua_setglobal(L, lib);
    lua_pop(L, 1);
}

/* Runs inside lua_pcall (tp_lua_new): library loading can raise memory errors. */
static int setup_state(lua_State *L) {
    tp_lua *rt = lua_touserdata(L, 1);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},          {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},   {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},    {LUA_OSLIBNAME, luaopen_os},
        {LUA_IOLIBNAME, luaopen_io},        {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* os and io only for clocks, dates and printing: no files, processes or environment edits */
    static const char *const os_keep[] = {"clock", "date", "difftime", "time", "getenv", NULL};
    static const char *const io_keep[] = {"write", "stdout", "stderr", NULL};
    keep_fields(L, "os", os_keep);
    keep_fields(L, "io", io_keep);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getglobal(L, "os");
    lua_setfield(L, -2, "os");
    lua_getglobal(L, "io");
    lua_setfield(L, -2, "io");
    lua_pop(L, 1);

    /* require: Lua files only (no C modules), and the harness module from preload */
    lua_getglobal(L, "package");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_getfield(L, -1, "searchers");
    lua_pushnil(L);
    lua_rawseti(L, -2, 4);
    lua_pushnil(L);
    lua_rawseti(L, -2, 3);
    lua_pop(L, 1);
    const char *extra_path = getenv("TELEPATHY_LUA_PATH");
    lua_pushfstring(L, "%s%s./?.lua;./lib/?.lua;./experiments/lib/?.lua",
                    extra_path ? extra_path : "", extra_path ? ";" : "");
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_telepathy);
    lua_setfield(L, -2, "telepathy");
    lua_pop(L, 2);

    if (luaL_loadbufferx(L, safe_prelude, strlen(safe_prelude), "=(telepathy prelude)", "t") !=
        LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);

    /* scripts replay: the random functions start from the run seed */
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)rt->opts.seed);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 0;
}

tp_status tp_lua_new(tp_lua **out, const tp_lua_opts *opts, tp_err *err) {
    *out = NULL;
    tp_lua *rt = calloc(1, sizeof *rt);
    if (!rt) return tp_errf(err, TP_ENOMEM, "lua: out of memory");
    if (opts) rt->opts = *opts;
    if (!rt->opts.has_seed && rt->opts.config)
        rt->opts.seed = tp_config_get_int(rt->opts.config, "run.seed");
    const char *db = rt->opts.db_path;
    if (!db && rt->opts.config) db = tp_config_get(rt->opts.config, "paths.results");
    rt->db_path = db ? tp_strdup(db) : NULL;
    rt->L = luaL_newstate();
    if (!rt->L || (db && !rt->db_path)) {
        tp_lua_free(rt);
        return tp_errf(err, TP_ENOMEM, "lua: cannot create a state (out of memory)");
    }
    lua_pushlightuserdata(rt->L, rt);
    lua_setfield(rt->L, LUA_REGISTRYINDEX, RUNTIME_KEY);
    lua_pushcfunction(rt->L, setup_state);
    lua_pushlightuserdata(rt->L, rt);
    if (lua_pcall(rt->L, 1, 0, 0) != LUA_OK) {
        tp_errf(err, TP_ESCRIPT, "lua: setting up the state: %s", lua_tostring(rt->L, -1));
        tp_lua_free(rt);
        return TP_ESCRIPT;
    }
    *out = rt;
    return TP_OK;
}

void tp_lua_free(tp_lua *rt) {
    if (!rt) return;
    if (rt->L) lua_close(rt->L); /* runs __gc of every userdata first */
    tp_store_close(rt->store);
    free(rt->db_path);
    free(rt->traceback);
    free(rt);
}

lua_State *tp_lua_state(tp_lua *rt) {
    return rt->L;
}

tp_lua *tp_lua_from_state(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, RUNTIME_KEY);
    tp_lua *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return rt;
}

const struct tp_config *tp_lua_config(const tp_lua *rt) {
    return rt->opts.config;
}

tp_status tp_lua_registry(tp_lua *rt, struct tp_registry **out, tp_err *err) {
    if (!rt->opts.registry && rt->opts.registry_fn)
        TP_TRY(rt->opts.registry_fn(rt->opts.registry_ctx, &rt->opts.registry, err));
    *out = rt->opts.registry;
    return TP_OK;
}

tp_status tp_lua_store(tp_lua *rt, struct tp_store **out, tp_err *err) {
    if (!rt->store) {
        if (!rt->db_path)
            return tp_errf(err, TP_EINVAL,
                           "tp.query: no results db configured (set [paths] "
                           "results in telepathy.ini or pass --db)");
        struct stat sb;
        if (stat(rt->db_path, &sb) != 0 && errno == ENOENT) {
            /* a project with no runs yet: create the empty schema so queries return no rows */
            tp_store *rw;
            TP_TRY(tp_store_open(&rw, rt->db_path, TP_STORE_RW, err));
            tp_store_close(rw);
        }
        TP_TRY(tp_store_open(&rt->store, rt->db_path, TP_STORE_RO, err));
    }
    *out = rt->store;
    return TP_OK;
}

/* ---- running scripts ------------------------------------------------------------------------ */

/* Message handler: appends the traceback while the failing frames still exist. */
static int msgh(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static tp_status call_chunk(tp_lua *rt, int nargs, tp_err *err) {
    lua_State *L = rt->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, 0, base);
    lua_remove(L, base);
    if (rc == LUA_OK) return TP_OK;
    const char *tb = lua_tostring(L, -1);
    free(rt->traceback);
    rt->traceback = tp_strdup(tb ? tb : "(no message)");
    tp_errf(err, rc == LUA_ERRMEM ? TP_ENOMEM : TP_ESCRIPT, "%s", tb ? tb : "(no message)");
    lua_pop(L, 1);
    return rc == LUA_ERRMEM ? TP_ENOMEM : TP_ESCRIPT;
}

static tp_status load_failed(tp_lua *rt, int rc, const char *what, tp_err *err) {
    const char *msg = lua_tostring(rt->L, -1);
    free(rt->traceback);
    rt->traceback = tp_strdup(msg ? msg : "?");
    tp_status st = rc == LUA_ERRFILE ? TP_EIO : rc == LUA_ERRMEM ? TP_ENOMEM : TP_ESCRIPT;
    tp_errf(err, st, "%s%s", msg ? msg : "?",
            rc == LUA_ERRFILE ? "" : (rc == LUA_ERRSYNTAX ? " (syntax error)" : ""));
    (void)what;
    lua_pop(rt->L, 1);
    return st;
}

tp_status tp_lua_run_file(tp_lua *rt, const char *path, int argc, char **argv, tp_err *err) {
    lua_State *L = rt->L;
    free(rt->traceback);
    rt->traceback = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tp_errf(err, TP_EIO, "%s: cannot open the script: %s", path, strerror(errno));
    fclose(f);
    /* arg: arg[0] = script, arg[1..] = its arguments (like the stand-alone lua) */
    lua_createtable(L, argc, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    int rc = luaL_loadfilex(L, path, "t");
    if (rc != LUA_OK) return load_failed(rt, rc, path, err);
    for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
    return call_chunk(rt, argc, err);
}

tp_status tp_lua_run_string(tp_lua *rt, const char *chunkname, const char *code, tp_err *err) {
    free(rt->traceback);
    rt->traceback = NULL;
    int rc = luaL_loadbufferx(rt->L, code, strlen(code), chunkname, "t");
    if (rc != LUA_OK) return load_failed(rt, rc, chunkname, err);
    return call_chunk(rt, 0, err);
}

const char *tp_lua_traceback(const tp_lua *rt) {
    return rt->traceback ? rt->traceback : "";
}
