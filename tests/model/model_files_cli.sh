#!/usr/bin/env bash
# model_files_cli.sh — `telepathy make-tiny` and `telepathy import-llama2c` from the command line:
# exit codes (0 ok, 1 failure, 2 usage), the files written, same seed -> same bytes.
set -u
T=${TELEPATHY:?TELEPATHY not set}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fail=0
check() { # expected-code description command...
    local want=$1 what=$2; shift 2
    "$@" >"$D/out" 2>"$D/err"; local got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL $what: exit $got, want $want"; cat "$D/err"; fail=1
    else
        echo "ok   $what"
    fi
}
check 0 "make-tiny --help" "$T" make-tiny --help
grep -q "usage: telepathy make-tiny" "$D/out" || { echo "FAIL help text"; fail=1; }
check 0 "make-tiny llama" "$T" make-tiny "$D/a" --arch llama --seed 5
check 0 "make-tiny llama again" "$T" make-tiny "$D/b" --seed 5 --arch llama
for f in config.json model.safetensors tokenizer.json; do
    [ -s "$D/a/$f" ] || { echo "FAIL missing $f"; fail=1; }
    cmp -s "$D/a/$f" "$D/b/$f" || { echo "FAIL $f differs for the same seed"; fail=1; }
done
check 0 "make-tiny mistral" "$T" -q make-tiny "$D/m" --arch mistral --seed 5 --shape tiny
cmp -s "$D/a/model.safetensors" "$D/m/model.safetensors" && { echo "FAIL llama == mistral"; fail=1; }
check 2 "make-tiny without --arch" "$T" make-tiny "$D/c" --seed 1
check 2 "make-tiny bad seed" "$T" make-tiny "$D/c" --arch llama --seed -3
check 2 "make-tiny unknown option" "$T" make-tiny "$D/c" --arch llama --seed 1 --sead 2
check 1 "make-tiny unknown arch" "$T" make-tiny "$D/c" --arch gpt2 --seed 1
grep -q "gpt2" "$D/err" || { echo "FAIL error does not name the arch"; fail=1; }
check 1 "make-tiny unknown shape" "$T" make-tiny "$D/c" --arch llama --seed 1 --shape nope
check 0 "import-llama2c --help" "$T" import-llama2c --help
check 2 "import-llama2c missing args" "$T" import-llama2c a.bin
check 1 "import-llama2c missing file" "$T" import-llama2c "$D/none.bin" "$D/none.bin" "$D/x"
grep -q "none.bin" "$D/err" || { echo "FAIL error does not name the file"; fail=1; }
S=${TP_SHARED_DIR:-}/models/stories260K
if [ -f "$S/stories260K.bin" ]; then
    check 0 "import-llama2c stories260K" "$T" import-llama2c "$S/stories260K.bin" "$S/tok512.bin" "$D/s"
    for f in config.json model.safetensors tokenizer.json; do
        [ -s "$D/s/$f" ] || { echo "FAIL missing $f"; fail=1; }
    done
else
    echo "SKIP import-llama2c stories260K: ../shared not found (set TP_SHARED_DIR)"
fi
exit $fail
