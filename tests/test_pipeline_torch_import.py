"""torch inside R: R's reference BLAS must not take over torch's matrix products.

libR loads Debian's libblas.so.3 into the global symbol scope; libtorch_cpu calls ``sgemm_``
through the dynamic linker and would bind to it (single-threaded reference BLAS, ~8x slower).
A Python process that loads libblas.so.3 globally first is in the same position. The dynamic
linker's own report (LD_DEBUG=bindings) says where libtorch's ``sgemm_`` went.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

LIBBLAS = "/usr/lib/x86_64-linux-gnu/libblas.so.3"

SCRIPT = """
import ctypes, sys
ctypes.CDLL({libblas!r}, mode=ctypes.RTLD_GLOBAL)   # as libR does
{before}
import torch
a = torch.randn(64, 64)
a @ a
"""


def sgemm_binding(tmp_path, before: str) -> str:
    """The library libtorch_cpu's sgemm_ was bound to."""
    code = SCRIPT.format(libblas=LIBBLAS, before=before)
    env = {**os.environ, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    for path in glob.glob(str(tmp_path / "ld*")):
        with open(path, errors="replace") as handle:
            for line in handle:
                if "libtorch_cpu.so" in line.split(" to ")[0] and "`sgemm_'" in line:
                    return line.split(" to ")[1].split()[0]
    raise AssertionError("no binding of sgemm_ from libtorch_cpu was reported")


pytestmark = pytest.mark.skipif(
    not os.path.exists(LIBBLAS) or not sys.platform.startswith("linux"),
    reason="needs Debian's libblas.so.3 and glibc",
)


def test_plain_import_binds_to_the_hosts_blas(tmp_path):
    """The problem, shown: without pybridge, torch's sgemm_ goes to the reference BLAS."""
    assert sgemm_binding(tmp_path, "").endswith("libblas.so.3")


def test_after_importing_pybridge_torch_keeps_its_own_blas(tmp_path):
    assert sgemm_binding(tmp_path, "import pybridge").endswith("libtorch_cpu.so")


def test_import_torch_keeps_its_own_blas(tmp_path):
    before = "from pybridge.torch_guard import import_torch; import_torch()"
    assert sgemm_binding(tmp_path, before).endswith("libtorch_cpu.so")
