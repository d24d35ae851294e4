-- study.lua — what every study script shares: the command-line switches (real or tiny models, a
-- step budget, eval size, seeds), the model aliases, the one place where a configuration written
-- with the study's numbers is adapted to the tiny models, and the run/compare/summary helpers.
--
-- Scripts write the study's configuration literally (layer 16, width 512, 2,000 steps, 200 eval
-- rows) and call S:spec{} / S:baseline{}; this file alone decides what changes for a smoke run,
-- so a real-model run hashes exactly the study's settings.
--
-- Switches are the script's arguments, `key=value` after `--`:
--   telepathy run experiments/preserved/exp001_sst2_signal_check.lua -- models=tiny budget=3
--   models=real|tiny   real (default): the INI's [models] aliases named by llama= and mistral=
--                      (defaults "sender" and "receiver", the names of telepathy.ini.example);
--                      tiny: tiny_dir/sender (Llama-style) and tiny_dir/receiver (Mistral-style),
--                      as `telepathy make-tiny` / scripts/demo.sh make them
--   tiny_dir=DIR       default demo/models
--   budget=N           at most N optimiser steps per run (0 = the study's step counts)
--   eval_n=N           evaluate N stratified rows (seeded) instead of the study's subset/split
--   seeds=N | a,b,..   the first N of each script's seed list, or this list instead
--   agnews_train=FILE  AG News training CSV inside <data>/agnews (default train.csv; the shared
--                      data folder holds train_sample5000.csv)
--   gen_tokens=N       at most N new tokens per generated answer (smoke runs: random tiny models
--                      never stop early, and GSM8K allows 256)
-- Sender layers are the study's 32-layer indices; a sender of another depth L gets
-- round(l*L/32), at most L (0/8/16/24/31 stay distinct on a 4-layer model), with a printed note.
-- What tiny mode changes (and nothing else): the models; internal widths (bridge options
-- width / hidden) shrink 8x; a normaliser calibrates on 32 examples instead of 1,000; and
-- first-token scoring becomes loglik with sequence CE (label words share first tokens in the tiny
-- 512-token vocabularies, which first_token scoring refuses; classifier bridges keep theirs).
local M = {}

M.SEEDS = {42, 123, 456} -- exp008's seeds; single-seed runs of the study used 42

local SWITCHES = {
  models = "real|tiny",
  tiny_dir = "directory with sender/ and receiver/ tiny models",
  budget = "max optimiser steps per run (0 = none)",
  eval_n = "evaluation rows (0 = full split)",
  seeds = "N (first N) or a comma list",
  llama = "INI model alias of Llama-3.1-8B-Instruct",
  mistral = "INI model alias of Mistral-7B-Instruct-v0.3",
  agnews_train = "AG News training CSV file name",
  gen_tokens = "at most N new tokens when generating (0 = the study's)",
}

-- The tasks' default max_new_tokens (task plugins' info), so gen_tokens= only ever lowers them.
local GEN_TOKENS = {sst2 = 5, agnews = 5, trec = 5, banking77 = 20, gsm8k = 256, passkey = 8,
                    toy = 5}

local function switch_list()
  local ks = {}
  for k in pairs(SWITCHES) do ks[#ks + 1] = k end
  table.sort(ks)
  return table.concat(ks, ", ")
end

local function as_int(k, v)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < 0 then
    error(string.format("study switch %s=%s: expected a non-negative integer", k, v), 0)
  end
  return math.tointeger(n)
end

-- args: the script's arg table (arg[1..n] = "key=value").
function M.parse(args)
  local o = {models = "real", tiny_dir = "demo/models", budget = 0, llama = "sender",
             mistral = "receiver"}
  for i = 1, #(args or {}) do
    local a = args[i]
    local k, v = tostring(a):match("^([%w_]+)=(.*)$")
    if not k then
      error(string.format("study: argument '%s': expected key=value (switches: %s)", a,
        switch_list()), 0)
    end
    if not SWITCHES[k] then
      error(string.format("study: unknown switch '%s'; switches: %s", k, switch_list()), 0)
    end
    if k == "budget" or k == "eval_n" or k == "gen_tokens" then
      o[k] = as_int(k, v)
    elseif k == "models" then
      if v ~= "real" and v ~= "tiny" then
        error(string.format("study switch models=%s: expected real or tiny", v), 0)
      end
      o.models = v
    elseif k == "seeds" then
      if v:match("^%d+$") then
        o.n_seeds = as_int(k, v)
        if o.n_seeds < 1 then error("study switch seeds=0: keep at least one seed", 0) end
      else
        o.seed_list = {}
        for s in v:gmatch("[^,]+") do o.seed_list[#o.seed_list + 1] = as_int(k, s) end
        if #o.seed_list == 0 then error("study switch seeds=: expected N or a,b,...", 0) end
      end
    else
      o[k] = v
    end
  end
  return o
end

local Study = {}
Study.__index = Study

-- Loads the models and returns the study context S. args default to the global `arg`.
function M.setup(tp, args)
  local o = M.parse(args or arg)
  local S = setmetatable({tp = tp, opt = o, entries = {}, seen = {}, n_runs = 0}, Study)
  S.tiny = o.models == "tiny"
  if S.tiny then
    S.llama = tp.model{path = o.tiny_dir .. "/sender", alias = "tiny_llama"}
    S.mistral = tp.model{path = o.tiny_dir .. "/receiver", alias = "tiny_mistral"}
  else
    -- the INI names the directories; the runs record the study's names for them
    local l = tp.model{alias = o.llama}
    S.llama = o.llama == "llama" and l or tp.model{path = l.path, alias = "llama"}
    local m = tp.model{alias = o.mistral}
    S.mistral = o.mistral == "mistral" and m or tp.model{path = m.path, alias = "mistral"}
  end
  print(string.format("study: models=%s (%s %d layers, %s %d layers) budget=%s eval_n=%s",
    o.models, S.llama.alias, S.llama.layers, S.mistral.alias, S.mistral.layers,
    o.budget > 0 and o.budget or "study", o.eval_n or "study"))
  for _, m in ipairs{S.llama, S.mistral} do
    if m.layers ~= 32 then
      print(string.format("study: %s has %d layers, not the study's 32: sender layers are " ..
        "scaled (l -> round(l*%d/32), at most %d)", m.alias, m.layers, m.layers, m.layers))
    end
  end
  return S
end

-- The seeds a script runs, after the seeds= switch.
function Study:seeds(list)
  if self.opt.seed_list then return self.opt.seed_list end
  local n = math.min(self.opt.n_seeds or #list, #list)
  local out = {}
  for i = 1, n do out[i] = list[i] end
  return out
end

-- A layer index of the study's 32-layer models, for this sender.
function Study:layer(l, sender)
  local L = (sender or self.llama).layers
  if L == 32 or l < 0 then return l end
  return math.min(L, math.floor(l * L / 32 + 0.5))
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end
M.copy = copy

-- Tasks whose default scheme is first_token (the others default to generate).
local FIRST_TOKEN_DEFAULT = {sst2 = true, agnews = true, trec = true, toy = true}

-- Tiny-mode scoring change; returns the scoring to use (nil = the task default) and whether it
-- changed. A classifier bridge (linear_probe) scores by its own class logits and keeps its CE.
function Study:_scoring(spec)
  local scoring = spec.scoring or (FIRST_TOKEN_DEFAULT[spec.task] and "first_token")
  if self.tiny and scoring == "first_token" and spec.bridge ~= "linear_probe" then
    return "loglik", true
  end
  return spec.scoring, false
end

-- Tiny mode calibrates a normaliser on this many training examples (the default 1,000 sender
-- forwards would dominate a smoke run).
local TINY_NORMALIZER_EXAMPLES = 32

-- The gen_tokens= cap on a spec's max_new_tokens.
function Study:_gen_tokens(s)
  local cap = self.opt.gen_tokens
  if not cap or cap == 0 then return end
  local n = s.max_new_tokens or GEN_TOKENS[s.task]
  if n and n > cap then s.max_new_tokens = cap end
end

-- A bridge run in the study's numbers, adapted to the mode and switches.
function Study:spec(t)
  local s = copy(t)
  s.sender = s.sender or self.llama
  s.receiver = s.receiver or self.mistral
  if s.layer then s.layer = self:layer(s.layer, s.sender) end
  local budget = self.opt.budget
  local steps = s.steps or 2000
  if budget > 0 and steps > budget then steps = budget end
  s.steps = steps
  if s.warmup and s.warmup > steps then s.warmup = steps end
  if self.opt.eval_n then s.eval_n = self.opt.eval_n end
  if self.tiny and s.bridge_options then
    local bo = s.bridge_options
    for _, k in ipairs{"width", "hidden"} do
      local w = bo[k]
      if type(w) == "number" and w > 0 then bo[k] = math.max(8, (w // 64) * 8) end
    end
    if bo.normalizer and bo.normalizer ~= "off" then
      bo.normalizer_examples = math.min(bo.normalizer_examples or 1000, TINY_NORMALIZER_EXAMPLES)
    end
  end
  self:_gen_tokens(s)
  local scoring, changed = self:_scoring(s)
  s.scoring = scoring
  if changed and s.losses then
    for _, l in ipairs(s.losses) do
      if l.name == "ce" and l.options and l.options.mode == "first_token" then
        l.options.mode = "sequence"
      end
    end
  end
  if s.task == "agnews" and self.opt.agnews_train then
    s.task_options = s.task_options or {}
    s.task_options.train_file = self.opt.agnews_train
  end
  return s
end

-- A baseline run (no training keys), adapted the same way.
function Study:baseline(t)
  local s = copy(t)
  if s.baseline ~= "receiver_direct" and s.baseline ~= "fewshot" then
    s.sender = s.sender or self.llama
  end
  if s.baseline ~= "sender_direct" then s.receiver = s.receiver or self.mistral end
  if self.opt.eval_n then s.eval_n = self.opt.eval_n end
  self:_gen_tokens(s)
  s.scoring = self:_scoring(s)
  if s.task == "agnews" and self.opt.agnews_train then
    s.task_options = s.task_options or {}
    s.task_options.train_file = self.opt.agnews_train
  end
  return s
end

-- The standard loss list: task CE (mode matching the scoring scheme) + diversity.
function M.losses(ce_mode, div, extra)
  local l = {{name = "ce", weight = 1, options = {mode = ce_mode or "sequence"}}}
  if div and div > 0 then l[#l + 1] = {name = "diversity", weight = div} end
  for _, e in ipairs(extra or {}) do l[#l + 1] = e end
  return l
end

local function pct(x)
  return x and string.format("%.1f", 100 * x) or "?"
end

-- A short, stable text for a spec (failed runs have no config hash to count them by).
local function spec_key(v)
  if type(v) ~= "table" then return tostring(v) end
  if v.alias and v.fingerprint then return "model:" .. v.alias end
  local ks = {}
  for k in pairs(v) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  local parts = {}
  for _, k in ipairs(ks) do
    local key = tonumber(k) and math.tointeger(tonumber(k)) or k
    parts[#parts + 1] = k .. "=" .. spec_key(v[key])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Runs one configuration. label names the row of the comparison (seeds of one label are
-- averaged); study = the published number (percent) or text; metric = "accuracy" (default) or
-- "final_loss". Returns tp.run's result (nil, err on failure; the script goes on).
function Study:run(label, spec, study, metric)
  local t0 = os.clock()
  local r, err = self.tp.run(spec)
  local secs = os.clock() - t0
  local line
  if r then
    local loss = ""
    if r.first_loss and r.final_loss then
      loss = string.format("  loss %.3f -> %.3f", r.first_loss, r.final_loss)
    end
    line = string.format("%-34s %-7s acc %s%% n=%d (%s)%s  [%.1fs cpu]", label, r.status,
      pct(r.accuracy), r.n or 0, r.scheme or "?", loss, secs)
  else
    line = string.format("%-34s FAILED: %s", label, tostring(err))
  end
  print(line)
  io.stdout:flush()
  local key = r and r.config_hash or spec_key(spec)
  if not self.seen[key] then
    self.seen[key] = true
    self.n_runs = self.n_runs + 1
  end
  self.entries[#self.entries + 1] = {label = label, r = r, err = err, study = study,
                                     metric = metric or "accuracy", seed = spec.seed}
  return r, err
end

local function mean_std(xs)
  local n, s = #xs, 0
  for _, x in ipairs(xs) do s = s + x end
  local m = s / n
  if n < 2 then return m, nil end
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, math.sqrt(v / (n - 1))
end

-- One row per label: ours (mean ± std over seeds, with the count) beside the study's number.
function Study:compare(title)
  local order, rows = {}, {}
  for _, e in ipairs(self.entries) do
    local row = rows[e.label]
    if not row then
      row = {label = e.label, vals = {}, fails = {}, study = e.study, metric = e.metric}
      rows[e.label] = row
      order[#order + 1] = e.label
    end
    local v = e.r and (e.metric == "final_loss" and e.r.final_loss or e.r.accuracy)
    if v then
      row.vals[#row.vals + 1] = e.metric == "final_loss" and v or 100 * v
      row.scheme = e.r.scheme
      row.n = e.r.n
    else
      row.fails[#row.fails + 1] = e.err or "no value"
    end
  end
  print()
  if title then print("### " .. title) end
  print("| configuration | ours | n | seeds | scheme | study |")
  print("|---|---|---|---|---|---|")
  for _, label in ipairs(order) do
    local row = rows[label]
    local ours
    if #row.vals > 0 then
      local m, sd = mean_std(row.vals)
      local fmt = row.metric == "final_loss" and "%.3f" or "%.1f"
      ours = string.format(fmt, m) .. (sd and string.format(" ± " .. fmt, sd) or "")
      if row.metric == "final_loss" then ours = "loss " .. ours end
      if #row.fails > 0 then ours = ours .. string.format(" (%d failed)", #row.fails) end
    else
      ours = "failed: " .. tostring(row.fails[1]):sub(1, 70):gsub("|", "/")
    end
    local study = row.study
    if type(study) == "number" then study = string.format("%g", study) end
    print(string.format("| %s | %s | %s | %d | %s | %s |", label, ours, row.n or "-",
      #row.vals + #row.fails, row.scheme or "-", study or "-"))
  end
  io.stdout:flush()
end

-- The closing line the e2e tests read: distinct configurations tried, and how many failed.
function Study:finish()
  local failed = 0
  for _, e in ipairs(self.entries) do if not e.r then failed = failed + 1 end end
  print(string.format("study: %d runs (%d calls, %d failed calls)", self.n_runs,
    #self.entries, failed))
  io.stdout:flush()
end

-- The results.db table of this script's runs (tp.table); a table error is printed, not raised,
-- so a finished sweep still reaches its summary.
function Study:db_table(opts)
  local ok, err = pcall(self.tp.table, opts)
  if not ok then print("table: " .. tostring(err)) end
end

-- A figure from results.db: tp.plot{} when this build has it, else the `telepathy plot` command
-- that draws it (same options).
function Study:plot(o)
  if self.tp.plot then
    local ok, err = pcall(self.tp.plot, o)
    print(ok and ("plot: wrote " .. o.out) or ("plot: " .. tostring(err)))
    return
  end
  local cmd = {"telepathy plot", o.kind, "-o", o.out}
  for _, k in ipairs{"experiment", "metric", "x", "series", "title"} do
    if o[k] then cmd[#cmd + 1] = string.format("--%s '%s'", k, o[k]) end
  end
  print("plot: this build has no tp.plot; draw it with: " .. table.concat(cmd, " ") ..
    " --db <this results.db>")
end

-- ---- phases -------------------------------------------------------------------------------------
-- A phase script returns study.phase(tp, P) where P = {number, title, task, bridge, losses,
-- metric, study, run = function(S, P) ... end}. Run directly it runs and prints its row;
-- loaded by phases/all.lua (M.collecting = true) it only returns P.
M.collecting = false

function M.phase(tp, P)
  if M.collecting then return P end
  local S = M.setup(tp)
  P.run(S, P)
  S:compare(string.format("Phase %s: %s", P.number, P.title))
  S:finish()
  return P
end

return M
