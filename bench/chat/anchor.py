"""The Python side of bench/chat, with the settings bench.R uses. A long-lived process: it loads
what it needs, prints ``ready``, then runs one round per line read from stdin and prints that
round's times (seconds) as one line of JSON. bench.R interleaves these rounds with its own, one
by one, so that a machine or server whose pace drifts favours neither side.

- ``server``: huggingface_hub's InferenceClient against a server; a round is ``request`` (one
  chat_completion) or ``stream`` (one streamed chat_completion: the time to the first content
  chunk, and content chunks per second after it).
- ``local``: transformers' generate() in this process; a round is ``generate`` (template,
  generate, decode).

Usage: python anchor.py server URL MODEL MAX_TOKENS
       python anchor.py local FOLDER MAX_TOKENS
"""

from __future__ import annotations

import json
import sys
import time

QUESTION = "The food was excellent."
SYSTEM = "Be brief."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def server_rounds(url, model, max_tokens):
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=url)

    def request():
        client.chat_completion(MESSAGES, model=model, max_tokens=max_tokens)

    def stream():
        started = time.perf_counter()
        first, n = None, 0
        for chunk in client.chat_completion(
            MESSAGES, model=model, max_tokens=max_tokens, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
                first = first or time.perf_counter() - started
        total = time.perf_counter() - started
        return {"first_chunk": first, "chunks_per_s": (n - 1) / (total - first) if n > 1 else None}

    request()  # the client's first call opens its connection
    return {"request": lambda: {"request": timed(request)}, "stream": stream}


def local_rounds(folder, max_tokens):
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
    return {"generate": lambda: {"local": timed(generate)}}


def serve(rounds):
    """Run the round named on each line of stdin; answer each with its times on stdout."""
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(rounds[line.strip()]()), flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "server":
        serve(server_rounds(args[0], args[1], int(args[2])))
    else:
        serve(local_rounds(args[0], int(args[1])))
