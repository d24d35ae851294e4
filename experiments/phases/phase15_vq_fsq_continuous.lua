-- phase15_vq_fsq_continuous.lua — phase 15: VQ (codebook 4,096, commitment beta 0.25), then FSQ
-- (levels 8 x 8), then back to continuous: Perceiver + RMS x alpha + batch diversity. GSM8K.
-- Study: every discrete variant collapsed (codebook perplexity 1); continuous kept.
-- Configuration: three runs on layer 16, 16 soft tokens, depth 2: vq (losses ce + vq_commit 1),
-- fsq levels 8x8 (ce), perceiver (ce + diversity 0.1).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase15_vq_fsq_continuous.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "15", title = "VQ -> FSQ -> continuous + diversity", task = "GSM8K", bridge = "vq / fsq / perceiver",
  losses = "ce (+ vq_commit / diversity)", metric = "exact match", study = "discrete collapsed",
  run = function(S, P)
    S:run("phase 15 vq", phases.gsm8k(S, {layer = 16, bridge = "vq",
      bridge_options = {tokens = 16, depth = 2, heads = 8, codebook = 4096, beta = 0.25},
      losses = {{name = "vq_commit", weight = 1}}}), "collapsed")
    S:run("phase 15 fsq", phases.gsm8k(S, {layer = 16, bridge = "fsq",
      bridge_options = {tokens = 16, depth = 2, heads = 8, levels = "8x8"}}), "collapsed")
    S:run("phase 15 continuous", phases.gsm8k(S, {layer = 16, tokens = 16, depth = 2,
      losses = {{name = "diversity", weight = 0.1}}}), "continuous kept")
  end,
})
