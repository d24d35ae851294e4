-- all.lua — runs the 19 phase scripts in order (one context, one results.db) and prints the phase
-- comparison table: phase, bridge, losses, task, metric, the study's reported result and ours.
-- Numbering: STUDY.md's list of the 19 phases; phases 16–19 are the preserved exp001, exp005,
-- exp006 and exp007 (their config.json files number them 16, "16-sst2", "17-agnews").
--   telepathy run experiments/phases/all.lua [-- models=tiny budget=3 eval_n=8]
-- Runs already done (same config hash, e.g. by a phase script run on its own or by a preserved
-- experiment) are skipped and their stored results shown.
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local study = require "study"

local FILES = {
  "phase01_normaliser_perceiver", "phase02_infonce_128_tokens",
  "phase03_learnable_normaliser_anchor", "phase04_eval_primer_fixed",
  "phase05_256_tokens_layer16", "phase06_question_anchor", "phase07_learnable_scale",
  "phase08_reconstruction_head", "phase09_bag_of_words", "phase10_autoencoder_target",
  "phase11_first_token_weighting", "phase12_dit_rectified_flow",
  "phase13_crossattn_dit_question", "phase14_hybrid_dit", "phase15_vq_fsq_continuous",
  "phase16_sst2_signal_check", "phase17_sst2_corrected_prompts", "phase18_agnews",
  "phase19_gsm8k_latent_cot",
}

study.collecting = true
local phases = {}
for i, f in ipairs(FILES) do
  local P = dofile(here .. f .. ".lua")
  assert(type(P) == "table" and P.run, f .. ".lua did not return its phase table")
  phases[i] = P
end
study.collecting = false

local S = study.setup(tp)
local rows = {}
for _, P in ipairs(phases) do
  local first = #S.entries + 1
  P.run(S, P)
  for i = first, #S.entries do rows[#rows + 1] = {P = P, e = S.entries[i]} end
end

local function ours(e)
  if not e.r then return "failed: " .. tostring(e.err):sub(1, 60) end
  if e.metric == "final_loss" then
    return e.r.final_loss and string.format("loss %.3f", e.r.final_loss) or "?"
  end
  return e.r.accuracy and string.format("%.1f%% (n=%d, %s)", 100 * e.r.accuracy, e.r.n,
    e.r.scheme) or "?"
end

print()
print("### The study's 19 phases (STUDY.md numbering)")
print("| phase | run | bridge | losses | task | metric | study | ours |")
print("|---|---|---|---|---|---|---|---|")
for _, row in ipairs(rows) do
  local P, e = row.P, row.e
  local st = e.study
  if type(st) == "number" then st = string.format("%g", st) end
  local cells = {P.number, e.label, P.bridge, P.losses, P.task, P.metric, tostring(st or P.study),
                 ours(e)}
  for i, c in ipairs(cells) do cells[i] = (tostring(c):gsub("|", "/")) end
  print("| " .. table.concat(cells, " | ") .. " |")
end
S:finish()
