"""Medians and the ratio of bench/finetune, from the `result` lines of bench_py.py/bench_r.R.

Usage: python report.py RESULTS_FILE
"""

import statistics
import sys
from collections import defaultdict

TARGET = 1.05  # fine_tune() from R at most 1.05x the plain Python Trainer script

LABELS = {
    "r": "fine_tune() from R",
    "py": "plain Trainer script in Python",
    "pybridge": "pybridge.train from Python",
}
times, extra = defaultdict(list), {}
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[:1] == ["result"]:
        times[parts[1]].append(float(parts[2]))
        extra[parts[1]] = " ".join(parts[3:])
med = {m: statistics.median(v) for m, v in times.items()}
print(f"{'mode':<34}{'runs':>5}{'median s':>10}  all runs (s)")
for mode, label in LABELS.items():
    if mode in med:
        runs = " ".join(f"{t:.2f}" for t in times[mode])
        print(f"{label:<34}{len(times[mode]):>5}{med[mode]:>10.2f}  {runs}  {extra[mode]}")
if {"r", "py"} <= med.keys():
    ratio = med["r"] / med["py"]
    verdict = "met" if ratio <= TARGET else "NOT MET"
    print(f"\nR / Python = {ratio:.3f}   target <= {TARGET}: {verdict}")
if {"r", "pybridge"} <= med.keys():
    print(f"R / pybridge.train from Python = {med['r'] / med['pybridge']:.3f}   (the bridge)")
