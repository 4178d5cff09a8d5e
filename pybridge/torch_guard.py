"""The guard on ``import torch`` that keeps torch's own BLAS when the host process (R) has
loaded another one: :func:`import_torch` explains why. pybridge's ``__init__`` installs
:func:`guard_torch_import`; nothing here imports torch until asked."""

from __future__ import annotations

import contextlib
import os
import sys


def import_torch():
    """torch, imported so that a BLAS the host process already loaded cannot hijack it.

    Inside R, libR has loaded Debian's reference BLAS (libblas.so.3) into the global symbol
    scope. libtorch_cpu calls ``sgemm_`` through the dynamic linker, which then resolves to R's
    single-threaded reference BLAS instead of the MKL inside libtorch: every matrix product of
    a model runs about 8 times slower than in Python. Loading torch with ``RTLD_DEEPBIND`` makes
    libtorch use its own symbols first. It only matters when a global ``sgemm_`` exists (not in
    a plain Python process), and only if torch is not imported yet: :func:`guard_torch_import`
    (installed when pybridge is imported) does the same for any later ``import torch``.
    """
    if "torch" in sys.modules:
        return sys.modules["torch"]
    with _deepbind_if_needed():
        import torch
    return torch


@contextlib.contextmanager
def _deepbind_if_needed():
    flags = sys.getdlopenflags()
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)
    if deepbind and _host_blas_loaded():
        sys.setdlopenflags(flags | deepbind)
    try:
        yield
    finally:
        sys.setdlopenflags(flags)


class _TorchGuard:
    """A meta path finder that loads the ``torch`` package as :func:`import_torch` does."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch" or "torch" in sys.modules:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _DeepbindLoader(spec.loader)
        return spec


class _DeepbindLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _deepbind_if_needed():
            self.loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def guard_torch_import() -> None:
    """Make every later ``import torch`` in this process use :func:`import_torch`'s loading.

    Cheap (nothing is imported); does nothing if torch is already imported or the guard is in.
    """
    if "torch" in sys.modules or any(isinstance(f, _TorchGuard) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchGuard())


def _host_blas_loaded() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "sgemm_")
    except OSError:
        return False
