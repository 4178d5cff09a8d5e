"""Bounded fuzzing of the safetensors reader: mutated files never crash, every failure is a
classed error, and pybridge accepts exactly what Python's safetensors accepts, with the same
values. A few hundred of the files also go through R in one Rscript process."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybridge import errors
from pybridge import safetensors as S

ROOT = Path(__file__).resolve().parents[1]
DTYPE_NAMES = [c for c in S.DTYPES]


def _bases():
    rng = np.random.default_rng(11)
    many = safetensors.numpy.save(
        {
            "w": rng.standard_normal((3, 4)).astype(np.float32),
            "ids": np.arange(5, dtype=np.int64),
            "h": np.float16(1.5) * np.ones((2, 1, 2), dtype=np.float16),
            "mask": np.array([True, False, True]),
            "s": np.array(2.0),
            "e": np.zeros((0, 2), dtype=np.float32),
            "u": np.arange(4, dtype=np.uint8),
        },
        metadata={"format": "pt", "note": "fuzz"},
    )
    one = safetensors.numpy.save({"x": np.arange(6, dtype=np.float64).reshape(2, 3)})
    header = json.dumps(
        {
            "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
            "f8": {"dtype": "F8_E4M3", "shape": [3], "data_offsets": [8, 11]},
            "c": {"dtype": "C64", "shape": [1], "data_offsets": [11, 19]},
        }
    ).encode()
    exotic = struct.pack("<Q", len(header)) + header + bytes(range(19))
    return [many, one, exotic, safetensors.numpy.save({})]


BASES = _bases()
OPS = (
    "flip",
    "data_flip",
    "truncate",
    "extend",
    "header_len",
    "number",
    "dtype",
    "delete",
    "insert",
    "random",
    "swap_json",
)
INTERESTING = [0, 1, 7, 8, 2**31, 2**32, 2**53 + 1, 2**63, 2**64 - 1]


def mutate(data: bytes, ops) -> bytes:
    """Applies (op, a, b) mutations; a and b are arbitrary non-negative ints."""
    buf = bytearray(data)
    for op, a, b in ops:
        n = len(buf)
        hlen = struct.unpack("<Q", bytes(buf[:8]))[0] if n >= 8 else 0
        in_header = 8 + (a % max(1, min(hlen, n - 8))) if 8 < n else a % max(n, 1)
        if op == "flip" and n:
            pos = in_header if b % 3 else a % n
            buf[pos] ^= 1 + b % 255
        elif op == "data_flip" and n > 8 + hlen:
            buf[8 + hlen + a % (n - 8 - hlen)] ^= 1 + b % 255
        elif op == "truncate":
            del buf[a % (n + 1) :]
        elif op == "extend":
            buf += random.Random(a).randbytes(1 + b % 64)
        elif op == "header_len" and n >= 8:
            choices = INTERESTING + [hlen - 1, hlen + 1, n, n - 8, n - 7]
            buf[:8] = struct.pack("<Q", choices[a % len(choices)] % 2**64)
        elif op == "number" and n > 8:
            buf = _edit_number(buf, a, b)
        elif op == "dtype" and n > 8:
            text = bytes(buf)
            names = DTYPE_NAMES + ["F128", "f32", "", "BF16\\u0000"]
            for old in DTYPE_NAMES:
                if f'"{old}"'.encode() in text:
                    buf = bytearray(
                        text.replace(f'"{old}"'.encode(), f'"{names[b % len(names)]}"'.encode(), 1)
                    )
                    break
        elif op == "delete" and n:
            pos = in_header if b % 2 else a % n
            del buf[pos : pos + 1 + b % 8]
        elif op == "insert":
            pos = in_header if b % 2 else a % (n + 1)
            buf[pos:pos] = random.Random(b).randbytes(1 + a % 8)
        elif op == "random":
            buf = bytearray(random.Random(a).randbytes(b % 300))
        elif op == "swap_json" and n > 8:
            text = bytes(buf)
            for old, new in (
                (b"data_offsets", b"data_offset"),
                (b"shape", b"shap"),
                (b"[", b"{"),
                (b"]", b"],[0]"),
                (b":", b","),
                (b"{", b"["),
            ):
                if old in text and a % 2:
                    buf = bytearray(text.replace(old, new, 1))
                    break
                a //= 2
    return bytes(buf)


def _edit_number(buf: bytearray, a: int, b: int) -> bytearray:
    text = bytes(buf)
    digits = [i for i in range(8, len(text)) if 48 <= text[i] <= 57]
    if not digits:
        return buf
    start = end = digits[a % len(digits)]
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    replacement = str([0, 1, 3, 24, 2**32, 2**64, 10**30, -1][b % 8]).encode()
    return bytearray(text[:start] + replacement + text[end:])


def ours(data: bytes):
    """('ok', {name: values}) or ('invalid_file' | 'unsupported', None); anything else raises."""
    try:
        handle = S.deserialize(bytearray(data))
    except errors.InvalidFileError:
        return "invalid_file", None
    out = {}
    for name in handle.offset_keys():
        try:
            out[name] = handle.read(name)[0]
        except errors.UnsupportedError:
            return "unsupported", None
    return "ok", out


def reference(data: bytes):
    try:
        return True, safetensors.deserialize(data)
    except Exception:  # SafetensorError, or a Rust panic
        return False, None
    except BaseException as e:  # pyo3 PanicException derives from BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return False, None


def check(data: bytes):
    outcome, values = ours(data)
    ref_ok, ref = reference(data)
    assert (outcome != "invalid_file") == ref_ok, (outcome, data[:200])
    if outcome == "ok":
        for name, meta in ref:
            code = meta["dtype"]
            if code in safetensors.numpy._TYPES:
                want = np.frombuffer(bytes(meta["data"]), dtype=safetensors.numpy._TYPES[code])
                want = want.reshape(meta["shape"])
                assert np.array_equal(values[name], want, equal_nan=want.dtype.kind in "fc")
    return outcome


op_strategy = st.tuples(st.sampled_from(OPS), st.integers(0, 2**64), st.integers(0, 2**64))


@settings(
    max_examples=2000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(op_strategy, min_size=1, max_size=3))
def test_mutated_bytes_never_crash_and_agree_with_safetensors(base, ops):
    check(mutate(BASES[base], ops))


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(op_strategy, min_size=1, max_size=2))
def test_mutated_files_on_disk_are_classed_errors(tmp_path, base, ops):
    data = mutate(BASES[base], ops)
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(data)
    try:
        handle = S.open_file(str(path))
    except errors.InvalidFileError as e:
        assert e.fields["path"] == str(path)
        return
    for name in handle.offset_keys():
        try:
            handle.read(name)
        except errors.UnsupportedError:
            pass
    handle.close()


def r_cases(n=300, seed=20241123):
    rng = random.Random(seed)
    for i in range(n):
        ops = [
            (rng.choice(OPS), rng.getrandbits(64), rng.getrandbits(64))
            for _ in range(rng.randint(1, 3))
        ]
        yield i, mutate(BASES[i % len(BASES)], ops)


@pytest.mark.r
def test_r_survives_mutated_files_in_one_process(tmp_path):
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed")
    expected = {}
    for i, data in r_cases():
        path = tmp_path / f"case{i:04d}.safetensors"
        path.write_bytes(data)
        expected[path.name] = check(data)
    results = tmp_path / "results.tsv"
    code = f"""
if (nzchar(Sys.getenv('HFBRIDGE_LOAD_ALL'))) pkgload::load_all(Sys.getenv('HFBRIDGE_LOAD_ALL'),
  quiet = TRUE) else suppressPackageStartupMessages(library(hfbridge))
files <- sort(list.files({json.dumps(str(tmp_path))}, pattern = "[.]safetensors$", full.names = TRUE))
outcome <- vapply(files, function(f) {{
  tryCatch({{ w <- safe_load_file(f); stopifnot(is.list(w)); "ok" }},
    hfbridge_error_invalid_file = function(e) if (identical(e$path, f)) "invalid_file" else "bad_path",
    hfbridge_error_unsupported = function(e) "unsupported",
    error = function(e) paste("other", class(e)[1], gsub("[\\t\\n]", " ", conditionMessage(e))))
}}, "")
writeLines(paste(basename(files), outcome, sep = "\\t"), {json.dumps(str(results))})
cat("done", length(files), "\\n")
"""  # noqa: E501 (R source sent to Rscript verbatim; wrapping it would change the script)
    env = {
        **os.environ,
        "RETICULATE_PYTHON": os.environ.get(
            "RETICULATE_PYTHON", str(ROOT / ".venv" / "bin" / "python")
        ),
        "R_LIBS": os.environ.get("R_LIBS", str(ROOT / ".rlib")),
    }
    out = subprocess.run(
        ["Rscript", "-e", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"done {len(expected)}" in out.stdout
    got = dict(line.split("\t", 1) for line in results.read_text().splitlines())
    assert got == expected
    counts = {k: list(expected.values()).count(k) for k in set(expected.values())}
    assert counts.get("invalid_file", 0) > 100 and counts.get("ok", 0) > 10, counts
