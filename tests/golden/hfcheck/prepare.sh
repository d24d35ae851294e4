#!/usr/bin/env bash
# prepare.sh — writes the model directories tests/golden/hfcheck/check_files.py checks with
# Hugging Face's libraries: BUILD/hfcheck/{stories,llama,mistral,qwen2}. Run here (needs ../shared
# for stories260K); carry BUILD/hfcheck to the GPU machine. Usage: prepare.sh BUILD_DIR
set -eu
B=${1:?usage: prepare.sh BUILD_DIR}
T=$B/telepathy
S=${TP_SHARED_DIR:-$(dirname "$0")/../../../shared}/models/stories260K
D=$B/hfcheck
rm -rf "$D"
mkdir -p "$D"
"$T" -q import-llama2c "$S/stories260K.bin" "$S/tok512.bin" "$D/stories"
for a in llama mistral qwen2; do "$T" -q make-tiny "$D/$a" --arch $a --seed 1; done
du -sh "$D"
