-- exp002_sst2_baselines.lua — the study's preserved exp002 (SST-2 text baselines, old-prompt
-- era): the receiver (Mistral) and the sender (Llama) each read the SST-2 direct prompt (with the
-- label list), 200 rows, generate + match.
-- Compare with: ../shared/preserved/exp002_sst2_baselines/sst2_baselines.json — Mistral text
-- 93.5 (187/200), Llama text 89.0 (178/200); random 50.0 and majority 50.9 (444/872) are label
-- arithmetic, not runs; the noise baseline (random soft tokens, 0.0) has no counterpart here.
--   telepathy run experiments/preserved/exp002_sst2_baselines.lua [-- models=tiny eval_n=8]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp002: SST-2 baselines", preserved.exp002)
