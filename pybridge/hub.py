"""Hub verbs: download, snapshot, load, repo info, file listing, file existence.

Every function takes ``env=None, token=None`` (R passes ``hf_env()``), resolves them with
:func:`pybridge.settings.resolve`, and hands ``cache_dir``, ``endpoint``, ``token`` and
``local_files_only`` explicitly to huggingface_hub, and sets the constants it reads from the
environment only once, at import (offline, timeouts...), for the length of the call. Failures
leave as :mod:`pybridge.errors` classes with the fields ``repo_id``, ``filename``, ``revision``
and ``repo_type``. The HTTP machinery (call state, retries, statuses to errors) is
:mod:`pybridge.hub_call`'s.

Nothing here imports torch or transformers. huggingface_hub itself is imported on first use.
"""

from __future__ import annotations

import os

from . import _args, cache, errors
from .hub_call import describe_place, hf_api, hf_module, progress_bars, refuse_offline, run
from .settings import Settings, resolve

# ---------------------------------------------------------------------------------------------
# The verbs


def download(
    repo_id,
    filename,
    revision="main",
    repo_type="model",
    local_files_only=False,
    force_download=False,
    quiet=False,
    env=None,
    token=None,
) -> str:
    """The cached path of one file of a repo (hf_hub_download), fetched if needed."""
    ctx = _args.repo_context(repo_id, revision, repo_type, filename=filename)
    s = resolve(env, token)
    fast = cache.cached_commit_path(s.cache_dir, ctx, force_download)
    if fast is not None:
        return fast
    offline = bool(s.offline or local_files_only)
    if force_download and offline:
        raise errors.InvalidArgumentError(
            "force_download = TRUE needs the Hub, but the call is offline (local_files_only or "
            "HF_HUB_OFFLINE). Drop one of the two.",
            argument="force_download",
            **ctx,
        )

    cached = cache.cached_revision(s.cache_dir, ctx, offline)

    def call():
        return hf_module().hf_hub_download(
            repo_id,
            filename,
            revision=cached,
            repo_type=repo_type,
            cache_dir=s.cache_dir,
            endpoint=s.endpoint,
            token=s.hf_token_arg,
            local_files_only=offline,
            force_download=bool(force_download),
            etag_timeout=s.etag_timeout,
            tqdm_class=progress_bars(),
        )

    return _tidy(run(call, s, ctx, offline, quiet), s, ctx, offline)


def snapshot(
    repo_id,
    revision="main",
    repo_type="model",
    allow_patterns=None,
    ignore_patterns=None,
    local_files_only=False,
    force_download=False,
    quiet=False,
    local_dir=None,
    env=None,
    token=None,
) -> str:
    """The local folder of a repo (snapshot_download), with only the files the patterns keep."""
    ctx = _args.repo_context(repo_id, revision, repo_type)
    s = resolve(env, token)
    offline = bool(s.offline or local_files_only)
    allow = _args.check_patterns(allow_patterns, "allow_patterns", ctx)
    ignore = _args.check_patterns(ignore_patterns, "ignore_patterns", ctx)
    cached = cache.cached_revision(s.cache_dir, ctx, offline)

    def call():
        return hf_module().snapshot_download(
            repo_id,
            revision=cached,
            repo_type=repo_type,
            cache_dir=s.cache_dir,
            local_dir=local_dir,
            endpoint=s.endpoint,
            token=s.hf_token_arg,
            local_files_only=offline,
            force_download=bool(force_download),
            allow_patterns=allow,
            ignore_patterns=ignore,
            etag_timeout=s.etag_timeout,
            tqdm_class=progress_bars(),
        )

    return _tidy(run(call, s, ctx, offline, quiet), s, ctx, offline)


def local_folder(
    identifier,
    revision="main",
    allow_patterns=None,
    ignore_patterns=None,
    env=None,
    token=None,
    repo_type="model",
    quiet=False,
) -> str:
    """A model or tokenizer folder: a local folder as is, or a repo id's snapshot folder."""
    if not isinstance(identifier, str) or not identifier.strip():
        raise errors.InvalidArgumentError(
            "Give a local folder or a Hub repo id such as 'gpt2' or 'org/name'.",
            argument="identifier",
        )
    path = os.path.expanduser(identifier)
    if os.path.isdir(path):
        return os.path.abspath(path)
    if _looks_like_path(identifier):
        raise errors.InvalidArgumentError(
            f"The folder '{identifier}' does not exist, and it is not a Hub repo id. Check the "
            "path, or give a repo id such as 'org/name'.",
            argument="identifier",
            path=identifier,
        )
    return snapshot(
        identifier,
        revision=revision,
        repo_type=repo_type,
        allow_patterns=allow_patterns,
        ignore_patterns=ignore_patterns,
        quiet=quiet,
        env=env,
        token=token,
    )


def load(specs, cwd=None, env=None, token=None, quiet=False) -> dict:
    """Metaflow's ``@huggingface_hub(load=...)``: many repos at once.

    ``specs`` is one spec or a list of them. A spec is a repo id, a pair ``[repo_id, local_dir]``,
    or a dict with ``repo_id`` and any of ``revision``, ``allow_patterns``, ``ignore_patterns``,
    ``repo_type``, ``local_dir``, ``force_download``, ``local_files_only``. A top-level list of two
    strings is one pair when its second cannot be a repo id (R's ``c(repo_id, local_dir)``). A
    relative ``local_dir`` is taken from ``cwd`` (R's working folder, which Python does not
    follow). Returns the columns ``repo_id`` and ``path``.
    """
    ids, paths = [], []
    for spec in _load_specs(specs):
        kwargs = _load_spec(spec, cwd or os.getcwd())
        paths.append(snapshot(env=env, token=token, quiet=quiet, **kwargs))
        ids.append(kwargs["repo_id"])
    return {"repo_id": ids, "path": paths}


def repo_info(repo_id, revision="main", repo_type="model", env=None, token=None) -> dict:
    """The repo's id, commit and files with their sizes (bytes, float64)."""
    import numpy as np

    ctx = _args.repo_context(repo_id, revision, repo_type)
    s = resolve(env, token)
    refuse_offline(s, ctx, "hub_repo_info")

    def call():
        return hf_api(s).repo_info(
            repo_id,
            revision=revision,
            repo_type=repo_type,
            files_metadata=True,
            token=s.hf_token_arg,
        )

    info = run(call, s, ctx, False, True)
    siblings = list(info.siblings or [])
    sizes = [float(f.size) if f.size is not None else np.nan for f in siblings]
    return {
        "id": info.id,
        "sha": info.sha,
        "path": [f.rfilename for f in siblings],
        "size": np.asarray(sizes, dtype=np.float64),
    }


def list_files(repo_id, revision="main", repo_type="model", env=None, token=None) -> list:
    """The paths of every file in the repo at that revision."""
    ctx = _args.repo_context(repo_id, revision, repo_type)
    s = resolve(env, token)
    refuse_offline(s, ctx, "hub_list_files")

    def call():
        return hf_api(s).list_repo_files(
            repo_id, revision=revision, repo_type=repo_type, token=s.hf_token_arg
        )

    return [str(p) for p in run(call, s, ctx, False, True)]


def file_exists(
    repo_id, filename, revision="main", repo_type="model", env=None, token=None
) -> bool:
    """Whether the file exists in the repo (a HEAD request; nothing is downloaded).

    As huggingface_hub's file_exists: False for a missing file, revision or repo; an error for a
    gated repo, a refused token or the network. Offline, the cache answers.
    """
    ctx = _args.repo_context(repo_id, revision, repo_type, filename=filename)
    s = resolve(env, token)
    if s.offline:
        return _exists_in_cache(s, ctx)

    def call():
        return hf_api(s).file_exists(
            repo_id, filename, revision=revision, repo_type=repo_type, token=s.hf_token_arg
        )

    return bool(run(call, s, ctx, False, True))


# ---------------------------------------------------------------------------------------------
# Fast paths and helpers


def _tidy(result, s: Settings, ctx: dict, offline: bool):
    """After a call that reached the Hub: partial downloads of the repo that an interrupted
    download left behind (and no live process holds) are removed."""
    if not offline:
        cache.remove_stale_partials(
            cache.repo_cache_folder(s.cache_dir, ctx["repo_id"], ctx["repo_type"])
        )
    return result


def _exists_in_cache(s: Settings, ctx: dict) -> bool:
    hf = hf_module()
    revision = cache.cached_revision(s.cache_dir, ctx, True)
    found = hf.try_to_load_from_cache(
        ctx["repo_id"],
        ctx["filename"],
        cache_dir=s.cache_dir,
        revision=revision,
        repo_type=ctx["repo_type"],
    )
    if isinstance(found, str):
        return True
    if found is not None:  # the cache recorded that the file does not exist
        return False
    raise errors.OfflineNotCachedError(
        f"Offline (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set) and the cache in "
        f"{s.cache_dir} does not know whether {describe_place(ctx)} exists. "
        "Unset it to ask the Hub.",
        **ctx,
    )


def _looks_like_path(identifier: str) -> bool:
    return (
        identifier.startswith((".", "/", "~", "\\"))
        or identifier.count("/") > 1
        or os.sep in identifier.replace("/", "")
        or ".." in identifier
    )


_SPEC_KEYS = {
    "repo_id",
    "revision",
    "allow_patterns",
    "ignore_patterns",
    "repo_type",
    "local_dir",
    "force_download",
    "local_files_only",
}


def _load_specs(specs) -> list:
    if isinstance(specs, (str, dict)):
        return [specs]
    if _is_pair(specs) and _looks_like_path(specs[1]):
        return [specs]
    if isinstance(specs, (list, tuple)) and specs:
        return list(specs)
    raise errors.InvalidArgumentError(
        "specs must be repo ids, c(repo_id, local_dir) pairs, or lists with repo_id = ...; got "
        f"{specs!r}.",
        argument="specs",
    )


def _is_pair(spec) -> bool:
    return (
        isinstance(spec, (list, tuple)) and len(spec) == 2 and all(isinstance(v, str) for v in spec)
    )


def _load_spec(spec, cwd: str) -> dict:
    if isinstance(spec, str):
        return {"repo_id": spec}
    if _is_pair(spec):
        return {"repo_id": spec[0], "local_dir": _absolute(spec[1], cwd)}
    if isinstance(spec, dict) and isinstance(spec.get("repo_id"), str):
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise errors.InvalidArgumentError(
                f"Unknown field(s) {', '.join(sorted(unknown))} in a hub_load() spec; the fields "
                f"are {', '.join(sorted(_SPEC_KEYS))}.",
                argument="specs",
                repo_id=spec["repo_id"],
            )
        out = dict(spec)
        if out.get("local_dir"):
            out["local_dir"] = _absolute(out["local_dir"], cwd)
        return out
    raise errors.InvalidArgumentError(
        f"A hub_load() spec must be a repo id, c(repo_id, local_dir), or list(repo_id = ...); got "
        f"{spec!r}.",
        argument="specs",
    )


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
