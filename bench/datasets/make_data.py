"""The bench's table: a 1M-row, 6-column parquet (int, double, string, ClassLabel, bool, list)
with datasets' features, laid out as a dataset repo folder under bench/data/."""

import os
import sys

from pybridge.fixtures.datasets import write_bench_parquet

root = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
path = os.path.join(root, f"datasets_{rows}", "data", "train-00000-of-00001.parquet")
if not os.path.exists(path):
    write_bench_parquet(path, rows)
print(path)
