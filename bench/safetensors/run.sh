#!/usr/bin/env bash
# Safetensors bench on a GPT-2-shaped 497 MB F32 file and a small 84 MB file of two F32 matrices
# (both written once to bench/data/):
#   (a) safe_load_file() from R; (b) reticulate directly: import("safetensors.numpy")$load_file;
#   (c) the floor: Python's load_file alone; plus other layouts tried, and safe_open + one tensor.
# Every R load runs in a fresh process (peak memory per load), except mode "warm": (a) and (b)
# in turn in one long R session, with gc() before each load (WARM_ROUNDS loads of each).
# Modes are interleaved per round. RUNS (default 3) rounds; MODES and SMALL_MODES pick the
# modes for each file; RESULTS keeps the raw result lines in that file. Prints medians and
# ratios per file.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
runs=${RUNS:-3}
modes=${MODES:-"hfbridge reticulate hfbridge_reversed fortran64 readbin_aperm reversed open warm"}
small_modes=${SMALL_MODES:-"hfbridge reticulate warm"}
data=$root/bench/data/gpt2_f32.safetensors
small=$root/bench/data/two_f32.safetensors
results=${RESULTS:-$(mktemp)}
[ -n "${RESULTS:-}" ] || trap 'rm -f "$results"' EXIT

"$py" bench/safetensors/make_data.py "$data"
"$py" bench/safetensors/make_data.py "$small" small
"$py" bench/safetensors/bench_py.py "$data" "$runs" | tee -a "$results"
"$py" bench/safetensors/bench_py.py "$small" "$runs" small | tee -a "$results"
for round in $(seq "$runs"); do
  for mode in $modes; do
    Rscript bench/safetensors/bench_r.R "$mode" "$data" | tee -a "$results"
  done
  for mode in $small_modes; do
    Rscript bench/safetensors/bench_r.R "$mode" "$small" small | tee -a "$results"
  done
done
echo
"$py" bench/safetensors/report.py "$results"
