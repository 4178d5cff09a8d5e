"""The pkgdown site in a real browser: every page, offline.

tools/build-site.sh builds the site into build/site (or keeps the one `make docs` built from the
same sources), Python's http.server serves it on 127.0.0.1, and Debian's Chromium (through
selenium, conftest's chromium_driver) opens every page once. The test fails on a link to the
site that leads nowhere (a missing page, or an anchor the page does not have), an image that did
not load, a JavaScript error or any other error on the console, a request to another host, and
pages that are not styled. The search box, the copy buttons and the table of contents, which
run on the scripts the site carries instead of pkgdown's CDNs, are tried too. Screenshots of the
home page, the reference index and an article are saved under build/site-screens/.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

pytestmark = [pytest.mark.r, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"
SHOTS = ROOT / "build" / "site-screens"
# Every vignette is an article (tests/test_vignettes.py checks that they are the nine).
ARTICLES = sorted(p.stem for p in (ROOT / "rpackage" / "vignettes").glob("*.Rmd"))

# What each page reports once loaded: its links, the ids it has (some made by its scripts, such
# as the table of contents'), its images that did not load, what it fetched, whether Bootstrap's
# CSS applies.
PAGE_STATE = """
return {
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name),
  brokenImages: Array.from(document.images)
    .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
  resources: performance.getEntriesByType('resource').map(e => e.name),
  navbarDisplay: getComputedStyle(document.querySelector('nav.navbar')).display,
  copyButtons: document.querySelectorAll('.btn-copy-ex').length,
  sourceBlocks: document.querySelectorAll('div.sourceCode').length,
  tocLinks: document.querySelectorAll('#toc a.nav-link').length,
};
"""


@pytest.fixture(scope="module")
def site():
    """Builds the site (tools/build-site.sh keeps one built from the same sources)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    started = time.monotonic()
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / "build-site.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, (res.stdout[-4000:], res.stderr[-4000:])
    print(f"site: {res.stdout.strip().splitlines()[-1]} in {time.monotonic() - started:.0f} s")
    return SITE


@pytest.fixture(scope="module")
def served(site):
    """The site on http://127.0.0.1:<port>/, from a stdlib file server in a thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def driver(chromium_driver, tmp_path_factory):
    drv = chromium_driver(tmp_path_factory.mktemp("site-profile"))
    yield drv
    drv.quit()


def _pages(site: Path) -> list:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


def _open(driver, url):
    driver.get(url)
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, f"{url} did not finish loading"
        time.sleep(0.05)
    if driver.execute_script("return document.fonts.status") != "loaded":
        driver.execute_async_script("document.fonts.ready.then(() => arguments[0]())")


@pytest.fixture(scope="module")
def crawl(site, served, driver):
    """Opens every page once: {page: its PAGE_STATE, with `console`, its error entries}."""
    driver.get_log("browser")  # drop what the blank start page logged
    out = {}
    for page in _pages(site):
        _open(driver, served + page)
        state = driver.execute_script(PAGE_STATE)
        state["console"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        out[page] = state
    return out


def _target(served: str, site: Path, href: str):
    """The file and anchor a link to the site leads to, or None for a link elsewhere."""
    url, fragment = urldefrag(href)
    if not url.startswith(served):
        return None
    path = unquote(urlsplit(url).path)[1:]
    if path == "" or path.endswith("/"):
        path += "index.html"
    return path, fragment


def test_every_page_of_the_site_is_there(site, crawl):
    pages = set(crawl)
    expected = {"index.html", "reference/index.html", "articles/index.html", "news/index.html"}
    expected |= {f"articles/{name}.html" for name in ARTICLES}
    exported = [
        line[len("export(") : -1]
        for line in (ROOT / "rpackage" / "NAMESPACE").read_text().splitlines()
        if line.startswith("export(")
    ]
    listed = (site / "reference" / "index.html").read_text(encoding="utf-8")
    # a function is listed as "name()", an object (the tokenizer class) as "name"
    unlisted = [n for n in exported if f">{n}(" not in listed and f">{n}<" not in listed]
    assert not unlisted, f"exported functions missing from the reference index: {unlisted}"
    assert expected <= pages, sorted(expected - pages)
    assert len([p for p in pages if p.startswith("reference/")]) > 50


def test_every_link_to_the_site_leads_to_a_page_and_anchor_that_exist(site, served, crawl):
    broken = []
    for page, state in crawl.items():
        for href in state["links"]:
            target = _target(served, site, href)
            if target is None:
                continue
            path, fragment = target
            if not (site / path).is_file():
                broken.append(f"{page}: {href} (no file {path})")
            elif fragment and path in crawl and unquote(fragment) not in crawl[path]["ids"]:
                broken.append(f"{page}: {href} (no anchor #{fragment} in {path})")
    assert not broken, "\n".join(broken[:50])


def test_every_image_loads(crawl):
    broken = {page: state["brokenImages"] for page, state in crawl.items() if state["brokenImages"]}
    assert not broken, broken


def test_no_page_logs_an_error_or_loads_from_another_host(served, crawl):
    errors = {page: state["console"] for page, state in crawl.items() if state["console"]}
    assert not errors, errors
    remote = {
        page: [r for r in state["resources"] if not r.startswith(served)]
        for page, state in crawl.items()
    }
    remote = {page: urls for page, urls in remote.items() if urls}
    assert not remote, remote


def test_pages_are_styled_and_their_scripts_run(crawl):
    unstyled = [page for page, state in crawl.items() if state["navbarDisplay"] != "flex"]
    assert not unstyled, f"pages without Bootstrap's CSS: {unstyled}"
    # clipboard.js: a copy button on every code block
    no_copy = [
        page
        for page, state in crawl.items()
        if state["sourceBlocks"] and state["copyButtons"] != state["sourceBlocks"]
    ]
    assert not no_copy, f"code blocks without copy buttons: {no_copy}"
    # bootstrap-toc: the articles' table of contents
    for name in ARTICLES:
        assert crawl[f"articles/{name}.html"]["tocLinks"] > 0, name


def test_the_search_box_finds_a_function(served, driver):
    from selenium.webdriver.common.by import By

    _open(driver, served + "index.html")
    box = driver.find_element(By.ID, "search-input")
    box.click()
    box.send_keys("tokenizer")
    deadline = time.monotonic() + 20
    hits = []
    while time.monotonic() < deadline and not hits:
        hits = driver.execute_script(
            "return Array.from(document.querySelectorAll('.aa-suggestion')).map(e => e.innerText)"
        )
        time.sleep(0.1)
    assert any("tokenizer" in hit.lower() for hit in hits), hits
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_screenshots_of_the_home_page_the_reference_and_an_article(served, driver, crawl):
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    for name, page in [
        ("home.png", "index.html"),
        ("reference.png", "reference/index.html"),
        ("article.png", "articles/pipelines-embeddings-training.html"),
    ]:
        _open(driver, served + page)
        assert driver.save_screenshot(str(SHOTS / name))
        assert (SHOTS / name).stat().st_size > 10_000
