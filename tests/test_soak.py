"""Long runs (issue 27): one R session that calls the verbs thousands of times, and the local
server under 10,000 requests from 8 clients, good and bad mixed. Neither may grow.

Memory is sampled after every round of calls (R: the process's RSS and R's heap after gc()) or
every batch of requests (the server's RSS), after a warm-up. The median of the last quarter of
the samples may be at most 5% above the median of the first quarter. The figures are printed
(past pytest's capture) and written to build/soak.txt.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest

from pybridge.fixtures import task_models

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "build" / "soak.txt"
GROWTH = 1.05
pytestmark = pytest.mark.slow


def quarters(samples) -> tuple:
    """Medians of the first and last quarters of ``samples``, and their ratio."""
    n = len(samples) // 4
    first, last = statistics.median(samples[:n]), statistics.median(samples[-n:])
    return first, last, last / first


def report(name: str, lines: list, capsys) -> None:
    """Prints the figures past pytest's capture, and keeps them in build/soak.txt (one block per
    soak, replacing that soak's earlier block)."""
    FIGURES.parent.mkdir(exist_ok=True)
    kept = FIGURES.read_text().splitlines() if FIGURES.exists() else []
    kept = [line for line in kept if not line.startswith(name + ":")]
    ours = [f"{name}: {line}" for line in lines]
    FIGURES.write_text("\n".join(kept + ours) + "\n")
    with capsys.disabled():
        print("\n" + "\n".join(ours))


def flat(samples: list, unit: str) -> tuple:
    first, last, ratio = quarters(samples)
    line = (
        f"{unit} median first quarter {first:.1f}, last quarter {last:.1f}, "
        f"last / first = {ratio:.4f}"
    )
    return ratio, line


# ---- one R session --------------------------------------------------------------------------

ROUNDS, WARMUP = 100, 5  # a round: 20 pipeline calls, 20 embeds, 5 downloads, 2 + 2 handles


@pytest.mark.r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not installed")
def test_an_r_session_stays_flat_over_thousands_of_calls(mirror, publish, hf_env, tmp_path, capsys):
    folders = task_models.ensure(names=["bert", "sentiment"])
    publish("soak/bert", folders["bert"])
    publish("soak/sentiment", folders["sentiment"])
    env = {
        **os.environ,
        **hf_env,
        "SOAK_CLASSIFIER": "soak/sentiment",
        "SOAK_EMBEDDER": "soak/bert",
        "OMP_NUM_THREADS": "1",  # tiny models: threads only wait for each other on 2 cores
    }
    env.setdefault("RETICULATE_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    env.setdefault("R_LIBS", str(ROOT / ".rlib"))
    table = tmp_path / "samples.tsv"
    script = ROOT / "tests" / "r" / "soak.R"
    started = time.monotonic()
    out = subprocess.run(
        ["Rscript", str(script), str(ROUNDS), str(WARMUP), str(table)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.monotonic() - started
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    assert len(rows) == ROUNDS
    rss = [float(r[1]) for r in rows]
    heap = [float(r[2]) for r in rows]
    files = [int(r[3]) for r in rows]
    sockets = [int(r[5]) for r in rows]
    maps = [int(r[4]) for r in rows]  # 1: the embedding model pybridge keeps loaded maps it
    rss_ratio, rss_line = flat(rss, "RSS (MB)")
    heap_ratio, heap_line = flat(heap, "R heap after gc() (MB)")
    handles_line = (
        f"open files {min(files)} to {max(files)}, sockets {min(sockets)} to {max(sockets)}, "
        f"maps of the weights file {min(maps)} to {max(maps)} (after gc(), every round)"
    )
    calls = (
        f"{(ROUNDS + WARMUP) * 20} pipeline calls, {(ROUNDS + WARMUP) * 20} embed_text() calls "
        f"of 1-50 texts, {(ROUNDS + WARMUP) * 5} cached hub_download() calls, "
        f"{(ROUNDS + WARMUP) * 2} tokenizers and {(ROUNDS + WARMUP) * 2} safetensors handles "
        f"({WARMUP} warm-up rounds of {ROUNDS + WARMUP}), in {seconds:.0f} s"
    )
    report("R session", [calls, rss_line, heap_line, handles_line], capsys)
    probes = json.loads(Path(f"{table}.json").read_text())
    _same_answers_as_transformers(probes, folders["sentiment"])
    assert rss_ratio <= GROWTH, rss
    assert heap_ratio <= GROWTH, heap
    # Dropped handles leave neither an open file nor a map behind. Sockets are the connection
    # pools' (one per host and client); they may come and go but never pile up.
    assert max(files) == min(files) and max(maps) == min(maps) <= 1, (files, maps)
    assert max(sockets) <= 10, sockets


def _same_answers_as_transformers(probes: dict, classifier_folder: str) -> None:
    """The probes gave the same answers before and after the rounds, and the classifier's are
    transformers' own."""
    from transformers import pipeline

    before, after = probes["before"], probes["after"]
    assert after["classified"] == before["classified"]
    np.testing.assert_array_equal(np.array(after["embedded"]), np.array(before["embedded"]))
    reference = pipeline("text-classification", model=classifier_folder)(probes["texts"])
    assert after["classified"]["label"] == [r["label"] for r in reference]
    np.testing.assert_allclose(
        after["classified"]["score"], [r["score"] for r in reference], rtol=1e-5
    )


# ---- the local server -------------------------------------------------------------------------

CLIENTS, BATCH = 8, 100
REQUESTS, SERVER_WARMUP = 10_000, 1_000
MAX_INPUTS, MAX_BODY = 64, 50_000
TEXTS = task_models.CORPUS


def _requests(models: dict, n: int, seed: int) -> list:
    """``n`` requests (method, route, body as bytes or JSON, expected status), good and bad mixed:
    the bad ones are the bad-request set of tests/test_serve.py."""
    rng = random.Random(seed)
    chat = [{"role": "user", "content": "The food was excellent."}]
    bad = [
        ("/v1/embeddings", b"{not json", 422),
        ("/v1/embeddings", b'{"input": 5}', 422),
        ("/embed", b'{"inputs": ["\xff\xfe"]}', 422),
        ("/v1/chat/completions", b'{"messages": "hi"}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "max_tokens": 4096}', 422),
        ("/v1/chat/completions", b'{"model": "nope/none", "messages": [{"role": "user"}]}', 404),
        ("/generate", b'{"inputs": ""}', 422),
        ("/embed", json.dumps({"inputs": ["x"] * (MAX_INPUTS + 1)}).encode(), 413),
        ("/embed", json.dumps({"inputs": ["x" * MAX_BODY]}).encode(), 413),
        ("/v1/embeddings", b"[1, 2]", 422),
    ]

    def good():
        kind = rng.choices(["embeddings", "embed", "predict", "chat", "health"], [6, 3, 3, 1, 1])[0]
        some = rng.sample(TEXTS, rng.randint(1, 4))
        if kind == "embeddings":
            return ("POST", "/v1/embeddings", {"input": some, "model": models["embedding"]}, 200)
        if kind == "embed":
            return ("POST", "/embed", {"inputs": some[0], "model": models["embedding"]}, 200)
        if kind == "predict":
            return ("POST", "/predict", {"inputs": some}, 200)
        if kind == "chat":
            body = {"model": models["chat"], "messages": chat, "max_tokens": 2}
            return ("POST", "/v1/chat/completions", body, 200)
        return ("GET", "/health", None, 200)

    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            route, content, status = rng.choice(bad)
            out.append(("POST", route, content, status))
        else:
            out.append(good())
    return out


class Clients:
    """A pool of CLIENTS threads, each with its own keep-alive connection, as 8 apps would be."""

    def __init__(self, url: str):
        self.url = url
        self.local = threading.local()
        self.pool = concurrent.futures.ThreadPoolExecutor(CLIENTS)

    def _send(self, request):
        method, route, body, status = request
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(base_url=self.url, timeout=120)
        try:
            if isinstance(body, bytes):
                headers = {"content-type": "application/json"}
                answer = client.request(method, route, content=body, headers=headers)
            else:
                answer = client.request(method, route, json=body)
        except httpx.HTTPError as e:  # no answer at all
            return request, None, f"{type(e).__name__}: {e}"
        return request, answer.status_code, answer.json()

    def run(self, requests) -> list:
        return list(self.pool.map(self._send, requests))

    def close(self):
        self.pool.shutdown()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _check(results, tally) -> None:
    for (method, route, _, want), status, body in results:
        assert status == want, (method, route, status, body)
        if status != 200:
            assert set(body) == {"error", "error_type"} and body["error"], body
        key = f"{route} {status}"
        tally[key] = tally.get(key, 0) + 1


def test_the_server_stays_flat_under_ten_thousand_requests_from_eight_clients(tmp_path, capsys):
    from test_serve import Server  # the start-up that the server's own tests use

    folders = task_models.ensure(names=["bert", "sentiment", "chat"])
    models = {"embedding": folders["bert"], "chat": folders["chat"]}
    args = [
        "--model", f"feature-extraction={folders['bert']}",
        "--model", f"text-classification={folders['sentiment']}",
        "--model", f"chat={folders['chat']}",
        "--offline", "--max-tokens", "8",
        "--max-inputs", str(MAX_INPUTS), "--max-body-bytes", str(MAX_BODY),
    ]  # fmt: skip
    server = Server(args, {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, tmp_path / "serve.log")
    clients = Clients(server.url)
    try:
        probe = ("POST", "/v1/embeddings", {"input": TEXTS[:3], "model": models["embedding"]}, 200)
        before = clients.run([probe])[0][2]
        tally: dict = {}
        started = time.monotonic()
        _check(clients.run(_requests(models, SERVER_WARMUP, seed=0)), {})
        requests = _requests(models, REQUESTS, seed=1)
        rss = []
        for i in range(0, REQUESTS, BATCH):
            _check(clients.run(requests[i : i + BATCH]), tally)
            rss.append(_rss_mb(server.proc.pid))
        seconds = time.monotonic() - started
        assert server.proc.poll() is None
        assert httpx.get(server.url + "/health", timeout=30).json() == {"status": "ok"}
        after = clients.run([probe])[0][2]
    finally:
        clients.close()
        server.stop()
    # The same request answers the same after 10,000 others.
    vectors = [np.array([d["embedding"] for d in body["data"]]) for body in (before, after)]
    np.testing.assert_allclose(vectors[1], vectors[0], rtol=1e-5, atol=1e-6)
    assert sum(tally.values()) == REQUESTS
    ratio, line = flat(rss, "server RSS (MB)")
    bad = sum(n for key, n in tally.items() if not key.endswith(" 200"))
    summary = (
        f"{REQUESTS} requests ({bad} bad) from {CLIENTS} clients after {SERVER_WARMUP} of "
        f"warm-up, each answered with the status expected, in {seconds:.0f} s"
    )
    report("server", [summary, line], capsys)
    assert ratio <= GROWTH, rss
