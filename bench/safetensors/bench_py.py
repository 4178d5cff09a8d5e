"""The floor: Python's safetensors.numpy.load_file alone, RUNS times in one process.

Usage: python bench_py.py PATH RUNS. Prints "result python SECONDS" per run.
"""

import sys
import time

from safetensors.numpy import load_file

path, runs = sys.argv[1], int(sys.argv[2])
load_file(path)  # warm the page cache like the R runs find it
for _ in range(runs):
    start = time.perf_counter()
    tensors = load_file(path)
    print(f"result python {time.perf_counter() - start:.4f}")
    del tensors
