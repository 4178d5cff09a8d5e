"""How much memory this process may use, and the check made before a large result is allocated.

A result whose size is known beforehand (a padded token matrix, a tensor read into R) is
refused with :class:`~pybridge.errors.MemoryLimitError` when it cannot fit, instead of letting
the allocation fail in R ("cannot allocate vector") or the kernel's OOM killer end the process.

Both views count, and the smaller wins: the machine's (``MemAvailable``, which includes the file
cache the kernel can drop) and the cgroup's (its limit less its usage, plus its inactive file
cache), since in a container the machine's memory is not the process's. The cgroup files are
the container's own view (cgroup v2 ``memory.max``, or v1 ``memory/memory.limit_in_bytes``).
"""

from __future__ import annotations

import functools
import os
from typing import Optional, Tuple

from . import errors

SMALL = 1 << 20  # below this, no check: an allocation that fails here fails everywhere anyway
_NO_LIMIT = 1 << 62  # cgroup v1 writes about 2^63 for "no limit"
PROC, CGROUP = "/proc", "/sys/fs/cgroup"


@functools.lru_cache(maxsize=None)
def total() -> int:
    """This machine's memory, or its cgroup's limit when smaller; 8 GiB when unknown."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        memory = 8 * 2**30
    limit = _cgroup(CGROUP)
    return min(memory, limit[0]) if limit else memory


def available(proc: str = PROC, cgroup: str = CGROUP) -> Optional[float]:
    """The bytes this process may still allocate (a float: R reads Python ints beyond 2^31
    wrongly), or None when neither view can be read."""
    free = _available(proc, cgroup)[0]
    return None if free is None else float(free)


def _available(proc, cgroup) -> Tuple[Optional[int], str]:
    machine = _mem_available(proc)
    limit = _cgroup(cgroup)
    if limit is None:
        return machine, "available on this machine"
    free = max(0, limit[0] - limit[1])
    if machine is None or free < machine:
        return free, "left under this cgroup's memory limit"
    return machine, "available on this machine"


def check(need, subject: str, advice: str, **fields) -> None:
    """Raises MemoryLimitError when ``need`` bytes are more than what is available; ``subject``
    starts the message ("Tensor 'x' of f.safetensors"), ``advice`` ends it."""
    need = int(need)
    if need < SMALL:
        return
    free, where = _available(PROC, CGROUP)
    if free is None or need <= free:
        return
    raise errors.MemoryLimitError(
        f"{subject} needs about {size(need)} of memory, but only {size(free)} is {where}. {advice}",
        bytes=float(need),
        limit=float(free),
        **fields,
    )


def size(n) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _mem_available(proc) -> Optional[int]:
    try:
        with open(os.path.join(proc, "meminfo"), encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # an old kernel without MemAvailable: the free pages alone
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup(root) -> Optional[Tuple[int, int]]:
    """(limit, usage less the inactive file cache) of the cgroup, or None without a limit."""
    for limit_file, usage_file, cache_key in (
        ("memory.max", "memory.current", "inactive_file"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "total_inactive_file"),
    ):
        limit = _read_int(os.path.join(root, limit_file))
        if limit is None or limit >= _NO_LIMIT:
            continue
        usage = _read_int(os.path.join(root, usage_file)) or 0
        stat = os.path.join(os.path.dirname(os.path.join(root, usage_file)), "memory.stat")
        return limit, max(0, usage - _stat(stat, cache_key))
    return None


def _read_int(path) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):  # no such file, or "max" (no limit)
        return None


def _stat(path, key) -> int:
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
