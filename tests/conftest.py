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
- ``fault_server``: tests/fault_server.py (an OpenAI-compatible server that misbehaves on
  command) in a process of the session, reset before each test; ``.url``,
  ``.script(actions)``, ``.requests()``.
- ``chromium_driver(profile_dir)``: a headless Chromium session (Debian's chromium and
  chromium-driver through selenium, nothing downloaded) that keeps the console log; the caller
  quits it (tests/test_apps.py, tests/test_site.py).

The store is shared by the session: use repo ids unique to your test module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


class FaultServer:
    """tests/fault_server.py in a subprocess, started once its ready line is printed."""

    READY = "fault server ready at "

    def __init__(self, log: Path):
        script = Path(__file__).with_name("fault_server.py")
        self.log = log
        self._log_file = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline()
        if not line.startswith(self.READY):
            self.stop()
            raise RuntimeError(f"the fault server did not start: {line!r}; {log.read_text()}")
        self.url = line[len(self.READY) :].strip()

    def _control(self, method: str, route: str, body=None):
        import httpx2

        answer = httpx2.request(method, self.url + route, json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def script(self, actions: list) -> None:
        self._control("POST", "/_script", {"actions": actions})

    def requests(self) -> list:
        return self._control("GET", "/_requests")

    def reset(self) -> None:
        self._control("POST", "/_reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._log_file.close()


@pytest.fixture(scope="session")
def _fault_server_process(tmp_path_factory):
    server = FaultServer(tmp_path_factory.mktemp("fault-server") / "fault_server.log")
    yield server
    server.stop()


@pytest.fixture
def fault_server(_fault_server_process) -> FaultServer:
    _fault_server_process.reset()
    return _fault_server_process


# Headless Chromium: the machine's network is closed, so no background connections (each would
# be refused, and logged); a fresh profile per session.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1100",
]


def _chromium_driver(profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # no Selenium Manager: Debian's chromedriver only
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@pytest.fixture(scope="session")
def chromium_driver():
    """``chromium_driver(profile_dir)``: a headless Chromium WebDriver; the caller quits it."""
    return _chromium_driver
