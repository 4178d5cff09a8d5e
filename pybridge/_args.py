"""Argument rules shared by pybridge's modules, each in one place.

R checks what only R can see (NA, vector lengths) before Python starts; the rules about
Hugging Face values live here, so that every verb says the same thing about the same mistake.
"""

from __future__ import annotations

from . import errors

REPO_TYPES = ("model", "dataset", "space")
SPACE_SDKS = ("gradio", "docker", "static", "streamlit")
# The Hub's URL and the mirror's store name a model repo by its id, the others with a prefix.
REPO_FOLDERS = {repo_type: repo_type + "s" for repo_type in REPO_TYPES}


def repo_path(repo_type: str, repo_id: str) -> str:
    """``org/name``, ``datasets/org/name`` or ``spaces/org/name``: the repo as URLs name it."""
    return repo_id if repo_type == "model" else f"{REPO_FOLDERS[repo_type]}/{repo_id}"


def check_repo_type(value, **fields) -> str:
    """``value`` if it is a repo type; ``fields`` (such as a call's context) go to the error."""
    if value not in REPO_TYPES:
        raise errors.InvalidArgumentError(
            f"repo_type must be one of {', '.join(REPO_TYPES)}, not '{value}'.",
            **{**fields, "argument": "repo_type"})
    return value


def check_space_sdk(value, **fields) -> str:
    if value not in SPACE_SDKS:
        raise errors.InvalidArgumentError(
            f"A Space needs space_sdk, one of {', '.join(SPACE_SDKS)}.",
            **{**fields, "argument": "space_sdk"})
    return value
