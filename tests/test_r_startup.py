"""The installed R package in fresh Rscript processes: what starts, what gets imported.

Uses RETICULATE_PYTHON and R_LIBS from the environment (``make test`` exports them), else the
repository's .venv and .rlib.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
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
    out = subprocess.run(
        ["Rscript", "-e", code], env=_r_env(extra_env), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def installed():
    lines = rscript(
        'cat(requireNamespace("hfbridge", quietly = TRUE), '
        'exists("hub_download", envir = asNamespace("hfbridge")))'
    )
    if lines[-1] != "TRUE TRUE":
        pytest.skip("hfbridge with the hub verbs is not installed in R_LIBS (run make setup)")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    return build_demo_store(tmp_path_factory.mktemp("demo-store"))


def test_library_starts_no_python(installed):
    lines = rscript("library(hfbridge); cat(reticulate::py_available(initialize = FALSE))")
    assert lines[-1] == "FALSE"


def test_hub_calls_import_neither_torch_nor_transformers(
    installed, mirror, publish, hf_env, demo_store
):
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
    out = subprocess.run(
        ["Rscript", "-e", code], env=_r_env(hf_env), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].split() == ["TRUE", "TRUE", "TRUE"]
    assert "Model not found: Repository 'nonexistent/model'" in out.stderr


# ---------------------------------------------------------------------------------------------
# Python started from R as a child process (pip, the mirror, helpers)

CHILD_LD = """
library(hfbridge)
ld <- function() processx::run(
  Sys.getenv("RETICULATE_PYTHON"),
  c("-c", "import os, ssl; print(os.environ.get('LD_LIBRARY_PATH', '<unset>'))"),
  env = hfbridge:::child_python_env())$stdout
cat(ld())
cat(callr::r(ld))  # R started from R: ldpaths has put R's folders in front twice
"""


@pytest.mark.parametrize("inherited", [None, "/opt/hfbridge-test/lib:/opt/other"])
def test_child_pythons_get_the_library_path_r_inherited(installed, inherited):
    extra = {} if inherited is None else {"LD_LIBRARY_PATH": inherited}
    env = _r_env(extra)
    if inherited is None:
        env.pop("LD_LIBRARY_PATH", None)
    out = subprocess.run(
        ["Rscript", "-e", CHILD_LD], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [inherited or "<unset>"] * 2


def _new_user_env(extra=None) -> dict:
    """A new user's R session: R_LIBS set, no RETICULATE_PYTHON, no PYTHONPATH."""
    env = _r_env()
    for name in ("RETICULATE_PYTHON", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def tarball_library(tmp_path_factory):
    """hfbridge as a user installs it: R CMD build, then R CMD INSTALL of the tarball into an
    empty library. The tarball must carry pybridge (inst/python) and the R sources (inst/source)
    as files, made from the links to the one copy in the repo."""
    work = tmp_path_factory.mktemp("tarball")
    env = _new_user_env()
    env.pop("R_LIBS", None)
    build = subprocess.run(
        ["R", "CMD", "build", "--no-build-vignettes", "--no-manual", str(ROOT / "rpackage")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    (tarball,) = work.glob("hfbridge_*.tar.gz")
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for name in ("inst/python/pyproject.toml", "inst/python/pybridge/hub.py",
                 "inst/source/R/python.R", "inst/source/src/init.c"):  # fmt: skip
        assert members["hfbridge/" + name].isfile(), name
    assert not [n for n in members if n.endswith((".pyc", ".o", ".so")) or "__pycache__" in n]
    library = work / "library"
    library.mkdir()
    install = subprocess.run(
        ["R", "CMD", "INSTALL", "--no-multiarch", "-l", str(library), str(tarball)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, (install.stdout + install.stderr)[-3000:]
    return library


@pytest.fixture(scope="module")
def light_venv(tarball_library, tmp_path_factory):
    """install_pybridge(models = FALSE) run as a new user would: hfbridge from its tarball, in a
    folder outside the repo, with no RETICULATE_PYTHON and no source named, into a temporary
    venv, with real pip (about 15 s here with pip's cache warm)."""
    venv = tmp_path_factory.mktemp("light") / "venv"
    out = subprocess.run(
        ["Rscript", "-e", "library(hfbridge); install_pybridge(models = FALSE)"],
        cwd=tmp_path_factory.mktemp("elsewhere"),
        env=_new_user_env({"HFBRIDGE_VENV": str(venv), "R_LIBS": str(tarball_library)}),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return venv


def _venv_python(venv, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=venv,  # not the checkout, whose pybridge/ would shadow the installed one
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_install_pybridge_works_in_a_fresh_r_session_without_models(light_venv, tarball_library):
    out = _venv_python(
        light_venv,
        "import ssl, pybridge, huggingface_hub, tokenizers, safetensors; print(pybridge.__file__)",
    )
    assert out.returncode == 0, out.stderr
    installed = Path(out.stdout.strip())
    assert installed.is_relative_to(light_venv)  # a copy: not the repo, not the R library
    carried = tarball_library / "hfbridge" / "python" / "pybridge"
    assert not list(carried.parent.glob("*.egg-info")) and not (carried.parent / "build").exists()
    for name in ("hub.py", "errors.py", "mirror/__init__.py"):
        assert (installed.parent / name).read_bytes() == (ROOT / "pybridge" / name).read_bytes()
    for module in ("torch", "transformers"):
        assert _venv_python(light_venv, f"import {module}").returncode != 0


@pytest.mark.slow
def test_the_tarball_install_lists_the_mirror_and_writes_a_space_outside_the_repo(
    light_venv, tarball_library, mirror, publish, hf_env, demo_store, tmp_path
):
    publish("rtarball/gpt2", Path(demo_store["gpt2"]))
    code = """
library(hfbridge)
cat("SOURCE", hfbridge:::default_pybridge_source(), "\\n")
cat("FILES", sort(hub_list_files("rtarball/gpt2")), "\\n")
dir <- space_scaffold("space")
cat("SPACE", file.exists(file.path(dir, c("Dockerfile", "hfbridge/pyproject.toml",
  "hfbridge/pybridge/hub.py", "hfbridge/rpackage/R/space.R", "hfbridge/rpackage/src/init.c",
  "hfbridge/rpackage/inst/python/pybridge/hub.py"))), "\\n")
cat("PYTHON", reticulate::py_config()$python, "\\n")
"""
    out = subprocess.run(
        ["Rscript", "-e", code],
        cwd=tmp_path,
        env=_new_user_env(
            {**hf_env, "HFBRIDGE_VENV": str(light_venv), "R_LIBS": str(tarball_library)}
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["SOURCE"].strip() == str(tarball_library / "hfbridge" / "python")
    from huggingface_hub import HfApi

    expected = HfApi(endpoint=hf_env["HF_ENDPOINT"]).list_repo_files("rtarball/gpt2")
    assert sorted(lines["FILES"].split()) == sorted(expected) and expected
    assert lines["SPACE"].split() == ["TRUE"] * 6
    assert lines["PYTHON"].strip() == str(light_venv / "bin" / "python")
    dockerfile = (tmp_path / "space" / "Dockerfile").read_text()
    assert "COPY hfbridge /opt/hfbridge" in dockerfile
    shipped = tmp_path / "space" / "hfbridge"
    assert (shipped / "pyproject.toml").read_bytes() == (ROOT / "pyproject.toml").read_bytes()
    assert not list(shipped.rglob("__pycache__")) and not list(shipped.rglob("*.o"))


LIGHT_R = """
library(hfbridge)
cat("PYTHON", reticulate::py_config()$python, "\\n")
path <- hub_download("rlight/gpt2", "config.json", quiet = TRUE)
cat("CONFIG", file.exists(path), "\\n")
tok <- tokenizer_from_pretrained("rlight/gpt2")
cat("IDS", tok$encode("Hello, world! Tokenizers without torch.")$ids, "\\n")
w <- safe_load_file(hub_download("rlight/gpt2", "model.safetensors", quiet = TRUE))
x <- w[[sort(names(w))[1]]]
cat("TENSOR", sort(names(w))[1], dim(x), "\\n")
row_major <- as.vector(aperm(x, rev(seq_along(dim(x)))))
cat("VALUES", format(utils::head(row_major, 20), digits = 17), "\\n")
err <- tryCatch(pipeline("text-generation", "rlight/gpt2"), error = function(e) e)
cat("PIPELINE", class(err)[1], "\\n")
cat("MESSAGE", gsub("\\n", " ", conditionMessage(err)), "\\n")
doctor <- utils::capture.output(hfbridge_doctor())
cat("DOCTOR", any(grepl("install_pybridge(models = TRUE)", doctor, fixed = TRUE)), "\\n")
cat("MODULES", reticulate::py_eval(
  "','.join(m for m in ('torch', 'transformers') if m in __import__('sys').modules) or 'none'"))
"""


def test_without_models_hub_tokenizers_and_safetensors_work_and_pipelines_say_why_not(
    light_venv, mirror, publish, hf_env, demo_store
):
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = Path(demo_store["gpt2"])
    publish("rlight/gpt2", folder)
    python = str(light_venv / "bin" / "python")
    out = subprocess.run(
        ["Rscript", "-e", LIGHT_R],
        env=_new_user_env({**hf_env, "RETICULATE_PYTHON": python}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1].strip()
        for line in out.stdout.splitlines()
        if " " in line
    }
    assert lines["PYTHON"] == python and lines["CONFIG"] == "TRUE"
    ids = (
        Tokenizer.from_file(str(folder / "tokenizer.json"))
        .encode("Hello, world! Tokenizers without torch.")
        .ids
    )
    assert [int(i) for i in lines["IDS"].split()] == ids
    weights = load_file(str(folder / "model.safetensors"))
    name, *dims = lines["TENSOR"].split()
    ref = weights[name]
    assert [int(d) for d in dims] == list(ref.shape)
    values = [float(v) for v in lines["VALUES"].split()]
    assert values == ref.reshape(-1)[: len(values)].astype(np.float64).tolist() and values
    assert lines["PIPELINE"] == "hfbridge_error_python_environment"
    assert "install_pybridge(models = TRUE)" in lines["MESSAGE"]
    assert lines["DOCTOR"] == "TRUE"
    assert lines["MODULES"] == "none"
