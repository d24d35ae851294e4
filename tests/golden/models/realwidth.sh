#!/usr/bin/env bash
# realwidth.sh — device run of the real-width golden check (run from the repository root on the
# GPU machine): HF writes a 2-layer width-4096 Llama (bf16) and its f32 reference, then our CPU
# build (test_transformer_realwidth, built here with static deps and carried) compares.
#   usage: tests/golden/models/realwidth.sh [TEST_BINARY]   (default build-static/tests/test_transformer_realwidth)
# Writes $OUT/realwidth.txt (the test's output) and $OUT/realwidth_summary.txt.
set -euo pipefail
BIN=${1:-build-static/tests/test_transformer_realwidth}
OUT=${OUT:-/tmp/tp_realwidth_out}
MODEL=${TP_REALWIDTH_MODEL:-/tmp/tp_realwidth_model}
mkdir -p "$OUT"
python3 tests/golden/models/realwidth.py "$MODEL" 2>&1 | tee "$OUT/realwidth_summary.txt"
if [ ! -x "$BIN" ]; then
  echo "realwidth.sh: test binary '$BIN' not found; build it with -DTP_STATIC_DEPS=ON and carry it" >&2
  exit 1
fi
start=$(date +%s)
set +e
TP_REALWIDTH_DIR="$MODEL" "$BIN" 2>&1 | tee "$OUT/realwidth.txt"
rc=${PIPESTATUS[0]}
set -e
echo "test exit $rc, $(( $(date +%s) - start )) s, $(nproc) cores" | tee -a "$OUT/realwidth.txt"
exit "$rc"
