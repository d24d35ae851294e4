#!/bin/bash
# cli_tokenize.sh — `telepathy tokenize` end to end: ids and per-token lines for a committed tiny
# tokenizer, --no-bos / --ids-only / --decode, the Llama 3 "Hello world" ids when ../shared is
# there, and exit codes (2 usage, 1 bad file).
# Env (ctest): TELEPATHY, TP_SOURCE_DIR, TP_SHARED_DIR.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
SRC=${TP_SOURCE_DIR:?}
TINY=$SRC/tests/golden/tokenizer/tiny/tiny_bytelevel_v512_s1.json
fail=0
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: expected [$2], got [$3]"
    fail=1
  fi
}

out=$("$T" tokenize --tokenizer "$TINY" --ids-only "Hello world")
check "tiny ids" "[510, 72, 366, 111, 266, 277, 342]" "$out"
out=$("$T" tokenize --tokenizer "$TINY" --ids-only --no-bos "Hello world")
check "tiny ids without BOS" "[72, 366, 111, 266, 277, 342]" "$out"
out=$("$T" tokenize --tokenizer "$TINY" "a b" | head -1)
check "header line" "3 tokens (bpe-bytelevel, vocab 512):" "$out"
out=$("$T" tokenize --tokenizer "$TINY" "a b" | tail -1)
check "last token line" '      268  "Ġb"  -> " b"' "$out"
out=$("$T" tokenize --tokenizer "$TINY" --decode 510,72,366,111,266,277,342 --skip-special)
check "decode" "Hello world" "$out"
out=$("$T" tokenize --tokenizer "$TINY" --ids-only -- --no-bos)
check "text after --" "[510, 45, 45, 110, 111, 45, 98, 308]" "$out"

"$T" tokenize "x" >/dev/null 2>&1
check "missing --tokenizer exits 2" 2 $?
"$T" tokenize --tokenizer "$TINY" --bogus x >/dev/null 2>&1
check "unknown option exits 2" 2 $?
"$T" tokenize --tokenizer /nonexistent/tok.json x 2>"${TMPDIR:-/tmp}/tok_err.$$" >/dev/null
check "missing file exits 1" 1 $?
grep -q "/nonexistent/tok.json" "${TMPDIR:-/tmp}/tok_err.$$" || { echo "FAIL: error names the file"; fail=1; }
rm -f "${TMPDIR:-/tmp}/tok_err.$$"
"$T" tokenize --tokenizer "$TINY" --decode 99999 >/dev/null 2>&1
check "bad id exits 1" 1 $?

if [ -d "${TP_SHARED_DIR:-/nonexistent}/models/tokenizers" ]; then
  out=$("$T" tokenize --tokenizer "$TP_SHARED_DIR/models/tokenizers/llama-3.1-8b/tokenizer.json" --ids-only "Hello world")
  check "llama 3 Hello world" "[128000, 9906, 1917]" "$out"
  out=$("$T" tokenize --tokenizer "$TP_SHARED_DIR/models/tokenizers/mistral-7b-instruct-v0.3" --ids-only "Hello world")
  check "mistral Hello world" "[1, 23325, 2294]" "$out"
  M=$TP_SHARED_DIR/models/tokenizers/mistral-7b-instruct-v0.3/tokenizer.model
  out=$("$T" tokenize --tokenizer "$M" --ids-only "a  b")
  check "mistral sentencepiece mode" "[1, 1032, 29473, 1055]" "$out"
  out=$("$T" tokenize --tokenizer "$M" --spm-mode transformers5 --ids-only "a  b")
  check "mistral transformers5 mode" "[1, 1032, 1027, 29494]" "$out"
  "$T" tokenize --tokenizer "$M" --spm-mode bogus x >/dev/null 2>&1
  check "bad --spm-mode exits 2" 2 $?
else
  echo "SKIP: ../shared absent; real tokenizer checks not run"
fi
[ $fail = 0 ] && echo "cli_tokenize: all checks passed"
exit $fail
