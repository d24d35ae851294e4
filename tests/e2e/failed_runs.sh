#!/bin/bash
# failed_runs.sh — from a Lua script, each bad configuration (sender layer > N, M = 0 soft tokens,
# an unknown bridge, a receiver prompt longer than the receiver's max positions) makes tp.run
# return nil plus a clear message, is recorded `failed` with that error and the Lua traceback
# naming the script line, and the script goes on to the next configuration, which runs.
# Env (set by ctest): TELEPATHY, TELEPATHY_PLUGIN_PATH.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset TELEPATHY_CONFIG
cd "$work" || exit 1
"$T" make-tiny "$work/s" --arch llama --seed 1 >/dev/null || exit 1
"$T" make-tiny "$work/r" --arch mistral --seed 2 >/dev/null || exit 1
cat > "$work/bad.lua" <<'LUA'
local tp = require "telepathy"
local s = tp.model{path = arg[1] .. "/s", alias = "s"}
local r = tp.model{path = arg[1] .. "/r", alias = "r"}
local base = {sender = s, receiver = r, task = "toy", steps = 2, batch = 4,
              task_options = {n_train = 16, n_eval = 8}, bridge_options = {tokens = 2, depth = 1}}
local function with(extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end
local cases = {
  {"layer", with{layer = 99}},
  {"tokens", with{bridge_options = {tokens = 0}}},
  {"bridge", with{bridge = "percever"}},
  {"primer", with{primer = string.rep("topic ", 5000)}},
}
for _, c in ipairs(cases) do
  local res, err = tp.run(c[2])
  print(c[1] .. ": " .. tostring(res) .. " | " .. tostring(err))
end
local ok, err = tp.run(base)
print("good: " .. (ok and ok.status or ("FAILED " .. tostring(err))))
for _, row in ipairs(tp.query("SELECT status, error, traceback FROM runs ORDER BY id")) do
  print("row: " .. row.status .. " | " .. tostring(row.error):sub(1, 60) .. " | tb " ..
        tostring(row.traceback and row.traceback:match("bad%.lua:%d+") or "none"))
end
LUA
"$T" run "$work/bad.lua" --db "$work/r.db" -- "$work" >"$work/out" 2>"$work/err"
rc=$?
cat "$work/out"
[ $rc = 0 ] || { echo "FAIL: the script stopped (exit $rc)"; cat "$work/err"; fail=1; }
check() { grep -qF -- "$1" "$work/out" || { echo "FAIL: output lacks '$1'"; fail=1; }; }
check "layer: nil | layer = 99: the sender"
check "tokens: nil | bridge 'perceiver': option 'tokens': 0 is out of range"
check "bridge: nil | unknown bridge 'percever'; did you mean 'perceiver'?"
check "primer: nil | the receiver prompt needs"
check "good: done"
n_failed=$(grep -c "^row: failed | .* | tb bad.lua:[0-9]*$" "$work/out")
[ "$n_failed" = 4 ] || { echo "FAIL: $n_failed failed rows with error + traceback, expected 4"; fail=1; }
grep -q "^row: done" "$work/out" || { echo "FAIL: no done row"; fail=1; }
exit $fail
