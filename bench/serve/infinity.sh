#!/usr/bin/env bash
# hfbridge's /v1/embeddings against infinity-emb (a TEI-like embedding server from PyPI) on the
# same all-MiniLM-L6-v2 folder, the same client and the same load. Prints `result ...` lines with
# medians and the ratio ours/infinity.
#
# Not called by bench/serve/run.sh: the first run installs infinity-emb with the same torch as
# .venv into its own venv, build/infinity-venv (about 1.4 GB, a few minutes from a PyPI mirror);
# later runs reuse it. If it cannot be installed or started, this prints why and exits 0.
# Usage: bash bench/serve/infinity.sh [ROUNDS]
#
# Both servers run the model in float32 on the CPU with batches of 32 texts (hfbridge's embed
# default; infinity's --batch-size, also its default), without infinity's disk cache, telemetry,
# torch.compile or BetterTransformer (that needs the optimum extra, which is left out).
set -euo pipefail
source "$(dirname "$0")/../env.sh"
rounds=${1:-5}
version=0.0.78
venv=build/infinity-venv
log=build/infinity-logs
mkdir -p "$log"

skip() {
  echo "skip: infinity-emb $version could not be $1; the last lines of $2:"
  grep -E 'ERROR|Error|error' "$2" | tail -n 15 || tail -n 15 "$2"
  exit 0
}

if [ ! -x "$venv/bin/infinity_emb" ]; then
  torch_version=$("$py" -c 'import torch; print(torch.__version__)')
  echo "installing infinity-emb[server,torch]==$version and torch==$torch_version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" >"$log/install.log" 2>&1 || skip "given a venv" "$log/install.log"
  "$venv/bin/pip" install "torch==$torch_version" "infinity-emb[server,torch]==$version" \
    >>"$log/install.log" 2>&1 || { rm -rf "$venv"; skip installed "$log/install.log"; }
fi

"$py" bench/pipelines/make_data.py bench/data >/dev/null
texts=bench/data/pipeline_texts_2000.txt
minilm=$("$py" -c 'from pybridge.fixtures import models; print(models.minilm_folder())')
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait' EXIT

DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 "$venv/bin/infinity_emb" v2 --model-id "$minilm" \
  --host 127.0.0.1 --port "$port" --url-prefix /v1 --engine torch --device cpu --dtype float32 \
  --batch-size 32 --no-vector-disk-cache --no-compile --no-bettertransformer \
  --log-level warning >"$log/infinity.log" 2>&1 &
pids+=($!)
PYTHONUNBUFFERED=1 "$py" -m pybridge.serve --model "feature-extraction=$minilm" --port 0 \
  --max-inputs 2000 --max-body-bytes 20000000 >"$log/ours.log" 2>&1 &
pids+=($!)

infinity_url=http://127.0.0.1:$port
ours_url=
for _ in $(seq 300); do
  [ -n "$ours_url" ] || ours_url=$(sed -n 's/.* ready at //p' "$log/ours.log")
  curl -sf "$infinity_url/health" >/dev/null && [ -n "$ours_url" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || skip started "$log/infinity.log"
  kill -0 "${pids[1]}" 2>/dev/null || { echo "hfbridge's server exited:"; cat "$log/ours.log"; exit 1; }
  sleep 1
done
curl -sf "$infinity_url/health" >/dev/null || skip "started in 300 s" "$log/infinity.log"
[ -n "$ours_url" ] || { echo "hfbridge's server did not start:"; cat "$log/ours.log"; exit 1; }

echo "infinity-emb $version at $infinity_url, hfbridge at $ours_url; $rounds rounds"
"$py" bench/serve/infinity_bench.py "$ours_url" "$infinity_url" "$texts" "$rounds"
