"""The HTTP side of the mirror: routes, Hub headers, errors, ranges, faults, stats and logs."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from .._args import REPO_FOLDERS, repo_path
from .config import Config, ConfigError
from .hub_error import HubError, from_store
from .store import Entry, Snapshot, Store, StoreError, check_relative, read_meta
from .writes import WRITE_ACTIONS, UploadKeys, WriteRoutes, repo_key, split_lfs

PREFIXES = {folder: repo_type for repo_type, folder in REPO_FOLDERS.items()}
API_ACTIONS = ("revision", "tree", "refs", "commits", "paths-info") + WRITE_ACTIONS
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TRUE = ("true", "1", "yes")


class Stats:
    """Request counts, by method and by ``METHOD path`` (query strings dropped)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clear()

    def reset(self):
        with self._lock:
            self._clear()

    def _clear(self):
        self._by_method = Counter()
        self._by_path = Counter()
        self._by_status = Counter()
        self._total = 0

    def record(self, method: str, path: str, status: int):
        with self._lock:
            self._total += 1
            self._by_method[method] += 1
            self._by_path[f"{method} {path}"] += 1
            self._by_status[str(status)] += 1

    def snapshot(self, reset: bool = False) -> dict:
        with self._lock:
            counts = {
                "total": self._total,
                "by_method": dict(self._by_method),
                "by_path": dict(self._by_path),
                "by_status": dict(self._by_status),
            }
            if reset:
                self._clear()
        return counts


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root: str, log=None):
        self.store = Store(root)
        self.stats = Stats()
        self.log_stream = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()
        self.config = Config(self.store.root, warn=self.log_line)
        self.upload_keys = UploadKeys()
        super().__init__(address, Handler)

    def log_line(self, text: str) -> None:
        with self._log_lock:
            try:
                self.log_stream.write(text + "\n")
                self.log_stream.flush()
            except (OSError, ValueError):
                pass


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts or 0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Handler(WriteRoutes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MirrorServer
    server_version = "hfbridge-mirror"

    # ---- plumbing -------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # requests are logged by log_request, without query strings or headers

    def log_request(self, code="-", size="-"):
        """Called by send_response: log and count before the body goes out, so a client that
        has its answer always finds its request in the stats and the log."""
        self._logged = True
        path = self.path.split("?", 1)[0]
        status = int(code) if str(code).isdigit() else 0
        self.server.log_line(f"{self.command} {path} {status}")
        if not path.startswith("/_mirror/"):
            self.server.stats.record(self.command, path, status)

    def do_HEAD(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def _dispatch(self):
        self._logged = False  # becomes True when the status line is sent (log_request)
        try:
            self._route()
        except _Answered:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            if self._logged:  # failed mid-body: the only honest signal left is to hang up
                self.close_connection = True
            elif isinstance(exc, HubError):
                self._send_error(exc)
            else:  # a bug must not kill the connection silently
                self._send_error(HubError(500, "InternalError", f"{type(exc).__name__}: {exc}"))
        finally:
            if not self._logged:  # the connection broke before an answer
                self.log_request(0)

    def _raw_path(self):
        raw, _, query = self.path.partition("?")
        return raw, urllib.parse.parse_qs(query, keep_blank_values=True)

    def _send_json(
        self,
        status: int,
        payload,
        headers: Optional[dict] = None,
        content_type: str = "application/json",
    ):
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err: HubError):
        headers = {"X-Error-Code": err.code, "X-Error-Message": _header_safe(err.message)}
        if err.commit:
            headers["X-Repo-Commit"] = err.commit
        try:
            self._read_body()
            self._send_json(
                err.status, getattr(err, "body", None) or {"error": err.message}, headers
            )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if getattr(self, "_body_read", False):
            if not getattr(self, "_body_done", False):  # a body read in part: the stream is lost
                self.close_connection = True
            return b""
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True  # not worth decoding only to drop it
            return b""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # ---- routing --------------------------------------------------------------------------
    def _route(self):
        self._body_read = self._body_done = False
        raw, query = self._raw_path()
        segs = [s for s in raw.split("/") if s != ""]
        if segs[:1] == ["_mirror"]:
            return self._control(segs[1:], query)
        fault = self._fault(segs)
        self._write_fault = fault if self.command in ("PUT", "POST") else None
        lfs = split_lfs(segs)
        if lfs is not None:
            return self._lfs(*lfs, query)
        if segs[:1] == ["api"]:
            return self._api(segs[1:], query)
        if self.command not in ("GET", "HEAD"):
            raise HubError(405, "MethodNotAllowed", f"{self.command} is not supported here.")
        return self._resolve(segs, fault)

    def _fault(self, segs) -> Optional[dict]:
        targets = [urllib.parse.unquote(self.path.split("?", 1)[0])]
        target = self._file_target(segs)
        if target:
            targets.append(target)
        fault = self.server.config.take_fault(self.command, targets)
        if fault is None:
            return None
        if fault["kind"] == "delay":
            time.sleep(float(fault.get("seconds", 0.1)))
            return None
        if fault["kind"] == "status":
            status = int(fault.get("status", 503))
            raise HubError(status, "MirrorFault", f"Fault injected by the mirror: status {status}.")
        return fault

    def _file_target(self, segs) -> Optional[str]:
        """``repo_id/filename`` of a resolve request, for fault globs."""
        try:
            repo_type, repo_id, _, path = self._split_resolve(segs)
        except HubError:
            return None
        return f"{repo_path(repo_type, repo_id)}/{path}"

    def _control(self, segs, query):
        if segs == ["stats"] and self.command == "GET":
            counts = self.server.stats.snapshot(reset=_flag(query, "reset"))
            return self._send_json(200, counts)
        if segs == ["stats", "reset"] and self.command == "POST":
            self._read_body()
            self.server.stats.reset()
            return self._send_json(200, {"ok": True})
        if segs == ["faults"] and self.command == "GET":
            return self._send_json(200, self.server.config.faults())
        if segs == ["faults"] and self.command == "POST":
            try:
                self.server.config.set_faults(json.loads(self._read_body() or b"[]"))
            except (ValueError, ConfigError) as exc:
                raise HubError(400, "BadRequest", str(exc)) from None
            return self._send_json(200, {"ok": True})
        raise HubError(404, "NotFound", "Unknown mirror control path.")

    def _split_id(self, repo_type: str, segs, actions) -> tuple:
        """(repo_id, rest) from path segments that start with the repo id (one or two parts)."""
        if not segs:
            raise HubError(404, "RepoNotFound", "No repository in the path.")
        two_parts = len(segs) >= 2 and self.server.store.exists(repo_type, f"{segs[0]}/{segs[1]}")
        if len(segs) == 1 or (segs[1] in actions and not two_parts):
            return segs[0], segs[1:]
        return f"{segs[0]}/{segs[1]}", segs[2:]

    def _split_resolve(self, segs):
        repo_type = "model"
        if segs and segs[0] in PREFIXES and len(segs) > 1:
            repo_type, segs = PREFIXES[segs[0]], segs[1:]
        repo_id, rest = self._split_id(repo_type, segs, ("resolve",))
        if len(rest) < 3 or rest[0] != "resolve":
            raise HubError(404, "NotFound", "Unknown path.")
        revision = urllib.parse.unquote(rest[1])
        path = "/".join(urllib.parse.unquote(s) for s in rest[2:])
        return repo_type, urllib.parse.unquote(repo_id), revision, path

    # ---- access ---------------------------------------------------------------------------
    def _token(self) -> Optional[str]:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return None

    def _check_access(self, repo_type: str, repo_id: str, repo=None):
        config = self.server.config
        key = repo_key(repo_type, repo_id)
        private, gated = config.access("private", key), config.access("gated", key)
        token = self._token()
        if private is None and repo is not None and read_meta(repo.path).get("private"):
            if config.can_write(key, token):  # created private through the API
                return
            private = []
        if private is None and gated is None:
            return
        if token is not None and token not in config.known_tokens():
            raise HubError(401, "InvalidCredentials", "Invalid credentials in Authorization header")
        if private is not None and token not in private:
            raise HubError(404, "RepoNotFound", f"Repository {repo_id!r} not found.")
        if gated is not None and token not in gated:
            raise HubError(
                403,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in.",
            )

    def _open_repo(self, repo_type, repo_id):
        try:
            repo = self.server.store.get(repo_type, repo_id)
        except StoreError as err:
            raise from_store(err) from None
        self._check_access(repo_type, repo_id, repo)
        return repo

    def _snapshot(self, repo, revision) -> Snapshot:
        try:
            return repo.snapshot(revision)
        except StoreError as err:
            raise from_store(err) from None

    # ---- /resolve -------------------------------------------------------------------------
    def _resolve(self, segs, fault):
        repo_type, repo_id, revision, path = self._split_resolve(segs)
        repo = self._open_repo(repo_type, repo_id)
        snap = self._snapshot(repo, revision)
        try:
            path = check_relative(path)
        except StoreError as err:
            raise HubError(err.status, err.code, err.message, snap.commit) from None
        entry = snap.files.get(path)
        if entry is None:
            raise HubError(
                404, "EntryNotFound", f"{path} does not exist on {revision!r}.", snap.commit
            )
        self._send_file(repo, snap, entry, fault)

    def _send_file(self, repo, snap: Snapshot, entry: Entry, fault):
        start, end, status = 0, entry.size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            start, end = self._parse_range(rng, entry.size, snap.commit)
            status = 206
        length = max(0, end - start + 1)
        # Open before the status line, so a vanished file is still an honest error response.
        body = repo.open(snap, entry, start) if self.command == "GET" and length else iter(())
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{entry.etag}"')
            if entry.is_lfs:  # as huggingface.co: the sha256 and the real size
                self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
                self.send_header("X-Linked-Size", str(entry.size))
            self.send_header("X-Repo-Commit", snap.commit)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{entry.size}")
            self.end_headers()
            self._write_body(body, length, fault)
        finally:
            close = getattr(body, "close", None)
            if close:
                close()

    def _write_body(self, body, length: int, fault):
        limit = length
        if fault is not None:  # a "close" fault: send part of the body, then hang up
            limit = int(length * float(fault.get("fraction", 0.5)))
            limit = min(length, int(fault.get("bytes", limit)))
        sent = 0
        for chunk in body:
            if sent >= limit:
                break
            chunk = chunk[: limit - sent]
            self.wfile.write(chunk)
            sent += len(chunk)
        if fault is not None:
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _parse_range(self, header: str, size: int, commit: str):
        match = _RANGE.match(header.strip())
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first == "":  # bytes=-N: the last N bytes
                start, end = max(0, size - int(last)), size - 1
            else:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            if start < size and start <= end:
                return start, end
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        raise _Answered()

    # ---- /api -----------------------------------------------------------------------------
    def _api(self, segs, query):
        if self._api_global(segs, query):
            return None
        if not segs or segs[0] not in PREFIXES:
            raise HubError(404, "NotFound", f"Unknown API path /api/{'/'.join(segs)}.")
        repo_type = PREFIXES[segs[0]]
        repo_id, rest = self._split_id(repo_type, segs[1:], API_ACTIONS)
        repo_id = urllib.parse.unquote(repo_id)
        repo = self._open_repo(repo_type, repo_id)
        action = rest[0] if rest else ""
        if action == "" and self.command in ("GET", "HEAD"):
            return self._repo_info(repo, "main", query)
        if action == "revision" and len(rest) >= 2 and self.command in ("GET", "HEAD"):
            revision = urllib.parse.unquote("/".join(rest[1:]))
            return self._repo_info(repo, revision, query)
        if action == "tree" and len(rest) >= 2 and self.command in ("GET", "HEAD"):
            revision = urllib.parse.unquote(rest[1])
            path = "/".join(urllib.parse.unquote(s) for s in rest[2:])
            return self._tree(repo, revision, path, query)
        if action == "refs" and len(rest) == 1 and self.command == "GET":
            return self._send_json(200, repo.refs(include_prs=_flag(query, "include_prs")))
        if action == "commits" and len(rest) >= 2 and self.command == "GET":
            return self._commits(repo, urllib.parse.unquote("/".join(rest[1:])))
        if action == "paths-info" and len(rest) == 2 and self.command == "POST":
            return self._paths_info(repo, urllib.parse.unquote(rest[1]))
        if action in WRITE_ACTIONS and self.command == "POST":
            return self._api_write(repo, action, rest, query)
        raise HubError(404, "NotFound", f"Unknown API path /api/{'/'.join(segs)}.")

    def _repo_info(self, repo, revision, query):
        snap = self._snapshot(repo, revision)
        blobs = _flag(query, "blobs")
        siblings = [_sibling(e, blobs) for _, e in sorted(snap.files.items())]
        config = self.server.config
        key = repo_path(repo.repo_type, repo.repo_id)
        info = {
            "_id": snap.commit[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": snap.commit,
            "lastModified": _iso(snap.last_modified),
            "private": config.access("private", key) is not None,
            "gated": "manual" if config.access("gated", key) is not None else False,
            "disabled": False,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": siblings,
        }
        card_data = _card_data(repo, snap)
        if card_data is not None:
            info["cardData"] = card_data
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        if repo.repo_type == "space":
            info["sdk"] = read_meta(repo.path).get("sdk") or "static"
        if read_meta(repo.path).get("private"):
            info["private"] = True
        self._send_json(200, info)

    def _commits(self, repo, revision):
        """The commits of a revision, newest first, as the Hub lists them (one page)."""
        try:
            listed = repo.commits(revision)
        except StoreError as err:
            raise from_store(err) from None
        self._send_json(
            200,
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "authors": [{"user": c["author"]}],
                    "date": _iso(c["time"]),
                }
                for c in listed
            ],
        )

    def _tree(self, repo, revision, path, query):
        snap = self._snapshot(repo, revision)
        try:
            path = check_relative(path)
        except StoreError as err:
            raise HubError(err.status, err.code, err.message, snap.commit) from None
        recursive = _flag(query, "recursive")
        entries = tree_entries(snap, path, recursive)
        if entries is None:
            raise HubError(
                404, "EntryNotFound", f"{path} does not exist on {revision!r}.", snap.commit
            )
        if _flag(query, "expand"):
            commit = {
                "id": snap.commit,
                "title": "hfbridge mirror",
                "date": _iso(snap.last_modified),
            }
            for item in entries:
                item["lastCommit"] = dict(commit)
        self._send_json(200, entries)

    def _paths_info(self, repo, revision):
        snap = self._snapshot(repo, revision)
        body = self._read_body().decode("utf-8", "replace")
        ctype = self.headers.get("Content-Type") or ""
        if "json" in ctype:
            paths = (json.loads(body or "{}") or {}).get("paths", [])
        else:
            paths = urllib.parse.parse_qs(body).get("paths", [])
        paths = [paths] if isinstance(paths, str) else list(paths)
        out = []
        dirs = _directories(snap)
        for raw in paths:
            try:
                path = check_relative(str(raw))
            except StoreError:
                continue
            if path in snap.files:
                out.append(_tree_file(snap.files[path]))
            elif path in dirs:
                out.append({"type": "directory", "path": path, "oid": dirs[path]})
        self._send_json(200, out)


class _Answered(Exception):
    """The response was already sent (e.g. 416)."""


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")


CARD_MAX = 1 << 20  # a README larger than this is not read for its metadata
# huggingface_hub.repocard.REGEX_YAML_BLOCK: the YAML block at the top of a card.
_YAML_BLOCK = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")


def _card_data(repo, snap: Snapshot) -> Optional[dict]:
    """The README's YAML metadata, which the Hub gives as ``cardData`` (huggingface_hub makes
    ``card_data`` of it); None without a README or YAML, or with YAML that is no mapping."""
    import yaml

    entry = snap.files.get("README.md")
    if entry is None or entry.size > CARD_MAX:
        return None
    text = b"".join(repo.open(snap, entry)).decode("utf-8", "replace")
    match = _YAML_BLOCK.search(text)
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError:
        return None
    return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None


def _flag(query, name) -> bool:
    return any(v.lower() in _TRUE for v in query.get(name, []))


def _sibling(entry: Entry, blobs: bool) -> dict:
    item = {"rfilename": entry.path}
    if blobs:
        item.update({"size": entry.size, "blobId": entry.blob_id})
        if entry.is_lfs:
            item["lfs"] = {
                "size": entry.size,
                "sha256": entry.sha256,
                "pointerSize": entry.pointer_size,
            }
    return item


def _tree_file(entry: Entry) -> dict:
    item = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": entry.path}
    if entry.is_lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return item


def _directories(snap: Snapshot) -> dict:
    """Every folder of a snapshot, with an oid derived from what it holds."""
    import hashlib

    members = {}
    for path, entry in snap.files.items():
        parts = path.split("/")
        for i in range(1, len(parts)):
            members.setdefault("/".join(parts[:i]), []).append(f"{path}\x00{entry.blob_id}")
    return {
        d: hashlib.sha1("\n".join(sorted(m)).encode("utf-8")).hexdigest()
        for d, m in members.items()
    }


def tree_entries(snap: Snapshot, path: str, recursive: bool):
    """The tree listing of ``path`` (``""`` is the root), or None if it is not a folder."""
    dirs = _directories(snap)
    if path and path not in dirs:
        return None
    prefix = f"{path}/" if path else ""
    out = []
    for d in sorted(dirs):
        if d.startswith(prefix) and (recursive or "/" not in d[len(prefix) :]):
            out.append({"type": "directory", "oid": dirs[d], "path": d})
    for name in sorted(snap.files):
        if name.startswith(prefix) and (recursive or "/" not in name[len(prefix) :]):
            out.append(_tree_file(snap.files[name]))
    return out
