-- gsm8k_real_check.lua — the checks of tests/e2e/gsm8k_real.sh on the results.db that
-- gsm8k_real.lua wrote (not a test itself: ctest globs *.sh). Scripts cannot open files, so the
-- shell passes the raw test.jsonl lines of the evaluated rows as arguments; this file decodes them
-- with its own small JSON reader (independent of the task plugin's) and compares them with what
-- the db holds. The runs, in order: latent_cot, receiver_direct, sender_direct, text_relay,
-- receiver_direct with the task option answer = question (whose evaluation gold must still be the
-- final answer).
--   telepathy run gsm8k_real_check.lua --db DB -- n_train steps eval_n ID=LINE ...
-- (ID = predictions.example_id, LINE = line ID+1 of test.jsonl, byte for byte.)
-- Prints "FAIL: ..." for each failed check, "hash<TAB>id<TAB>what<TAB>stored sha256<TAB>hex of
-- the text" for the shell to compare with sha256sum (Lua has no sha256), an "accuracy" line
-- per run, and last "checked N predictions, F failures".
local tp = require "telepathy"
local args = {...}
local n_train, steps, eval_n = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
local fails = 0
local function fail(fmt, ...)
  fails = fails + 1
  print("FAIL: " .. string.format(fmt, ...))
end

-- ---- a JSON Lines reader for GSM8K's objects of string fields ----------------------------------
local ESC = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r',
             t = '\t'}
local function jstring(s, i) -- s:sub(i, i) == '"'; returns the decoded text and the next index
  local out = {}
  i = i + 1
  while true do
    local c = s:sub(i, i)
    if c == "" then error("unterminated string", 0) end
    if c == '"' then return table.concat(out), i + 1 end
    if c ~= "\\" then
      out[#out + 1] = c
      i = i + 1
    else
      local e = s:sub(i + 1, i + 1)
      if ESC[e] then
        out[#out + 1] = ESC[e]
        i = i + 2
      elseif e == "u" then
        local cp = tonumber(s:sub(i + 2, i + 5), 16) or error("bad \\u escape", 0)
        i = i + 6
        if cp >= 0xD800 and cp < 0xDC00 and s:sub(i, i + 1) == "\\u" then -- surrogate pair
          local lo = tonumber(s:sub(i + 2, i + 5), 16) or error("bad \\u escape", 0)
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          i = i + 6
        end
        out[#out + 1] = utf8.char(cp)
      else
        error("bad escape \\" .. e, 0)
      end
    end
  end
end

local function jobject(s)
  local o, i = {}, s:find("%S")
  if s:sub(i, i) ~= "{" then error("not an object", 0) end
  i = s:find("%S", i + 1)
  while s:sub(i, i) ~= "}" do
    local k, v
    k, i = jstring(s, i)
    i = s:find("%S", i)
    if s:sub(i, i) ~= ":" then error("expected ':'", 0) end
    i = s:find("%S", i + 1)
    v, i = jstring(s, i)
    o[k] = v
    i = s:find("%S", i)
    if s:sub(i, i) == "," then i = s:find("%S", i + 1) end
  end
  return o
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- ---- the file's rows ----------------------------------------------------------------------------
local file = {} -- id -> {question, gold (commas stripped), raw (#### text)}
local n_comma, n_neg = 0, 0
for i = 4, #args do
  local id, line = args[i]:match("^(%d+)=(.*)$")
  local ok, o = pcall(jobject, line or "")
  if not id or not ok or not o.question or not o.answer then
    fail("argument %d: expected ID=<a test.jsonl line with question and answer> (%s)", i,
      tostring(o))
  else
    local raw = o.answer:match(".*####(.*)$")
    raw = raw and raw:match("^%s*(.-)%s*$")
    if not raw or not raw:match("^%-?[%d,]+$") then
      fail("test.jsonl row %s: answer's '#### N' is '%s', expected an integer", id, tostring(raw))
    else
      file[id] = {question = o.question, gold = raw:gsub(",", ""), raw = raw}
      if raw:find(",") then n_comma = n_comma + 1 end
      if raw:find("^%-") then n_neg = n_neg + 1 end
    end
  end
end
-- the slice must exercise the normalisation: thousands separators stripped, the sign kept
if n_comma == 0 or n_neg == 0 then
  fail("the evaluated slice has %d answers with a thousands separator and %d negative ones; " ..
    "expected at least one of each (pick another eval_seed in gsm8k_real.sh)", n_comma, n_neg)
end

-- ---- runs ---------------------------------------------------------------------------------------
local runs = tp.query("SELECT id, status, task, task_version, bridge, config_json, error FROM " ..
                      "runs ORDER BY id")
if #runs ~= 5 then fail("results.db holds %d runs, expected 5", #runs) end
local KINDS = {"bridge", "receiver_direct", "sender_direct", "text_relay", "receiver_direct"}
local ids = nil -- the example ids of the first run, which every run must share
local checked = 0
for k, r in ipairs(runs) do
  local kind = r.config_json:match('"kind":"([%w_]+)"')
  if kind ~= KINDS[k] then
    fail("run %d: kind '%s', expected %s", r.id, tostring(kind), KINDS[k])
  end
  if r.status ~= "done" then fail("run %d: status %s (%s)", r.id, r.status, tostring(r.error)) end
  if r.task ~= "gsm8k" or r.task_version ~= "2" then
    fail("run %d: task %s version %s, expected gsm8k 2", r.id, tostring(r.task),
      tostring(r.task_version))
  end
  if not r.config_json:find('"max_train":' .. n_train .. '[,}]') then
    fail("run %d: config_json lacks task option max_train = %d", r.id, n_train)
  end
  if kind == "bridge" then
    if r.bridge ~= "latent_cot" then fail("run %d: bridge %s", r.id, tostring(r.bridge)) end
    local m = tp.query("SELECT COUNT(*) AS n, SUM(value = value AND value < 1e30) AS ok " ..
                       "FROM metrics WHERE run_id = ? AND name = 'train/loss'", r.id)[1]
    if m.n ~= steps or m.ok ~= steps then
      fail("run %d: %d train/loss rows (%s finite), expected %d", r.id, m.n, tostring(m.ok), steps)
    end
  end

  -- results: exact_match = accuracy in [0, 1] over eval_n rows, digit_accuracy, all on split eval
  local res = {}
  for _, x in ipairs(tp.query("SELECT metric, value, ci_low, ci_high, n, scheme, split FROM " ..
                              "results WHERE run_id = ?", r.id)) do
    res[x.metric] = x
    if x.n ~= eval_n or x.scheme ~= "generate" or x.split ~= "eval" then
      fail("run %d: result %s has n %s scheme %s split %s, expected %d generate eval", r.id,
        x.metric, tostring(x.n), tostring(x.scheme), tostring(x.split), eval_n)
    end
  end
  for _, m in ipairs{"exact_match", "accuracy", "digit_accuracy"} do
    if not res[m] then fail("run %d: no result row '%s'", r.id, m) end
  end

  -- predictions against the file and against the result rows
  local preds = tp.query("SELECT example_id, gold, prediction, correct, score, split, " ..
                         "example_hash, prompt_hash, target_hash, output FROM predictions " ..
                         "WHERE run_id = ? ORDER BY CAST(example_id AS INTEGER)", r.id)
  if #preds ~= eval_n then fail("run %d: %d predictions, expected %d", r.id, #preds, eval_n) end
  local these, n_right, dsum = {}, 0, 0
  for _, p in ipairs(preds) do
    local id = p.example_id
    these[#these + 1] = id
    checked = checked + 1
    local f = file[id]
    if not f then
      fail("run %d: prediction for example %s, a row the shell did not pass", r.id, id)
    else
      if p.gold ~= f.gold then
        fail("run %d: example %s (test.jsonl line %d): gold '%s', the file says '#### %s'",
          r.id, id, id + 1, tostring(p.gold), f.raw)
      end
      -- an extracted answer is a normalised number or nothing (no number in the output)
      local pr = p.prediction or ""
      if pr ~= "" and not (pr:match("^%-?%d+$") or pr:match("^%-?%d+%.%d*[1-9]$")) then
        fail("run %d: example %s: prediction '%s' is not an extracted, normalised number", r.id,
          id, pr)
      end
      local right = pr ~= "" and pr == p.gold
      if p.correct ~= (right and 1 or 0) then
        fail("run %d: example %s: correct = %s for '%s' vs gold '%s'", r.id, id,
          tostring(p.correct), pr, p.gold)
      end
      local g, k = p.gold, 0
      for c = 1, #g do k = k + (pr:sub(c, c) == g:sub(c, c) and 1 or 0) end
      if not p.score or math.abs(p.score - k / #g) > 1e-12 then
        fail("run %d: example %s: score %s, expected digit accuracy %d/%d", r.id, id,
          tostring(p.score), k, #g)
      end
      if p.split ~= "eval" then fail("run %d: example %s: split %s", r.id, id, p.split) end
      if kind == "text_relay" and (p.output == nil or p.output == "") then
        fail("run %d: example %s: no stored summary (predictions.output)", r.id, id)
      end
      -- other runs keep the generated text the answer was extracted from: the number found
      -- must stand in it (commas, as the extractor strips them)
      if kind ~= "text_relay" then
        if p.output == nil then
          fail("run %d: example %s: no stored generation (predictions.output)", r.id, id)
        elseif pr ~= "" and not p.output:gsub(",", ""):find(pr, 1, true) then
          fail("run %d: example %s: extracted '%s' does not occur in the generation '%s'", r.id,
            id, pr, p.output)
        end
      end
      n_right = n_right + (right and 1 or 0)
      dsum = dsum + k / #g
      -- the hashes pair runs on the same example, prompt and target (the sender template is
      -- gsm8k's sender and direct template alike); the shell checks them with sha256sum
      local prompt = "Question: " .. f.question .. "\nLet me solve this step by step."
      print(string.format("hash\t%s\texample\t%s\t%s", id, p.example_hash, hex(f.question)))
      print(string.format("hash\t%s\tprompt\t%s\t%s", id, p.prompt_hash, hex(prompt)))
      print(string.format("hash\t%s\ttarget\t%s\t%s", id, p.target_hash, hex(f.gold)))
    end
  end
  if ids and table.concat(ids, ",") ~= table.concat(these, ",") then
    fail("run %d evaluated rows %s, run %d rows %s: not the same slice", r.id,
      table.concat(these, ","), runs[1].id, table.concat(ids, ","))
  end
  ids = ids or these
  local acc = res.accuracy and res.accuracy.value
  if acc then
    if not (acc >= 0 and acc <= 1) or math.abs(acc - n_right / eval_n) > 1e-12 or
        res.exact_match.value ~= acc then
      fail("run %d: accuracy %s, exact_match %s, but %d of %d predictions are right", r.id,
        tostring(acc), tostring(res.exact_match and res.exact_match.value), n_right, eval_n)
    end
    if not (res.accuracy.ci_low <= acc and acc <= res.accuracy.ci_high) then
      fail("run %d: accuracy %g outside its interval [%g, %g]", r.id, acc, res.accuracy.ci_low,
        res.accuracy.ci_high)
    end
    local d = res.digit_accuracy and res.digit_accuracy.value
    if not d or math.abs(d - dsum / eval_n) > 1e-12 then
      fail("run %d: digit_accuracy %s, the predictions give %g", r.id, tostring(d), dsum / eval_n)
    end
    local n_num = 0
    for _, p in ipairs(preds) do n_num = n_num + ((p.prediction or "") ~= "" and 1 or 0) end
    print(string.format("accuracy\t%s\t%g\t%d/%d right\t%d answers extracted", KINDS[k], acc,
      n_right, eval_n, n_num))
  end
end
print(string.format("checked %d predictions, %d failures", checked, fails))
