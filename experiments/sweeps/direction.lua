-- direction.lua — which way the thought travels: Llama -> Mistral (the study's direction),
-- Mistral -> Llama (exp003's reverse run), and the same-model pairs Llama -> Llama and
-- Mistral -> Mistral, on exp003's SST-2 configuration (Perceiver M=32 depth 2, sender layer 16
-- of the sending model, 1,000 steps, old prompt, 200 rows, generate), over seeds.
-- Compare with (exp003): Llama -> Mistral 92.0, Mistral -> Llama 94.5; the same-model pairs were
-- not run by the study.
--   telepathy run experiments/sweeps/direction.lua [-- models=tiny budget=3 seeds=1]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"
local preserved = require "preserved"

local S = study.setup(tp)
local pairs_ = {
  {"Llama -> Mistral", S.llama, S.mistral, 92.0},
  {"Mistral -> Llama", S.mistral, S.llama, 94.5},
  {"Llama -> Llama", S.llama, S.llama},
  {"Mistral -> Mistral", S.mistral, S.mistral},
}
for _, p in ipairs(pairs_) do
  for _, seed in ipairs(S:seeds(study.SEEDS)) do
    S:run(p[1], preserved.exp003_cfg(S, {sender = p[2], receiver = p[3], seed = seed}), p[4])
  end
end
S:compare("Direction and same-model pairs (SST-2)")
print()
S:db_table{rows = "sender", cols = "receiver", metric = "accuracy", experiment = "direction"}
S:finish()
