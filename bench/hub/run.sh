#!/usr/bin/env bash
# Hub bench: N cached downloads of one file from R (hub_download) and from Python
# (huggingface_hub.hf_hub_download), with a pinned commit, with "main", and offline, against a
# local mirror that counts the requests. Prints medians, ratios and the request counts.
# Usage: bash bench/hub/run.sh [N]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
Rscript bench/hub/bench.R "${1:-200}"
