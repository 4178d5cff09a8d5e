"""Results that cannot fit in memory are refused before they are allocated (pybridge.memory):
the free memory of the machine and of its cgroup, a padded token matrix, and a tensor larger than
free memory in a sparse safetensors file (its header is real; its data is a hole)."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import safetensors

from pybridge import errors, memory
from pybridge import safetensors as st
from pybridge import tokenizer as T

GIB = 2**30
COLUMNS = 2**20


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _proc(tmp_path, available_kb: int):
    _write(tmp_path / "proc" / "meminfo", f"MemTotal: 99 kB\nMemAvailable: {available_kb} kB\n")
    return str(tmp_path / "proc")


def test_available_memory_is_the_smaller_of_the_machine_and_the_cgroup(tmp_path):
    proc = _proc(tmp_path, 8 * 2**20)  # 8 GiB free on the machine
    v2 = tmp_path / "v2"
    _write(v2 / "memory.max", f"{4 * GIB}\n")
    _write(v2 / "memory.current", f"{3 * GIB}\n")
    _write(v2 / "memory.stat", f"anon 1\ninactive_file {GIB // 2}\nactive_file 5\n")
    assert memory.available(proc, str(v2)) == GIB + GIB // 2  # 4 - 3 + 0.5 of dropped cache
    v1 = tmp_path / "v1"
    _write(v1 / "memory" / "memory.limit_in_bytes", f"{2 * GIB}\n")
    _write(v1 / "memory" / "memory.usage_in_bytes", f"{GIB}\n")
    _write(v1 / "memory" / "memory.stat", f"cache 9\ntotal_inactive_file {GIB // 4}\n")
    assert memory.available(proc, str(v1)) == GIB + GIB // 4
    unlimited = tmp_path / "unlimited"
    _write(unlimited / "memory.max", "max\n")
    _write(unlimited / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert memory.available(proc, str(unlimited)) == 8 * GIB
    _write(v2 / "memory.max", f"{64 * GIB}\n")  # a limit above the machine's free memory
    assert memory.available(proc, str(v2)) == 8 * GIB


def test_this_machine_reports_free_memory_below_its_total():
    free = memory.available()
    assert free is not None and 0 < free <= memory.total()
    memory.check(100, "Anything small", "")  # below memory.SMALL: never refused


def test_a_padded_matrix_of_ten_million_texts_is_refused_with_its_size():
    with pytest.raises(errors.MemoryLimitError) as info:
        T.check_matrix(10**7, 512)
    cells = 10**7 * 512
    assert info.value.fields == {
        "argument": "max_length",
        "cells": float(cells),
        "bytes": float(cells * T.MATRIX_CELL_BYTES),
        "limit": float(T.padding_limit()),
    }
    assert "5120000000 token cells, which need about 152.6 GiB" in str(info.value)
    assert isinstance(info.value, MemoryError)  # Python callers can catch the built-in
    T.check_matrix(1000, 512)
    with pytest.raises(errors.InvalidArgumentError):
        T.check_matrix(10, 0)


def sparse_tensor_file(path, rows: int, dtype: str = "F32", itemsize: int = 4):
    """A safetensors file with one tensor ``big`` of [rows, 2^20] whose data is a hole."""
    nbytes = rows * COLUMNS * itemsize
    header = json.dumps({"big": {"dtype": dtype, "shape": [rows, COLUMNS],
                                 "data_offsets": [0, nbytes]}}).encode()  # fmt: skip
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + nbytes)
    return path


def test_a_tensor_larger_than_free_memory_is_refused_before_it_is_allocated(tmp_path):
    if memory.available() is None:
        pytest.skip("this system does not say how much memory is free")
    rows = int(2 * memory.available()) // (8 * COLUMNS) + 1  # twice free memory, as float64
    path = str(sparse_tensor_file(tmp_path / "huge.safetensors", rows))
    handle = st.open_file(path)
    with safetensors.safe_open(path, framework="numpy") as reference:
        assert reference.get_slice("big").get_shape() == [rows, COLUMNS]
        want = reference.get_slice("big")[:2, :8]
    with pytest.raises(errors.MemoryLimitError) as info:
        handle.read("big")
    need = rows * COLUMNS * 8
    assert info.value.fields["bytes"] == float(need)
    assert info.value.fields["limit"] < need
    assert info.value.fields["tensor"] == "big" and info.value.fields["path"] == path
    assert f"Tensor 'big' of {path} needs about {memory.size(need)}" in str(info.value)
    # A part of it still reads, equal to the safetensors library's.
    part, lossy = handle.read("big", [[0, 1], list(range(8))])
    np.testing.assert_array_equal(part, want)
    assert not lossy
    handle.close()
    os.remove(path)  # a hole as large as the machine's memory: leave no such file behind
