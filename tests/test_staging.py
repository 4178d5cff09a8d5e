"""What a killed save leaves behind (a half-written safetensors file, a model folder, a fast-path
conversion) is removed by the next save into the same folder; a live save's is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import safetensors.numpy

from pybridge import fastpath, model_folder, staging
from pybridge import safetensors as st

BIG = "np.zeros((64, 1024, 1024), dtype=np.float32)"  # 256 MB: long enough to be caught


def _save_in_another_process(code: str, parent: Path):
    """The process running ``code`` and the staging entry it made in ``parent``, caught as soon
    as it appears: the process is still writing."""
    before = set(parent.iterdir())
    proc = subprocess.Popen([sys.executable, "-c", "import numpy as np\n" + code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [p for p in set(parent.iterdir()) - before if p.name.startswith(".")]
        if new:
            return proc, new[0]
        assert proc.poll() is None, "the save ended before it was caught"
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("no staging entry appeared")


def _kill(proc):
    proc.kill()
    proc.wait()


def test_a_killed_safetensors_save_is_cleared_by_the_next_save(tmp_path):
    target = tmp_path / "w.safetensors"
    code = f"from pybridge import safetensors as st; st.save_file({{'w': {BIG}}}, {str(target)!r})"
    proc, partial = _save_in_another_process(code, tmp_path)
    _kill(proc)
    assert partial.exists() and not target.exists()
    st.save_file({"w": np.arange(3.0)}, str(target))
    assert not partial.exists()
    assert list(safetensors.numpy.load_file(target)["w"]) == [0.0, 1.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_a_live_save_keeps_its_staging_file(tmp_path):
    target = tmp_path / "w.safetensors"
    code = f"from pybridge import safetensors as st; st.save_file({{'w': {BIG}}}, {str(target)!r})"
    proc, partial = _save_in_another_process(code, tmp_path)
    try:
        os.kill(proc.pid, 19)  # SIGSTOP: still alive, mid-write
        staging.clear_abandoned(str(tmp_path), "w.safetensors")
        assert partial.exists()
    finally:
        _kill(proc)


def test_a_killed_model_save_is_cleared_by_the_next_save(tmp_path):
    folder = tmp_path / "model"
    code = (
        "from pybridge import model_folder\n"
        f"model_folder.save_model({str(folder)!r}, {{'w': {BIG}}}, {{'model_type': 'bert'}})"
    )
    proc, partial = _save_in_another_process(code, tmp_path)
    _kill(proc)
    assert partial.is_dir()
    model_folder.save_model(str(folder), {"w": np.ones((2, 2))}, {"model_type": "bert"})
    assert not partial.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_killed_conversion_is_cleared_by_the_next_one(tmp_path):
    where = tmp_path / "base-torch-bf16"
    code = (
        "import time\nfrom pybridge import fastpath\n"
        f"fastpath.store({str(where)!r}, lambda tmp: time.sleep(120))"
    )
    proc, partial = _save_in_another_process(code, tmp_path)
    _kill(proc)
    quality = {"format": fastpath.FORMAT, "cosine_min": 1.0}
    fastpath.store(str(where), lambda tmp: fastpath._write_quality(tmp, quality))
    assert not partial.exists()
    assert fastpath.read_quality(str(where)) == quality
    assert [p.name for p in tmp_path.iterdir()] == ["base-torch-bf16"]


def test_a_conversion_another_process_placed_first_is_kept(tmp_path):
    where = tmp_path / "base-torch-bf16"
    theirs = {"format": fastpath.FORMAT, "cosine_min": 0.5}

    def slow_write(tmp):  # another process finishes while this one converts
        fastpath.store(str(where), lambda other: fastpath._write_quality(other, theirs))
        fastpath._write_quality(tmp, {**theirs, "cosine_min": 1.0})

    fastpath.store(str(where), slow_write)
    assert fastpath.read_quality(str(where)) == theirs
    assert [p.name for p in tmp_path.iterdir()] == ["base-torch-bf16"]
