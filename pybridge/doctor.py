"""Facts about this Python for hfbridge_doctor(). Imports no heavy library."""

from __future__ import annotations

import importlib.metadata as md
import sys

from . import errors
from . import settings as _settings
from .models import MODEL_STACK

PACKAGES = (
    "numpy",
    "huggingface_hub",
    "tokenizers",
    "safetensors",
    "transformers",
    "torch",
    "sentence-transformers",
)


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


def report(env=None) -> dict:
    """Versions, the cache folder, the endpoint, and whether a token is set (never its value)."""
    s = _settings.resolve(env)
    return {
        "python": sys.executable,
        "python_version": sys.version.split()[0],
        "pybridge": _version("pybridge"),
        "packages": list(PACKAGES),
        "versions": [_version(name) for name in PACKAGES],
        "cache_dir": s.cache_dir,
        "endpoint": errors.redact(s.endpoint),  # never a password written in the URL
        "offline": s.offline,
        "token_set": s.token is not None,
        "token_source": s.token_source,
        "models": all(_version(name) != "not installed" for name in MODEL_STACK),
    }
