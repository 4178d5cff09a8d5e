"""The mirror's write routes, as huggingface_hub 2.4 calls them with Xet off (docs/publish.md).

- ``POST /api/repos/create`` ``{name, organization, type, visibility|private, sdk}``: a new git
  repository (see :mod:`pybridge.mirror.commits`); 409 with the same ``url`` when it exists.
- ``POST /api/validate-yaml`` ``{content, repoType}``: the README's YAML front matter is parsed;
  ``{"errors": [...], "warnings": []}``.
- ``GET /api/whoami-v2``: the account of the token (``users`` in mirror.json) and its role.
- ``POST /api/{type}s/{id}/preupload/{rev}``: ``uploadMode`` ``lfs`` from 10 MiB on or when the
  sample has a NUL byte, else ``regular``; ``oid`` of the file already at that path.
- ``POST /{prefix}{id}.git/info/lfs/objects/batch``: basic transfer only; an object already
  stored has no ``actions``. The upload href carries a random key (the client PUTs without
  Authorization); ``verify`` needs the token.
- ``PUT .../objects/upload/{oid}?key=...``: the raw bytes (Content-Length or chunked), stored
  only when size and sha256 match.
- ``POST /api/{type}s/{id}/commit/{rev}[?create_pr=1]``: the NDJSON body (header, file, lfsFile,
  deletedFile, deletedFolder) becomes one git commit; ``parentCommit`` that is not the branch head
  gets 412, as on huggingface.co.
- ``POST /api/{type}s/{id}/branch/{branch}`` ``{startingPoint}`` and ``.../tag/{rev}`` ``{tag,
  message}``: 409 when the name exists.

Every write needs a token that ``mirror.json`` grants write access (see
:mod:`pybridge.mirror.config`): 401 ``Invalid credentials in Authorization header`` without a
known token, 403 for a read-only one.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
import urllib.parse
from typing import List, Optional

from .._args import REPO_FOLDERS, SPACE_SDKS, repo_path
from . import commits
from .hub_error import HubError, from_store
from .store import LFS_THRESHOLD, StoreError

PREFIXES = {folder: repo_type for repo_type, folder in REPO_FOLDERS.items()}
WRITE_ACTIONS = ("preupload", "commit", "branch", "tag")
LFS_JSON = "application/vnd.git-lfs+json"
KEY_LIFETIME = 3600.0


class UploadKeys:
    """One-time-ish keys of LFS upload hrefs: valid for an hour, dropped once the upload is in."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys = {}

    def issue(self, target: tuple) -> str:
        key = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            self._keys[key] = (target, now + KEY_LIFETIME)
        return key

    def check(self, key: str) -> Optional[tuple]:
        with self._lock:
            found = self._keys.get(key)
        return found[0] if found and found[1] > time.monotonic() else None

    def drop(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)


def repo_key(repo_type: str, repo_id: str) -> str:
    """The id mirror.json uses: ``org/name`` for models, ``datasets/org/name`` otherwise."""
    return repo_path(repo_type, repo_id)


def split_lfs(segs: List[str]) -> Optional[tuple]:
    """(repo_type, repo_id, rest) of ``/{prefix}{id}.git/info/lfs/objects/...``, else None."""
    for i, seg in enumerate(segs):
        if seg.endswith(".git") and segs[i + 1 : i + 4] == ["info", "lfs", "objects"]:
            head = segs[:i] + [seg[:-4]]
            repo_type = "model"
            if len(head) > 1 and head[0] in PREFIXES:
                repo_type, head = PREFIXES[head[0]], head[1:]
            repo_id = urllib.parse.unquote("/".join(head))
            return repo_type, repo_id, segs[i + 4 :]
    return None


def _chunked(rfile):
    """The chunks of a ``Transfer-Encoding: chunked`` body."""
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("the request body ended early")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return
        yield from commits.read_chunks(rfile, size)
        rfile.readline()


class WriteRoutes:
    """Mixed into the mirror's request handler (pybridge.mirror.server.Handler)."""

    # ---- plumbing -----------------------------------------------------------------------------
    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    def _body_chunks(self):
        """The request body in chunks (Content-Length or chunked). A ``close`` fault reads part of
        it and then hangs up without an answer."""
        self._body_read = True
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        length = int(self.headers.get("Content-Length") or 0)
        body = _chunked(self.rfile) if chunked else commits.read_chunks(self.rfile, length)
        fault = getattr(self, "_write_fault", None)
        if fault is None:
            yield from body
            self._body_done = True
            return
        limit = int(fault.get("bytes", int(length * float(fault.get("fraction", 0.5)))))
        got = 0
        for chunk in body:
            if got + len(chunk) >= limit:
                self._hang_up()
            got += len(chunk)
            yield chunk
        self._hang_up()

    def _hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise ConnectionResetError("fault injected by the mirror: connection closed mid-body")

    def _json_body(self):
        data = b"".join(self._body_chunks())
        try:
            return json.loads(data or b"{}")
        except ValueError:
            self._bad("The body is not valid JSON.")

    def _bad(self, message: str, status: int = 400, code: str = "BadRequest"):
        raise HubError(status, code, message)

    def _store_call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoreError as err:
            raise from_store(err) from None

    def _check_write(self, repo_type: str, repo_id: str) -> str:
        """The token, if it may write to the repo; else 401 (none, unknown) or 403 (read-only)."""
        config, token = self.server.config, self._token()
        if token is None or token not in config.known_tokens():
            raise HubError(401, "InvalidCredentials", "Invalid credentials in Authorization header")
        if not config.can_write(repo_key(repo_type, repo_id), token):
            raise HubError(
                403,
                "Forbidden",
                f"You don't have the rights to write to {repo_id}: "
                "the token is not granted write access (mirror.json 'write')",
            )
        return token

    # ---- /api/... without a repo ---------------------------------------------------------------
    def _api_global(self, segs, query) -> bool:
        """Answer /api/repos/create, /api/validate-yaml and /api/whoami-v2; False if not one."""
        if segs == ["repos", "create"] and self.command == "POST":
            self._create_repo()
        elif segs == ["validate-yaml"] and self.command == "POST":
            self._validate_yaml()
        elif segs == ["whoami-v2"] and self.command == "GET":
            self._whoami()
        else:
            return False
        return True

    def _create_repo(self):
        body = self._json_body()
        repo_type = body.get("type") or "model"
        name, org = body.get("name"), body.get("organization")
        if repo_type not in REPO_FOLDERS or not isinstance(name, str) or not name:
            self._bad("Give a repo name and a type of model, dataset or space.")
        repo_id = f"{org}/{name}" if org else name
        url = f"{self._base_url()}/{repo_path(repo_type, repo_id)}"
        self._check_write(repo_type, repo_id)
        sdk = body.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            self._bad(f"A Space needs an sdk, one of {', '.join(SPACE_SDKS)}.")
        private = body.get("private") is True or body.get("visibility") == "private"
        store = self.server.store
        if store.exists(repo_type, repo_id):
            err = HubError(409, "RepoExists", f"You already created this {repo_type} repo")
            err.body = {"error": err.message, "url": url}
            raise err
        self._store_call(commits.create_repo, store, repo_type, repo_id, sdk=sdk, private=private)
        self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self):
        body = self._json_body()
        content = body.get("content") or ""
        errors = []
        if content.startswith("---"):
            block = content[3:].split("\n---", 1)[0]
            try:
                import yaml

                if not isinstance(yaml.safe_load(block) or {}, dict):
                    errors.append({"message": "The metadata must be a YAML mapping."})
            except Exception as exc:  # noqa: BLE001 - any parse failure is the answer
                errors.append({"message": f"Invalid YAML: {exc}"})
        self._send_json(200, {"errors": errors, "warnings": []})

    def _whoami(self):
        config, token = self.server.config, self._token()
        if token is None or token not in config.known_tokens():
            raise HubError(401, "InvalidCredentials", "Invalid credentials in Authorization header")
        role = "write" if config.writes_anything(token) else "read"
        name = config.user_of(token)
        self._send_json(
            200,
            {
                "type": "user",
                "id": name,
                "name": name,
                "fullname": name,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "hfbridge mirror token", "role": role},
                },
            },
        )

    # ---- /api/{type}s/{id}/{action} -------------------------------------------------------------
    def _api_write(self, repo, action: str, rest: List[str], query) -> None:
        token = self._check_write(repo.repo_type, repo.repo_id)
        if action == "preupload" and len(rest) >= 2:
            return self._preupload(repo, urllib.parse.unquote("/".join(rest[1:])))
        if action == "commit" and len(rest) >= 2:
            create_pr = any(v in ("1", "true", "True") for v in query.get("create_pr", []))
            author = self.server.config.user_of(token)
            return self._commit(repo, urllib.parse.unquote("/".join(rest[1:])), create_pr, author)
        if action == "branch" and len(rest) >= 2:
            body = self._json_body()
            branch = urllib.parse.unquote("/".join(rest[1:]))
            start = body.get("startingPoint") or "main"
            self._store_call(commits.create_branch, repo.path, branch, start)
            return self._send_json(200, {})
        if action == "tag" and len(rest) >= 2:
            body = self._json_body()
            tag = body.get("tag")
            if not isinstance(tag, str) or not tag:
                self._bad("Give the tag name as 'tag'.")
            revision = urllib.parse.unquote("/".join(rest[1:]))
            self._store_call(commits.create_tag, repo.path, tag, revision, body.get("message"))
            return self._send_json(200, {})
        self._bad(f"Unknown write action {action!r}.", status=404, code="NotFound")

    def _preupload(self, repo, revision):
        body = self._json_body()
        files = body.get("files")
        if not isinstance(files, list):
            self._bad("Give the files as 'files': [{path, sample, size}].")
        out = []
        for item in files:
            path, size = item.get("path"), int(item.get("size") or 0)
            try:
                sample = base64.b64decode(item.get("sample") or "")
            except ValueError:
                self._bad(f"The sample of {path} is not base64.")
            lfs = size > 0 and (size >= LFS_THRESHOLD or b"\x00" in sample)
            oid = commits.file_oid(repo, revision, str(path), lfs)
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._send_json(200, {"files": out, "commitOid": None})

    def _commit(self, repo, revision, create_pr, author):
        header, ops = None, []
        buffer = b""
        for chunk in self._body_chunks():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                header = self._commit_line(line, header, ops)
        header = self._commit_line(buffer, header, ops)
        if header is None:
            self._bad("The commit has no header line.")
        message = str(header.get("summary") or "Upload files")
        if header.get("description"):
            message += f"\n\n{header['description']}"
        result = self._store_call(
            commits.commit,
            repo.path,
            revision,
            ops,
            message,
            parent_commit=header.get("parentCommit"),
            create_pr=create_pr,
            author=author,
        )
        prefix = f"{self._base_url()}/{repo_path(repo.repo_type, repo.repo_id)}"
        pr_url = f"{prefix}/discussions/{result.pr_num}" if result.pr_num else None
        self._send_json(
            200,
            {
                "success": True,
                "commitOid": result.oid,
                "commitUrl": f"{prefix}/commit/{result.oid}",
                "pullRequestUrl": pr_url,
                "hookOutput": "",
            },
        )

    def _commit_line(self, line: bytes, header, ops):
        if not line.strip():
            return header
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError):
            self._bad("Each line of the commit must be a JSON object with 'key' and 'value'.")
        if key == "header":
            return value
        path = value.get("path")
        if not isinstance(path, str):
            self._bad(f"A '{key}' line has no path.")
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                self._bad("Only base64 file content is supported.")
            ops.append(commits.Operation("file", path, base64.b64decode(value.get("content", ""))))
        elif key == "lfsFile":
            ops.append(
                commits.Operation(
                    "lfsFile", path, oid=str(value.get("oid")), size=int(value.get("size") or 0)
                )
            )
        elif key in ("deletedFile", "deletedFolder"):
            ops.append(commits.Operation(key, path))
        else:
            self._bad(f"Unsupported commit operation {key!r} (copies are not supported).")
        return header

    # ---- git-lfs ------------------------------------------------------------------------------
    def _lfs(self, repo_type, repo_id, rest, query):
        if rest == ["batch"] and self.command == "POST":
            return self._lfs_batch(repo_type, repo_id)
        if rest == ["verify"] and self.command == "POST":
            repo = self._open_repo(repo_type, repo_id)
            self._check_write(repo_type, repo_id)
            body = self._json_body()
            if not commits.has_object(repo.path, str(body.get("oid")), int(body.get("size") or 0)):
                self._bad("The object was not uploaded.", status=404, code="EntryNotFound")
            return self._send_json(200, {"message": "ok"})
        if len(rest) == 2 and rest[0] == "upload" and self.command == "PUT":
            return self._lfs_put(repo_type, repo_id, rest[1], query)
        self._bad("Unknown git-lfs path.", status=404, code="NotFound")

    def _lfs_batch(self, repo_type, repo_id):
        repo = self._open_repo(repo_type, repo_id)
        self._check_write(repo_type, repo_id)
        body = self._json_body()
        if body.get("operation") != "upload":
            self._bad("Only the upload operation is supported.")
        prefix = f"{self._base_url()}/{repo_path(repo_type, repo_id)}.git/info/lfs/objects"
        out = []
        for obj in body.get("objects") or []:
            oid, size = obj.get("oid"), obj.get("size")
            if not commits.valid_oid(oid) or not isinstance(size, int) or size < 0:
                out.append(
                    {
                        "oid": oid,
                        "size": size,
                        "error": {"code": 422, "message": "Invalid oid or size."},
                    }
                )
            elif commits.has_object(repo.path, oid, size):
                out.append({"oid": oid, "size": size})
            else:
                key = self.server.upload_keys.issue((repo_type, repo_id, oid, size))
                out.append(
                    {
                        "oid": oid,
                        "size": size,
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{prefix}/upload/{oid}?key={key}"},
                            "verify": {"href": f"{prefix}/verify"},
                        },
                    }
                )
        self._send_json(
            200, {"transfer": "basic", "objects": out, "hash_algo": "sha256"}, content_type=LFS_JSON
        )

    def _lfs_put(self, repo_type, repo_id, oid, query):
        key = (query.get("key") or [""])[0]
        target = self.server.upload_keys.check(key)
        if target is None or target[:3] != (repo_type, repo_id, oid):
            self._bad(
                "This upload link is not valid (expired or for another object).",
                status=403,
                code="Forbidden",
            )
        repo = self._store_call(self.server.store.get, repo_type, repo_id)  # the key authorizes
        self._store_call(commits.store_object, repo.path, oid, target[3], self._body_chunks())
        self.server.upload_keys.drop(key)
        self._send_json(200, {})
