#!/usr/bin/env bash
# Chat bench: hfbridge's hf_chat() from R against Python's own clients on the same local server
# and model (the tiny chat fixture), side by side in one run: per request, time to the first
# streamed chunk, chunks per second, and local hf_chat(model) against transformers' generate().
# Prints medians and ratios. Usage: bash bench/chat/run.sh [ROUNDS] [PROCESSES] [SERVER_ROUNDS]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
Rscript bench/chat/bench.R "${1:-60}" "${2:-9}" "${3:-100}"
