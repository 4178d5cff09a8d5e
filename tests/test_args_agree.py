"""R and Python hold the same argument rules: each candidate repo id, revision, filename and set
of patterns is accepted by both sides or refused by both.

R checks first, before Python starts (rpackage/R/hub.R, args.R); pybridge._args checks again for
Python callers. A rule changed on one side only makes this fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybridge import _args, errors

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.r

CASES = {
    "repo_id": [
        "gpt2", "org/name", "a.b_c-d/E.F", "sentence-transformers/all-MiniLM-L6-v2", "a" * 96,
        "a" * 97, "", " ", "a/b/c", "-abc", "a/-b", ".a", "a..b", "a--b", "org/", "/name",
        "org/na me", "na\u00efve", "ab\n", "a\tb", "a/b/", "_a", "9", "org/.x", None, 3,
    ],
    # (None is not a case: Python's verbs take it for "main", as huggingface_hub's do, while R's
    # signatures give "main" as the default and refuse NULL.)
    "revision": ["main", "v1.0", "refs/pr/1", "a" * 40, "", " ", "  x ", 1, ["main"]],
    "filename": [
        "config.json", "1_Pooling/config.json", "/etc/passwd", "../x", "a/../b", "a\\..\\b",
        "..", "...", "a/..b", "", " ", "a//b", "\\x", "dir/..", None,
    ],
    "patterns": [
        None, ["*.json"], ["*.json", "*.txt"], "*.bin", [], [""], ["*.json", None], [None], 7,
    ],
}  # fmt: skip

R_CODE = r"""
cases <- jsonlite::fromJSON(commandArgs(TRUE)[1], simplifyVector = FALSE)
ok <- function(f) !inherits(tryCatch(f(), hfbridge_error = identity), "hfbridge_error")
as_r <- function(x) if (is.list(x)) unlist(lapply(x, function(v) if (is.null(v)) NA else v)) else x
verdicts <- list(
  repo_id = lapply(cases$repo_id, function(x) ok(function() hfbridge:::hub_check_repo_id(x))),
  revision = lapply(cases$revision, function(x) ok(function() hfbridge:::check_string(x, "r"))),
  filename = lapply(cases$filename, function(x) ok(function() hfbridge:::hub_check_filename(x))),
  patterns = lapply(cases$patterns, function(x) {
    if (is.list(x) && length(x) == 0) x <- character(0)
    ok(function() hfbridge:::hub_check_patterns(as_r(x), "allow_patterns"))
  })
)
cat(jsonlite::toJSON(verdicts, auto_unbox = TRUE))
"""


def python_accepts(kind, value) -> bool:
    ctx = {"repo_id": "a", "revision": "main", "repo_type": "model"}
    checks = {
        "repo_id": lambda: _args.repo_context(value, "main", "model"),
        "revision": lambda: _args.repo_context("gpt2", value, "model"),
        "filename": lambda: _args.repo_context("gpt2", "main", "model", filename=value),
        "patterns": lambda: _args.check_patterns(value, "allow_patterns", ctx),
    }
    try:
        checks[kind]()
        return True
    except errors.InvalidArgumentError:
        return False


def r_verdicts(tmp_path) -> dict:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(CASES))
    env = dict(os.environ)
    env.setdefault("R_LIBS", str(ROOT / ".rlib"))
    env.setdefault("RETICULATE_PYTHON", sys.executable)
    out = subprocess.run(
        ["Rscript", "-e", R_CODE, str(cases)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_r_and_python_accept_and_refuse_the_same_values(tmp_path):
    r = r_verdicts(tmp_path)
    differ = []
    for kind, values in CASES.items():
        python = [python_accepts(kind, v) for v in values]
        assert len(r[kind]) == len(values)
        differ += [(kind, v, r_ok, py_ok) for v, r_ok, py_ok in zip(values, r[kind], python)
                   if r_ok != py_ok]  # fmt: skip
        assert any(python) and not all(python), kind  # each kind has good and bad cases
    assert differ == [], "(kind, value, R accepts, Python accepts)"
