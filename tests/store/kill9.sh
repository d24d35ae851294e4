#!/usr/bin/env bash
# kill9.sh — a process in the middle of a run is killed with SIGKILL: results.db must pass
# `telepathy db check` (integrity, foreign keys, schema) and the run must read `interrupted`
# (with the dead pid in its error) the next time the store is opened, via `telepathy ls/show`.
# The process is `test_store --hold-run DB` (begins a run, writes a metric, then waits).
set -euo pipefail
T=${TELEPATHY:?set TELEPATHY to the telepathy binary}
B=${TP_BUILD_DIR:?set TP_BUILD_DIR}
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL kill9: $*" >&2; exit 1; }
db=$dir/kill9.db

"$B/tests/test_store" --hold-run "$db" >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 300); do
  grep -q '^ready' "$dir/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "helper died: $(cat "$dir/err")"
  sleep 0.1
done
grep -q '^ready 1$' "$dir/out" || fail "helper never became ready: $(cat "$dir/out" "$dir/err")"

# while the process lives, the run is running (opening the store must not sweep it)
"$T" ls --db "$db" >"$dir/ls1" || fail "ls failed while running"
grep -Eq '^ *1  running ' "$dir/ls1" || fail "expected run 1 running, got: $(cat "$dir/ls1")"

kill -9 "$pid"
wait "$pid" 2>/dev/null || true
dead=$pid
pid=

"$T" db check --db "$db" >"$dir/check" || fail "db check after kill -9: $(cat "$dir/check")"
grep -q ': ok' "$dir/check" || fail "db check output: $(cat "$dir/check")"
"$T" ls --db "$db" >"$dir/ls2" || fail "ls failed after the kill"
grep -Eq '^ *1  interrupted ' "$dir/ls2" || fail "expected run 1 interrupted, got: $(cat "$dir/ls2")"
"$T" show 1 --db "$db" >"$dir/show" || fail "show failed"
grep -q 'interrupted' "$dir/show" || fail "show: $(cat "$dir/show")"
grep -q "process $dead on .* ended without finishing" "$dir/show" || fail "show error: $(cat "$dir/show")"
grep -Eq 'train/loss +1 ' "$dir/show" || fail "the metric written before the kill is gone: $(cat "$dir/show")"
"$T" db check --db "$db" >/dev/null || fail "db check after the sweep"
echo "ok kill9"
