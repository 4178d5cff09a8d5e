"""The options of an embedding request, as TEI's ``/embed`` and OpenAI's ``/v1/embeddings`` take
them, applied around the batched model run (which pools without normalising, so that requests
with different options share a batch):

- ``normalize``: unit rows (true), the raw pooled rows (false), or when not given the model's own
  choice (a sentence-transformers ``Normalize`` module);
- ``dimensions``: the first N dimensions (Matryoshka), normalised again when normalising;
- ``truncate``: false refuses a text longer than the model reads (413, as TEI) instead of
  cutting it;
- ``prompt_name``: the model's sentence-transformers prompt of that name before each text;
- OpenAI's ``encoding_format``: ``"float"`` or ``"base64"`` (little-endian float32, which
  OpenAI's client decodes).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .guard import ServeError
from .registry import _json

ENCODINGS = ("float", "base64")
DIRECTIONS = ("right", "Right")


@dataclass
class EmbedOptions:
    normalize: Optional[bool] = None  # None: the model's own
    truncate: bool = True
    dimensions: Optional[int] = None
    prompt_name: Optional[str] = None
    encoding: str = "float"


def tei_options(body: dict) -> EmbedOptions:
    direction = body.get("truncation_direction")
    if direction is not None and direction not in DIRECTIONS:
        raise ServeError(422, '`truncation_direction` must be "right": texts are cut at the end.')
    if body.get("encoding_format") not in (None, "float"):
        raise ServeError(422, '`encoding_format` must be "float" on /embed.')
    return EmbedOptions(
        normalize=_flag(body, "normalize"),
        truncate=_flag(body, "truncate") is not False,
        dimensions=_dimensions(body),
        prompt_name=_prompt_name(body),
    )


def openai_options(body: dict) -> EmbedOptions:
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise ServeError(422, f"`encoding_format` must be one of {', '.join(ENCODINGS)}.")
    return EmbedOptions(dimensions=_dimensions(body), encoding=encoding or "float")


def _flag(body, name) -> Optional[bool]:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ServeError(422, f"`{name}` must be true or false, not {value!r}.")
    return value


def _dimensions(body) -> Optional[int]:
    value = body.get("dimensions")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ServeError(422, f"`dimensions` must be a whole number >= 1, not {value!r}.")
    return value


def _prompt_name(body) -> Optional[str]:
    value = body.get("prompt_name")
    if value is not None and not isinstance(value, str):
        raise ServeError(422, "`prompt_name` must be a string.")
    return value


def encoder(served):
    """The served model's pybridge.embed Encoder (tokenizer and max_length), loaded at start."""
    from .. import embed

    return embed.load(served.folder, **served.spec.fast())


def prompted(served, texts: List[str], prompt_name: Optional[str]) -> List[str]:
    """The texts after the model's sentence-transformers prompt ``prompt_name``, as
    SentenceTransformer.encode(prompt_name=) reads them."""
    if prompt_name is None:
        return texts
    prompts = (_json(os.path.join(served.folder, "config_sentence_transformers.json")) or {}).get(
        "prompts"
    ) or {}
    if prompt_name not in prompts:
        known = ", ".join(prompts) or "none"
        raise ServeError(
            422, f"`prompt_name` '{prompt_name}' is not one of {served.name}'s prompts ({known})."
        )
    return [prompts[prompt_name] + t for t in texts]


def token_counts(served, texts: List[str]) -> List[int]:
    """The tokens the model reads of each text: its tokenizer's, special tokens included."""
    from .. import pipeline

    return pipeline.token_counts(encoder(served).tokenizer, texts)


def check_lengths(served, texts: List[str], name: str) -> None:
    """413 for a text longer than the model reads, as TEI answers with ``truncate`` false."""
    limit = encoder(served).max_length
    if limit is None:
        return
    for i, count in enumerate(token_counts(served, texts)):
        if count > limit:
            raise ServeError(
                413,
                f"`{name}[{i}]` has {count} tokens; {served.name} reads at most {limit}. "
                "Shorten it, or leave out truncate: false to have it cut.",
            )


def finish(served, rows: list, options: EmbedOptions) -> list:
    """The raw pooled rows with the request's dimensions and normalisation, as lists of floats,
    or base64 strings for ``encoding_format`` base64."""
    import torch

    out = torch.tensor(rows, dtype=torch.float32)
    if options.dimensions is not None:
        if options.dimensions > out.shape[1]:
            raise ServeError(
                422,
                f"`dimensions` is {options.dimensions}; {served.name} gives {out.shape[1]}.",
            )
        out = out[:, : options.dimensions]
    normalize = options.normalize
    if normalize is None:
        normalize = served.pooling()["normalize"]
    if normalize:  # as pybridge.embed.pool and sentence-transformers' Normalize
        out = torch.nn.functional.normalize(out, p=2, dim=1)
    if options.encoding == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in out.numpy()]
    return out.tolist()


def cosine_similarities(rows: list) -> List[float]:
    """The first row's cosine similarity with each of the others."""
    m = np.asarray(rows, dtype=np.float64)
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return (m[1:] @ m[0]).tolist()
