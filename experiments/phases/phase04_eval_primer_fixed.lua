-- phase04_eval_primer_fixed.lua — phase 4: the evaluation primer made equal to the training primer
-- ("Answer: "). GSM8K. Study: 0%, with entity scrambling in the outputs.
-- Configuration: phase 3.1's (anchor cosine, weight 1): in this harness one primer setting serves
-- training and evaluation, so phase 3's mismatch never existed here and this run is phase 3.1's
-- configuration (same config hash: whichever script runs second finds it done).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase04_eval_primer_fixed.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "4", title = "eval primer fixed", task = "GSM8K", bridge = "perceiver 128x4 + learnable normaliser",
  losses = "ce + rec + infonce 0.1 + anchor cos", metric = "exact match", study = "0% (entity scrambling)",
  run = function(S, P)
    S:run("phase 4", phases.gsm8k(S, {tokens = 128, depth = 4, layer = 20,
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {phases.reconstruction, phases.infonce_01, phases.anchor("cosine", 1)}}), P.study)
  end,
})
