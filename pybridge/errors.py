"""Typed errors that the R package maps to classed conditions.

Each class carries a ``code``; R turns it into ``hfbridge_error_<code>``. The fields (repo_id,
filename, revision, path, ...) travel to R through :func:`last_error_info`, because reticulate 1.28
only passes the Python class name and message.
"""

from __future__ import annotations

import re
import threading

_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")
_secrets: set[str] = set()
_last = threading.local()


def register_secret(value: str | None) -> None:
    """Remember a token so that no message built later can show it."""
    if value and isinstance(value, str) and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("hf_***", text)


class PybridgeError(Exception):
    """Base class. ``code`` names the R condition class ``hfbridge_error_<code>``."""

    code = "error"

    def __init__(self, message: str, **fields):
        message = redact(str(message))
        super().__init__(message)
        self.message = message
        self.fields = {k: _plain(v) for k, v in fields.items() if v is not None}
        _last.error = self


class RepoNotFoundError(PybridgeError):
    code = "repo_not_found"


class RevisionNotFoundError(PybridgeError):
    code = "revision_not_found"


class EntryNotFoundError(PybridgeError):
    code = "entry_not_found"


class GatedRepoError(PybridgeError):
    code = "gated"


class AuthError(PybridgeError):
    code = "auth"


class OfflineNotCachedError(PybridgeError):
    code = "offline_not_cached"


class NetworkError(PybridgeError):
    code = "network"


class InvalidFileError(PybridgeError):
    code = "invalid_file"


class InvalidArgumentError(PybridgeError):
    code = "invalid_argument"


class PythonEnvironmentError(PybridgeError):
    code = "python_environment"


class UnsupportedError(PybridgeError):
    code = "unsupported"


class PickleWeightsError(PybridgeError):
    """The repo holds weights only as pickles, which can run code when loaded."""

    code = "pickle_weights"


def _plain(value):
    if isinstance(value, (str, int, float, bool)):
        return redact(value) if isinstance(value, str) else value
    if isinstance(value, (list, tuple)):
        return [redact(str(v)) for v in value]
    return redact(str(value))


def remember(err: PybridgeError) -> None:
    """Makes ``err`` this thread's last error: for an error raised on a worker thread and
    raised again on the calling one."""
    _last.error = err


def last_error_info() -> dict | None:
    """The last PybridgeError raised in this thread, as a plain dict, then forget it."""
    err = getattr(_last, "error", None)
    _last.error = None
    if err is None:
        return None
    return {
        "type": type(err).__name__,
        "code": err.code,
        "message": err.message,
        "fields": dict(err.fields),
    }
