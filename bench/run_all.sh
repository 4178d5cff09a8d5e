#!/usr/bin/env bash
# Runs every bench/*/run.sh that exists, one after the other; a failing bench is reported and
# the others still run. Exit status: the number of failed benches (0 when all ran).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
failed=0
for script in bench/*/run.sh; do
  [ -f "$script" ] || continue
  echo "== $script"
  if ! bash "$script"; then
    echo "!! $script failed"
    failed=$((failed + 1))
  fi
done
exit "$failed"
