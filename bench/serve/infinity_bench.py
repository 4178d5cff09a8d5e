"""hfbridge's /v1/embeddings against infinity-emb's on the same model, the same client and load.

Both servers are already running (bench/serve/infinity.sh starts them). Rounds alternate
between the two servers, so a busy moment on the shared machine hits both alike.

- one text, one request: median latency over ROUNDS x 20 requests;
- 8 clients x 250 texts: 8 threads post a quarter-thousand texts each at once, median of ROUNDS
  after a warm-up round;
- vectors: cosine between the two servers' rows for the same 2,000 texts.

Usage: python infinity_bench.py OURS_URL INFINITY_URL TEXTS_FILE ROUNDS
"""

from __future__ import annotations

import concurrent.futures
import statistics
import sys
import time

import httpx2 as httpx
import numpy as np


def embeddings(client, url, texts):
    r = client.post(url + "/v1/embeddings", json={"input": texts})
    r.raise_for_status()
    rows = sorted(r.json()["data"], key=lambda d: d["index"])
    return np.asarray([d["embedding"] for d in rows], dtype=np.float64)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(fns, rounds):
    """The times of each of ``fns``, running them in turn ``rounds`` times."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def report(name, times, unit, scale):
    """Medians, their ratio, and each server's fastest and slowest round (the machine is
    shared, so the spread says how far to trust the ratio)."""
    ours, theirs = (statistics.median(times[n]) for n in ("ours", "infinity"))
    spread = {n: f"{min(ts) * scale:.3f}-{max(ts) * scale:.3f}" for n, ts in times.items()}
    print(
        f"result {name}: ours {ours * scale:.3f} {unit}, infinity {theirs * scale:.3f} {unit}"
        f", ratio ours/infinity {ours / theirs:.2f}x"
        f" (range ours {spread['ours']}, infinity {spread['infinity']})",
        flush=True,
    )
    return ours, theirs


def main(ours_url, infinity_url, texts_file, rounds):
    texts = open(texts_file, encoding="utf-8").read().splitlines()[:2000]
    urls = {"ours": ours_url, "infinity": infinity_url}
    chunks = [texts[i : i + 250] for i in range(0, 2000, 250)]
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    with httpx.Client(timeout=600, limits=limits) as client:

        def one(url):
            return lambda: embeddings(client, url, texts[0])

        def eight_clients(url):
            def run():
                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda c: embeddings(client, url, c), chunks))

            return run

        vectors = {name: embeddings(client, url, texts) for name, url in urls.items()}
        for url in urls.values():  # warm-up: the load itself, once
            eight_clients(url)()

        times = alternate({n: one(u) for n, u in urls.items()}, rounds * 20)
        report("one text, one request", times, "ms", 1000)
        times = alternate({n: eight_clients(u) for n, u in urls.items()}, rounds)
        ours, theirs = report("8 clients x 250 texts", times, "s", 1)
        rates = f"ours {2000 / ours:.0f}, infinity {2000 / theirs:.0f}"
        print(f"result throughput texts/s (medians): {rates}", flush=True)

    ours, theirs = vectors["ours"], vectors["infinity"]
    norms = {n: np.linalg.norm(v, axis=1) for n, v in vectors.items()}
    cos = (ours * theirs).sum(1) / (norms["ours"] * norms["infinity"])
    print(
        f"result vectors ({len(texts)} texts, dim {ours.shape[1]}): cosine min {cos.min():.6f}"
        f", median {np.median(cos):.6f}; max |ours - infinity| {np.abs(ours - theirs).max():.2e}"
        f"; norms ours {norms['ours'].min():.4f}-{norms['ours'].max():.4f}"
        f", infinity {norms['infinity'].min():.4f}-{norms['infinity'].max():.4f}",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 5)
