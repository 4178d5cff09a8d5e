"""The Python side of bench/chat: huggingface_hub's InferenceClient against a server, and
transformers' generate() in process, with the settings bench.R uses. Prints one JSON object of
each round's times (seconds): bench.R runs it before and after its own rounds and pools them, so
that a server or machine that speeds up or slows down over the run favours neither side.

Usage: python anchor.py URL MODEL FOLDER ROUNDS MAX_TOKENS
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


def main(url, model, folder, rounds, max_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    client = InferenceClient(base_url=url)
    request = timed(
        lambda: client.chat_completion(messages, model=model, max_tokens=max_tokens), rounds
    )
    first, rate = stream_times(client, model, messages, max_tokens, rounds)

    tok = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()

    def generate():
        ids = tok.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        with torch.inference_mode():
            out = lm.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
        tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    generate()  # the first call pays for lazy set-up
    local = timed(generate, rounds)
    print(
        json.dumps({"request": request, "first_chunk": first, "chunks_per_s": rate, "local": local})
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
