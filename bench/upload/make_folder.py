"""Write the bench folder: one large binary file (LFS) and many small text files (regular)."""

import os
import sys

folder, total_mb = sys.argv[1], int(sys.argv[2])
small_n, small_kb = 500, 100  # 50 MB of small files, sent inline in the commit
os.makedirs(os.path.join(folder, "shards"), exist_ok=True)
large = total_mb * 2**20 - small_n * small_kb * 1024
with open(os.path.join(folder, "model.safetensors"), "wb") as fh:
    left = large
    while left:
        chunk = os.urandom(min(left, 16 * 2**20))
        fh.write(chunk)
        left -= len(chunk)
line = "".join(chr(97 + i % 26) for i in range(99)) + "\n"
for i in range(small_n):
    with open(os.path.join(folder, "shards", f"part-{i:04d}.txt"), "w") as fh:
        fh.write(f"{i}\n" + line * (small_kb * 1024 // 100 - 1))
