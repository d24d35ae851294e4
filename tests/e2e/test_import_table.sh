#!/bin/bash
# test_import_table.sh — the CLI path from the study's preserved files to a paper table and a
# figure: `telepathy import-preserved` reads every .json file of ../shared/preserved, `telepathy
# table` reproduces exp001 93.46 = 815/872 in md, LaTeX (booktabs) and CSV, and `telepathy plot`
# draws the exp003 layer ablation as a valid PNG. Skips without ../shared (TP_SHARED_DIR).
# Env (set by ctest): TELEPATHY, TP_SHARED_DIR.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
P=${TP_SHARED_DIR:-}/preserved
if [ -z "${TP_SHARED_DIR:-}" ] || [ ! -d "$P" ]; then
  echo "SKIP: ../shared/preserved not found (TP_SHARED_DIR)"; exit 0
fi
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset TELEPATHY_CONFIG
cd "$work" || exit 1
n=$(find "$P" -name '*.json' | wc -l)
"$T" import-preserved "$P" --db r.db >imp.txt 2>&1 || { echo "FAIL: import"; cat imp.txt; exit 1; }
grep -q "^read $n files: " imp.txt || { echo "FAIL: expected 'read $n files':"; cat imp.txt; fail=1; }
E=exp001_sst2_signal_check
"$T" table --db r.db --experiment $E --rows bridge --cols task >md.txt 2>&1 || fail=1
grep -q "^| perceiver | 93.5 (n=1) |" md.txt || { echo "FAIL: md:"; cat md.txt; fail=1; }
grep -q "each run scored 872 examples" md.txt || { echo "FAIL: md lacks N:"; cat md.txt; fail=1; }
"$T" table --db r.db --experiment $E --rows bridge --cols task --format latex -o t.tex || fail=1
grep -q '\\toprule' t.tex && grep -q '^perceiver & \$93.5\$' t.tex || { echo "FAIL: latex:"; cat t.tex; fail=1; }
"$T" table --db r.db --experiment $E --rows bridge --format csv >c.csv || fail=1
grep -q "^perceiver,accuracy,accuracy,0.934633,,1,?,872,," c.csv || { echo "FAIL: csv:"; cat c.csv; fail=1; }
"$T" table --db r.db --rows bridge --format html >x.txt 2>&1; [ $? = 2 ] || { echo "FAIL: --format html not a usage error"; fail=1; }
if command -v gnuplot >/dev/null; then
  "$T" plot layers -o l.png --db r.db --experiment exp003_comprehensive_ablations --series bridge \
    >p.txt 2>&1 || { echo "FAIL: plot"; cat p.txt; fail=1; }
  [ "$(head -c 8 l.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || { echo "FAIL: l.png is not a PNG"; fail=1; }
else
  echo "SKIP: plot (gnuplot not installed)"
fi
exit $fail
