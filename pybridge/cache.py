"""The local HF cache: its layout, what is in it, deleting repos or revisions, and repairs.

The layout is huggingface_hub's, and this module is the one place pybridge reads or writes it
outside huggingface_hub's own calls: ``{cache}/models--org--name/`` with ``refs/<revision>``
(the commit), ``snapshots/<commit>/<path>`` (links to ``blobs/<etag>``) and ``.no_exist/``.

Built on huggingface_hub's ``scan_cache_dir`` and ``HFCacheInfo.delete_revisions``, on the
cache folder of this call's settings (HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else
HF_HOME/hub), which is the one Python's huggingface_hub uses. Two repairs keep caches written
by others usable:

- refs: the R package hfhub writes ``refs/<branch>`` with a trailing newline, which
  huggingface_hub reads as part of the commit, so its offline lookups by branch and its scan
  fail. :func:`heal_ref` rewrites such a ref to the bare commit, atomically (a temporary file
  renamed over it), exactly as huggingface_hub itself rewrites a ref whose content differs from
  the commit at its next online download by that branch. The commit it names does not change.
- partial downloads: huggingface_hub writes a blob to ``blobs/<etag>.<8 hex>.incomplete``
  while it holds ``.locks/<repo folder>/<etag>.lock``, and removes the file when the download
  fails. A killed process leaves it behind for ever. :func:`partial_downloads` lists them, and
  :func:`remove_stale_partials` removes those whose lock it can take (huggingface_hub's own
  ``WeakFileLock``): no live download holds them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from typing import List, Optional

from . import _args, errors
from .settings import resolve

_PARTIAL = re.compile(r"^(?P<etag>[^.]+)(\.[0-9a-f]{8})?\.incomplete$")
LOCK_WAIT = 0.05  # seconds to try a lock before deciding that a live process holds it


# ---------------------------------------------------------------------------------------------
# layout


def repo_folder_name(repo_id: str, repo_type: str = "model") -> str:
    """The cache folder name of a repo, e.g. models--org--name."""
    return "--".join([f"{repo_type}s", *repo_id.split("/")])


def repo_cache_folder(cache_dir, repo_id, repo_type):
    # realpath, as huggingface_hub resolves cache_dir: the same file gets the same path string
    return os.path.join(
        os.path.realpath(os.path.expanduser(cache_dir)), repo_folder_name(repo_id, repo_type)
    )


def cached_commit_path(cache_dir, ctx: dict, force_download) -> Optional[str]:
    """huggingface_hub's own shortcut for a pinned commit already cached, without its overhead."""
    revision = ctx["revision"]
    if force_download or not _args.COMMIT_SHA.match(revision):
        return None
    folder = repo_cache_folder(cache_dir, ctx["repo_id"], ctx["repo_type"])
    path = os.path.join(folder, "snapshots", revision, *ctx["filename"].split("/"))
    return path if os.path.exists(path) else None


def cached_revision(cache_dir, ctx: dict, offline: bool) -> str:
    """The revision to hand to huggingface_hub. A branch or tag whose cached ref has a trailing
    newline (written by the R package hfhub) is healed (:func:`heal_ref`), and offline it is
    replaced by its commit, so that a ref in a read-only cache resolves too."""
    revision = ctx["revision"]
    if _args.COMMIT_SHA.match(revision):
        return revision
    commit = heal_ref(repo_cache_folder(cache_dir, ctx["repo_id"], ctx["repo_type"]), revision)
    return commit if offline and commit else revision


def cached_snapshot(cache_dir, ctx: dict):
    """``(commit, paths)`` of a cached revision (a ref or a commit) from the snapshot folder,
    paths sorted with ``/``; None when the revision or its snapshot is not cached."""
    folder = repo_cache_folder(cache_dir, ctx["repo_id"], ctx["repo_type"])
    revision = ctx["revision"]
    sha = revision if _args.COMMIT_SHA.match(revision) else heal_ref(folder, revision)
    snapshot = snapshot_folder(cache_dir, ctx, sha or "-")
    if not sha or not os.path.isdir(snapshot):
        return None
    paths = []
    for root, _, names in os.walk(snapshot):
        for name in names:
            paths.append(os.path.relpath(os.path.join(root, name), snapshot).replace(os.sep, "/"))
    return sha, sorted(paths)


def snapshot_folder(cache_dir, ctx: dict, commit: str) -> str:
    """The folder of a commit's files in huggingface_hub's cache."""
    folder = repo_cache_folder(cache_dir, ctx["repo_id"], ctx["repo_type"])
    return os.path.join(folder, "snapshots", commit)


def write_ref(cache_dir, ctx: dict, commit: str) -> None:
    """Records revision -> commit in ``refs/``, as hf_hub_download does for a branch, so that
    files fetched by commit are found by the branch name offline. A commit needs no ref; a
    read-only cache is left as it is (offline use then needs the commit itself)."""
    revision = ctx["revision"]
    if revision == commit or not _args.COMMIT_SHA.match(commit) or not _is_ref_name(revision):
        return
    path = os.path.join(repo_cache_folder(cache_dir, ctx["repo_id"], ctx["repo_type"]), "refs")
    path = os.path.join(path, *revision.split("/"))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, encoding="utf-8") as handle:
            if handle.read() == commit:
                return
    except (OSError, UnicodeDecodeError):
        pass
    _replace_text(path, commit)


def _is_ref_name(revision: str) -> bool:
    return not os.path.isabs(revision) and ".." not in revision.replace("\\", "/").split("/")


# ---------------------------------------------------------------------------------------------
# refs


def heal_ref(repo_folder: str, revision: str) -> Optional[str]:
    """The commit that ``refs/<revision>`` names, whitespace removed; None if there is no such
    ref. A ref with surrounding whitespace is rewritten to the bare commit when the cache is
    writable (see the module docstring); a read-only cache is left as it is."""
    if not _is_ref_name(revision):
        return None  # not a ref name: never read or rewrite a file outside refs/
    path = os.path.join(repo_folder, "refs", revision)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except (OSError, UnicodeDecodeError):
        return None
    commit = raw.strip()
    if not _args.COMMIT_SHA.match(commit):
        return None
    if raw != commit:
        _replace_text(path, commit)
    return commit


def _replace_text(path: str, text: str) -> None:
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def heal_refs(repo_folder: str) -> None:
    """:func:`heal_ref` on every ref of a cached repo (``refs/main``, ``refs/refs/pr/1``...)."""
    refs = os.path.join(repo_folder, "refs")
    for root, _, names in os.walk(refs):
        for name in names:
            heal_ref(repo_folder, os.path.relpath(os.path.join(root, name), refs))


# ---------------------------------------------------------------------------------------------
# partial downloads


def _repo_folders(cache_dir: str) -> List[str]:
    if not os.path.isdir(cache_dir):
        return []
    return sorted(
        os.path.join(cache_dir, name)
        for name in os.listdir(cache_dir)
        if name.split("--", 1)[0] in ("models", "datasets", "spaces") and "--" in name
    )


def _lock_path(repo_folder: str, etag: str) -> str:
    cache_dir, name = os.path.split(repo_folder)
    return os.path.join(cache_dir, ".locks", name, f"{etag}.lock")


def _partials(repo_folder: str):
    """(path, etag) of every partial download in the repo's blobs folder."""
    blobs = os.path.join(repo_folder, "blobs")
    try:
        names = os.listdir(blobs)
    except OSError:
        return []
    found = [(name, _PARTIAL.match(name)) for name in names if name.endswith(".incomplete")]
    return [(os.path.join(blobs, name), m.group("etag")) for name, m in found if m]


def _held(lock_path: str) -> bool:
    """Whether a live process holds the lock (probed without creating the lock file)."""
    if not os.path.exists(lock_path):
        return False
    with _free_lock(lock_path) as free:
        return not free


@contextlib.contextmanager
def _free_lock(lock_path: str):
    """Takes huggingface_hub's lock for a blob if no one holds it; yields whether it did."""
    from filelock import Timeout
    from huggingface_hub.utils import WeakFileLock

    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    context = WeakFileLock(lock_path, timeout=LOCK_WAIT)
    try:
        context.__enter__()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        context.__exit__(None, None, None)


def partial_downloads(repo_folder: str) -> List[dict]:
    """The partial downloads of one cached repo: path, size and whether a live process holds
    its lock (a download in progress) or not (left by an interrupted one)."""
    out = []
    for path, etag in _partials(repo_folder):
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        out.append({"path": path, "size": size, "in_use": _held(_lock_path(repo_folder, etag))})
    return out


def remove_stale_partials(repo_folder: str) -> int:
    """Removes the partial downloads of one repo that no live process holds; the bytes freed.

    Each file is removed while holding its blob's lock, so a download that starts meanwhile
    waits for it (huggingface_hub writes partial files only while it holds that lock).
    """
    freed = 0
    for path, etag in _partials(repo_folder):
        with _free_lock(_lock_path(repo_folder, etag)) as free:
            if not free:
                continue
            try:
                size = os.path.getsize(path)
                os.unlink(path)
            except OSError:
                continue
            freed += size
    return freed


# ---------------------------------------------------------------------------------------------
# scan and delete


def _scan(cache_dir: str):
    from huggingface_hub import scan_cache_dir

    if not os.path.isdir(cache_dir):
        return None
    for folder in _repo_folders(cache_dir):
        heal_refs(folder)
    return scan_cache_dir(cache_dir)


def _revision_label(rev) -> str:
    """A revision as its refs (e.g. "main") followed by its commit, e.g. "main@0123abcd..."."""
    refs = ",".join(sorted(rev.refs))
    return f"{refs}@{rev.commit_hash}" if refs else rev.commit_hash


def _repo_of(folder: str):
    kind, _, name = os.path.basename(folder).partition("--")
    return name.replace("--", "/"), kind[:-1]


def _partial_columns(cache_dir: str) -> dict:
    import numpy as np

    rows = [(folder, p) for folder in _repo_folders(cache_dir) for p in partial_downloads(folder)]
    return {
        "repo_id": [_repo_of(folder)[0] for folder, _ in rows],
        "repo_type": [_repo_of(folder)[1] for folder, _ in rows],
        "path": [p["path"] for _, p in rows],
        "size": np.asarray([p["size"] for _, p in rows], dtype=np.float64),
        "in_use": np.asarray([p["in_use"] for _, p in rows], dtype=bool),
    }


def scan(env=None) -> dict:
    """One row per cached repo, as columns: repo_id, repo_type, revisions (refs@commit, joined
    by "; "), size_on_disk (bytes, float64), nb_files (int32), last_accessed (epoch seconds,
    float64), path. Also ``cache_dir``; ``warnings``, scan_cache_dir's messages about folders
    it could not read (and so left out); and ``incomplete``, the columns repo_id, repo_type,
    path, size and in_use of every partial download (see :func:`partial_downloads`)."""
    import numpy as np

    s = resolve(env)
    info = _scan(s.cache_dir)
    repos = sorted(info.repos, key=lambda r: (r.repo_type, r.repo_id)) if info else []
    revisions = [
        sorted(r.revisions, key=lambda v: (-v.last_modified, v.commit_hash)) for r in repos
    ]
    return {
        "repo_id": [r.repo_id for r in repos],
        "repo_type": [r.repo_type for r in repos],
        "revisions": ["; ".join(_revision_label(v) for v in revs) for revs in revisions],
        "size_on_disk": np.asarray([r.size_on_disk for r in repos], dtype=np.float64),
        "nb_files": np.asarray([r.nb_files for r in repos], dtype=np.int32),
        "last_accessed": np.asarray([r.last_accessed for r in repos], dtype=np.float64),
        "path": [str(r.repo_path) for r in repos],
        "cache_dir": s.cache_dir,
        "warnings": [str(w) for w in info.warnings] if info else [],
        "incomplete": _partial_columns(s.cache_dir),
    }


def delete(repo_id, revision=None, repo_type="model", env=None) -> dict:
    """Deletes a cached repo (``revision=None``: every revision, so the whole repo folder) or one
    revision, given as a commit hash, a unique commit prefix (7+ characters) or a ref such as
    "main". Partial downloads of the repo that no live process holds go too. Returns the freed
    bytes (float64) and the deleted commits."""
    ctx = {"repo_id": repo_id, "revision": revision, "repo_type": repo_type}
    _args.check_repo_type(repo_type, **ctx)
    s = resolve(env)
    folder = os.path.join(s.cache_dir, repo_folder_name(repo_id, repo_type))
    freed = float(remove_stale_partials(folder))
    info = _scan(s.cache_dir)
    repo = None
    if info is not None:
        repo = next(
            (r for r in info.repos if r.repo_id == repo_id and r.repo_type == repo_type), None
        )
    live = any(p["in_use"] for p in partial_downloads(folder))
    if repo is None and revision is None and os.path.isdir(folder) and not live:
        # not readable as a cached repo (a blob gone, say): its folder goes as it is
        freed += _folder_size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        return {"freed": freed, "commits": []}
    if repo is None and freed > 0 and revision is None:
        return {"freed": freed, "commits": []}
    if repo is None:
        raise errors.RepoNotFoundError(
            f"The {repo_type} repo '{repo_id}' is not in the cache at {s.cache_dir}; "
            "hub_cache_scan() lists what is.",
            path=s.cache_dir,
            **ctx,
        )
    commits = _select(repo, revision, ctx, s.cache_dir)
    strategy = info.delete_revisions(*commits)
    if live and repo.repo_path in strategy.repos:
        strategy = _keeping_folder(strategy, repo)
    freed += float(strategy.expected_freed_size)
    strategy.execute()
    return {"freed": freed, "commits": sorted(commits)}


def _keeping_folder(strategy, repo):
    """huggingface_hub's deletion of a whole repo folder, as the deletion of the files cached in
    it (their snapshot links and blobs). The folders, the refs and the partial files stay for
    the downloads that are running into the repo: each has resolved its commit and made its
    snapshot folder already, and links its file there when it ends."""
    from huggingface_hub import DeleteCacheStrategy

    files = [f for r in repo.revisions for f in r.files]
    return DeleteCacheStrategy(
        expected_freed_size=strategy.expected_freed_size,
        files=frozenset(f.file_path for f in files),
        blobs=frozenset(f.blob_path for f in files),
        refs=frozenset(),
        repos=strategy.repos - {repo.repo_path},
        snapshots=frozenset(),
    )


def _folder_size(folder: str) -> float:
    return float(
        sum(
            os.lstat(os.path.join(root, name)).st_size
            for root, _, names in os.walk(folder)
            for name in names
        )
    )


def _select(repo, revision, ctx, cache_dir):
    if revision is None:
        return [r.commit_hash for r in repo.revisions]
    matches = [r.commit_hash for r in repo.revisions if revision in r.refs]
    if not matches and len(revision) >= 7:
        matches = [r.commit_hash for r in repo.revisions if r.commit_hash.startswith(revision)]
    if len(matches) == 1:
        return matches
    known = "; ".join(_revision_label(r) for r in repo.revisions)
    what = "matches several cached commits" if matches else "is not cached"
    raise errors.RevisionNotFoundError(
        f"Revision '{revision}' of '{ctx['repo_id']}' {what} in {cache_dir}. Cached revisions: "
        f"{known}. Give a ref or a longer commit hash.",
        path=cache_dir,
        **ctx,
    )
