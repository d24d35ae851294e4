-- phase17_sst2_corrected_prompts.lua — phase 17 in STUDY.md's list: SST-2 with the corrected
-- prompts, 94.72% (826/872). The preserved exp005 whose config.json calls it phase "16-sst2";
-- built by lib/preserved.lua like experiments/preserved/exp005 (same config hash).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase17_sst2_corrected_prompts.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"
return study.phase(tp, {
  number = "17", title = "SST-2 corrected prompts", task = "SST-2", bridge = "perceiver 8x2, l31",
  losses = "ce + diversity 0.1", metric = "accuracy", study = "94.72",
  run = function(S, P)
    local e = preserved.exp005(S)[1]
    S:run("phase 17 (= exp005)", e[2], e[3])
  end,
})
