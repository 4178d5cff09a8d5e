"""The fill fast path: tensors converted straight into R vectors, on every core.

Why: R allocates each result vector without writing it (``rpackage/src/alloc.c``) and reticulate
hands it over as a zero-copy view of R's memory, so the conversion from the file's row-major
storage (cast and transpose) is one pass written in place, cut into row blocks that threads share
(numpy lets go of the GIL while it copies): the page faults of the fresh memory and the transpose
run on every core, instead of reticulate's cast, copy and transpose on one. R owns the vector and
has not shared it yet, so the write is invisible to any other R object; R checks once per session
that the view is really shared (:func:`probe_fill`) and otherwise lets reticulate convert.

The tiled copy here is also the one that reading into numpy and saving use.
"""

from __future__ import annotations

import ctypes
import os
from typing import Callable, List

import numpy as np

from .errors import InvalidArgumentError
from .threads import run_parallel

_TILE = 128  # a 128 x 128 tile of a transposing copy stays in cache
_TILE_ELEMENTS = _TILE * _TILE
_CHUNK = 1 << 20  # elements per chunk of a 1-d copy
_PIECE = 1 << 21  # elements per piece of a copy shared between threads
_WORKERS = min(4, os.cpu_count() or 1)


# ----------------------------------------------------------------------------------------------
# Tiled copies: a row-major source into a column-major destination (or back) without a full
# temporary, at cache speed.


def _tile_steps(rows: int, cols: int):
    if rows >= _TILE and cols >= _TILE:
        return _TILE, _TILE
    if rows < _TILE:
        return max(rows, 1), max(_TILE_ELEMENTS // max(rows, 1), 1)
    return max(_TILE_ELEMENTS // max(cols, 1), 1), max(cols, 1)


def copy_tiled(dst: np.ndarray, src: np.ndarray, convert: Callable = lambda t: t) -> None:
    """``dst[...] = convert(src)``, tile by tile over the first and last axes (chunk by chunk
    when both are laid out alike)."""
    if src.size == 0:
        return
    if src.ndim == 0:
        dst[...] = convert(src)
        return
    if src.ndim > 1 and (
        src.flags.c_contiguous
        and dst.flags.c_contiguous
        or src.flags.f_contiguous
        and dst.flags.f_contiguous
    ):
        order = "C" if src.flags.c_contiguous else "F"
        src, dst = src.reshape(-1, order=order), dst.reshape(-1, order=order)
    if src.ndim == 1:
        for i in range(0, src.shape[0], _CHUNK):
            dst[i : i + _CHUNK] = convert(src[i : i + _CHUNK])
        return
    rows, cols = src.shape[0], src.shape[-1]
    step_r, step_c = _tile_steps(rows, cols)
    for i in range(0, rows, step_r):
        for j in range(0, cols, step_c):
            dst[i : i + step_r, ..., j : j + step_c] = convert(
                src[i : i + step_r, ..., j : j + step_c]
            )


# ----------------------------------------------------------------------------------------------
# Copies shared between threads


class Copy:
    """One tensor's conversion into its destination, cut into row blocks that threads share.
    ``decoder`` has ``convert`` (stored values to R's) and ``lossy`` (set by ``convert``)."""

    def __init__(self, out, src, decoder):
        self.out, self.src, self.decoder = out, src, decoder

    def pieces(self) -> List[tuple]:
        """(task, elements) per row block of about _PIECE elements."""
        out, src, convert = self.out, self.src, self.decoder.convert
        if src.ndim == 0 or src.size <= _PIECE:
            return [(lambda: copy_tiled(out, src, convert), src.size)]
        per_row = src.size // src.shape[0]
        step = max(1, _PIECE // per_row)
        if step > _TILE:
            step -= step % _TILE
        return [
            (
                lambda i=i: copy_tiled(out[i : i + step], src[i : i + step], convert),
                min(step, src.shape[0] - i) * per_row,
            )
            for i in range(0, src.shape[0], step)
        ]


def convert_all(copies: List[Copy]) -> None:
    """Runs every copy's pieces, small ones grouped so that each task is about _PIECE
    elements (a model has hundreds of small tensors: biases, norms)."""
    tasks, group, size = [], [], 0
    for copy in copies:
        for piece, n in copy.pieces():
            group.append(piece)
            size += n
            if size >= _PIECE:
                tasks.append(group)
                group, size = [], 0
    if group:
        tasks.append(group)
    run_parallel([lambda g=g: [piece() for piece in g] for g in tasks], _WORKERS)


def fill_many(handle, names, dsts, int64, reversed) -> List[str]:
    """Fills the R vectors ``dsts`` with the whole tensors ``names`` of ``handle`` (which makes
    each :class:`Copy` with ``_fill_copy``); returns the names of the tensors with values
    that R cannot hold exactly (see ``_Decoder`` in pybridge.safetensors)."""
    names, dsts = list(names), list(dsts)
    if len(names) != len(dsts):
        raise InvalidArgumentError("fill_many() needs one destination per tensor name.")
    copies = [handle._fill_copy(name, dst, None, int64, reversed) for name, dst in zip(names, dsts)]
    convert_all(copies)
    return [name for name, copy in zip(names, copies) if copy.decoder.lossy]


# ----------------------------------------------------------------------------------------------
# R's memory


def r_memory(dst, wire: np.dtype, shape: tuple) -> np.ndarray:
    """A writable numpy view over the memory of the R vector that reticulate passed as ``dst``."""
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not (
        isinstance(dst, np.ndarray)
        and dst.dtype == wire
        and dst.size == size
        and dst.flags.f_contiguous
    ):
        raise InvalidArgumentError(
            f"The destination must be an R {wire} vector of length {size} with a dim; got "
            f"{type(dst).__name__} {getattr(dst, 'dtype', '')} of size {getattr(dst, 'size', '?')}."
        )
    if size == 0:
        return np.empty(shape, dtype=wire, order="F")
    raw = (ctypes.c_char * dst.nbytes).from_address(dst.__array_interface__["data"][0])
    return np.frombuffer(raw, dtype=wire).reshape(shape, order="F")


def probe_fill(dst, listed) -> None:
    """Writes 1, 2, ... into ``dst`` and into every array of the list ``listed``; R checks that
    it sees them (reticulate passed them zero-copy, alone and inside a list)."""
    for target in (dst, *listed):
        out = r_memory(target, np.dtype("f8"), target.shape)
        out.reshape(-1, order="F")[:] = np.arange(1, target.size + 1, dtype=np.float64)
