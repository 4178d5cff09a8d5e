"""The floor: Python's safetensors.numpy.load_file alone, RUNS times in one process.

Usage: python bench_py.py PATH RUNS [TAG]. Prints "result [TAG:]python SECONDS - - - CPU_SECONDS"
per run.
"""

import sys
import time

from safetensors.numpy import load_file

path, runs = sys.argv[1], int(sys.argv[2])
tag = sys.argv[3] + ":" if len(sys.argv) > 3 else ""
load_file(path)  # warm the page cache like the R runs find it
for _ in range(runs):
    start, cpu = time.perf_counter(), time.process_time()
    tensors = load_file(path)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"result {tag}python {wall:.4f} - - - {cpu:.4f}")
    del tensors
