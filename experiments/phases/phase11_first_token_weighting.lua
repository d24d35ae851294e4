-- phase11_first_token_weighting.lua — phase 11: the task CE with the first 10 answer tokens weighted
-- x100. GSM8K. Study: garbage outputs.
-- Configuration: phase 9 with the CE replaced by token_weighting (k 10, w 100, normalize count:
-- the study's literal x100).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase11_first_token_weighting.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "11", title = "first-10-token x100 weighting", task = "GSM8K", bridge = "perceiver 256x4",
  losses = "token_weighting + rec + infonce + anchor + bow", metric = "exact match", study = "garbage",
  run = function(S, P)
    S:run("phase 11", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16, target = "question",
      no_ce = true,
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {{name = "token_weighting", weight = 1, options = {k = 10, w = 100, normalize = "count"}},
                {name = "reconstruction", weight = 1, options = {form = "cosine", head = "linear"}},
                phases.infonce_01, phases.anchor("cosine", 2), {name = "bow", weight = 5}}}), P.study)
  end,
})
