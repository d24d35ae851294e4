-- phase19_gsm8k_latent_cot.lua — phase 19: GSM8K latent chain of thought (4 steps x 8 latents),
-- 2.0% (10/500). The preserved exp007; built by lib/preserved.lua like
-- experiments/preserved/exp007 (same config hash).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase19_gsm8k_latent_cot.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"
return study.phase(tp, {
  number = "19", title = "GSM8K latent CoT", task = "GSM8K", bridge = "latent_cot 4x8, l31",
  losses = "ce + diversity 0.1", metric = "exact match", study = "2.0",
  run = function(S, P)
    local e = preserved.exp007(S)[1]
    S:run("phase 19 (= exp007)", e[2], e[3])
  end,
})
