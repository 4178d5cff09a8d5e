"""Python side of the fast-path bench: the fp32 anchors. One mode per process; prints
`result MODE SECONDS peak_mb=N`.

Modes:
  st       sentence-transformers' encode(batch_size = 32) on all-MiniLM-L6-v2, fp32 (normalised,
           as the model's own modules say).
  clf_py   transformers' text-classification pipeline (batch_size = 32), fp32, on the MiniLM
           classifier of bench/pipelines.

Usage: python bench_py.py MODE TEXTS_FILE DATA_DIR
Every mode warms up on 16 texts first (model loaded, first batch run), then times 2000 texts.
Outputs go to DATA_DIR/fastpath_out_MODE.npy (embeddings) or .txt (labels).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import sys
import time

import numpy as np

from pybridge.models import import_transformers


def run(mode, data):
    """The anchor of bench/pipelines of the same name (this file has the same name, so it is
    loaded by its path)."""
    if mode not in ("st", "clf_py"):
        raise SystemExit(f"unknown mode {mode}")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "pipelines", "bench_py.py")
    spec = importlib.util.spec_from_file_location("pipelines_bench_py", path)
    pipelines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipelines)
    return pipelines.run(mode, None, data)


def main():
    mode, texts_file, data = sys.argv[1:4]
    with open(texts_file, encoding="utf-8") as handle:
        texts = [line.rstrip("\n") for line in handle if line.strip()]
    import_transformers().utils.logging.disable_progress_bar()
    fn = run(mode, data)
    fn(texts[:16])
    t0 = time.perf_counter()
    out = fn(texts)
    seconds = time.perf_counter() - t0
    path = os.path.join(data, f"fastpath_out_{mode}")
    if mode == "st":
        np.save(path + ".npy", np.asarray(out, dtype=np.float64))
    else:
        with open(path + ".txt", "w", encoding="utf-8") as handle:
            handle.write("\n".join(r["label"] for r in out) + "\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"result {mode} {seconds:.3f} peak_mb={peak:.0f}", flush=True)


if __name__ == "__main__":
    main()
