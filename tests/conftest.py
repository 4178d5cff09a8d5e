"""Shared fixtures: a running local Hub mirror and a fresh HF cache per test.

- ``mirror_root``: the store folder of the session's mirror (models/, datasets/, spaces/).
- ``mirror``: a running :class:`pybridge.mirror.Mirror` over it (session scope); ``.url``,
  ``.stats()``, ``.set_faults()``, ``.log_path``. Faults are cleared after every test.
- ``hf_env``: a dict of HF_* settings pointing at the mirror with a fresh HF_HOME; also set in
  ``os.environ`` for the test. Pass it as ``env=`` to pybridge functions. huggingface_hub reads
  HF_ENDPOINT at import, so pass ``endpoint=``/``cache_dir=`` when calling it directly.
- ``publish(repo_id, folder, repo_type="model")``: copy a folder into the store as a repo
  (replacing an earlier one) and return the repo folder.
- ``mirror_config(dict)``: write ``mirror.json`` (gated, private, tokens, faults); restored after
  the test.
- ``isolated_mirror``: a mirror of its own over its own store, for tests that need one.

The store is shared by the session: use repo ids unique to your test module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pybridge.mirror import Mirror, publish_folder

_CLEARED_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
    "HF_TOKEN_PATH",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_ENDPOINT",
    "HF_HOME",
    "HUGGINGFACE_HUB_CACHE",
    "TRANSFORMERS_OFFLINE",
)


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hub-store")


@pytest.fixture(scope="session")
def mirror(mirror_root, tmp_path_factory):
    log = tmp_path_factory.mktemp("hub-log") / "mirror.log"
    m = Mirror(mirror_root, log=log)
    m.start()
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _clear_mirror_faults(request):
    yield
    if "mirror" in request.fixturenames:
        m = request.getfixturevalue("mirror")
        if m.url is not None:
            m.set_faults([])


@pytest.fixture
def hf_env(mirror, tmp_path, monkeypatch) -> dict:
    (tmp_path / "hf_home").mkdir(exist_ok=True)
    env = {
        "HF_ENDPOINT": mirror.url,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name in _CLEARED_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def publish(mirror_root):
    def _publish(repo_id: str, folder, repo_type: str = "model") -> Path:
        return Path(publish_folder(mirror_root, repo_id, folder, repo_type))

    return _publish


@pytest.fixture
def mirror_config(mirror_root):
    path = Path(mirror_root, "mirror.json")
    before = path.read_text() if path.exists() else None

    def _write(config: dict) -> Path:
        path.write_text(json.dumps(config))
        return path

    yield _write
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(before)


@pytest.fixture
def isolated_mirror(tmp_path):
    m = Mirror(tmp_path / "store", log=tmp_path / "mirror.log")
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and lose a lot on a busy 2-core machine."""
    import torch  # only the modules that ask for this fixture import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
