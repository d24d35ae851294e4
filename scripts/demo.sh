#!/usr/bin/env bash
# demo.sh — `make demo`: the harness's whole job offline. Makes two small, different random
# models with `telepathy make-tiny` (a Llama-style sender, seed 1, and a Mistral-style receiver,
# seed 2), runs experiments/quickstart.lua against a fresh results.db (a Perceiver bridge vs the
# sender-direct and receiver-direct baselines on the synthetic `toy` task, 2 seeds) and prints the
# table from results.db. Usage: scripts/demo.sh BUILD_DIR [DEMO_DIR]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${2:-$BUILD/demo}
TP="$BUILD/telepathy"
if [ ! -x "$TP" ]; then
  echo "demo: $TP not found; build first (make build)" >&2
  exit 1
fi
export TELEPATHY_PLUGIN_PATH="${TELEPATHY_PLUGIN_PATH:-$BUILD/plugins}"
start=$(date +%s)
rm -rf "$DEMO"
mkdir -p "$DEMO/models"
"$TP" make-tiny "$DEMO/models/sender" --arch llama --seed 1
"$TP" make-tiny "$DEMO/models/receiver" --arch mistral --seed 2
echo "demo: models in $DEMO/models, results in $DEMO/results.db"
"$TP" run "$SRC/experiments/quickstart.lua" --db "$DEMO/results.db" -- "$DEMO/models"
echo "demo: finished in $(( $(date +%s) - start )) s (sqlite3 $DEMO/results.db for the rows)"
