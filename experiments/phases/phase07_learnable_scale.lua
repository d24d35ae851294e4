-- phase07_learnable_scale.lua — phase 7: tanh x a learnable scale initialised at the receiver's
-- embedding RMS. GSM8K. Study: 0%.
-- Configuration: the scale is the Perceiver's alpha, and its defaults are exactly this phase's:
-- alpha_init = calibrated (median receiver embedding row RMS), alpha_learnable = true (both are
-- written into every run's stored config). Not expressible: the tanh (every bridge ends in RMS x
-- alpha). So in this harness phase 7 IS phase 6's configuration: the same spec, one run.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase07_learnable_scale.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "7", title = "learnable scale at embedding RMS", task = "GSM8K", bridge = "perceiver 256x4, alpha calibrated+learnable",
  losses = "ce + rec + infonce 0.1 + anchor(question) cos 2", metric = "exact match", study = "0%",
  run = function(S, P)
    S:run("phase 7", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16, target = "question",
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {phases.reconstruction, phases.infonce_01, phases.anchor("cosine", 2)}}), P.study)
  end,
})
