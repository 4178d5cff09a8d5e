"""Writes the bench corpus: N texts of 5 to 40 words drawn with a fixed seed from the
all-MiniLM vocabulary (whole words only: no ## pieces, no [special] or [unusedN] entries)."""

from __future__ import annotations

import os
import sys

import numpy as np

from pybridge.fixtures.tokenizers import minilm_folder


def vocabulary_words() -> list[str]:
    with open(os.path.join(minilm_folder(), "vocab.txt"), encoding="utf-8") as handle:
        words = [line.rstrip("\n") for line in handle]
    return [w for w in words if w and not w.startswith("##") and not w.startswith("[")]


def make_texts(n: int, seed: int = 20261123) -> list[str]:
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary_words(), dtype=object)
    lengths = rng.integers(5, 41, size=n)
    picks = rng.integers(0, len(words), size=int(lengths.sum()))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return [" ".join(words[picks[s:e]]) for s, e in zip(starts, ends)]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    out = sys.argv[2] if len(sys.argv) > 2 else "bench/data/tokenizer_texts.txt"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for text in make_texts(n):
            handle.write(text + "\n")
    print(out)


if __name__ == "__main__":
    main()
