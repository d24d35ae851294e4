-- phase16_sst2_signal_check.lua — phase 16: the SST-2 signal check (32 tokens, layer 16) that
-- first worked: 93.46% (815/872). The same run as experiments/preserved/exp001 (its config.json
-- says phase 16 too): lib/preserved.lua builds both, so they share one config hash.
-- Numbering: STUDY.md's list of the 19 phases (the presentation's numbering).
--   telepathy run experiments/phases/phase16_sst2_signal_check.lua [-- models=tiny budget=3 eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"
return study.phase(tp, {
  number = "16", title = "SST-2 signal check", task = "SST-2", bridge = "perceiver 32x2, l16",
  losses = "ce + diversity 0.1", metric = "accuracy", study = "93.46",
  run = function(S, P)
    local e = preserved.exp001(S)[1]
    S:run("phase 16 (= exp001)", e[2], e[3])
  end,
})
