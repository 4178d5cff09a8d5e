"""Medians, ratios and quality of the fast-path bench, from the `result` and `converted` lines of
bench_py.py/bench_r.R and the outputs they saved.

Usage: python report.py RESULTS_FILE DATA_DIR
"""

import os
import statistics
import sys
from collections import defaultdict

import numpy as np

TARGET_EMBED = 3.0  # fastest embed_text() vs sentence-transformers fp32, throughput
TARGET_COSINE = 0.99  # every text's embedding against fp32
TARGET_OVERLAP = 0.95  # top-10 semantic search overlap against fp32
TARGET_CLF = 2.0  # text-classification vs transformers' pipeline fp32
TARGET_LABELS = 0.99  # same label
QUERIES = 200  # the first texts, searched among all 2000


def read(path):
    times, peaks, converted = defaultdict(list), defaultdict(list), []
    for line in open(path):
        parts = line.split()
        if parts[:1] == ["result"]:
            times[parts[1]].append(float(parts[2]))
            peaks[parts[1]].append(float(parts[3].split("=")[1]))
        elif parts[:1] == ["converted"]:
            converted.append(" ".join(parts[1:]))
    return times, peaks, converted


def verdict(ok):
    return "met" if ok else "NOT MET"


def top10(emb, queries):
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb[:queries] @ emb.T
    sims[np.arange(queries), np.arange(queries)] = -np.inf  # not the query itself
    return np.argsort(-sims, axis=1)[:, :10]


def embed_quality(data, mode, ref, ref_top):
    path = os.path.join(data, f"fastpath_out_{mode}.npy")
    if not os.path.exists(path):
        return None
    emb = np.load(path)
    cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
    top = top10(emb, QUERIES)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top)])
    return cos.min(), cos.mean(), (cos >= TARGET_COSINE).mean(), overlap


def labels(data, mode):
    path = os.path.join(data, f"fastpath_out_{mode}.txt")
    return open(path).read().split() if os.path.exists(path) else None


def main():
    times, peaks, converted = read(sys.argv[1])
    data = sys.argv[2]
    med = {m: statistics.median(v) for m, v in times.items()}
    peak = {m: statistics.median(v) for m, v in peaks.items()}
    if converted:
        print("conversions (folder backend precision seconds calibration):")
        for line in converted:
            print("  " + line)
    print(f"\n{'mode':<20}{'runs':>5}{'median s':>10}{'texts/s':>9}{'peak MB':>9}  all runs (s)")
    for mode in times:
        runs = " ".join(f"{t:.2f}" for t in times[mode])
        rate = 2000 / med[mode]
        row = f"{mode:<20}{len(times[mode]):>5}{med[mode]:>10.2f}{rate:>9.0f}{peak[mode]:>9.0f}"
        print(f"{row}  {runs}")

    ref = np.load(os.path.join(data, "fastpath_out_st.npy"))
    ref_top = top10(ref, QUERIES)
    print("\nembed_text() against sentence-transformers fp32 (st)")
    print(
        f"  {'mode':<20}{'speed-up':>9}{'cos min':>9}{'cos mean':>10}{'>=0.99':>8}"
        f"{'top-10':>8}{'peak vs fp32':>13}"
    )
    best = None
    for mode in [m for m in med if m.startswith("embed_")]:
        q = embed_quality(data, mode, ref, ref_top)
        speed = med["st"] / med[mode] if "st" in med else float("nan")
        mem = peak[mode] / peak.get("embed_torch_fp32", float("nan"))
        print(
            f"  {mode:<20}{speed:>8.2f}x{q[0]:>9.5f}{q[1]:>10.5f}{q[2]:>8.3f}{q[3]:>8.3f}"
            f"{mem:>12.2f}x"
        )
        if q[0] >= TARGET_COSINE and q[3] >= TARGET_OVERLAP and (best is None or speed > best[1]):
            best = (mode, speed, q)
    if best:
        mode, speed, q = best
        print(
            f"  fastest within quality: {mode}: {speed:.2f}x, target >= {TARGET_EMBED}x: "
            f"{verdict(speed >= TARGET_EMBED)}; cosine >= {TARGET_COSINE} for every text: "
            f"{verdict(q[0] >= TARGET_COSINE)}; top-10 overlap {q[3]:.3f} >= {TARGET_OVERLAP}: "
            f"{verdict(q[3] >= TARGET_OVERLAP)}"
        )

    want = labels(data, "clf_py")
    print("\ntext-classification from R against transformers' pipeline fp32 in Python (clf_py)")
    print(f"  {'mode':<20}{'speed-up':>9}{'same label':>11}{'peak vs fp32':>13}")
    for mode in [m for m in med if m.startswith("clf_") and m != "clf_py"]:
        got = labels(data, mode)
        same = np.mean(np.array(got) == np.array(want)) if got and want else float("nan")
        speed = med["clf_py"] / med[mode] if "clf_py" in med else float("nan")
        mem = peak[mode] / peak.get("clf_torch_fp32", float("nan"))
        ok = speed >= TARGET_CLF and same >= TARGET_LABELS
        print(
            f"  {mode:<20}{speed:>8.2f}x{same:>11.3f}{mem:>12.2f}x  "
            f"(>= {TARGET_CLF}x with >= {TARGET_LABELS:.0%} same labels: {verdict(ok)})"
        )


if __name__ == "__main__":
    main()
