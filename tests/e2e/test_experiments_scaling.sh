#!/bin/bash
# test_experiments_scaling.sh — experiments/sweeps/inverse_token_scaling.lua runs to completion
# offline on the tiny models: M in {2..128} x {banking77, passkey, sst2, agnews, trec} x one seed
# = 35 runs, its comparison table has a row per (task, M), and the results.db table covers the
# token counts. Failed runs are only known capability gaps (passkey is a generation task).
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
run_script sweeps/inverse_token_scaling.lua 35
out="$work/inverse_token_scaling.out"
rows=$(grep -Ec '^\| (banking77|passkey|sst2|agnews|trec) M=[0-9]+ \| ' "$out")
[ "$rows" = 35 ] || { echo "FAIL: $rows (task, M) rows in the comparison table, expected 35"; fail=1; }
grep -q '^| banking77 M=16 | .* | 21.5 |$' "$out" ||
  { echo "FAIL: no banking77 M=16 row beside the study's 21.5"; fail=1; }
grep -q '^| 128 | ' "$out" || { echo "FAIL: the results.db table has no M=128 row"; fail=1; }
finish
