"""A transformers model folder written from plain values, as ``save_pretrained()`` writes it:
``config.json``; the weights as safetensors through :func:`pybridge.safetensors.save_file`,
sharded with huggingface_hub's splitter and ``model.safetensors.index.json`` above
``max_shard_size``; the tokenizer files (transformers' ``save_pretrained``; only this step
imports transformers); and a ``README.md`` model card (huggingface_hub's ``ModelCard``).
R's ``save_model()`` calls :func:`save_model`; :func:`pybridge.publish.push_model` uploads the
folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

from . import errors, staging
from . import safetensors as st

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_SIZE = "50GB"  # transformers 5's save_pretrained default
_SHARD_FILE = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_LIST_KEYS = ("architectures",)  # config keys transformers reads as lists
# What a save replaces: the files of the weights, sharded or not.
WEIGHT_FILES = ["model-*-of-*.safetensors", WEIGHTS_INDEX_NAME, WEIGHTS_NAME]


def save_model(
    folder,
    weights,
    config,
    tokenizer=None,
    card=None,
    max_shard_size=DEFAULT_MAX_SHARD_SIZE,
    dtypes=None,
    default_dtype="float32",
    reversed=False,
    env=None,
    token=None,
) -> list:
    """Write a transformers model folder from plain values; the paths written, sorted.

    ``weights`` maps tensor names to arrays (R's column-major views; ``reversed`` when the dims
    are the reversed shapes), saved as ``default_dtype`` unless ``dtypes`` names another.
    ``tokenizer`` is a ``tokenizers.Tokenizer`` or a repo id or folder of a tokenizer.
    ``card`` is README text, or a dict of card metadata (``license``, ``tags``, ``pipeline_tag``,
    ``base_model``, ``library_name``, ...) with an optional ``description``. The files are
    written in a scratch folder first and moved in at the end, so a failure leaves the folder as
    it was.
    """
    folder = os.path.abspath(os.path.expanduser(str(folder)))
    config = _check_config(config)
    max_shard_size = _check_shard_size(max_shard_size)
    _check_weights_dtype(default_dtype)
    if isinstance(weights, (list, tuple)) and not weights:
        weights = {}
    if not isinstance(weights, dict) or not weights:
        raise errors.InvalidArgumentError(
            "weights must be a named list of arrays.", argument="weights"
        )
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        raise errors.InvalidArgumentError(f"The folder {parent} does not exist.", path=folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise errors.InvalidArgumentError(f"{folder} is a file, not a folder.", path=folder)
    scratch = staging.folder(parent, f"{os.path.basename(folder)}-save")
    try:
        _write_json(os.path.join(scratch, "config.json"), config)
        _save_weights(scratch, weights, max_shard_size, dtypes, default_dtype, reversed)
        if tokenizer is not None:
            _save_tokenizer(scratch, tokenizer, config, env, token)
        _save_card(scratch, card, config)
        written = _move_in(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return written


def _check_weights_dtype(dtype) -> None:
    """A model's weights are floats: an integer ``dtype`` for all of them would be ignored for
    the double arrays (saved as float64), so it is refused. Integer tensors take theirs by name."""
    if dtype is not None and st.is_float_dtype(dtype) is False:
        raise errors.InvalidArgumentError(
            f"dtype '{dtype}' is not a float type: a model's weights are stored as float32, "
            "float16, bfloat16 or float64. To store an integer tensor as an integer type, name "
            'it: dtype = c(position_ids = "int64").',
            argument="dtype",
        )


def _check_shard_size(value):
    """An int of bytes (R gives a double), or a size such as "5GB"."""
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and re.match(r"^\s*\d+(\.\d+)?\s*[KMGT]B\s*$", value, re.I):
        return value.strip()
    raise errors.InvalidArgumentError(
        f'max_shard_size must be a number of bytes or a size such as "5GB" or "500MB", not '
        f"{value!r}.",
        argument="max_shard_size",
    )


def _check_config(config) -> dict:
    if isinstance(config, str) and os.path.isfile(os.path.expanduser(config)):
        path = os.path.expanduser(config)
        try:
            with open(path, encoding="utf-8") as fh:
                config = json.load(fh)
        except (ValueError, OSError) as e:  # UnicodeDecodeError and JSONDecodeError included
            raise errors.InvalidArgumentError(
                f"config {path} is not a JSON file ({e}).", argument="config", path=path
            ) from None
    if not isinstance(config, dict) or not config:
        raise errors.InvalidArgumentError(
            "config must be a named list (what config.json holds) or the path of a config.json.",
            argument="config",
        )
    config = dict(config)
    for key in _LIST_KEYS:  # R gives a length-1 character vector as a plain string
        if isinstance(config.get(key), str):
            config[key] = [config[key]]
    if not config.get("model_type") and not config.get("auto_map"):
        raise errors.InvalidArgumentError(
            'config needs model_type (such as "gpt2"), or auto_map for a custom architecture, '
            "so that transformers knows which model class to build.",
            argument="config",
        )
    return config


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _save_weights(folder, weights, max_shard_size, dtypes, default_dtype, reversed):
    """The weights as transformers writes them: one file, or shards and an index."""
    from huggingface_hub import split_state_dict_into_shards_factory

    dtypes = dict(dtypes or {})

    def storage_size(name_and_array):
        name, arr = name_and_array
        return st.saved_nbytes(name, arr, dtypes.get(name), default_dtype)

    # The splitter sees (name, array) pairs so that the size function knows the tensor's name.
    split = split_state_dict_into_shards_factory(
        {name: (name, arr) for name, arr in weights.items()},
        get_storage_size=storage_size,
        filename_pattern=WEIGHTS_NAME.replace(".safetensors", "{suffix}.safetensors"),
        max_shard_size=max_shard_size,
    )
    for filename, names in split.filename_to_tensors.items():
        st.save_file(
            {n: weights[n] for n in names},
            os.path.join(folder, filename),
            metadata={"format": "pt"},
            dtypes={n: dtypes[n] for n in names if n in dtypes},
            default_dtype=default_dtype,
            reversed=reversed,
        )
    if split.is_sharded:
        total = sum(int(np.asarray(a).size) for a in weights.values())
        _write_json(
            os.path.join(folder, WEIGHTS_INDEX_NAME),
            {
                "metadata": {"total_parameters": total, **split.metadata},
                "weight_map": split.tensor_to_filename,
            },
        )


def _save_tokenizer(folder, tokenizer, config, env, token):
    """The tokenizer files transformers' save_pretrained writes (tokenizer.json and
    tokenizer_config.json)."""
    from .models import quiet_transformers

    with quiet_transformers():
        import transformers

        if isinstance(tokenizer, str):
            from .hub import local_folder

            source = local_folder(tokenizer, env=env, token=token, quiet=True)
            try:
                tok = transformers.AutoTokenizer.from_pretrained(source)
            except Exception as exc:  # noqa: BLE001 - any failure means no usable tokenizer
                raise errors.InvalidFileError(
                    f"No tokenizer could be loaded from '{tokenizer}': {exc}", argument="tokenizer"
                ) from None
            if len(tok.get_vocab()) <= len(set(tok.all_special_tokens)):
                # transformers 5 builds an empty tokenizer from a config.json alone
                raise errors.InvalidFileError(
                    f"'{tokenizer}' holds no tokenizer files (tokenizer.json, vocab.txt, "
                    "vocab.json and merges.txt, or a sentencepiece model): only an empty "
                    "vocabulary could be made from it.",
                    argument="tokenizer",
                )
        elif type(tokenizer).__name__ == "Tokenizer":
            tok = transformers.PreTrainedTokenizerFast(
                tokenizer_object=tokenizer, **_special_tokens(tokenizer, config)
            )
        else:
            raise errors.InvalidArgumentError(
                "tokenizer must be an hfbridge tokenizer, or a repo id or folder holding one.",
                argument="tokenizer",
            )
        tok.save_pretrained(folder)


def _special_tokens(tokenizer, config) -> dict:
    """bos/eos/unk/pad tokens named by the config's token ids, as transformers needs them."""
    out = {}
    for name in ("bos", "eos", "unk", "pad"):
        token_id = config.get(f"{name}_token_id")
        if isinstance(token_id, list):
            token_id = token_id[0] if token_id else None
        if isinstance(token_id, (int, float)) and not isinstance(token_id, bool):
            text = tokenizer.id_to_token(int(token_id))
            if text is not None:
                out[f"{name}_token"] = text
    return out


_CARD_FIELDS = (
    "library_name",
    "license",
    "tags",
    "pipeline_tag",
    "base_model",
    "datasets",
    "language",
    "metrics",
    "model_name",
    "license_name",
    "license_link",
)


def _save_card(folder, card, config):
    from huggingface_hub import ModelCard, ModelCardData

    if isinstance(card, str):
        ModelCard(card, ignore_metadata_errors=True).save(os.path.join(folder, "README.md"))
        return
    if card is None:
        card = {}
    if not isinstance(card, dict):
        raise errors.InvalidArgumentError(
            "card must be NULL, README text, or a named list of card metadata (license, tags, "
            "pipeline_tag, base_model, library_name, description).",
            argument="card",
        )
    fields = dict(card)
    description = str(fields.pop("description", "") or "")
    unknown = sorted(set(fields) - set(_CARD_FIELDS))
    if unknown:
        raise errors.InvalidArgumentError(
            f"Unknown card field(s) {', '.join(unknown)}; use {', '.join(_CARD_FIELDS)} or "
            "description.",
            argument="card",
        )
    for key in ("tags", "datasets", "metrics"):
        if isinstance(fields.get(key), str):
            fields[key] = [fields[key]]
    fields.setdefault("library_name", "transformers")
    tags = list(fields.get("tags") or [])
    fields["tags"] = tags + [t for t in ("hfbridge",) if t not in tags]
    data = ModelCardData(**fields)
    title = fields.get("model_name") or (config.get("architectures") or ["Model"])[0]
    body = f"# {title}\n\n{description or 'Saved from R with hfbridge.'}\n"
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}").save(os.path.join(folder, "README.md"))


def _move_in(scratch, folder) -> list:
    """``scratch`` becomes ``folder`` whole, in one atomic exchange of the two folders, so a
    killed save leaves the old model or the new one, never a mix. The files of ``folder`` this
    save does not write come along (hard links), but for the weight files of an earlier save,
    which are dropped as save_pretrained drops them. The new files' paths, sorted."""
    new = set(os.listdir(scratch))
    written = sorted(os.path.join(folder, name) for name in new)
    if not os.path.isdir(folder):
        os.rename(scratch, folder)
        return written
    replaces_weights = WEIGHTS_NAME in new or WEIGHTS_INDEX_NAME in new
    for name in os.listdir(folder):
        stale = _SHARD_FILE.match(name) or name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
        if name not in new and not (replaces_weights and stale):
            _keep(os.path.join(folder, name), os.path.join(scratch, name))
    if not _exchange(scratch, folder):  # no renameat2: two renames, a brief gap between them
        old = staging.folder(os.path.dirname(folder), f"{os.path.basename(folder)}-old")
        os.rename(folder, os.path.join(old, "model"))
        os.rename(scratch, folder)
        shutil.rmtree(old, ignore_errors=True)
    return written  # the caller removes scratch, which now holds the old folder


def _keep(source, target) -> None:
    """A file or folder of the old model, into the new one: hard links, else copies."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True, copy_function=link)
    else:
        link(source, target)


def _exchange(a, b) -> bool:
    """Swaps two folders atomically (Linux renameat2 with RENAME_EXCHANGE); False where the
    system or its file system has no such call."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
