"""Medians and ratios of the safetensors bench, from the result lines of bench_py.py/bench_r.R.

Usage: python report.py RESULTS_FILE
"""

import statistics
import sys
from collections import defaultdict

TARGET_RATIO = 1 / 3        # (a) safe_load_file vs (b) reticulate directly
TARGET_OPEN = 0.050         # seconds: safe_open + one tensor
TARGET_MEMORY = 2.5         # peak memory over result size

times, hwm, gcmax, size, slices = defaultdict(list), defaultdict(list), defaultdict(list), {}, []
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[:1] == ["slice"]:
        slices.append(float(parts[1]))
    if parts[:1] != ["result"]:
        continue
    mode, seconds = parts[1], float(parts[2])
    times[mode].append(seconds)
    if len(parts) > 3:
        hwm[mode].append(float(parts[3]))
        gcmax[mode].append(float(parts[4]))
        size[mode] = float(parts[5])

med = {m: statistics.median(v) for m, v in times.items()}
print(f"{'mode':<18}{'runs':>5}{'median s':>10}{'x floor':>9}{'x (b)':>8}{'VmHWM/result':>14}"
      f"{'gc max/result':>15}")
for mode in ["python", "hfbridge", "hfbridge_reversed", "reticulate", "fortran64", "readbin_aperm", "reversed", "open"]:
    if mode not in med:
        continue
    floor = med[mode] / med["python"] if "python" in med else float("nan")
    vs_b = med[mode] / med["reticulate"] if "reticulate" in med else float("nan")
    mem = statistics.median(hwm[mode]) / size[mode] if hwm.get(mode) else float("nan")
    g = statistics.median(gcmax[mode]) / size[mode] if gcmax.get(mode) else float("nan")
    print(f"{mode:<18}{len(times[mode]):>5}{med[mode]:>10.3f}{floor:>9.2f}{vs_b:>8.2f}{mem:>14.2f}"
          f"{g:>15.2f}")
if slices:
    print(f"safe_open 10-row slice of wte.weight: median {statistics.median(slices) * 1000:.1f} ms")

print("\ntargets")
if "hfbridge" in med and "reticulate" in med:
    ratio = med["hfbridge"] / med["reticulate"]
    print(f"  (a)/(b) = {ratio:.2f} (target <= {TARGET_RATIO:.2f}): "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT MET'}")
if "open" in med:
    print(f"  safe_open + one layer tensor = {med['open'] * 1000:.0f} ms (target <= "
          f"{TARGET_OPEN * 1000:.0f} ms): {'met' if med['open'] <= TARGET_OPEN else 'NOT MET'}")
if hwm.get("hfbridge"):
    mem = statistics.median(hwm["hfbridge"]) / size["hfbridge"]
    print(f"  peak memory of safe_load_file = {mem:.2f} x result (target <= {TARGET_MEMORY}): "
          f"{'met' if mem <= TARGET_MEMORY else 'NOT MET'}")
