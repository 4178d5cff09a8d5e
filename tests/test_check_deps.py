"""tools/check_deps.py reads the repo: a package a file names but the set-up never installs fails
it, in a copy of the repo, whatever this machine happens to have installed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tools" / "check_deps.py"


def run_check(root):
    return subprocess.run(
        [sys.executable, str(CHECK), str(root)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def repo_copy(tmp_path):
    """The files git knows, copied to a folder that is not a checkout."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        src = ROOT / name
        if src.is_file() and not src.is_symlink():
            dst = tmp_path / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return tmp_path


def test_the_repo_as_it_is_passes():
    res = run_check(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "every R package and Python module" in res.stdout


def test_a_copy_passes_then_fails_on_an_r_package_setup_never_installs(repo_copy):
    assert run_check(repo_copy).returncode == 0
    script = repo_copy / "examples" / "quickstart.R"
    script.write_text(script.read_text() + "\nlibrary(somepkg)\n")
    res = run_check(repo_copy)
    assert res.returncode == 1
    assert "R package somepkg: add r-cran-somepkg to tools/apt-packages.txt" in res.stdout
    assert "examples/quickstart.R" in res.stdout


@pytest.mark.parametrize(
    "path, line, expected",
    [
        ("tools/setup.sh", 'Rscript -e "otherpkg::run()"', "R package otherpkg"),
        (".ci/run", "Rscript -e 'requireNamespace(\"cipkg\")'", "R package cipkg"),
        ("Makefile", "\tRscript -e 'library(makepkg)'", "R package makepkg"),
    ],
)
def test_shell_makefile_and_ci_are_read(repo_copy, path, line, expected):
    target = repo_copy / path
    target.write_text(target.read_text() + "\n" + line + "\n")
    res = run_check(repo_copy)
    assert res.returncode == 1 and expected in res.stdout, res.stdout


def test_description_suggests_is_read(repo_copy):
    desc = repo_copy / "rpackage" / "DESCRIPTION"
    desc.write_text(desc.read_text().replace("Suggests:\n", "Suggests:\n    suggestedpkg,\n"))
    res = run_check(repo_copy)
    assert res.returncode == 1
    assert "R package suggestedpkg" in res.stdout and "DESCRIPTION Suggests" in res.stdout


def test_an_undeclared_python_import_fails_and_a_declared_one_passes(repo_copy):
    module = repo_copy / "pybridge" / "hub.py"
    module.write_text(module.read_text() + "\nimport somemodule  # noqa\nimport sklearn.base\n")
    res = run_check(repo_copy)
    assert res.returncode == 1
    assert "Python module somemodule: declare somemodule in pyproject.toml" in res.stdout
    assert "declare scikit-learn" in res.stdout  # the import name is not the distribution's
    pyproject = repo_copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "dependencies = [\n", 'dependencies = [\n    "somemodule",\n    "scikit-learn",\n'
        )
    )
    assert run_check(repo_copy).returncode == 0
