#!/usr/bin/env bash
# Pipelines bench on 2000 texts (log-normal lengths, median 12 words), all-MiniLM-L6-v2 (384-d),
# batch size 32:
#   (a) embed_text() from R; (b) the floor: length-sorted batches with mean pooling in Python;
#   (c) transformers' feature-extraction pipeline through reticulate; (d) sentence-transformers;
#   and pipeline("text-classification") from R against the same transformers pipeline in Python
#   (a MiniLM-sized classifier, batch_size = 32 in both).
# Each measurement runs in a fresh process after a warm-up on 16 texts (loading excluded); the
# modes are interleaved in each round. RUNS rounds (default 3; RUNS=1 for a quick look), MODES
# to pick modes. Prints medians and ratios. TORCH_THREADS sets torch's threads in every mode.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
if [ -n "${TORCH_THREADS:-}" ]; then export OMP_NUM_THREADS=$TORCH_THREADS; fi
runs=${RUNS:-3}
modes=${MODES:-"floor embed st fe_pipeline clf_py clf_r"}
data=$root/bench/data
results=$(mktemp)
trap 'rm -f "$results"' EXIT

"$py" bench/pipelines/make_data.py "$data" >/dev/null
texts=$data/pipeline_texts_2000.txt
for round in $(seq "$runs"); do
  echo "-- round $round"
  for mode in $modes; do
    case $mode in
      floor|st|clf_py) "$py" bench/pipelines/bench_py.py "$mode" "$texts" "$data" 2>/dev/null ;;
      *) Rscript bench/pipelines/bench_r.R "$mode" "$texts" "$data" 2>/dev/null ;;
    esac | grep '^result' | tee -a "$results"
  done
done
echo
"$py" bench/pipelines/report.py "$results" "$data"
