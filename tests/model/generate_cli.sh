#!/usr/bin/env bash
# generate_cli.sh — `telepathy generate`: output, determinism (greedy; sampled with a seed), the
# usage errors (exit 2) and the failures (exit 1, message naming the problem). With ../shared,
# the real pretrained stories260K (imported from llama2.c) must continue "Once upon a time" with
# the text the model was trained to produce.
set -u
T=${TELEPATHY:?TELEPATHY not set}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail=0
check() { # check NAME EXPECTED_RC CMD...
  local name=$1 want=$2
  shift 2
  "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  if [ "$rc" != "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want"; cat "$W/err"; fail=1
  fi
}
has() { # has NAME FILE TEXT
  if ! grep -qF -- "$3" "$2"; then echo "FAIL $1: '$3' not in $(cat "$2")"; fail=1; fi
}

"$T" make-tiny "$W/m" --arch llama --seed 5 >/dev/null 2>&1 || { echo "FAIL make-tiny"; exit 1; }
check greedy 0 "$T" generate --model "$W/m" --prompt "Hello there" --max-new-tokens 10
cp "$W/out" "$W/g1"
[ -s "$W/g1" ] || { echo "FAIL greedy: empty output"; fail=1; }
check greedy-again 0 "$T" -q generate --model "$W/m" --prompt "Hello there" --max-new-tokens 10
cmp -s "$W/g1" "$W/out" || { echo "FAIL greedy is not deterministic"; fail=1; }
check sampled 0 "$T" generate --model "$W/m" --prompt "Hi" --max-new-tokens 12 --temperature 1.3 --top-p 0.95 --seed 9
cp "$W/out" "$W/s1"
check sampled-again 0 "$T" generate --model "$W/m" --prompt "Hi" --max-new-tokens 12 --temperature=1.3 --top-p=0.95 --seed=9
cmp -s "$W/s1" "$W/out" || { echo "FAIL sampling with one seed is not reproducible"; fail=1; }
check empty-prompt 0 "$T" generate --model "$W/m" --prompt "" --max-new-tokens 4
check help 0 "$T" generate --help
has help "$W/out" "--max-new-tokens"

check no-model 2 "$T" generate --prompt x
has no-model "$W/err" "--model DIR is required"
check no-prompt 2 "$T" generate --model "$W/m"
check greedy-and-temp 2 "$T" generate --model "$W/m" --prompt x --greedy --temperature 0.5
has greedy-and-temp "$W/err" "--greedy cannot be combined"
check bad-top-p 2 "$T" generate --model "$W/m" --prompt x --top-p 1.5
has bad-top-p "$W/err" "--top-p"
check bad-n 2 "$T" generate --model "$W/m" --prompt x --max-new-tokens ten
check unknown-opt 2 "$T" generate --model "$W/m" --prompt x --topp 0.5
has unknown-opt "$W/err" "unknown option '--topp'"
check missing-dir 1 "$T" generate --model "$W/nope" --prompt x
has missing-dir "$W/err" "$W/nope"
mkdir -p "$W/notok" && cp "$W/m/config.json" "$W/m/model.safetensors" "$W/notok/"
check no-tokenizer 1 "$T" generate --model "$W/notok" --prompt x
has no-tokenizer "$W/err" "no tokenizer.json or tokenizer.model"
check too-long 1 "$T" generate --model "$W/m" --prompt x --max-new-tokens 5000
has too-long "$W/err" "max_position_embeddings 4096"

S=${TP_SHARED_DIR:-}
if [ -n "$S" ] && [ -f "$S/models/stories260K/stories260K.bin" ]; then
  "$T" import-llama2c "$S/models/stories260K/stories260K.bin" "$S/models/stories260K/tok512.bin" \
    "$W/st" >/dev/null 2>&1 || { echo "FAIL import-llama2c"; fail=1; }
  check stories 0 "$T" generate --model "$W/st" --prompt "Once upon a time" --max-new-tokens 30
  has stories "$W/out" "there was a little girl named Lily. She loved to play outside"
else
  echo "SKIP stories260K: ../shared not found (set TP_SHARED_DIR)"
fi
[ "$fail" = 0 ] && echo "generate_cli: ok"
exit "$fail"
