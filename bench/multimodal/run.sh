#!/usr/bin/env bash
# Images and audio benches (issue 24): hfbridge from R against the same pipeline in Python, side
# by side in one run; each prints medians and the ratio R / Python. ROUNDS (default 3).
set -euo pipefail
source "$(dirname "$0")/../env.sh"
rounds=${ROUNDS:-3}
Rscript bench/multimodal/text_to_image.R "$rounds" "${STEPS:-5}"
Rscript bench/multimodal/images.R "$rounds" "${IMAGES:-500}"  # images (issue 24)
Rscript bench/multimodal/asr.R "$rounds" "${ASR_SECONDS:-300}"  # speech to text (issue 24)
