-- report.lua — small helpers shared by experiment scripts: run one configuration, print a
-- one-line summary, and keep going when it fails (the failure is already recorded in
-- results.db with its error and traceback).
--
--   local report = require "report"
--   local r = report.run(tp, "seed 1 perceiver", {sender = s, receiver = r, task = "toy", ...})
local M = {}

local function pct(x)
  return x and string.format("%.1f%%", 100 * x) or "?"
end

-- One line for a result table of tp.run (or its error).
function M.line(label, r, err)
  if not r then
    return string.format("%-28s FAILED: %s", label, tostring(err))
  end
  local loss = ""
  if r.first_loss and r.final_loss then
    loss = string.format("  loss %.3f -> %.3f", r.first_loss, r.final_loss)
  end
  return string.format("%-28s %-7s acc %s [%s, %s] n=%d (%s)%s", label, r.status, pct(r.accuracy),
    pct(r.ci_low), pct(r.ci_high), r.n or 0, r.scheme or "?", loss)
end

-- Runs spec, prints its line, returns the result (nil, err on failure; the script goes on).
function M.run(tp, label, spec)
  local r, err = tp.run(spec)
  print(M.line(label, r, err))
  io.stdout:flush()
  return r, err
end

-- A shallow copy of base with the fields of extra set on top.
function M.with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

return M
