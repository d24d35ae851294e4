#!/bin/bash
# quickstart.sh — `make demo` end to end: scripts/demo.sh makes the two tiny models, runs
# experiments/quickstart.lua on a fresh results.db and prints the table; the bridge rows must beat
# chance and the baselines must be recorded as runs of their own. Re-running the script on the
# same db skips every finished configuration (no new runs, same table).
# Env (set by ctest): TELEPATHY, TP_BUILD_DIR, TP_SOURCE_DIR, TELEPATHY_PLUGIN_PATH.
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
SRC=${TP_SOURCE_DIR:?}
BUILD=${TP_BUILD_DIR:?}
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset TELEPATHY_CONFIG
cd "$work" || exit 1

start=$(date +%s)
if ! bash "$SRC/scripts/demo.sh" "$BUILD" "$work/demo" >"$work/out" 2>"$work/err"; then
  echo "FAIL: demo.sh exited non-zero"; sed 's/^/  /' "$work/err" | tail -20; exit 1
fi
secs=$(( $(date +%s) - start ))
cat "$work/out"
for want in "| perceiver | " "| sender_direct | " "| receiver_direct | " "(n=2)"; do
  grep -qF -- "$want" "$work/out" || { echo "FAIL: table lacks '$want'"; fail=1; }
done
# the bridge's mean accuracy over the 2 seeds: > 70% (chance is 50% on 64 balanced rows)
acc=$(sed -n 's/^| perceiver | \([0-9.]*\) ± .*/\1/p' "$work/out")
if [ -z "$acc" ] || ! awk -v a="$acc" 'BEGIN { exit !(a > 70) }'; then
  echo "FAIL: perceiver mean accuracy '$acc' not above 70%"; fail=1
fi

cat > "$work/count.lua" <<'LUA'
local tp = require "telepathy"
local r = tp.query("SELECT COUNT(*) AS n, SUM(status = 'done') AS d FROM runs")[1]
print("runs " .. r.n .. " done " .. r.d)
LUA
"$T" run "$work/count.lua" --db "$work/demo/results.db" >"$work/c1" 2>&1
grep -qx "runs 4 done 4" "$work/c1" || { echo "FAIL: expected 4 done runs:"; cat "$work/c1"; fail=1; }

# re-run: everything is skipped
"$T" run "$SRC/experiments/quickstart.lua" --db "$work/demo/results.db" -- "$work/demo/models" \
  >"$work/out2" 2>"$work/err2" || { echo "FAIL: re-run failed"; cat "$work/err2"; fail=1; }
n_skip=$(grep -c " skipped " "$work/out2")
[ "$n_skip" = 6 ] || { echo "FAIL: re-run skipped $n_skip of 6 configurations"; cat "$work/out2"; fail=1; }
"$T" run "$work/count.lua" --db "$work/demo/results.db" >"$work/c2" 2>&1
grep -qx "runs 4 done 4" "$work/c2" || { echo "FAIL: re-run added runs"; cat "$work/c2"; fail=1; }
echo "demo took ${secs}s"
exit $fail
