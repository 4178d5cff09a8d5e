"""The inference server against the same work in process, side by side, medians of ROUNDS.

- overhead: one embedding request of one text through the server (httpx, as R's verbs reach it
  through reticulate) against pybridge.embed.embed() in process, which embed_text() runs;
- concurrency: 8 clients each embedding 250 of the bench's 2,000 texts at once, against the
  2,000 in one in-process call, and against the same 8 requests one after another;
- generation: 8 concurrent chat requests, to a server with continuous batching and to one
  without (the default, as in transformers serve), against the same 8 run one after another in
  process with generate() (the tiny chat fixture, 32 new tokens, greedy).

Usage: python bench.py DATA_DIR ROUNDS
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import subprocess
import sys
import time

import httpx2 as httpx

from pybridge import embed
from pybridge.fixtures import models, task_models


def start(args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pybridge.serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()
    if " at " not in line:
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.split(" at ", 1)[1].strip()


def median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def report(name, ours, anchor, unit="s"):
    scale = 1000 if unit == "ms" else 1
    print(
        f"result {name}: server {ours * scale:.3f} {unit}, in process {anchor * scale:.3f} {unit}"
        f", ratio {ours / anchor:.2f}x",
        flush=True,
    )


def main(data_dir, rounds):
    texts = open(os.path.join(data_dir, "pipeline_texts_2000.txt"), encoding="utf-8").read()
    texts = texts.splitlines()[:2000]
    minilm = models.minilm_folder()
    chat = task_models.ensure(names=["chat"])["chat"]
    proc, url = start(
        ["--model", f"feature-extraction={minilm}",
         "--max-inputs", "2000", "--max-body-bytes", "20000000"]
    )  # fmt: skip
    client = httpx.Client(timeout=600)
    try:
        pooling = {"pooling": "mean", "normalize": True}
        embed.embed(texts[:64], minilm, **pooling)  # load and warm
        client.post(url + "/v1/embeddings", json={"input": texts[:64]})

        def one_served():
            client.post(url + "/v1/embeddings", json={"input": texts[0]}).raise_for_status()

        served = median_time(one_served, rounds * 20)
        local = median_time(lambda: embed.embed([texts[0]], minilm, **pooling), rounds * 20)
        report("one text, one request", served, local, "ms")

        chunks = [texts[i : i + 250] for i in range(0, 2000, 250)]

        def post(chunk):
            r = httpx.post(url + "/v1/embeddings", json={"input": chunk}, timeout=600)
            r.raise_for_status()

        def concurrent_clients():
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(post, chunks))

        together = median_time(concurrent_clients, rounds)
        one_call = median_time(lambda: embed.embed(texts, minilm, **pooling), rounds)
        sequential = median_time(lambda: [post(c) for c in chunks], rounds)
        report("8 clients x 250 texts vs 2,000 in one call", together, one_call)
        print(f"result 8 concurrent vs 8 sequential requests: {together / sequential:.2f}x")

    finally:
        proc.terminate()
        proc.wait(10)
    bench_generation(chat, rounds)


def bench_generation(chat, rounds):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = [f"Tell me something about number {i}." for i in range(8)]
    body = {"max_tokens": 32, "temperature": 0}
    tok = AutoTokenizer.from_pretrained(chat)
    model = AutoModelForCausalLM.from_pretrained(chat)

    url = None

    def ask(p):
        messages = [{"role": "user", "content": p}]
        r = httpx.post(
            url + "/v1/chat/completions", json={**body, "messages": messages}, timeout=600
        )
        r.raise_for_status()

    def in_process():
        for p in prompts:
            ids = tok.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt"
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            with torch.inference_mode():
                model.generate(ids, max_new_tokens=32, do_sample=False)

    def concurrent_chat():
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, prompts))

    local = median_time(in_process, rounds)
    for batching in ([], ["--continuous-batching"]):
        proc, url = start(["--model", f"chat={chat}", "--max-tokens", "64", *batching])
        try:
            ask(prompts[0])
            served = median_time(concurrent_chat, rounds)
        finally:
            proc.terminate()
            proc.wait(10)
        name = "with" if batching else "without"
        report(f"8 concurrent chats ({name} continuous batching) vs 8 generate()", served, local)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
