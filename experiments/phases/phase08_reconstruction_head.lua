-- phase08_reconstruction_head.lua — phase 8: a learned reconstruction head (mean soft token ->
-- sender width) in the reconstruction loss. GSM8K. Study: 5%.
-- Configuration: phase 7 with reconstruction options head = linear.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase08_reconstruction_head.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "8", title = "reconstruction head", task = "GSM8K", bridge = "perceiver 256x4",
  losses = "ce + rec(head) + infonce 0.1 + anchor(question) cos 2", metric = "exact match", study = "5%",
  run = function(S, P)
    S:run("phase 8", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16, target = "question",
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {{name = "reconstruction", weight = 1, options = {form = "cosine", head = "linear"}},
                phases.infonce_01, phases.anchor("cosine", 2)}}), P.study)
  end,
})
