-- phase10_autoencoder_target.lua — phase 10: an auto-encoder target — the receiver is trained to
-- write the question it was sent, which teacher forcing lets it learn without reading the soft
-- tokens. GSM8K. Study: empty or identical outputs.
-- Configuration: phase 9's bridge and losses with the receiver's target text = the question
-- (the gsm8k task's option answer = "question").
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase10_autoencoder_target.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "10", title = "auto-encoder target", task = "GSM8K", bridge = "perceiver 256x4",
  losses = "phase 9", metric = "exact match", study = "empty/identical outputs",
  run = function(S, P)
    S:run("phase 10", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16, target = "question",
      task_options = {answer = "question"},
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {{name = "reconstruction", weight = 1, options = {form = "cosine", head = "linear"}},
                phases.infonce_01, phases.anchor("cosine", 2), {name = "bow", weight = 5}}}), P.study)
  end,
})
