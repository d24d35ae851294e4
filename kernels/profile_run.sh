#!/usr/bin/env bash
# profile_run.sh — where the GPU time goes, in one device call (run from the repo root there,
# carry [".carry"] packed by kernels/pack.sh). For each case:batch of TP_PROF_CASES on a model cut to TP_PROF_LAYERS layers: (1) the bench's wall time per call with
# --layers L and with the full depth, so per-layer host+GPU time falls out of the difference;
# (2) ncu's gpu__time_duration of every kernel of one timed call, summed per kernel name, so the
# kernel time per layer can be set against (1). Writes $OUT/prof_<case>.txt and $OUT/prof.log.
set -u
OUT=${OUT:-/tmp/tp_out}
mkdir -p "$OUT"
BIN=/tmp/tp_bin
mkdir -p "$BIN"
tar -C "$BIN" -xJf .carry/cuda-bins.tar.xz
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
L=${TP_PROF_LAYERS:-2}
LOG="$OUT/prof.log"
: >"$LOG"
for cb in ${TP_PROF_CASES:-sender_encode:1 bridge:1 receiver_decode:1 train_step:8}; do
  c=${cb%%:*}
  B=${cb##*:}
  {
    echo "=== $c B=$B wall, --layers $L then full depth"
    timeout 120 "$BIN/telepathy" bench --device cuda --cases "$c" --batches "$B" --iters 5 \
      --layers "$L" 2>&1 | grep -E "^ +$c +B=|error" | head -3
    timeout 120 "$BIN/telepathy" bench --device cuda --cases "$c" --batches "$B" --iters 5 \
      2>&1 | grep -E "^ +$c +B=|error" | head -3
  } >>"$LOG" 2>&1
  # warmup 0, iters 1: one call of the case; model set-up kernels (weight init) are filtered
  # out by name below
  timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
    --print-units base "$BIN/telepathy" bench --device cuda --cases "$c" --batches "$B" \
    --iters 1 --warmup 0 --layers "$L" >"/tmp/ncu_${c}_$B.csv" 2>>"$LOG"
  python3 - "$c" "/tmp/ncu_${c}_$B.csv" >"$OUT/prof_${c}_b$B.txt" 2>>"$LOG" <<'PY'
import csv, sys, collections
case, path = sys.argv[1], sys.argv[2]
rows = []
with open(path) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum": continue
    rows.append((int(r["ID"].replace(",", "")), r["Kernel Name"], float(r["Metric Value"].replace(",", ""))))
agg = collections.OrderedDict()
for i, name, ns in rows:
    short = name.split("(")[0][:90]
    a = agg.setdefault(short, [0, 0.0])
    a[0] += 1; a[1] += ns
tot = sum(v[1] for v in agg.values())
print(f"{case}: {len(rows)} kernels, {tot/1e3:.1f} us total (incl. set-up kernels)")
for k, (n, ns) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{ns/1e3:10.1f} us {n:5d} x  {k}")
print("\n-- last 80 kernels in launch order (us) --")
for i, name, ns in rows[-80:]:
    print(f"{i:6d} {ns/1e3:9.1f}  {name[:110]}")
PY
done
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv >>"$LOG"
