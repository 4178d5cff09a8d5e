"""Argument rules shared by pybridge's modules, each in one place.

R checks what only R can see (NA, vector lengths) before Python starts; the rules about
Hugging Face values live here, so that every verb says the same thing about the same mistake.
"""

from __future__ import annotations

import math
import numbers
import re

from . import errors

REPO_TYPES = ("model", "dataset", "space")
SPACE_SDKS = ("gradio", "docker", "static", "streamlit")
# The Hub's URL and the mirror's store name a model repo by its id, the others with a prefix.
REPO_FOLDERS = {repo_type: repo_type + "s" for repo_type in REPO_TYPES}
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")  # a revision that is a commit
# "name" or "org/name", as R's hub_check_repo_id() says it (R/hub.R): the same rule on both sides.
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
REPO_ID_MAX = 96


def repo_path(repo_type: str, repo_id: str) -> str:
    """``org/name``, ``datasets/org/name`` or ``spaces/org/name``: the repo as URLs name it."""
    return repo_id if repo_type == "model" else f"{REPO_FOLDERS[repo_type]}/{repo_id}"


def fields_of(ctx: dict) -> dict:
    """The string fields of a call's context that an error can carry."""
    return {k: v for k, v in ctx.items() if isinstance(v, str) and v}


def is_repo_id(value) -> bool:
    return (
        isinstance(value, str)
        and REPO_ID.fullmatch(value) is not None
        and ".." not in value
        and "--" not in value
        and len(value) <= REPO_ID_MAX
    )


_NO_FILE = object()  # repo_context() for a verb that takes no file (None is a missing one)


def repo_context(repo_id, revision, repo_type, filename=_NO_FILE, filename_argument="filename"):
    """The fields every error about this repo carries; a repo id, revision, repo type or
    filename (the verb's argument ``filename_argument``) that cannot be one is an
    InvalidArgumentError."""
    ctx = {
        "repo_id": repo_id,
        "revision": "main" if revision is None else revision,
        "repo_type": "model" if repo_type is None else repo_type,
    }
    if filename is not _NO_FILE and filename is not None:
        ctx["filename"] = filename
    for name in ("repo_id", "revision", "repo_type"):
        if not _is_text(ctx[name]):
            raise errors.InvalidArgumentError(
                f"{name} must be a non-empty string.", argument=name, **fields_of(ctx)
            )
    if not is_repo_id(repo_id):
        raise errors.InvalidArgumentError(
            f"repo_id '{repo_id}' is not a valid repo id: use 'name' or 'org/name' with letters, "
            f"digits, '-', '_' and '.', without '..' or '--' (at most {REPO_ID_MAX} characters).",
            argument="repo_id",
            **fields_of(ctx),
        )
    check_repo_type(ctx["repo_type"], **ctx)
    check_revision(ctx)
    if filename is not _NO_FILE:
        check_repo_path(filename, filename_argument, ctx)
    return ctx


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_repo_path(value, name, ctx, file=True) -> str:
    """A path inside a repo: a non-empty string, without '..', a leading '/' or a control
    character (a line break, say); a ``file`` path does not end in '/' either."""
    if not _is_text(value):
        raise errors.InvalidArgumentError(
            f"{name} must be a non-empty string.", argument=name, **fields_of(ctx)
        )
    parts = value.replace("\\", "/").split("/")
    if value.startswith("/") or ".." in parts or (file and value.endswith("/")):
        raise errors.InvalidArgumentError(
            f"{name} '{value}' must be a path inside the repo, without '..' or a leading '/'"
            f"{', and a file name after the last /' if file else ''}.",
            argument=name,
            **fields_of(ctx),
        )
    if _CONTROL.search(value):
        raise errors.InvalidArgumentError(
            f"{name} {value!r} holds a control character (a line break, a tab...), which no "
            "file name in a repo may hold.",
            argument=name,
            **fields_of(ctx),
        )
    return value


def check_revision(ctx) -> None:
    """A branch, tag or commit: no part of it may start with '.' (git's own rule for ref names),
    which would otherwise reach the URL as '..' or '.' and name the repo's main branch."""
    parts = ctx["revision"].split("/")
    if any(part.startswith(".") or not part.strip() for part in parts):
        raise errors.InvalidArgumentError(
            f"revision '{ctx['revision']}' is not a branch, tag or commit: none of its parts may "
            "be empty or start with '.'.",
            argument="revision",
            **fields_of(ctx),
        )


def check_patterns(value, name, ctx):
    """None, or a non-empty list of non-empty globs (one string is a list of one)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not (
        isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value)
    ):
        raise errors.InvalidArgumentError(
            f"{name} must be NULL or glob patterns such as '*.json'.",
            argument=name,
            **fields_of(ctx),
        )
    return list(value)


def check_ref_name(value, name, ctx) -> str:
    """A branch or tag name to create."""
    if not _is_text(value) or value.startswith("-"):
        raise errors.InvalidArgumentError(
            f"{name} must be a non-empty name.", argument=name, **fields_of(ctx)
        )
    return value


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_repo_type(value, **fields) -> str:
    """``value`` if it is a repo type; ``fields`` (such as a call's context) go to the error."""
    if value not in REPO_TYPES:
        raise errors.InvalidArgumentError(
            f"repo_type must be one of {', '.join(REPO_TYPES)}, not '{value}'.",
            **{**fields, "argument": "repo_type"},
        )
    return value


def check_space_sdk(value, **fields) -> str:
    if value not in SPACE_SDKS:
        raise errors.InvalidArgumentError(
            f"A Space needs space_sdk, one of {', '.join(SPACE_SDKS)}.",
            **{**fields, "argument": "space_sdk"},
        )
    return value


def texts(value, name) -> list:
    """A string or a list of strings (R's character vector, or a list of strings) as a list."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise errors.InvalidArgumentError(
            f"{name} must be a character vector or a list of strings, not {type(value).__name__}.",
            argument=name,
        )
    bad = [i + 1 for i, v in enumerate(value) if not isinstance(v, str)]
    if bad:
        raise errors.InvalidArgumentError(
            f"{name} must be strings, without NA; not at positions {positions(bad)}.", argument=name
        )
    return list(value)


def count(value, name, minimum=1) -> int:
    """A whole number >= ``minimum`` (R's doubles such as 3 arrive as 3.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise errors.InvalidArgumentError(
            f"{name} must be a whole number >= {minimum}, not {value!r}.", argument=name
        )
    return value


def optional_count(value, name, minimum=1):
    return None if value is None else count(value, name, minimum)


def positive(value, name) -> float:
    """A finite number above 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise errors.InvalidArgumentError(
            f"{name} must be a positive number, not {value!r}.", argument=name
        )
    return value


def choice(value, allowed, name) -> str:
    if value not in allowed:
        raise errors.InvalidArgumentError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}.",
            argument=name,
        )
    return value


def positions(found) -> str:
    """1-based positions for a message: the first ten, and how many more."""
    shown = ", ".join(str(p) for p in found[:10])
    return shown + (f" and {len(found) - 10} more" if len(found) > 10 else "")


# ---- datasets


def check_columns(columns):
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    if (
        not isinstance(columns, (list, tuple))
        or not columns
        or not all(isinstance(c, str) and c for c in columns)
    ):
        raise errors.InvalidArgumentError(
            "columns must be NULL or column names.", argument="columns"
        )
    return list(dict.fromkeys(columns))


def check_n_max(n_max):
    """None for all rows (None or Inf), else a whole number >= 0."""
    if n_max is None or (isinstance(n_max, float) and n_max == float("inf")):
        return None
    return count(n_max, "n_max", minimum=0)


def check_chunk_size(chunk_size):
    return count(chunk_size, "chunk_size", minimum=1)


def check_config_name(config):
    """A config to write (None: ``default``): a name that is also its folder, and not ``data``,
    the folder of the default config (push_to_hub refuses it too)."""
    if config is None:
        return "default"
    if not isinstance(config, str) or not re.match(r"^\w[\w.-]*$", config) or config == "data":
        raise errors.InvalidArgumentError(
            "config must be a name of letters, digits, '_', '-' and '.' (such as 'en'), and not "
            "'data'.",
            argument="config",
        )
    return config


def check_split_name(split):
    if not isinstance(split, str) or not re.match(r"^\w+(\.\w+)*$", split):
        raise errors.InvalidArgumentError(
            "split must be a name of letters, digits and '_' (such as 'train').", argument="split"
        )
