#!/usr/bin/env bash
# Scale-out bench: embed N texts (default 20000) with all-MiniLM-L6-v2 three ways in one run:
# one process with 2 torch threads, multisession with 2 workers of 1 thread, and sequential
# chunks in one process; plus the model-load overhead per worker and the per-chunk overhead.
# Usage: bash bench/scale/run.sh [N_TEXTS] [ROUNDS]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
n=${1:-20000}
rounds=${2:-1}
texts="bench/data/tokenizer_texts_${n}.txt"
[ -f "$texts" ] || "$RETICULATE_PYTHON" bench/tokenizers/make_texts.py "$n" "$texts"
Rscript bench/scale/bench.R "$texts" "$rounds"
