"""special_tokens_mask, type_ids and sequence_ids of one-text encodings, from the post-processor.

Reading a field of 20k encodings from tokenizers makes a Python list per encoding: 15-20 ms for
500k tokens, so three fields cost a tenth of ``encode_batch`` itself. For encodings of one text
each, with no padding and no overflowing piece, these three fields follow from where the
post-processor puts its special tokens, as tokenizers 0.23 builds them (``Tokenizer::post_process``
and ``src/processors``):

- the model's tokens, added tokens in the text included, have mask 0;
- ``PostProcessor::process`` gives the text type id 0 and sequence id 0 over all its tokens;
- ``BertProcessing`` and ``RobertaProcessing`` put one ``cls`` before and one ``sep`` after the
  text (mask 1, type id 0, no sequence id); RoBERTa also sets every type id to 0;
- ``TemplateProcessing`` puts the single template's special tokens around the text (mask 1, the
  piece's type id, no sequence id) and gives the text the ``$A`` piece's type id;
- ``ByteLevel`` only trims offsets; with no post-processor the encoding is left as it is;
- without ``add_special_tokens`` no special token is added.

A ``Sequence`` is followed only as ByteLevel steps then at most one of the others: a ByteLevel
step after them would give each special token a sequence id of its own. Anything else is read.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Optional

import numpy as np


class Layout(NamedTuple):
    """The type ids of the special tokens before and after the text, and the text's."""

    before: tuple
    text_type_id: int
    after: tuple


NO_SPECIALS = Layout((), 0, ())


def processor_state(processor) -> Optional[dict]:
    """The post-processor's settings as tokenizer.json holds them; None without one."""
    return None if processor is None else json.loads(processor.__getstate__())


def layout(tok, add_special_tokens) -> Optional[Layout]:
    """Where ``tok``'s post-processor puts special tokens around one text; None where that is
    not known here."""
    state = processor_state(tok.post_processor)
    if state is None:
        return NO_SPECIALS
    steps = state["processors"] if state.get("type") == "Sequence" else [state]
    while steps and steps[0].get("type") == "ByteLevel":
        steps = steps[1:]
    if not steps:
        return NO_SPECIALS
    if len(steps) > 1:
        return None
    found = _step_layout(steps[0])
    if found is None or add_special_tokens:
        return found
    return Layout((), found.text_type_id, ())


def _step_layout(state) -> Optional[Layout]:
    kind = state.get("type")
    if kind in ("BertProcessing", "RobertaProcessing"):
        return Layout((0,), 0, (0,))
    if kind != "TemplateProcessing":
        return None
    pieces = state["single"]
    texts = [i for i, piece in enumerate(pieces) if "Sequence" in piece]
    if len(texts) != 1 or pieces[texts[0]]["Sequence"]["id"] != "A":
        return None
    at = texts[0]

    def type_ids(specials):
        found = []
        for piece in specials:
            special = piece["SpecialToken"]
            found += [special["type_id"]] * len(state["special_tokens"][special["id"]]["ids"])
        return tuple(found)

    return Layout(
        type_ids(pieces[:at]), pieces[at]["Sequence"]["type_id"], type_ids(pieces[at + 1 :])
    )


def fields(found: Layout, splits) -> Optional[dict]:
    """special_tokens_mask, type_ids and sequence_ids (-1 for none) of the encodings that
    ``splits`` delimits, each an int32 column over all their tokens; None if an encoding is too
    short to hold the special tokens, which would mean the layout does not apply."""
    starts, ends = splits[:-1], splits[1:]
    if np.any(ends - starts < len(found.before) + len(found.after)):
        return None
    total = int(splits[-1])
    out = {
        "special_tokens_mask": np.zeros(total, dtype=np.int32),
        "type_ids": np.full(total, found.text_type_id, dtype=np.int32),
        "sequence_ids": np.zeros(total, dtype=np.int32),
    }
    places = [(starts + j, t) for j, t in enumerate(found.before)]
    places += [(ends - len(found.after) + j, t) for j, t in enumerate(found.after)]
    for at, type_id in places:
        out["special_tokens_mask"][at] = 1
        out["type_ids"][at] = type_id
        out["sequence_ids"][at] = -1
    return out
