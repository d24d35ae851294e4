-- phase18_agnews.lua — phase 18 in STUDY.md's list: AG News with the corrected prompts, 88.9%
-- (889/1000). The preserved exp006, whose config.json calls it phase "17-agnews"; built by
-- lib/preserved.lua like experiments/preserved/exp006 (same config hash).
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase18_agnews.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"
return study.phase(tp, {
  number = "18", title = "AG News", task = "AG News", bridge = "perceiver 8x2, l31",
  losses = "ce + diversity 0.1", metric = "accuracy", study = "88.9",
  run = function(S, P)
    local e = preserved.exp006(S)[1]
    S:run("phase 18 (= exp006)", e[2], e[3])
  end,
})
