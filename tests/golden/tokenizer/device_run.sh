#!/bin/bash
# device_run.sh — the GPU-machine half of the tokenizer golden data and benchmark.
#
# Here first (this machine has ../shared, static PCRE2/jansson and the compiler):
#   python3 tests/golden/tokenizer/extract_texts.py          # -> .carry/tok (texts + tokenizers)
#   the gcc line at the top of bench/bench_tokenizer.c         # -> build-tokbench/bench_tokenizer
# Then on the GPU machine, from the repository root, carrying .carry/tok and build-tokbench:
#   bash tests/golden/tokenizer/device_run.sh
# $OUT receives the *.golden.jsonl fixtures (copy them into tests/golden/tokenizer/), the
# transformers-built mistral_hf_tokenizer.json, report.txt, and the HF vs C benchmark JSONs
# (both single-threaded, same 10,000 SST-2 sentences, same CPU).
set -eu
: "${OUT:?OUT must name the output folder}"
python3 tests/golden/tokenizer/make_golden.py .carry/tok tests/golden/tokenizer/tiny
B=build-tokbench/bench_tokenizer
L=.carry/tok/llama-3.1-8b/tokenizer.json
"$B" "$L" .carry/tok/bench_sst2.jsonl >"$OUT/bench_c.json"
taskset -c 0 "$B" "$L" .carry/tok/bench_sst2.jsonl >"$OUT/bench_c_1core.json"
"$B" .carry/tok/mistral-7b-instruct-v0.3/tokenizer.model .carry/tok/bench_sst2.jsonl \
  >"$OUT/bench_c_mistral.json"
cat "$OUT/bench_hf.json" "$OUT"/bench_c*.json
