#!/usr/bin/env bash
# device_run.sh — everything the model goldens need from the GPU machine, in one call from the
# repository root: the tiny fixtures (make_golden.py -> $OUT/fixtures, ~1.2 MB, to be copied over
# tests/golden/models/fixtures/ whole, old files removed) and the real-width check (realwidth.sh:
# a 0.9 GB model in /tmp, compared by our static CPU build; its report lands in $OUT).
#   usage: tests/golden/models/device_run.sh [TEST_BINARY]
#   (TEST_BINARY default build-static/tests/test_transformer_realwidth, carried from the CPU box)
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
python3 tests/golden/models/make_golden.py "$OUT/fixtures"
OUT="$OUT" bash tests/golden/models/realwidth.sh "${1:-build-static/tests/test_transformer_realwidth}"
