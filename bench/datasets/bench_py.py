"""(b) pyarrow.parquet.read_table(path).to_pandas() in Python, after one warm-up read; with
``nchar`` as second argument, then the string column's lengths (``.str.len()``) too."""

import resource
import sys
import time

import pyarrow.parquet as pq

path = sys.argv[1]
nchar = sys.argv[2:] == ["nchar"]


def read():
    df = pq.read_table(path).to_pandas()
    if nchar:
        df["nchar"] = df["text"].str.len()
    return df


read()
start = time.perf_counter()
df = read()
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
size = df.memory_usage(deep=True).sum() / 2**20
print(f"result {'pandas_nchar' if nchar else 'pandas'} {seconds:.3f} {rss:.0f} {size:.0f}")
