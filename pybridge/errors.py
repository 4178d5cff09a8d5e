"""Typed errors that the R package maps to classed conditions.

Each class carries a ``code``; R turns it into the condition class ``hfbridge_error_<code>`` and
the keyword ``fields`` (repo_id, filename, revision, path, ...) into fields of that condition. R
reads them from the exception object itself, which reticulate keeps after a failed call. Each
class also subclasses the matching built-in (``ValueError``, ``FileNotFoundError``,
``PermissionError``, ``ConnectionError``, ``ImportError``, ``MemoryError``), so that Python callers
can catch them as they would huggingface_hub's.

Messages and fields are made safe once, here: tokens are redacted, and NUL bytes (which no R
string can hold) are written as ``\\0``.
"""

from __future__ import annotations

import errno
import logging
import os
import re

_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\")>]+")
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a token so that no message built later can show it."""
    if value and isinstance(value, str) and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_QUERY.sub(r"\1?***", text)  # pre-signed storage URLs carry their key there
    return _TOKEN_PATTERN.sub("hf_***", text)


class _RedactingFilter(logging.Filter):
    """Log lines pass through :func:`redact` too: a library's retry line quotes the URL it
    requested, password included."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        safe = redact(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


_REDACTING = _RedactingFilter()


def redact_logs(logger_name: str) -> None:
    """Every handler of the logger ``logger_name``, and Python's last-resort handler, redacts."""
    for handler in [*logging.getLogger(logger_name).handlers, logging.lastResort]:
        if handler is not None and _REDACTING not in handler.filters:
            handler.addFilter(_REDACTING)


def safe_text(value) -> str:
    """``value`` as a string that may be shown and that R can hold."""
    return redact(str(value)).replace("\x00", "\\0")


class PybridgeError(Exception):
    """Base class. ``code`` names the R condition class ``hfbridge_error_<code>``."""

    code = "error"

    def __init__(self, message: str, **fields):
        message = _shortened(safe_text(message))
        super().__init__(message)
        self.message = message
        self.fields = {k: _plain(v) for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        return self.message


MAX_MESSAGE = 4000  # characters: a message quoting a 10^6-character argument stays readable


def _shortened(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    cut = len(message) - MAX_MESSAGE
    return f"{message[: MAX_MESSAGE - 500]} [... {cut} characters ...] {message[-500:]}"


class RepoNotFoundError(PybridgeError, FileNotFoundError):
    code = "repo_not_found"


class RevisionNotFoundError(PybridgeError, FileNotFoundError):
    code = "revision_not_found"


class EntryNotFoundError(PybridgeError, FileNotFoundError):
    code = "entry_not_found"


class OfflineNotCachedError(PybridgeError, FileNotFoundError):
    code = "offline_not_cached"


class GatedRepoError(PybridgeError, PermissionError):
    code = "gated"


class AuthError(PybridgeError, PermissionError):
    code = "auth"


class RepoExistsError(PybridgeError, FileExistsError):
    """create_repo() on a repo that exists, without exist_ok."""

    code = "repo_exists"


class RefExistsError(PybridgeError, FileExistsError):
    """create_branch() or create_tag() on a name that exists, without exist_ok."""

    code = "ref_exists"


class StaleParentError(PybridgeError, ValueError):
    """parent_commit is no longer the head of the branch: someone committed since."""

    code = "stale_parent"


class NetworkError(PybridgeError, ConnectionError):
    code = "network"


class TLSError(PybridgeError, ConnectionError):
    """A server's certificate that the CAs in use cannot verify (a company CA: SSL_CERT_FILE)."""

    code = "tls"


class InvalidFileError(PybridgeError, ValueError):
    code = "invalid_file"


class InvalidArgumentError(PybridgeError, ValueError):
    code = "invalid_argument"


class MemoryLimitError(PybridgeError, MemoryError):
    """A result that would not fit in memory, refused before it is allocated: ``bytes`` is the
    memory it needs and ``limit`` what may be used (free memory, or a configured limit)."""

    code = "memory"


class UnsupportedError(PybridgeError, ValueError):
    code = "unsupported"


class NoChatTemplateError(PybridgeError, ValueError):
    """A conversation given to a tokenizer or model whose folder has no chat template."""

    code = "no_chat_template"


class PickleWeightsError(PybridgeError, ValueError):
    """The repo holds weights only as pickles, which can run code when loaded."""

    code = "pickle_weights"


class RateLimitError(PybridgeError, ConnectionError):
    """429 from an inference endpoint, after the retries; ``retry_after`` is in seconds."""

    code = "rate_limit"


class OverloadedError(PybridgeError, ConnectionError):
    """503 (overloaded, loading or unhealthy) from an inference endpoint, after the retries."""

    code = "overloaded"


class ValidationError(PybridgeError, ValueError):
    """An inference endpoint refused the request as not valid (400, 422)."""

    code = "validation"


class ContextLengthError(PybridgeError, ValueError):
    """The prompt and the tokens asked for do not fit the model's context."""

    code = "context_length"


class UnreachableError(PybridgeError, ConnectionError):
    """Every endpoint of a chain failed; ``errors`` holds each one's message."""

    code = "unreachable"


class PythonEnvironmentError(PybridgeError, ImportError):
    code = "python_environment"


class SystemDependencyError(PybridgeError, FileNotFoundError):
    """A program outside Python that a task needs is missing (ffmpeg for audio); ``program``."""

    code = "system_dependency"


class StorageError(PybridgeError, OSError):
    """Files could not be written where they must go: a full disk, a read-only file system, or
    a cache folder (HF_HOME) that cannot be made. ``path`` is the file or folder, ``reason``
    what the system said."""

    code = "storage"


_STORAGE_REASONS = {
    errno.ENOSPC: "no space is left on its device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "its file system is read-only",
}
_FOLDER_REASONS = {
    errno.ENOTDIR: "a part of its path is a file, not a folder",
    errno.ENOENT: "a part of its path does not exist and cannot be made",
    errno.EACCES: "permission is denied",
    errno.EPERM: "the operation is not permitted",
}


_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust's std::io::Error ends


def storage_error(exc, folder=None, **fields):
    """``exc`` (or an exception it was raised from) as a :class:`StorageError` when it is a
    failure to write files, else None. Without ``folder``, only the errors that always mean
    storage (a full disk, a quota, a read-only file system); with it, also a path inside
    ``folder`` or on the way to it that cannot be made or written."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        rust = _RUST_OS_ERROR.search(str(exc))  # safetensors and tokenizers raise text
        if rust and not isinstance(exc, OSError):
            reason = _STORAGE_REASONS.get(int(rust.group(1)))
            if reason is not None:
                return _storage(None, folder, reason, fields)
        if isinstance(exc, OSError):
            path = exc.filename if isinstance(exc.filename, str) else None
            reason = _STORAGE_REASONS.get(exc.errno)
            if reason is None and path and folder and _related(path, folder):
                reason = _FOLDER_REASONS.get(exc.errno)
            if reason is not None:
                return _storage(path, folder, reason, fields)
        exc = exc.__cause__ or exc.__context__
    return None


def _related(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    try:
        return os.path.commonpath([path, folder]) in (path, folder)
    except ValueError:
        return False


def _storage(path, folder, reason, fields) -> StorageError:
    if folder:
        return StorageError(
            f"Cannot write to the cache folder {folder}: {reason}"
            f"{f' ({path})' if path and path != folder else ''}. {_advice(reason)}point "
            "HF_HOME (or HF_HUB_CACHE) at a folder that can be written.",
            **{**fields, "path": folder, "reason": reason},
        )
    path = fields.pop("path", None) or path  # the file the caller was writing, if it says
    return StorageError(
        f"Cannot write {path or 'a file'}: {reason}. {_advice(reason)}write elsewhere "
        "(HF_HOME moves the cache).",
        **{**fields, "path": path, "reason": reason},
    )


def write_failure(exc, message, path) -> PybridgeError:
    """A failure to write the file ``path`` the caller named: ``storage`` for a full disk or a
    read-only file system, else ``invalid_argument`` with ``message``."""
    storage = storage_error(exc, path=path)
    return storage if storage is not None else InvalidArgumentError(message, path=path)


def _advice(reason) -> str:
    full = reason in (_STORAGE_REASONS[errno.ENOSPC], _STORAGE_REASONS[errno.EDQUOT])
    return "Free space there, or " if full else "Please "


class PythonError(PybridgeError, RuntimeError):
    """An exception pybridge did not foresee, raised by a library it called."""

    code = "python"


def _plain(value):
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, (bool, int, float)) else safe_text(v) for v in value]
    return safe_text(value)


def call(function, *args, **kwargs):
    """Runs ``function`` for R. Any exception leaves as a :class:`PybridgeError`, whose message
    and fields R can convert: an unforeseen one becomes a :class:`PythonError` naming its type."""
    try:
        return function(*args, **kwargs)
    except PybridgeError:
        raise
    except Exception as exc:
        storage = storage_error(exc)
        if storage is not None:
            raise storage from None
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            raise InvalidArgumentError(
                f"A file name is too long for its file system: {safe_text(exc.filename)}.",
                path=exc.filename if isinstance(exc.filename, str) else None,
            ) from None
        kind = type(exc).__name__
        raise PythonError(f"Python raised {kind}: {exc}", python_type=kind) from None
