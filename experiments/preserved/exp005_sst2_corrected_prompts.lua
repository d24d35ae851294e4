-- exp005_sst2_corrected_prompts.lua — the study's preserved exp005 (config.json phase "16-sst2";
-- STUDY.md's phase 17): SST-2 with the corrected prompts ("Review: {text}\nSentiment (positive or
-- negative):"), Llama layer 31 -> Perceiver M=8, depth 2 -> Mistral, 2,000 steps, batch 16 x 2
-- (= 32), lr 2e-4, diversity 0.1, seed 42; full validation split, generate + match; baselines.
-- Compare with: ../shared/preserved/exp005_sst2_corrected_prompts/ — 94.72 (826/872; positive
-- 95.95, negative 93.46); Mistral text 93.5, Llama text 89.0.
--   telepathy run experiments/preserved/exp005_sst2_corrected_prompts.lua [-- models=tiny ...]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp005: SST-2 corrected prompts", preserved.exp005)
