-- phase05_256_tokens_layer16.lua — phase 5: 256 soft tokens, sender layer 16, anchor weight 2.0.
-- GSM8K. Study: 5%.
-- Configuration: perceiver 256 x depth 4, learnable normaliser; layer 16; losses ce 1 +
-- reconstruction 1 + infonce 0.1 + anchor cosine 2.0 (answer); rest as phase 4.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase05_256_tokens_layer16.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "5", title = "256 tokens, layer 16, anchor 2.0", task = "GSM8K", bridge = "perceiver 256x4 + learnable normaliser",
  losses = "ce + rec + infonce 0.1 + anchor cos 2", metric = "exact match", study = "5%",
  run = function(S, P)
    S:run("phase 5", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16,
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {phases.reconstruction, phases.infonce_01, phases.anchor("cosine", 2)}}), P.study)
  end,
})
