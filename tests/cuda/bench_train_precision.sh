#!/usr/bin/env bash
# bench_train_precision.sh — `telepathy bench --train-precision bf16|f32` on the CPU with tiny
# models: the train_step case runs in both precisions, bf16 by default (the study's and the
# peer's pure-bf16 training); the JSON row, the markdown and stdout notes and the stored config
# say which ran (read back from the bridge's params, not echoed from the option); a bad value is a
# usage error. Env: TELEPATHY (the binary).
set -u
T=${TELEPATHY:?TELEPATHY not set}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

for p in default bf16 f32; do
  opt=""
  [ "$p" != default ] && opt="--train-precision $p"
  # shellcheck disable=SC2086
  "$T" bench --device cpu --tiny --layers 1 --batches 8 --cases train_step --iters 1 --warmup 1 \
    $opt --json "$D/$p.json" --md "$D/$p.md" --db "$D/$p.db" >"$D/$p.out" 2>"$D/$p.err"
  rc=$?
  check '[ $rc -eq 0 ]' "$p: bench exits 0 (got $rc): $(tail -3 "$D/$p.err")"
  want=$p
  [ "$p" = default ] && want=bf16
  check 'grep -q "\"train_precision\": \"$want\"" "$D/$p.json"' "$p: JSON train_step row says $want"
  n=$(grep -c '"impl": "telepathy"' "$D/$p.json" 2>/dev/null || echo 0)
  check '[ "$n" -eq 1 ]' "$p: one train_step row (got $n)"
  check 'grep -q "| train_step | 8 |" "$D/$p.md"' "$p: markdown has the train_step row"
  if [ "$want" = bf16 ]; then
    check 'grep -q "^train_step: pure bf16" "$D/$p.out"' "$p: stdout note says pure bf16"
    check 'grep -q "train_step (ours): pure bf16" "$D/$p.md"' "$p: markdown note says pure bf16"
  else
    check 'grep -q "^train_step: f32 master weights" "$D/$p.out"' "$p: stdout note says f32"
    check 'grep -q "train_step (ours): f32 master" "$D/$p.md"' "$p: markdown note says f32"
  fi
  if command -v sqlite3 >/dev/null; then
    cfg=$(sqlite3 "$D/$p.db" "SELECT config_json FROM runs" 2>/dev/null)
    check 'echo "$cfg" | grep -q "\"train_precision\":\"$want\""' "$p: stored config says $want: $cfg"
  fi
done

"$T" bench --device cpu --tiny --train-precision f16 >/dev/null 2>"$D/e1"
check '[ $? -eq 2 ] && grep -q "train-precision" "$D/e1"' "--train-precision f16: exit 2"
"$T" bench --help | grep -q -- "--train-precision"
check '[ $? -eq 0 ]' "--help lists --train-precision"
exit $fail
