"""Does a bare machine get every package the repo uses? Reads the repo, not the machine.

A clean clone on a machine where a package was installed earlier passes every test even when the
set-up never installs that package; a bare Debian 12 machine then fails. So this reads the code:

- R: every package named by library(), require(), requireNamespace(), loadNamespace() or pkg::
  in R code, R Markdown, shell scripts, the Makefile and .ci/, and every package in the R
  package's DESCRIPTION (Depends, Imports, Suggests, LinkingTo), must be part of R itself or be
  listed as r-cran-<name> in tools/apt-packages.txt, which tools/setup.sh installs.
- Python: every top-level module imported by pybridge/, tests/, bench/ and tools/ must be in the
  standard library, be the repo's own (pybridge, or a module beside the importing file), or be
  declared in pyproject.toml (the dependencies or an extra).

Usage: python tools/check_deps.py [REPO]   (exit 1 with a list of what is missing)
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import tomllib

# The packages that ship with R itself (r-base-core); everything else comes from apt.
R_BASE = {
    "base", "compiler", "datasets", "graphics", "grDevices", "grid", "methods", "parallel",
    "splines", "stats", "stats4", "tcltk", "tools", "utils", "R",
}  # fmt: skip
R_SELF = "hfbridge"
R_NAME = r"([A-Za-z][A-Za-z0-9.]*[A-Za-z0-9])"
R_PATTERNS = [
    re.compile(r"\b(?:library|require|requireNamespace|loadNamespace)\(\s*[\"']?" + R_NAME),
    re.compile(r"(?<![A-Za-z0-9._$@:])" + R_NAME + r":::?[A-Za-z._]"),  # not CSS `:empty::after`
]
R_SUFFIXES = (".R", ".r", ".Rmd", ".sh", ".Rprofile")
PY_FOLDERS = ("pybridge/", "tests/", "bench/", "tools/")
# Import names whose distribution on PyPI is called something else.
PY_DISTRIBUTION = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "google": "protobuf",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
}
PY_SELF = "pybridge"
# Modules that come with a pinned dependency and are not declared on their own, each with why.
PY_CARRIED = {
    # huggingface_hub's HTTP client: pybridge only catches the exceptions huggingface_hub lets
    # through, so it must be the very one huggingface_hub==2.4.0 brings. (Declaring it would also
    # ask the Nix flake for a python3Packages.httpx2 that its pinned nixpkgs is not known to have.)
    "httpx2": "huggingface-hub",
}


def repo_files(root: str) -> list[str]:
    """The files git knows (tracked, or new and not ignored); every file outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted(p for p in set(out.splitlines()) if os.path.isfile(os.path.join(root, p)))
    except (subprocess.CalledProcessError, FileNotFoundError):
        skip = {".git", ".venv", ".rlib", "build", "__pycache__", "node_modules"}
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in skip]
            found += [os.path.relpath(os.path.join(folder, f), root) for f in files]
        return sorted(found)


def read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            return f.read()
    except (UnicodeDecodeError, OSError):
        return None


def is_r_code(path: str) -> bool:
    name = os.path.basename(path)
    return path.endswith(R_SUFFIXES) or name == "Makefile" or path.startswith(".ci/")


def strip_r_comments(text: str, path: str) -> str:
    if path.endswith(".Rmd"):
        return text
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())


def description_packages(root: str) -> dict[str, list[str]]:
    text = read(root, "rpackage/DESCRIPTION") or ""
    found: dict[str, list[str]] = {}
    for field in ("Depends", "Imports", "Suggests", "LinkingTo"):
        m = re.search(r"^" + field + r":(.*?)(?=^\S|\Z)", text, re.M | re.S)
        for item in m.group(1).split(",") if m else []:
            name = re.sub(r"\(.*\)", "", item).strip()
            if name:
                found.setdefault(name, []).append("rpackage/DESCRIPTION " + field)
    return found


def missing_r(root: str, files: list[str]) -> list[str]:
    apt = {
        line.strip()
        for line in (read(root, "tools/apt-packages.txt") or "").splitlines()
        if line.strip() and not line.startswith("#")
    }
    used = description_packages(root)
    for path in filter(is_r_code, files):
        text = read(root, path)
        for pattern in R_PATTERNS if text else []:
            for m in pattern.finditer(strip_r_comments(text, path)):
                used.setdefault(m.group(1), []).append(path)
    problems = []
    for name, where in sorted(used.items()):
        debian = "r-cran-" + name.lower()
        if name not in R_BASE and name != R_SELF and debian not in apt:
            places = ", ".join(sorted(set(where))[:3])
            problems.append(f"R package {name}: add {debian} to tools/apt-packages.txt ({places})")
    return problems


def normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared_python(root: str) -> set[str]:
    project = tomllib.loads(read(root, "pyproject.toml") or "").get("project", {})
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    names = {re.match(r"\s*([A-Za-z0-9._-]+)", r).group(1) for r in requirements}
    return {normalise(n) for n in names}


def imported_modules(text: str) -> set[str]:
    """Top-level names of absolute imports (relative ones are the package's own)."""
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def missing_python(root: str, files: list[str]) -> list[str]:
    declared = declared_python(root)
    own = {PY_SELF, "__future__"} | set(sys.stdlib_module_names)
    problems = []
    for path in files:
        if not (path.endswith(".py") and path.startswith(PY_FOLDERS)):
            continue
        folder = os.path.dirname(path)
        beside = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(root, folder) or ".")}
        try:
            modules = imported_modules(read(root, path) or "")
        except SyntaxError as e:
            problems.append(f"{path}: cannot be parsed ({e.msg}, line {e.lineno})")
            continue
        for module in sorted(modules - own - beside):
            if PY_CARRIED.get(module) in declared:
                continue
            distribution = normalise(PY_DISTRIBUTION.get(module, module))
            if distribution not in declared:
                problems.append(
                    f"Python module {module}: declare {distribution} in pyproject.toml ({path})"
                )
    return problems


def main(root: str = ".") -> int:
    files = repo_files(root)
    problems = missing_r(root, files) + missing_python(root, files)
    if problems:
        print("A bare machine would not get these packages:")
        print("\n".join("  " + p for p in problems))
        return 1
    print("check_deps: every R package and Python module the repo uses is installed by the set-up")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
