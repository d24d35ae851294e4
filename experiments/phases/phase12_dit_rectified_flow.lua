-- phase12_dit_rectified_flow.lua — phase 12: a DiT generating the soft tokens by rectified flow to
-- the receiver embeddings of the answer (resampled to M), 10 Euler steps at inference, EMA 0.999,
-- lr 3e-4, warmup 500 + cosine. GSM8K. Study: 0%.
-- Configuration: bridge diffusion mode = flow, M 16 (the plugin's default; the study did not
-- record it), width 512, depth 4, 8 heads, target = answer; loss flow_match only; layer 16.
-- The plugin's DiT always cross-attends to the sender states (phase 13 made that the point).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase12_dit_rectified_flow.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
return study.phase(tp, {
  number = "12", title = "DiT + rectified flow", task = "GSM8K", bridge = "diffusion (flow), W 512",
  losses = "flow_match", metric = "exact match", study = "0%",
  run = function(S, P)
    S:run("phase 12", phases.gsm8k(S, {layer = 16, bridge = "diffusion", target = "answer",
      bridge_options = {mode = "flow", tokens = 16, width = 512, depth = 4, heads = 8, steps = 10,
                        ema = "on", ema_decay = 0.999},
      no_ce = true, losses = {{name = "flow_match", weight = 1}},
      lr = 3e-4, warmup = 500, schedule = "cosine"}), P.study)
  end,
})
