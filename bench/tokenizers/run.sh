#!/usr/bin/env bash
# Tokenizer bench: 100k texts of 5 to 40 words drawn with a fixed seed from the all-MiniLM
# vocabulary; R ids (ragged and padded) against Python's encode_batch and reticulate directly.
# Usage: bash bench/tokenizers/run.sh [N_TEXTS] [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export RETICULATE_PYTHON=${RETICULATE_PYTHON:-$root/.venv/bin/python}
export R_LIBS=${R_LIBS:-$root/.rlib}
n=${1:-100000}
runs=${2:-3}
texts="bench/data/tokenizer_texts_${n}.txt"
[ -f "$texts" ] || "$RETICULATE_PYTHON" bench/tokenizers/make_texts.py "$n" "$texts"
Rscript bench/tokenizers/bench.R "$texts" "$runs"
