-- layers.lua — which sender layer carries the signal: exp003's layer ablation (SST-2, Perceiver
-- M=32 depth 2, 1,000 steps, batch 16, old prompt, 200 rows, generate) at hidden_states index
-- 0 (embeddings), 8, 16, 24, 31 and 32 (after the final norm), over seeds; then the table and the
-- layers plot. Seed 42's points are exp003's own runs (same config hash).
-- Compare with (exp003 results.json): 0 -> 66.5, 8 -> 88.0, 16 -> 92.0, 24 -> 89.0, 31 -> 94.5
-- (32 was not run).
--   telepathy run experiments/sweeps/layers.lua [-- models=tiny budget=3 seeds=1]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"

local STUDY = {[0] = 66.5, [8] = 88.0, [16] = 92.0, [24] = 89.0, [31] = 94.5}
local S = study.setup(tp)
for _, l in ipairs{0, 8, 16, 24, 31, 32} do
  for _, seed in ipairs(S:seeds(study.SEEDS)) do
    S:run("layer " .. l, preserved.exp003_cfg(S, {layer = l, seed = seed}), STUDY[l])
  end
end
S:compare("Sender layer ablation (SST-2)")
print()
S:db_table{rows = "layer", cols = "task", metric = "accuracy", experiment = "layers"}
S:plot{kind = "layers", out = "layers.png", experiment = "layers", title = "Sender layer"}
S:finish()
