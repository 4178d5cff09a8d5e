"""Proxies and CAs given per call (pybridge.settings.NETWORK_NAMES), with a real forward proxy.

tinyproxy (Debian) logs every request it forwards and supports CONNECT. It, the Hub mirror and
the fault server bind this machine's non-loopback address, since clients may bypass a proxy for
loopback. The CA tests serve the mirror over HTTPS with a certificate from a throwaway CA
(tests/tls_mirror.py, Debian's openssl). The R side is rpackage/tests/testthat/test-proxy.R.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybridge import chat, errors, hub, hub_call, inference, publish, settings
from pybridge.mirror import Mirror


def _lan_address():
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return next((a for a in out.stdout.split() if "." in a and not a.startswith("127.")), None)


ADDRESS = _lan_address()
pytestmark = [
    pytest.mark.skipif(
        ADDRESS is None,
        reason="no non-loopback IPv4 address (hostname -I); clients may bypass a proxy for "
        "loopback, so the proxy tests need one",
    ),
    pytest.mark.skipif(
        shutil.which("tinyproxy") is None, reason="tinyproxy is not installed (apt-packages.txt)"
    ),
]
REPO = "proxytest/tiny"
SECRET = "s3cret-Pa55word"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


class Tinyproxy:
    """tinyproxy on ADDRESS with its log in ``folder``; ``lines`` are extra config lines."""

    REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+)")

    def __init__(self, folder: Path, lines=()):
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.url = f"http://{ADDRESS}:{port}"
        self.log = folder / "tinyproxy.log"
        config = folder / "tinyproxy.conf"
        config.write_text(
            "\n".join(
                [f"Port {port}", f"Listen {ADDRESS}", f'LogFile "{self.log}"', "LogLevel Info",
                 "MaxClients 20", "Timeout 60", *lines]
            ) + "\n"
        )  # fmt: skip
        self.proc = subprocess.Popen(
            ["tinyproxy", "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while "Accepting connections" not in self._text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tinyproxy did not start: {self._text()}")
            time.sleep(0.05)

    def _text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def requests(self) -> list:
        """(method, target) of every request the proxy was asked to forward, in order."""
        return self.REQUEST.findall(self._text())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module", autouse=True)
def _session_follows_os_environ_afterwards():
    """Later tests that call huggingface_hub directly get a session without these proxies."""
    yield
    hub_call.follow_network(settings.resolve().network)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    p = Tinyproxy(tmp_path_factory.mktemp("tinyproxy"))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("proxy-repo")
    (folder / "config.json").write_text('{"model_type": "tiny", "n": 3}\n')
    (folder / "vocab.txt").write_text("a\nb\nc\n")
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 40)
    return folder


@pytest.fixture(scope="module")
def lan_mirror(tmp_path_factory, source):
    m = Mirror(tmp_path_factory.mktemp("lan-store"), host=ADDRESS)
    m.start()
    m.publish(REPO, source)
    yield m
    m.stop()


@pytest.fixture(scope="module")
def tls_mirror(tmp_path_factory, source):
    """(URL, CA file) of the mirror over HTTPS, its certificate from a throwaway CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt-packages.txt)")
    folder = tmp_path_factory.mktemp("tls-mirror")
    Mirror(folder / "store").publish(REPO, source)
    script = Path(__file__).with_name("tls_mirror.py")
    args = ["--root", str(folder / "store"), "--certs", str(folder / "certs"), "--host", ADDRESS]
    with open(folder / "tls_mirror.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=log, text=True
        )
    line = proc.stdout.readline()
    if not line.startswith("tls mirror ready at "):
        proc.kill()
        raise RuntimeError(
            f"the TLS mirror did not start: {(folder / 'tls_mirror.log').read_text()}"
        )
    yield line.split(" at ", 1)[1].strip(), str(folder / "certs" / "ca.pem")
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


@pytest.fixture(scope="module")
def lan_fault_server(tmp_path_factory):
    """tests/fault_server.py on ADDRESS (its default answers are enough here)."""
    log = open(tmp_path_factory.mktemp("lan-fault") / "fault.log", "w")
    script = Path(__file__).with_name("fault_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--host", ADDRESS],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("fault server ready at "), line
    yield line.split(" at ", 1)[1].strip()
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()
    log.close()


def mirror_env(url, tmp_path, name="home", **more) -> dict:
    return {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / name), "HF_HUB_DISABLE_TELEMETRY": "1",
            **more}  # fmt: skip


def download(env, filename="config.json") -> bytes:
    return Path(hub.download(REPO, filename, env=env, quiet=True)).read_bytes()


# ---- the proxy variables, read as httpx2 reads them -------------------------------------------

ROUTE_CASES = [
    {"http_proxy": "http://p:1"},
    {"HTTPS_PROXY": "p:2", "https_proxy": "http://lower:2"},
    {"HTTP_PROXY": "http://upper:1", "http_proxy": ""},
    {"ALL_PROXY": "http://all:3", "NO_PROXY": "example.com, .corp.net,*.x.org,localhost"},
    {"all_proxy": "http://all:3", "no_proxy": "10.0.0.1,192.168.0.0/16,::1,fd00::/8,[::2]"},
    {"http_proxy": "http://p:1", "no_proxy": "https://direct.example.org,a/b,*"},
    {"http_proxy": "http://u:pw@p:1", "no_proxy": ""},
]


@pytest.mark.parametrize("case", ROUTE_CASES)
def test_routes_are_those_httpx2_reads_from_the_environment(case, monkeypatch):
    from httpx2._utils import get_environment_proxies

    for name in settings.PROXY_NAMES + ("REQUEST_METHOD",):
        monkeypatch.delenv(name, raising=False)
    for name, value in case.items():
        monkeypatch.setenv(name, value)
    expected = get_environment_proxies()
    routes = hub_call._routes(settings.resolve(case).network)
    assert {k: (v and v[0]) for k, v in routes.items()} == expected


def test_same_settings_keep_the_session_and_a_change_remakes_it(tmp_path):
    from huggingface_hub.utils._http import get_session

    env = {"HF_HOME": str(tmp_path), "http_proxy": "http://192.0.2.250:3128"}
    hub_call.note_hub(settings.resolve(env))
    session = get_session()
    hub_call.note_hub(settings.resolve(dict(env)))
    assert get_session() is session
    hub_call.note_hub(settings.resolve({**env, "no_proxy": "*"}))
    assert get_session() is not session


# ---- through the proxy -------------------------------------------------------------------------


def test_a_proxy_given_between_calls_is_used_by_the_next(proxy, lan_mirror, source, tmp_path):
    before = len(proxy.requests())
    env = mirror_env(lan_mirror.url, tmp_path)
    assert download(env) == (source / "config.json").read_bytes()
    assert len(proxy.requests()) == before  # no proxy variable: direct
    env = {**env, "http_proxy": proxy.url, "no_proxy": ""}
    got = download(env, "weights.bin")
    # the proxy keeps Content-Length on HEAD, or huggingface_hub would write an empty file
    assert got == (source / "weights.bin").read_bytes()
    url = f"{lan_mirror.url}/{REPO}/resolve/main/weights.bin"
    assert proxy.requests()[before:] == [("HEAD", url), ("GET", url)]
    env.pop("http_proxy")
    assert download(env, "vocab.txt") == (source / "vocab.txt").read_bytes()
    assert len(proxy.requests()) == before + 2  # unset again: direct again


def test_no_proxy_is_honoured(proxy, lan_mirror, source, tmp_path):
    before = len(proxy.requests())
    env = mirror_env(lan_mirror.url, tmp_path, http_proxy=proxy.url, no_proxy=f"{ADDRESS},x.org")
    assert download(env) == (source / "config.json").read_bytes()
    assert hub.repo_info(REPO, env=env)["path"]
    assert len(proxy.requests()) == before


def test_a_refused_proxy_is_a_network_error_naming_it_without_credentials(
    lan_mirror, tmp_path, caplog
):
    port = free_port()  # nothing listens there
    env = mirror_env(
        lan_mirror.url, tmp_path, http_proxy=f"http://hfuser:{SECRET}@{ADDRESS}:{port}"
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(errors.NetworkError) as caught:
        hub.repo_info(REPO, env=env)
    err = caught.value
    assert f"through the proxy http://{ADDRESS}:{port} (from http_proxy" in str(err)
    assert err.fields["proxy"] == f"http://{ADDRESS}:{port}"
    shown = str(err) + repr(err.fields) + caplog.text + repr(settings.resolve(env))
    assert SECRET not in shown and "hfuser:" not in shown
    assert errors.safe_text(f"x {SECRET} y") == "x *** y"  # any later message hides it too


def test_proxy_credentials_are_sent_and_never_shown(tls_mirror, source, tmp_path, caplog):
    url, ca = tls_mirror
    proxy = Tinyproxy(tmp_path / "auth-proxy", [f"BasicAuth hfuser {SECRET}"])
    try:
        good = proxy.url.replace("http://", f"http://hfuser:{SECRET}@")
        env = mirror_env(url, tmp_path, https_proxy=good, SSL_CERT_FILE=ca)
        assert download(env) == (source / "config.json").read_bytes()
        assert [m for m, _ in proxy.requests()] == ["CONNECT"]
        bad = proxy.url.replace("http://", "http://hfuser:wrong-Pa55word@")
        env = mirror_env(url, tmp_path, "home2", https_proxy=bad, SSL_CERT_FILE=ca)
        with caplog.at_level(logging.DEBUG), pytest.raises(errors.NetworkError) as caught:
            hub.repo_info(REPO, env=env)
        assert f"through the proxy {proxy.url} (from https_proxy, which answered" in str(
            caught.value
        )
        shown = str(caught.value) + repr(caught.value.fields) + caplog.text
        assert "wrong-Pa55word" not in shown and SECRET not in shown
        assert SECRET not in proxy.log.read_text()
    finally:
        proxy.stop()


def test_remote_inference_and_chat_go_through_the_proxy(proxy, lan_fault_server):
    before = len(proxy.requests())
    env = {"http_proxy": proxy.url, "no_proxy": ""}
    direct, _ = inference.infer("text-generation", ["x"], [{"url": lan_fault_server}], env={})
    assert len(proxy.requests()) == before
    through, record = inference.infer(
        "text-generation", ["x"], [{"url": lan_fault_server}], env=env
    )
    assert through == direct and record["tries"] == 1
    reply = chat.Chat([{"url": lan_fault_server + "/v1"}], model="fault-model", env=env).send("hi")
    assert reply["text"]
    assert proxy.requests()[before:] == [
        ("POST", lan_fault_server + "/"),
        ("POST", lan_fault_server + "/v1/chat/completions"),
    ]


def test_uploads_go_through_the_proxy(proxy, lan_mirror, tmp_path):
    token = "hf_proxyUploadToken00001"
    config = Path(lan_mirror.root, "mirror.json")
    config.write_text(json.dumps({"write": {"proxyup/*": [token]}}))
    try:
        before = len(proxy.requests())
        env = mirror_env(lan_mirror.url, tmp_path, http_proxy=proxy.url, HF_TOKEN=token)
        publish.create_repo("proxyup/model", env=env)
        weights = tmp_path / "weights.bin"
        weights.write_bytes(bytes(range(256)) * 12)
        publish.upload_file(str(weights), "weights.bin", "proxyup/model", env=env, quiet=True)
        sent = proxy.requests()[before:]
        assert ("POST", f"{lan_mirror.url}/api/repos/create") in sent
        assert any(m == "POST" and "/commit/main" in url for m, url in sent)
        got = hub.download("proxyup/model", "weights.bin", env=env, quiet=True)
        assert Path(got).read_bytes() == weights.read_bytes()
    finally:
        config.unlink()


# ---- CA ----------------------------------------------------------------------------------------


def test_an_unknown_ca_is_a_tls_error_then_ssl_cert_file_fixes_it(tls_mirror, source, tmp_path):
    url, ca = tls_mirror
    env = mirror_env(url, tmp_path)
    with pytest.raises(errors.TLSError) as caught:
        hub.repo_info(REPO, env=env)
    assert caught.value.code == "tls" and caught.value.fields["variable"] == "SSL_CERT_FILE"
    assert "SSL_CERT_FILE" in str(caught.value) and url in str(caught.value)
    assert download({**env, "SSL_CERT_FILE": ca}) == (source / "config.json").read_bytes()
    env = mirror_env(url, tmp_path, "home2", REQUESTS_CA_BUNDLE=ca)
    assert download(env, "vocab.txt") == (source / "vocab.txt").read_bytes()
    with pytest.raises(errors.TLSError, match="SSL_CERT_FILE") as caught:
        inference.infer("text-generation", ["x"], [{"url": url, "retries": 2}], env={})
    assert caught.value.fields["endpoint"] == url


def test_a_ca_variable_that_names_no_file_is_an_invalid_argument(tls_mirror, tmp_path):
    url, _ = tls_mirror
    env = mirror_env(url, tmp_path, CURL_CA_BUNDLE=str(tmp_path / "missing.pem"))
    with pytest.raises(errors.InvalidArgumentError, match="CURL_CA_BUNDLE") as caught:
        hub.repo_info(REPO, env=env)
    assert caught.value.fields["argument"] == "CURL_CA_BUNDLE"


def test_https_goes_through_a_connect_tunnel(proxy, tls_mirror, source, tmp_path):
    url, ca = tls_mirror
    before = len(proxy.requests())
    env = mirror_env(url, tmp_path, https_proxy=proxy.url, SSL_CERT_FILE=ca)
    assert download(env, "weights.bin") == (source / "weights.bin").read_bytes()
    host = url.split("://", 1)[1]
    assert proxy.requests()[before:] == [("CONNECT", host)]  # one tunnel, kept alive


def test_python_callers_still_read_os_environ(proxy, lan_mirror, source, tmp_path, monkeypatch):
    before = len(proxy.requests())
    for name, value in mirror_env(lan_mirror.url, tmp_path, http_proxy=proxy.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert (
        Path(hub.download(REPO, "vocab.txt", quiet=True)).read_bytes()
        == (source / "vocab.txt").read_bytes()
    )
    assert [m for m, _ in proxy.requests()[before:]] == ["HEAD", "GET"]
    assert os.environ["http_proxy"] == proxy.url
