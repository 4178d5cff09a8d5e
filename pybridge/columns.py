"""Columns handed to R's C code (src/arrow_read.c, src/views.c) by address, with no copy in Python.

R copies an arrow-layout array (int32, float64, bool, or utf8 strings with offsets) into an R
vector in one pass in C: much faster than reticulate's conversion, above all for strings, which
it converts one by one. Python describes where the buffers are and keeps them alive in a
:class:`Held` until R has copied them and calls ``release()``.

The codec between arrow and R lives here too: :func:`encode_table` describes an arrow table's
columns for R (one spec per column, see :func:`column_spec`), and :func:`decode_table` makes an
arrow table with datasets' features of the columns R sends (rpackage/R/columns.R is the R side).
pyarrow and ``datasets`` are imported on first use, so ``import pybridge.columns`` stays cheap.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import errors

EXACT_DOUBLE_INT = 2**53
INT32_MAX = 2**31 - 1


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


# ---------------------------------------------------------------------------------------------
# Arrow to R columns


def encode_table(table, features=None) -> dict:
    """``{"names", "columns", "num_rows", "held"}``: each column as :func:`column_spec`, its
    buffers held by ``held`` (a :class:`Held`) until R releases them."""
    features = features or {}
    held = Held()
    specs = [
        column_spec(table.column(i), features.get(name), held)
        for i, name in enumerate(table.column_names)
    ]
    return {
        "names": list(table.column_names),
        "columns": specs,
        "num_rows": table.num_rows,
        "held": held,
    }


def column_spec(column, feature=None, held=None) -> dict:
    """One arrow column as R's C code reads it, with no copy in Python where arrow's own buffers
    already have R's layout.

    kinds (what R makes of the column): ``double``, ``integer``, ``logical``, ``string``, ``factor``
    (plus ``levels``), ``timestamp`` (seconds, plus ``tz``) and ``date`` (days) have ``buffers``, a
    :func:`buffers` description of an arrow array of int32 (factor: 1-based codes),
    float64, bool or (large) utf8 whose nulls are R's NAs; ``list`` has ``offsets`` (buffers of n +
    1 int32, 0 first), ``child`` (the flat values' spec) and ``na`` (buffers of a bool array, or
    None); ``struct`` has ``names`` and ``fields`` specs; ``binary`` a list of bytes or None;
    ``null`` its ``length``. An int64 column is ``integer`` when every value fits, else ``double``
    with ``inexact`` telling whether a value was beyond 2^53. ``held`` (a
    :class:`Held`) keeps the described arrays alive, but for a ``string``
    column's, which its own ``keeper`` holds (R reads strings lazily).
    """
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(arr, pa.ChunkedArray):  # an empty chunked array
        arr = pa.array([], arr.type)
    return _array_spec(arr, feature, Held() if held is None else held)


def _array_spec(arr, feature, held) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    typ = arr.type
    levels = _feature_levels_list(feature)
    if levels is not None and t.is_integer(typ):
        return {
            "kind": "factor",
            "buffers": buffers(_codes(arr, len(levels)), held),
            "levels": levels,
        }
    if t.is_dictionary(typ):
        levels = [str(v) for v in arr.dictionary.to_pylist()]
        return {
            "kind": "factor",
            "buffers": buffers(_codes(arr.indices, len(levels)), held),
            "levels": levels,
        }
    if t.is_boolean(typ):
        return {"kind": "logical", "buffers": buffers(arr, held)}
    if t.is_integer(typ):
        return _integer_spec(arr, held)
    if t.is_floating(typ) or t.is_decimal(typ):
        return {"kind": "double", "buffers": buffers(_cast(arr, pa.float64()), held)}
    if t.is_string(typ) or t.is_large_string(typ):
        return _string_spec(arr)
    if t.is_string_view(typ):
        return _string_spec(arr.cast(pa.large_string()))
    if t.is_timestamp(typ):
        micros = arr.cast(pa.timestamp("us", typ.tz)).cast(pa.int64())
        seconds = pc.divide(pc.cast(micros, pa.float64()), 1e6)
        return {
            "kind": "timestamp",
            "buffers": buffers(seconds, held),
            "tz": typ.tz or "UTC",
        }
    if t.is_date(typ):
        days = pc.cast(arr.cast(pa.date32()).cast(pa.int32()), pa.float64())
        return {"kind": "date", "buffers": buffers(days, held)}
    if t.is_list(typ) or t.is_large_list(typ) or t.is_fixed_size_list(typ) or t.is_list_view(typ):
        return _list_spec(arr, feature, held)
    if t.is_struct(typ):
        names = [typ.field(i).name for i in range(typ.num_fields)]
        sub = feature if isinstance(feature, dict) else {}
        return {
            "kind": "struct",
            "names": names,
            "fields": [_array_spec(arr.field(i), sub.get(n), held) for i, n in enumerate(names)],
        }
    if t.is_binary(typ) or t.is_large_binary(typ) or t.is_fixed_size_binary(typ):
        return {"kind": "binary", "values": arr.to_pylist()}
    if t.is_null(typ):
        return {"kind": "null", "length": len(arr)}
    if t.is_duration(typ):
        return _array_spec(
            pc.divide(
                arr.cast(pa.int64()).cast(pa.float64()),
                {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[typ.unit],
            ),
            None,
            held,
        )
    raise errors.UnsupportedError(
        f"Arrow type {typ} has no R conversion in hfbridge.", arrow_type=str(typ)
    )


def _string_spec(arr) -> dict:
    """R reads a string column lazily, from arrow's buffers: its ``keeper`` holds the array
    for as long as the R vector lives, not just until the frame is built."""
    keeper = Held()
    return {"kind": "string", "buffers": buffers(arr, keeper), "keeper": keeper}


def _cast(arr, typ):
    return arr if arr.type == typ else arr.cast(typ)


def _codes(arr, n_levels):
    """R's factor codes of 0-based class indices: 1-based int32, null where out of range."""
    import pyarrow as pa
    import pyarrow.compute as pc

    known = pc.and_(pc.greater_equal(arr, 0), pc.less(arr, n_levels))
    return pc.if_else(
        known,
        pc.cast(pc.add(_cast(arr, pa.int64()), 1), pa.int32(), safe=False),
        pa.scalar(None, pa.int32()),
    )


def _integer_spec(arr, held) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    if arr.type.bit_width <= 16 or arr.type == pa.int32():
        return {"kind": "integer", "buffers": buffers(_cast(arr, pa.int32()), held)}
    low_high = pc.min_max(arr).as_py()
    low, high = low_high["min"], low_high["max"]
    if low is None or (low > -INT32_MAX - 1 and high <= INT32_MAX):  # R's NA is -2^31
        return {"kind": "integer", "buffers": buffers(arr.cast(pa.int32()), held)}
    inexact = bool(max(abs(low), abs(high)) > EXACT_DOUBLE_INT)
    return {
        "kind": "double",
        "buffers": buffers(arr.cast(pa.float64(), safe=False), held),
        "inexact": inexact,
    }


def _list_spec(arr, feature, held) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    if t.is_fixed_size_list(arr.type) or t.is_list_view(arr.type):
        arr = arr.cast(pa.large_list(arr.type.value_type))
    flat = arr.flatten()  # honours the array's offset and skips null slots
    lengths = pc.fill_null(pc.list_value_length(arr), 0)
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lengths.to_numpy(zero_copy_only=False), out=offsets[1:])
    if offsets[-1] > INT32_MAX:
        raise errors.UnsupportedError(
            "A list column holds more than 2^31 values in one read; "
            "read fewer rows at a time (n_max, hub_dataset_chunks())."
        )
    child_feature = getattr(feature, "feature", None)
    if isinstance(feature, list) and feature:
        child_feature = feature[0]
    na = buffers(arr.is_null(), held) if arr.null_count else None
    return {
        "kind": "list",
        "offsets": buffers(pa.array(offsets.astype(np.int32)), held),
        "na": na,
        "child": _array_spec(flat, child_feature, held),
    }


def _feature_levels_list(feature) -> Optional[list]:
    names = getattr(feature, "names", None)
    if type(feature).__name__ == "ClassLabel" and names is not None:
        return [str(n) for n in names]
    return None


def feature_levels(feature) -> str:
    levels = _feature_levels_list(feature)
    return "" if levels is None else "|".join(levels)


def feature_type(feature) -> str:
    name = type(feature).__name__
    if name == "Value":
        return str(feature.dtype)
    if name == "ClassLabel":
        return "ClassLabel"
    if name in ("List", "LargeList", "Sequence"):
        return f"List({feature_type(feature.feature)})"
    if isinstance(feature, dict):
        return "Struct(" + ", ".join(f"{k}: {feature_type(v)}" for k, v in feature.items()) + ")"
    return name


# ---------------------------------------------------------------------------------------------
# R columns to arrow, for writing


def decode_table(columns):
    """R's columns (``{"names", "columns"}``, each ``{"kind", ...}``) as an arrow table with
    datasets' features, the ``huggingface`` metadata included."""
    import datasets
    import pyarrow as pa

    names = list(columns["names"])
    arrays, feats = [], {}
    for name, spec in zip(names, columns["columns"]):
        array, feature = _decode_column(spec, name)
        arrays.append(array)
        feats[name] = feature
    features = datasets.Features(feats)
    table = pa.Table.from_arrays(arrays, names=names)
    from datasets.table import table_cast

    table = table_cast(table, features.arrow_schema)
    return table.replace_schema_metadata(features.arrow_schema.metadata), features


def _mask(spec, n):
    na = spec.get("na")
    if na is None:
        return None
    na = np.asarray(na, dtype=bool).reshape(-1)
    return na if na.any() else None


def _decode_column(spec, name):
    import datasets
    import pyarrow as pa

    kind = spec["kind"]
    if kind == "list":
        offsets = np.asarray(spec["offsets"], dtype=np.int32).reshape(-1)
        child, child_feature = _decode_column(spec["child"], name)
        mask = _mask(spec, len(offsets) - 1)
        arr = pa.ListArray.from_arrays(
            pa.array(offsets), child, mask=None if mask is None else pa.array(mask)
        )
        return arr, datasets.List(child_feature)
    values = spec.get("values")
    if kind == "string":
        values = [str(v) for v in (values or [])] if not isinstance(values, str) else [values]
    else:
        values = np.asarray(values).reshape(-1)
    mask = _mask(spec, len(values))
    pa_mask = None if mask is None else mask
    if kind == "factor":
        codes = np.asarray(values, dtype=np.int64)
        levels = (
            [str(v) for v in spec["levels"]]
            if not isinstance(spec["levels"], str)
            else [spec["levels"]]
        )
        return (pa.array(codes, pa.int64(), mask=pa_mask), datasets.ClassLabel(names=levels))
    if kind == "integer":
        return pa.array(values.astype(np.int32), pa.int32(), mask=pa_mask), datasets.Value("int32")
    if kind == "double":
        return pa.array(values.astype(np.float64), pa.float64(), mask=pa_mask), datasets.Value(
            "float64"
        )
    if kind == "logical":
        return pa.array(values.astype(bool), pa.bool_(), mask=pa_mask), datasets.Value("bool")
    if kind == "string":
        return pa.array(values, pa.string(), mask=pa_mask), datasets.Value("string")
    if kind == "date":
        return pa.array(values.astype(np.int32), pa.int32(), mask=pa_mask).cast(
            pa.date32()
        ), datasets.Value("date32")
    if kind == "timestamp":
        tz = spec.get("tz") or "UTC"
        micros = np.round(values.astype(np.float64) * 1e6).astype(np.int64)
        arr = pa.array(micros, pa.int64(), mask=pa_mask).cast(pa.timestamp("us", tz))
        return arr, datasets.Value(f"timestamp[us, tz={tz}]")
    raise errors.UnsupportedError(f"Column '{name}' of kind {kind} cannot be written.", column=name)
