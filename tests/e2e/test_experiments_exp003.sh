#!/bin/bash
# test_experiments_exp003.sh — experiments/preserved/exp003_comprehensive_ablations.lua runs to
# completion offline on the tiny models and writes its 27 runs: 6 architectures trained and
# untrained, 4 layers, 4 latent counts, 2 depths, 2 diversity weights, the reverse direction and
# 2 text baselines; its comparison table sets each beside the study's number.
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
run_script preserved/exp003_comprehensive_ablations.lua 27
out="$work/exp003_comprehensive_ablations.out"
rows=$(grep '^| [a-z]' "$out" | grep -vc '^| configuration |')
[ "$rows" = 27 ] || { echo "FAIL: $rows rows in the comparison table, expected 27"; fail=1; }
grep -q '^| layer_0 | .* | 66.5 |$' "$out" || { echo "FAIL: no layer_0 row beside 66.5"; fail=1; }
finish
