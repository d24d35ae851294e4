-- phases.lua — the GSM8K configuration of the study's phases 1–15 (STUDY.md "The 19 phases"), as
-- one function the phase scripts call with what their phase changed.
--
-- How the phases are read: STUDY.md lists only what each phase added or changed, so a phase
-- keeps everything of the phase before it unless its line replaces it (the cumulative reading);
-- every phase script spells out the resulting configuration in full in its header. What the
-- study did not record is fixed here for all phases: Llama -> Mistral, batch 8 (the study's
-- GSM8K batch), lr 2e-4, 2,000 steps (the study's standard count), seed 42, 20 eval rows
-- (the phases report "exact answers of 20"), greedy generation + answer extraction with the
-- gsm8k task's defaults, target = the answer text.
local study = require "study"
local M = {}

-- t: layer, primer, tokens, depth, bridge, bridge_options (merged over the Perceiver's),
-- losses (list after CE), target, task_options, lr, warmup, schedule.
function M.gsm8k(S, t)
  local bridge = t.bridge or "perceiver"
  local bo = {}
  if bridge == "perceiver" then bo = {tokens = t.tokens or 64, depth = t.depth or 4, heads = 8} end
  for k, v in pairs(t.bridge_options or {}) do bo[k] = v end
  local losses = t.no_ce and {} or study.losses("sequence", 0)
  for _, l in ipairs(t.losses or {}) do losses[#losses + 1] = l end
  return S:spec{
    task = "gsm8k", task_options = t.task_options, layer = t.layer or 20, seed = 42,
    primer = t.primer or "Answer: ", target = t.target, bridge = bridge, bridge_options = bo,
    losses = losses, steps = t.steps or 2000, batch = 8, lr = t.lr or 2e-4, warmup = t.warmup,
    schedule = t.schedule, eval_n = 20, scoring = "generate",
  }
end

-- The losses the early phases accumulate (weights where the study gave them).
M.reconstruction = {name = "reconstruction", weight = 1, options = {form = "cosine"}}
M.infonce_05 = {name = "infonce", weight = 0.5, options = {tau = 0.07}}
M.infonce_01 = {name = "infonce", weight = 0.1, options = {tau = 0.07}}
function M.anchor(form, weight)
  return {name = "anchor", weight = weight, options = {form = form}}
end

return M
