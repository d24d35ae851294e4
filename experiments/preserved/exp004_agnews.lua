-- exp004_agnews.lua — the study's preserved exp004 (phase "17-agnews", old prompt): Llama layer
-- 31 -> Perceiver M=8, depth 2 -> Mistral; AG News, 3,000 steps, batch 16 x 2 GPUs (= 32), lr
-- 2e-4, diversity 0.1, seed 42; 1,000 eval rows (the study: the first 1,000 test rows; here a
-- seeded stratified 1,000), generate + match; plus the two text baselines (200 rows).
-- Compare with: ../shared/preserved/exp004_agnews/ — eval 92.3 (923/1000; world 91.8, sports
-- 97.8, business 90.2, science 88.5); Mistral text 70.0, Llama text 74.0.
--   telepathy run experiments/preserved/exp004_agnews.lua [-- models=tiny budget=3 ...]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp004: AG News (old prompt)", preserved.exp004)
