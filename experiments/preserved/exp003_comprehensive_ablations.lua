-- exp003_comprehensive_ablations.lua — the study's preserved exp003: 25 configurations on SST-2
-- (old prompt, first 10,000 training rows, 1,000 steps, batch 16, lr 2e-4, 200 eval rows,
-- generate + match): six architectures trained and untrained (perceiver = "continuous", the
-- diffusion refiner, MLP, linear, mean-pool, identity), sender layers 0/8/24/31, 4/8/16/64
-- latents, depth 1/4, diversity 0/0.5, and Mistral -> Llama; plus the two text baselines.
-- Compare with: ../shared/preserved/exp003_comprehensive_ablations/results.json — perceiver 92.0,
-- diffusion 85.5, MLP 91.5, linear 91.5, mean-pool 0.0, identity 0.0 (untrained all 0.0);
-- layer 0/8/24/31: 66.5/88.0/89.0/94.5 (layer 16 = the perceiver row, 92.0); latents
-- 4/8/16/64: 92.5/96.5/92.5/90.5; depth 1/4: 92.5/93.0; diversity 0.0/0.5: 83.5/91.5;
-- reverse 94.5; Mistral text 93.5, Llama text 89.0.
--   telepathy run experiments/preserved/exp003_comprehensive_ablations.lua [-- models=tiny ...]
local tp = require "telepathy"
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
package.path = here .. "../lib/?.lua;" .. package.path
local preserved = require "preserved"
preserved.main(tp, "exp003: comprehensive ablations (SST-2)", preserved.exp003)
