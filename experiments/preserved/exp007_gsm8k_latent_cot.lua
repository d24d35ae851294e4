-- exp007_gsm8k_latent_cot.lua — the study's preserved exp007 (STUDY.md's phase 19): GSM8K latent
-- chain of thought, Llama layer 31 -> latent_cot (4 rounds x 8 latents, depth 2, 8 heads) ->
-- Mistral, primer "The answer is", 5,000 steps, batch 8, lr 2e-4, diversity 0.1, seed 42; 500
-- eval rows, greedy generation + answer extraction; plus the two text baselines (200 rows).
-- Compare with: ../shared/preserved/exp007_gsm8k_latent_cot/ — 2.0 (10/500); Mistral text 48.5,
-- Llama text 76.5 (random 1.0).
--   telepathy run experiments/preserved/exp007_gsm8k_latent_cot.lua [-- models=tiny budget=3]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp007: GSM8K latent chain of thought", preserved.exp007)
