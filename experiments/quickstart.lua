-- quickstart.lua — the offline demo (`make demo`): a Perceiver bridge from a tiny Llama-style
-- sender into a tiny Mistral-style receiver on the synthetic `toy` task, against the sender-direct
-- and receiver-direct baselines on the same scoring path, 2 seeds, then the table from
-- results.db.
--
--   telepathy run experiments/quickstart.lua --db demo/results.db -- MODELS_DIR [STEPS]
-- MODELS_DIR holds sender/ and receiver/ (scripts/demo.sh makes them with `telepathy make-tiny`).
--
-- What to expect: the tiny models have random weights, so neither can read the text — both
-- baselines sit at chance (50% on 2 balanced classes) — while the bridge learns to carry the
-- topic from the sender's hidden states into the receiver's soft tokens (~85-95%). Re-running
-- the script skips every finished configuration (same config hash) and resumes interrupted ones.
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "lib/?.lua;" .. package.path
local report = require "report"

local models = arg[1] or "demo/models"
local steps = tonumber(arg[2] or "") or 300

local sender = tp.model{path = models .. "/sender", alias = "tiny_llama"}
local receiver = tp.model{path = models .. "/receiver", alias = "tiny_mistral"}
print(string.format("sender   %s: %s, %d layers, width %d", sender.alias, sender.arch,
  sender.layers, sender.hidden))
print(string.format("receiver %s: %s, %d layers, width %d", receiver.alias, receiver.arch,
  receiver.layers, receiver.hidden))

local task = {task = "toy", task_options = {n_train = 256, n_eval = 64}, eval_batch = 64}

for _, seed in ipairs{1, 2} do
  report.run(tp, "seed " .. seed .. " perceiver", report.with(task, {
    sender = sender, receiver = receiver, seed = seed,
    bridge = "perceiver", bridge_options = {tokens = 4, depth = 1, heads = 4},
    steps = steps, batch = 8, lr = 2e-3, eval_every = 100, quick_eval_n = 32,
  }))
  -- baselines read the task's direct prompt; their identity does not include the seed, so
  -- the second seed finds them done and reuses the stored result
  report.run(tp, "seed " .. seed .. " sender_direct", report.with(task, {
    baseline = "sender_direct", sender = sender, seed = seed}))
  report.run(tp, "seed " .. seed .. " receiver_direct", report.with(task, {
    baseline = "receiver_direct", receiver = receiver, seed = seed}))
end

print()
tp.table{rows = "bridge", cols = "task", metric = "accuracy"}
