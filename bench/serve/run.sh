#!/usr/bin/env bash
# Inference server bench: the same work through a local server (python -m pybridge.serve) and
# in process, side by side in one run. Prints medians and ratios.
# Usage: bash bench/serve/run.sh [ROUNDS] [SCALE_TEXTS]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
"$py" bench/pipelines/make_data.py bench/data >/dev/null
"$py" bench/serve/bench.py bench/data "${1:-5}"
texts=bench/data/tokenizer_texts_${2:-20000}.txt
[ -f "$texts" ] || "$py" bench/tokenizers/make_texts.py "${2:-20000}" "$texts"
Rscript bench/serve/scale.R "$texts" 4
