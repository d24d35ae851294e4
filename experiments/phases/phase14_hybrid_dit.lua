-- phase14_hybrid_dit.lua — phase 14: hybrid DiT (rectified flow + the receiver's LM loss through
-- the sampled soft tokens), width 1024. GSM8K. Study: 0%.
-- Configuration: diffusion mode = flow, width 1024, train_soft = sample (the task loss trains
-- the sampler), target = question (as phase 13); losses ce 1 + flow_match 1.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase14_hybrid_dit.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "14", title = "hybrid DiT, width 1024", task = "GSM8K", bridge = "diffusion (flow), W 1024",
  losses = "ce + flow_match", metric = "exact match", study = "0%",
  run = function(S, P)
    S:run("phase 14", phases.gsm8k(S, {layer = 16, bridge = "diffusion", target = "question",
      bridge_options = {mode = "flow", tokens = 16, width = 1024, depth = 4, heads = 8, steps = 10,
                        ema = "on", ema_decay = 0.999, train_soft = "sample"},
      losses = {{name = "flow_match", weight = 1}},
      lr = 3e-4, warmup = 500, schedule = "cosine"}), P.study)
  end,
})
