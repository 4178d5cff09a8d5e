"""The HF_* settings of one call.

R reads HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE and the token variables with
Sys.getenv() at every call and passes them here, because Sys.setenv() in R after Python has
started does not reach os.environ (ENVIRONMENT.md). Python callers may pass nothing, and then
os.environ is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from .errors import register_secret

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}
ENV_NAMES = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "XDG_CACHE_HOME",
)


@dataclass(frozen=True)
class Settings:
    cache_dir: str
    endpoint: str
    offline: bool
    token: Optional[str]
    token_source: str
    hf_home: str

    @property
    def hf_token_arg(self):
        """What to pass as huggingface_hub's ``token=``: the token, or False to send none."""
        return self.token if self.token else False


def _clean(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def resolve(env: Optional[Mapping[str, str]] = None, token: Optional[str] = None) -> Settings:
    """Settings from ``env`` (R's view of the environment) or os.environ."""
    env = os.environ if env is None else env
    if not isinstance(env, Mapping):  # R's hf_env() with no HF_* set arrives as an empty list
        env = dict(env or {})
    xdg = _clean(env, "XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    hf_home = os.path.expanduser(_clean(env, "HF_HOME") or os.path.join(xdg, "huggingface"))
    cache_dir = os.path.expanduser(_clean(env, "HF_HUB_CACHE") or os.path.join(hf_home, "hub"))
    endpoint = (_clean(env, "HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    offline = (_clean(env, "HF_HUB_OFFLINE") or "").upper() in _TRUE
    found, source = _resolve_token(env, hf_home, token)
    register_secret(found)
    return Settings(cache_dir, endpoint, offline, found, source, hf_home)


def _resolve_token(env, hf_home, explicit):
    """huggingface_hub's order: argument, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the token file."""
    if explicit:
        return str(explicit).strip(), "argument"
    if (_clean(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN") or "").upper() in _TRUE:
        return None, "none (HF_HUB_DISABLE_IMPLICIT_TOKEN)"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = _clean(env, name)
        if value:
            return value, name
    path = _clean(env, "HF_TOKEN_PATH") or os.path.join(hf_home, "token")
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError:
        value = ""
    if value:
        return value, "token file"
    return None, "none"
