#!/usr/bin/env bash
# Installs whatever is missing, idempotently: Debian's R packages, the repo's venv with pybridge
# (editable) and its pinned stack, and the R package into the repo-local library .rlib.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

missing=()
while read -r pkg; do
  [ -z "$pkg" ] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < tools/apt-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || { echo "setup: creating .venv"; "$python" -m venv .venv; }
stamp=.venv/.pybridge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing pybridge and its pinned stack into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[models,test]'
  touch "$stamp"
fi

# transformers 4, beside the venv, as the tests' reference for the pipelines transformers 5 removed
ref=.venv/transformers4
refstamp=$ref/.installed
if [ ! -f "$refstamp" ] || [ tests/reference/transformers4.txt -nt "$refstamp" ]; then
  echo "setup: installing the transformers 4 reference into $ref"
  rm -rf "$ref"
  .venv/bin/python -m pip install -q --no-deps --target "$ref" -r tests/reference/transformers4.txt
  touch "$refstamp"
fi

mkdir -p .rlib
rstamp=.rlib/.hfbridge-installed
if [ ! -f "$rstamp" ] || [ -n "$(find rpackage pybridge pyproject.toml -newer "$rstamp" -type f -print -quit)" ]; then
  echo "setup: documenting and installing the R package into .rlib"
  R_LIBS=.rlib Rscript -e 'roxygen2::roxygenise("rpackage")' >/dev/null
  R_LIBS=.rlib R CMD INSTALL --no-multiarch -l .rlib rpackage >/dev/null
  touch "$rstamp"
fi
