# Sourced by tools/test.sh, tools/build-site.sh and bench/env.sh: the repo root as the working
# directory ($root), and the venv and R library that `make setup` installs, unless
# RETICULATE_PYTHON and R_LIBS name others.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export RETICULATE_PYTHON=${RETICULATE_PYTHON:-$root/.venv/bin/python}
export R_LIBS=${R_LIBS:-$root/.rlib}
export HF_HUB_DISABLE_TELEMETRY=1
export TZ=${TZ:-UTC}  # R asks timedatectl otherwise, which warns on machines without systemd
