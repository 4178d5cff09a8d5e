"""pybridge.safetensors against the reference: Python's safetensors (numpy and torch loaders) on
the same files, torch for the 8-bit and bfloat16 conversions, transformers for a round trip of a
model's weights through R."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

from pybridge import errors
from pybridge import fill as F
from pybridge import safetensors as S

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)
SHAPES = [(), (0,), (0, 3), (5,), (3, 4), (2, 3, 5), (2, 1, 3, 4)]
NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "U64": np.uint64,
    "I32": np.int32,
    "U32": np.uint32,
    "I16": np.int16,
    "U16": np.uint16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
    "C64": np.complex64,
}
TORCH_DTYPES = {
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3FNUZ": torch.float8_e4m3fnuz,
    "F8_E5M2FNUZ": torch.float8_e5m2fnuz,
    "F8_E8M0": torch.float8_e8m0fnu,
}


def values(dtype, shape):
    n = int(np.prod(shape)) if shape else 1
    if dtype == np.bool_:
        return np.asarray(RNG.random(n) > 0.5).reshape(shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = max(info.min, -(2**40)), min(info.max, 2**40)
        return RNG.integers(low, high, size=n, endpoint=True).astype(dtype).reshape(shape)
    if np.issubdtype(dtype, np.complexfloating):
        return (RNG.standard_normal(n) + 1j * RNG.standard_normal(n)).astype(dtype).reshape(shape)
    x = RNG.standard_normal(n) * 10
    if n >= 3:
        x[:3] = [np.nan, np.inf, -np.inf]
    return x.astype(dtype).reshape(shape)


def numpy_file(tmp_path, dtype_code):
    tensors = {f"t{i}": values(NUMPY_DTYPES[dtype_code], s) for i, s in enumerate(SHAPES)}
    path = tmp_path / f"{dtype_code}.safetensors"
    np_save_file(tensors, str(path), metadata={"dtype": dtype_code})
    return path


def torch_file(tmp_path, dtype_code):
    tensors = {}
    for i, shape in enumerate(SHAPES):
        if dtype_code == "F8_E8M0":
            t = torch.randint(0, 256, shape, dtype=torch.uint8).view(torch.float8_e8m0fnu)
        else:
            t = (torch.randn(shape, dtype=torch.float64) * 3).to(TORCH_DTYPES[dtype_code])
        tensors[f"t{i}"] = t
    path = tmp_path / f"{dtype_code}.safetensors"
    torch_save_file(tensors, str(path))
    return path


def read_all(handle, use_fill):
    """Reads every tensor through fill() (into a column-major buffer, like R) or read()."""
    out = {}
    for name, code, _ndim, shape in zip(
        *(handle.info()[k] for k in ("names", "dtypes", "ndim")), _shapes(handle.info())
    ):
        wire = S.DTYPES[code].wire
        if use_fill and wire.kind in "fi":
            dst = np.zeros(shape, dtype=wire, order="F") if shape else np.zeros(1, dtype=wire)
            handle.fill(name, dst)
            out[name] = dst.reshape(shape)
        else:
            out[name], _ = handle.read(name)
    return out


def _shapes(info):
    flat, shapes, k = [int(v) for v in info["shape"]], [], 0
    for n in info["ndim"]:
        shapes.append(tuple(flat[k : k + n]))
        k += n
    return shapes


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


# ---------------------------------------------------------------------------------------------
# Reading


def test_the_library_is_the_reference_one():
    assert S._st is safetensors and "site-packages" in safetensors.__file__


@pytest.mark.parametrize("use_fill", [True, False])
@pytest.mark.parametrize("code", list(NUMPY_DTYPES))
def test_read_equals_safetensors_numpy(tmp_path, code, use_fill):
    path = numpy_file(tmp_path, code)
    ref = np_load_file(str(path))
    handle = S.open_file(str(path))
    got = read_all(handle, use_fill)
    assert list(got) == handle.offset_keys() and set(got) == set(ref)
    # File order, as load_file gives it (the reference orders empty tensors at one offset at
    # random; ours keeps their header order).
    assert [k for k in got if got[k].size] == [k for k in ref if ref[k].size]
    assert handle.keys() == sorted(ref) and handle.metadata == {"dtype": code}
    for name, want in ref.items():
        assert got[name].dtype == S.DTYPES[code].wire
        assert same(got[name], want), (code, name)
        assert got[name].flags.f_contiguous
    handle.close()


@pytest.mark.parametrize("use_fill", [True, False])
@pytest.mark.parametrize("code", list(TORCH_DTYPES))
def test_read_bfloat16_and_float8_equals_torch(tmp_path, code, use_fill):
    path = torch_file(tmp_path, code)
    ref = torch_load_file(str(path))
    got = read_all(S.open_file(str(path)), use_fill)
    for name, want in ref.items():
        assert same(got[name], want.to(torch.float64).numpy()), (code, name)


@pytest.mark.parametrize("code", ["F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"])
def test_every_float8_code_equals_torch(code):
    codes = torch.arange(256, dtype=torch.uint8).view(TORCH_DTYPES[code])
    assert same(S._F8_TABLES[code], codes.to(torch.float64).numpy())


def test_indexing_contract_on_a_4d_tensor(tmp_path):
    t = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np_save_file({"x": t}, str(tmp_path / "x.safetensors"))
    got, _ = S.open_file(str(tmp_path / "x.safetensors")).read("x")
    assert got.shape == (2, 3, 4, 5) and got.flags.f_contiguous
    # R's x[i, j, k, m] is the column-major element (i-1) + 2*(j-1) + ...: Python's t[i-1, ...].
    flat = got.reshape(-1, order="F")
    for i, j, k, m in [(1, 1, 1, 1), (2, 3, 4, 5), (1, 2, 3, 4), (2, 1, 4, 2)]:
        pos = (i - 1) + 2 * (j - 1) + 6 * (k - 1) + 24 * (m - 1)
        assert flat[pos] == t[i - 1, j - 1, k - 1, m - 1]


def test_large_tiles_and_thin_shapes(tmp_path):
    tensors = {
        "wide": RNG.standard_normal((3, 70000)).astype(np.float32),
        "tall": RNG.standard_normal((70000, 3)).astype(np.float32),
        "big": RNG.standard_normal((300, 257)).astype(np.float16),
        "deep": RNG.standard_normal((130, 2, 3, 131)).astype(np.float32),
    }
    np_save_file(tensors, str(tmp_path / "x.safetensors"))
    got = read_all(S.open_file(str(tmp_path / "x.safetensors")), True)
    for name, want in tensors.items():
        assert same(got[name], want)


def test_slices_are_outer_indexing(tmp_path):
    t = RNG.standard_normal((6, 7, 8)).astype(np.float32)
    np_save_file({"x": t}, str(tmp_path / "x.safetensors"))
    h = S.open_file(str(tmp_path / "x.safetensors"))
    picks = [None, np.array([6, 0, 2], dtype=np.int32), np.arange(2, 5, dtype=np.int32)]
    got, _ = h.read("x", picks)
    assert same(got, t[:, [6, 0, 2], :][:, :, 2:5])
    dst = np.zeros((6, 3, 3), order="F")
    h.fill("x", dst, picks)
    assert same(dst, t[:, [6, 0, 2], :][:, :, 2:5])
    empty, _ = h.read("x", [np.array([], dtype=np.int32), None, None])
    assert empty.shape == (0, 7, 8)
    with pytest.raises(errors.InvalidArgumentError):
        h.read("x", [np.array([6]), None, None])
    with pytest.raises(errors.InvalidArgumentError):
        h.read("x", [None, None])


def test_int64_beyond_2_53_is_flagged_or_refused(tmp_path):
    np_save_file(
        {
            "ok": np.array([2**53, -(2**53)], dtype=np.int64),
            "big": np.array([2**53 + 1], dtype=np.int64),
            "ubig": np.array([2**64 - 1], dtype=np.uint64),
        },
        str(tmp_path / "x.safetensors"),
    )
    h = S.open_file(str(tmp_path / "x.safetensors"))
    assert h.read("ok")[1] is False
    assert h.read("big")[1] is True and h.read("ubig")[1] is True
    assert h.read("ubig")[0][0] == float(2**64 - 1)
    with pytest.raises(errors.UnsupportedError) as e:
        h.read("big", int64="error")
    assert e.value.fields["tensor"] == "big"
    assert h.read("ok", int64="error")[1] is False


def test_int32_na_pattern_is_flagged_on_every_path(tmp_path):
    """-2^31 is R's NA_integer_: read, fill and fill_many flag the tensors that hold it."""
    path = str(tmp_path / "x.safetensors")
    big = np.zeros(F._PIECE + 5, dtype=np.int32)
    big[-1] = -(2**31)
    np_save_file(
        {
            "na": np.array([[5, -(2**31)], [0, 1]], dtype=np.int32),
            "ok": np.array([2**31 - 1, -(2**31) + 1], dtype=np.int32),
            "big": big,
        },
        path,
    )
    h = S.open_file(path)
    ref = np_load_file(path)
    assert [h.read(n)[1] for n in ("na", "ok", "big")] == [True, False, True]
    assert same(h.read("na")[0], ref["na"])
    for name in ("na", "ok", "big"):
        dst = np.zeros(ref[name].shape, dtype=np.int32, order="F")
        assert h.fill(name, dst) is (name != "ok")
        assert same(dst, ref[name])
    dsts = [np.zeros(ref[n].shape, dtype=np.int32, order="F") for n in ("na", "ok", "big")]
    assert h.fill_many(["na", "ok", "big"], dsts) == ["na", "big"]
    assert h.read("na", [None, np.array([0])])[1] is False  # only the column without it


def test_unknown_tensor_and_closed_handle(tmp_path):
    path = numpy_file(tmp_path, "F32")
    h = S.open_file(str(path))
    with pytest.raises(errors.InvalidArgumentError) as e:
        h.read("nope")
    assert e.value.fields["tensor"] == "nope"
    h.close()
    with pytest.raises(errors.InvalidArgumentError):
        h.read("t1")


def test_unreadable_subbyte_dtype_is_unsupported(tmp_path):
    header = json.dumps(
        {
            "f4": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]},
            "x": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]},
        }
    ).encode()
    path = tmp_path / "f4.safetensors"
    path.write_bytes(
        struct.pack("<Q", len(header)) + header + b"\x12\x34" + np.float32(1.5).tobytes()
    )
    h = S.open_file(str(path))
    assert h.read("x")[0][0] == 1.5
    with pytest.raises(errors.UnsupportedError):
        h.read("f4")


# ---------------------------------------------------------------------------------------------
# Invalid files


def _valid_bytes():
    return safetensors.numpy.save(
        {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(4, dtype=np.int64)}
    )


def _with_header(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def invalid_files():
    good = _valid_bytes()
    n = struct.unpack("<Q", good[:8])[0]
    a = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    return {
        "empty": b"",
        "seven bytes": good[:7],
        "truncated data": good[:-5],
        "truncated header": good[: 8 + n // 2],
        "header longer than file": struct.pack("<Q", len(good)) + good[8:],
        "huge header length": struct.pack("<Q", 2**63) + good[8:],
        "invalid json": struct.pack("<Q", n)
        + b"{"
        + good[9 : 8 + n].replace(b":", b";", 1)
        + good[8 + n :],
        "not an object": _with_header([1, 2], b""),
        "overlap": _with_header(
            {"a": a, "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, bytes(24)
        ),
        "gap": _with_header(
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)
        ),
        "out of range": _with_header(
            {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 240]}}, bytes(24)
        ),
        "shape mismatch": _with_header(
            {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 24]}}, bytes(24)
        ),
        "unknown dtype": _with_header({"a": {**a, "dtype": "F128"}}, bytes(24)),
        "metadata not strings": _with_header({"__metadata__": {"x": 1}, "a": a}, bytes(24)),
        "pickle": pickle.dumps({"weight": [1.0, 2.0, 3.0]}),
        "text": b"this is not a safetensors file, just some text\n" * 3,
    }


@pytest.mark.parametrize("kind", list(invalid_files()))
def test_invalid_files_are_invalid_file_errors(tmp_path, kind):
    data = invalid_files()[kind]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(errors.InvalidFileError) as e:
        S.open_file(str(path))
    assert e.value.fields["path"] == str(path)
    with pytest.raises(errors.InvalidFileError):
        S.deserialize(bytearray(data))
    with pytest.raises(safetensors.SafetensorError):  # the reference library refuses them too
        safetensors.safe_open(str(path), framework="numpy")


def test_torch_pickle_bin_missing_file_and_folder(tmp_path):
    torch.save({"w": torch.zeros(3)}, tmp_path / "pytorch_model.bin")
    for path in (tmp_path / "pytorch_model.bin", tmp_path / "missing.safetensors", tmp_path):
        with pytest.raises(errors.InvalidFileError):
            S.open_file(str(path))


# ---------------------------------------------------------------------------------------------
# Writing


def fortran(x):
    """What reticulate hands Python for an R array: a read-only column-major view."""
    out = np.asfortranarray(x)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_save_default_dtypes_load_identically(tmp_path, shape):
    tensors = {
        "d": fortran(values(np.float64, shape)),
        "i": fortran(values(np.int32, shape)),
        "b": fortran(values(np.bool_, shape)),
    }
    path = S.save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"format": "pt"})
    ref = np_load_file(path)
    with safetensors.safe_open(path, "numpy") as f:
        assert f.metadata() == {"format": "pt"}
    assert {k: v.dtype for k, v in ref.items()} == {"d": np.float64, "i": np.int32, "b": np.bool_}
    for name, want in tensors.items():
        assert same(ref[name], want)


@pytest.mark.parametrize(
    "target, torch_dtype",
    [("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)],
)
def test_save_float_dtypes_round_like_torch(tmp_path, target, torch_dtype):
    x = np.concatenate(
        [
            RNG.standard_normal(5000) * 10,
            [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e6, 65520.0, 3.4e38, 1e-40, 1e-8],
        ]
    )
    x = x.reshape(5010 // 2, 2)
    path = S.save_file({"x": fortran(x)}, str(tmp_path / "x.safetensors"), dtypes={"x": target})
    got = torch_load_file(path)["x"]
    want = torch.from_numpy(x).to(torch_dtype)
    assert got.dtype == torch_dtype
    assert same(got.to(torch.float64).numpy(), want.to(torch.float64).numpy())


@pytest.mark.parametrize("target", ["int64", "int16", "int8", "uint8", "int32"])
def test_save_integer_dtypes(tmp_path, target):
    x = fortran(np.array([[0, 1, 100], [2, 3, 127]], dtype=np.int32))
    path = S.save_file(
        {"x": x, "d": fortran(x.astype(np.float64))},
        str(tmp_path / "x.st"),
        dtypes={"x": target, "d": target},
    )
    ref = np_load_file(path)
    assert ref["x"].dtype == np.dtype(target) and same(ref["x"], x)
    assert ref["d"].dtype == np.dtype(target) and same(ref["d"], x)


def test_global_dtype_applies_to_its_family(tmp_path):
    tensors = {
        "d": fortran(np.ones((2, 2))),
        "i": fortran(np.ones(3, dtype=np.int32)),
        "b": fortran(np.ones(2, dtype=bool)),
    }
    ref = np_load_file(S.save_file(tensors, str(tmp_path / "a.st"), default_dtype="float16"))
    assert [ref[k].dtype for k in "dib"] == [np.float16, np.int32, np.bool_]
    ref = np_load_file(S.save_file(tensors, str(tmp_path / "b.st"), default_dtype="int64"))
    assert [ref[k].dtype for k in "dib"] == [np.float64, np.int64, np.bool_]


@pytest.mark.parametrize(
    "tensors, dtypes",
    [
        ({"x": np.array([1, 300], dtype=np.int32)}, {"x": "int8"}),
        ({"x": np.array([-1], dtype=np.int32)}, {"x": "uint8"}),
        ({"x": np.array([1.5])}, {"x": "int32"}),
        ({"x": np.array([np.nan])}, {"x": "int64"}),
        ({"x": np.array([2.0**63])}, {"x": "int64"}),
        ({"x": np.array([1.0])}, {"x": "bool"}),
        ({"x": np.array([True])}, {"x": "float32"}),
        ({"x": np.array([1.0])}, {"x": "float128"}),
        ({"x": np.array([1.0])}, {"y": "float32"}),
        ({"x": np.array(["a"])}, None),
        ({"": np.array([1.0])}, None),
        ({"__metadata__": np.array([1.0])}, None),
    ],
)
def test_save_refuses_bad_arguments_and_leaves_no_file(tmp_path, tensors, dtypes):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(errors.InvalidArgumentError):
        S.save_file(tensors, str(path), dtypes=dtypes)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.safetensors"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.safetensors"
    S.save_file({"x": np.ones(3)}, str(path))
    before = path.read_bytes()
    with pytest.raises(errors.InvalidArgumentError):  # the second tensor fails after the first
        S.save_file({"a": np.ones(3), "b": np.array([1.5])}, str(path), dtypes={"b": "int8"})
    with pytest.raises(errors.InvalidArgumentError):
        S.save_file({"x": np.ones(3)}, str(path), metadata={"a": 1})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["x.safetensors"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(errors.InvalidArgumentError):
        S.save_file({"x": np.ones(3)}, str(tmp_path / "no" / "such" / "dir.st"))


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_serialize_deserialize_round_trip():
    tensors = {"x": fortran(values(np.float64, (3, 4))), "n": fortran(values(np.int32, (2,)))}
    data = S.serialize(tensors, metadata={"k": "v"})
    assert isinstance(data, bytearray)
    ref = safetensors.numpy.load(bytes(data))
    for name, want in tensors.items():
        assert same(ref[name], want)
    handle = S.deserialize(data)
    assert handle.metadata == {"k": "v"}
    assert same(read_all(handle, True)["x"], tensors["x"])


# ---------------------------------------------------------------------------------------------
# Models: one file, shards, a repo on the mirror


def _tiny_bert(folder, shard_size=None):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    model = BertModel(config).eval()
    kwargs = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(folder, **kwargs)
    return model


def test_open_model_single_and_sharded(tmp_path):
    _tiny_bert(tmp_path / "one")
    _tiny_bert(tmp_path / "sharded", shard_size="20KB")
    assert (tmp_path / "sharded" / S.INDEX).exists()
    one = S.open_model(str(tmp_path / "one"))
    sharded = S.open_model(str(tmp_path / "sharded"))
    assert isinstance(sharded, S.ShardedFile) and len(sharded.files) > 1
    assert sharded.keys() == one.keys()
    assert "total_size" in sharded.metadata
    for name in one.keys():
        assert same(sharded.read(name)[0], one.read(name)[0])
    index = json.loads((tmp_path / "sharded" / S.INDEX).read_text())
    assert set(index["weight_map"]) == set(sharded.keys())


def test_open_model_errors(tmp_path):
    _tiny_bert(tmp_path / "sharded", shard_size="20KB")
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.EntryNotFoundError):
        S.open_model(str(tmp_path / "empty"))
    index_path = tmp_path / "sharded" / S.INDEX
    index = json.loads(index_path.read_text())
    name = next(iter(index["weight_map"]))
    others = sorted(set(index["weight_map"].values()) - {index["weight_map"][name]})
    index["weight_map"][name] = others[0]
    index_path.write_text(json.dumps(index))
    with pytest.raises(errors.InvalidFileError):
        S.open_model(str(tmp_path / "sharded"))
    index_path.write_text("{not json")
    with pytest.raises(errors.InvalidFileError):
        S.open_model(str(tmp_path / "sharded"))


def test_open_model_from_the_hub_mirror(tmp_path, publish, hf_env):
    _tiny_bert(tmp_path / "sharded", shard_size="20KB")
    (tmp_path / "sharded" / "pytorch_model.bin").write_bytes(b"not downloaded")
    publish("st-test/sharded-bert", tmp_path / "sharded")
    handle = S.open_model("st-test/sharded-bert", env=hf_env, quiet=True)
    assert isinstance(handle, S.ShardedFile)
    folder = os.path.dirname(handle.path)
    assert not os.path.exists(os.path.join(folder, "pytorch_model.bin"))
    local = S.open_model(str(tmp_path / "sharded"))
    for name in local.keys():
        assert same(handle.read(name)[0], local.read(name)[0])
    with pytest.raises(errors.RepoNotFoundError):
        S.open_model("st-test/does-not-exist", env=hf_env, quiet=True)


# ---------------------------------------------------------------------------------------------
# Through R (Rscript and reticulate, as users run it)


def run_r(code: str, timeout=300) -> str:
    """Runs R code with hfbridge loaded (pkgload::load_all when HFBRIDGE_LOAD_ALL is set)."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed")
    env = {
        **os.environ,
        "RETICULATE_PYTHON": os.environ.get(
            "RETICULATE_PYTHON", str(ROOT / ".venv" / "bin" / "python")
        ),
        "R_LIBS": os.environ.get("R_LIBS", str(ROOT / ".rlib")),
    }
    prelude = (
        "if (nzchar(Sys.getenv('HFBRIDGE_LOAD_ALL'))) "
        "pkgload::load_all(Sys.getenv('HFBRIDGE_LOAD_ALL'), quiet = TRUE) else "
        "suppressPackageStartupMessages(library(hfbridge))\n"
    )
    out = subprocess.run(
        ["Rscript", "-e", prelude + code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def r_string(path) -> str:
    return json.dumps(str(path))


@pytest.mark.r
def test_python_to_r_to_python_to_r_every_dtype(tmp_path):
    """Python writes every dtype; R reads and saves; Python reads that and saves again; R reads
    it: the values are identical along the way (R's types per the dtype table)."""
    sources = [numpy_file(tmp_path, c) for c in NUMPY_DTYPES if c != "C64"]
    sources += [torch_file(tmp_path, c) for c in ("BF16", "F8_E4M3")]
    code = "\n".join(
        f"w <- suppressWarnings(safe_load_file({r_string(p)}))\n"
        f"safe_save_file(w, {r_string(p.with_suffix('.r.safetensors'))}, "
        "metadata = attr(w, 'metadata'))"
        for p in sources
    )
    run_r(code)
    for p in sources:
        code_ = p.stem
        ref = {
            k: v.to(torch.float64).numpy() if isinstance(v, torch.Tensor) else v
            for k, v in (
                torch_load_file(str(p)) if code_ in TORCH_DTYPES else np_load_file(str(p))
            ).items()
        }
        from_r = np_load_file(str(p.with_suffix(".r.safetensors")))
        r_type = S.DTYPES[code_].r_type
        expected_dtype = {"double": np.float64, "integer": np.int32, "logical": np.bool_}[r_type]
        for name, want in ref.items():
            got = from_r[name]
            want_shape = want.shape if want.shape else (1,)  # a 0-d tensor comes back as length 1
            assert got.dtype == expected_dtype and got.shape == want_shape, (code_, name)
            assert same(got.reshape(want.shape), want.astype(expected_dtype)), (code_, name)
        np_save_file(from_r, str(p.with_suffix(".py.safetensors")))
    code = "\n".join(
        f"a <- safe_load_file({r_string(p.with_suffix('.r.safetensors'))})\n"
        f"b <- safe_load_file({r_string(p.with_suffix('.py.safetensors'))})\n"
        "stopifnot(identical(names(a), names(b)), "
        "identical(lapply(a, function(x) x), lapply(b, function(x) x)))"
        for p in sources
    )
    run_r(code + "\ncat('identical\\n')")


@pytest.mark.r
@pytest.mark.slow
def test_weights_saved_from_r_give_the_same_logits(tmp_path):
    """GPT-2 and BERT: read the weights in R, save them from R unchanged, load with
    transformers' from_pretrained: same logits."""
    from transformers import AutoModel, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=101, n_positions=32, n_embd=24, n_layer=2, n_head=2)
    ).eval()
    gpt2.save_pretrained(tmp_path / "gpt2")
    _tiny_bert(tmp_path / "bert")
    for name in ("gpt2", "bert"):
        shutil.copytree(tmp_path / name, tmp_path / f"{name}-r")
        os.remove(tmp_path / f"{name}-r" / "model.safetensors")
    run_r(
        "\n".join(
            f"w <- safe_load_file({r_string(tmp_path / name / 'model.safetensors')})\n"
            f"safe_save_file(w, {r_string(tmp_path / f'{name}-r' / 'model.safetensors')}, "
            "metadata = attr(w, 'metadata'), dtype = 'float32')"
            for name in ("gpt2", "bert")
        )
    )
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    for name, cls in (("gpt2", AutoModelForCausalLM), ("bert", AutoModel)):
        original = cls.from_pretrained(tmp_path / name).eval()
        from_r = cls.from_pretrained(tmp_path / f"{name}-r").eval()
        with torch.no_grad():
            a, b = original(ids)[0], from_r(ids)[0]
        assert torch.equal(a, b), name
        ref = torch_load_file(str(tmp_path / name / "model.safetensors"))
        got = torch_load_file(str(tmp_path / f"{name}-r" / "model.safetensors"))
        assert ref.keys() == got.keys()
        assert all(torch.equal(ref[k], got[k]) for k in ref)


@pytest.mark.parametrize("metadata", [None, {}, {"a": "b"}])
def test_no_tensors_make_a_valid_file(tmp_path, metadata):
    """safetensors 0.8.0 itself writes invalid JSON for no tensors with empty metadata."""
    path = S.save_file({}, str(tmp_path / "x.safetensors"), metadata=metadata)
    with safetensors.safe_open(path, "numpy") as f:
        assert f.keys() == [] and f.metadata() == metadata
    assert np_load_file(path) == {}
    assert safetensors.numpy.load(bytes(S.serialize([], metadata=metadata))) == {}
    assert S.open_file(path).metadata == metadata


def test_fill_many_equals_fill(tmp_path):
    path = numpy_file(tmp_path, "I64")
    h = S.open_file(str(path))
    names = h.offset_keys()
    shapes = dict(zip(h.info()["names"], _shapes(h.info())))
    dsts = [np.zeros(shapes[n] or (1,), order="F") for n in names]
    assert h.fill_many(names, dsts) == []
    ref = np_load_file(str(path))
    for name, dst in zip(names, dsts):
        assert same(dst.reshape(shapes[name]), ref[name])
    with pytest.raises(errors.InvalidArgumentError):
        h.fill_many(names, dsts[:-1])


def test_tensors_larger_than_a_piece_are_shared_between_threads(tmp_path):
    rows = F._PIECE // 500 + 300  # a few pieces, the last one short
    tensors = {
        "mat": RNG.standard_normal((rows, 1000)).astype(np.float32),
        "vec": RNG.standard_normal(F._PIECE * 2 + 7).astype(np.float16),
        "cube": RNG.integers(-9, 9, (rows // 10, 40, 30)).astype(np.int16),
        "small": np.arange(6, dtype=np.int64).reshape(2, 3),
    }
    path = str(tmp_path / "x.safetensors")
    np_save_file(tensors, path)
    h = S.open_file(path)
    pieces = h._fill_copy("mat", np.zeros((rows, 1000), order="F"), None, "double", False).pieces()
    assert len(pieces) > 2 and sum(n for _, n in pieces) == rows * 1000
    for reversed_ in (False, True):
        names = h.offset_keys()
        dsts = [
            np.zeros(
                tensors[n].shape[::-1] if reversed_ else tensors[n].shape,
                dtype=S.DTYPES[h.tensor_info(n).dtype.code].wire,
                order="F",
            )
            for n in names
        ]
        assert h.fill_many(names, dsts, reversed=reversed_) == []
        for name, dst in zip(names, dsts):
            assert same(dst.T if reversed_ else dst, tensors[name])


def test_an_error_on_a_worker_thread_reaches_r_with_its_fields(tmp_path):
    path = str(tmp_path / "x.safetensors")
    np_save_file(
        {"a": np.zeros(F._PIECE + 1, dtype=np.int64), "big": np.array([2**53 + 1], dtype=np.int64)},
        path,
    )
    h = S.open_file(path)
    with pytest.raises(errors.UnsupportedError) as raised:  # "a" is two tasks, "big" the last
        h.fill_many(["a", "big"], [np.zeros(F._PIECE + 1), np.zeros(1)], int64="error")
    assert raised.value.code == "unsupported" and raised.value.fields["tensor"] == "big"


@pytest.mark.parametrize("code", ["F32", "BF16", "I16", "BOOL", "C64"])
def test_reversed_layout_is_the_row_major_order(tmp_path, code):
    path = torch_file(tmp_path, code) if code in TORCH_DTYPES else numpy_file(tmp_path, code)
    h = S.open_file(str(path))
    for name, shape in zip(h.info()["names"], _shapes(h.info())):
        want, _ = h.read(name)
        got, _ = h.read(name, reversed=True)
        assert got.shape == shape[::-1] and got.flags.f_contiguous
        assert same(got, want.T)
        if S.DTYPES[code].wire.kind in "fi":
            dst = np.zeros(shape[::-1] or (1,), dtype=S.DTYPES[code].wire, order="F")
            h.fill(name, dst, reversed=True)
            assert same(dst.reshape(shape[::-1]), want.T)
    tensors = {
        "m": fortran(values(np.float64, (3, 5)).T),
        "c": fortran(values(np.int32, (2, 3, 4)).T),
    }
    out = np_load_file(S.save_file(tensors, str(tmp_path / "r.st"), reversed=True))
    assert same(out["m"], tensors["m"].T) and same(out["c"], tensors["c"].T)


def test_the_documented_dtype_table_lists_every_dtype():
    docs = (ROOT / "rpackage" / "R" / "safetensors_load.R").read_text()
    table = S.dtype_table()
    for code, r_type, readable in zip(table["dtype"], table["r_type"], table["readable"]):
        row = next(line for line in docs.splitlines() if f"`{code}`" in line and "#' |" in line)
        assert (r_type in row) if readable else ("unsupported" in row), code


def test_save_refuses_a_device_or_a_pipe_and_follows_a_link(tmp_path):
    x = {"x": fortran(values(np.float64, (2, 3)))}
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(errors.InvalidArgumentError, match="not a regular file"):
        S.save_file(x, str(pipe))
    assert pipe.is_fifo()  # still a pipe, not replaced by a regular file
    assert os.listdir(tmp_path) == ["pipe"]  # and no temporary file left
    target = tmp_path / "real.safetensors"
    target.write_bytes(b"old")
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    assert S.save_file(x, str(link)) == str(link)
    assert link.is_symlink() and same(np_load_file(str(target))["x"], x["x"])


def test_save_to_a_full_disk_is_a_storage_error_and_leaves_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        with pytest.raises(errors.StorageError) as raised:
            S.save_file({"x": fortran(values(np.float64, (200, 100)))}, str(disk / "x.st"))
        assert raised.value.fields == {
            "path": str(disk / "x.st"),
            "reason": "no space is left on its device",
        }
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
