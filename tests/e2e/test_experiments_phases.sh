#!/bin/bash
# test_experiments_phases.sh — experiments/phases/phase01–phase19 and all.lua run to completion
# offline on the tiny models and write the expected number of runs (phase 3 runs 3 and 3.1,
# phase 15 runs VQ, FSQ and continuous; phase 4 is phase 3.1's configuration and phase 7 is
# phase 6's, so all.lua's 22 calls make 20 runs); all.lua prints the phase comparison table;
# a bad switch stops a script with a clear message. Failed runs are only known capability gaps.
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
# the phase scripts one after another on one db (phase 4 finds phase 3.1's run and phase 7
# phase 6's), then all.lua on the same db: every run is there already, all 22 calls are skipped
total=0
for f in "$SRC"/experiments/phases/phase[01][0-9]_*.lua; do
  name=$(basename "$f")
  case $name in
    phase03_*) want=2 new=2 ;;
    phase04_*|phase07_*) want=1 new=0 ;;
    phase15_*) want=3 new=3 ;;
    *) want=1 new=1 ;;
  esac
  total=$((total + new))
  run_script "phases/$name" $want phases $total
done
n=$(ls "$SRC"/experiments/phases/phase[01][0-9]_*.lua | wc -l)
[ "$n" = 19 ] || { echo "FAIL: $n phase scripts, expected 19"; fail=1; }
run_script phases/all.lua 20 phases 20
grep -q '^phase 16 (= exp001) *skipped ' "$work/all.out" ||
  { echo "FAIL: all.lua did not skip phase 16's finished run"; fail=1; }
out="$work/all.out"
rows=$(grep -c '^| [0-9][0-9]* | ' "$out")
[ "$rows" = 22 ] || { echo "FAIL: all.lua's table has $rows phase rows, expected 22"; fail=1; }
grep -q '^| 16 | phase 16 (= exp001) | .* | 93.46 | ' "$out" ||
  { echo "FAIL: all.lua's table lacks phase 16 beside the study's 93.46"; fail=1; }

# models=real (the default) loads the INI's [models] aliases sender/receiver and records the runs
# under the study's names llama/mistral; layers of a non-32-layer sender are scaled with a note
"$T" run "$SRC/experiments/phases/phase16_sst2_signal_check.lua" --db "$work/real.db" \
  --set "paths.data=$SHARED/data" --set "models.sender=$work/models/sender" \
  --set "models.receiver=$work/models/receiver" -- budget=2 eval_n=8 >"$work/real.out" 2>&1 ||
  { echo "FAIL: models=real via INI aliases:"; tail -5 "$work/real.out"; fail=1; }
grep -q "^study: llama has 4 layers, not the study's 32" "$work/real.out" ||
  { echo "FAIL: no layer-scaling note for the 4-layer sender"; fail=1; }
cat > "$work/who.lua" <<'LUA'
local tp = require "telepathy"
for _, r in ipairs(tp.query("SELECT sender, receiver, status FROM runs")) do
  print(r.sender .. " " .. r.receiver .. " " .. r.status)
end
LUA
"$T" run "$work/who.lua" --db "$work/real.db" >"$work/who.out" 2>&1
grep -qx "llama mistral done" "$work/who.out" ||
  { echo "FAIL: the real-mode run is not recorded as llama -> mistral done:"; cat "$work/who.out"; fail=1; }

# a wrong switch is an error naming it, before anything runs
"$T" run "$SRC/experiments/phases/phase16_sst2_signal_check.lua" --db "$work/bad.db" \
  -- models=tiny budgt=2 >"$work/bad.out" 2>&1
rc=$?
[ $rc = 1 ] || { echo "FAIL: a bad switch exited $rc, expected 1"; fail=1; }
grep -q "unknown switch 'budgt'" "$work/bad.out" ||
  { echo "FAIL: no 'unknown switch' message:"; cat "$work/bad.out"; fail=1; }
finish
