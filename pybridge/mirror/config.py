"""``ROOT/mirror.json``: gated and private repositories, tokens, and fault modes for tests.

Example::

    {
      "gated":   {"org/name": ["token-a", "token-b"]},
      "private": {"org/secret": ["token-a"]},
      "tokens":  ["token-c"],
      "write":   {"me/*": ["token-w"], "datasets/me/*": ["token-w"]},
      "users":   {"alice": ["token-w"]},
      "faults":  [
        {"path": "org/name/model.safetensors", "kind": "close", "times": 1},
        {"path": "org/name/config.json", "kind": "status", "status": 503, "times": 2,
         "method": "HEAD"},
        {"path": "org/*", "kind": "delay", "seconds": 0.2, "times": 3}
      ]
    }

Keys of ``gated``/``private`` are repo ids, optionally prefixed ``datasets/`` or ``spaces/``.

``write`` grants write access (create repos, upload, commit, branches, tags): a map of repo-id
globs (same prefixes; ``*`` also matches ``/``, so ``"*"`` is every repository) to tokens, or a
plain token list for every repository. Without a granted token a write is refused: 401 when no token
or an unknown one is sent, 403 for a token that is known but may only read. A write token may
also read the private repositories it may write. ``users`` names the account of a token for
``whoami`` (``hfbridge`` otherwise).
The file is read again whenever its modification time or size changes. Faults from the file
replace the active list at that moment; ``Mirror.set_faults()`` replaces it in-process. Each
fault counts down ``times`` (default 1; a negative number means for ever).

Fault kinds:

- ``close``: on a GET of a matching file, send the headers and part of the body, then close the
  connection. ``fraction`` (default 0.5) of the body is sent, or ``bytes`` bytes if given. On a
  PUT or POST (an upload, a commit) read that part of the request body, then close the connection
  without an answer.
- ``status``: answer ``status`` (default 503) with an error body.
- ``delay``: sleep ``seconds`` (default 0.1) before answering normally.

``path`` is a glob matched against ``<repo_id>/<filename>`` for file requests (``datasets/`` or
``spaces/`` in front for those repositories) and against the
request path (``/api/models/org/name``...) for every request. ``method`` limits a fault to
``GET`` or ``HEAD``.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import threading
from typing import List, Optional

FAULT_KINDS = ("close", "status", "delay")


class ConfigError(Exception):
    pass


def _tokens(value) -> List[str]:
    """A token list from JSON: a list, or one string (R's auto_unbox writes one token so)."""
    if value is None:
        return []
    return [str(t) for t in (value if isinstance(value, list) else [value])]


def check_faults(faults) -> List[dict]:
    if isinstance(faults, dict):  # one fault, as R's auto_unbox may write it
        faults = [faults]
    if not isinstance(faults, list):
        raise ConfigError("faults must be a list of objects")
    checked = []
    for fault in faults:
        if (
            not isinstance(fault, dict)
            or fault.get("kind") not in FAULT_KINDS
            or "path" not in fault
        ):
            raise ConfigError(f"bad fault {fault!r}: needs 'path' and 'kind' in {FAULT_KINDS}")
        fault = copy.deepcopy(fault)
        fault["times"] = int(fault.get("times", 1))
        checked.append(fault)
    return checked


def check_config(data) -> dict:
    if not isinstance(data, dict):
        raise ConfigError("the top level must be an object")
    for kind in ("gated", "private", "users"):
        if not isinstance(data.get(kind) or {}, dict):
            raise ConfigError(f"'{kind}' must map repo ids to token lists")
    if not isinstance(data.get("write") or {}, (dict, list, str)):
        raise ConfigError("'write' must map repo id globs to token lists, or list tokens")
    return data


class Config:
    """The live configuration; safe to use from the server's threads.

    A broken mirror.json is ignored as a whole (nothing gated, no faults) and reported once
    through ``warn``.
    """

    def __init__(self, root: str, warn=None):
        self.warn = warn or (lambda message: None)
        self.path = os.path.join(root, "mirror.json")
        self._lock = threading.Lock()
        self._stamp = None
        self._data: dict = {}
        self._faults: List[dict] = []
        self.error: Optional[str] = None

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        data = {}
        if stamp is not None:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    data = check_config(json.load(fh) or {})
                self._faults = check_faults(data.get("faults", []))
                self.error = None
            except (OSError, ValueError, ConfigError) as exc:
                self.error = f"mirror.json ignored: {exc}"
                self.warn(self.error)
                data, self._faults = {}, []
        else:
            self._faults = []
        self._data = data

    def set_faults(self, faults) -> None:
        checked = check_faults(list(faults or []))
        with self._lock:
            self._refresh()
            self._faults = checked

    def faults(self) -> List[dict]:
        with self._lock:
            self._refresh()
            return copy.deepcopy(self._faults)

    def access(self, kind: str, key: str) -> Optional[List[str]]:
        """The tokens granted for a gated/private repo ``key``, or None if it is not listed."""
        with self._lock:
            self._refresh()
            table = self._data.get(kind) or {}
            tokens = table.get(key)
        return None if tokens is None else _tokens(tokens)

    def known_tokens(self) -> set:
        with self._lock:
            self._refresh()
            known = set(_tokens(self._data.get("tokens")))
            for kind in ("gated", "private", "users"):
                for tokens in (self._data.get(kind) or {}).values():
                    known.update(_tokens(tokens))
            for tokens in self._write_table().values():
                known.update(tokens)
        return known

    def _write_table(self) -> dict:
        """``write`` as {glob: tokens}; a plain list applies to every repository (``**``)."""
        table = self._data.get("write") or {}
        if not isinstance(table, dict):
            return {"**": _tokens(table)}
        return {str(k): _tokens(v) for k, v in table.items()}

    def can_write(self, key: str, token: Optional[str]) -> bool:
        """Whether ``token`` may write to the repo ``key`` (``org/name``, ``datasets/org/name``)."""
        if not token:
            return False
        with self._lock:
            self._refresh()
            for pattern, tokens in self._write_table().items():
                if token in tokens and (pattern == "**" or fnmatch.fnmatchcase(key, pattern)):
                    return True
        return False

    def writes_anything(self, token: Optional[str]) -> bool:
        with self._lock:
            self._refresh()
            return bool(token) and any(token in t for t in self._write_table().values())

    def user_of(self, token: str) -> str:
        with self._lock:
            self._refresh()
            for name, tokens in (self._data.get("users") or {}).items():
                if token in _tokens(tokens):
                    return str(name)
        return "hfbridge"

    def take_fault(self, method: str, targets: List[str]) -> Optional[dict]:
        """The first matching fault with times left, counted down; None if none applies."""
        with self._lock:
            self._refresh()
            for fault in self._faults:
                if fault["times"] == 0:
                    continue
                if fault.get("method") and fault["method"].upper() != method:
                    continue
                if fault["kind"] == "close" and method not in ("GET", "PUT", "POST"):
                    continue
                if not any(fnmatch.fnmatchcase(t, fault["path"]) for t in targets if t):
                    continue
                if fault["times"] > 0:
                    fault["times"] -= 1
                return dict(fault)
        return None
