#!/usr/bin/env bash
# Every test: the dependency check, the linters, the R package through R CMD check (testthat
# runs inside it, through Rscript and reticulate, against a mirror its helper starts), then
# pytest. Called by `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RETICULATE_PYTHON=${RETICULATE_PYTHON:-$root/.venv/bin/python}
export R_LIBS=${R_LIBS:-$root/.rlib}
export HF_HUB_DISABLE_TELEMETRY=1
export TZ=${TZ:-UTC}  # R asks timedatectl otherwise, which warns on machines without systemd
export HFBRIDGE_REPO="$root"
export HFBRIDGE_REQUIRE_REFERENCE=1  # the transformers 4 pipelines that tools/setup.sh installs

# setup.sh has just run roxygen: with R/ as committed, man/ and NAMESPACE must be as committed too.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && git diff --quiet HEAD -- rpackage/R &&
   ! git diff --quiet HEAD -- rpackage/man rpackage/NAMESPACE; then
  echo "rpackage/man or NAMESPACE differ from what roxygen makes of R/: commit them" >&2
  git diff --stat HEAD -- rpackage/man rpackage/NAMESPACE >&2
  exit 1
fi

echo "== Dependencies: every package the repo names is installed by tools/setup.sh"
.venv/bin/python tools/check_deps.py

echo "== Lint: ruff (Python) and lintr (R)"
bash tools/lint.sh

echo "== R CMD check (with testthat)"
rm -rf build/check && mkdir -p build/check
Rscript -e 'res <- rcmdcheck::rcmdcheck("rpackage", args = c("--no-manual"), build_args = "--no-manual", check_dir = "build/check", error_on = "warning"); print(res)'

echo "== Nix flake, evaluated offline against nix/stub-nixpkgs"
bash tools/nix-check.sh

echo "== pytest"
.venv/bin/python -m pytest -q -m "${PYTEST_MARKERS:-}" tests
