"""Writes to the Hub: repos, uploads, deletions, branches and tags; saving and pushing a model.

Every verb takes ``env=None, token=None`` (R passes ``hf_env()``) and resolves them with
:func:`pybridge.hub_call.write_settings`, and runs each request through
:func:`pybridge.hub_call.write` (the call state, Xet only for huggingface.co, statuses to errors).
A write always needs a token: without one the verb fails at once with ``AuthError`` and makes
no request.

Commits are not retried here (a lost answer would make a second commit); huggingface_hub retries
the LFS uploads itself. A commit returns ``{commit_oid, commit_url, pr_url, repo_id, revision}``.

:func:`save_model` writes what transformers' ``save_pretrained()`` writes, from plain values:
``config.json``, the weights as safetensors through :func:`pybridge.safetensors.save_file`
(sharded with huggingface_hub's splitter and ``model.safetensors.index.json`` above
``max_shard_size``), the tokenizer files (transformers' ``save_pretrained``; only this step
imports transformers) and a ``README.md`` model card (huggingface_hub's ``ModelCard``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile

import numpy as np

from . import _args, errors, hub_call
from . import safetensors as st
from .hub_call import hf_api
from .settings import Settings

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_SIZE = "50GB"  # transformers 5's save_pretrained default
_SHARD_FILE = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_LIST_KEYS = ("architectures",)  # config keys transformers reads as lists


# ---------------------------------------------------------------------------------------------
# Repo verbs


def create_repo(
    repo_id, repo_type="model", private=False, exist_ok=False, space_sdk=None, env=None, token=None
) -> dict:
    """Create a repo; ``{repo_id, repo_type, url}``. A Space needs ``space_sdk``."""
    ctx = _args.repo_context(repo_id, "main", repo_type)
    if repo_type == "space":
        _args.check_space_sdk(space_sdk, **ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_create_repo")
    url = hub_call.write(
        lambda: hf_api(s).create_repo(
            repo_id,
            repo_type=repo_type,
            private=bool(private),
            exist_ok=bool(exist_ok),
            space_sdk=space_sdk if repo_type == "space" else None,
            token=s.token,
        ),
        s,
        ctx,
    )
    return {
        "repo_id": str(getattr(url, "repo_id", repo_id)),
        "repo_type": repo_type,
        "url": str(url),
    }


def upload_file(
    path,
    path_in_repo,
    repo_id,
    repo_type="model",
    revision="main",
    commit_message=None,
    commit_description=None,
    create_pr=False,
    parent_commit=None,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """Upload one local file as ``path_in_repo``; one commit."""
    ctx = _args.repo_context(
        repo_id, revision, repo_type, filename=path_in_repo, filename_argument="path_in_repo"
    )
    path = _local(path, "path", ctx, folder=False)
    s = hub_call.write_settings(env, token, ctx, "hub_upload_file")
    info = hub_call.write(
        lambda: hf_api(s).upload_file(
            path_or_fileobj=path,
            path_in_repo=path_in_repo,
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message or f"Upload {path_in_repo}",
            commit_description=commit_description,
            create_pr=bool(create_pr),
            parent_commit=parent_commit,
            token=s.token,
        ),
        s,
        ctx,
        quiet,
    )
    return _commit(info, ctx)


def upload_folder(
    folder,
    repo_id,
    repo_type="model",
    path_in_repo=None,
    allow_patterns=None,
    ignore_patterns=None,
    delete_patterns=None,
    commit_message=None,
    commit_description=None,
    revision="main",
    create_pr=False,
    parent_commit=None,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """Upload a local folder (filtered by glob patterns) in one commit; ``delete_patterns``
    removes matching remote files that the folder does not hold."""
    ctx = _args.repo_context(repo_id, revision, repo_type)
    folder = _local(folder, "folder", ctx, folder=True)
    if path_in_repo:
        _args.check_repo_path(path_in_repo, "path_in_repo", ctx)
    allow = _args.check_patterns(allow_patterns, "allow_patterns", ctx)
    ignore = _args.check_patterns(ignore_patterns, "ignore_patterns", ctx)
    delete = _args.check_patterns(delete_patterns, "delete_patterns", ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_upload_folder")
    info = hub_call.write(
        lambda: hf_api(s).upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            repo_type=repo_type,
            path_in_repo=path_in_repo,
            allow_patterns=allow,
            ignore_patterns=ignore,
            delete_patterns=delete,
            commit_message=commit_message or "Upload folder using hfbridge",
            commit_description=commit_description,
            revision=revision,
            create_pr=bool(create_pr),
            parent_commit=parent_commit,
            token=s.token,
        ),
        s,
        ctx,
        quiet,
    )
    return _commit(info, ctx)


def delete_file(
    path_in_repo,
    repo_id,
    repo_type="model",
    revision="main",
    commit_message=None,
    create_pr=False,
    parent_commit=None,
    env=None,
    token=None,
) -> dict:
    """Delete one file of the repo; one commit."""
    ctx = _args.repo_context(
        repo_id, revision, repo_type, filename=path_in_repo, filename_argument="path_in_repo"
    )
    s = hub_call.write_settings(env, token, ctx, "hub_delete_file")
    info = hub_call.write(
        lambda: hf_api(s).delete_file(
            path_in_repo,
            repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message or f"Delete {path_in_repo}",
            create_pr=bool(create_pr),
            parent_commit=parent_commit,
            token=s.token,
        ),
        s,
        ctx,
    )
    return _commit(info, ctx)


def create_branch(
    repo_id, branch, revision=None, repo_type="model", exist_ok=False, env=None, token=None
) -> dict:
    """Create ``branch`` at ``revision`` (the head of main by default); ``{repo_id, branch,
    commit}``."""
    ctx = _args.repo_context(repo_id, revision or "main", repo_type)
    _args.check_ref_name(branch, "branch", ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_create_branch")
    hub_call.write(
        lambda: hf_api(s).create_branch(
            repo_id,
            branch=branch,
            revision=revision,
            repo_type=repo_type,
            exist_ok=bool(exist_ok),
            token=s.token,
        ),
        s,
        ctx,
        exists=("branch", branch),
    )
    return {"repo_id": repo_id, "branch": branch, "commit": _head(s, ctx, branch)}


def create_tag(
    repo_id,
    tag,
    revision="main",
    tag_message=None,
    repo_type="model",
    exist_ok=False,
    env=None,
    token=None,
) -> dict:
    """Tag ``revision``; ``{repo_id, tag, commit}``."""
    ctx = _args.repo_context(repo_id, revision, repo_type)
    _args.check_ref_name(tag, "tag", ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_create_tag")
    hub_call.write(
        lambda: hf_api(s).create_tag(
            repo_id,
            tag=tag,
            revision=revision,
            tag_message=tag_message,
            repo_type=repo_type,
            exist_ok=bool(exist_ok),
            token=s.token,
        ),
        s,
        ctx,
        exists=("tag", tag),
    )
    return {"repo_id": repo_id, "tag": tag, "commit": _head(s, ctx, tag)}


def whoami(env=None, token=None) -> dict:
    """The account of the token: ``{name, type, role, token_source, endpoint}``; never the token."""
    ctx = {"repo_id": "", "revision": "", "repo_type": "model"}
    s = hub_call.write_settings(env, token, ctx, "hub_whoami")
    info = hub_call.write(lambda: hf_api(s).whoami(token=s.token), s, ctx)
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    return {
        "name": str(info.get("name") or ""),
        "type": str(info.get("type") or "user"),
        "role": str(role or "unknown"),
        "token_source": s.token_source,
        "endpoint": s.endpoint,
    }


# ---------------------------------------------------------------------------------------------
# Saving and pushing a model


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
    scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-save-", dir=parent)
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


def push_model(
    repo_id,
    weights,
    config,
    tokenizer=None,
    card=None,
    folder=None,
    private=False,
    commit_message=None,
    revision="main",
    create_pr=False,
    max_shard_size=DEFAULT_MAX_SHARD_SIZE,
    dtypes=None,
    default_dtype="float32",
    reversed=False,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """:func:`save_model` into ``folder`` (a temporary one by default), create the repo if
    needed, and upload the folder in one commit. Stale weight shards on the Hub are deleted."""
    ctx = _args.repo_context(repo_id, revision, "model")
    hub_call.write_settings(env, token, ctx, "hub_push_model")  # fail before saving, not after
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="hfbridge-push-"))
        save_model(
            folder,
            weights,
            config,
            tokenizer=tokenizer,
            card=card,
            max_shard_size=max_shard_size,
            dtypes=dtypes,
            default_dtype=default_dtype,
            reversed=reversed,
            env=env,
            token=token,
        )
        create_repo(repo_id, "model", private=private, exist_ok=True, env=env, token=token)
        out = upload_folder(
            folder,
            repo_id,
            commit_message=commit_message or "Upload model",
            revision=revision,
            create_pr=create_pr,
            delete_patterns=["model-*-of-*.safetensors", WEIGHTS_INDEX_NAME, WEIGHTS_NAME],
            quiet=quiet,
            env=env,
            token=token,
        )
    return out


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
        with open(os.path.expanduser(config), encoding="utf-8") as fh:
            config = json.load(fh)
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
        target = st._save_dtype(name, np.asarray(arr), dtypes.get(name), default_dtype)
        return int(np.asarray(arr).size) * st.DTYPES[st.SAVE_DTYPES[target]].bits // 8

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
    """The tokenizer files transformers' save_pretrained writes (tokenizer.json,
    tokenizer_config.json, special_tokens_map.json...)."""
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
    """Move the scratch files into ``folder``; weight files of an earlier save that this one does
    not replace are removed, as save_pretrained does."""
    os.makedirs(folder, exist_ok=True)
    new = set(os.listdir(scratch))
    if WEIGHTS_NAME in new or WEIGHTS_INDEX_NAME in new:
        for name in os.listdir(folder):
            stale = _SHARD_FILE.match(name) or name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
            if stale and name not in new and os.path.isfile(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
    for name in sorted(new):
        os.replace(os.path.join(scratch, name), os.path.join(folder, name))
    return sorted(os.path.join(folder, name) for name in new)


# ---------------------------------------------------------------------------------------------
# Helpers


def _commit(info, ctx) -> dict:
    return {
        "commit_oid": str(info.oid),
        "commit_url": str(info.commit_url),
        "pr_url": str(info.pr_url) if info.pr_url else None,
        "repo_id": ctx["repo_id"],
        "revision": ctx["revision"],
    }


def _head(s: Settings, ctx, revision) -> str:
    info = hub_call.write(
        lambda: hf_api(s).repo_info(
            ctx["repo_id"], revision=revision, repo_type=ctx["repo_type"], token=s.token
        ),
        s,
        ctx,
    )
    return str(info.sha)


def _local(path, name, ctx, folder: bool) -> str:
    if not isinstance(path, str) or not path.strip():
        raise errors.InvalidArgumentError(
            f"{name} must be a local path.", argument=name, **_args.fields_of(ctx)
        )
    full = os.path.abspath(os.path.expanduser(path))
    ok = os.path.isdir(full) if folder else os.path.isfile(full)
    if not ok:
        what = "folder" if folder else "file"
        problem = f"is not a {what}" if os.path.exists(full) else "does not exist"
        raise errors.InvalidArgumentError(
            f"The local {what} '{path}' {problem}.",
            argument=name,
            path=path,
            **_args.fields_of(ctx),
        )
    return full
