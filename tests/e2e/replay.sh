#!/bin/bash
# replay.sh — `telepathy replay` on tiny runs: a Perceiver run, a receiver-direct, a few-shot and
# a text-relay baseline replay bit-identical (losses, predictions, accuracy; exit 0 with --strict); a tampered stored
# prediction makes the verdict DIFFERS (and --strict exit 1); a changed commit is a warning; a
# missing run, the run's own db as target, and a run imported from the study are errors.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TELEPATHY_PLUGIN_PATH.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset TELEPATHY_CONFIG
cd "$work" || exit 1
"$T" make-tiny m/sender --arch llama --seed 1 >/dev/null || { echo "FAIL: make-tiny"; exit 1; }
"$T" make-tiny m/receiver --arch mistral --seed 2 >/dev/null || { echo "FAIL: make-tiny"; exit 1; }
cat > s.lua <<'LUA'
local tp = require "telepathy"
local s = tp.model{path = "m/sender", alias = "tiny_llama"}
local r = tp.model{path = "m/receiver", alias = "tiny_mistral"}
local task = {task = "toy", task_options = {n_train = 32, n_eval = 16}, eval_batch = 16}
local function with(a, b)
  local t = {}
  for k, v in pairs(a) do t[k] = v end
  for k, v in pairs(b) do t[k] = v end
  return t
end
tp.run(with(task, {sender = s, receiver = r, seed = 3, bridge = "perceiver",
  bridge_options = {tokens = 2, depth = 1, heads = 2}, steps = 12, batch = 4, lr = 2e-3}))
tp.run(with(task, {baseline = "receiver_direct", receiver = r}))
tp.run(with(task, {baseline = "fewshot", receiver = r, seed = 5, baseline_options = {k = 2}}))
tp.run(with(task, {baseline = "text_relay", sender = s, receiver = r,
  baseline_options = {summary_tokens = 2}}))
LUA
"$T" run s.lua --db r.db >run.txt 2>&1 || { echo "FAIL: the tiny runs"; cat run.txt; exit 1; }

check() { # file, pattern
  grep -Eq -- "$2" "$1" || { echo "FAIL: $1 lacks /$2/:"; cat "$1"; fail=1; }
}
"$T" replay 1 --db r.db --strict >o1.txt 2>e1.txt || { echo "FAIL: replay 1 --strict exited $?"; cat o1.txt e1.txt; fail=1; }
check o1.txt "^verdict +bit-identical"
check o1.txt "^config hash +same"
check o1.txt "training losses +12 of 12 steps bit-identical"
check o1.txt "predictions +16 of 16 examples identical"
"$T" replay 2 --db r.db --strict --into kept.db >o2.txt 2>e2.txt || { echo "FAIL: replay 2"; cat o2.txt e2.txt; fail=1; }
check o2.txt "^verdict +bit-identical"
check o2.txt "replay recorded in kept.db"
for id in 3 4; do
  "$T" replay $id --db r.db --strict >o2b.txt 2>&1 || { echo "FAIL: replay $id"; cat o2b.txt; fail=1; }
  check o2b.txt "^config hash +same"
  check o2b.txt "^verdict +bit-identical"
done
[ -s kept.db ] || { echo "FAIL: --into db not kept"; fail=1; }

# tamper with the original: a changed commit warns, a changed score is a difference
sqlite3 r.db "UPDATE runs SET git_commit = 'deadbeefcafe' WHERE id = 1;
              UPDATE predictions SET score = score + 0.5 WHERE run_id = 1 AND example_id =
              (SELECT example_id FROM predictions WHERE run_id = 1 LIMIT 1);"
"$T" replay 1 --db r.db --strict >o3.txt 2>e3.txt
rc=$?
[ "$rc" = 1 ] || { echo "FAIL: --strict on a differing replay exited $rc, expected 1"; fail=1; }
check o3.txt "^verdict +DIFFERS"
check o3.txt "predictions +15 of 16 examples identical"
check e3.txt "warning: code: the run was made by commit deadbeefcafe"

"$T" replay 99 --db r.db >o4.txt 2>&1 && { echo "FAIL: replay of a missing run succeeded"; fail=1; }
check o4.txt "has no run 99"
"$T" replay 1 --db r.db --into r.db >o5.txt 2>&1 && { echo "FAIL: replay into its own db"; fail=1; }
check o5.txt "replaying into the run's own db"
"$T" replay --db r.db >o6.txt 2>&1; [ $? = 2 ] || { echo "FAIL: missing RUN_ID not a usage error"; fail=1; }

mkdir -p pres/exp1
echo '{"checkpoint": "x", "num_samples": 2, "accuracy": 50.0, "correct": 1, "total": 2, "samples": []}' \
  > pres/exp1/eval_sst2_results.json
"$T" import-preserved pres --db r.db >o7.txt 2>&1 || { echo "FAIL: import"; cat o7.txt; fail=1; }
sid=$(sqlite3 r.db "SELECT id FROM runs WHERE origin = 'study'")
"$T" replay "$sid" --db r.db >o8.txt 2>&1 && { echo "FAIL: replay of a study run succeeded"; fail=1; }
check o8.txt "imported from the study"
exit $fail
