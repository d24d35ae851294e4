#!/usr/bin/env bash
# device_run.sh — the whole GPU check in one call, run from the repo root on the GPU machine.
# Needs the binaries packed by kernels/pack.sh here (carry [".carry"]; or a carried build-cuda
# with the same files). Stages, each with its own timeout, each run whatever failed before:
#   1 env      nvidia-smi, driver/runtime, library lookup
#   2 ops      tests/test_cuda_ops: every CUDA op (f32/bf16/f16) and backward vs the CPU
#   3 core     tests/test_ops: core's op table, each case also compared on CUDA
#   4 model    tests/test_cuda_model: tiny golden models on CUDA vs CPU (f32 and bf16 weights,
#              padded batches, KV-cache decode) and a short training run on CUDA vs CPU
#   4b optim   tests/test_cuda_optim: bf16 AdamW on the GPU vs the CPU (when packed)
#   5 bench    telepathy bench: the study's cases on the real shapes, ours and peer_torch.py
# Writes at most 8 files under $OUT: summary.txt, bench.json, bench.md, logs/<stage>.log.
# TP_NO_PEER=1 leaves the PyTorch peer out (a quick check of ours); TP_BENCH_CASES=a,b picks cases.
# Budget: about 8.5 minutes in all (TP_TOTAL_BUDGET=500 s from the first stage; TP_BENCH_TIMEOUT
# etc. override the stage limits).
set -u
OUT=${OUT:-/tmp/tp_out}
mkdir -p "$OUT/logs"
ROOT=$(pwd)
BIN=/tmp/tp_bin
mkdir -p "$BIN"
if [ -f .carry/cuda-bins.tar.xz ]; then
  tar -C "$BIN" -xJf .carry/cuda-bins.tar.xz
elif [ -x build-cuda/telepathy ]; then
  cp -r build-cuda/telepathy build-cuda/tests "$BIN"/
fi
# cuBLAS: the system toolkit's, else the pip wheel's
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13.0/lib64; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
# (the pip wheels' copies as a last resort: nvidia.cublas, nvidia.cuda_runtime)
for m in cublas cuda_runtime; do
  PYLIB=$(python3 -c "import nvidia.$m, os; print(os.path.join(list(nvidia.$m.__path__)[0], 'lib'))" 2>/dev/null || true)
  [ -n "$PYLIB" ] && [ -d "$PYLIB" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$PYLIB"
done
export TP_SOURCE_DIR="$ROOT" TP_BUILD_DIR="$BIN"

START=$(date +%s)
declare -A RC T0
stage() { # name timeout command...
  local name=$1 to=$2
  shift 2
  local t=$(date +%s)
  echo "=== $name: $*" | tee -a "$OUT/summary.txt"
  timeout --kill-after=10 "$to" "$@" >"$OUT/logs/$name.log" 2>&1
  RC[$name]=$?
  T0[$name]=$(($(date +%s) - t))
  tail -n 4 "$OUT/logs/$name.log" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}

: >"$OUT/summary.txt"
stage env 60 bash -c "nvidia-smi; echo; ldd $BIN/telepathy | grep -i -E 'cu|blas|not found'; \
  $BIN/telepathy version; cat .carry/cuda-bins.commit 2>/dev/null; git rev-parse --short HEAD"
stage ops ${TP_OPS_TIMEOUT:-120} "$BIN/tests/test_cuda_ops"
stage core ${TP_CORE_TIMEOUT:-60} "$BIN/tests/test_ops"
stage model ${TP_MODEL_TIMEOUT:-90} "$BIN/tests/test_cuda_model"
[ -x "$BIN/tests/test_cuda_optim" ] && stage optim 60 "$BIN/tests/test_cuda_optim"
# the call must end by ~8.5 minutes: the bench gets what is left, and its own --deadline 25 s
# earlier stops the PyTorch peer in time for the tables to be written (rows measured are kept)
LEFT=$((${TP_TOTAL_BUDGET:-500} - ($(date +%s) - START)))
[ "$LEFT" -lt 60 ] && LEFT=60
BT=${TP_BENCH_TIMEOUT:-$LEFT}
stage bench $BT "$BIN/telepathy" bench --device cuda \
  --batches "${TP_BENCH_BATCHES:-1,8,32}" --iters "${TP_BENCH_ITERS:-5}" \
  --db "$OUT/logs/results.db.tmp" --json "$OUT/bench.json" --md "$OUT/bench.md" \
  --deadline $((BT > 50 ? BT - 25 : 25)) \
  ${TP_BENCH_CASES:+--cases "$TP_BENCH_CASES"} \
  $([ -n "${TP_NO_PEER:-}" ] || echo --peer "$ROOT/bench/peer_torch.py") \
  ${TP_PEER_COMPILE:+--peer-compile}
rm -f "$OUT/logs/results.db.tmp"* # the table is in bench.json/md; keep the file count low

{
  echo
  echo "stage   rc   seconds"
  for s in env ops core model optim bench; do
    r=${RC[$s]:-?}
    [ "$r" = 77 ] && r="77 (skipped: no GPU)"
    [ "$r" = 124 ] && r="124 (timeout)"
    printf "%-7s %-4s %s\n" "$s" "$r" "${T0[$s]:-?}"
  done
  echo
  [ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
} | tee -a "$OUT/summary.txt"
