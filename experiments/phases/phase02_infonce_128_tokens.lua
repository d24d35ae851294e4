-- phase02_infonce_128_tokens.lua — phase 2: phase 1 + InfoNCE (tau 0.07, weight 0.5) and 128
-- soft tokens. GSM8K. Study: 0%.
-- Configuration: perceiver tokens 128, depth 4, normalizer whiten; layer 20; primer "Analysis of
-- received thought vector: "; losses ce 1 + reconstruction 1 + infonce 0.5; rest as phase 1.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase02_infonce_128_tokens.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "2", title = "+ InfoNCE, 128 tokens", task = "GSM8K", bridge = "perceiver 128x4 + normaliser",
  losses = "ce + reconstruction + infonce 0.5", metric = "exact match", study = "0%",
  run = function(S, P)
    S:run("phase 2", phases.gsm8k(S, {tokens = 128, depth = 4, layer = 20,
      primer = "Analysis of received thought vector: ", bridge_options = {normalizer = "whiten"},
      losses = {phases.reconstruction, phases.infonce_05}}), P.study)
  end,
})
