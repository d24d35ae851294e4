#!/bin/bash
# test_experiments_sweeps.sh — experiments/sweeps/layers, depth, diversity and direction run to
# completion offline on the tiny models and write the expected number of runs. On the 4-layer
# tiny sender the study's layers 0/8/16/24/31/32 map to hidden states 0/1/2/3/4/4, so layers.lua
# makes 5 runs there (6 on the real 32-layer models).
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
run_script sweeps/layers.lua 5
run_script sweeps/depth.lua 4
run_script sweeps/diversity.lua 5
run_script sweeps/direction.lua 4
grep -q '^| Mistral -> Llama | .* | 94.5 |$' "$work/direction.out" ||
  { echo "FAIL: direction.lua's table lacks Mistral -> Llama beside 94.5"; fail=1; }
finish
