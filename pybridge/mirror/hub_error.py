"""The error the mirror answers with, as the Hub sends it: a status, the ``X-Error-Code`` that
huggingface_hub keys on, a message, and for a missing file the commit. The read routes
(server.py) and the write routes (writes.py) raise it; the request handler writes it."""

from __future__ import annotations

from typing import Optional

from .store import StoreError


class HubError(Exception):
    def __init__(self, status: int, code: str, message: str, commit: Optional[str] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


def from_store(err: StoreError) -> HubError:
    return HubError(err.status, err.code, err.message, err.commit)
