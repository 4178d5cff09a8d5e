"""Medians and ratios of the pipelines bench, from the `result` lines of bench_py.py/bench_r.R,
and a check that (a), (b) and (d) computed the same embeddings.

Usage: python report.py RESULTS_FILE DATA_DIR
"""

import os
import statistics
import sys
from collections import defaultdict

import numpy as np

TARGET_A_VS_B = 1.05  # embed_text() from R at most 1.05x the Python floor
TARGET_C_VS_A = 4.0  # ... and at least 4x faster than the feature-extraction pipeline
TARGET_CLF = 1.10  # pipeline("text-classification") from R vs the same pipeline in Python

LABELS = {
    "embed": "(a) embed_text() from R",
    "floor": "(b) floor: sorted batches, Python",
    "fe_pipeline": "(c) feature-extraction pipeline via reticulate",
    "st": "(d) sentence-transformers",
    "clf_r": "text-classification pipeline from R",
    "clf_py": "text-classification pipeline in Python",
}

times, threads = defaultdict(list), {}
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[:1] == ["result"]:
        times[parts[1]].append(float(parts[2]))
        threads[parts[1]] = parts[3] if len(parts) > 3 else ""
med = {m: statistics.median(v) for m, v in times.items()}

print(f"{'mode':<50}{'runs':>5}{'median s':>10}  all runs (s)")
for mode, label in LABELS.items():
    if mode in med:
        runs = " ".join(f"{t:.2f}" for t in times[mode])
        print(f"{label:<50}{len(times[mode]):>5}{med[mode]:>10.2f}  {runs}  {threads[mode]}")


def verdict(ok):
    return "met" if ok else "NOT MET"


print("\nratios of medians")
if {"embed", "floor"} <= med.keys():
    r = med["embed"] / med["floor"]
    print(f"  (a)/(b) = {r:.3f}   target <= {TARGET_A_VS_B}: {verdict(r <= TARGET_A_VS_B)}")
if {"embed", "fe_pipeline"} <= med.keys():
    r = med["fe_pipeline"] / med["embed"]
    print(f"  (c)/(a) = {r:.2f}    target >= {TARGET_C_VS_A}: {verdict(r >= TARGET_C_VS_A)}")
if {"embed", "st"} <= med.keys():
    print(f"  (d)/(a) = {med['st'] / med['embed']:.2f}    (information)")
if {"clf_r", "clf_py"} <= med.keys():
    r = med["clf_r"] / med["clf_py"]
    print(
        f"  text-classification R/Python = {r:.3f}   target <= {TARGET_CLF}: "
        f"{verdict(r <= TARGET_CLF)}"
    )

data = sys.argv[2]
outs = {m: os.path.join(data, f"pipelines_out_{m}.npy") for m in ("embed", "floor", "st")}
if all(os.path.exists(p) for p in outs.values()):
    a, b, d = (np.load(outs[m]) for m in ("embed", "floor", "st"))
    d_unnormalized = a / np.linalg.norm(a, axis=1, keepdims=True)
    print(
        "\nsame embeddings: max |(a)-(b)| = %.2e, max |normalize((a))-(d)| = %.2e"
        % (np.abs(a - b).max(), np.abs(d_unnormalized - d).max())
    )
