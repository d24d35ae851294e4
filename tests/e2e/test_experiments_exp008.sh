#!/bin/bash
# test_experiments_exp008.sh — experiments/preserved/exp008_paper_multiseed.lua runs to completion
# offline on the tiny models with one seed and writes its 18 runs: SST-2, AG News and TREC, each
# the Perceiver bridge plus receiver direct, sender direct, text relay with the label list,
# prompt tuning reading the text and the linear probe; then with seeds=2 the bridge rows average
# two seeds (the baselines' identity has no seed, so only the 3 bridges, 3 prompt tunings and
# 3 probes are new: 27 runs).
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
run_script preserved/exp008_paper_multiseed.lua 18
out="$work/exp008_paper_multiseed.out"
grep -q '^| SST-2 perceiver (exp008) | .* | 96.7 ± 0.6 |$' "$out" ||
  { echo "FAIL: no SST-2 bridge row beside 96.7 ± 0.6"; fail=1; }
# same db, two seeds: the seed-42 runs are skipped, seed 123 adds the trained ones
TINY_ARGS=("${TINY_ARGS[@]/seeds=1/seeds=2}")
run_script preserved/exp008_paper_multiseed.lua 27
grep -q '^| SST-2 perceiver (exp008) | [0-9.]* ± [0-9.]* | 8 | 2 | ' "$out" ||
  { echo "FAIL: the SST-2 bridge row does not average 2 seeds"; grep 'SST-2 perceiver' "$out"; fail=1; }
finish
