-- exp008_paper_multiseed.lua — the study's exp008, the paper's multi-seed run (seeds 42/123/456;
-- no JSON was preserved, numbers from STUDY.md): SST-2 (layer 16, M=8), AG News (layer 31, M=8,
-- 3,000 steps) and TREC (layer 31, M=16, batch 8); Perceiver depth 2, 8 heads, lr 2e-4, warmup
-- 100 + cosine, diversity 0.1, corrected prompts, 200 eval rows, label-restricted first-token
-- scoring; then the paper's baselines, each with the information the bridge has: direct text,
-- text relay with the label list, prompt tuning reading the text, linear probe (layer 16,
-- first 5,000 train rows).
-- Compare with (STUDY.md): SST-2 96.7 ± 0.6, AG News 90.7 ± 0.5, TREC 95.3 ± 0.3 (200 rows; the
-- paper's Table 1 on full test sets, 2 seeds: 93.7 / 90.7 / 87.9); text relay with labels 71.0 /
-- 64.5 / 58.0; prompt tuning with text 97.5 / 82.5 / 90.0; linear probe 92.1 / 86.8 / 95.0.
--   telepathy run experiments/preserved/exp008_paper_multiseed.lua [-- models=tiny seeds=1 ...]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
local study = require "study"
local S = study.setup(tp)
for _, t in ipairs(preserved.exp008_tasks) do
  for _, seed in ipairs(S:seeds(study.SEEDS)) do
    S:run(t.name .. " perceiver (exp008)", preserved.exp008_bridge(S, t, seed), t.study)
  end
end
for _, t in ipairs(preserved.exp008_tasks) do
  for _, seed in ipairs(S:seeds(study.SEEDS)) do
    for _, b in ipairs(preserved.exp008_baselines(S, t, seed)) do S:run(b[1], b[2], b[3]) end
  end
end
S:compare("exp008: paper multi-seed (200 rows)")
S:finish()
