-- depth.lua — Perceiver depth: exp003's depth ablation (SST-2, M=32, layer 16, 1,000 steps, old
-- prompt, 200 rows, generate) at depth 1, 2, 4 and 8 (the plugin's maximum), over seeds; seed
-- 42's points at 1/2/4 are exp003's runs.
-- Compare with (exp003): depth 1 -> 92.5, 2 -> 92.0, 4 -> 93.0 (8 was not run).
--   telepathy run experiments/sweeps/depth.lua [-- models=tiny budget=3 seeds=1]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"

local STUDY = {[1] = 92.5, [2] = 92.0, [4] = 93.0}
local S = study.setup(tp)
for _, d in ipairs{1, 2, 4, 8} do
  for _, seed in ipairs(S:seeds(study.SEEDS)) do
    S:run("depth " .. d, preserved.exp003_cfg(S, {depth = d, seed = seed}), STUDY[d])
  end
end
S:compare("Perceiver depth (SST-2)")
print()
S:db_table{rows = "bridge.options.depth", cols = "task", metric = "accuracy", experiment = "depth"}
S:plot{kind = "xy", x = "bridge.options.depth", out = "depth.png", experiment = "depth",
  title = "Perceiver depth"}
S:finish()
