"""A local Hugging Face Hub: folders on disk served to the real huggingface_hub client over HTTP.

It is the test double of hfbridge (not a mock: the real client talks to it over real HTTP), the
demo's default Hub, and a way to run hfbridge on an air-gapped site. Start it with::

    python -m pybridge.mirror serve --root DIR [--host 127.0.0.1] [--port 0] [--log FILE]
    pybridge-mirror serve --root DIR

and point clients at it with ``HF_ENDPOINT=http://127.0.0.1:PORT``. When it is ready it prints
exactly one line, ``hfbridge mirror serving <DIR> at http://HOST:PORT``, to stdout. In Python::

    with Mirror("/srv/hub") as m:      # or m = Mirror(root).start(); ...; m.stop()
        hf_hub_download("org/name", "config.json", endpoint=m.url)

Store layout (see :mod:`pybridge.mirror.store`): ``DIR/models/<org>/<name>/``,
``DIR/models/<name>/``, ``DIR/datasets/...``, ``DIR/spaces/...``. A plain folder is revision
``main`` with a commit derived from its content; a git repository serves every branch, tag and
commit.

Protocol (docs/hub-protocol.md; writes in docs/publish.md): HEAD/GET
``/{prefix}{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, a quoted ``ETag`` (git blob
sha1; sha256 for files above 10 MB) and the real ``Content-Length`` (also on HEAD), byte ranges
answered with 206, never a redirect and no Xet headers;
``/api/{models|datasets|spaces}/{repo}[/revision/{rev}]`` (``?blobs=True``),
``.../tree/{rev}[/{path}]`` (``recursive``, ``expand``), ``.../refs`` and ``.../paths-info/{rev}``.
``/api/agent-harnesses`` answers 404.

Errors always carry ``X-Error-Code``, ``X-Error-Message`` and a JSON body ``{"error": ...}``:
unknown repo 404 RepoNotFound, unknown revision 404 RevisionNotFound, missing file 404
EntryNotFound (with ``X-Repo-Commit``), a path that tries to leave the repository 400
InvalidPath.

Gated and private repositories, tokens and fault modes come from ``DIR/mirror.json`` (see
:mod:`pybridge.mirror.config`). Access rules, chosen so that the client's own error classes tell
the cases apart (huggingface_hub 2.4, ``utils/_http.py``):

- gated repo, no token or a known token that is not granted: 403 ``X-Error-Code: GatedRepo``
  -> ``GatedRepoError``;
- a token the mirror does not know at all (in no ``gated``/``private`` list nor in
  ``tokens``), sent to a gated or private repo: 401 with ``X-Error-Message: Invalid credentials
  in Authorization header`` (the text huggingface.co sends) and ``X-Error-Code:
  InvalidCredentials``. The client knows no such code, and that message stops it from reading
  the 401 as RepoNotFound, so it raises a plain ``HfHubHTTPError`` with status 401, which
  ``hf_hub_download`` re-raises (never a silent cache fallback). The hub layer maps it to
  ``auth`` ("bad token"), distinct from ``gated``;
- private repo without a granted token: 404 RepoNotFound, as huggingface.co does.

Public repositories ignore the token, so a stray ``HF_TOKEN`` never breaks them.

Writes (:mod:`pybridge.mirror.writes`, :mod:`pybridge.mirror.commits`): ``create_repo``,
preupload, the git-lfs batch API with basic transfer and verify, NDJSON commits, branches and
tags, as huggingface_hub 2.4 sends them with Xet off. Each commit is a git commit; writes need a
token that ``mirror.json`` lists under ``write``; a stale ``parentCommit`` gets 412.

Requests are counted (``Mirror.stats()``, ``GET /_mirror/stats``, ``POST /_mirror/stats/reset``)
and logged one line each (``METHOD path status``) to stderr or ``--log FILE``. The query string,
the headers and so any token are never logged. Faults can also be set with ``Mirror.set_faults``
or ``POST /_mirror/faults`` (a JSON list). It binds only where told: 127.0.0.1 by default.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import List, Optional

from .server import MirrorServer
from .store import publish_folder

__all__ = ["Mirror", "main", "publish_folder", "READY_LINE"]

READY_LINE = "hfbridge mirror serving {root} at {url}"


class Mirror:
    """A mirror over ``root`` served from a background thread of this process."""

    def __init__(self, root, host: str = "127.0.0.1", port: int = 0, log=None):
        self.root = os.path.abspath(os.fspath(root))
        self.host = host
        self.port = int(port)
        self._log = log
        self.log_path = os.fspath(log) if isinstance(log, (str, os.PathLike)) else None
        self._log_file = None
        self._server: Optional[MirrorServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> Optional[str]:
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Bind, serve from a daemon thread, and return the URL."""
        if self._server is not None:
            return self.url
        os.makedirs(self.root, exist_ok=True)
        log = self._log
        if isinstance(log, (str, os.PathLike)):
            self._log_file = log = open(log, "a", encoding="utf-8")
        self._server = MirrorServer((self.host, self.port), self.root, log=log)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="hfbridge-mirror",
            kwargs={"poll_interval": 0.2},
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def publish(self, repo_id: str, folder, repo_type: str = "model") -> str:
        """Copy ``folder`` into this mirror's store as ``repo_id``; served at once."""
        return publish_folder(self.root, repo_id, folder, repo_type)

    def stats(self) -> dict:
        """Request counts: ``total``, ``by_method``, ``by_path`` ("METHOD /path"), ``by_status``."""
        return self._require().stats.snapshot()

    def reset_stats(self) -> None:
        self._require().stats.reset()

    def set_faults(self, faults: List[dict]) -> None:
        """Replace the active fault list (see :mod:`pybridge.mirror.config`)."""
        self._require().config.set_faults(faults)

    def _require(self) -> MirrorServer:
        if self._server is None:
            raise RuntimeError("The mirror is not running: call start() first.")
        return self._server

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<Mirror {self.root} at {self.url or 'stopped'}>"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pybridge-mirror", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a store folder as a Hugging Face Hub")
    serve.add_argument(
        "--root", required=True, help="the store folder (models/, datasets/, spaces/)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
    serve.add_argument("--log", default=None, help="append request lines here instead of stderr")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    mirror = Mirror(args.root, host=args.host, port=args.port, log=args.log)
    try:
        url = mirror.start()
    except OSError as exc:
        print(f"hfbridge mirror: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(READY_LINE.format(root=mirror.root, url=url), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        mirror.stop()
    return 0
