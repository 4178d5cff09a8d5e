"""Python's side of the hub bench: hf_hub_download N times, each call timed.

Usage: python py_download.py N REPO_ID FILENAME REVISION...   (prints one JSON line)
HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE come from the environment, as for any user.
"""

import json
import statistics
import sys
import time

from huggingface_hub import hf_hub_download

n, repo_id, filename, revisions = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
out = {}
for revision in revisions:
    hf_hub_download(repo_id, filename, revision=revision)  # warm, as R's first call is
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        hf_hub_download(repo_id, filename, revision=revision)
        times.append(time.perf_counter() - t0)
    out[revision] = statistics.median(times)
print(json.dumps(out))
