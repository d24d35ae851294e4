#!/usr/bin/env bash
# cli_store.sh — the results-db subcommands end to end: `telepathy db migrate|check`, `ls`,
# `show` and `run` on real files, including an old (schema version 1) database that every
# command refuses until `db migrate`, a damaged file, script errors with file:line and
# traceback, and usage errors (exit 2) / failures (exit 1) / --help (exit 0).
set -uo pipefail
T=${TELEPATHY:?set TELEPATHY to the telepathy binary}
B=${TP_BUILD_DIR:?set TP_BUILD_DIR}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
unset TELEPATHY_CONFIG
bad=0
fail() { echo "FAIL cli_store: $*" >&2; bad=1; }
# expect CODE PATTERN CMD...: exit status CODE and PATTERN (grep -E) in stdout+stderr
expect() {
  local code=$1 pat=$2; shift 2
  "$@" >out.txt 2>&1
  local rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $(cat out.txt)"
  [ -z "$pat" ] || grep -Eq -- "$pat" out.txt || fail "'$*' output lacks /$pat/: $(cat out.txt)"
}

# --help and usage errors
for c in run db ls show; do expect 0 "usage: telepathy $c" "$T" "$c" --help; done
expect 2 "missing the script" "$T" run
expect 2 "unknown option '--bogus'" "$T" run x.lua --bogus
expect 2 "unknown section" "$T" run x.lua --set nosuch.key=1
expect 2 "missing the action" "$T" db
expect 2 "unknown action 'frob'" "$T" db frob
expect 2 "needs a value" "$T" db check --db
expect 2 "missing RUN" "$T" show
expect 2 "unexpected argument" "$T" show 1 2
expect 2 "--status: expected" "$T" ls --status nope
expect 2 "--limit: expected" "$T" ls --limit 0

# missing files are failures naming the file
expect 1 "none.db: no results db there" "$T" ls --db none.db
expect 1 "none.db: no results db there" "$T" show 1 --db none.db
expect 1 "none.db: no results db there" "$T" db migrate --db none.db
expect 1 "nope.lua: cannot open the script" "$T" run nope.lua --db r.db

# an old database: refused until migrated, then fully usable
"$B/tests/test_store" --make-v1 old.db || fail "make-v1"
expect 1 "older than this telepathy's.*telepathy db migrate --db old.db" "$T" ls --db old.db
expect 1 "user_version 1 is older" "$T" db check --db old.db
expect 0 "schema version 1 -> [0-9]+" "$T" db migrate --db old.db
grep -q "applied 002_splits_environment.sql" out.txt || fail "migrate did not list 002"
expect 0 "already at schema version [0-9]+" "$T" db migrate --db old.db
expect 0 "old.db: ok" "$T" db check --db old.db
expect 0 "^ *1  done +toy +perceiver +3  accuracy=0.8125  2026-01-02 03:04:05" "$T" ls --db old.db
expect 0 "run 1  done" "$T" show 1 --db old.db
grep -Eq "test +accuracy +0.8125" out.txt || fail "show lacks the migrated result: $(cat out.txt)"
expect 0 "config hash +cafe0123" "$T" show cafe --db old.db
expect 1 "no run '99'" "$T" show 99 --db old.db
expect 0 "no runs match" "$T" ls --db old.db --status failed

# a damaged file
head -c 4096 /dev/urandom >junk.db
expect 1 "junk.db" "$T" db check --db junk.db
expect 1 "junk.db" "$T" ls --db junk.db

# scripts: results visible through tp.query; errors name file:line with a traceback
cat >ok.lua <<'LUA'
local tp = require "telepathy"
local rows = tp.query("SELECT task, value FROM runs JOIN results ON results.run_id = runs.id WHERE task = ?", arg[1])
print("rows", #rows, rows[1] and rows[1].value)
print("seed", tp.config.run.seed, math.type(math.random(10)))
LUA
expect 0 "rows	1	0.8125" "$T" run ok.lua --db old.db --seed 9 -- toy
grep -q "seed	9	integer" out.txt || fail "seed not passed: $(cat out.txt)"
cat >bad.lua <<'LUA'
local tp = require "telepathy"
local function check(x)
  if x < 2 then error("x too small: " .. x) end
end
check(1)
LUA
expect 1 "bad.lua:3: x too small: 1" "$T" run bad.lua --db old.db
grep -q "stack traceback:" out.txt || fail "no traceback: $(cat out.txt)"
grep -q "bad.lua:5: in main chunk" out.txt || fail "traceback lacks the caller line: $(cat out.txt)"
cat >write.lua <<'LUA'
require("telepathy").query("DELETE FROM runs")
LUA
expect 1 "write.lua:1: tp.query: .*read-only" "$T" run write.lua --db old.db
expect 0 "^ *1  done" "$T" ls --db old.db

[ $bad = 0 ] && echo "ok cli_store"
exit $bad
