#!/usr/bin/env bash
# bench_cli.sh — `telepathy bench` as a command, on the CPU with tiny models (the GPU run uses the
# same driver with real shapes): exit codes, the JSON / markdown tables and the results.db rows,
# usage errors. Env: TELEPATHY (the binary).
set -u
T=${TELEPATHY:?TELEPATHY not set}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

"$T" bench --device cpu --tiny --batches 1,8 --iters 1 --warmup 0 --db "$D/r.db" \
  --json "$D/b.json" --md "$D/b.md" >"$D/out" 2>"$D/err"
rc=$?
check '[ $rc -eq 0 ]' "tiny cpu bench exits 0 (got $rc): $(tail -3 "$D/err")"
check '[ -s "$D/b.json" ] && [ -s "$D/b.md" ]' "json and markdown written"
# 8 cases at batch 1 (no train_step), 9 at batch 8 (attention and decode_token included)
n=$(grep -c '"impl": "telepathy"' "$D/b.json" 2>/dev/null || echo 0)
check '[ "$n" -eq 17 ]' "17 telepathy rows in the JSON (got $n)"
# decode_token states what one step reads and the bandwidth that makes
check 'grep -q "| decode_token | 8 |" "$D/b.md"' "markdown has the decode_token row at batch 8"
check 'grep -q "^decode_token (ours), batch 1, .* GB read, .* TB/s" "$D/b.md"' "decode_token bandwidth note"
check '[ "$(grep -c "\"tb_per_s\"" "$D/b.json")" -eq 2 ]' "decode_token rows carry tb_per_s"
check 'grep -q "| attention | 1 |" "$D/b.md"' "markdown has the attention row"
check 'grep -q "| train_step | 8 |" "$D/b.md"' "markdown has the train_step row at batch 8"
check '! grep -q "| train_step | 1 |" "$D/b.md"' "train_step only at batch 8"
check 'grep -q "^text_relay *1 " "$D/out"' "stdout table lists text_relay at batch 1"
check '[ -s "$D/r.db" ]' "results.db written"

# a subset of cases
"$T" bench --device cpu --tiny --batches 2 --iters 1 --warmup 0 --cases bridge,receiver_direct \
  --json "$D/c.json" >/dev/null 2>&1
n=$(grep -c '"impl"' "$D/c.json" 2>/dev/null || echo 0)
check '[ "$n" -eq 2 ]' "--cases selects 2 rows (got $n)"

# usage errors exit 2 and name the problem
"$T" bench --bogus >/dev/null 2>"$D/e1"
check '[ $? -eq 2 ] && grep -q "unknown option" "$D/e1"' "unknown option: exit 2"
"$T" bench --device cpu >/dev/null 2>"$D/e2"
check '[ $? -eq 2 ] && grep -q "needs --tiny" "$D/e2"' "cpu without --tiny: exit 2"
"$T" bench --batches 1,x >/dev/null 2>"$D/e3"
check '[ $? -eq 2 ] && grep -q "batches" "$D/e3"' "bad --batches: exit 2"
"$T" bench --iters 0 >/dev/null 2>"$D/e4"
check '[ $? -eq 2 ] && grep -q "iters" "$D/e4"' "--iters 0: exit 2"
# --deadline: a peer still running at the deadline is stopped, the rows it wrote are kept
cat >"$D/peer.sh" <<'EOF2'
out=""
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
echo '[{"impl": "torch", "case": "bridge", "batch": 1, "ms": 2.5, "peak_mb": 1, "device": "fake"}]' >"$out"
sleep 60
EOF2
t0=$(date +%s)
"$T" bench --device cpu --tiny --batches 1 --iters 1 --warmup 0 --cases bridge --deadline 12 \
  --python bash --peer "$D/peer.sh" --json "$D/d.json" >/dev/null 2>"$D/e5"
rc=$?
t1=$(date +%s)
check '[ $rc -eq 0 ] && [ $((t1 - t0)) -lt 40 ]' "--deadline stops the peer (rc $rc, $((t1 - t0)) s)"
check 'grep -q "(--deadline)" "$D/e5"' "the stop is reported: $(tail -2 "$D/e5")"
check 'grep -q "\"impl\": \"torch\"" "$D/d.json"' "the peer row written before the stop is kept"

"$T" bench --help | grep -q "train_step"
check '[ $? -eq 0 ]' "--help describes the cases"
exit $fail
