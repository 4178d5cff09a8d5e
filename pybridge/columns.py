"""Columns handed to R's C code (src/columns.c, src/views.c) by address, with no copy in Python.

R copies an arrow-layout array (int32, float64, bool, or utf8 strings with offsets) into an R
vector in one pass in C: much faster than reticulate's conversion, above all for strings, which
it converts one by one. Python describes where the buffers are and keeps them alive in a
:class:`Held` until R has copied them and calls ``release()``.
"""

from __future__ import annotations

import numpy as np


class Held:
    """The arrow arrays whose buffers a result's columns point into. R copies each column out
    of them in C (``hfb_arrow_vector``) and then calls :meth:`release`; until then they must
    live, so every result holds its ``Held`` under ``"held"``."""

    def __init__(self):
        self.arrays = []

    def hold(self, arr):
        self.arrays.append(arr)
        return arr

    def release(self) -> None:
        self.arrays = []


_BUFFER_TYPES = {
    "int32": "int32",
    "double": "float64",
    "bool": "bool",
    "string": "utf8",
    "large_string": "large_utf8",
}


def buffers(arr, held) -> dict:
    """Where R's C code finds the values of ``arr`` (int32, float64, bool, string or
    large_string): the addresses of its validity bitmap (0: no nulls), values (bits for bool;
    offsets for strings) and string data, its offset in elements, its length and type. ``held``
    keeps the array alive."""
    held.hold(arr)
    bufs = arr.buffers()
    return {
        "type": _BUFFER_TYPES[str(arr.type)],
        "length": float(len(arr)),
        "offset": float(arr.offset),
        "validity": _address(bufs[0]) if arr.null_count else 0.0,
        "values": _address(bufs[1]),
        "data": _address(bufs[2]) if len(bufs) > 2 else 0.0,
    }


def _address(buf) -> float:
    """A buffer's address as a double (exact: addresses are below 2^53); 0 for none."""
    return float(buf.address) if buf is not None and buf.size else 0.0


def utf8_buffers(strings, held) -> dict:
    """``strings`` in arrow's utf8 layout, described as :func:`buffers` describes an
    arrow array: R makes its strings in C from one buffer, about 10x faster than reticulate
    converts a list of str. ``held`` keeps the buffers alive until R has copied them."""
    joined = "".join(strings)
    data = held.hold(np.frombuffer(joined.encode("utf-8"), dtype=np.uint8))
    sizes = map(len, strings) if joined.isascii() else (len(s.encode("utf-8")) for s in strings)
    large = len(data) > np.iinfo(np.int32).max
    offsets = np.zeros(len(strings) + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(np.fromiter(sizes, dtype=np.int64, count=len(strings)), out=offsets[1:])
    held.hold(offsets)
    return {
        "type": "large_utf8" if large else "utf8",
        "length": float(len(strings)),
        "offset": 0.0,
        "validity": 0.0,
        "values": float(offsets.ctypes.data),
        "data": float(data.ctypes.data) if len(data) else 0.0,
    }


_VIEW_TYPES = {np.dtype(np.int32): "int32", np.dtype(np.float64): "float64"}


def view(arr, held) -> dict:
    """An int32 or float64 numpy array that R reads in place (``hfb_buffer_view``), with no
    copy in R's heap, while ``held`` keeps it alive."""
    arr = held.hold(np.ascontiguousarray(arr))
    return {"type": _VIEW_TYPES[arr.dtype], "address": float(arr.ctypes.data), "length": arr.size}
