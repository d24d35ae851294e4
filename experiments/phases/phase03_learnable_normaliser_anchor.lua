-- phase03_learnable_normaliser_anchor.lua — phase 3 (and 3.1): learnable normaliser, tanh x scale
-- output, anchor to the receiver embeddings of the answer (MSE; cosine in 3.1), primer "Answer: "
-- from here on. GSM8K. Study: 5% (1/20).
-- Configuration: perceiver 128 x depth 4, normalizer whiten with normalizer_learnable = true;
-- losses ce 1 + reconstruction 1 + infonce 0.1 ("0.5 then 0.1") + anchor 1 (mse | cosine) to the
-- answer; layer 20. Not expressible: the tanh squashing before the scale — every bridge here ends
-- in RMS-normalise x alpha (STUDY.md "Bridges"), which these runs use. Phase 3's train/eval primer
-- mismatch (fixed in phase 4) cannot be configured either: one primer serves both, by design.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase03_learnable_normaliser_anchor.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local phases = require "phases"
local phase = {
  number = "3", title = "learnable normaliser, answer anchor (3: MSE, 3.1: cosine)", task = "GSM8K",
  bridge = "perceiver 128x4 + learnable normaliser", losses = "ce + rec + infonce 0.1 + anchor",
  metric = "exact match", study = "5% (1/20)",
}
function phase.run(S, P)
  for _, v in ipairs{{"phase 3 (anchor mse)", "mse"}, {"phase 3.1 (anchor cosine)", "cosine"}} do
    S:run(v[1], phases.gsm8k(S, {tokens = 128, depth = 4, layer = 20,
      bridge_options = {normalizer = "whiten", normalizer_learnable = true},
      losses = {phases.reconstruction, phases.infonce_01, phases.anchor(v[2], 1)}}), P.study)
  end
end
return study.phase(tp, phase)
