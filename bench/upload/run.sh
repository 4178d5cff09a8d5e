#!/usr/bin/env bash
# Upload bench: a 500 MB folder (one large file and many small ones) uploaded to a local mirror
# with hub_upload_folder() from R and with HfApi.upload_folder in Python, rounds interleaved in
# one run. Prints medians and the ratio R / Python.
# Usage: bash bench/upload/run.sh [ROUNDS] [TOTAL_MB]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
Rscript bench/upload/bench.R "${1:-3}" "${2:-500}"
