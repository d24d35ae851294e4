#!/bin/bash
# test_experiments_phases.sh — experiments/phases/phase01–phase19 and all.lua run to completion
# offline on the tiny models and write the expected number of runs (phase 3 runs 3 and 3.1,
# phase 15 runs VQ, FSQ and continuous; in all.lua phase 4 is phase 3.1's configuration and
# phase 7 is phase 6's, so 22 calls make 20 runs); all.lua prints the phase comparison table;
# a bad switch stops a script with a clear message. Failed runs are only known capability gaps.
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
for f in "$SRC"/experiments/phases/phase[01][0-9]_*.lua; do
  name=$(basename "$f")
  case $name in
    phase03_*) want=2 ;;
    phase15_*) want=3 ;;
    *) want=1 ;;
  esac
  run_script "phases/$name" $want
done
n=$(ls "$SRC"/experiments/phases/phase[01][0-9]_*.lua | wc -l)
[ "$n" = 19 ] || { echo "FAIL: $n phase scripts, expected 19"; fail=1; }
run_script phases/all.lua 20
out="$work/all.out"
rows=$(grep -c '^| [0-9][0-9]* | ' "$out")
[ "$rows" = 22 ] || { echo "FAIL: all.lua's table has $rows phase rows, expected 22"; fail=1; }
grep -q '^| 16 | phase 16 (= exp001) | .* | 93.46 | ' "$out" ||
  { echo "FAIL: all.lua's table lacks phase 16 beside the study's 93.46"; fail=1; }

# a wrong switch is an error naming it, before anything runs
"$T" run "$SRC/experiments/phases/phase16_sst2_signal_check.lua" --db "$work/bad.db" \
  -- models=tiny budgt=2 >"$work/bad.out" 2>&1
rc=$?
[ $rc = 1 ] || { echo "FAIL: a bad switch exited $rc, expected 1"; fail=1; }
grep -q "unknown switch 'budgt'" "$work/bad.out" ||
  { echo "FAIL: no 'unknown switch' message:"; cat "$work/bad.out"; fail=1; }
finish
