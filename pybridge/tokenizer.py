"""Tokenizers: load, encode, decode, pad, truncate, inspect the vocabulary (training is in
:mod:`pybridge.tokenizer_train`).

A tokenizer is a ``tokenizers.Tokenizer``: the one live Python object handed to R (R wraps it in
an R6 object). Everything else returns plain values (CONTRIBUTING.md, "Return conventions"):

- a batch of encodings is a dict of flat columns over all tokens of all texts plus ``splits``
  (int32, n + 1 offsets into the columns); R splits them. R reads its numbers in place and its
  tokens from UTF-8 buffers, by address (:mod:`pybridge.columns`); the result's ``held`` keeps
  them. Where the tokenizer's settings decide a field exactly, it is made rather than read from
  every encoding (:mod:`pybridge.token_strings`, :mod:`pybridge.special_layout`);
- a padded batch is a dict of Fortran-ordered int32 matrices (n, L), so reticulate copies them
  into R without a transpose;
- token offsets are 1-based inclusive (``start``, ``end``) in characters (code points), so R's
  ``substr(text, start, end)`` equals Python's ``text[s:e]``; an empty span has end = start - 1;
- "no value" in an int32 column (a special token's word id, an unknown token's id) is -1.

Only ``tokenizers`` and the hub layer are imported; transformers is imported only by
:func:`_convert_with_transformers`, for repos that ship no tokenizer.json, and by
:func:`apply_chat_template`, which loads transformers' tokenizer of the same folder the first
time a conversation is formatted.
"""

from __future__ import annotations

import contextlib
import json
import os
from itertools import chain
from typing import Optional

import numpy as np
from tokenizers import AddedToken, Tokenizer

from . import _args, columns, errors, memory, special_layout, token_strings

TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template.jinja",  # where transformers 5 saves a chat template
    "additional_chat_templates/*",
]
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
DIRECTIONS = ("left", "right")
_INT32 = np.int32


# ---------------------------------------------------------------------------------------------
# Loading and saving


def from_pretrained(identifier, revision="main", env=None, token=None) -> Tokenizer:
    """The tokenizer of a Hub repo id or a local folder.

    Reads ``tokenizer.json``; a folder without one (vocab.txt, vocab.json + merges.txt, a
    sentencepiece model) is converted the way transformers' AutoTokenizer(use_fast=True) does.
    """
    from .hub import local_folder

    if isinstance(identifier, str) and os.path.isfile(os.path.expanduser(identifier)):
        return from_file(identifier)
    folder = local_folder(
        identifier, revision=revision, allow_patterns=TOKENIZER_FILES, env=env, token=token
    )
    path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(path):
        return _remember_folder(from_file(path), folder, identifier)
    return _remember_folder(_convert_with_transformers(folder, identifier), folder, identifier)


def from_file(path) -> Tokenizer:
    """A tokenizer from a tokenizer.json file (or a folder holding one)."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(path):
        raise errors.InvalidArgumentError(
            f"No tokenizer file at '{path}'. Give the path of a tokenizer.json file.", path=path
        )
    try:
        tok = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON or a bad model
        raise errors.InvalidFileError(
            f"'{path}' is not a valid tokenizer.json file: {exc}", path=path
        ) from None
    if os.path.basename(path) == "tokenizer.json":  # what transformers reads in that folder
        _remember_folder(tok, os.path.dirname(os.path.abspath(path)))
    return tok


def from_str(json_text: str) -> Tokenizer:
    try:
        return Tokenizer.from_str(json_text)
    except Exception as exc:
        raise errors.InvalidFileError(f"Not a valid tokenizer JSON: {exc}") from None


def save(tok: Tokenizer, path, pretty=True) -> str:
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise errors.InvalidArgumentError(
            f"The folder '{parent}' does not exist: create it first.", path=path
        )
    try:
        tok.save(path, pretty=bool(pretty))
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises a plain Exception
        raise errors.write_failure(e, f"Could not write {path}: {e}.", path) from None
    return path


def _convert_with_transformers(folder: str, identifier: str) -> Tokenizer:
    """transformers' AutoTokenizer(use_fast=True).backend_tokenizer: the conversion fallback."""
    if not any(
        os.path.exists(os.path.join(folder, name))
        for name in ("vocab.txt", "vocab.json", "tokenizer_config.json")
    ) and not any(name.endswith((".model", ".tiktoken")) for name in os.listdir(folder)):
        raise errors.EntryNotFoundError(
            f"'{identifier}' has no tokenizer: neither tokenizer.json nor vocabulary files "
            "(vocab.txt, vocab.json + merges.txt, a sentencepiece .model).",
            repo_id=identifier,
            filename="tokenizer.json",
            path=folder,
        )
    try:
        from transformers import AutoTokenizer

        fast = AutoTokenizer.from_pretrained(folder, use_fast=True)
        backend = fast.backend_tokenizer
    except Exception as exc:
        hint = (
            " Converting a sentencepiece model needs the Python packages sentencepiece and "
            "protobuf."
            if any(n.endswith(".model") for n in os.listdir(folder))
            else ""
        )
        raise errors.InvalidFileError(
            f"'{identifier}' has no tokenizer.json, and transformers could not convert its "
            f"vocabulary files: {type(exc).__name__}: {exc}.{hint}",
            repo_id=identifier,
            path=folder,
        ) from None
    # A copy, so that the R object does not share state with transformers' wrapper.
    return Tokenizer.from_str(backend.to_str())


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(
    tok: Tokenizer, texts, pairs=None, add_special_tokens=True, max_padding_bytes=None
) -> dict:
    """Every field of the encodings of ``texts`` (and ``pairs``) as flat columns.

    Overflowing pieces (truncation with a stride) follow the main encodings; ``parent`` gives
    the 0-based index of the main encoding each one belongs to, -1 for the main ones. Padding
    that would need more memory than :func:`padding_limit` is refused before encoding.
    """
    batch = _batch(texts, pairs)
    _check_tokenizer_padding(tok, len(batch), ENCODING_CELL_BYTES, max_padding_bytes)
    encodings = _encode(tok, batch, add_special_tokens, fast=False)
    parent = [-1] * len(encodings)
    for i, enc in enumerate(list(encodings)):
        for extra in enc.overflowing:
            encodings.append(extra)
            parent.append(i)
    layout = None
    if pairs is None and tok.padding is None and len(encodings) == len(batch):
        layout = special_layout.layout(tok, add_special_tokens)
    return _columns(tok, encodings, np.asarray(parent, dtype=_INT32), layout)


def encode_ids(
    tok: Tokenizer, texts, pairs=None, add_special_tokens=True, max_padding_bytes=None
) -> dict:
    """Only the ids, with the tokenizer's own padding and truncation: flat ids and splits."""
    batch = _batch(texts, pairs)
    _check_tokenizer_padding(tok, len(batch), IDS_CELL_BYTES, max_padding_bytes)
    encodings = _encode(tok, batch, add_special_tokens, fast=True)
    lengths = _lengths(encodings)
    return {"ids": _flat(encodings, "ids", int(lengths.sum())), "splits": _splits(lengths)}


def encode_matrix(
    tok: Tokenizer,
    texts,
    pairs=None,
    add_special_tokens=True,
    padding="longest",
    max_length=None,
    pad_to_multiple_of=None,
    max_padding_bytes=None,
) -> dict:
    """A rectangular batch: ids, attention_mask and type_ids as (n, L) int32 matrices.

    ``padding`` is "longest" (pad to the longest encoding) or "max_length". ``max_length``
    truncates (with the tokenizer's truncation strategy, stride and direction when it has
    one) and, with padding = "max_length", sets the width. Without it the tokenizer's own
    truncation applies. Pad id, pad type id and direction come from the tokenizer's padding
    settings, or tokenizers' defaults (id 0, type 0, right) when padding is off. A width that
    would need more memory than :func:`padding_limit` is refused before the matrices exist
    (with padding = "max_length", before encoding).
    """
    padding = _args.choice(padding, ("longest", "max_length"), "padding")
    max_length = _args.optional_count(max_length, "max_length")
    pad_to_multiple_of = _args.optional_count(pad_to_multiple_of, "pad_to_multiple_of")
    if padding == "max_length" and max_length is None:
        raise errors.InvalidArgumentError(
            "padding = 'max_length' needs max_length.", argument="max_length"
        )
    batch = _batch(texts, pairs)
    if padding == "max_length":
        check_matrix(len(batch), max_length, pad_to_multiple_of, max_padding_bytes)
    pad = dict(tok.padding or {"pad_id": 0, "pad_type_id": 0, "direction": "right"})
    with _settings(tok, max_length):
        encodings = _encode(tok, batch, add_special_tokens, fast=True)
    lengths = _lengths(encodings)
    total = int(lengths.sum())
    longest = int(lengths.max()) if len(lengths) else 0
    unrounded = max(longest, max_length) if padding == "max_length" else longest
    width = _round_up(unrounded, pad_to_multiple_of)
    _check_padded(
        len(batch),
        width,
        MATRIX_CELL_BYTES,
        max_padding_bytes,
        "pad_to_multiple_of"
        if width > unrounded
        else "max_length"
        if unrounded > longest
        else "texts",
    )
    mask = _token_mask(lengths, width, pad["direction"])
    return {
        "ids": _scatter(mask, _flat(encodings, "ids", total), pad["pad_id"]),
        "attention_mask": np.asfortranarray(mask.astype(_INT32)),
        "type_ids": _scatter(mask, _flat(encodings, "type_ids", total), pad["pad_type_id"]),
    }


def _encode(tok, batch, add_special_tokens, fast):
    method = tok.encode_batch_fast if fast else tok.encode_batch
    return _refused(tok, lambda: method(batch, add_special_tokens=bool(add_special_tokens)))


def _batch(texts, pairs) -> list:
    texts = _args.texts(texts, "texts")
    if pairs is None:
        return texts
    pairs = _args.texts(pairs, "pairs")
    if len(pairs) != len(texts):
        raise errors.InvalidArgumentError(
            f"pairs has {len(pairs)} texts but texts has {len(texts)}: give one pair per text.",
            argument="pairs",
        )
    return list(zip(texts, pairs))


def _refused(tok, call):
    """``call()``, with a failure of the tokenizer's truncation as InvalidArgumentError (a stride
    too long for max_length, the one input it panics on, or a sequence too short for the
    strategy's max_length), else InvalidFileError: its definition is broken (a post-processor
    naming a token the vocabulary lacks, say)."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic is a BaseException
        truncation = tok.truncation or {}
        if truncation.get("stride"):
            raise errors.InvalidArgumentError(
                f"The tokenizer refused the input: {exc}. With truncation and a stride, the "
                "stride must be shorter than what max_length leaves to each sequence."
            ) from None
        if truncation and "Truncation error" in str(exc):
            raise errors.InvalidArgumentError(
                f"The tokenizer refused the input: {exc}. Truncation with strategy "
                f"'{truncation.get('strategy')}' and max_length {truncation.get('max_length')} "
                "cannot cut this input that short: raise max_length or pick another strategy."
            ) from None
        raise broken(exc) from None


def broken(exc) -> errors.InvalidFileError:
    """The tokenizers library's failure on any input as the InvalidFileError it is: the
    tokenizer's files are broken."""
    return errors.InvalidFileError(
        f"The tokenizer failed ({exc}): its files (tokenizer.json, or the vocabulary it was made "
        "from) are broken, not the input. Load it again from a good copy."
    )


@contextlib.contextmanager
def library_failures():
    """The tokenizers library's own failures inside, as :func:`broken`: its errors are plain
    Exceptions and its panics BaseExceptions; every other exception passes as it is."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if type(exc) is Exception or type(exc).__name__ == "PanicException":
            raise broken(exc) from None
        raise


@contextlib.contextmanager
def _settings(tok: Tokenizer, max_length):
    """No padding (done in numpy) and, if asked, truncation at max_length; then restored."""
    padding, truncation = tok.padding, tok.truncation
    try:
        tok.no_padding()
        if max_length is not None:
            keep = dict(truncation or {})
            keep.pop("max_length", None)
            tok.enable_truncation(max_length, **keep)
        yield
    finally:
        if padding:
            tok.enable_padding(**padding)
        if truncation:
            tok.enable_truncation(**truncation)
        else:
            tok.no_truncation()


def _lengths(encodings) -> np.ndarray:
    return np.fromiter((len(e) for e in encodings), dtype=_INT32, count=len(encodings))


def _splits(lengths) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=_INT32)
    np.cumsum(lengths, out=out[1:])
    return out


def _flat(encodings, field, total) -> np.ndarray:
    values = chain.from_iterable(getattr(e, field) for e in encodings)
    return np.fromiter(values, dtype=_INT32, count=total)


def _flat_optional(encodings, field, total) -> np.ndarray:
    """A field that may be None, None as -1 (read as NaN, which numpy does in C)."""
    values = chain.from_iterable(getattr(e, field) for e in encodings)
    read = np.fromiter(values, dtype=np.float64, count=total)
    return np.nan_to_num(read, nan=-1).astype(_INT32)


def _token_mask(lengths, width, direction) -> np.ndarray:
    columns = np.arange(width, dtype=_INT32)
    if direction == "left":
        return columns[None, :] >= (width - lengths)[:, None]
    return columns[None, :] < lengths[:, None]


def _scatter(mask, values, fill) -> np.ndarray:
    out = np.full(mask.shape, fill, dtype=_INT32, order="F")
    # Row-major order of the True cells is the order of the flat values.
    rows, cols = np.nonzero(mask)
    out[rows, cols] = values
    return out


def _columns(tok, encodings, parent, layout) -> dict:
    """Every field as one flat column over all encodings; R reads the numbers in place
    (:func:`pybridge.columns.view`) and the tokens from utf8 buffers
    (:func:`pybridge.token_strings.token_column`). With a ``layout``
    (:mod:`pybridge.special_layout`), the fields it decides are made, not read."""
    held = columns.Held()
    lengths = _lengths(encodings)
    splits = _splits(lengths)
    total = int(splits[-1])
    offsets = np.fromiter(
        chain.from_iterable(chain.from_iterable(e.offsets for e in encodings)),
        dtype=_INT32,
        count=2 * total,
    ).reshape(total, 2)
    flat = {"ids": _flat(encodings, "ids", total)}
    if tok.padding is None:  # only padding makes a 0 in the attention mask
        flat["attention_mask"] = np.ones(total, dtype=_INT32)
    else:
        flat["attention_mask"] = _flat(encodings, "attention_mask", total)
    made = layout and special_layout.fields(layout, splits)
    if made:
        flat.update(made)
    else:
        flat.update({field: _flat(encodings, field, total) for field in _LAYOUT_FIELDS})
        flat["sequence_ids"] = _flat_optional(encodings, "sequence_ids", total)
    flat["word_ids"] = _flat_optional(encodings, "word_ids", total)
    flat.update(start=offsets[:, 0] + 1, end=offsets[:, 1])
    out = {name: columns.view(values, held) for name, values in flat.items()}
    out.update(
        tokens=token_strings.token_column(tok, encodings, flat["ids"], held),
        splits=splits,
        parent=parent,
        held=held,
    )
    return out


_LAYOUT_FIELDS = ("type_ids", "special_tokens_mask")


# ---------------------------------------------------------------------------------------------
# The memory a padded result needs

# Peak memory a padded token cell needs, measured from R (reticulate 1.28, tokenizers 0.23): a
# padded matrix exists in numpy and in R at once (three int32 matrices); a padded encoding's
# token lives in Rust, in Python lists and in R, with every field or with only its id.
MATRIX_CELL_BYTES = 32
ENCODING_CELL_BYTES = 280
IDS_CELL_BYTES = 120


def padding_limit(max_padding_bytes=None) -> int:
    """The most memory a padded result may need: ``max_padding_bytes``, or by default half of
    the memory of this machine (or of its cgroup, when that is smaller)."""
    if max_padding_bytes is not None:
        return _args.count(max_padding_bytes, "max_padding_bytes", minimum=1)
    return memory.total() // 2


def check_matrix(rows, max_length, pad_to_multiple_of=None, max_padding_bytes=None) -> None:
    """Refuses ``rows`` texts padded to ``max_length`` (rounded up to the multiple) as
    :func:`encode_matrix` would make them, when they would need more memory than the limit."""
    _check_padded(
        _args.count(rows, "rows", minimum=0),
        _round_up(
            _args.count(max_length, "max_length", minimum=1),
            _args.optional_count(pad_to_multiple_of, "pad_to_multiple_of"),
        ),
        MATRIX_CELL_BYTES,
        max_padding_bytes,
        "max_length",
    )


def _round_up(width, multiple) -> int:
    return width + (multiple - width % multiple) % multiple if multiple else width


def _check_tokenizer_padding(tok, rows, cell_bytes, max_padding_bytes) -> None:
    if tok.padding:
        _check_padding_settings(tok.padding, rows, cell_bytes, max_padding_bytes)


def _check_padding_settings(padding, rows, cell_bytes, max_padding_bytes) -> None:
    """Padding to a length pads every encoding to at least that length (rounded up to the
    multiple); padding to a multiple, to at least one multiple."""
    length, multiple = padding.get("length"), padding.get("pad_to_multiple_of")
    if length or multiple:
        _check_padded(
            rows,
            _round_up(length or 0, multiple) or multiple,
            cell_bytes,
            max_padding_bytes,
            "length" if length else "pad_to_multiple_of",
        )


def _check_padded(rows, width, cell_bytes, max_padding_bytes, argument) -> None:
    """Refuses rows x width token cells when they would need more memory than the limit."""
    limit = padding_limit(max_padding_bytes)
    cells = rows * width
    need = cells * cell_bytes
    if need <= limit:
        return
    why = "" if max_padding_bytes is not None else ", half of this machine's memory"
    advice = (
        "Encode fewer texts at a time, or truncate them with max_length."
        if argument == "texts"
        else f"Lower {argument}."
        if rows == 1
        else f"Lower {argument}, or encode fewer texts at a time."
    )
    raise errors.MemoryLimitError(
        f"Padding {rows} encoding{'' if rows == 1 else 's'} to {width} tokens makes {cells} token "
        f"cells, which need about {memory.size(need)} of memory; the limit is "
        f"{memory.size(limit)}{why}. "
        f"{advice}",
        argument=argument,
        cells=float(cells),
        bytes=float(need),
        limit=float(limit),
    )


# ---------------------------------------------------------------------------------------------
# Decoding


def decode(tok: Tokenizer, ids, skip_special_tokens=True) -> str:
    return tok.decode(_ids(ids), skip_special_tokens=bool(skip_special_tokens))


def decode_batch(tok: Tokenizer, ids, splits, skip_special_tokens=True) -> list:
    """Texts of ragged ids given as flat ids plus n + 1 splits."""
    flat = _ids(ids)
    splits = np.asarray(splits, dtype=np.int64).reshape(-1).tolist()
    sequences = [flat[a:b] for a, b in zip(splits[:-1], splits[1:])]
    return tok.decode_batch(sequences, skip_special_tokens=bool(skip_special_tokens))


def _ids(ids) -> list:
    flat = np.asarray(ids if ids is not None else [], dtype=np.int64).reshape(-1)
    if flat.size and flat.min() < 0:
        raise errors.InvalidArgumentError(
            "Token ids must be >= 0 (ids are 0-based).", argument="ids"
        )
    return flat.tolist()


# ---------------------------------------------------------------------------------------------
# Settings


def enable_padding(
    tok: Tokenizer,
    direction="right",
    pad_id=0,
    pad_type_id=0,
    pad_token="[PAD]",
    length=None,
    pad_to_multiple_of=None,
    max_padding_bytes=None,
) -> None:
    """tokenizers' enable_padding; a length that one encoding alone could not be padded to
    within :func:`padding_limit` is refused."""
    settings = dict(
        direction=_args.choice(direction, DIRECTIONS, "direction"),
        pad_id=_args.count(pad_id, "pad_id", minimum=0),
        pad_type_id=_args.count(pad_type_id, "pad_type_id", minimum=0),
        pad_token=str(pad_token),
        length=_args.optional_count(length, "length"),
        pad_to_multiple_of=_args.optional_count(pad_to_multiple_of, "pad_to_multiple_of"),
    )
    _check_padding_settings(settings, 1, ENCODING_CELL_BYTES, max_padding_bytes)
    tok.enable_padding(**settings)


def no_padding(tok: Tokenizer) -> None:
    tok.no_padding()


def enable_truncation(
    tok: Tokenizer, max_length, stride=0, strategy="longest_first", direction="right"
) -> None:
    max_length = _args.count(max_length, "max_length", minimum=1)
    stride = _args.count(stride, "stride", minimum=0)
    try:
        tok.enable_truncation(
            max_length,
            stride=stride,
            strategy=_args.choice(strategy, TRUNCATION_STRATEGIES, "strategy"),
            direction=_args.choice(direction, DIRECTIONS, "direction"),
        )
    except Exception as exc:  # e.g. stride >= max_length - special tokens
        raise errors.InvalidArgumentError(f"Truncation refused: {exc}", argument="stride") from None


def no_truncation(tok: Tokenizer) -> None:
    tok.no_truncation()


def padding(tok: Tokenizer) -> Optional[dict]:
    return tok.padding


def truncation(tok: Tokenizer) -> Optional[dict]:
    return tok.truncation


# ---------------------------------------------------------------------------------------------
# Vocabulary


def describe(tok: Tokenizer) -> dict:
    """What R's print method shows."""
    special = [t.content for _, t in sorted(tok.get_added_tokens_decoder().items()) if t.special]
    return {
        "model": type(tok.model).__name__,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "base_vocab_size": tok.get_vocab_size(with_added_tokens=False),
        "special_tokens": special,
        "normalizer": type(tok.normalizer).__name__ if tok.normalizer is not None else "",
        "pre_tokenizer": type(tok.pre_tokenizer).__name__ if tok.pre_tokenizer is not None else "",
        "padding": tok.padding,
        "truncation": tok.truncation,
    }


def get_vocab_size(tok: Tokenizer, with_added_tokens=True) -> int:
    return tok.get_vocab_size(with_added_tokens=bool(with_added_tokens))


def get_vocab(tok: Tokenizer, with_added_tokens=True) -> dict:
    """The vocabulary sorted by id: tokens (list of str) and ids (int32)."""
    pairs = sorted(
        tok.get_vocab(with_added_tokens=bool(with_added_tokens)).items(), key=lambda item: item[1]
    )
    return {
        "tokens": [t for t, _ in pairs],
        "ids": np.fromiter((i for _, i in pairs), _INT32, len(pairs)),
    }


def token_to_id(tok: Tokenizer, tokens) -> np.ndarray:
    tokens = _args.texts(tokens, "tokens")
    found = (tok.token_to_id(t) for t in tokens)
    return np.fromiter((-1 if i is None else i for i in found), dtype=_INT32, count=len(tokens))


def id_to_token(tok: Tokenizer, ids) -> dict:
    """tokens (unknown ids give "") and found (bool)."""
    tokens = [tok.id_to_token(i) for i in _ids(ids)]
    return {
        "tokens": [t or "" for t in tokens],
        "found": np.array([t is not None for t in tokens], dtype=bool),
    }


def add_tokens(tok: Tokenizer, tokens, special=False) -> int:
    tokens = _args.texts(tokens, "tokens")
    if special:
        return tok.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t in tokens]
        )
    return tok.add_tokens(tokens)


# ---------------------------------------------------------------------------------------------
# Chat templates

# Kept on a tokenizers.Tokenizer (it has a __dict__): the folder it was loaded from and its name
# for messages, then transformers' tokenizer of that folder once a conversation was formatted.
_SOURCE = "_hfbridge_source"
_CHAT = "_hfbridge_chat_tokenizer"
_TEMPLATE_FILE = "chat_template.jinja"
_TEMPLATE_DIR = "additional_chat_templates"


def _remember_folder(tok: Tokenizer, folder: str, name: Optional[str] = None) -> Tokenizer:
    setattr(tok, _SOURCE, (folder, name or folder))
    return tok


def apply_chat_template(
    tok: Tokenizer, messages, add_generation_prompt=True, tokenize=False, tools=None
):
    """A conversation formatted by transformers' own ``apply_chat_template``, with the template
    of the folder (or repo) ``tok`` was loaded from.

    transformers' tokenizer of that folder is loaded on the first call and kept with ``tok``;
    with ``tokenize`` the ids (int32, 0-based) are what it encodes, from the folder's files (tokens
    added to ``tok`` later are not seen). ``messages`` and ``tools`` are checked by
    :func:`chat_messages` and :func:`chat_tools`. A tokenizer whose folder has no template (a
    trained one, a tokenizer.json on its own) raises :class:`~pybridge.errors.NoChatTemplateError`.
    """
    messages, tools = chat_messages(messages), chat_tools(tools)
    add_generation_prompt = _flag(add_generation_prompt, "add_generation_prompt")
    tokenize = _flag(tokenize, "tokenize")
    folder, name = getattr(tok, _SOURCE, (None, None))
    out = render_chat(
        _chat_tokenizer(tok), messages, tools, add_generation_prompt, tokenize, name, folder
    )
    return np.asarray(out, dtype=_INT32) if tokenize else out


def render_chat(
    hf_tokenizer,
    messages,
    tools=None,
    add_generation_prompt=True,
    tokenize=False,
    name=None,
    folder=None,
):
    """transformers' ``apply_chat_template`` on checked messages: the text, or a list of ids.

    A template that refuses the conversation (many call ``raise_exception`` when roles do not
    alternate) is an InvalidArgumentError; no template at all a NoChatTemplateError naming
    ``name`` (a repo id or folder).
    """
    if hf_tokenizer is None or hf_tokenizer.chat_template is None:
        raise no_chat_template(name, folder)
    import jinja2

    try:
        return hf_tokenizer.apply_chat_template(
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            tokenize=tokenize,
            return_dict=False,
        )
    except jinja2.TemplateError as exc:
        raise errors.InvalidArgumentError(
            f"The chat template refused the messages: {exc}", argument="messages"
        ) from None


def _chat_tokenizer(tok: Tokenizer):
    """transformers' tokenizer of ``tok``'s folder, loaded once; None when there is no template."""
    loaded = getattr(tok, _CHAT, None)
    if loaded is not None:
        return loaded
    folder, _name = getattr(tok, _SOURCE, (None, None))
    if folder is None or not has_chat_template(folder):
        return None
    from . import models

    transformers = models.import_transformers()
    try:
        with models.quiet_transformers():
            loaded = transformers.AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        raise errors.InvalidFileError(
            f"transformers could not load the tokenizer files of '{folder}' for their chat "
            f"template: {type(exc).__name__}: {exc}",
            path=folder,
        ) from None
    setattr(tok, _CHAT, loaded)
    return loaded


def has_chat_template(folder: str) -> bool:
    """Whether transformers finds a chat template in ``folder``: chat_template.jinja,
    additional_chat_templates/*.jinja, or ``chat_template`` in tokenizer_config.json."""
    if os.path.isfile(os.path.join(folder, _TEMPLATE_FILE)):
        return True
    extra = os.path.join(folder, _TEMPLATE_DIR)
    if os.path.isdir(extra) and any(n.endswith(".jinja") for n in os.listdir(extra)):
        return True
    try:
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as handle:
            return bool(json.load(handle).get("chat_template"))
    except (OSError, ValueError, AttributeError):  # no file, not JSON, not an object
        return False


def no_chat_template(name=None, folder=None) -> errors.NoChatTemplateError:
    if name is None:
        return errors.NoChatTemplateError(
            "This tokenizer has no chat template: it was not loaded from a model's folder or repo "
            "(it was trained, or read from a tokenizer.json file on its own). Load the tokenizer "
            "of a chat model with tokenizer_from_pretrained(): its folder has chat_template.jinja "
            "or a chat_template in tokenizer_config.json."
        )
    return errors.NoChatTemplateError(
        f"The tokenizer of '{name}' has no chat template (no chat_template.jinja, and no "
        "chat_template in tokenizer_config.json). Use a chat (instruct) model, or save one "
        "with a template: in Python, tokenizer.chat_template = '...' then save_pretrained().",
        path=folder,
    )


def chat_messages(value) -> list:
    """A conversation, checked: a non-empty list of dicts, each with a non-empty string ``role``
    and a string ``content`` (an assistant turn with ``tool_calls`` may have none). Other keys
    (``tool_calls``, ``tool_call_id``, ``name``) pass as given. Positions are 1-based."""
    if isinstance(value, dict) and "role" in value:
        raise _bad_messages(
            "messages is one message: give a list of messages, list(list(role = , content = ))."
        )
    if not isinstance(value, (list, tuple)):
        raise _bad_messages(
            "messages must be a data frame with the columns role and content, or a list of "
            f"messages, each list(role = , content = ); not {_kind(value)}."
        )
    if not value:
        raise _bad_messages("messages is empty: give at least one message.")
    return [_chat_message(message, i) for i, message in enumerate(value, start=1)]


def _chat_message(message, i) -> dict:
    if not isinstance(message, dict):
        raise _bad_messages(
            f"Message {i} must be a named list with role and content, not {_kind(message)}.", i
        )
    role, content = message.get("role"), message.get("content")
    if role is None:
        raise _bad_messages(f"Message {i} has no role (such as 'system', 'user', 'assistant').", i)
    if not isinstance(role, str) or not role.strip():
        raise _bad_messages(f"Message {i}: role must be a non-empty string, not {_kind(role)}.", i)
    if content is None and not (role == "assistant" and message.get("tool_calls")):
        raise _bad_messages(f"Message {i} ({role}) has no content.", i)
    if content is not None and not isinstance(content, str):
        raise _bad_messages(
            f"Message {i} ({role}): content must be a string, not {_kind(content)}.", i
        )
    return dict(message)


def _bad_messages(message, position=None) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(message, argument="messages", position=position)


def chat_tools(value):
    """None, or tool definitions for the template: dicts in OpenAI's JSON-schema shape (or Python
    functions, which transformers describes from their signature). JSON text of a list or of one
    tool is parsed; one tool becomes a list of one; an empty list is None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise errors.InvalidArgumentError(
                f"tools is not valid JSON: {exc}", argument="tools"
            ) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise errors.InvalidArgumentError(
            f"tools must be NULL or a list of tool definitions, not {_kind(value)}.",
            argument="tools",
        )
    bad = [i + 1 for i, tool in enumerate(value) if not (isinstance(tool, dict) or callable(tool))]
    if bad:
        raise errors.InvalidArgumentError(
            'tools must be tool definitions: named lists such as list(type = "function", '
            "`function` = list(name = , description = , parameters = )), or their JSON text; "
            f"not at positions {_args.positions(bad)}.",
            argument="tools",
        )
    return list(value) or None


def _flag(value, name) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise errors.InvalidArgumentError(f"{name} must be TRUE or FALSE.", argument=name)
    return bool(value)


def _kind(value) -> str:
    """What R gave, in R's words, for a message."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a named list"
    if isinstance(value, (list, tuple)):
        return f"a vector or list of {len(value)}"
    if isinstance(value, bool):
        return "a logical"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__
