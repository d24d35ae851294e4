#!/bin/bash
# sweep_workers.sh — sweeps on one host with CPU workers (issue 9): plan is idempotent; `work
# --gpus cpu,cpu` runs every configuration exactly once; a worker killed with SIGKILL mid-run is
# replaced and its configuration resumed, not lost or duplicated; SIGTERM lets the training write
# its next checkpoint (--grace), then releases the claim (exit 75, item pending, run
# interrupted) and the next worker resumes it; keep-going with
# --retries records the failure class and attempts; --fail-fast stops the sweep; a model changed
# after planning fails as config_drift without running; a shard that hits a file size limit
# fails with a clear message and the task's next attempt completes it; status shows counts;
# usage errors exit 2.
# Env (set by ctest): TELEPATHY, TELEPATHY_PLUGIN_PATH. TP_TEST_SLOW: about a minute.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
fail=0
work=$(mktemp -d)
bg=0
trap '[ $bg != 0 ] && kill -9 $bg 2>/dev/null; rm -rf "$work"' EXIT
unset TELEPATHY_CONFIG
cd "$work" || exit 1
"$T" make-tiny "$work/s" --arch llama --seed 1 >/dev/null || exit 1
"$T" make-tiny "$work/r" --arch mistral --seed 2 >/dev/null || exit 1
# arg[2] = steps, arg[3] = number of seeds, arg[4] = seed whose layer is out of range (fails
# when run, not when planned)
cat > "$work/sweep.lua" <<'LUA'
local tp = require "telepathy"
local s = tp.model{path = arg[1] .. "/s", alias = "s"}
local r = tp.model{path = arg[1] .. "/r", alias = "r"}
local steps, n, bad = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4] or "-1")
for seed = 1, n do
  local res = assert(tp.run{sender = s, receiver = r, task = "toy", steps = steps, batch = 8,
    lr = 2e-3, seed = seed, checkpoint_every = 5, layer = seed == bad and 99 or nil,
    task_options = {n_train = 64, n_eval = 16}, bridge_options = {tokens = 2, depth = 1, heads = 4}})
  assert(res.status == "planned" and tp.planning, "not planned")
end
LUA
cat > "$work/q.lua" <<'LUA'
local tp = require "telepathy"
local row = tp.query(arg[1])[1]
print(row and row.n or "none")
LUA
q() { "$T" run "$work/q.lua" --db "$work/r.db" -- "$1" 2>/dev/null; }
check() { # name expected actual
  [ "$2" = "$3" ] || { echo "FAIL: $1: expected '$2', got '$3'"; fail=1; }
}

# 1. plan (twice) + two CPU workers
"$T" plan "$work/sweep.lua" --sweep a --db r.db -- "$work" 10 4 >/dev/null || { echo "FAIL: plan"; exit 1; }
out=$("$T" plan "$work/sweep.lua" --sweep a --db r.db -- "$work" 10 4) || { echo "FAIL: replan"; exit 1; }
echo "$out" | grep -q "0 new configuration(s) planned, 4 already" || { echo "FAIL: replan: $out"; fail=1; }
check "runs before work" 0 "$(q "SELECT count(*) AS n FROM runs")"
"$T" work --sweep a --db r.db --gpus cpu,cpu 2>"$work/w1.err" || { echo "FAIL: work"; cat "$work/w1.err"; fail=1; }
check "done runs" 4 "$(q "SELECT count(*) AS n FROM runs WHERE status = 'done'")"
check "distinct configs" 4 "$(q "SELECT count(DISTINCT config_hash) AS n FROM runs")"
check "items done" 4 "$(q "SELECT count(*) AS n FROM sweep_items WHERE status = 'done' AND run_id IS NOT NULL")"
check "two workers used" 2 "$(grep -c "^telepathy work (cpu, pid" "$work/w1.err")"
"$T" status --sweep a --db r.db | grep -q "pending 0  running 0  done 4  failed 0" || {
  echo "FAIL: status"; "$T" status --sweep a --db r.db; fail=1; }

# 2. SIGKILL one worker mid-run: it is replaced and its configuration resumed
"$T" plan "$work/sweep.lua" --sweep b --db r.db -- "$work" 60 3 >/dev/null || exit 1
"$T" work --sweep b --db r.db --gpus cpu,cpu 2>"$work/w2.err" &
bg=$!
killed=0
for _ in $(seq 1 600); do
  n=$(q "SELECT count(*) AS n FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE r.status = 'running'")
  if [ "${n:-0}" -ge 1 ] 2>/dev/null; then
    victim=$(q "SELECT pid AS n FROM runs WHERE status = 'running' AND id IN (SELECT run_id FROM artifacts) LIMIT 1")
    kill -9 "$victim" 2>/dev/null && killed=1
    break
  fi
  sleep 0.05
done
wait $bg; rc=$?; bg=0
[ $killed = 1 ] || { echo "FAIL: never killed a worker mid-run"; fail=1; }
check "work after a SIGKILL'd worker" 0 $rc
grep -q "was killed by signal 9" "$work/w2.err" || { echo "FAIL: no replacement worker"; cat "$work/w2.err"; fail=1; }
check "b done" 3 "$(q "SELECT count(*) AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'b' AND i.status = 'done'")"
check "b runs" 7 "$(q "SELECT count(*) AS n FROM runs WHERE status = 'done'")"
check "a resumed attempt" 1 "$(q "SELECT count(*) AS n FROM runs WHERE attempt = 2")"

# 3. SIGTERM releases the claim; the next worker resumes the run
"$T" plan "$work/sweep.lua" --sweep c --db r.db -- "$work" 80 1 >/dev/null || exit 1
"$T" work --sweep c --db r.db --grace 30 2>"$work/w3.err" &
bg=$!
for _ in $(seq 1 600); do
  n=$(q "SELECT count(*) AS n FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE r.status = 'running'")
  [ "${n:-0}" -ge 1 ] 2>/dev/null && break
  sleep 0.05
done
kill -TERM $bg
wait $bg; rc=$?; bg=0
check "exit status after SIGTERM" 75 $rc
grep -q "checkpoint written .* after the signal" "$work/w3.err" || {
  echo "FAIL: no checkpoint within the grace period"; cat "$work/w3.err"; fail=1; }
ck=$(q "SELECT count(*) AS n FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE r.status = 'interrupted'")
check "released item" "pending:preempted" "$(q "SELECT i.status || ':' || i.error_class AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'c'")"
check "interrupted run" 1 "$(q "SELECT count(*) AS n FROM runs WHERE status = 'interrupted'")"
"$T" work --sweep c --db r.db 2>"$work/w3b.err" || { echo "FAIL: resuming work"; cat "$work/w3b.err"; fail=1; }
grep -Eq "item [0-9]+ resumed" "$work/w3b.err" || { echo "FAIL: not resumed"; cat "$work/w3b.err"; fail=1; }
[ "${ck:-0}" -ge 2 ] 2>/dev/null || { echo "FAIL: expected >= 2 checkpoints before the release, got $ck"; fail=1; }
check "c done" "done" "$(q "SELECT i.status AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'c'")"

# 4. keep-going with --retries: seed 2 fails twice, the others are done
"$T" plan "$work/sweep.lua" --sweep d --db r.db -- "$work" 5 3 2 >/dev/null || exit 1
"$T" work --sweep d --db r.db --retries 1 2>"$work/w4.err"
check "exit status with a failure" 1 $?
check "d outcome" "done:1,failed:2,done:1" "$(q "SELECT group_concat(st, ',') AS n FROM (SELECT i.status || ':' || i.attempts AS st FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'd' ORDER BY i.seq)")"
check "d class" "config" "$(q "SELECT i.error_class AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'd' AND i.status = 'failed'")"
"$T" status --sweep d --db r.db | grep -q "failed   item .*\[config\].*layer" || {
  echo "FAIL: status does not show the failure"; "$T" status --sweep d --db r.db; fail=1; }

# 5. --fail-fast: the first failure stops the sweep
"$T" plan "$work/sweep.lua" --sweep e --db r.db -- "$work" 6 3 1 >/dev/null || exit 1
"$T" work --sweep e --db r.db --fail-fast 2>"$work/w5.err"
check "fail-fast exit status" 1 $?
check "e outcome" "failed,pending,pending" "$(q "SELECT group_concat(st, ',') AS n FROM (SELECT i.status AS st FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'e' ORDER BY i.seq)")"
"$T" status --sweep e --db r.db | grep -q "STOPPED: --fail-fast" || { echo "FAIL: status STOPPED"; fail=1; }

# 6. a model file changed between plan and work: the item fails as config_drift, nothing runs
mkdir -p "$work/m2" && cp -r "$work/s" "$work/r" "$work/m2/"
"$T" plan "$work/sweep.lua" --sweep g --db r.db -- "$work/m2" 5 1 >/dev/null || exit 1
rm -rf "$work/m2/s" && "$T" make-tiny "$work/m2/s" --arch llama --seed 5 >/dev/null
before=$(q "SELECT count(*) AS n FROM runs")
"$T" work --sweep g --db r.db 2>"$work/w6.err"
check "work after drift" 1 $?
check "drift class" "failed:config_drift" "$(q "SELECT i.status || ':' || i.error_class AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'g'")"
grep -q "plan the sweep again" "$work/w6.err" || { echo "FAIL: drift message"; cat "$work/w6.err"; fail=1; }
check "no run for a drifted config" "$before" "$(q "SELECT count(*) AS n FROM runs")"

# 7. a Slurm task's shard hits a file size limit (a full disk): a clear message, no lost run
"$T" plan "$work/sweep.lua" --sweep h --db r.db -- "$work" 8 1 >/dev/null || exit 1
"$T" submit --sweep h --slurm --db r.db --dir "$work/subh" --dry-run >/dev/null || { echo "FAIL: dry-run"; fail=1; }
(ulimit -f 40; "$T" work --one --plan "$work/subh/plan.json" --index 0 --shard "$work/subh/shard_0.db") 2>"$work/w7.err"
check "work --one on a full disk" 1 $?
grep -q "shard_0.db" "$work/w7.err" && grep -Eq "full|I/O" "$work/w7.err" || {
  echo "FAIL: no clear full-disk message"; cat "$work/w7.err"; fail=1; }
"$T" work --one --plan "$work/subh/plan.json" --index 0 --shard "$work/subh/shard_0.db" 2>"$work/w7b.err" || {
  echo "FAIL: the task's next attempt"; cat "$work/w7b.err"; fail=1; }
"$T" merge "$work/subh/shard_0.db" --into r.db >/dev/null || { echo "FAIL: merge h"; fail=1; }
check "h done once" "done:1" "$(q "SELECT i.status || ':' || (SELECT count(*) FROM runs r WHERE r.config_hash = i.config_hash) AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'h'")"

# 8. usage and lookup errors
"$T" work --db r.db >/dev/null 2>&1; check "work without --sweep" 2 $?
"$T" submit --sweep a --db r.db >/dev/null 2>&1; check "submit without --slurm" 2 $?
"$T" merge >/dev/null 2>&1; check "merge without shards" 2 $?
"$T" plan "$work/sweep.lua" --db r.db >/dev/null 2>&1; check "plan without --sweep" 2 $?
"$T" plan "$work/sweep.lua" --sweep 'bad/name' --db r.db >/dev/null 2>&1; check "bad sweep name" 2 $?
"$T" work --sweep a --db r.db --gpus 0,x >/dev/null 2>&1; check "bad --gpus" 2 $?
err=$("$T" status --sweep nope --db r.db 2>&1); check "status of an unknown sweep" 1 $?
echo "$err" | grep -q "no sweep named 'nope'" || { echo "FAIL: message: $err"; fail=1; }
err=$("$T" submit --sweep a --slurm --db r.db --sbatch /bin/false 2>&1)
check "submit with nothing pending" 0 $?
"$T" plan "$work/sweep.lua" --sweep f --db r.db -- "$work" 7 1 >/dev/null || exit 1
err=$("$T" submit --sweep f --slurm --db r.db --dir "$work/subf" --sbatch /bin/false 2>&1)
check "submit with a failing sbatch" 1 $?
echo "$err" | grep -q "sbatch failed (exit status 1)" || { echo "FAIL: message: $err"; fail=1; }
check "f still pending" "pending" "$(q "SELECT i.status AS n FROM sweep_items i JOIN sweeps s ON s.id = i.sweep_id WHERE s.name = 'f'")"
exit $fail
