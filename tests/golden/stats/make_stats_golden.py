#!/usr/bin/env python3
"""make_stats_golden.py — reference values for harness/run/stats.c from scipy and statsmodels.

Writes stats_golden.json (inputs and expected outputs together) into $OUT, or into the directory
given as the first argument. The committed copy lives next to this script; tests/run/test_stats.c
reads it. Inputs are generated from a fixed numpy seed so the file is reproducible.

Run on the GPU machine (or any machine with numpy, scipy, statsmodels):
    OUT=/some/dir python3 tests/golden/stats/make_stats_golden.py
"""
import json
import os
import sys

import numpy as np
import scipy
import scipy.special as sp
import scipy.stats as st
import statsmodels
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

out_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT")
if not out_dir:
    sys.exit("make_stats_golden.py: give an output directory (argument or $OUT)")
os.makedirs(out_dir, exist_ok=True)
rng = np.random.default_rng(20261123)
g = {"generator": {"numpy": np.__version__, "scipy": scipy.__version__,
                   "statsmodels": statsmodels.__version__}}

g["norm_ppf"] = [[p, float(sp.ndtri(p))] for p in
                 [1e-12, 1e-6, 0.001, 0.01, 0.025, 0.02425, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.99,
                  0.999, 1 - 1e-6, 1 - 1e-10]]
g["norm_cdf"] = [[x, float(sp.ndtr(x))] for x in [-8, -3.5, -1.96, -1, -0.1, 0, 0.5, 1.96, 3, 6]]
g["betainc"] = [[a, b, x, float(sp.betainc(a, b, x))] for a, b, x in
                [(0.5, 0.5, 0.3), (1, 1, 0.42), (2, 3, 0.4), (5, 0.5, 0.9), (0.5, 5, 0.01),
                 (10, 10, 0.5), (30, 2, 0.95), (1.5, 0.5, 0.999), (100, 0.5, 0.99),
                 (3.5, 0.5, 0.2)]]
g["t_cdf"] = [[t, df, float(st.t.cdf(t, df))] for t, df in
              [(-3, 1), (2.5, 1), (0, 5), (1.2, 2), (-2.1, 4), (2.776, 4), (4.5, 9), (-0.3, 30),
               (10, 3), (-12, 7), (1.96, 1000)]]
g["binom_cdf"] = [[k, n, p, float(st.binom.cdf(k, n, p))] for k, n, p in
                  [(0, 1, 0.5), (3, 10, 0.5), (7, 24, 0.5), (12, 24, 0.5), (2, 20, 0.3),
                   (40, 100, 0.45)]]

def arr(n, lo, hi):
    return [float(v) for v in np.round(rng.uniform(lo, hi, n), 4)]

g["mean_std"] = []
for x in [arr(2, 0.8, 0.95), arr(3, 0.85, 0.97), arr(5, 0, 1), [0.9, 0.9, 0.9]]:
    g["mean_std"].append({"x": x, "mean": float(np.mean(x)), "std": float(np.std(x, ddof=1))})

g["wilson"] = []
for k, n in [(815, 872), (826, 872), (889, 1000), (10, 500), (0, 200), (200, 200), (1, 2),
             (57, 64), (32, 64)]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    g["wilson"].append([k, n, float(lo), float(hi)])

g["mcnemar"] = []
for b, c in [(0, 0), (0, 1), (3, 9), (10, 14), (12, 12), (13, 12), (20, 5), (40, 22), (100, 150),
             (7, 30)]:
    exact = (b + c) < 25
    r = mcnemar([[50, b], [c, 60]], exact=exact, correction=True)
    g["mcnemar"].append({"b": b, "c": c, "exact": exact, "statistic": float(r.statistic),
                         "p": float(r.pvalue)})

g["paired_t"] = []
for n in [5, 12, 30]:
    x = arr(n, 0.7, 0.95)
    y = [float(round(v - rng.normal(0.02, 0.03), 4)) for v in x]
    r = st.ttest_rel(x, y)
    d = np.array(x) - np.array(y)
    g["paired_t"].append({"x": x, "y": y, "t": float(r.statistic), "p": float(r.pvalue),
                          "df": n - 1, "dz": float(d.mean() / d.std(ddof=1))})

g["cohens_d"] = []
for nx, ny in [(3, 3), (5, 8)]:
    x, y = arr(nx, 0.8, 0.95), arr(ny, 0.75, 0.9)
    sx, sy = np.var(x, ddof=1), np.var(y, ddof=1)
    pooled = np.sqrt(((nx - 1) * sx + (ny - 1) * sy) / (nx + ny - 2))
    g["cohens_d"].append({"x": x, "y": y, "d": float((np.mean(x) - np.mean(y)) / pooled)})

g["holm"] = []
for p in [[0.01, 0.04, 0.03, 0.005], [0.2, 0.2, 0.01], [0.5], [0.001, 0.9, 0.04, 0.04, 0.3]]:
    g["holm"].append({"p": p, "adj": [float(v) for v in multipletests(p, method="holm")[1]]})

# BCa: scipy draws its own resamples, so the harness (Philox) agrees only up to Monte Carlo error.
g["bootstrap_bca"] = []
for x in [[float(v) for v in (rng.uniform(0, 1, 200) < 0.9)],
          [float(v) for v in (rng.uniform(0, 1, 64) < 0.6)],
          arr(40, 0.5, 1.0)]:
    r = st.bootstrap((np.array(x),), np.mean, n_resamples=10000, method="BCa",
                     confidence_level=0.95, random_state=np.random.default_rng(0))
    g["bootstrap_bca"].append({"x": x, "lo": float(r.confidence_interval.low),
                               "hi": float(r.confidence_interval.high),
                               "se": float(r.standard_error)})

g["paired_bootstrap"] = []
for n in [200, 80]:
    a = (rng.uniform(0, 1, n) < 0.85).astype(float)
    b = (rng.uniform(0, 1, n) < 0.75).astype(float)
    d = a - b
    r = st.bootstrap((d,), np.mean, n_resamples=10000, method="BCa", confidence_level=0.95,
                     random_state=np.random.default_rng(1))
    g["paired_bootstrap"].append({"x": [float(v) for v in a], "y": [float(v) for v in b],
                                  "diff": float(d.mean()), "lo": float(r.confidence_interval.low),
                                  "hi": float(r.confidence_interval.high),
                                  "se": float(r.standard_error)})

path = os.path.join(out_dir, "stats_golden.json")
with open(path, "w") as f:
    json.dump(g, f, indent=1)
    f.write("\n")
print("wrote", path)
