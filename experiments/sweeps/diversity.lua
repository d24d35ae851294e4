-- diversity.lua — the diversity loss: exp003's weight ablation with the form the code computed
-- (mean off-diagonal cosine similarity of the flattened soft-token sets, lambda 0 / 0.1 / 0.5)
-- and the form the paper wrote but no code computed (-lambda H(mean soft token), lambda 0.1 /
-- 0.5), on exp003's SST-2 configuration (M=32, layer 16, 1,000 steps, 200 rows), over seeds.
-- Compare with (exp003): cosine lambda 0 -> 83.5, 0.1 -> 92.0, 0.5 -> 91.5; entropy: no numbers.
--   telepathy run experiments/sweeps/diversity.lua [-- models=tiny budget=3 seeds=1]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"

local S = study.setup(tp)
local runs = {
  {"no diversity", 0, "cosine", 83.5},
  {"cosine 0.1", 0.1, "cosine", 92.0},
  {"cosine 0.5", 0.5, "cosine", 91.5},
  {"entropy 0.1", 0.1, "entropy"},
  {"entropy 0.5", 0.5, "entropy"},
}
for _, r in ipairs(runs) do
  for _, seed in ipairs(S:seeds(study.SEEDS)) do
    S:run(r[1], preserved.exp003_cfg(S, {div = r[2], div_form = r[3], seed = seed}), r[4])
  end
end
S:compare("Diversity loss (SST-2)")
S:finish()
