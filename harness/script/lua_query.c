/* lua_query.c — SQL from Lua scripts, always through READ-ONLY connections so a script cannot
 * change results.db: tp.query(sql, ...) on the configured results db, and
 * tp.open_results(path) -> a `telepathy.results` handle with :query(sql, ...) and :close() for
 * another file (e.g. a results shard). Values are bound as parameters (`?`, `?NNN`, `:name` by
 * position), never spliced into the SQL text. Rows come back as an array of tables keyed by
 * column name (SQL NULL = absent field). */
#include <lauxlib.h>
#include <sqlite3.h>
#include <string.h>

#include "script/lua_runtime.h"
#include "store/store.h"

#define STMT_MT    "telepathy.stmt"
#define RESULTS_MT "telepathy.results"

/* ---- statement box: owns a sqlite3_stmt while rows are pushed (a Lua memory error then still
 * finalizes it through __gc) --------------------------------------------------------------- */

typedef struct stmt_box {
    sqlite3_stmt *st;
} stmt_box;

static void stmt_release(stmt_box *b) {
    if (b && b->st) {
        sqlite3_finalize(b->st);
        b->st = NULL;
    }
}

static int stmt_gc(lua_State *L) {
    stmt_release(luaL_checkudata(L, 1, STMT_MT));
    return 0;
}

static stmt_box *push_stmt_box(lua_State *L) {
    stmt_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->st = NULL; /* safe empty state before anything is acquired */
    if (luaL_newmetatable(L, STMT_MT)) {
        lua_pushcfunction(L, stmt_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, stmt_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* ---- the query core: returns a status, never raises for SQL problems ----------------------- */

static void sql_brief(const char *sql, char *out, size_t cap) {
    size_t j = 0;
    const char *p = sql;
    for (; *p && j + 4 < cap; p++) {
        char c = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
        if (c == ' ' && (j == 0 || out[j - 1] == ' ')) continue;
        out[j++] = c;
    }
    if (*p) memcpy(out + j, "...", 3), j += 3;
    out[j] = 0;
}

static tp_status sql_fail(sqlite3 *db, int rc, const char *sql, const char *path, tp_err *err) {
    char brief[96];
    sql_brief(sql, brief, sizeof brief);
    int code = rc & 0xff;
    const char *hint = "";
    if (code == SQLITE_AUTH || code == SQLITE_READONLY)
        hint = " — scripts read results.db through a read-only connection (SELECT and read-only "
               "PRAGMAs only)";
    return tp_errf(err, TP_EDB, "%s (%s) in \"%s\" on %s%s", sqlite3_errmsg(db), sqlite3_errstr(rc),
                   brief, path, hint);
}

/* Binds Lua values first..first+n-1 to the statement's parameters in order. */
static tp_status bind_args(lua_State *L, sqlite3_stmt *st, int first, int n, tp_err *err) {
    int np = sqlite3_bind_parameter_count(st);
    if (np != n)
        return tp_errf(err, TP_EINVAL,
                       "the statement has %d parameter(s) but %d value(s) were given; write ? "
                       "where a value goes and pass the values after the SQL",
                       np, n);
    for (int i = 0; i < n; i++) {
        int idx = first + i, rc;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        case LUA_TBOOLEAN:
            rc = sqlite3_bind_int(st, i + 1, lua_toboolean(L, idx));
            break;
        case LUA_TNUMBER:
            rc = lua_isinteger(L, idx)
                     ? sqlite3_bind_int64(st, i + 1, (sqlite3_int64)lua_tointeger(L, idx))
                     : sqlite3_bind_double(st, i + 1, (double)lua_tonumber(L, idx));
            break;
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            rc = sqlite3_bind_text64(st, i + 1, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        }
        default:
            return tp_errf(err, TP_EINVAL,
                           "parameter %d: cannot bind a %s value (use a number, string, boolean "
                           "or nil)",
                           i + 1, luaL_typename(L, idx));
        }
        if (rc != SQLITE_OK)
            return tp_errf(err, TP_EDB, "parameter %d: %s", i + 1, sqlite3_errstr(rc));
    }
    return TP_OK;
}

static void push_column(lua_State *L, sqlite3_stmt *st, int c) {
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
        lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, c));
        break;
    case SQLITE_FLOAT:
        lua_pushnumber(L, (lua_Number)sqlite3_column_double(st, c));
        break;
    case SQLITE_NULL:
        lua_pushnil(L);
        break;
    default: { /* text and blobs as Lua strings */
        const void *p = sqlite3_column_blob(st, c);
        lua_pushlstring(L, p ? p : "", (size_t)sqlite3_column_bytes(st, c));
    }
    }
}

/* Prepares sql on s into box, binds the n values from `first`, and appends each row to the
 * table at index `out`. */
static tp_status query_core(lua_State *L, tp_store *s, const char *sql, size_t len, int first,
                            int n, stmt_box *box, int out, tp_err *err) {
    sqlite3 *db = tp_store_db(s);
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db, sql, (int)len, &box->st, &tail);
    if (rc != SQLITE_OK) return sql_fail(db, rc, sql, tp_store_path(s), err);
    if (!box->st) return tp_errf(err, TP_EINVAL, "empty statement");
    if (tail && *tail) { /* only whitespace and comments may follow the statement */
        sqlite3_stmt *next = NULL;
        rc = sqlite3_prepare_v2(db, tail, -1, &next, NULL);
        sqlite3_finalize(next);
        if (rc != SQLITE_OK || next)
            return tp_errf(err, TP_EINVAL,
                           "one statement per call; found more after the first: \"%.40s\"", tail);
    }
    TP_TRY(bind_args(L, box->st, first, n, err));
    int ncol = sqlite3_column_count(box->st);
    lua_Integer row = 0;
    while ((rc = sqlite3_step(box->st)) == SQLITE_ROW) {
        lua_createtable(L, 0, ncol);
        for (int c = 0; c < ncol; c++) {
            push_column(L, box->st, c);
            lua_setfield(L, -2, sqlite3_column_name(box->st, c));
        }
        lua_rawseti(L, out, ++row);
    }
    if (rc != SQLITE_DONE) return sql_fail(db, rc, sql, tp_store_path(s), err);
    return TP_OK;
}

/* Thin wrapper shared by tp.query and handle:query: SQL at sql_idx, values after it. */
static int query_on(lua_State *L, tp_store *s, int sql_idx, const char *who) {
    size_t len;
    const char *sql = luaL_checklstring(L, sql_idx, &len);
    int nvals = lua_gettop(L) - sql_idx;
    stmt_box *box = push_stmt_box(L);
    lua_newtable(L);
    int out = lua_gettop(L);
    tp_err err = {0};
    tp_status st = query_core(L, s, sql, len, sql_idx + 1, nvals, box, out, &err);
    stmt_release(box);
    lua_settop(L, out);
    if (st != TP_OK) return luaL_error(L, "%s: %s", who, err.msg);
    return 1;
}

static int l_query(lua_State *L) {
    tp_lua *rt = tp_lua_from_state(L);
    tp_store *s = NULL;
    tp_err err = {0};
    if (tp_lua_store(rt, &s, &err) != TP_OK) return luaL_error(L, "tp.query: %s", err.msg);
    return query_on(L, s, 1, "tp.query");
}

/* ---- telepathy.results handles -------------------------------------------------------------- */

typedef struct results_box {
    tp_store *s;
} results_box;

static void results_release(results_box *b) {
    if (b->s) {
        tp_store_close(b->s);
        b->s = NULL;
    }
}

static int results_gc(lua_State *L) {
    results_release(luaL_checkudata(L, 1, RESULTS_MT));
    return 0;
}

static int results_query(lua_State *L) {
    results_box *b = luaL_checkudata(L, 1, RESULTS_MT);
    if (!b->s) return luaL_error(L, "results:query: the handle is closed");
    return query_on(L, b->s, 2, "results:query");
}

static int results_tostring(lua_State *L) {
    results_box *b = luaL_checkudata(L, 1, RESULTS_MT);
    if (b->s)
        lua_pushfstring(L, "telepathy.results(%s)", tp_store_path(b->s));
    else
        lua_pushliteral(L, "telepathy.results(closed)");
    return 1;
}

static int l_open_results(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    results_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->s = NULL;
    luaL_setmetatable(L, RESULTS_MT);
    tp_err err = {0};
    if (tp_store_open(&b->s, path, TP_STORE_RO, &err) != TP_OK)
        return luaL_error(L, "tp.open_results: %s", err.msg);
    return 1;
}

tp_status tp_lua_open_query(lua_State *L, tp_lua *rt, tp_err *err) {
    (void)rt, (void)err;
    if (luaL_newmetatable(L, RESULTS_MT)) {
        static const luaL_Reg methods[] = {
            {"query", results_query}, {"close", results_gc}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, results_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, results_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, results_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_query);
    lua_setfield(L, -2, "query");
    lua_pushcfunction(L, l_open_results);
    lua_setfield(L, -2, "open_results");
    return TP_OK;
}
