"""The mirror's store: folders on disk seen as Hub repositories.

Layout: ``ROOT/models/<org>/<name>/`` or ``ROOT/models/<name>/`` (ids without an org, like
``gpt2``), ``ROOT/datasets/...`` and ``ROOT/spaces/...``.

- A plain folder has one revision, ``main``, whose commit is the hash of the git commit the
  folder becomes on its first write (:func:`import_commit`: its files as regular files, a fixed
  author, date and message), so the hash clients pinned before that write stays the commit's
  after it. It is stable across restarts and changes when a file changes. The per-file hashes
  are cached keyed by (path, size, mtime), so a request costs a ``stat`` per file, not a read.
- A git repository (a work tree with ``.git`` or a bare repository) serves every branch, tag and
  commit as a revision, read with the ``git`` command (rev-parse, ls-tree, cat-file).

Every file has a git blob id (sha1). Files larger than :data:`LFS_THRESHOLD` are described as LFS
files too, with their sha256, and their ETag is that sha256, as on huggingface.co; smaller files
have the blob id as ETag.

In a git repository, a blob that is a git-lfs pointer (``version https://git-lfs...``, ``oid
sha256:...``, ``size N``) stands for the object ``<git dir>/lfs/objects/ab/cd/<sha256>``, as git-lfs
keeps it: the file is served from there, with the pointer's blob id as ``oid`` and the sha256 as its
LFS oid and ETag. Uploads through the mirror (:mod:`pybridge.mirror.commits`) store files so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

from .._args import REPO_FOLDERS

LFS_THRESHOLD = 10 * 1024 * 1024
CHUNK = 1024 * 1024
_HEX = set("0123456789abcdef")
_SKIP_DIRS = {".git"}


class StoreError(Exception):
    """A request the store cannot answer; ``code`` is the Hub's X-Error-Code."""

    def __init__(self, code: str, message: str, status: int = 404, commit: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.commit = commit


@dataclass
class Entry:
    """One file of one revision."""

    path: str
    size: int
    blob_id: str
    sha256: Optional[str] = None  # set for LFS files: above LFS_THRESHOLD, or git-lfs pointers
    pointer_size: int = 134  # the size of the git-lfs pointer file standing for an LFS file
    lfs_path: Optional[str] = None  # where a git-lfs pointer's object is stored

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass
class Snapshot:
    """The files of one commit of one repository."""

    commit: str
    files: Dict[str, Entry] = field(default_factory=dict)
    last_modified: float = 0.0


def is_commit_hash(text: str) -> bool:
    return len(text) == 40 and set(text) <= _HEX


def check_relative(path: str) -> str:
    """A repo-relative path, or StoreError for anything that could leave the repository."""
    if path.startswith("/") or path.startswith("\\") or "\\" in path or "\x00" in path:
        raise StoreError("InvalidPath", f"Invalid path: {path!r}", status=400)
    parts = path.split("/")
    if any(p in ("..", ".") for p in parts) or (len(path) > 1 and path[1] == ":"):
        raise StoreError("InvalidPath", f"Invalid path: {path!r}", status=400)
    return "/".join(p for p in parts if p)


def _hash_file(path: str, size: int) -> tuple:
    """(git blob id, sha256 or None) in one pass; the sha256 only above LFS_THRESHOLD."""
    blob = hashlib.sha1(b"blob %d\x00" % size)
    sha = hashlib.sha256() if size > LFS_THRESHOLD else None
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            blob.update(chunk)
            if sha is not None:
                sha.update(chunk)
    return blob.hexdigest(), (sha.hexdigest() if sha is not None else None)


LFS_POINTER_MAX = 200  # git-lfs pointers are about 130 bytes
_LFS_POINTER = re.compile(
    rb"^version https://git-lfs\.github\.com/spec/v1\n"
    rb"oid sha256:([0-9a-f]{64})\nsize (\d+)\n$"
)


def lfs_pointer(oid: str, size: int) -> bytes:
    """The git-lfs pointer file of an object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode(
        "ascii"
    )


def parse_lfs_pointer(data: bytes) -> Optional[tuple]:
    """(sha256, size) of a git-lfs pointer, or None for any other content."""
    match = _LFS_POINTER.match(data)
    return (match.group(1).decode(), int(match.group(2))) if match else None


def git_dir(path: str) -> str:
    """The git directory of a work tree (``path/.git``) or of a bare repository (``path``)."""
    dot = os.path.join(path, ".git")
    return dot if os.path.isdir(dot) else path


def lfs_object_path(path: str, oid: str) -> str:
    """Where git-lfs keeps the object ``oid`` of the repository at ``path``."""
    return os.path.join(git_dir(path), "lfs", "objects", oid[:2], oid[2:4], oid)


META_FILE = "hfbridge-repo.json"


def read_meta(path: str) -> dict:
    """What the Hub API stored about a repository it created (``sdk``, ``private``)."""
    try:
        with open(os.path.join(git_dir(path), META_FILE), encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _sha256(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


class Repo:
    """Base class: a repository on disk."""

    def __init__(self, repo_type: str, repo_id: str, path: str):
        self.repo_type = repo_type
        self.repo_id = repo_id
        self.path = path

    def snapshot(self, revision: str) -> Snapshot:
        raise NotImplementedError

    def open(self, snapshot: Snapshot, entry: Entry, offset: int = 0) -> Iterator[bytes]:
        raise NotImplementedError

    def refs(self, include_prs: bool = False) -> dict:
        """Branches, tags and converts as the Hub's /refs lists them (with ``pullRequests``
        when asked)."""
        raise NotImplementedError

    def commits(self, revision: str) -> List[dict]:
        """The commits reachable from ``revision``, newest first: ``{id, title, message,
        author, time}``; StoreError RevisionNotFound for an unknown revision."""
        raise NotImplementedError


# The author, committer and message of the commit a plain folder becomes (see import_commit).
IMPORT_AUTHOR = "hfbridge mirror <mirror@hfbridge.invalid> 0 +0000"
IMPORT_MESSAGE = "Import folder\n"


def folder_files(path: str) -> List[tuple]:
    """``(path in repo, size, mtime_ns)`` of the regular files a plain folder serves, sorted:
    ``.git`` and symlinks that lead out of it left aside."""
    root = os.path.realpath(path)
    found = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and _inside(root, os.path.join(dirpath, d))
        )
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not _inside(root, full):
                continue
            try:
                st = os.stat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                found.append((rel, st.st_size, st.st_mtime_ns))
    found.sort()
    return found


def _inside(root: str, full: str) -> bool:
    """False for a symlink that leads out of the repository."""
    if not os.path.islink(full):
        return True
    real = os.path.realpath(full)
    return real == root or real.startswith(root + os.sep)


def _git_object(kind: str, body: bytes) -> str:
    return hashlib.sha1(b"%s %d\x00" % (kind.encode(), len(body)) + body).hexdigest()


def tree_id(blobs: Dict[str, str]) -> str:
    """The git tree of ``{path: blob id}``, every file a regular file (mode 100644), as
    ``git write-tree`` hashes it: entries sorted by name, a folder's name compared with a '/'."""
    root: dict = {}
    for path, blob in blobs.items():
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = blob

    def hash_tree(node: dict) -> str:
        entries = []
        for name, value in node.items():
            raw = name.encode("utf-8", "surrogateescape")
            if isinstance(value, dict):
                entries.append((raw + b"/", b"40000 " + raw, hash_tree(value)))
            else:
                entries.append((raw, b"100644 " + raw, value))
        body = b"".join(head + b"\x00" + bytes.fromhex(oid) for _, head, oid in sorted(entries))
        return _git_object("tree", body)

    return hash_tree(root)


def import_commit(tree: str) -> bytes:
    """The commit object a plain folder becomes: no parent, a fixed author, committer, date (the
    epoch) and message, so that its hash follows from the files alone."""
    return (
        f"tree {tree}\nauthor {IMPORT_AUTHOR}\ncommitter {IMPORT_AUTHOR}\n\n{IMPORT_MESSAGE}"
    ).encode("utf-8")


def import_commit_id(blobs: Dict[str, str]) -> str:
    return _git_object("commit", import_commit(tree_id(blobs)))


class FolderRepo(Repo):
    """A plain folder: revision ``main`` (or its commit hash), the commit of its import."""

    def __init__(self, repo_type, repo_id, path):
        super().__init__(repo_type, repo_id, path)
        self._hashes: Dict[str, tuple] = {}  # rel path -> ((size, mtime_ns), Entry)
        self._lock = threading.Lock()
        self._last: Optional[tuple] = None  # (stat key, Snapshot)

    def _walk(self) -> List[tuple]:
        return folder_files(self.path)

    def _entry(self, rel: str, size: int, mtime: int) -> Entry:
        key = (size, mtime)
        cached = self._hashes.get(rel)
        if cached and cached[0] == key:
            return cached[1]
        blob, sha = _hash_file(os.path.join(self.path, rel), size)
        entry = Entry(rel, size, blob, sha)
        self._hashes[rel] = (key, entry)
        return entry

    def snapshot(self, revision: str) -> Snapshot:
        with self._lock:
            listing = self._walk()
            if self._last is not None and self._last[0] == listing:
                snap = self._last[1]
            else:
                files = {rel: self._entry(rel, size, mtime) for rel, size, mtime in listing}
                commit = import_commit_id({rel: e.blob_id for rel, e in files.items()})
                newest = max((m for _, _, m in listing), default=0) / 1e9
                snap = Snapshot(commit, files, newest)
                self._last = (listing, snap)
                live = set(files)
                self._hashes = {k: v for k, v in self._hashes.items() if k in live}
        if revision not in ("main", snap.commit):
            raise StoreError(
                "RevisionNotFound", f"Revision {revision!r} not found in {self.repo_id}."
            )
        return snap

    def open(self, snapshot, entry, offset=0):
        full = os.path.join(self.path, entry.path)
        root = os.path.realpath(self.path)
        if not _inside(root, full):
            raise StoreError(
                "EntryNotFound", f"{entry.path} does not exist.", commit=snapshot.commit
            )
        fh = open(full, "rb")
        return _file_chunks(fh, offset)

    def refs(self, include_prs=False):
        snap = self.snapshot("main")
        out = {
            "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": snap.commit}],
            "tags": [],
            "converts": [],
        }
        return {**out, "pullRequests": []} if include_prs else out

    def commits(self, revision):
        snap = self.snapshot(revision)
        author = IMPORT_AUTHOR.split(" <")[0]
        title = IMPORT_MESSAGE.strip()
        return [{"id": snap.commit, "title": title, "message": "", "author": author, "time": 0.0}]


def _file_chunks(fh, offset):
    try:
        fh.seek(offset)
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            yield chunk
    finally:
        fh.close()


class GitRepo(Repo):
    """A git repository: every branch, tag and commit is a revision."""

    def __init__(self, repo_type, repo_id, path):
        super().__init__(repo_type, repo_id, path)
        self._trees: Dict[str, Snapshot] = {}
        self._sha256: Dict[str, str] = {}
        self._lock = threading.Lock()

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["git", "-c", "safe.directory=*", "-C", self.path, *args]
        return subprocess.run(cmd, capture_output=True, check=check, env=_git_env())

    def _rev_parse(self, revision: str) -> Optional[str]:
        if revision.startswith("-") or not revision:
            return None
        candidates = [revision]
        if revision == "main":
            candidates.append("HEAD")
        for rev in candidates:
            out = self._git(
                "rev-parse", "--verify", "-q", "--end-of-options", rev + "^{commit}", check=False
            )
            if out.returncode == 0:
                return out.stdout.decode().strip()
        return None

    def snapshot(self, revision):
        commit = self._rev_parse(revision)
        if commit is None:
            raise StoreError(
                "RevisionNotFound", f"Revision {revision!r} not found in {self.repo_id}."
            )
        with self._lock:
            snap = self._trees.get(commit)
        if snap is None:
            snap = self._read_tree(commit)
            with self._lock:
                self._trees[commit] = snap
        return snap

    def _read_tree(self, commit: str) -> Snapshot:
        out = self._git("ls-tree", "-r", "-l", "-z", "--full-tree", commit).stdout
        files = {}
        for record in out.split(b"\x00"):
            if not record:
                continue
            meta, path = record.split(b"\t", 1)
            mode, kind, oid, size = meta.split()
            if kind != b"blob" or mode == b"120000":  # symlinks are not served
                continue
            rel = path.decode("utf-8", "surrogateescape")
            size = int(size)
            oid = oid.decode()
            sha = self._blob_sha256(oid) if size > LFS_THRESHOLD else None
            files[rel] = Entry(rel, size, oid, sha)
        self._resolve_pointers([e for e in files.values() if e.size <= LFS_POINTER_MAX])
        when = self._git("show", "-s", "--format=%ct", commit).stdout.decode().strip()
        return Snapshot(commit, files, float(when or 0))

    def _resolve_pointers(self, small: List[Entry]) -> None:
        """Turn the entries whose blob is a git-lfs pointer into LFS entries (one git call)."""
        if not small:
            return
        query = "".join(f"{e.blob_id}\n" for e in small).encode()
        out = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", self.path, "cat-file", "--batch"],
            input=query,
            capture_output=True,
            check=True,
            env=_git_env(),
        ).stdout
        pos = 0
        for entry in small:
            end = out.index(b"\n", pos)
            size = int(out[pos:end].split()[2])
            content = out[end + 1 : end + 1 + size]
            pos = end + 1 + size + 1
            pointer = parse_lfs_pointer(content)
            if pointer is not None:
                entry.pointer_size = entry.size
                entry.sha256, entry.size = pointer
                entry.lfs_path = lfs_object_path(self.path, entry.sha256)

    def _blob_sha256(self, oid: str) -> str:
        if oid not in self._sha256:
            self._sha256[oid] = _sha256(self._cat(oid, 0))
        return self._sha256[oid]

    def _cat(self, oid: str, offset: int) -> Iterator[bytes]:
        cmd = ["git", "-c", "safe.directory=*", "-C", self.path, "cat-file", "blob", oid]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_git_env()
        )
        try:
            skip = offset
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk, skip = chunk[skip:], 0
                yield chunk
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def open(self, snapshot, entry, offset=0):
        if entry.lfs_path is not None:
            try:
                fh = open(entry.lfs_path, "rb")
            except OSError:
                raise StoreError(
                    "EntryNotFound",
                    f"The LFS object of {entry.path} is missing.",
                    commit=snapshot.commit,
                ) from None
            return _file_chunks(fh, offset)
        return self._cat(entry.blob_id, offset)

    def refs(self, include_prs=False):
        kinds = {**_REF_KINDS, **(_PR_REFS if include_prs else {})}
        out = self._git(
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)",
            *kinds,
        ).stdout.decode()
        out_refs = {kind: [] for kind in kinds.values()}
        for line in out.splitlines():
            ref, obj, peeled = line.split("\x00")
            prefix = next(p for p in kinds if ref.startswith(p + "/"))
            name = ref[len("refs/") :] if prefix in _PR_REFS else ref[len(prefix) + 1 :]
            out_refs[kinds[prefix]].append(
                {"name": name, "ref": ref, "targetCommit": peeled or obj}
            )
        return out_refs

    def commits(self, revision):
        commit = self._rev_parse(revision)
        if commit is None:
            raise StoreError(
                "RevisionNotFound", f"Revision {revision!r} not found in {self.repo_id}."
            )
        out = self._git("log", "-z", "--format=%H%x00%an%x00%ct%x00%B", commit).stdout
        fields = out.decode("utf-8", "replace").split("\x00")
        listed = []
        for i in range(0, len(fields) - 3, 4):
            oid, author, when, text = fields[i : i + 4]
            title, _, message = text.strip("\n").partition("\n")
            listed.append(
                {
                    "id": oid.strip(),
                    "title": title,
                    "message": message.strip("\n"),
                    "author": author,
                    "time": float(when),
                }
            )
        return listed


# The refs that /api/{type}s/{id}/refs lists, by prefix: refs/convert/parquet is the Hub's
# parquet export of a dataset. Pull requests (refs/pr/N, named pr/N) only with include_prs.
_REF_KINDS = {"refs/heads": "branches", "refs/tags": "tags", "refs/convert": "converts"}
_PR_REFS = {"refs/pr": "pullRequests"}


def _git_env():
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"})
    return env


def is_git_repo(path: str) -> bool:
    if os.path.exists(os.path.join(path, ".git")):
        return True
    return (
        os.path.isfile(os.path.join(path, "HEAD"))
        and os.path.isdir(os.path.join(path, "objects"))
        and os.path.isdir(os.path.join(path, "refs"))
    )


class Store:
    """Finds repositories under ``root`` and keeps their caches between requests."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._repos: Dict[tuple, Repo] = {}
        self._lock = threading.Lock()

    def repo_folder(self, repo_type: str, repo_id: str) -> str:
        parts = repo_id.split("/")
        if not 1 <= len(parts) <= 2 or any(
            p in ("", ".", "..") or p.startswith(".") for p in parts
        ):
            raise StoreError("RepoNotFound", f"Repository {repo_id!r} not found.")
        return os.path.join(self.root, REPO_FOLDERS[repo_type], *parts)

    def exists(self, repo_type: str, repo_id: str) -> bool:
        try:
            folder = self.repo_folder(repo_type, repo_id)
        except StoreError:
            return False
        if os.path.islink(folder) or not os.path.isdir(folder):
            return False
        if "/" in repo_id or is_git_repo(folder):
            return True
        # A one-part id is a repo only if it holds files: an org folder holds only folders.
        return any(e.is_file() for e in os.scandir(folder))

    def get(self, repo_type: str, repo_id: str) -> Repo:
        if repo_type not in REPO_FOLDERS or not self.exists(repo_type, repo_id):
            raise StoreError("RepoNotFound", f"Repository {repo_id!r} not found.")
        folder = self.repo_folder(repo_type, repo_id)
        kind = GitRepo if is_git_repo(folder) else FolderRepo
        key = (repo_type, repo_id)
        with self._lock:
            repo = self._repos.get(key)
            if repo is None or not isinstance(repo, kind):
                repo = kind(repo_type, repo_id, folder)
                self._repos[key] = repo
        return repo


def publish_folder(root, repo_id: str, folder, repo_type: str = "model") -> str:
    """Copy ``folder`` into the store ``root`` as ``repo_id``, replacing an earlier copy.

    Symlinks are copied as the files they point to (a folder from the HF cache works). A running
    mirror serves the new content at once. Returns the repository folder.
    """
    if repo_type not in REPO_FOLDERS:
        raise ValueError(f"repo_type must be one of {sorted(REPO_FOLDERS)}, not {repo_type!r}")
    store = Store(os.fspath(root))
    try:
        dest = store.repo_folder(repo_type, repo_id)  # refuses ids that would leave the store
    except StoreError:
        raise ValueError(f"invalid repo id {repo_id!r}: use 'name' or 'org/name'") from None
    if not os.path.isdir(folder):
        raise ValueError(f"not a folder: {folder}")
    if os.path.lexists(dest):
        shutil.rmtree(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copytree(folder, dest, symlinks=False)
    return dest
