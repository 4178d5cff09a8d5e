"""The installed R package in fresh Rscript processes: what starts, what gets imported.

Uses RETICULATE_PYTHON and R_LIBS from the environment (``make test`` exports them), else the
repository's .venv and .rlib.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybridge.fixtures.demo import build_demo_store

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.r,
    pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not installed"),
]


def _r_env(extra=None) -> dict:
    env = dict(os.environ)
    env.setdefault("RETICULATE_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    if not os.path.exists(env["RETICULATE_PYTHON"]):
        env["RETICULATE_PYTHON"] = sys.executable
    env.setdefault("R_LIBS", str(ROOT / ".rlib"))
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.update(extra or {})
    return env


def rscript(code: str, extra_env=None) -> list:
    out = subprocess.run(["Rscript", "-e", code], env=_r_env(extra_env), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def installed():
    lines = rscript('cat(requireNamespace("hfbridge", quietly = TRUE), '
                    'exists("hub_download", envir = asNamespace("hfbridge")))')
    if lines[-1] != "TRUE TRUE":
        pytest.skip("hfbridge with the hub verbs is not installed in R_LIBS (run make setup)")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    return build_demo_store(tmp_path_factory.mktemp("demo-store"))


def test_library_starts_no_python(installed):
    lines = rscript("library(hfbridge); cat(reticulate::py_available(initialize = FALSE))")
    assert lines[-1] == "FALSE"


def test_hub_calls_import_neither_torch_nor_transformers(installed, mirror, publish, hf_env,
                                                        demo_store):
    publish("rstartup/gpt2", demo_store["gpt2"])
    code = """
    library(hfbridge)
    p <- hub_download("rstartup/gpt2", "config.json", quiet = TRUE)
    s <- hub_snapshot("rstartup/gpt2", allow_patterns = "*.json", quiet = TRUE)
    i <- hub_repo_info("rstartup/gpt2"); f <- hub_file_exists("rstartup/gpt2", "config.json")
    scan <- hub_cache_scan()
    cat(file.exists(p), dir.exists(s), nrow(scan) == 1, f, "\\n")
    cat(reticulate::py_eval(
      "','.join(m for m in ('torch', 'transformers') if m in __import__('sys').modules) or 'none'"))
    """
    lines = rscript(code, hf_env)
    assert lines[-2].split() == ["TRUE"] * 4
    assert lines[-1] == "none"


def test_seed_hub_snippets_run_unchanged(installed, isolated_mirror, hf_env, demo_store):
    """Seeds 000 and 001, against a mirror of their own (they use the real repo ids)."""
    for repo_id in ("gpt2", "distilbert-base-uncased"):
        isolated_mirror.publish(repo_id, demo_store[repo_id])
    hf_env = {**hf_env, "HF_ENDPOINT": isolated_mirror.url}
    code = """
    library(hfbridge)
    model_path <- hub_download(
      repo_id = "gpt2",
      filename = "model.safetensors"
    )
    model_path <- hub_download(
      repo_id = "gpt2",
      filename = "model.safetensors",
      revision = "main"
    )
    config_path <- hub_download("gpt2", "config.json")
    config_path <- hf_hub_download("distilbert-base-uncased", filename = "config.json")
    config_path
    weights_path <- hf_hub_download("distilbert-base-uncased", filename = "model.safetensors")
    tryCatch({
      path <- hub_download("nonexistent/model", "file.bin")
    }, error = function(e) {
      message("Model not found: ", e$message
    )
    })
    cat(file.exists(model_path), file.exists(config_path), file.exists(weights_path), "\\n")
    """
    out = subprocess.run(["Rscript", "-e", code], env=_r_env(hf_env), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].split() == ["TRUE", "TRUE", "TRUE"]
    assert "Model not found: Repository 'nonexistent/model'" in out.stderr
