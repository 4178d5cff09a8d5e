#!/usr/bin/env bash
# Datasets bench: a 1M-row, 6-column parquet (int, double, string, ClassLabel, bool, list)
#   (a) hub_dataset() from R, the file in the HF cache of a local mirror (one listing request);
#   (b) pyarrow.parquet.read_table(path).to_pandas() in Python;
#   (c) the same read through reticulate by hand (to_pylist() per column) into an R data.frame.
# hub_dataset() reads strings lazily, as pandas 3 does (both keep them in arrow's buffers until
# used), so (a) and (b) are also timed with a first use of every string: nchar() in R,
# .str.len() in pandas (modes *_nchar).
# Each measurement is a fresh process after one warm-up read; the modes are interleaved in each
# round. RUNS rounds (default 3), ROWS rows (default 1000000). Prints medians, ratios, the
# process's peak RSS and the result's size.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
runs=${RUNS:-3}
rows=${ROWS:-1000000}
data=$root/bench/data
results=$(mktemp)
store=$(mktemp -d)
trap 'rm -rf "$results" "$store"; [ -n "${mirror_pid:-}" ] && kill "$mirror_pid" 2>/dev/null' EXIT

path=$("$py" bench/datasets/make_data.py "$data" "$rows")
"$py" -c "import sys; from pybridge.mirror import publish_folder; \
publish_folder(sys.argv[1], 'bench/datasets', sys.argv[2], 'dataset')" "$store" \
  "$(dirname "$(dirname "$path")")"
"$py" -m pybridge.mirror serve --root "$store" > "$store.url" 2>/dev/null &
mirror_pid=$!
for _ in $(seq 100); do grep -q serving "$store.url" 2>/dev/null && break; sleep 0.1; done
export HF_ENDPOINT=$(awk '{print $NF}' "$store.url")
export HF_HOME=$data/datasets_hf_home
rm -f "$store.url"

for round in $(seq "$runs"); do
  echo "-- round $round"
  for mode in hub_dataset pandas hub_dataset_nchar pandas_nchar reticulate; do
    case $mode in
      pandas) "$py" bench/datasets/bench_py.py "$path" ;;
      pandas_nchar) "$py" bench/datasets/bench_py.py "$path" nchar ;;
      *) Rscript bench/datasets/bench_r.R "$mode" "$path" 2>/dev/null ;;
    esac | grep '^result' | tee -a "$results"
  done
done
echo
awk '
  { t[$2] = t[$2] " " $3; m[$2] = $4; s[$2] = $5 }
  function median(list,   a, n, i, j, x) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (k in t) med[k] = median(t[k])
    printf "%-18s %8s %10s %10s\n", "mode", "median_s", "peak_MB", "result_MB"
    for (k in t) printf "%-18s %8.3f %10s %10s\n", k, med[k], m[k], s[k]
    printf "\nhub_dataset / pandas      = %.2fx (target <= 1.3x)\n", med["hub_dataset"] / med["pandas"]
    printf "  with nchar() / .str.len() of every string: %.2fx\n", med["hub_dataset_nchar"] / med["pandas_nchar"]
    printf "reticulate / hub_dataset  = %.2fx (target >= 3x)\n", med["reticulate"] / med["hub_dataset"]
  }' "$results"
