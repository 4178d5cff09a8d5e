#!/usr/bin/env bash
# Every test: the dependency check, the linters, the R package through R CMD check (testthat
# runs inside it, through Rscript and reticulate, against a mirror its helper starts), then
# pytest. Called by `make test`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
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

echo "== R CMD check --as-cran (with testthat, the help examples and the vignettes)"
# Examples and vignettes must run for real here (hfbridge:::examples_ready() errors instead of
# showing them un-run), against the demo Hub it starts.
export HFBRIDGE_EXAMPLES_REQUIRED=true
# torch's compile cache lives in build/, not in the temporary folder --as-cran checks for
# detritus. The tiny models (pybridge.fixtures) stay in the shared temporary folder: built once
# per machine, so every run tests the same builds (a fresh build per checkout changed a tiny
# CLIP's ranking of two near-equal pictures). A first build there is a NOTE, not a failure.
export TORCHINDUCTOR_CACHE_DIR="$root/build/torchinductor"
.venv/bin/python -m pybridge.fixtures.demo build/demo-store >/dev/null
# No network: no CRAN incoming checks that need one (_R_CHECK_CRAN_INCOMING_REMOTE_), no time
# server (_R_CHECK_SYSTEM_CLOCK_), and an empty local package repository instead of CRAN's (for
# the cyclic dependency check). --no-manual: the PDF manual needs LaTeX, which the set-up does
# not install. CONTRIBUTING.md explains the NOTEs that remain.
rm -rf build/check && mkdir -p build/check build/empty-repo/src/contrib
: > build/empty-repo/src/contrib/PACKAGES
# The repository's path is made absolute here: rcmdcheck evaluates `repos` inside its check
# folder. A check that stops early (R CMD check exiting non-zero) may list no ERROR: its exit
# status fails the step too.
_R_CHECK_CRAN_INCOMING_REMOTE_=false _R_CHECK_SYSTEM_CLOCK_=false \
HFBRIDGE_EMPTY_REPO="file://$root/build/empty-repo" Rscript -e '
res <- rcmdcheck::rcmdcheck("rpackage", args = c("--as-cran", "--run-donttest", "--no-manual"),
                            build_args = "--no-manual", check_dir = "build/check",
                            repos = c(empty = Sys.getenv("HFBRIDGE_EMPTY_REPO")),
                            error_on = "warning")
print(res)
if (!identical(as.integer(res$status), 0L)) stop("R CMD check exited with status ", res$status)'

echo "== Nix flake, evaluated offline against nix/stub-nixpkgs"
bash tools/nix-check.sh

echo "== pytest"
.venv/bin/python -m pytest -q -m "${PYTEST_MARKERS:-}" tests
