-- phase06_question_anchor.lua — phase 6: anchor to the receiver embeddings of the question instead
-- of the answer. GSM8K. Study: 0%, the outputs loop.
-- Configuration: phase 5 with target = "question" (the anchor's text).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase06_question_anchor.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "6", title = "anchor to question embeddings", task = "GSM8K", bridge = "perceiver 256x4 + learnable normaliser",
  losses = "ce + rec + infonce 0.1 + anchor(question) cos 2", metric = "exact match", study = "0% (loops)",
  run = function(S, P)
    S:run("phase 6", phases.gsm8k(S, {tokens = 256, depth = 4, layer = 16, target = "question",
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {phases.reconstruction, phases.infonce_01, phases.anchor("cosine", 2)}}), P.study)
  end,
})
