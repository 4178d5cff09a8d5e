#!/usr/bin/env bash
# Tokenizer benches, on texts of 5 to 40 words drawn with a fixed seed from the all-MiniLM
# vocabulary:
# - bench.R, 100k texts: R ids (ragged and padded) against Python's encode_batch and reticulate
#   directly;
# - bench_encodings.R, 20k texts: the seeds' form ($encode_batch() and lapply $ids) against
#   Python's encode_batch with every field read.
# Usage: bash bench/tokenizers/run.sh [N_TEXTS] [RUNS] [N_TEXTS_ENCODINGS] [RUNS_ENCODINGS]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
texts_of() {
  local file="bench/data/tokenizer_texts_$1.txt"
  [ -f "$file" ] || "$RETICULATE_PYTHON" bench/tokenizers/make_texts.py "$1" "$file" >/dev/null
  echo "$file"
}
Rscript bench/tokenizers/bench.R "$(texts_of "${1:-100000}")" "${2:-3}"
Rscript bench/tokenizers/bench_encodings.R "$(texts_of "${3:-20000}")" "${4:-5}"
