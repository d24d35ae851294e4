#!/bin/bash
# gsm8k_real.sh — a bridge on the REAL GSM8K files end to end through `telepathy run`: the study's
# GSM8K bridge (latent_cot, phase 19 / exp007) trained on the tiny models on the first 64 rows of
# ../shared/data/gsm8k/train.jsonl for 16 steps, then evaluated with generation scoring on an
# 8-row seeded slice of test.jsonl, with the receiver-direct, sender-direct and text-relay
# baselines on the same slice, and receiver-direct again with the task option answer = question
# (phase 10's training target) (tests/e2e/gsm8k_real.lua). Checked on the results.db it wrote
# (tests/e2e/gsm8k_real_check.lua):
#   - the five runs are done, task gsm8k version 2, the bridge latent_cot with one finite
#     train/loss per step, max_train in every config;
#   - each has exact_match / accuracy / digit_accuracy rows (split eval, scheme generate, n 8), the
#     accuracy in [0, 1], inside its Wilson interval and equal to the share of correct predictions;
#   - 8 predictions per run, the same rows for all five; each gold (answer = question's too)
#     equals that row's '#### N' in test.jsonl with thousands separators stripped (read by the
#     checker's own JSON reader; the eval_seed is chosen so the slice holds "#### 1,450,000",
#     "#### 1,875" and "#### -3", and one question with \u2019 escapes); each prediction is an
#     extracted, normalised number or empty; correct and score (digit accuracy) agree with gold
#     and prediction; the example, prompt and target hashes are the sha256 of the decoded
#     question, the filled prompt and the gold; the relay's summaries are stored;
#   - re-running the script skips all five (same config hashes, no new runs).
# NOT asserted: learning. Random 64/96-wide tiny models trained for 16 steps score ~0 on GSM8K
# (the study's 8B pair reached 2.0%); most outputs hold no number at all (predictions stay
# empty), and the few numbers they do write are chance.
# Skips when ../shared is absent. ~5 s (~25 s under the sanitizers).
# Env (set by ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR, TELEPATHY_PLUGIN_PATH.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
SRC=${TP_SOURCE_DIR:?TP_SOURCE_DIR must point at the source tree}
SHARED=${TP_SHARED_DIR:-}
TEST=${SHARED:+$SHARED/data/gsm8k/test.jsonl}
if [ -z "$SHARED" ] || [ ! -f "$TEST" ] || [ ! -f "$SHARED/data/gsm8k/train.jsonl" ]; then
  echo "SKIP: needs the real GSM8K files in \$TP_SHARED_DIR/data/gsm8k (absent)"
  exit 0
fi
N_TRAIN=64 STEPS=16 EVAL_N=8 EVAL_SEED=2234 GEN=16
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset TELEPATHY_CONFIG
cd "$work" || exit 1
"$T" make-tiny models/sender --arch llama --seed 1 >/dev/null || { echo "FAIL: make-tiny"; exit 1; }
"$T" make-tiny models/receiver --arch mistral --seed 2 >/dev/null ||
  { echo "FAIL: make-tiny"; exit 1; }

experiment() { # output file
  "$T" run "$SRC/tests/e2e/gsm8k_real.lua" --db r.db --set "paths.data=$SHARED/data" \
    -- models $N_TRAIN $STEPS $EVAL_N $EVAL_SEED $GEN >"$1" 2>"$1.err"
}
start=$(date +%s)
if ! experiment run1.txt; then
  echo "FAIL: gsm8k_real.lua exited non-zero"; cat run1.txt; tail -20 run1.txt.err; exit 1
fi
echo "experiment took $(( $(date +%s) - start ))s"
cat run1.txt
N_RUNS=5
n_done=$(grep -c "^run	.*	done	" run1.txt)
[ "$n_done" = $N_RUNS ] || { echo "FAIL: $n_done of $N_RUNS runs done"; fail=1; }

# the evaluated rows, then the check with those rows of test.jsonl passed byte for byte
cat > ids.lua <<'LUA'
local tp = require "telepathy"
for _, r in ipairs(tp.query("SELECT DISTINCT example_id AS id FROM predictions")) do print(r.id) end
LUA
"$T" run ids.lua --db r.db >ids.txt 2>&1 || { echo "FAIL: ids query"; cat ids.txt; exit 1; }
rows=()
while read -r id; do
  case $id in
    '' | *[!0-9]*) echo "FAIL: example_id '$id' is not a row index"; fail=1; continue;;
  esac
  rows+=("$id=$(sed -n "$((id + 1))p" "$TEST")")
done <ids.txt
[ ${#rows[@]} = $EVAL_N ] ||
  { echo "FAIL: ${#rows[@]} distinct evaluated rows, expected $EVAL_N"; fail=1; }
"$T" run "$SRC/tests/e2e/gsm8k_real_check.lua" --db r.db -- $N_TRAIN $STEPS $EVAL_N "${rows[@]}" \
  >check.txt 2>&1 || { echo "FAIL: the check script failed"; cat check.txt; exit 1; }
grep -v "^hash	" check.txt
grep -q "^FAIL" check.txt && fail=1
grep -q "^checked $((N_RUNS * EVAL_N)) predictions, 0 failures$" check.txt || {
  echo "FAIL: the checker did not check $((N_RUNS * EVAL_N)) predictions cleanly"; fail=1; }
n_hash=0
while IFS=$'\t' read -r tag id what stored hexed; do
  [ "$tag" = hash ] || continue
  got=$(printf "$(echo "$hexed" | sed 's/../\\x&/g')" | sha256sum | cut -d' ' -f1)
  if [ "$got" != "$stored" ]; then
    echo "FAIL: example $id: stored ${what}_hash $stored, sha256 of the file's text is $got"
    fail=1
  fi
  n_hash=$((n_hash + 1))
done <check.txt
[ $n_hash = $((3 * N_RUNS * EVAL_N)) ] || {
  echo "FAIL: $n_hash hashes compared, expected $((3 * N_RUNS * EVAL_N))"; fail=1; }

# re-running the experiment finds every configuration done
experiment run2.txt || { echo "FAIL: the re-run exited non-zero"; tail -20 run2.txt.err; fail=1; }
n_skip=$(grep -c "^run	.*	skipped	" run2.txt)
[ "$n_skip" = $N_RUNS ] ||
  { echo "FAIL: the re-run skipped $n_skip of $N_RUNS runs"; cat run2.txt; fail=1; }
cat > count.lua <<'LUA'
local tp = require "telepathy"
print("runs " .. tp.query("SELECT COUNT(*) AS n FROM runs")[1].n)
LUA
"$T" run count.lua --db r.db >count.txt 2>&1
grep -qx "runs $N_RUNS" count.txt || { echo "FAIL: after the re-run:"; cat count.txt; fail=1; }

[ $fail = 0 ] && echo PASS || echo FAILED
exit $fail
