-- exp001_sst2_signal_check.lua — the study's preserved exp001 (phase 16, the SST-2 signal check):
-- Llama-3.1-8B-Instruct layer 16 -> Perceiver (M=32, depth 2, 8 heads, receiver width,
-- calibrated alpha) -> Mistral-7B-Instruct-v0.3; old SST-2 prompt; CE over the label sequence +
-- diversity 0.1; 2,000 steps, batch 16 x 2 GPUs (= 32), lr 2e-4, no schedule, seed 42; full
-- validation split (872 rows), generate + match scoring.
-- Compare with: ../shared/preserved/exp001_sst2_signal_check/eval_sst2_results.json — accuracy
-- 93.46 (815/872; positive 91.44, negative 95.56).
--   telepathy run experiments/preserved/exp001_sst2_signal_check.lua [-- models=tiny budget=3]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp001: SST-2 signal check", preserved.exp001)
