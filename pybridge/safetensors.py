"""Safetensors weights for R: read into R arrays, lazily, and write from R arrays.

Inside this module ``import safetensors`` is the Hugging Face library (absolute imports), which
checks every file we read (``safetensors.safe_open``) and writes every file we save
(``safetensors.serialize_file``). On top of that this module

* checks the header itself again, so that no offset is trusted before it was proven to lie inside
  the file, and every failure is an :class:`~pybridge.errors.InvalidFileError`;
* memory-maps the file and converts one tensor at a time, in cache-sized tiles, from its row-major
  storage type to what R holds (float64, int32, bool, complex128) in column-major order, so that
  R's ``x[i, j]`` equals Python's ``t[i - 1, j - 1]``.

Bytes from R (``safe_deserialize()``) are checked by ``safetensors.deserialize`` the same way.

The fast path (:meth:`SafetensorsFile.fill`, :meth:`SafetensorsFile.fill_many`) writes into
vectors that R allocated, through :mod:`pybridge.fill`; :meth:`SafetensorsFile.read` returns a
Fortran-ordered numpy array for reticulate to convert instead.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import stat
import struct
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import safetensors as _st  # the Hugging Face library, not this module

from . import errors, memory, staging
from .errors import (
    EntryNotFoundError,
    InvalidArgumentError,
    InvalidFileError,
    PybridgeError,
    UnsupportedError,
)
from .fill import Copy, convert_all, copy_tiled, fill_many, r_memory

MAX_HEADER_BYTES = 100_000_000  # the limit of the reference implementation
EXACT_DOUBLE_INT = 2**53
R_INTEGER_NA = -(2**31)  # the int32 bit pattern of NA_integer_


# ----------------------------------------------------------------------------------------------
# The dtype table (documented in R's ?safe_load_file)


def _minifloat_table(exp_bits: int, man_bits: int, bias: int, kind: str) -> np.ndarray:
    """float64 value of every code of an 8-bit float. kind: 'ieee' (inf and NaN at the top
    exponent), 'fn' (no inf; NaN only when every bit is set), 'fnuz' (NaN is 0x80, no -0)."""
    codes = np.arange(256)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exp = (codes >> man_bits) & ((1 << exp_bits) - 1)
    man = codes & ((1 << man_bits) - 1)
    normal = (1 + man / (1 << man_bits)) * np.ldexp(1.0, exp - bias)
    subnormal = (man / (1 << man_bits)) * np.ldexp(1.0, 1 - bias)
    values = sign * np.where(exp == 0, subnormal, normal)
    top = exp == (1 << exp_bits) - 1
    if kind == "ieee":
        values[top & (man == 0)] = sign[top & (man == 0)] * np.inf
        values[top & (man != 0)] = np.nan
    elif kind == "fn":
        values[top & (man == (1 << man_bits) - 1)] = np.nan
    else:
        values[0x80] = np.nan
    return values


_F8_TABLES = {
    "F8_E4M3": _minifloat_table(4, 3, 7, "fn"),
    "F8_E5M2": _minifloat_table(5, 2, 15, "ieee"),
    "F8_E4M3FNUZ": _minifloat_table(4, 3, 8, "fnuz"),
    "F8_E5M2FNUZ": _minifloat_table(5, 2, 16, "fnuz"),
    "F8_E8M0": np.where(np.arange(256) == 255, np.nan, np.ldexp(1.0, np.arange(256) - 127)),
}


@dataclass(frozen=True)
class Dtype:
    code: str  # as written in the header
    bits: int
    storage: Optional[np.dtype]  # how the bytes are viewed; None: cannot be read
    r_type: str  # double, integer, logical, complex (what R gets)

    @property
    def wire(self) -> np.dtype:
        return np.dtype(
            {"double": "f8", "integer": "i4", "logical": "?", "complex": "c16"}[self.r_type]
        )


def _dt(code, bits, storage, r_type):
    return Dtype(code, bits, None if storage is None else np.dtype(storage), r_type)


DTYPES: Dict[str, Dtype] = {
    d.code: d
    for d in (
        _dt("F64", 64, "<f8", "double"),
        _dt("F32", 32, "<f4", "double"),
        _dt("F16", 16, "<f2", "double"),
        _dt("BF16", 16, "<u2", "double"),
        _dt("F8_E4M3", 8, "u1", "double"),
        _dt("F8_E5M2", 8, "u1", "double"),
        _dt("F8_E4M3FNUZ", 8, "u1", "double"),
        _dt("F8_E5M2FNUZ", 8, "u1", "double"),
        _dt("F8_E8M0", 8, "u1", "double"),
        _dt("I64", 64, "<i8", "double"),
        _dt("U64", 64, "<u8", "double"),
        _dt("U32", 32, "<u4", "double"),
        _dt("I32", 32, "<i4", "integer"),
        _dt("I16", 16, "<i2", "integer"),
        _dt("U16", 16, "<u2", "integer"),
        _dt("I8", 8, "i1", "integer"),
        _dt("U8", 8, "u1", "integer"),
        _dt("BOOL", 8, "u1", "logical"),
        _dt("C64", 64, "<c8", "complex"),
        # Sub-byte floats: the format knows them, R has no use for them yet.
        _dt("F4", 4, None, "double"),
        _dt("F6_E2M3", 6, None, "double"),
        _dt("F6_E3M2", 6, None, "double"),
    )
}


def dtype_table() -> dict:
    """The dtype table as columns (for documentation and tests)."""
    return {
        "dtype": list(DTYPES),
        "r_type": [d.r_type for d in DTYPES.values()],
        "readable": [d.storage is not None for d in DTYPES.values()],
    }


def _bfloat16_values(t: np.ndarray) -> np.ndarray:
    """bfloat16 bits are the upper half of a float32."""
    bits = np.left_shift(np.asarray(t, dtype=np.uint32), np.uint32(16), dtype=np.uint32)
    return np.asarray(bits).reshape(-1).view(np.float32).reshape(np.shape(t))


class _Decoder:
    """Turns a tile of stored values into the values R gets, and remembers whether a value is
    lossy in R: an int64 beyond 2^53 (rounded), or an int32 -2^31 (R's NA_integer_)."""

    def __init__(self, dtype: Dtype, name: str, int64: str, path: str):
        self.dtype, self.name, self.int64, self.path = dtype, name, int64, path
        self.lossy = False
        code = dtype.code
        if code == "BF16":
            self.convert = _bfloat16_values
        elif code in _F8_TABLES:
            table = _F8_TABLES[code]
            self.convert = lambda t: table[t]
        elif code in ("I64", "U64"):
            self.convert = self._checked_int64
        elif code == "I32":
            self.convert = self._checked_int32
        elif code == "BOOL":
            self.convert = lambda t: t != 0
        else:
            self.convert = lambda t: t

    def _checked_int64(self, t):
        if t.size and (
            t.max() > EXACT_DOUBLE_INT or (t.dtype.kind == "i" and t.min() < -EXACT_DOUBLE_INT)
        ):
            if self.int64 == "error":
                raise UnsupportedError(
                    f"Tensor '{self.name}' ({self.dtype.code}) holds a value beyond 2^53 in "
                    "magnitude, "
                    'which an R double cannot hold exactly. Use int64 = "double" to accept rounded '
                    "values.",
                    tensor=self.name,
                    dtype=self.dtype.code,
                    path=self.path,
                )
            self.lossy = True
        return t

    def _checked_int32(self, t):
        if t.size and t.min() == R_INTEGER_NA:
            self.lossy = True
        return t


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: Dtype
    shape: tuple
    start: int  # absolute offset in the buffer
    end: int

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def _invalid(path, why):
    return InvalidFileError(f"{path} is not a valid safetensors file: {why}.", path=path)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64


def parse_header(buf, path: str):
    """Checks the header of a safetensors buffer. Returns (tensors in offset order, metadata)."""
    total = len(buf)
    if total < 8:
        raise _invalid(path, f"it has {total} bytes, fewer than the 8 of the header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_BYTES:
        raise _invalid(
            path,
            f"its header length {n} is larger than the limit of {MAX_HEADER_BYTES} "
            "bytes (is it a pickle .bin or another format?)",
        )
    if 8 + n > total:
        raise _invalid(path, f"its header length {n} is larger than the file ({total} bytes)")
    try:
        header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _invalid(path, f"its header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _invalid(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise _invalid(path, "its __metadata__ is not a map of strings")
    for key, value in (metadata or {}).items():
        _check_no_nul(path, "metadata entry", key, value)
    base = 8 + n
    infos = [_tensor_info(name, entry, base, path) for name, entry in header.items()]
    infos.sort(key=lambda t: (t.start, t.end))
    expected = base
    for t in infos:
        if t.start != expected:
            raise _invalid(
                path,
                f"the data of tensor '{t.name}' does not start where the previous "
                "one ends (overlapping or missing offsets)",
            )
        expected = t.end
    if expected != total:
        raise _invalid(
            path,
            f"the tensors cover {expected - base} data bytes but the file holds "
            f"{total - base} (truncated file or wrong offsets)",
        )
    return infos, metadata


def _check_no_nul(path, what, name, value="") -> None:
    """Python's safetensors accepts NUL bytes in names, but no R string can hold one."""
    if "\x00" in name or "\x00" in value:
        where = "name" if "\x00" in name else "value"
        raise UnsupportedError(
            f"{path} has a {what} '{name}' whose {where} holds a NUL byte (shown as \\0). R "
            "strings cannot hold NUL, so hfbridge cannot read this file; rename it in Python with "
            "safetensors.numpy.load_file and save_file.",
            path=path,
            tensor=name if what == "tensor" else None,
        )


def _tensor_info(name, entry, base, path) -> TensorInfo:
    _check_no_nul(path, "tensor", name)
    if not isinstance(entry, dict):
        raise _invalid(path, f"the entry of tensor '{name}' is not an object")
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(code, str) or code not in DTYPES:
        raise _invalid(path, f"tensor '{name}' has the unknown dtype {code!r}")
    if not (isinstance(shape, list) and all(_is_count(s) for s in shape)):
        raise _invalid(path, f"tensor '{name}' has an invalid shape {shape!r}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_count(o) for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise _invalid(path, f"tensor '{name}' has invalid data_offsets {offsets!r}")
    dtype = DTYPES[code]
    count = 1
    for s in shape:
        count *= s
    if (count * dtype.bits) % 8 or (count * dtype.bits) // 8 != offsets[1] - offsets[0]:
        raise _invalid(
            path,
            f"tensor '{name}' of shape {shape} and dtype {code} does not fill its "
            f"{offsets[1] - offsets[0]} bytes",
        )
    return TensorInfo(name, dtype, tuple(shape), base + offsets[0], base + offsets[1])


def _reference_check(path: str, data=None) -> None:
    """The Hugging Face library must accept the buffer too."""
    try:
        if data is None:
            with _st.safe_open(path, framework="numpy"):
                pass
        else:
            _st.deserialize(bytes(data))
    except Exception as e:  # SafetensorError, OSError, and a Rust panic (a BaseException)
        raise _invalid(path, f"the safetensors library refuses it ({e})") from None
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise _invalid(path, f"the safetensors library refuses it ({e})") from None


class SafetensorsFile:
    """One safetensors file (memory-mapped) or buffer, checked, read tensor by tensor.

    It stays open until :meth:`close` or until it is garbage collected.
    """

    def __init__(self, buffer, path: str, closer: Optional[Callable] = None, stat=None):
        self._buf = buffer
        self._closer = closer
        self.path = path
        self._stat = stat  # of the mapped file, None for a buffer
        infos, metadata = parse_header(buffer, path)
        self._order = infos
        self._by_name = {t.name: t for t in infos}
        self.metadata = metadata

    # -- what is inside
    def keys(self) -> List[str]:
        """Tensor names sorted, as ``safetensors.safe_open(...).keys()`` gives them."""
        return sorted(self._by_name)

    def offset_keys(self) -> List[str]:
        """Tensor names in file order, as ``safetensors.numpy.load_file`` gives them."""
        return [t.name for t in self._order]

    def tensor_info(self, name: str) -> TensorInfo:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise InvalidArgumentError(
                f"{self.path} holds no tensor named '{name}'. It holds {len(self._by_name)} "
                f"tensors: {_preview(self.offset_keys())}.",
                path=self.path,
                tensor=str(name),
            ) from None

    def info(self) -> dict:
        """Columns describing every tensor, in file order, plus the sorted keys and metadata."""
        return _info_columns([(t, self.path) for t in self._order], self.keys(), self.metadata)

    # -- reading
    def _source(self, t: TensorInfo, index):
        if self._buf is None:
            raise InvalidArgumentError(
                f"The safetensors handle on {self.path} is closed.", path=self.path
            )
        self._check_unchanged()
        if t.dtype.storage is None:
            raise UnsupportedError(
                f"Tensor '{t.name}' has dtype {t.dtype.code}, which hfbridge cannot convert to R.",
                tensor=t.name,
                dtype=t.dtype.code,
                path=self.path,
            )
        if max(t.shape, default=0) >= 2**31:
            raise UnsupportedError(
                f"Tensor '{t.name}' has shape {list(t.shape)}, and R array "
                "dimensions are limited to 2^31 - 1.",
                tensor=t.name,
                path=self.path,
            )
        src = np.frombuffer(self._buf, dtype=t.dtype.storage, count=t.size, offset=t.start)
        return _select(src.reshape(t.shape), index, t, self.path)

    def _check_unchanged(self) -> None:
        """A mapped file rewritten in place to another size (``cp``, ``file.copy(overwrite =
        TRUE)``, a truncation) since it was opened is refused: reading a map past the file's new
        end would kill the process (SIGBUS). A file replaced by a new one (a rename, as every
        safetensors writer does) leaves the map on the old one, which stays readable; bytes
        changed in place, at the same size, are read as they are now (the handle is lazy)."""
        if self._stat is None:
            return
        try:
            now = os.stat(self.path)
        except OSError:
            return  # deleted: the map keeps the old file alive
        was = self._stat
        if (now.st_ino, now.st_dev) == (was.st_ino, was.st_dev) and now.st_size != was.st_size:
            raise InvalidFileError(
                f"{self.path} was changed on disk after it was opened. Open it again.",
                path=self.path,
            )

    def fill(self, name: str, dst, index=None, int64: str = "double", reversed=False) -> bool:
        """Writes tensor ``name`` (or the part picked by ``index``) into the R vector ``dst``.

        ``dst`` is the zero-copy view of an R double or integer vector whose ``dim`` is the shape
        of the result (reversed with ``reversed``: then the bytes keep their row-major order and
        no transpose is needed). ``index`` is None or a list with, per axis, None (all) or
        0-based positions. Returns True when a value is lossy in R (see :class:`_Decoder`).
        """
        copy = self._fill_copy(name, dst, index, int64, reversed)
        convert_all([copy])
        return copy.decoder.lossy

    def _fill_copy(self, name, dst, index, int64, reversed) -> Copy:
        t = self.tensor_info(name)
        src = self._source(t, index)
        if reversed:
            out = r_memory(dst, t.dtype.wire, src.shape[::-1]).T
        else:
            out = r_memory(dst, t.dtype.wire, src.shape)
        return Copy(out, src, _Decoder(t.dtype, t.name, _check_int64(int64), self.path))

    def fill_many(self, names, dsts, int64: str = "double", reversed=False) -> List[str]:
        """:meth:`fill` for many whole tensors in one call; returns the names of those with
        lossy values."""
        return fill_many(self, names, dsts, int64, reversed)

    def read(self, name: str, index=None, int64: str = "double", reversed=False):
        """The tensor as a column-major numpy array (float64, int32, bool or complex128) for
        reticulate to convert (of the reversed shape with ``reversed``), and whether a value is
        lossy in R."""
        t = self.tensor_info(name)
        src = self._source(t, index)
        check_memory(src.size * np.dtype(t.dtype.wire).itemsize, [t.name], self.path)
        out = np.empty(src.shape[::-1] if reversed else src.shape, dtype=t.dtype.wire, order="F")
        decoder = _Decoder(t.dtype, t.name, _check_int64(int64), self.path)
        copy_tiled(out.T if reversed else out, src, decoder.convert)
        return out, decoder.lossy

    def close(self) -> None:
        buf, self._buf = self._buf, None
        if buf is not None and self._closer is not None:
            self._closer(buf)

    def __repr__(self):
        state = "closed" if self._buf is None else f"{len(self._order)} tensors"
        return f"<SafetensorsFile {self.path} ({state})>"


class ShardedFile:
    """Several safetensors files (the shards of one model) seen as one."""

    def __init__(self, files: List[SafetensorsFile], path: str, metadata=None):
        self.files, self.path, self.metadata = files, path, metadata
        self._owner: Dict[str, SafetensorsFile] = {}
        for f in files:
            for name in f.offset_keys():
                if name in self._owner:
                    raise InvalidFileError(
                        f"Tensor '{name}' is in two shards: {self._owner[name].path} and {f.path}.",
                        path=f.path,
                        tensor=name,
                    )
                self._owner[name] = f

    def keys(self) -> List[str]:
        return sorted(self._owner)

    def offset_keys(self) -> List[str]:
        return [n for f in self.files for n in f.offset_keys()]

    def _file(self, name) -> SafetensorsFile:
        f = self._owner.get(name) if isinstance(name, str) else None
        if f is None:
            raise InvalidArgumentError(
                f"The model at {self.path} holds no tensor named '{name}'. It holds "
                f"{len(self._owner)} tensors: {_preview(self.offset_keys())}.",
                path=self.path,
                tensor=str(name),
            )
        return f

    def tensor_info(self, name: str) -> TensorInfo:
        return self._file(name).tensor_info(name)

    def info(self) -> dict:
        rows = [(t, f.path) for f in self.files for t in f._order]
        return _info_columns(rows, self.keys(), self.metadata)

    def fill(self, name, dst, index=None, int64="double", reversed=False):
        return self._file(name).fill(name, dst, index, int64, reversed)

    def _fill_copy(self, name, dst, index, int64, reversed):
        return self._file(name)._fill_copy(name, dst, index, int64, reversed)

    def read(self, name, index=None, int64="double", reversed=False):
        return self._file(name).read(name, index, int64, reversed)

    def fill_many(self, names, dsts, int64="double", reversed=False):
        return fill_many(self, names, dsts, int64, reversed)

    def close(self):
        for f in self.files:
            f.close()


def check_memory(need, names, path) -> None:
    """Refuses to read tensors whose results need ``need`` bytes when less memory is free
    (R calls it with the size of its results before it allocates them)."""
    names = list(names)
    one = len(names) == 1
    subject = f"Tensor '{names[0]}'" if one else f"Reading {len(names)} tensors"
    memory.check(
        need,
        f"{subject} of {path}",
        "Read it in parts with safe_open() and $get_slice(), or free memory."
        if one
        else "Read fewer at a time (`tensors =`), or in parts with safe_open() and $get_slice().",
        path=path,
        tensor=names[0] if one else None,
    )


def _preview(names, n=5):
    shown = ", ".join(f"'{x}'" for x in names[:n])
    return shown + (", ..." if len(names) > n else "") if names else "none"


def _info_columns(rows, keys, metadata) -> dict:
    shapes = [t.shape for t, _ in rows]
    return {
        "names": [t.name for t, _ in rows],
        "dtypes": [t.dtype.code for t, _ in rows],
        "r_types": [t.dtype.r_type for t, _ in rows],
        "ndim": np.array([len(s) for s in shapes], dtype=np.int32),
        "shape": np.array([d for s in shapes for d in s], dtype=np.float64),
        "nbytes": np.array([t.end - t.start for t, _ in rows], dtype=np.float64),
        "files": [p for _, p in rows],
        "keys": list(keys),
        "metadata": None if metadata is None else dict(metadata),
    }


def _check_int64(int64) -> str:
    if int64 not in ("double", "error"):
        raise InvalidArgumentError(f'int64 must be "double" or "error", not {int64!r}.')
    return int64


def _select(src: np.ndarray, index, t: TensorInfo, path: str) -> np.ndarray:
    """Applies R-style outer indexing: per axis None (all) or 0-based positions."""
    if index is None:
        return src
    index = list(index)
    if len(index) != src.ndim:
        raise InvalidArgumentError(
            f"Tensor '{t.name}' has {src.ndim} dimensions but {len(index)} indices were given.",
            tensor=t.name,
            path=path,
        )
    basic, picks = [], []
    for axis, ix in enumerate(index):
        if ix is None:
            basic.append(slice(None))
            continue
        ix = np.asarray(ix, dtype=np.int64).reshape(-1)
        if ix.size and (ix.min() < 0 or ix.max() >= src.shape[axis]):
            raise InvalidArgumentError(
                f"An index of dimension {axis + 1} of tensor '{t.name}' is outside "
                f"1..{src.shape[axis]}.",
                tensor=t.name,
                path=path,
            )
        if ix.size and np.all(np.diff(ix) == 1):
            basic.append(slice(int(ix[0]), int(ix[-1]) + 1))
        elif ix.size == 0:
            basic.append(slice(0, 0))
        else:
            basic.append(slice(None))
            picks.append((axis, ix))
    out = src[tuple(basic)]
    for axis, ix in picks:
        out = np.take(out, ix, axis=axis)
    return out


def open_file(path) -> SafetensorsFile:
    """Opens a safetensors file lazily (memory-mapped). Every problem is an InvalidFileError."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise InvalidFileError(f"The file {path} does not exist.", path=path)
    if os.path.isdir(path):
        raise InvalidFileError(
            f"{path} is a folder, not a safetensors file (safe_load_model() reads a model folder).",
            path=path,
        )
    if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe would block the read for ever
        raise InvalidFileError(f"{path} is not a regular file.", path=path)
    _reference_check(path)
    try:
        with open(path, "rb") as handle:  # the map stays valid after the file is closed
            mm = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            opened = os.fstat(handle.fileno())
    except (OSError, ValueError) as e:
        raise InvalidFileError(f"Could not read {path}: {e}.", path=path) from None
    try:
        return SafetensorsFile(mm, path, closer=_close_mmap, stat=opened)
    except PybridgeError:
        _close_mmap(mm)
        raise


def _close_mmap(mm) -> None:
    try:
        mm.close()
    except BufferError:
        pass  # a numpy view still points into it; the map goes when that view goes


def deserialize(data) -> SafetensorsFile:
    """Reads safetensors bytes (an R raw vector arrives as a bytearray)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(
            f"safe_deserialize() takes a raw vector, not {type(data).__name__}."
        )
    data = bytes(data)
    _reference_check("<raw vector>", data)
    return SafetensorsFile(data, "<raw vector>")


# ----------------------------------------------------------------------------------------------
# Models: one file or shards with model.safetensors.index.json, in a folder or a Hub repo

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"


def open_model(path_or_repo_id, revision: str = "main", env=None, token=None, quiet=False):
    """Opens the weights of a model folder, file or repo as one handle over all its shards.

    A repo id is downloaded through the hub layer (only ``*.safetensors`` and ``*.json``).
    """
    target = os.path.expanduser(str(path_or_repo_id))
    if not os.path.isfile(target):
        from . import hub  # the Hub layer; imported only when no file is given

        target = hub.local_folder(
            str(path_or_repo_id),
            revision=revision,
            allow_patterns=["*.safetensors", "*.json"],
            env=env,
            token=token,
            quiet=quiet,
        )
    if os.path.isfile(target):
        return _open_index(target) if target.endswith(".json") else open_file(target)
    if os.path.exists(os.path.join(target, SINGLE)):  # transformers' order too
        return open_file(os.path.join(target, SINGLE))
    if os.path.exists(os.path.join(target, INDEX)):
        return _open_index(os.path.join(target, INDEX))
    raise EntryNotFoundError(
        f"{path_or_repo_id} has neither {SINGLE} nor {INDEX}.", path=target, filename=SINGLE
    )


def _open_index(index_path: str) -> ShardedFile:
    folder = os.path.dirname(index_path)
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
        ):
            raise ValueError("weight_map is not a map of strings")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidFileError(
            f"{index_path} is not a valid safetensors index: {e}.", path=index_path
        ) from None
    shards = sorted(set(weight_map.values()))
    files: List[SafetensorsFile] = []
    try:
        for shard in shards:
            shard_path = os.path.normpath(os.path.join(folder, shard))
            if os.path.dirname(shard_path) != os.path.normpath(
                folder
            ) and not shard_path.startswith(os.path.normpath(folder) + os.sep):
                raise InvalidFileError(
                    f"The index names a shard outside its folder: {shard}.", path=index_path
                )
            files.append(open_file(shard_path))
        handle = ShardedFile(files, index_path, _string_metadata(index.get("metadata")))
    except PybridgeError:
        for f in files:
            f.close()
        raise
    for name, shard in weight_map.items():
        owner = handle._owner.get(name)
        if owner is None or os.path.basename(owner.path) != os.path.basename(shard):
            handle.close()
            raise InvalidFileError(
                f"The index says tensor '{name}' is in {shard}, but it is not.",
                path=index_path,
                tensor=name,
            )
    return handle


def _string_metadata(meta):
    if not isinstance(meta, dict):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


# ----------------------------------------------------------------------------------------------
# Writing

SAVE_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_ALIASES = {
    **{v.lower(): k for k, v in SAVE_DTYPES.items()},
    "double": "float64",
    "float": "float32",
    "half": "float16",
    "logical": "bool",
    "integer": "int32",
}
_DEFAULT_SAVE = {"f": "float64", "i": "int32", "b": "bool"}
_INT_RANGES = {
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int8": (-128, 127),
    "uint8": (0, 255),
}


def _target_name(asked, name) -> str:
    key = str(asked).lower()
    target = key if key in SAVE_DTYPES else _ALIASES.get(key)
    if target is None:
        raise InvalidArgumentError(
            f"Unknown dtype '{asked}'{f' for tensor {name!r}' if name else ''}. Use one of: "
            f"{', '.join(SAVE_DTYPES)}.",
            tensor=name,
            dtype=str(asked),
        )
    return target


def is_float_dtype(asked) -> bool:
    """Whether a dtype name (or alias) is a float type; an unknown name is refused."""
    return _family(_target_name(asked, None)) == "f"


def _family(target: str) -> str:
    return "b" if target == "bool" else ("f" if target.startswith(("float", "bfloat")) else "i")


def save_dtype(name: str, arr: np.ndarray, asked, default) -> str:
    """The dtype a tensor is saved as: its own ``asked``, else a global ``default`` of the same
    family (float, integer, bool) as the array, else float64 / int32 / bool."""
    kind = arr.dtype.kind
    if kind not in _DEFAULT_SAVE:
        raise InvalidArgumentError(
            f"Tensor '{name}' is of type {arr.dtype}; only double, integer and logical can be "
            "saved.",
            tensor=name,
        )
    if asked is None:
        if default is not None and _family(default) == kind:
            return default
        return _DEFAULT_SAVE[kind]
    target = _target_name(asked, name)
    if (target == "bool") != (kind == "b"):
        raise InvalidArgumentError(
            f"Tensor '{name}' is {'logical' if kind == 'b' else 'numeric'} and cannot be saved as "
            f"{target}.",
            tensor=name,
            dtype=target,
        )
    return target


def saved_nbytes(name: str, arr, asked=None, default=None) -> int:
    """The bytes tensor ``name`` takes in a file when saved as :func:`save_dtype` decides."""
    arr = np.asarray(arr)
    return int(arr.size) * DTYPES[SAVE_DTYPES[save_dtype(name, arr, asked, default)]].bits // 8


def _bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float -> bfloat16 bits, as torch does; NaN becomes 0x7FC0."""
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = np.asarray(x, dtype=np.float32)
    bits = f32.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f32), np.uint16(0x7FC0), rounded)


def _encode(name: str, arr: np.ndarray, target: str) -> np.ndarray:
    """The row-major stored form of an R array (a column-major view) in dtype ``target``."""
    code = SAVE_DTYPES[target]
    if target in _INT_RANGES:
        _check_integer_range(name, arr, target)
    storage = (
        np.dtype("<u2")
        if code == "BF16"
        else (np.dtype("u1") if code == "BOOL" else DTYPES[code].storage)
    )
    out = np.empty(arr.shape, dtype=storage, order="C")
    if code == "BF16":
        convert = _bfloat16_bits
    else:

        def convert(t):
            with np.errstate(over="ignore", invalid="ignore"):
                return t.astype(storage)

    copy_tiled(out, arr, convert)
    return out


def _check_integer_range(name, arr, target):
    if arr.size == 0:
        return
    low, high = _INT_RANGES[target]
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise InvalidArgumentError(
                f"Tensor '{name}' holds values that are not whole numbers; it cannot be saved as "
                f"{target}.",
                tensor=name,
                dtype=target,
            )
        ok = arr.min() >= low and arr.max() < float(high) + 1
    else:
        ok = arr.min() >= low and arr.max() <= high
    if not ok:
        raise InvalidArgumentError(
            f"Tensor '{name}' holds values outside the range of {target} ({low}..{high}).",
            tensor=name,
            dtype=target,
        )


def _specs(tensors, dtypes, default_dtype, reversed=False):
    if isinstance(tensors, (list, tuple)) and not tensors:
        tensors = {}  # R's empty named list arrives as []
    if isinstance(dtypes, (list, tuple)) and not dtypes:
        dtypes = None
    if not isinstance(tensors, dict):
        raise InvalidArgumentError("tensors must be a named list of arrays.")
    dtypes = dict(dtypes or {})
    default = None if default_dtype is None else _target_name(default_dtype, None)
    keep, specs = [], {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise InvalidArgumentError(f"Invalid tensor name {name!r}.", tensor=str(name))
        arr = np.asarray(value)
        if reversed:  # R dims are the reversed shape: the memory is already row-major
            arr = arr.T
        target = save_dtype(name, arr, dtypes.pop(name, None), default)
        out = _encode(name, arr, target)
        keep.append(out)
        specs[name] = _st.TensorSpec(
            dtype=target, shape=list(out.shape), data_ptr=out.ctypes.data, data_len=out.nbytes
        )
    if dtypes:
        raise InvalidArgumentError(
            f"dtype names tensors that are not being saved: {', '.join(map(str, dtypes))}."
        )
    return specs, keep


def _check_metadata(metadata):
    if metadata is None:
        return None
    if isinstance(metadata, (list, tuple)) and not metadata:
        return {}  # R's empty named vector arrives as []
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidArgumentError("metadata must be a named character vector.")
    return dict(metadata)


def _no_tensors(metadata) -> bytes:
    """A file without tensors. safetensors 0.8.0 writes ``{},"__metadata__":{...}}`` (invalid
    JSON that it then refuses to read) when there are no tensors but metadata."""
    header = json.dumps(
        {} if metadata is None else {"__metadata__": metadata}, separators=(",", ":")
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def _serialize(specs, metadata) -> bytes:
    if not specs:
        return _no_tensors(metadata)
    return _st.serialize(specs, metadata=metadata)


def serialize(tensors, metadata=None, dtypes=None, default_dtype=None, reversed=False) -> bytearray:
    """Safetensors bytes of ``tensors`` (name -> column-major array); a bytearray becomes R raw.

    ``dtypes`` maps tensor names to dtypes; ``default_dtype`` applies to the other tensors of
    its family (a float dtype to doubles, an integer dtype to integers). With ``reversed`` the
    arrays' dims are the reversed shapes."""
    specs, keep = _specs(tensors, dtypes, default_dtype, reversed)
    try:
        data = _serialize(specs, _check_metadata(metadata))
    except Exception as e:
        raise InvalidArgumentError(f"safetensors could not serialize the tensors: {e}") from None
    finally:
        del keep
    return bytearray(data)


def save_file(tensors, path, metadata=None, dtypes=None, default_dtype=None, reversed=False) -> str:
    """Writes ``tensors`` to ``path`` atomically: a temporary file in the same folder, renamed."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"The folder {folder} does not exist.", path=path)
    if os.path.isdir(path):
        raise InvalidArgumentError(f"{path} is a folder.", path=path)
    if os.path.exists(path) and not os.path.isfile(path):
        # replacing it would swap a device or a pipe (/dev/null, say) for a regular file
        raise InvalidArgumentError(
            f"{path} exists and is not a regular file (a device, a pipe or a socket); "
            "safetensors files are written to regular files.",
            path=path,
        )
    given, path = path, os.path.realpath(path)  # a link is followed, as safetensors does
    folder = os.path.dirname(path)
    specs, keep = _specs(tensors, dtypes, default_dtype, reversed)
    metadata = _check_metadata(metadata)
    try:  # a folder, not a file: safetensors writes its own temporary file beside the target
        work = staging.folder(folder, os.path.basename(path))
    except OSError as e:
        raise errors.write_failure(e, f"Cannot write into {folder}: {e}.", path) from None
    tmp = os.path.join(work, os.path.basename(path))
    try:
        if specs:
            _st.serialize_file(specs, tmp, metadata=metadata)
        else:
            with open(tmp, "wb") as handle:
                handle.write(_no_tensors(metadata))
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except Exception as e:
        raise errors.write_failure(e, f"Could not write {path}: {e}.", path) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        del keep
    return given


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
