"""The Python side of bench/chat, with the settings bench.R uses. Prints one JSON object of each
round's times (seconds).

- ``server``: huggingface_hub's InferenceClient against a server (requests, then streams).
  bench.R runs it before, between and after its own blocks of rounds and pools them, so that a
  server or machine that speeds up or slows down over the run favours neither side.
- ``local``: transformers' generate() in this process (template, generate, decode). bench.R
  runs it in several processes, alternating with as many R processes of local.R.

Usage: python anchor.py server URL MODEL ROUNDS MAX_TOKENS
       python anchor.py local FOLDER ROUNDS MAX_TOKENS
"""

from __future__ import annotations

import json
import sys
import time

from huggingface_hub import InferenceClient

QUESTION = "The food was excellent."
SYSTEM = "Be brief."


def timed(fn, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def stream_times(client, model, messages, max_tokens, rounds):
    """(times to the first content chunk, content chunks per second after it), per round."""
    firsts, rates = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        first, n = None, 0
        for chunk in client.chat_completion(
            messages, model=model, max_tokens=max_tokens, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
                first = first or time.perf_counter() - t
        total = time.perf_counter() - t
        firsts.append(first)
        rates.append((n - 1) / (total - first) if n > 1 else None)
    return firsts, rates


MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def server(url, model, rounds, max_tokens):
    client = InferenceClient(base_url=url)
    request = timed(
        lambda: client.chat_completion(MESSAGES, model=model, max_tokens=max_tokens), rounds
    )
    first, rate = stream_times(client, model, MESSAGES, max_tokens, rounds)
    return {"request": request, "first_chunk": first, "chunks_per_s": rate}


def local(folder, rounds, max_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()

    def generate():
        ids = tok.apply_chat_template(
            MESSAGES, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        with torch.inference_mode():
            out = lm.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
        tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    generate()  # the first call pays for lazy set-up
    return {"local": timed(generate, rounds)}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "server":
        result = server(args[0], args[1], int(args[2]), int(args[3]))
    else:
        result = local(args[0], int(args[1]), int(args[2]))
    print(json.dumps(result))
