"""Writes to the mirror's store: new repositories, LFS objects, commits, branches and tags.

Every repository written through the Hub API is a git repository, so every revision stays readable
by its commit hash:

- :func:`create_repo` makes a bare repository with an initial commit holding ``.gitattributes``,
  as huggingface.co does, and records the Space ``sdk`` and ``private`` in
  ``<git dir>/hfbridge-repo.json``. It is built under a hidden name and renamed, so a running
  mirror never sees half of it. A plain folder published with :func:`~pybridge.mirror.store.
  publish_folder` becomes a git repository on its first write (a commit, branch or tag): one
  commit of its files whose hash is the one the folder was served with (:func:`ensure_git`).
- LFS objects are stored as git-lfs does, ``<git dir>/lfs/objects/ab/cd/<sha256>``. An upload is
  streamed into ``<git dir>/lfs/tmp/`` and renamed only once its size and sha256 match, so a cut
  upload leaves nothing behind.
- :func:`commit` writes one commit with ``git fast-import`` (blobs inline, LFS files as git-lfs
  pointers) on a scratch ref, then moves the branch with ``git update-ref <ref> <new> <old>``: a
  compare-and-swap, so two writers never lose a commit and a stale ``parentCommit`` is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional

from .store import (
    CHUNK,
    META_FILE,
    Store,
    StoreError,
    _git_env,
    check_relative,
    folder_files,
    git_dir,
    import_commit,
    is_git_repo,
    lfs_object_path,
    lfs_pointer,
)

ZERO_OID = "0" * 40
COMMITTER = "hfbridge mirror <mirror@hfbridge.invalid>"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PR_REF = re.compile(r"^refs/pr/(\d+)$")
# The .gitattributes huggingface.co puts in the first commit of a new repository (abridged).
GITATTRIBUTES = (
    "\n".join(
        f"{pattern} filter=lfs diff=lfs merge=lfs -text"
        for pattern in (
            "*.7z",
            "*.arrow",
            "*.bin",
            "*.bz2",
            "*.ckpt",
            "*.ftz",
            "*.gz",
            "*.h5",
            "*.joblib",
            "*.mlmodel",
            "*.model",
            "*.msgpack",
            "*.npy",
            "*.npz",
            "*.onnx",
            "*.ot",
            "*.parquet",
            "*.pb",
            "*.pickle",
            "*.pkl",
            "*.pt",
            "*.pth",
            "*.rar",
            "*.safetensors",
            "saved_model/**/*",
            "*.tar.*",
            "*.tar",
            "*.tflite",
            "*.tgz",
            "*.wasm",
            "*.xz",
            "*.zip",
            "*.zst",
            "*tfevents*",
        )
    )
    + "\n"
)

_locks: Dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def repo_lock(path: str) -> threading.Lock:
    """One lock per repository folder: writes to one repository run one at a time."""
    with _locks_guard:
        return _locks.setdefault(os.path.realpath(path), threading.Lock())


def _git(path: str, *args: str, input: Optional[bytes] = None, check: bool = True):
    cmd = ["git", "-c", "safe.directory=*", "-C", path, *args]
    out = subprocess.run(cmd, input=input, capture_output=True, env=_git_env())
    if check and out.returncode != 0:
        raise StoreError(
            "GitError",
            f"git {args[0]} failed: {out.stderr.decode('utf-8', 'replace').strip()[:300]}",
            status=500,
        )
    return out


@dataclass
class Operation:
    """One line of a commit: ``file`` (inline bytes), ``lfsFile``, ``deletedFile`` or
    ``deletedFolder``."""

    kind: str
    path: str
    content: bytes = b""
    oid: str = ""
    size: int = 0


@dataclass
class CommitResult:
    oid: str
    ref: str
    pr_num: Optional[int] = None


# ---- repositories -------------------------------------------------------------------------------
def create_repo(
    store: Store, repo_type: str, repo_id: str, sdk: Optional[str] = None, private: bool = False
) -> str:
    """A new bare git repository for ``repo_id`` with its first commit; StoreError 409 if the
    repository (or anything else) is already at its place."""
    folder = store.repo_folder(repo_type, repo_id)
    if os.path.lexists(folder):
        raise StoreError(
            "RepoExists", f"You already created this {repo_type} repo: {repo_id}.", status=409
        )
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-new-", dir=os.path.dirname(folder))
    try:
        _git(tmp, "init", "-q", "--bare", "-b", "main")
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as fh:
            json.dump({"sdk": sdk, "private": bool(private)}, fh)
        ops = [Operation("file", ".gitattributes", GITATTRIBUTES.encode())]
        _write_commit(tmp, "refs/heads/main", None, ops, "initial commit")
        os.rename(tmp, folder)
    except FileExistsError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(
            "RepoExists", f"You already created this {repo_type} repo: {repo_id}.", status=409
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def ensure_git(path: str) -> None:
    """Make a plain folder repository a git repository: one commit on main of the files it
    serves, whose hash is the one it was served with (:func:`~pybridge.mirror.store.
    import_commit`), so that a pinned revision and a ``parentCommit`` stay valid."""
    if is_git_repo(path):
        return
    files = [rel for rel, _, _ in folder_files(path)]
    _git(path, "init", "-q", "-b", "main")
    blobs = _write_blobs(path, files)
    entries = "".join(f"100644 {blobs[rel]}\t{rel}\x00" for rel in files)
    _git(path, "update-index", "-z", "--add", "--index-info", input=_fs_bytes(entries))
    tree = _git(path, "write-tree").stdout.decode().strip()
    made = _git(path, "hash-object", "-t", "commit", "-w", "--stdin", input=import_commit(tree))
    _git(path, "update-ref", "refs/heads/main", made.stdout.decode().strip(), ZERO_OID)


def _write_blobs(path: str, files: List[str]) -> Dict[str, str]:
    """The files' contents as git blobs, unfiltered (as the folder serves them); their ids."""
    listed = [rel for rel in files if "\n" not in rel]
    out = _git(
        path,
        "hash-object",
        "-w",
        "--no-filters",
        "--stdin-paths",
        input=_fs_bytes("".join(f"{rel}\n" for rel in listed)),
    )
    blobs = dict(zip(listed, out.stdout.decode().split()))
    for rel in files:
        if rel not in blobs:  # a name with a newline cannot be given on a line
            one = _git(path, "hash-object", "-w", "--no-filters", "--", rel)
            blobs[rel] = one.stdout.decode().strip()
    return blobs


def _fs_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# ---- LFS objects --------------------------------------------------------------------------------
def valid_oid(oid) -> bool:
    return isinstance(oid, str) and bool(_SHA256.match(oid))


def has_object(path: str, oid: str, size: int) -> bool:
    try:
        return os.path.getsize(lfs_object_path(path, oid)) == int(size)
    except OSError:
        return False


def store_object(path: str, oid: str, size: int, chunks) -> None:
    """Stream ``chunks`` into the LFS object ``oid``; nothing is kept unless size and sha256
    match. A failure of ``chunks`` (a cut connection) removes the partial file."""
    final = lfs_object_path(path, oid)
    tmp_dir = os.path.join(git_dir(path), "lfs", "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{oid}.", dir=tmp_dir)
    digest, written = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
                written += len(chunk)
        if written != size or digest.hexdigest() != oid:
            raise StoreError(
                "BadRequest",
                f"The uploaded object has size {written} and sha256 "
                f"{digest.hexdigest()}, not {size} and {oid}.",
                status=400,
            )
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


# ---- refs ---------------------------------------------------------------------------------------
def resolve_ref(path: str, revision: str) -> Optional[tuple]:
    """(full ref name, commit) of a branch or ``refs/pr/N``; None if there is no such ref."""
    candidates = [revision] if revision.startswith("refs/") else [f"refs/heads/{revision}"]
    for ref in candidates:
        if revision.startswith("-") or not _safe_ref(ref):
            return None
        out = _git(path, "rev-parse", "--verify", "-q", ref + "^{commit}", check=False)
        if out.returncode == 0:
            return ref, out.stdout.decode().strip()
    return None


def _safe_ref(ref: str) -> bool:
    return subprocess.run(
        ["git", "check-ref-format", ref], capture_output=True
    ).returncode == 0 and (ref.startswith("refs/heads/") or _PR_REF.match(ref) is not None)


def commit_of(path: str, revision: str) -> Optional[str]:
    """The commit of any revision: a branch, a tag, a ref or a (short) commit hash."""
    if revision.startswith("-") or not revision:
        return None
    out = _git(
        path, "rev-parse", "--verify", "-q", "--end-of-options", revision + "^{commit}", check=False
    )
    return out.stdout.decode().strip() if out.returncode == 0 else None


def create_branch(path: str, branch: str, start: str) -> str:
    ref = f"refs/heads/{branch}"
    if not _safe_ref(ref) or branch.startswith("refs/"):
        raise StoreError("BadRequest", f"Invalid branch name {branch!r}.", status=400)
    with repo_lock(path):
        ensure_git(path)
    commit = commit_of(path, start)
    if commit is None:
        raise StoreError("RevisionNotFound", f"Invalid rev id: {start}")
    out = _git(path, "update-ref", ref, commit, ZERO_OID, check=False)
    if out.returncode != 0:
        raise StoreError("Conflict", f"Branch {branch!r} already exists.", status=409)
    return commit


def create_tag(path: str, tag: str, revision: str, message: Optional[str]) -> str:
    ref = f"refs/tags/{tag}"
    ok = subprocess.run(["git", "check-ref-format", ref], capture_output=True).returncode == 0
    if not ok or tag.startswith("-"):
        raise StoreError("BadRequest", f"Invalid tag name {tag!r}.", status=400)
    with repo_lock(path):
        ensure_git(path)
    commit = commit_of(path, revision)
    if commit is None:
        raise StoreError("RevisionNotFound", f"Invalid rev id: {revision}")
    target = commit
    if message:
        data = (
            f"object {commit}\ntype commit\ntag {tag}\ntagger {COMMITTER} "
            f"{int(time.time())} +0000\n\n{message}\n"
        ).encode()
        target = _git(path, "hash-object", "-t", "tag", "-w", "--stdin", input=data).stdout
        target = target.decode().strip()
    if _git(path, "update-ref", ref, target, ZERO_OID, check=False).returncode != 0:
        raise StoreError("Conflict", f"Tag {tag!r} already exists.", status=409)
    return commit


def next_pr_ref(path: str) -> tuple:
    out = _git(path, "for-each-ref", "--format=%(refname)", "refs/pr").stdout.decode()
    numbers = [int(m.group(1)) for m in map(_PR_REF.match, out.split()) if m]
    num = max(numbers, default=0) + 1
    return f"refs/pr/{num}", num


# ---- commits ------------------------------------------------------------------------------------
def commit(
    path: str,
    revision: str,
    ops: List[Operation],
    message: str,
    parent_commit: Optional[str] = None,
    create_pr: bool = False,
    author: Optional[str] = None,
) -> CommitResult:
    """Commit ``ops`` on the branch ``revision`` (or a new ``refs/pr/N`` from it); ``author``
    is the account of the token that wrote it (the committer is the mirror)."""
    with repo_lock(path):
        ensure_git(path)
        found = resolve_ref(path, revision)
        if found is None:
            raise StoreError("RevisionNotFound", f"Invalid rev id: {revision}")
        ref, head = found
        base, pr_num = head, None
        if parent_commit:
            parent = commit_of(path, parent_commit)
            if create_pr:
                if parent is None:
                    raise StoreError("RevisionNotFound", f"Invalid rev id: {parent_commit}")
                base = parent
            elif parent != head:
                raise StoreError(
                    "PreconditionFailed",
                    "A commit has happened since. Please refresh and try again.",
                    status=412,
                )
        _check_operations(path, base, ops)
        if create_pr:
            ref, pr_num = next_pr_ref(path)
            head = ZERO_OID
        oid = _write_commit(path, ref, base, ops, message, expect=head, author=author)
    return CommitResult(oid, ref, pr_num)


def _check_operations(path: str, base: str, ops: List[Operation]) -> None:
    files = _git(path, "ls-tree", "-r", "-z", "--name-only", base).stdout.split(b"\x00")
    present = {f.decode("utf-8", "surrogateescape") for f in files if f}
    for op in ops:
        op.path = check_relative(op.path)
        if not op.path:
            raise StoreError("BadRequest", "An operation has an empty path.", status=400)
        if op.kind == "lfsFile" and not (valid_oid(op.oid) and has_object(path, op.oid, op.size)):
            raise StoreError(
                "BadRequest",
                f"The LFS object of {op.path} ({op.oid}) was not "
                "uploaded: upload it through the LFS batch API first.",
                status=400,
            )
        if op.kind == "deletedFile" and op.path not in present:
            raise StoreError("EntryNotFound", f"A file with this name doesn't exist: {op.path}")
        if op.kind == "deletedFolder" and not any(
            p.startswith(op.path.rstrip("/") + "/") for p in present
        ):
            raise StoreError("EntryNotFound", f"A folder with this name doesn't exist: {op.path}")


def _quote(path: str) -> bytes:
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'.encode("utf-8", "surrogateescape")


def _write_commit(
    path: str,
    ref: str,
    base: Optional[str],
    ops: List[Operation],
    message: str,
    expect: Optional[str] = None,
    author: Optional[str] = None,
) -> str:
    """One commit through ``git fast-import`` on a scratch ref, then ``ref`` moved from
    ``expect`` (compare-and-swap; a new ref when ``expect`` is None or zeros)."""
    scratch = f"refs/hfbridge-tmp/{uuid.uuid4().hex}"
    msg = message.encode("utf-8")
    now = int(time.time())
    by = f"author {_ident(author)} {now} +0000\n" if author else ""
    parts = [
        f"commit {scratch}\nmark :1\n{by}committer {COMMITTER} {now} +0000\n".encode(),
        b"data %d\n" % len(msg),
        msg,
        b"\n",
    ]
    if base:
        parts.append(f"from {base}\n".encode())
    for op in ops:
        if op.kind in ("file", "lfsFile"):
            data = op.content if op.kind == "file" else lfs_pointer(op.oid, op.size)
            parts += [
                b"M 100644 inline ",
                _quote(op.path),
                b"\n",
                b"data %d\n" % len(data),
                data,
                b"\n",
            ]
        else:
            parts += [b"D ", _quote(op.path.rstrip("/")), b"\n"]
    fd, marks = tempfile.mkstemp(prefix="marks-", dir=git_dir(path))
    os.close(fd)
    try:
        _git(path, "fast-import", "--quiet", f"--export-marks={marks}", input=b"".join(parts))
        with open(marks, encoding="ascii") as fh:
            oid = fh.read().split()[1]
    finally:
        os.remove(marks)
    try:
        moved = _git(path, "update-ref", ref, oid, expect or ZERO_OID, check=False)
    finally:
        _git(path, "update-ref", "-d", scratch, check=False)
    if moved.returncode != 0:
        raise StoreError(
            "PreconditionFailed",
            "A commit has happened since. Please refresh and try again.",
            status=412,
        )
    return oid


def _ident(user: str) -> str:
    """A git identity for an account name of mirror.json."""
    name = re.sub(r"[<>\x00-\x1f]", "", user).strip() or "hfbridge"
    return f"{name} <{re.sub(r'[^A-Za-z0-9._-]', '_', name)}@users.hfbridge.invalid>"


def file_oid(repo, revision: str, path: str, lfs: bool) -> Optional[str]:
    """The oid the Hub's preupload answers for a file already at ``path``: its sha256 for an LFS
    file, its git blob id for a regular one; None if absent or stored the other way."""
    try:
        entry = repo.snapshot(revision).files.get(path)
    except StoreError:
        return None
    if entry is None or entry.is_lfs != lfs:
        return None
    return entry.sha256 if lfs else entry.blob_id


def read_chunks(stream, length: int):
    """``length`` bytes from ``stream`` in chunks; ConnectionError if it ends early."""
    left = length
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise ConnectionError("the request body ended early")
        left -= len(chunk)
        yield chunk
