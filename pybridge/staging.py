"""Staging folders, written first and then renamed into place, so that a result is
whole or absent. Each is named after its process (``.LABEL~HOST~PID~RANDOM``): what a killed
process left behind (a half-written safetensors file, a model folder, a fast-path conversion)
is removed by the next process that writes there, while a live process's folder is left
alone, on this machine or another one sharing the folder."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

_HOST = socket.gethostname().replace("~", "-")


def folder(parent: str, label: str) -> str:
    clear_abandoned(parent, label)
    return tempfile.mkdtemp(prefix=_prefix(label), dir=parent)


def clear_abandoned(parent: str, label: str) -> None:
    """Removes the staging folders of ``label`` in ``parent`` whose process (here) is gone."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if name.startswith(f".{label}~") and _abandoned(name[len(label) + 2 :]):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _prefix(label: str) -> str:
    return f".{label}~{_HOST}~{os.getpid()}~"


def _abandoned(owner: str) -> bool:
    host, _, rest = owner.partition("~")
    pid, _, _ = rest.partition("~")
    if host != _HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False
