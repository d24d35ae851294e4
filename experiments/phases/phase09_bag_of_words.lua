-- phase09_bag_of_words.lua — phase 9: a bag-of-words BCE head over the sender vocabulary (weight 5):
-- the soft tokens must say which words the answer holds. GSM8K. Study: 0%.
-- Configuration: phase 8 + bow 5.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase09_bag_of_words.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "9", title = "bag-of-words head", task = "GSM8K", bridge = "perceiver 256x4",
  losses = "phase 8 + bow 5", metric = "exact match", study = "0%",
  run = function(S, P)
    S:run("phase 9", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16, target = "question",
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {{name = "reconstruction", weight = 1, options = {form = "cosine", head = "linear"}},
                phases.infonce_01, phases.anchor("cosine", 2), {name = "bow", weight = 5}}}), P.study)
  end,
})
