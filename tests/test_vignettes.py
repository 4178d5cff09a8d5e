"""The vignettes (rpackage/vignettes/*.Rmd) run for real, against the demo mirror.

Each vignette's hidden setup chunk calls ``hfbridge:::examples_ready()``, which starts a demo
mirror, or returns FALSE where no Python with pybridge exists, and then every chunk is shown
un-run. With ``HFBRIDGE_EXAMPLES_REQUIRED=true`` that is an error instead, so here each vignette
must knit with its chunks run, none failing (``error = FALSE``: a failing chunk stops the knit),
and show output (``#>`` lines) in every section that has code.

In ``make test``, R CMD check has already built them twice (R CMD build knits each vignette
into the tarball, and the check knits them again); this test then reads the HTML that R CMD
build made, in ``build/check/hfbridge.Rcheck/hfbridge/doc``, when it is newer than the sources.
Otherwise it knits all nine itself in one R session, as R CMD build does (about a minute on 2
cores).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIGNETTES = ROOT / "rpackage" / "vignettes"
CHECKED_DOC = ROOT / "build" / "check" / "hfbridge.Rcheck" / "hfbridge" / "doc"
NAMES = sorted(p.stem for p in VIGNETTES.glob("*.Rmd"))
UNRUN_NOTE = "was built without hfbridge"

pytestmark = [
    pytest.mark.r,
    pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not installed"),
]

KNIT_ALL = r"""
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
failed <- character()
for (f in args[-1]) {
  started <- Sys.time()
  ok <- tryCatch({
    rmarkdown::render(f, output_dir = out, intermediates_dir = tempfile("knit-"), quiet = TRUE,
                      envir = new.env(parent = globalenv()))
    TRUE
  }, error = function(e) {
    cat("VIGNETTE FAILED", basename(f), conditionMessage(e), "\n")
    FALSE
  })
  if (!ok) failed <- c(failed, basename(f))
  cat("VIGNETTE", basename(f), format(round(Sys.time() - started, 1)), "\n")
}
if (length(failed)) quit(status = 1)
"""


def _newest_source() -> float:
    sources = list(VIGNETTES.glob("*.Rmd")) + list((ROOT / "rpackage" / "R").glob("*.R"))
    sources += list((ROOT / "pybridge").rglob("*.py"))
    return max(p.stat().st_mtime for p in sources)


def _r_env() -> dict:
    env = dict(os.environ)
    env.setdefault("RETICULATE_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    if not os.path.exists(env["RETICULATE_PYTHON"]):
        env["RETICULATE_PYTHON"] = sys.executable
    env.setdefault("R_LIBS", str(ROOT / ".rlib"))
    env.setdefault("TZ", "UTC")
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["HFBRIDGE_EXAMPLES_REQUIRED"] = "true"
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The folder of the nine knitted HTML files."""
    fresh = [CHECKED_DOC / f"{name}.html" for name in NAMES]
    if all(p.exists() for p in fresh) and min(p.stat().st_mtime for p in fresh) > (
        _newest_source()
    ):
        return CHECKED_DOC
    out = tmp_path_factory.mktemp("vignettes")
    files = [str(VIGNETTES / f"{name}.Rmd") for name in NAMES]
    res = subprocess.run(
        ["Rscript", "-e", KNIT_ALL, str(out), *files],
        cwd=str(out),
        env=_r_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = res.stdout + res.stderr
    assert res.returncode == 0, report[-6000:]
    assert report.count("VIGNETTE ") >= len(NAMES), report[-3000:]
    return out


def test_there_are_the_nine_vignettes_with_their_index_entries():
    assert NAMES == sorted(
        [
            "hfbridge",
            "hub-and-cache",
            "tokenizers-and-weights",
            "pipelines-embeddings-training",
            "chat-and-inference",
            "datasets",
            "publishing",
            "shiny",
            "scaling-out",
        ]
    )
    for name in NAMES:
        text = (VIGNETTES / f"{name}.Rmd").read_text(encoding="utf-8")
        title = re.search(r'^title: "(.+)"$', text, re.M).group(1)
        assert f"%\\VignetteIndexEntry{{{title}}}" in text, name
        assert "%\\VignetteEngine{knitr::rmarkdown" in text, name
        # The run / un-run pattern: the demo Hub first, the session's settings put back last.
        assert "run <- hfbridge:::examples_ready(" in text, name
        assert "knitr::opts_chunk$set(eval = run)" in text, name
        assert text.rstrip().endswith("hfbridge:::example_hub_done()\n```"), name
        # Every vignette named in the text exists.
        for other in re.findall(r'vignette\("([^"]+)"', text):
            assert (VIGNETTES / f"{other}.Rmd").exists(), (name, other)


@pytest.mark.parametrize("name", NAMES)
def test_the_vignette_ran_every_section_without_an_error(built, name):
    page = (built / f"{name}.html").read_text(encoding="utf-8")
    assert UNRUN_NOTE not in page, f"{name} was knitted with its chunks un-run"
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert not re.search(r"^#> (Error|Warning)\b", text, re.M), name
    # Each section (## heading) whose code ran shows output; a section of un-run code only
    # (eval = FALSE: installation, clusters, providers, blocking apps) is left alone.
    source = (VIGNETTES / f"{name}.Rmd").read_text(encoding="utf-8")
    sections = re.split(r"^## ", source, flags=re.M)[1:]
    shown = re.split(r"<h2>", page)[1:]
    assert len(shown) == len(sections), name
    for section, output in zip(sections, shown):
        heading = section.splitlines()[0]
        runs = re.findall(r"^```\{r(?![^}]*eval = FALSE)[^}]*\}\n", section, re.M)
        runs = [c for c in runs if "include = FALSE" not in c]
        if runs:
            assert "#&gt;" in output, f"{name}, section {heading!r}: no output"
