/* test_lua.c — the Lua runtime: runtime and syntax errors name file:line with a traceback;
 * tp.query binds parameters (an injection string stays a literal) and cannot write through its
 * read-only connection; tp.config is visible and read-only; tp.plugins() mirrors the registry;
 * userdata handles release once; the sandbox lacks files/processes/bytecode; math.random follows
 * the run seed; extensions registered with tp_lua_register_extra appear in the module. */
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/config.h"
#include "plugin/loader.h"
#include "script/lua_runtime.h"
#include "store/store.h"
#include "tp_test.h"

static const char *write_file(const char *name, const char *text) {
    static char paths[4][600];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 600, "%s/%s", tp_test_tmpdir(), name);
    FILE *f = fopen(p, "w");
    TP_CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

/* A results db with two runs (task toy / sst2) and one result. */
static const char *make_db(void) {
    static char path[600];
    snprintf(path, sizeof path, "%s/lua.db", tp_test_tmpdir());
    unlink(path);
    tp_store *s = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_store_open(&s, path, TP_STORE_RW, &err) == TP_OK, "%s", err.msg);
    if (!s) return path;
    tp_run_meta m = {0};
    m.config_json = "{}";
    m.git_dirty = -1;
    const char *tasks[2] = {"toy", "sst2"}, *hashes[2] = {"h1", "h2"};
    for (int i = 0; i < 2; i++) {
        m.task = tasks[i];
        m.config_hash = hashes[i];
        m.seed = 40 + i;
        int64_t id;
        TP_CHECK(tp_store_run_begin(s, &m, &id, NULL, &err) == TP_OK);
        tp_result_row r = {"accuracy", 0.5 + 0.25 * i, NAN, NAN, NULL, 100, "first_token", NULL};
        TP_CHECK(tp_store_results_add(s, id, &r, 1, &err) == TP_OK);
        TP_CHECK(tp_store_run_finish(s, id, TP_RUN_DONE, NULL, NULL, &err) == TP_OK);
    }
    tp_store_close(s);
    return path;
}

static tp_config *make_config(const char *db) {
    tp_config *c = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_config_defaults(0, &c, &err) == TP_OK, "%s", err.msg);
    if (c && db)
        TP_CHECKF(tp_config_set(c, "paths.results", db, TP_ORIGIN_CLI, "--db", &err) == TP_OK, "%s",
                  err.msg);
    if (c) TP_CHECK(tp_config_set(c, "run.seed", "7", TP_ORIGIN_CLI, "--set", &err) == TP_OK);
    return c;
}

static tp_lua *new_rt(tp_config *c, tp_registry *reg) {
    tp_lua_opts o = {0};
    o.config = c;
    o.registry = reg;
    tp_lua *rt = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_lua_new(&rt, &o, &err) == TP_OK, "%s", err.msg);
    return rt;
}

/* Runs code; on failure prints the error and returns the status. */
static tp_status run(tp_lua *rt, const char *code) {
    tp_err err = {0};
    tp_status st = tp_lua_run_string(rt, "=(test)", code, &err);
    if (st != TP_OK) fprintf(stderr, "  lua: %s\n", err.msg);
    return st;
}

/* ---- errors --------------------------------------------------------------------------------- */

static void test_runtime_error_names_file_line(void) {
    tp_lua *rt = new_rt(NULL, NULL);
    if (!rt) return;
    const char *p = write_file("boom.lua", "local tp = require 'telepathy'\n"
                                           "local function inner()\n"
                                           "  error('boom: ' .. tp.version)\n"
                                           "end\n"
                                           "inner()\n");
    tp_err err = {0};
    TP_CHECK(tp_lua_run_file(rt, p, 0, NULL, &err) == TP_ESCRIPT);
    TP_CHECKF(strstr(err.msg, "boom.lua:3: boom: ") && strstr(err.msg, "stack traceback:") &&
                  strstr(err.msg, "boom.lua:5:") && strstr(err.msg, "in local 'inner'"),
              "%s", err.msg);
    TP_CHECK(!strcmp(tp_lua_traceback(rt), err.msg));

    p = write_file("obj.lua", "error({code = 1})\n");
    TP_CHECK(tp_lua_run_file(rt, p, 0, NULL, &err) == TP_ESCRIPT);
    TP_CHECKF(strstr(err.msg, "error object is a table value"), "%s", err.msg);

    p = write_file("syntax.lua", "local x = 1\nx = = 2\n");
    TP_CHECK(tp_lua_run_file(rt, p, 0, NULL, &err) == TP_ESCRIPT);
    TP_CHECKF(strstr(err.msg, "syntax.lua:2:"), "%s", err.msg);

    char missing[640];
    snprintf(missing, sizeof missing, "%s/nope.lua", tp_test_tmpdir());
    TP_CHECK(tp_lua_run_file(rt, missing, 0, NULL, &err) == TP_EIO);
    TP_CHECKF(strstr(err.msg, "nope.lua"), "%s", err.msg);

    /* a good script after failures runs, with its arguments in `arg` and `...` */
    p = write_file("args.lua", "local a, b = ...\n"
                               "assert(a == 'x' and b == 'y' and arg[1] == 'x' and #arg == 2)\n"
                               "assert(arg[0]:match('args.lua$'))\n");
    char *argv[] = {"x", "y"};
    TP_CHECKF(tp_lua_run_file(rt, p, 2, argv, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(!strcmp(tp_lua_traceback(rt), ""));
    tp_lua_free(rt);
}

/* ---- tp.query ------------------------------------------------------------------------------- */

static void test_query_binds_parameters(void) {
    const char *db = make_db();
    tp_config *c = make_config(db);
    tp_lua *rt = new_rt(c, NULL);
    if (!rt) return;
    TP_CHECK(run(rt,
                 "local tp = require 'telepathy'\n"
                 "local r = tp.query('SELECT id, task, seed FROM runs ORDER BY id')\n"
                 "assert(#r == 2 and r[1].task == 'toy' and r[2].seed == 41)\n"
                 "assert(math.type(r[1].id) == 'integer')\n"
                 "r = tp.query('SELECT task FROM runs WHERE task = ? AND seed = ?', 'sst2', 41)\n"
                 "assert(#r == 1 and r[1].task == 'sst2')\n"
                 /* the classic injections match nothing and round-trip unchanged */
                 "local inj = {\"x' OR '1'='1\", \"toy'; DROP TABLE runs; --\", 'toy\" OR 1 --'}\n"
                 "for _, s in ipairs(inj) do\n"
                 "  assert(#tp.query('SELECT id FROM runs WHERE task = ?', s) == 0, s)\n"
                 "  assert(tp.query('SELECT ? AS s', s)[1].s == s)\n"
                 "end\n"
                 "assert(#tp.query('SELECT id FROM runs') == 2)\n"
                 "local v = tp.query('SELECT ? AS a, ? AS b, ? AS c, ? AS d, ?2 AS e', 1, 2.5, "
                 "nil, true)[1]\n"
                 "assert(v.a == 1 and v.b == 2.5 and v.c == nil and v.d == 1 and v.e == 2.5)\n"
                 "assert(math.type(v.a) == 'integer' and math.type(v.b) == 'float')\n"
                 "local r2 = tp.query('SELECT value FROM results r JOIN runs ON runs.id = "
                 "r.run_id WHERE runs.task = :t', 'sst2')\n"
                 "assert(r2[1].value == 0.75)\n"
                 "assert(#tp.query('SELECT 1 AS one; -- trailing comment') == 1)\n") == TP_OK);
    /* wrong counts and types are errors naming the script line */
    static const char *bad[][2] = {
        {"require('telepathy').query('SELECT ? AS a')", "1 parameter(s) but 0 value(s)"},
        {"require('telepathy').query('SELECT 1', 5)", "0 parameter(s) but 1 value(s)"},
        {"require('telepathy').query('SELECT ? AS a', {})", "cannot bind a table"},
        {"require('telepathy').query('SELEC 1')", "syntax error"},
        {"require('telepathy').query('SELECT 1; SELECT 2')", "one statement per call"},
        {"require('telepathy').query('')", "empty statement"},
    };
    for (int i = 0; i < 6; i++) {
        tp_err err = {0};
        TP_CHECK(tp_lua_run_string(rt, "@q.lua", bad[i][0], &err) == TP_ESCRIPT);
        TP_CHECKF(strstr(err.msg, bad[i][1]) && strstr(err.msg, "q.lua:1:"), "%s", err.msg);
    }
    tp_lua_free(rt);
    tp_config_free(c);
}

static void test_query_is_read_only(void) {
    const char *db = make_db();
    tp_config *c = make_config(db);
    tp_lua *rt = new_rt(c, NULL);
    if (!rt) return;
    static const char *writes[] = {
        "DELETE FROM runs",
        "UPDATE runs SET status = 'failed'",
        "INSERT INTO runs (config_json, config_hash, status, host, pid) VALUES ('{}', 'x', "
        "'done', 'h', 1)",
        "DROP TABLE results",
        "CREATE TABLE evil (x)",
        "PRAGMA query_only = 0",
        "PRAGMA user_version = 1",
        "ATTACH DATABASE 'evil.db' AS evil",
        "VACUUM",
        "REPLACE INTO results (run_id, metric, value) VALUES (1, 'accuracy', 1.0)",
    };
    for (size_t i = 0; i < sizeof writes / sizeof *writes; i++) {
        char code[512];
        snprintf(code, sizeof code,
                 "local ok, e = pcall(require('telepathy').query, %s%s%s)\n"
                 "assert(not ok, 'write accepted')\n"
                 "assert(tostring(e):find('read%%-only') or tostring(e):find('not authorized'),"
                 " e)\n",
                 "[[", writes[i], "]]");
        TP_CHECKF(run(rt, code) == TP_OK, "statement %s", writes[i]);
    }
    /* even after trying to switch query_only off, writes still fail */
    TP_CHECK(run(rt, "local tp = require 'telepathy'\n"
                     "pcall(tp.query, 'PRAGMA query_only = 0')\n"
                     "assert(not pcall(tp.query, 'DELETE FROM runs'))\n"
                     "assert(#tp.query('SELECT * FROM runs') == 2)\n") == TP_OK);
    tp_lua_free(rt);
    tp_config_free(c);
    TP_CHECK(access("evil.db", F_OK) != 0);
    sqlite3 *h;
    sqlite3_open(db, &h);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(h,
                       "SELECT count(*), sum(status = 'done'), (SELECT count(*) FROM results), "
                       "(SELECT count(*) FROM sqlite_master WHERE name = 'evil') FROM runs",
                       -1, &st, NULL);
    TP_CHECK(sqlite3_step(st) == SQLITE_ROW);
    TP_CHECK(sqlite3_column_int(st, 0) == 2 && sqlite3_column_int(st, 1) == 2 &&
             sqlite3_column_int(st, 2) == 2 && sqlite3_column_int(st, 3) == 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static void test_query_creates_missing_db(void) {
    char path[640];
    snprintf(path, sizeof path, "%s/fresh-for-lua.db", tp_test_tmpdir());
    unlink(path);
    tp_config *c = make_config(path);
    tp_lua *rt = new_rt(c, NULL);
    if (!rt) return;
    TP_CHECK(run(rt, "assert(#require('telepathy').query('SELECT * FROM runs') == 0)") == TP_OK);
    TP_CHECK(access(path, F_OK) == 0);
    tp_lua_free(rt);
    tp_config_free(c);
}

/* ---- tp.config, tp.plugins, tp.version, tp.log ---------------------------------------------- */

static void test_config_visible_and_read_only(void) {
    tp_config *c = make_config("/some/where/results.db");
    tp_lua *rt = new_rt(c, NULL);
    if (!rt) return;
    TP_CHECK(run(rt, "local tp = require 'telepathy'\n"
                     "assert(tp.config.paths.results == '/some/where/results.db')\n"
                     "assert(tp.config.run.seed == '7')\n"
                     "assert(tp.config.device ~= nil and tp.config.nosuch == nil)\n"
                     "local n = 0\n"
                     "for section, t in pairs(tp.config) do\n"
                     "  for k, v in pairs(t) do n = n + 1; assert(type(v) == 'string') end\n"
                     "end\n"
                     "assert(n >= 5, n)\n"
                     "local ok, e = pcall(function() tp.config.paths.results = 'x' end)\n"
                     "assert(not ok and e:find('tp.config.paths is read%-only'), e)\n"
                     "ok, e = pcall(function() tp.config.newsection = {} end)\n"
                     "assert(not ok and e:find('tp.config is read%-only'), e)\n"
                     "assert(not pcall(setmetatable, tp.config, nil))\n"
                     "assert(tp.config.paths.results == '/some/where/results.db')\n"
                     "assert(type(tp.version) == 'string' and #tp.version > 0)\n"
                     "tp.log('hello from', 'test', 42)\n") == TP_OK);
    tp_lua_free(rt);
    tp_config_free(c);
}

static void test_plugins_visible(void) {
    const char *dir = getenv("TELEPATHY_PLUGIN_PATH");
    tp_registry *reg = NULL;
    tp_err err = {0};
    TP_CHECK(tp_registry_new(&reg, &err) == TP_OK);
    if (!reg) return;
    if (dir && tp_registry_scan(reg, dir, &err) != TP_OK) {
        fprintf(stderr, "  note: plugin scan of %s failed (%s); checking an empty list\n", dir,
                err.msg);
        tp_registry_free(reg);
        tp_registry_new(&reg, &err);
    }
    tp_lua *rt = new_rt(NULL, reg);
    if (rt) {
        TP_CHECK(run(rt, "local tp = require 'telepathy'\n"
                         "plugins = tp.plugins()\n"
                         "for _, p in ipairs(plugins) do\n"
                         "  assert(p.kind == 'bridge' or p.kind == 'task' or p.kind == 'loss')\n"
                         "  assert(type(p.name) == 'string' and type(p.version) == 'string')\n"
                         "  assert(p.path:match('%.so$') and #p.sha256 == 64)\n"
                         "  assert(type(p.options) == 'table')\n"
                         "  for _, o in ipairs(p.options) do assert(o.name and o.type) end\n"
                         "end\n") == TP_OK);
        lua_State *L = tp_lua_state(rt);
        lua_getglobal(L, "plugins");
        int n = tp_registry_count(reg);
        TP_CHECKF(lua_istable(L, -1) && (int)luaL_len(L, -1) == n, "lua sees %d of %d plugins",
                  (int)luaL_len(L, -1), n);
        for (int i = 0; i < n && lua_istable(L, -1); i++) {
            lua_rawgeti(L, -1, i + 1);
            lua_getfield(L, -1, "name");
            lua_getfield(L, -2, "path");
            const tp_plugin *p = tp_registry_at(reg, i);
            TP_CHECK(!strcmp(lua_tostring(L, -2), p->desc.name));
            TP_CHECK(!strcmp(lua_tostring(L, -1), p->path));
            lua_pop(L, 3);
        }
        lua_pop(L, 1);
        if (dir && n == 0) fprintf(stderr, "  note: no plugins found in %s\n", dir);
        tp_lua_free(rt);
    }
    tp_registry_free(reg);
}

static tp_status failing_registry(void *ctx, tp_registry **out, tp_err *err) {
    (void)ctx;
    *out = NULL;
    return tp_errf(err, TP_EPLUGIN, "plugins/bad.so: wrong ABI version");
}

static void test_plugins_error_is_lua_error(void) {
    tp_lua_opts o = {0};
    o.registry_fn = failing_registry;
    tp_lua *rt = NULL;
    tp_err err = {0};
    TP_CHECK(tp_lua_new(&rt, &o, &err) == TP_OK);
    if (!rt) return;
    /* a script that never asks for plugins does not need them */
    TP_CHECK(run(rt, "assert(require('telepathy').version)") == TP_OK);
    TP_CHECK(tp_lua_run_string(rt, "@p.lua", "require('telepathy').plugins()", &err) == TP_ESCRIPT);
    TP_CHECKF(strstr(err.msg, "p.lua:1: tp.plugins: plugins/bad.so: wrong ABI"), "%s", err.msg);
    tp_lua_free(rt);
}

/* ---- userdata, sandbox, seed, extensions ---------------------------------------------------- */

static void test_results_handle(void) {
    const char *db = make_db();
    tp_lua *rt = new_rt(NULL, NULL);
    if (!rt) return;
    char code[2048];
    snprintf(code, sizeof code,
             "local tp = require 'telepathy'\n"
             "local keep\n"
             "do\n"
             "  local h <close> = tp.open_results(%s%s%s)\n"
             "  assert(tostring(h):find('telepathy.results'))\n"
             "  assert(#h:query('SELECT * FROM runs WHERE seed >= ?', 40) == 2)\n"
             "  keep = h\n"
             "end\n"
             "assert(tostring(keep) == 'telepathy.results(closed)')\n"
             "local ok, e = pcall(keep.query, keep, 'SELECT 1')\n"
             "assert(not ok and e:find('closed'), e)\n"
             "keep:close()  -- releasing twice is harmless\n"
             "ok, e = pcall(keep.query, 42, 'SELECT 1')\n"
             "assert(not ok and e:find('telepathy.results expected'), e)\n"
             "ok, e = pcall(tp.open_results, '/no/such/dir/x.db')\n"
             "assert(not ok and e:find('no results db there'), e)\n"
             "local h2 = tp.open_results(%s%s%s)\n"
             "assert(not pcall(h2.query, h2, 'DELETE FROM runs'))\n"
             "h2 = nil; collectgarbage(); collectgarbage()\n",
             "[[", db, "]]", "[[", db, "]]");
    TP_CHECK(run(rt, code) == TP_OK);
    tp_lua_free(rt);
}

static void test_sandbox(void) {
    tp_lua *rt = new_rt(NULL, NULL);
    if (!rt) return;
    TP_CHECK(run(rt, "assert(io.open == nil and io.popen == nil and io.lines == nil)\n"
                     "assert(os.execute == nil and os.remove == nil and os.exit == nil)\n"
                     "assert(debug == nil and package.loadlib == nil and package.cpath == '')\n"
                     "assert(type(os.clock()) == 'number' and type(io.write) == 'function')\n"
                     "local f, e = load(string.dump(function() return 1 end))\n"
                     "assert(f == nil and e:find('binary'), e)\n"
                     "assert(load('return 1 + 1')() == 2)\n"
                     "local env = {}\n"
                     "assert(load('x = 5', 'c', 't', env))(); assert(env.x == 5 and x == nil)\n"
                     "assert(not pcall(require, 'socket'))\n") == TP_OK);
    tp_lua_free(rt);
}

static double first_random(int64_t seed) {
    tp_lua_opts o = {0};
    o.seed = seed;
    o.has_seed = 1;
    tp_lua *rt = NULL;
    tp_err err = {0};
    if (tp_lua_new(&rt, &o, &err) != TP_OK) return -1;
    double v = -1;
    if (run(rt, "r = math.random(1, 1000000000)") == TP_OK) {
        lua_getglobal(tp_lua_state(rt), "r");
        v = lua_tonumber(tp_lua_state(rt), -1);
        lua_pop(tp_lua_state(rt), 1);
    }
    tp_lua_free(rt);
    return v;
}

static void test_random_follows_seed(void) {
    double a = first_random(7), b = first_random(7), c = first_random(8);
    TP_CHECK(a > 0 && a == b && a != c);
    /* without an explicit seed, the config's run.seed (7 here) is used */
    tp_config *cfg = make_config(NULL);
    tp_lua *rt = new_rt(cfg, NULL);
    if (rt) {
        TP_CHECK(run(rt, "r = math.random(1, 1000000000)") == TP_OK);
        lua_getglobal(tp_lua_state(rt), "r");
        TP_CHECK(lua_tonumber(tp_lua_state(rt), -1) == a);
        tp_lua_free(rt);
    }
    tp_config_free(cfg);
}

static tp_status extra_answer(lua_State *L, tp_lua *rt, tp_err *err) {
    (void)rt, (void)err;
    lua_pushinteger(L, 42);
    lua_setfield(L, -2, "answer");
    return TP_OK;
}

static tp_status extra_broken(lua_State *L, tp_lua *rt, tp_err *err) {
    (void)L, (void)rt;
    return tp_errf(err, TP_EIO, "cannot read thing.bin");
}

static void test_extensions(void) {
    tp_err err = {0};
    TP_CHECK(tp_lua_register_extra("answer", extra_answer, &err) == TP_OK);
    tp_lua *rt = new_rt(NULL, NULL);
    if (rt) {
        TP_CHECK(run(rt, "local tp = require 'telepathy'\n"
                         "assert(tp.answer == 42 and tp.query and tp.version)\n"
                         "assert(require('telepathy') == tp)\n") == TP_OK);
        tp_lua_free(rt);
    }
    TP_CHECK(tp_lua_register_extra("broken", extra_broken, &err) == TP_OK);
    rt = new_rt(NULL, NULL);
    if (rt) {
        TP_CHECK(tp_lua_run_string(rt, "@e.lua", "local tp = require 'telepathy'", &err) ==
                 TP_ESCRIPT);
        TP_CHECKF(strstr(err.msg, "e.lua:1:") && strstr(err.msg, "broken: cannot read thing.bin"),
                  "%s", err.msg);
        tp_lua_free(rt);
    }
    /* leave the process-wide list harmless for later cases */
    TP_CHECK(tp_lua_register_extra("broken", extra_answer, &err) == TP_OK);
}

TP_TEST_RUN(TP_CASE(test_runtime_error_names_file_line), TP_CASE(test_query_binds_parameters),
            TP_CASE(test_query_is_read_only), TP_CASE(test_query_creates_missing_db),
            TP_CASE(test_config_visible_and_read_only), TP_CASE(test_plugins_visible),
            TP_CASE(test_plugins_error_is_lua_error), TP_CASE(test_results_handle),
            TP_CASE(test_sandbox), TP_CASE(test_random_follows_seed), TP_CASE(test_extensions))
