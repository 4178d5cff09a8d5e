#!/usr/bin/env bash
# Fine-tuning bench: the tiny fixture BERT classifier trained on the toy set (two disjoint
# vocabularies; 800 training and 200 eval texts, batch size 16, 2 epochs = 100 steps, an
# evaluation per epoch, the model saved at the end):
#   (r)  fine_tune() from R (the Trainer in pybridge's worker thread, stepped from R);
#   (py) the same run as a plain Python Trainer script (datasets + Trainer + save_model);
#   (pybridge) pybridge.train.fine_tune() from Python: the R/pybridge ratio is the bridge's cost.
# Each measurement runs in a fresh process after a warm-up run on 32 texts (imports excluded,
# model loading and tokenization included); the two are interleaved in each round. RUNS rounds
# (default 5). TORCH_THREADS (default 1: tiny models lose on a shared 2-core machine) sets
# torch's threads in all. Prints medians and the ratios R / Python (target <= 1.05).
set -euo pipefail
source "$(dirname "$0")/../env.sh"
export OMP_NUM_THREADS=${TORCH_THREADS:-1}
runs=${RUNS:-5}
results=$(mktemp)
trap 'rm -f "$results"' EXIT

"$py" -c "from pybridge.fixtures import task_models; task_models.ensure(names=['bert'])" \
  >/dev/null 2>&1
for round in $(seq "$runs"); do
  echo "-- round $round"
  "$py" bench/finetune/bench_py.py py 2>/dev/null | grep '^result' | tee -a "$results"
  "$py" bench/finetune/bench_py.py pybridge 2>/dev/null | grep '^result' | tee -a "$results"
  Rscript bench/finetune/bench_r.R 2>/dev/null | grep '^result' | tee -a "$results"
done
echo
"$py" bench/finetune/report.py "$results"
