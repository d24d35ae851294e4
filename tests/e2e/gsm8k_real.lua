-- gsm8k_real.lua — the experiment of tests/e2e/gsm8k_real.sh (not a test itself: ctest globs
-- *.sh): the study's GSM8K bridge (phase 19 / exp007: latent_cot, primer "The answer is", CE over
-- the answer tokens + diversity 0.1, greedy generation + answer extraction) on the REAL GSM8K
-- files, scaled down to the tiny models: trained on the first n_train rows of train.jsonl and
-- evaluated on a seeded eval_n-row slice of test.jsonl; then the receiver-direct, sender-direct
-- (exp007's "Mistral text" and "Llama text") and text-relay baselines on the same slice (same
-- eval_n and eval_seed, so the same rows), and receiver-direct again with the task option
-- answer = question (phase 10's).
--   telepathy run tests/e2e/gsm8k_real.lua --db DB --set paths.data=SHARED/data -- \
--     MODELS_DIR n_train steps eval_n eval_seed gen_tokens
-- Prints one line per run: "run<TAB>kind<TAB>run_id<TAB>status<TAB>accuracy<TAB>n"; a failed run
-- is a script error (exit 1), since nothing here is an allowed gap.
local tp = require "telepathy"
local dir, n_train, steps, eval_n, eval_seed, gen = ...
assert(dir and gen, "usage: gsm8k_real.lua MODELS_DIR n_train steps eval_n eval_seed gen_tokens")
n_train, steps, eval_n = math.tointeger(tonumber(n_train)), math.tointeger(tonumber(steps)),
  math.tointeger(tonumber(eval_n))
eval_seed, gen = math.tointeger(tonumber(eval_seed)), math.tointeger(tonumber(gen))

local llama = tp.model{path = dir .. "/sender", alias = "tiny_llama"}
local mistral = tp.model{path = dir .. "/receiver", alias = "tiny_mistral"}

-- everything that picks the evaluated rows and how they are scored, shared by all three runs
local function common(t)
  t.task = "gsm8k"
  t.task_options = t.task_options or {max_train = n_train}
  t.eval_n = eval_n
  t.eval_seed = eval_seed
  t.scoring = "generate"
  t.max_new_tokens = gen -- random tiny models never stop early; GSM8K's own cap is 256
  return t
end

local specs = {
  {"latent_cot", common{
    sender = llama, receiver = mistral, bridge = "latent_cot",
    -- exp007's shape (rounds x latents, depth, heads) shrunk to the 64/96-wide tiny models
    bridge_options = {steps = 2, latents = 4, depth = 1, heads = 4},
    losses = {{name = "ce", weight = 1, options = {mode = "sequence"}},
              {name = "diversity", weight = 0.1}},
    steps = steps, batch = 4, lr = 2e-4, seed = 42, eval_batch = eval_n}},
  {"receiver_direct", common{baseline = "receiver_direct", receiver = mistral}},
  {"sender_direct", common{baseline = "sender_direct", sender = llama}},
  {"text_relay", common{baseline = "text_relay", sender = llama, receiver = mistral,
    baseline_options = {summary_tokens = gen}}},
  -- phase 10's task option (the question as the training target) must leave the evaluation
  -- gold the final answer
  {"receiver_direct", common{baseline = "receiver_direct", receiver = mistral,
    task_options = {max_train = n_train, answer = "question"}}},
}

for _, s in ipairs(specs) do
  local r, err = tp.run(s[2])
  if not r then error(s[1] .. ": run failed: " .. tostring(err), 0) end
  print(string.format("run\t%s\t%d\t%s\t%.17g\t%d", s[1], r.run_id, r.status, r.accuracy, r.n))
end
