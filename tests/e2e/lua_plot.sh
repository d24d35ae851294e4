#!/usr/bin/env bash
# lua_plot.sh — tp.plot{} from a Lua script draws the same figure as `telepathy plot` from the
# script's results.db (the study's preserved results, imported), and a missing required field is
# a script error naming it. Skips without ../shared or gnuplot.
set -u
T=${TELEPATHY:?TELEPATHY must point at the binary}
S=${TP_SHARED_DIR:-}
if [ -z "$S" ] || [ ! -d "$S/preserved" ]; then
  echo "SKIP: ../shared/preserved not found (set TP_SHARED_DIR)"; exit 0
fi
if ! command -v gnuplot >/dev/null; then echo "SKIP: gnuplot not installed"; exit 0; fi
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
fail=0
"$T" import-preserved "$S/preserved" --db "$D/r.db" >"$D/imp.txt" 2>&1 || { echo "FAIL: import"; cat "$D/imp.txt"; exit 1; }
cat >"$D/plot.lua" <<LUA
local tp = require "telepathy"
local out = tp.plot{kind = "layers", experiment = "exp003_comprehensive_ablations",
                    origin = "study", series = "bridge", out = "$D/layers.png"}
print("plotted " .. out)
LUA
"$T" run "$D/plot.lua" --db "$D/r.db" >"$D/o.txt" 2>&1 || { echo "FAIL: tp.plot script"; cat "$D/o.txt"; fail=1; }
if [ "$(head -c 8 "$D/layers.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]; then
  echo "FAIL: $D/layers.png is not a PNG"; fail=1
fi
cat >"$D/bad.lua" <<'LUA'
local tp = require "telepathy"
tp.plot{kind = "layers"}
LUA
if "$T" run "$D/bad.lua" --db "$D/r.db" >"$D/b.txt" 2>&1; then echo "FAIL: missing 'out' accepted"; fail=1; fi
grep -q "'out'" "$D/b.txt" || { echo "FAIL: error does not name 'out'"; cat "$D/b.txt"; fail=1; }
grep -q "bad.lua:2" "$D/b.txt" || { echo "FAIL: error does not name bad.lua:2"; cat "$D/b.txt"; fail=1; }
[ $fail = 0 ] && echo "ok lua_plot"
exit $fail
