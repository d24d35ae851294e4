#!/bin/bash
# test_experiments_preserved.sh — experiments/preserved/exp001, exp002 and exp004–exp007 each run
# to completion offline on the tiny models (2 steps, 8 eval rows, one seed) and write the expected
# number of runs; failed runs are only known capability gaps (test_experiments_common.bash).
# exp003 and exp008 have tests of their own (test_experiments_exp003.sh, _exp008.sh).
# TP_TEST_SLOW: minutes under the sanitizers, so `make test-asan` leaves it out.
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
. "$(dirname "$0")/test_experiments_common.bash"
run_script preserved/exp001_sst2_signal_check.lua 1
run_script preserved/exp002_sst2_baselines.lua 2
run_script preserved/exp004_agnews.lua 3
run_script preserved/exp005_sst2_corrected_prompts.lua 3
run_script preserved/exp006_agnews_corrected_prompts.lua 3
run_script preserved/exp007_gsm8k_latent_cot.lua 3
finish
