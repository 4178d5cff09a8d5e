"""The local Hub mirror, driven by the real huggingface_hub client over HTTP."""

from __future__ import annotations

import huggingface_hub as hh


def _tiny(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "x.txt").write_text("hi")
    return folder


def test_download_and_snapshot(mirror, hf_env, publish, tmp_path):
    publish("mtest/basic", _tiny(tmp_path))
    cache = hf_env["HF_HOME"] + "/hub"
    path = hh.hf_hub_download("mtest/basic", "config.json", endpoint=mirror.url, cache_dir=cache)
    assert open(path).read() == '{"a": 1}'
    snap = hh.snapshot_download("mtest/basic", endpoint=mirror.url, cache_dir=cache)
    assert open(f"{snap}/sub/x.txt").read() == "hi"
