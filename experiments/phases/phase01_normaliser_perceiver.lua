-- phase01_normaliser_perceiver.lua — phase 1 of the study's journey: a statistical normaliser
-- on the sender states + Perceiver (64 latents, depth 4), sender layer 20, primer "Analysis of
-- received thought vector: ", LM loss + reconstruction (1 - cos(mean soft, mean sender state)).
-- GSM8K. Study: 0% (0/20).
-- Configuration (lib/phases.lua for the settings the study did not record): perceiver tokens 64,
-- depth 4, 8 heads, normalizer = whiten (statistics of 1,000 training examples, frozen); losses
-- ce 1 (sequence) + reconstruction 1; batch 8, lr 2e-4, 2,000 steps, 20 eval rows, generate.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase01_normaliser_perceiver.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "1", title = "normaliser + Perceiver", task = "GSM8K", bridge = "perceiver 64x4 + normaliser",
  losses = "ce + reconstruction", metric = "exact match", study = "0% (0/20)",
  run = function(S, P)
    S:run("phase 1", phases.gsm8k(S, {tokens = 64, depth = 4, layer = 20,
      primer = "Analysis of received thought vector: ", bridge_options = {normalizer = "whiten"},
      losses = {phases.reconstruction}}), P.study)
  end,
})
