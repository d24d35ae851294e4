#!/bin/bash
# kill_resume.sh — a `telepathy run` process killed with SIGKILL after its first checkpoint is
# recorded `interrupted` by the next process, which resumes the run from that checkpoint (the
# script sees status "resumed") and ends with exactly the result of an uninterrupted run (same
# accuracy, same final loss, same predictions).
# Env (set by ctest): TELEPATHY, TELEPATHY_PLUGIN_PATH.
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
fail=0
work=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
pid=0
unset TELEPATHY_CONFIG
cd "$work" || exit 1
"$T" make-tiny "$work/s" --arch llama --seed 1 >/dev/null || exit 1
"$T" make-tiny "$work/r" --arch mistral --seed 2 >/dev/null || exit 1
cat > "$work/train.lua" <<'LUA'
local tp = require "telepathy"
local s = tp.model{path = arg[1] .. "/s", alias = "s"}
local r = tp.model{path = arg[1] .. "/r", alias = "r"}
local res = assert(tp.run{sender = s, receiver = r, task = "toy", steps = 120, batch = 8,
  lr = 2e-3, seed = 9, checkpoint_every = 10, task_options = {n_train = 128, n_eval = 32},
  bridge_options = {tokens = 4, depth = 1, heads = 4}})
print(string.format("status %s from %d acc %.6f loss %.9g", res.status, res.resumed_from_step,
  res.accuracy, res.final_loss))
local p = tp.query("SELECT group_concat(prediction || ':' || quote(score), ',') AS p FROM " ..
  "(SELECT * FROM predictions WHERE run_id = ? ORDER BY CAST(example_id AS INTEGER))", res.run_id)
print("preds " .. p[1].p)
LUA
cat > "$work/ckpts.lua" <<'LUA'
local tp = require "telepathy"
print(tp.query("SELECT COUNT(*) AS n FROM artifacts WHERE kind = 'checkpoint'")[1].n)
LUA
"$T" run "$work/train.lua" --db "$work/straight.db" -- "$work" >"$work/ref" 2>&1 || {
  echo "FAIL: uninterrupted run failed"; cat "$work/ref"; exit 1; }
"$T" run "$work/train.lua" --db "$work/kill.db" -- "$work" >"$work/victim" 2>&1 &
pid=$!
killed=0
for _ in $(seq 1 600); do
  if [ -f "$work/kill.db" ]; then
    n=$("$T" run "$work/ckpts.lua" --db "$work/kill.db" 2>/dev/null)
    if [ "${n:-0}" -ge 1 ] 2>/dev/null; then kill -9 $pid; killed=1; break; fi
  fi
  sleep 0.05
done
wait $pid 2>/dev/null
[ $killed = 1 ] || { echo "FAIL: never saw a checkpoint to kill after"; exit 1; }
grep -q "^status" "$work/victim" && { echo "FAIL: the victim finished before the kill"; exit 1; }
"$T" run "$work/train.lua" --db "$work/kill.db" -- "$work" >"$work/resumed" 2>&1 || {
  echo "FAIL: the resumed run failed"; cat "$work/resumed"; exit 1; }
cat "$work/resumed" | head -1
grep -q "^status resumed from [1-9]" "$work/resumed" || { echo "FAIL: not resumed"; fail=1; }
ref=$(grep "^status" "$work/ref" | sed 's/^status [a-z]* from [0-9]* //')
got=$(grep "^status" "$work/resumed" | sed 's/^status [a-z]* from [0-9]* //')
[ "$ref" = "$got" ] || { echo "FAIL: resumed '$got' vs uninterrupted '$ref'"; fail=1; }
cmp -s <(grep "^preds" "$work/ref") <(grep "^preds" "$work/resumed") || {
  echo "FAIL: predictions differ"; fail=1; }
exit $fail
