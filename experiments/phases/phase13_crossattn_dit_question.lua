-- phase13_crossattn_dit_question.lua — phase 13: cross-attention DiT, width 512, flowing to the
-- receiver embeddings of the question. GSM8K. Study: flow loss 1.58 (no accuracy reported);
-- the comparison row shows our final training loss beside it.
-- Configuration: phase 12 with target = question.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase13_crossattn_dit_question.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "13", title = "cross-attention DiT, question target", task = "GSM8K", bridge = "diffusion (flow), W 512",
  losses = "flow_match", metric = "final loss", study = "loss 1.58",
  run = function(S, P)
    S:run("phase 13", phases.gsm8k(S, {layer = 16, bridge = "diffusion", target = "question",
      bridge_options = {mode = "flow", tokens = 16, width = 512, depth = 4, heads = 8, steps = 10,
                        ema = "on", ema_decay = 0.999},
      no_ce = true, losses = {{name = "flow_match", weight = 1}},
      lr = 3e-4, warmup = 500, schedule = "cosine"}), P.study, "final_loss")
  end,
})
