#!/usr/bin/env bash
# Safetensors bench on a GPT-2-shaped 497 MB F32 file (written once to bench/data/):
#   (a) safe_load_file() from R; (b) reticulate directly: import("safetensors.numpy")$load_file;
#   (c) the floor: Python's load_file alone; plus other layouts tried, and safe_open + one tensor.
# Every R load runs in a fresh process (peak memory per load); modes are interleaved per round.
# RUNS (default 3) rounds; MODES to pick modes. Prints medians and ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export RETICULATE_PYTHON=${RETICULATE_PYTHON:-$root/.venv/bin/python}
export R_LIBS=${R_LIBS:-$root/.rlib}
py=$RETICULATE_PYTHON
runs=${RUNS:-3}
modes=${MODES:-"hfbridge reticulate hfbridge_reversed fortran64 readbin_aperm reversed open"}
data=$root/bench/data/gpt2_f32.safetensors
results=$(mktemp)
trap 'rm -f "$results"' EXIT

"$py" bench/safetensors/make_data.py "$data"
"$py" bench/safetensors/bench_py.py "$data" "$runs" | tee -a "$results"
for round in $(seq "$runs"); do
  for mode in $modes; do
    Rscript bench/safetensors/bench_r.R "$mode" "$data" | tee -a "$results"
  done
done
echo
"$py" bench/safetensors/report.py "$results"
