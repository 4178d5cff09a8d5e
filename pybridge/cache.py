"""The local HF cache: what is in it, and deleting repos or revisions from it.

Built on huggingface_hub's ``scan_cache_dir`` and ``HFCacheInfo.delete_revisions``, on the
cache folder of this call's settings (HF_HUB_CACHE, else HF_HOME/hub), which is the one Python's
huggingface_hub uses.
"""

from __future__ import annotations

import os

from . import errors
from .settings import resolve

_TYPES = ("model", "dataset", "space")


def _scan(cache_dir: str):
    from huggingface_hub import scan_cache_dir

    if not os.path.isdir(cache_dir):
        return None
    return scan_cache_dir(cache_dir)


def _revision_label(rev) -> str:
    """A revision as its refs (e.g. "main") followed by its commit, e.g. "main@0123abcd...". """
    refs = ",".join(sorted(rev.refs))
    return f"{refs}@{rev.commit_hash}" if refs else rev.commit_hash


def scan(env=None) -> dict:
    """One row per cached repo, as columns: repo_id, repo_type, revisions (refs@commit, joined
    by "; "), size_on_disk (bytes, float64), nb_files (int32), last_accessed (epoch seconds,
    float64), path."""
    import numpy as np

    s = resolve(env)
    info = _scan(s.cache_dir)
    repos = sorted(info.repos, key=lambda r: (r.repo_type, r.repo_id)) if info else []
    revisions = [sorted(r.revisions, key=lambda v: (-v.last_modified, v.commit_hash))
                 for r in repos]
    return {
        "repo_id": [r.repo_id for r in repos],
        "repo_type": [r.repo_type for r in repos],
        "revisions": ["; ".join(_revision_label(v) for v in revs) for revs in revisions],
        "size_on_disk": np.asarray([r.size_on_disk for r in repos], dtype=np.float64),
        "nb_files": np.asarray([r.nb_files for r in repos], dtype=np.int32),
        "last_accessed": np.asarray([r.last_accessed for r in repos], dtype=np.float64),
        "path": [str(r.repo_path) for r in repos],
        "cache_dir": s.cache_dir,
    }


def delete(repo_id, revision=None, repo_type="model", env=None) -> dict:
    """Deletes a cached repo (``revision=None``: every revision, so the whole repo folder) or one
    revision, given as a commit hash, a unique commit prefix (7+ characters) or a ref such as
    "main". Returns the freed bytes (float64) and the deleted commits."""
    ctx = {"repo_id": repo_id, "revision": revision, "repo_type": repo_type}
    if repo_type not in _TYPES:
        raise errors.InvalidArgumentError(
            f"repo_type must be one of {', '.join(_TYPES)}, not '{repo_type}'.",
            argument="repo_type", **ctx)
    s = resolve(env)
    info = _scan(s.cache_dir)
    repo = None
    if info is not None:
        repo = next((r for r in info.repos
                     if r.repo_id == repo_id and r.repo_type == repo_type), None)
    if repo is None:
        raise errors.RepoNotFoundError(
            f"The {repo_type} repo '{repo_id}' is not in the cache at {s.cache_dir}; "
            "hub_cache_scan() lists what is.", path=s.cache_dir, **ctx)
    commits = _select(repo, revision, ctx, s.cache_dir)
    strategy = info.delete_revisions(*commits)
    freed = float(strategy.expected_freed_size)
    strategy.execute()
    return {"freed": freed, "commits": sorted(commits)}


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
        f"{known}. Give a ref or a longer commit hash.", path=cache_dir, **ctx)
