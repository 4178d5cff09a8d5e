"""The token strings of a batch of encodings, for R.

Reading ``Encoding.tokens`` makes a Python str of every token: for 20k texts (500k tokens) that
is 0.1 s, a fifth of ``encode_batch`` itself. Where every token is its id's string in the
vocabulary, the strings are instead looked up once per distinct id (a few ms), and R gets the
distinct strings with each token's index into them. Where that is not sure (see
:func:`tokens_follow_ids`), every token is read, as before.
"""

from __future__ import annotations

import weakref
from itertools import chain
from typing import Optional

import numpy as np

from . import columns, special_layout

_VOCAB_MODELS = ("BPE", "WordPiece", "WordLevel")
_checked = weakref.WeakKeyDictionary()  # tokenizer -> (vocab size with added tokens, result)


def token_column(tok, encodings, ids, held) -> dict:
    """``{"strings": utf8 buffers}`` of every token, or ``{"table": utf8 buffers of the distinct
    strings, "index": 1-based int32 view into them}``; ``ids`` are the flat ids of
    ``encodings``. :mod:`pybridge.columns` describes the buffers, which ``held`` keeps."""
    if len(ids) and tokens_follow_ids(tok):
        present = np.flatnonzero(np.bincount(ids))
        strings = [tok.id_to_token(int(i)) for i in present]
        if None not in strings:
            index = np.zeros(present[-1] + 1, dtype=np.int32)
            index[present] = np.arange(1, len(present) + 1, dtype=np.int32)
            return {
                "table": columns.utf8_buffers(strings, held),
                "index": columns.view(index[ids], held),
            }
    tokens = list(chain.from_iterable(e.tokens for e in encodings))
    return {"strings": columns.utf8_buffers(tokens, held)}


def tokens_follow_ids(tok) -> bool:
    """Whether every token an encoding of ``tok`` holds is ``tok.id_to_token()`` of its id.

    - BPE makes its tokens from their ids; WordPiece and WordLevel keep the matched text, which
      is the id's string when no two strings of the vocabulary share an id. Unigram keeps the
      text of an unknown piece, so it is never assumed.
    - An added token keeps the text it matched: its content, unless it strips the spaces around
      it (``lstrip``, ``rstrip``). One matched in normalized text that normalizing changes is
      left out too, to be safe.
    - The post-processor's special tokens and the padding token are set apart from the
      vocabulary, so each is checked against it.

    The model and added-token checks are kept per tokenizer; the others, which
    ``enable_padding()`` and the like change, are made at each call.
    """
    size = tok.get_vocab_size(with_added_tokens=True)
    known = _checked.get(tok)
    if known is None or known[0] != size:
        known = (size, _model_follows_ids(tok) and _added_follow_ids(tok))
        _checked[tok] = known
    if not known[1]:
        return False
    named = _processor_tokens(tok.post_processor)
    if named is None:
        return False
    if tok.padding:
        named.append((tok.padding["pad_token"], tok.padding["pad_id"]))
    return all(tok.id_to_token(i) == string for string, i in named)


def _model_follows_ids(tok) -> bool:
    model = type(tok.model).__name__
    if model not in _VOCAB_MODELS:
        return False
    if model == "BPE":
        return True
    vocab = tok.get_vocab(with_added_tokens=False)
    return len(set(vocab.values())) == len(vocab)


def _added_follow_ids(tok) -> bool:
    normalizer = tok.normalizer
    for added in tok.get_added_tokens_decoder().values():
        if added.lstrip or added.rstrip:
            return False
        if added.normalized and normalizer is not None:
            if normalizer.normalize_str(added.content) != added.content:
                return False
    return True


def _processor_tokens(processor) -> Optional[list]:
    """(string, id) of every token ``processor`` adds; None for a kind not known here."""
    state = special_layout.processor_state(processor)
    return [] if state is None else _state_tokens(state)


def _state_tokens(state) -> Optional[list]:
    kind = state.get("type")
    if kind == "TemplateProcessing":
        specials = state["special_tokens"].values()
        return [pair for s in specials for pair in zip(s["tokens"], s["ids"])]
    if kind in ("BertProcessing", "RobertaProcessing"):
        return [tuple(state["sep"]), tuple(state["cls"])]
    if kind == "ByteLevel":
        return []
    if kind == "Sequence":
        parts = [_state_tokens(p) for p in state["processors"]]
        return None if None in parts else [pair for part in parts for pair in part]
    return None
