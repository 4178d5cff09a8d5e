"""Medians and ratios of the safetensors bench, from the result lines of bench_py.py/bench_r.R.

Usage: python report.py RESULTS_FILE
Wall-clock medians decide the targets; CPU medians (user + system of the measuring process)
are printed beside them, because other processes on a shared machine stretch wall time.
"""

import statistics
import sys
from collections import defaultdict

TARGET_RATIO = 1 / 3        # (a) safe_load_file vs (b) reticulate directly
TARGET_OPEN = 0.050         # seconds: safe_open + one tensor
TARGET_MEMORY = 2.5         # peak memory over result size
MODES = ["python", "hfbridge", "hfbridge_reversed", "reticulate", "fortran64", "readbin_aperm",
         "reversed", "open"]


def number(text):
    return float("nan") if text == "-" else float(text)


wall, cpu, hwm, gcmax, size, slices = (defaultdict(list), defaultdict(list), defaultdict(list),
                                       defaultdict(list), {}, [])
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[:1] == ["slice"]:
        slices.append(float(parts[1]))
    if parts[:1] != ["result"]:
        continue
    mode = parts[1]
    wall[mode].append(float(parts[2]))
    if len(parts) > 5 and parts[3] != "-":
        hwm[mode].append(number(parts[3]))
        gcmax[mode].append(number(parts[4]))
        size[mode] = number(parts[5])
    if len(parts) > 6:
        cpu[mode].append(number(parts[6]))

med = {m: statistics.median(v) for m, v in wall.items()}
cmed = {m: statistics.median(v) for m, v in cpu.items()}


def ratio(table, a, b):
    return table[a] / table[b] if a in table and b in table else float("nan")


print(f"{'mode':<18}{'runs':>5}{'wall s':>8}{'cpu s':>8}{'wall/(b)':>10}{'cpu/(b)':>9}"
      f"{'wall/floor':>11}{'VmHWM/result':>14}{'gc max/result':>15}")
for mode in MODES:
    if mode not in med:
        continue
    mem = statistics.median(hwm[mode]) / size[mode] if hwm.get(mode) else float("nan")
    g = statistics.median(gcmax[mode]) / size[mode] if gcmax.get(mode) else float("nan")
    print(f"{mode:<18}{len(wall[mode]):>5}{med[mode]:>8.3f}{cmed.get(mode, float('nan')):>8.3f}"
          f"{ratio(med, mode, 'reticulate'):>10.2f}{ratio(cmed, mode, 'reticulate'):>9.2f}"
          f"{ratio(med, mode, 'python'):>11.2f}{mem:>14.2f}{g:>15.2f}")
if slices:
    print(f"safe_open 10-row slice of wte.weight: median {statistics.median(slices) * 1000:.1f} ms")
print("(gc max counts the untouched heap reservation of safe_load_file; VmHWM is what was "
      "resident, the file's mapped pages included)")

print("\ntargets")
if "hfbridge" in med and "reticulate" in med:
    r = ratio(med, "hfbridge", "reticulate")
    print(f"  (a)/(b) wall = {r:.2f} (target <= {TARGET_RATIO:.2f}): "
          f"{'met' if r <= TARGET_RATIO else 'NOT MET'}; cpu = "
          f"{ratio(cmed, 'hfbridge', 'reticulate'):.2f}")
if "open" in med:
    print(f"  safe_open + one layer tensor = {med['open'] * 1000:.0f} ms wall, "
          f"{cmed.get('open', float('nan')) * 1000:.0f} ms cpu (target <= {TARGET_OPEN * 1000:.0f} "
          f"ms): {'met' if med['open'] <= TARGET_OPEN else 'NOT MET'}")
if hwm.get("hfbridge"):
    mem = statistics.median(hwm["hfbridge"]) / size["hfbridge"]
    print(f"  peak memory of safe_load_file = {mem:.2f} x result (target <= {TARGET_MEMORY}): "
          f"{'met' if mem <= TARGET_MEMORY else 'NOT MET'}")
