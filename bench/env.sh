# Sourced by every bench/*/run.sh: tools/env.sh (the repo root as the working directory, the
# venv and the R library), and $py, the venv's Python.
source "$(dirname "${BASH_SOURCE[0]}")/../tools/env.sh"
py=$RETICULATE_PYTHON
