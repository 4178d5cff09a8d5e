"""(b) pyarrow.parquet.read_table(path).to_pandas(), after one warm-up read."""

import resource
import sys
import time

import pyarrow.parquet as pq

path = sys.argv[1]
pq.read_table(path).to_pandas()
start = time.perf_counter()
df = pq.read_table(path).to_pandas()
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
size = df.memory_usage(deep=True).sum() / 2**20
print(f"result pandas {seconds:.3f} {rss:.0f} {size:.0f}")
