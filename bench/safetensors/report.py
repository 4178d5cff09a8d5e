"""Medians and ratios of the safetensors bench, from the result lines of bench_py.py/bench_r.R.

Usage: python report.py RESULTS_FILE
Modes may carry a file tag ("small:hfbridge"); untagged modes are the GPT-2-shaped file. Ratios
are taken within one file. Wall-clock medians decide the targets; CPU medians (user + system of
the measuring process) are printed beside them, because other processes on a shared machine
stretch wall time. The warm modes are loads in one long R session (bench_r.R warm).
"""

import statistics
import sys
from collections import defaultdict

TARGET_RATIO = 1 / 3  # (a) safe_load_file vs (b) reticulate directly, fresh and warm
TARGET_OPEN = 0.050  # seconds: safe_open + one tensor
TARGET_MEMORY = 2.5  # peak memory over result size
MODES = [
    "python",
    "hfbridge",
    "hfbridge_reversed",
    "reticulate",
    "fortran64",
    "readbin_aperm",
    "reversed",
    "open",
    "warm_hfbridge",
    "warm_reticulate",
]
NAN = float("nan")


def number(text):
    return NAN if text == "-" else float(text)


def split_tag(mode):
    return tuple(mode.split(":", 1)) if ":" in mode else ("gpt2", mode)


wall, cpu, hwm, gcmax, size, slices = (
    defaultdict(list),
    defaultdict(list),
    defaultdict(list),
    defaultdict(list),
    {},
    [],
)
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[:1] == ["slice"]:
        slices.append(float(parts[1]))
    if parts[:1] != ["result"]:
        continue
    key = split_tag(parts[1])
    wall[key].append(float(parts[2]))
    if len(parts) > 5 and parts[3] != "-":
        hwm[key].append(number(parts[3]))
        gcmax[key].append(number(parts[4]))
        size[key] = number(parts[5])
    if len(parts) > 6:
        cpu[key].append(number(parts[6]))

med = {k: statistics.median(v) for k, v in wall.items()}
cmed = {k: statistics.median(v) for k, v in cpu.items()}


def ratio(table, f, a, b):
    return table[(f, a)] / table[(f, b)] if (f, a) in table and (f, b) in table else NAN


def baseline(mode):
    return "warm_reticulate" if mode.startswith("warm_") else "reticulate"


files = sorted({f for f, _ in med}, key=lambda f: (f != "gpt2", f))
for f in files:
    print(f"\n[{f}]")
    print(
        f"{'mode':<18}{'runs':>5}{'wall s':>8}{'cpu s':>8}{'wall/(b)':>10}{'cpu/(b)':>9}"
        f"{'wall/floor':>11}{'VmHWM/result':>14}{'gc max/result':>15}"
    )
    for mode in MODES:
        k = (f, mode)
        if k not in med:
            continue
        mem = statistics.median(hwm[k]) / size[k] if hwm.get(k) else NAN
        g = statistics.median(gcmax[k]) / size[k] if gcmax.get(k) else NAN
        print(
            f"{mode:<18}{len(wall[k]):>5}{med[k]:>8.3f}{cmed.get(k, NAN):>8.3f}"
            f"{ratio(med, f, mode, baseline(mode)):>10.2f}"
            f"{ratio(cmed, f, mode, baseline(mode)):>9.2f}"
            f"{ratio(med, f, mode, 'python'):>11.2f}{mem:>14.2f}{g:>15.2f}"
        )
if slices:
    print(
        f"\nsafe_open 10-row slice of wte.weight: median {statistics.median(slices) * 1000:.1f} ms"
    )
print(
    "(gc max is R's heap, which holds no result of safe_load_file of 1 MiB or more; VmHWM is "
    "what was resident, the file's mapped pages included)"
)

print("\ntargets")
for f in files:
    for ours, theirs, label in (
        ("hfbridge", "reticulate", "fresh process"),
        ("warm_hfbridge", "warm_reticulate", "warm session"),
    ):
        r = ratio(med, f, ours, theirs)
        if r == r:
            print(
                f"  [{f}] {label}: (a)/(b) wall = {r:.2f} (target <= {TARGET_RATIO:.2f}): "
                f"{'met' if r <= TARGET_RATIO else 'NOT MET'}; cpu = "
                f"{ratio(cmed, f, ours, theirs):.2f}"
            )
if ("gpt2", "open") in med:
    k = ("gpt2", "open")
    print(
        f"  safe_open + one layer tensor = {med[k] * 1000:.0f} ms wall, "
        f"{cmed.get(k, NAN) * 1000:.0f} ms cpu (target <= {TARGET_OPEN * 1000:.0f} "
        f"ms): {'met' if med[k] <= TARGET_OPEN else 'NOT MET'}"
    )
if hwm.get(("gpt2", "hfbridge")):
    k = ("gpt2", "hfbridge")
    mem = statistics.median(hwm[k]) / size[k]
    print(
        f"  peak memory of safe_load_file = {mem:.2f} x result (target <= {TARGET_MEMORY}): "
        f"{'met' if mem <= TARGET_MEMORY else 'NOT MET'}"
    )
