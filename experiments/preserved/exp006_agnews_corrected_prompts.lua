-- exp006_agnews_corrected_prompts.lua — the study's preserved exp006 (config.json phase
-- "17-agnews"; STUDY.md's phase 18): AG News with the corrected prompt, Llama layer 31 ->
-- Perceiver M=8, depth 2 -> Mistral, 3,000 steps, batch 16 x 2 (= 32), lr 2e-4, diversity 0.1,
-- seed 42; 1,000 eval rows, generate + match; baselines (200 rows).
-- Compare with: ../shared/preserved/exp006_agnews_corrected_prompts/ — 88.9 (889/1000);
-- Mistral text 70.5, Llama text 74.5.
--   telepathy run experiments/preserved/exp006_agnews_corrected_prompts.lua [-- models=tiny ...]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp006: AG News corrected prompts", preserved.exp006)
