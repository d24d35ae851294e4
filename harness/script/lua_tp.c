/* lua_tp.c — the core fields of the `telepathy` Lua module: tp.version, tp.config (a read-only
 * view of the resolved configuration), tp.plugins() and tp.log(...). */
#include <lauxlib.h>
#include <string.h>

#include "plugin/config.h"
#include "plugin/loader.h"
#include "plugin/options.h"
#include "script/lua_runtime.h"
#include "util/log.h"

#ifndef TP_VERSION
#define TP_VERSION "unknown"
#endif

/* ---- read-only tables ----------------------------------------------------------------------- */

static int ro_newindex(lua_State *L) {
    return luaL_error(L, "%s is read-only (change it in telepathy.ini or with --set key=value)",
                      lua_tostring(L, lua_upvalueindex(1)));
}

static int ro_next(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs(proxy) iterates the hidden data table */
static int ro_pairs(lua_State *L) {
    lua_pushcfunction(L, ro_next);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

static int ro_len(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)luaL_len(L, lua_upvalueindex(1)));
    return 1;
}

/* Replaces the table at the top of the stack with an empty proxy whose reads go to it and whose
 * writes raise "<what> is read-only". */
static void make_readonly(lua_State *L, const char *what) {
    int data = lua_gettop(L);
    lua_newtable(L); /* proxy */
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, data);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, what);
    lua_pushcclosure(L, ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, data);
    lua_pushcclosure(L, ro_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushvalue(L, data);
    lua_pushcclosure(L, ro_len, 1);
    lua_setfield(L, -2, "__len");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, data);
}

/* tp.config.<section>.<key> = value text, for every key of the resolved configuration. */
static void push_config(lua_State *L, const tp_config *c) {
    lua_newtable(L);
    int top = lua_gettop(L);
    int n = c ? tp_config_count(c) : 0;
    for (int i = 0; i < n; i++) {
        const char *key = tp_config_key_at(c, i);
        const char *dot = key ? strchr(key, '.') : NULL;
        const char *val = key ? tp_config_get(c, key) : NULL;
        if (!dot || !val) continue;
        lua_pushlstring(L, key, (size_t)(dot - key));
        if (lua_rawget(L, top) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushlstring(L, key, (size_t)(dot - key));
            lua_pushvalue(L, -2);
            lua_rawset(L, top);
        }
        lua_pushstring(L, val);
        lua_setfield(L, -2, dot + 1);
        lua_pop(L, 1);
    }
    /* make every section read-only, then the top level */
    lua_pushnil(L);
    while (lua_next(L, top)) {
        const char *section = lua_tostring(L, -2);
        lua_pushfstring(L, "tp.config.%s", section);
        lua_insert(L, -2);
        make_readonly(L, lua_tostring(L, -2));
        lua_pushvalue(L, -3); /* key */
        lua_insert(L, -2);
        lua_rawset(L, top); /* replacing an existing key's value during lua_next is allowed */
        lua_pop(L, 1);      /* the "tp.config.x" name */
    }
    make_readonly(L, "tp.config");
}

/* ---- tp.plugins() --------------------------------------------------------------------------- */

static void push_plugin(lua_State *L, const tp_plugin *p) {
    lua_createtable(L, 0, 8);
    lua_pushstring(L, tp_plugin_kind_name(p->desc.kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, p->desc.name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, p->desc.version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, p->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, p->desc.summary ? p->desc.summary : "");
    lua_setfield(L, -2, "summary");
    lua_pushstring(L, p->sha256);
    lua_setfield(L, -2, "sha256");
    lua_createtable(L, p->desc.n_options, 0);
    for (int i = 0; i < p->desc.n_options; i++) {
        const tp_option_spec *o = &p->desc.options[i];
        lua_createtable(L, 0, 7);
        lua_pushstring(L, o->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, tp_opt_type_name(o->type));
        lua_setfield(L, -2, "type");
        if (o->def) {
            lua_pushstring(L, o->def);
            lua_setfield(L, -2, "default");
        }
        if (o->min <= o->max && (o->type == TP_OPT_INT || o->type == TP_OPT_FLOAT)) {
            lua_pushnumber(L, o->min);
            lua_setfield(L, -2, "min");
            lua_pushnumber(L, o->max);
            lua_setfield(L, -2, "max");
        }
        if (o->choices) {
            lua_pushstring(L, o->choices);
            lua_setfield(L, -2, "choices");
        }
        lua_pushstring(L, o->doc ? o->doc : "");
        lua_setfield(L, -2, "doc");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "options");
}

static int l_plugins(lua_State *L) {
    tp_lua *rt = tp_lua_from_state(L);
    tp_err err = {0};
    tp_registry *reg = NULL;
    if (tp_lua_registry(rt, &reg, &err) != TP_OK) return luaL_error(L, "tp.plugins: %s", err.msg);
    int n = reg ? tp_registry_count(reg) : 0;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        push_plugin(L, tp_registry_at(reg, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- tp.log(...) ---------------------------------------------------------------------------- */

/* Arguments joined with tabs like print, prefixed with the script's file:line. */
static int l_log(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_where(L, 1);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    const char *where = lua_tostring(L, -2);
    tp_log(TP_LOG_INFO, "lua", "%s%s", where, lua_tostring(L, -1));
    return 0;
}

tp_status tp_lua_open_core(lua_State *L, tp_lua *rt, tp_err *err) {
    (void)err;
    lua_pushliteral(L, TP_VERSION);
    lua_setfield(L, -2, "version");
    push_config(L, tp_lua_config(rt));
    lua_setfield(L, -2, "config");
    lua_pushcfunction(L, l_plugins);
    lua_setfield(L, -2, "plugins");
    lua_pushcfunction(L, l_log);
    lua_setfield(L, -2, "log");
    return TP_OK;
}
