"""pybridge.hub and pybridge.cache against the local mirror, compared with huggingface_hub
itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub as hfh
import pytest

from pybridge import cache, errors, hub, hub_call, settings
from pybridge.fixtures import models

TINY = "hubtest/tiny"
GIT = "hubtest/versions"
SECRET = "hf_hubtestSecretToken0123456789"


def _tiny_folder(tmp_path) -> Path:
    folder = tmp_path / "tiny-src"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "tiny", "n": 3}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0"}))
    (folder / "vocab.txt").write_text("a\nb\nc\n")
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (folder / "sub" / "extra.json").write_text("{}")
    return folder


@pytest.fixture
def tiny(tmp_path, publish):
    folder = _tiny_folder(tmp_path)
    publish(TINY, folder)
    return folder


@pytest.fixture
def versions(mirror_root):
    """A git repo in the store: tag v1 has config n=1; main has n=2 and a new file."""
    folder = Path(mirror_root, "models", *GIT.split("/"))
    if not (folder / ".git").exists():
        folder.mkdir(parents=True, exist_ok=True)
        git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
        (folder / "config.json").write_text('{"n": 1}')
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
        subprocess.run(git + ["tag", "v1"], check=True)
        (folder / "config.json").write_text('{"n": 2}')
        (folder / "new.txt").write_text("new")
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "two"], check=True)
    return folder


def _ref_cache(tmp_path):
    return str(tmp_path / "reference-cache")


def test_download_matches_huggingface_hub(hf_env, mirror, tiny, tmp_path):
    path = hub.download(TINY, "config.json", env=hf_env)
    ref = hfh.hf_hub_download(
        TINY, "config.json", endpoint=mirror.url, cache_dir=_ref_cache(tmp_path), token=False
    )
    assert Path(path).read_bytes() == Path(ref).read_bytes() == (tiny / "config.json").read_bytes()
    assert (
        Path(path).relative_to(Path(hf_env["HF_HOME"], "hub")).parts[:3]
        == Path(ref).relative_to(_ref_cache(tmp_path)).parts[:3]
    )
    sub = hub.download(TINY, "sub/extra.json", env=hf_env)
    assert sub.endswith(os.path.join("sub", "extra.json"))


def test_pinned_and_offline_make_no_request(hf_env, mirror, tiny):
    sha = hub.repo_info(TINY, env=hf_env)["sha"]
    first = hub.download(TINY, "weights.bin", env=hf_env)
    mirror.reset_stats()
    for _ in range(5):
        assert hub.download(TINY, "weights.bin", revision=sha, env=hf_env) == first
    assert hub.download(TINY, "weights.bin", env={**hf_env, "HF_HUB_OFFLINE": "1"}) == first
    assert hub.download(TINY, "weights.bin", local_files_only=True, env=hf_env) == first
    assert mirror.stats()["total"] == 0


def test_offline_not_cached(hf_env, mirror, tiny):
    mirror.reset_stats()
    with pytest.raises(errors.OfflineNotCachedError) as info:
        hub.download(TINY, "config.json", env={**hf_env, "HF_HUB_OFFLINE": "1"})
    assert info.value.fields["repo_id"] == TINY and info.value.fields["filename"] == "config.json"
    with pytest.raises(errors.OfflineNotCachedError):
        hub.download(TINY, "config.json", local_files_only=True, env=hf_env)
    with pytest.raises(errors.OfflineNotCachedError):
        hub.snapshot(TINY, env={**hf_env, "HF_HUB_OFFLINE": "1"})
    assert mirror.stats()["total"] == 0


def test_snapshot_patterns_match_huggingface_hub(hf_env, mirror, tiny, tmp_path):
    cases = [
        (None, None),
        (["*.json"], None),
        (["*.json", "*.txt"], ["sub/*"]),
        ("vocab.txt", None),
    ]
    for i, (allow, ignore) in enumerate(cases):
        env = {**hf_env, "HF_HOME": str(tmp_path / f"home{i}")}
        folder = hub.snapshot(
            TINY, allow_patterns=allow, ignore_patterns=ignore, env=env, quiet=True
        )
        ref = hfh.snapshot_download(
            TINY,
            allow_patterns=allow,
            ignore_patterns=ignore,
            endpoint=mirror.url,
            cache_dir=str(tmp_path / f"ref{i}"),
            token=False,
        )
        ours = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())
        theirs = sorted(str(p.relative_to(ref)) for p in Path(ref).rglob("*") if p.is_file())
        assert ours == theirs and ours


def test_revisions_count(hf_env, mirror, versions):
    old = hub.download(GIT, "config.json", revision="v1", env=hf_env)
    new = hub.download(GIT, "config.json", env=hf_env)
    assert json.loads(Path(old).read_text()) == {"n": 1}
    assert json.loads(Path(new).read_text()) == {"n": 2}
    assert sorted(os.listdir(hub.snapshot(GIT, revision="v1", env=hf_env))) == ["config.json"]
    assert sorted(os.listdir(hub.snapshot(GIT, env=hf_env))) == ["config.json", "new.txt"]
    assert hub.list_files(GIT, revision="v1", env=hf_env) == ["config.json"]
    assert hub.file_exists(GIT, "new.txt", env=hf_env)
    assert not hub.file_exists(GIT, "new.txt", revision="v1", env=hf_env)
    with pytest.raises(errors.RevisionNotFoundError) as info:
        hub.download(GIT, "config.json", revision="v9", env=hf_env)
    assert info.value.fields["revision"] == "v9"


def test_repo_info_list_files_file_exists_match_hfapi(hf_env, mirror, tiny):
    api = hfh.HfApi(endpoint=mirror.url, token=False)
    ref = api.repo_info(TINY, files_metadata=True)
    info = hub.repo_info(TINY, env=hf_env)
    assert info["id"] == ref.id and info["sha"] == ref.sha
    assert info["path"] == [s.rfilename for s in ref.siblings]
    assert info["size"].dtype.name == "float64"
    assert list(info["size"]) == [float(s.size) for s in ref.siblings]
    assert hub.list_files(TINY, env=hf_env) == api.list_repo_files(TINY)
    for name in ("config.json", "sub/extra.json", "missing.bin"):
        assert hub.file_exists(TINY, name, env=hf_env) == api.file_exists(TINY, name)
    assert hub.file_exists("hubtest/no-such-repo", "x", env=hf_env) is False


def test_file_exists_downloads_nothing(hf_env, mirror, tiny):
    mirror.reset_stats()
    assert hub.file_exists(TINY, "weights.bin", env=hf_env)
    assert mirror.stats()["by_method"].get("GET", 0) == 0
    assert not Path(hf_env["HF_HOME"], "hub").exists() or not any(
        Path(hf_env["HF_HOME"], "hub").rglob("weights.bin")
    )


def test_load_three_forms(hf_env, mirror, tiny, tmp_path):
    target = tmp_path / "into"
    res = hub.load(
        [
            TINY,
            [TINY, str(target)],
            {"repo_id": TINY, "allow_patterns": ["*.txt"], "revision": "main"},
        ],
        env=hf_env,
        quiet=True,
    )
    assert res["repo_id"] == [TINY] * 3
    full, local, txt = res["path"]
    assert local == str(target) and (target / "weights.bin").exists()
    assert (Path(full) / "weights.bin").exists()
    with pytest.raises(errors.InvalidArgumentError):
        hub.load([{"repo_id": TINY, "nonsense": 1}], env=hf_env)
    with pytest.raises(errors.InvalidArgumentError):
        hub.load([42], env=hf_env)
    pair = hub.load([TINY, "./rel"], cwd=str(tmp_path), env=hf_env, quiet=True)  # R's c(id, dir)
    assert pair["path"] == [str(tmp_path / "rel")] and (tmp_path / "rel" / "weights.bin").exists()


def test_local_folder(hf_env, mirror, tiny, tmp_path):
    assert hub.local_folder(str(tiny)) == str(tiny)
    folder = hub.local_folder(TINY, allow_patterns=["*.json"], env=hf_env)
    assert sorted(p.name for p in Path(folder).glob("*.json")) == ["config.json", "tokenizer.json"]
    assert not (Path(folder) / "weights.bin").exists()
    with pytest.raises(errors.InvalidArgumentError):
        hub.local_folder(str(tmp_path / "does-not-exist"))


def test_not_found_errors(hf_env, mirror, tiny):
    with pytest.raises(errors.RepoNotFoundError) as info:
        hub.download("nonexistent/model", "file.bin", env=hf_env)
    assert "check the repo id" in str(info.value).lower()
    assert info.value.fields == {
        "repo_id": "nonexistent/model",
        "revision": "main",
        "repo_type": "model",
        "filename": "file.bin",
    }
    with pytest.raises(errors.EntryNotFoundError) as info:
        hub.download(TINY, "file.bin", env=hf_env)
    assert "hub_list_files" in str(info.value)
    with pytest.raises(errors.RepoNotFoundError):
        hub.repo_info("hubtest/no-such-repo", env=hf_env)
    with pytest.raises(errors.RepoNotFoundError):
        hub.snapshot(TINY, repo_type="dataset", env=hf_env)


def test_gated_and_auth(hf_env, mirror, mirror_config, tiny):
    mirror_config({"gated": {TINY: ["hf_grantedToken0123456789"]}, "tokens": [SECRET]})
    with pytest.raises(errors.GatedRepoError) as info:
        hub.download(TINY, "config.json", env=hf_env)
    assert "HF_TOKEN" in str(info.value)
    with pytest.raises(errors.GatedRepoError):
        hub.download(TINY, "config.json", env={**hf_env, "HF_TOKEN": SECRET})
    bad = "hf_notKnownAnywhere0123456789"
    with pytest.raises(errors.AuthError) as info:
        hub.download(TINY, "config.json", env=hf_env, token=bad)
    assert bad not in str(info.value) and bad not in repr(info.value.fields)
    path = hub.download(
        TINY, "config.json", env={**hf_env, "HF_TOKEN": "hf_grantedToken0123456789"}
    )
    assert Path(path).exists()


def test_token_file_is_used(hf_env, mirror, mirror_config, tiny):
    mirror_config({"gated": {TINY: ["hf_grantedToken0123456789"]}})
    Path(hf_env["HF_HOME"]).mkdir(parents=True, exist_ok=True)
    Path(hf_env["HF_HOME"], "token").write_text("hf_grantedToken0123456789\n")
    assert Path(hub.download(TINY, "vocab.txt", env=hf_env)).exists()


def test_network_error_after_retries(hf_env, mirror, tiny):
    mirror.set_faults(
        [{"path": f"/api/models/{TINY}*", "kind": "status", "status": 503, "times": -1}]
    )
    mirror.reset_stats()
    with pytest.raises(errors.NetworkError) as info:
        hub.repo_info(TINY, env=hf_env)
    assert mirror.stats()["by_status"].get("503") == hub_call.RETRIES
    assert "HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(errors.NetworkError):  # nothing listens on port 9
        hub.repo_info(TINY, env={**hf_env, "HF_ENDPOINT": "http://127.0.0.1:9"})


def test_get_5xx_is_retried(hf_env, mirror, tiny):
    mirror.set_faults(
        [
            {
                "path": f"{TINY}/weights.bin",
                "kind": "status",
                "status": 503,
                "times": 2,
                "method": "GET",
            }
        ]
    )
    path = hub.download(TINY, "weights.bin", env=hf_env, quiet=True)
    assert Path(path).read_bytes() == (tiny / "weights.bin").read_bytes()
    mirror.set_faults(
        [
            {
                "path": f"{TINY}/vocab.txt",
                "kind": "status",
                "status": 503,
                "times": -1,
                "method": "GET",
            }
        ]
    )
    with pytest.raises(errors.NetworkError):
        hub.download(TINY, "vocab.txt", env=hf_env, quiet=True)


def test_connection_closed_mid_body_is_resumed(hf_env, mirror, tiny):
    mirror.set_faults([{"path": f"{TINY}/weights.bin", "kind": "close", "times": 1}])
    path = hub.download(TINY, "weights.bin", env=hf_env, quiet=True)
    assert Path(path).read_bytes() == (tiny / "weights.bin").read_bytes()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(repo_id="", filename="a"),
        dict(repo_id=None, filename="a"),
        dict(repo_id=3, filename="a"),
        dict(repo_id=TINY, filename="../etc/passwd"),
        dict(repo_id=TINY, filename="/abs"),
        dict(repo_id=TINY, filename=""),
        dict(repo_id=TINY, filename="a", repo_type="modle"),
        dict(repo_id=TINY, filename="a", revision=""),
        dict(repo_id=TINY, filename="a", force_download=True, local_files_only=True),
    ],
)
def test_invalid_arguments(hf_env, kwargs):
    with pytest.raises(errors.InvalidArgumentError):
        hub.download(env=hf_env, **kwargs)


def test_quiet_restores_progress_bars(hf_env, mirror, tiny):
    from huggingface_hub.utils import are_progress_bars_disabled

    before = are_progress_bars_disabled()
    hub.download(TINY, "config.json", env=hf_env, quiet=True)
    assert are_progress_bars_disabled() == before


def _snapshot_stderr(hf_env) -> str:
    code = f"from pybridge import hub; hub.snapshot({TINY!r})"
    env = {**os.environ, **hf_env}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stderr


def test_progress_bars_show_only_for_slow_downloads(hf_env, mirror, tiny):
    assert "Fetching" not in _snapshot_stderr(hf_env)  # small files: no bar at all
    slow = {**hf_env, "HF_HOME": hf_env["HF_HOME"] + "-slow"}
    mirror.set_faults(
        [
            {
                "path": f"{TINY}/weights.bin",
                "kind": "delay",
                "seconds": hub_call.BAR_DELAY + 1,
                "method": "GET",
            }
        ]
    )
    assert "Fetching" in _snapshot_stderr(slow)


def test_offline_switch_is_restored(hf_env, mirror, tiny):
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    with pytest.raises(errors.OfflineNotCachedError):
        hub.download(TINY, "config.json", env={**hf_env, "HF_HUB_OFFLINE": "1"})
    assert constants.HF_HUB_OFFLINE == before


def test_cache_scan_and_delete_match_scan_cache_dir(hf_env, mirror, tiny, versions):
    hub.download(TINY, "config.json", env=hf_env)
    hub.download(GIT, "config.json", revision="v1", env=hf_env)
    hub.download(GIT, "config.json", env=hf_env)
    cache_dir = os.path.join(hf_env["HF_HOME"], "hub")
    table = cache.scan(env=hf_env)
    ref = {r.repo_id: r for r in hfh.scan_cache_dir(cache_dir).repos}
    assert sorted(table["repo_id"]) == sorted(ref)
    for i, repo_id in enumerate(table["repo_id"]):
        assert table["size_on_disk"][i] == ref[repo_id].size_on_disk
        assert table["nb_files"][i] == ref[repo_id].nb_files
        assert table["path"][i] == str(ref[repo_id].repo_path)
    row = table["repo_id"].index(GIT)
    labels = table["revisions"][row].split("; ")
    assert sorted(label.split("@")[0] for label in labels) == ["main", "v1"]
    res = cache.delete(GIT, revision="v1", env=hf_env)
    assert len(res["commits"]) == 1
    assert [len(r.revisions) for r in hfh.scan_cache_dir(cache_dir).repos if r.repo_id == GIT] == [
        1
    ]
    cache.delete(TINY, env=hf_env)
    assert TINY not in [r.repo_id for r in hfh.scan_cache_dir(cache_dir).repos]
    with pytest.raises(errors.RepoNotFoundError):
        cache.delete(TINY, env=hf_env)
    with pytest.raises(errors.RevisionNotFoundError):
        cache.delete(GIT, revision="nope", env=hf_env)


def test_cache_scan_of_missing_cache(tmp_path):
    table = cache.scan(env={"HF_HOME": str(tmp_path / "none")})
    assert table["repo_id"] == [] and len(table["size_on_disk"]) == 0


def test_cache_is_shared_with_huggingface_hub_offline(hf_env, mirror, tiny):
    path = hub.download(TINY, "vocab.txt", env=hf_env)
    code = f"import huggingface_hub as h, sys; print(h.hf_hub_download({TINY!r}, 'vocab.txt'))"
    env = {**os.environ, **hf_env, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == path


def test_hub_imports_neither_torch_nor_transformers(hf_env, tiny):
    code = (
        "import sys\n"
        "from pybridge import hub, cache\n"
        f"hub.download({TINY!r}, 'config.json')\n"
        f"hub.snapshot({TINY!r}, allow_patterns=['*.txt'])\n"
        f"hub.repo_info({TINY!r}); cache.scan()\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print(','.join(bad) or 'clean')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **hf_env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "clean"


@pytest.mark.slow
def test_demo_fixture_models_are_deterministic(tmp_path):
    a = models.ensure(tmp_path / "a", names=["gpt2"])["gpt2"]
    b = models.ensure(tmp_path / "b", names=["gpt2"])["gpt2"]
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert Path(a, name).read_bytes() == Path(b, name).read_bytes()


def test_dataset_repos(hf_env, mirror, publish, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_text("a,b\n1,2\n")
    publish("hubtest/data", folder, repo_type="dataset")
    path = hub.download("hubtest/data", "train.csv", repo_type="dataset", env=hf_env)
    assert "datasets--hubtest--data" in path
    with pytest.raises(errors.RepoNotFoundError):
        hub.download("hubtest/data", "train.csv", env=hf_env)
    table = cache.scan(env=hf_env)
    assert table["repo_type"] == ["dataset"]
    cache.delete("hubtest/data", repo_type="dataset", env=hf_env)
    assert cache.scan(env=hf_env)["repo_id"] == []


# ---------------------------------------------------------------------------------------------
# Environment variables that huggingface_hub honours (docs/environment.md)


def test_transformers_offline_sends_no_request(hf_env, mirror, tiny):
    path = hub.download(TINY, "config.json", env=hf_env)
    offline = {**hf_env, "TRANSFORMERS_OFFLINE": "1"}
    mirror.reset_stats()
    assert hub.download(TINY, "config.json", env=offline) == path
    assert hub.file_exists(TINY, "config.json", env=offline)
    with pytest.raises(errors.OfflineNotCachedError):
        hub.download(TINY, "vocab.txt", env=offline)
    with pytest.raises(errors.OfflineNotCachedError):
        hub.repo_info(TINY, env=offline)
    assert mirror.stats()["total"] == 0
    # as in huggingface_hub, HF_HUB_OFFLINE=0 set explicitly wins over TRANSFORMERS_OFFLINE
    assert Path(hub.download(TINY, "vocab.txt", env={**offline, "HF_HUB_OFFLINE": "0"})).exists()


def test_huggingface_hub_cache_is_the_cache_python_uses(hf_env, mirror, tiny, tmp_path):
    env = {**hf_env, "HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy-cache")}
    path = hub.download(TINY, "vocab.txt", env=env)
    assert Path(path).is_relative_to(tmp_path / "legacy-cache")
    code = f"import huggingface_hub as h; print(h.hf_hub_download({TINY!r}, 'vocab.txt'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env, "HF_HUB_OFFLINE": "1"},
    )
    assert out.stdout.strip() == path


def test_progress_bars_variable_set_after_start_is_honoured(hf_env, mirror, tiny):
    # The variable reaches pybridge only through env=, as from R after Python started.
    mirror.set_faults(
        [
            {
                "path": f"{TINY}/weights.bin",
                "kind": "delay",
                "seconds": hub_call.BAR_DELAY + 1,
                "method": "GET",
            }
        ]
    )
    code = (
        f"from pybridge import hub; hub.snapshot({TINY!r}, "
        f"env={{**{hf_env!r}, 'HF_HUB_DISABLE_PROGRESS_BARS': '1'}})"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert any(
        k.startswith(f"GET /{TINY}/resolve/") and k.endswith("/weights.bin")
        for k in mirror.stats()["by_path"]
    )  # the slow file was fetched
    assert "Fetching" not in out.stderr and "%" not in out.stderr


def test_huggingface_hub_constants_follow_each_call_and_are_restored(hf_env):
    from huggingface_hub import constants

    before = {n: getattr(constants, n) for n in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DISABLE_XET")}
    s = settings.resolve({**hf_env, "HF_HUB_ETAG_TIMEOUT": "4", "HF_HUB_DISABLE_XET": "1"})
    with hub_call.call_state(s, quiet=False):
        assert constants.HF_HUB_ETAG_TIMEOUT == 4 and constants.HF_HUB_DISABLE_XET is True
    assert {n: getattr(constants, n) for n in before} == before


# ---------------------------------------------------------------------------------------------
# Caches written by hfhub (the R package): refs/<branch> ends with a newline


def _as_hfhub_leaves_it(hf_env, repo_id) -> Path:
    """refs/main rewritten with the trailing newline hfhub's writeLines() adds."""
    ref = Path(hf_env["HF_HOME"], "hub", cache.repo_folder_name(repo_id), "refs", "main")
    ref.write_text(ref.read_text() + "\n")
    return ref


def test_offline_lookups_by_branch_read_hfhub_refs(hf_env, mirror, tiny):
    path = hub.download(TINY, "config.json", env=hf_env)
    folder = hub.snapshot(TINY, allow_patterns=["*.json"], env=hf_env)
    commit = hub.repo_info(TINY, env=hf_env)["sha"]
    offline = {**hf_env, "HF_HUB_OFFLINE": "1"}
    ref = _as_hfhub_leaves_it(hf_env, TINY)
    mirror.reset_stats()
    assert hub.download(TINY, "config.json", env=offline) == path
    _as_hfhub_leaves_it(hf_env, TINY)
    assert hub.snapshot(TINY, allow_patterns=["*.json"], env=offline) == folder
    _as_hfhub_leaves_it(hf_env, TINY)
    assert hub.file_exists(TINY, "config.json", env=offline)
    assert mirror.stats()["total"] == 0
    # The ref now holds the bare commit, so Python's huggingface_hub reads it too.
    assert ref.read_text() == commit
    code = f"import huggingface_hub as h; print(h.hf_hub_download({TINY!r}, 'config.json'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **offline},
    )
    assert out.stdout.strip() == path


@contextlib.contextmanager
def _read_only(folder: Path):
    """No file can be created or renamed in ``folder`` (for root too: chattr +i)."""
    immutable = os.geteuid() == 0 and shutil.which("chattr")
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        try:
            (folder / "probe").touch()
        except OSError:
            yield
        else:
            pytest.skip(f"cannot make {folder} read-only here")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_a_read_only_hfhub_ref_still_resolves_offline(hf_env, mirror, tiny):
    path = hub.download(TINY, "config.json", env=hf_env)
    ref = _as_hfhub_leaves_it(hf_env, TINY)
    with _read_only(ref.parent):  # the ref cannot be healed: it stays as hfhub wrote it
        assert hub.download(TINY, "config.json", env={**hf_env, "HF_HUB_OFFLINE": "1"}) == path
        assert ref.read_text().endswith("\n")


def test_cache_scan_lists_hfhub_caches_and_reports_what_it_cannot_read(hf_env, mirror, tiny):
    hub.download(TINY, "config.json", env=hf_env)
    _as_hfhub_leaves_it(hf_env, TINY)
    broken = Path(hf_env["HF_HOME"], "hub", "models--hubtest--broken")
    (broken / "refs").mkdir(parents=True)  # no snapshots folder
    table = cache.scan(env=hf_env)
    assert table["repo_id"] == [TINY]
    assert "main@" in table["revisions"][0]
    ref = hfh.scan_cache_dir(Path(hf_env["HF_HOME"], "hub"))
    assert table["warnings"] == [str(w) for w in ref.warnings] and len(table["warnings"]) == 1
    assert "models--hubtest--broken" in table["warnings"][0]
    assert cache.delete(TINY, revision="main", env=hf_env)["freed"] > 0


# ---------------------------------------------------------------------------------------------
# Partial downloads left by a killed process (blobs/<etag>.<8 hex>.incomplete)


def _start_slow_download(hf_env, mirror, repo_id, filename, seconds=120):
    """A download in another process, held up by the mirror for ``seconds`` before the body:
    returns the process (which holds the blob's lock) and its new partial file."""
    mirror.set_faults(
        [{"path": f"{repo_id}/{filename}", "kind": "delay", "seconds": seconds, "method": "GET"}]
    )
    blobs = Path(hf_env["HF_HOME"], "hub", cache.repo_folder_name(repo_id), "blobs")
    before = set(blobs.glob("*.incomplete"))
    code = f"from pybridge import hub; hub.download({repo_id!r}, {filename!r}, quiet=True)"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **hf_env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(blobs.glob("*.incomplete")) - before
        if new:
            return proc, new.pop()
        assert proc.poll() is None, "the download ended before it wrote a partial file"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no partial file appeared")


def _killed(proc):
    proc.kill()
    proc.wait()


def _partials(hf_env):
    table = cache.scan(env=hf_env)["incomplete"]
    return {p: bool(u) for p, u in zip(table["path"], table["in_use"])}


def test_partial_files_of_killed_downloads_are_reported_and_removed(hf_env, mirror, tiny):
    hub.download(TINY, "config.json", env=hf_env)
    first, stale = _start_slow_download(hf_env, mirror, TINY, "weights.bin")
    _killed(first)
    assert _partials(hf_env) == {str(stale): False}
    live, partial = _start_slow_download(hf_env, mirror, TINY, "weights.bin")
    try:
        assert _partials(hf_env) == {str(stale): True, str(partial): True}  # the lock is held
        hub.download(TINY, "vocab.txt", env=hf_env)  # a download in the same repo tidies up
        assert stale.exists() and partial.exists()  # but a live download holds their lock
    finally:
        _killed(live)
    assert _partials(hf_env) == {str(stale): False, str(partial): False}
    mirror.set_faults([])
    path = hub.download(TINY, "weights.bin", env=hf_env)
    assert Path(path).read_bytes() == (tiny / "weights.bin").read_bytes()
    assert _partials(hf_env) == {}
    assert hfh.scan_cache_dir(Path(hf_env["HF_HOME"], "hub")).warnings == []


def test_cache_delete_removes_stale_partial_files(hf_env, mirror, versions):
    hub.download(GIT, "config.json", revision="v1", env=hf_env)
    hub.download(GIT, "config.json", env=hf_env)
    proc, stale = _start_slow_download(hf_env, mirror, GIT, "new.txt")
    _killed(proc)
    freed = cache.delete(GIT, revision="v1", env=hf_env)["freed"]
    assert not stale.exists() and freed > 0
    assert [
        len(r.revisions)
        for r in hfh.scan_cache_dir(Path(hf_env["HF_HOME"], "hub")).repos
        if r.repo_id == GIT
    ] == [1]


def test_a_repo_with_only_a_partial_file_can_be_deleted(hf_env, mirror, tiny):
    proc, stale = _start_slow_download(hf_env, mirror, TINY, "weights.bin")
    _killed(proc)
    assert cache.scan(env=hf_env)["incomplete"]["path"] == [str(stale)]
    cache.delete(TINY, env=hf_env)
    assert not stale.exists()
    assert cache.scan(env=hf_env)["repo_id"] == []


def test_deleting_a_repo_leaves_a_running_download_into_it_alone(hf_env, mirror, tiny):
    hub.download(TINY, "config.json", env=hf_env)
    proc, partial = _start_slow_download(hf_env, mirror, TINY, "weights.bin", seconds=5)
    try:
        assert cache.delete(TINY, env=hf_env)["freed"] > 0  # config.json's blob
        assert partial.exists()
        assert proc.wait(60) == 0  # the download ended well, its partial file kept
    finally:
        _killed(proc)
    mirror.set_faults([])
    cached = hub.download(TINY, "weights.bin", env=hf_env, local_files_only=True)
    assert Path(cached).read_bytes() == (tiny / "weights.bin").read_bytes()
    assert hfh.scan_cache_dir(Path(hf_env["HF_HOME"], "hub")).warnings == []


def test_a_repo_folder_the_scan_cannot_read_can_still_be_deleted(hf_env, mirror, tiny):
    path = Path(hub.download(TINY, "config.json", env=hf_env))
    path.resolve().unlink()  # its blob gone: scan_cache_dir() warns and leaves the repo out
    assert cache.scan(env=hf_env)["repo_id"] == []
    assert cache.delete(TINY, env=hf_env)["freed"] >= 0
    assert not Path(hf_env["HF_HOME"], "hub", cache.repo_folder_name(TINY)).exists()


def test_heal_ref_touches_nothing_outside_refs(tmp_path):
    commit = "a" * 40
    outside = tmp_path / "outside"
    outside.write_text(commit + "\n")
    repo = tmp_path / "models--a--b"
    (repo / "refs").mkdir(parents=True)
    assert cache.heal_ref(str(repo), "../../outside") is None
    assert cache.heal_ref(str(repo), str(outside)) is None
    assert outside.read_text() == commit + "\n"
    (repo / "refs" / "main").write_text(commit + "\r\n")
    assert cache.heal_ref(str(repo), "main") == commit
    assert (repo / "refs" / "main").read_text() == commit
    assert sorted(os.listdir(repo / "refs")) == ["main"]  # no temporary file left


# A cache that cannot be written


def test_a_cache_folder_that_cannot_be_made_is_a_storage_error(hf_env, mirror, tiny, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**hf_env, "HF_HOME": str(blocker / "hf")}
    for verb in (
        lambda: hub.download(TINY, "config.json", env=env),
        lambda: hub.snapshot(TINY, env=env),
    ):
        with pytest.raises(errors.StorageError) as raised:
            verb()
        err = raised.value
        assert err.code == "storage" and err.fields["path"] == str(blocker / "hf" / "hub")
        assert err.fields["repo_id"] == TINY and "not a folder" in err.message
        assert "HF_HOME" in err.message
    assert blocker.read_text() == "not a folder"


@contextlib.contextmanager
def _small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on ``folder``; skips where mounting is not permitted."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_a_storage_error_and_keeps_no_partial_file(hf_env, tmp_path, publish):
    folder = tmp_path / "big-src"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(256 * 1024))
    publish("hubtest/big", folder)
    with _small_disk(tmp_path / "disk", "128k") as disk:
        env = {**hf_env, "HF_HOME": str(disk)}
        with pytest.raises(errors.StorageError) as raised:
            hub.download("hubtest/big", "big.bin", env=env)
        assert raised.value.fields["reason"] == "no space is left on its device"
        assert "Free space" in raised.value.message
        left = [p.name for p in disk.rglob("*") if p.is_file() and p.parent.name == "blobs"]
        assert left == []  # neither a blob nor a partial file


def test_a_name_too_long_for_a_url_is_an_invalid_argument(hf_env, mirror, tiny):
    for kwargs in ({"filename": "a" * 10**5}, {"filename": "config.json", "revision": "r" * 10**5}):
        with pytest.raises(errors.InvalidArgumentError) as raised:
            hub.download(TINY, env=hf_env, **kwargs)
        assert len(str(raised.value)) < errors.MAX_MESSAGE + 100
