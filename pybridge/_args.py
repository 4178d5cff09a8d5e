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


def repo_path(repo_type: str, repo_id: str) -> str:
    """``org/name``, ``datasets/org/name`` or ``spaces/org/name``: the repo as URLs name it."""
    return repo_id if repo_type == "model" else f"{REPO_FOLDERS[repo_type]}/{repo_id}"


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
