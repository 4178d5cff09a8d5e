"""The local Hub mirror, driven by the real huggingface_hub client over real HTTP.

No mocks: every check goes through huggingface_hub 2.4 (or raw http.client where the client would
normalise the URL) against pybridge.mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx2 as httpx
import huggingface_hub as hh
import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from pybridge.mirror import Mirror, publish_folder
from pybridge.mirror.store import LFS_THRESHOLD

PY = sys.executable


# ---- fixtures ------------------------------------------------------------------------------
def _write(folder: Path, files: dict) -> Path:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


TINY = {
    "config.json": '{"a": 1}',
    "sub/x.txt": "hi",
    "sub/deeper/y.bin": bytes(range(256)) * 40,
    "weights.safetensors": os.urandom(300_000),
}


@pytest.fixture
def tiny_repo(publish, tmp_path):
    publish("mtest/tiny", _write(tmp_path / "tiny", TINY))
    return "mtest/tiny"


def _git(cwd, *args):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return out.stdout.decode().strip()


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory, mirror_root):
    """mtest/git: main (v1 + a tag v1.0, then v2), branch dev, refs/pr/1 and
    refs/convert/parquet."""
    src = tmp_path_factory.mktemp("gitsrc") / "repo"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    _write(src, {"config.json": '{"v": 1}', "README.md": "one", "data/a.txt": "a1"})
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "v1")
    v1 = _git(src, "rev-parse", "HEAD")
    _git(src, "tag", "v1.0")
    _git(src, "checkout", "-q", "-b", "dev")
    _write(src, {"config.json": '{"v": "dev"}', "extra.bin": b"\x00\x01dev"})
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "dev")
    dev = _git(src, "rev-parse", "HEAD")
    _git(src, "update-ref", "refs/pr/1", dev)
    _git(src, "update-ref", "refs/convert/parquet", dev)  # as the Hub's parquet export
    _git(src, "checkout", "-q", "main")
    _write(src, {"config.json": '{"v": 2}', "data/b.txt": "b2"})
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "v2")
    v2 = _git(src, "rev-parse", "HEAD")
    publish_folder(mirror_root, "mtest/git", src)
    return {"id": "mtest/git", "v1": v1, "v2": v2, "dev": dev}


def _cache(hf_env):
    return os.path.join(hf_env["HF_HOME"], "hub")


def _raw(mirror, method, path, headers=None, body=None):
    """One request with the path sent exactly as given (no client-side normalisation)."""
    host, port = urllib.parse.urlsplit(mirror.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# ---- downloads -----------------------------------------------------------------------------
def test_hf_hub_download_gives_the_exact_bytes(mirror, hf_env, tiny_repo):
    for rel, content in TINY.items():
        path = hh.hf_hub_download(tiny_repo, rel, endpoint=mirror.url, cache_dir=_cache(hf_env))
        expected = content if isinstance(content, bytes) else content.encode()
        assert Path(path).read_bytes() == expected


def test_snapshot_download_with_patterns(mirror, hf_env, tiny_repo):
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    snap = Path(hh.snapshot_download(tiny_repo, allow_patterns=["*.json", "sub/*"], **kw))
    got = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert got == ["config.json", "sub/deeper/y.bin", "sub/x.txt"]
    kw["cache_dir"] = os.path.join(hf_env["HF_HOME"], "other-cache")
    snap = Path(
        hh.snapshot_download(tiny_repo, ignore_patterns=["*.safetensors", "sub/deeper/*"], **kw)
    )
    got = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert got == ["config.json", "sub/x.txt"]


def test_dataset_and_space_prefixes(mirror, hf_env, publish, tmp_path):
    publish("mtest/ds", _write(tmp_path / "ds", {"train.csv": "x,y\n1,2\n"}), repo_type="dataset")
    publish("mtest/sp", _write(tmp_path / "sp", {"app.py": "print(1)"}), repo_type="space")
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    path = hh.hf_hub_download("mtest/ds", "train.csv", repo_type="dataset", **kw)
    assert Path(path).read_text() == "x,y\n1,2\n"
    assert "datasets--mtest--ds" in path
    path = hh.hf_hub_download("mtest/sp", "app.py", repo_type="space", **kw)
    assert Path(path).read_text() == "print(1)"
    api = hh.HfApi(endpoint=mirror.url)
    assert api.list_repo_files("mtest/ds", repo_type="dataset") == ["train.csv"]
    assert api.repo_info("mtest/sp", repo_type="space").id == "mtest/sp"
    with pytest.raises(RepositoryNotFoundError):  # a dataset is not a model
        hh.hf_hub_download("mtest/ds", "train.csv", **kw)


def test_id_without_org(mirror, hf_env, publish, tmp_path):
    publish("mtestsolo", _write(tmp_path / "solo", {"config.json": "{}", "nested/z.txt": "z"}))
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    assert Path(hh.hf_hub_download("mtestsolo", "nested/z.txt", **kw)).read_text() == "z"
    assert sorted(hh.HfApi(endpoint=mirror.url).list_repo_files("mtestsolo")) == [
        "config.json",
        "nested/z.txt",
    ]


# ---- metadata ------------------------------------------------------------------------------
def test_repo_info_list_files_file_exists(mirror, tiny_repo):
    api = hh.HfApi(endpoint=mirror.url)
    info = api.repo_info(tiny_repo, files_metadata=True)
    assert info.id == tiny_repo and len(info.sha) == 40
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes == {k: len(v) for k, v in TINY.items()}
    blob = {s.rfilename: s.blob_id for s in info.siblings}["config.json"]
    assert blob == hashlib.sha1(b"blob 8\x00" + b'{"a": 1}').hexdigest()
    assert sorted(api.list_repo_files(tiny_repo)) == sorted(TINY)
    assert api.file_exists(tiny_repo, "sub/x.txt")
    assert not api.file_exists(tiny_repo, "nope.txt")
    assert not api.file_exists("mtest/does-not-exist", "x")
    assert api.repo_exists(tiny_repo) and not api.repo_exists("mtest/does-not-exist")


def test_repo_info_has_the_readme_metadata_as_card_data(mirror, publish, tmp_path):
    card = "---\nlicense: mit\ntags:\n- hfbridge\nreleased: 2024-01-02\n---\n# A card\n"
    for repo_type in ("model", "dataset"):
        publish("mtest/carded", _write(tmp_path / repo_type, {"README.md": card}), repo_type)
    api = hh.HfApi(endpoint=mirror.url)
    model = api.model_info("mtest/carded")
    assert model.card_data.license == "mit" and model.card_data.tags == ["hfbridge"]
    dataset = api.dataset_info("mtest/carded")
    assert dataset.card_data.license == "mit"
    assert dataset.card_data.to_dict()["released"] == "2024-01-02"
    publish("mtest/uncarded", _write(tmp_path / "plain", {"README.md": "# No YAML\n"}))
    assert api.model_info("mtest/uncarded").card_data is None


def test_tree_listing_paths_and_expand(mirror, tiny_repo):
    api = hh.HfApi(endpoint=mirror.url)
    top = {(type(e).__name__, e.path) for e in api.list_repo_tree(tiny_repo)}
    assert top == {
        ("RepoFile", "config.json"),
        ("RepoFile", "weights.safetensors"),
        ("RepoFolder", "sub"),
    }
    sub = [e.path for e in api.list_repo_tree(tiny_repo, path_in_repo="sub", recursive=True)]
    assert sorted(sub) == ["sub/deeper", "sub/deeper/y.bin", "sub/x.txt"]
    expanded = list(api.list_repo_tree(tiny_repo, path_in_repo="sub", expand=True))
    assert all(e.last_commit is not None for e in expanded)
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(tiny_repo, path_in_repo="nope"))
    infos = api.get_paths_info(tiny_repo, ["config.json", "sub", "missing"])
    assert sorted(i.path for i in infos) == ["config.json", "sub"]


def test_commit_is_content_derived_and_stable(mirror_root, tmp_path):
    shas = []
    for _ in range(2):  # two servers over the same store, as after a restart
        with Mirror(mirror_root, log=tmp_path / "log") as m:
            repo = Path(m.publish("mtest/stable", _write(tmp_path / "st", {"a.txt": "a"})))
            shas.append(hh.HfApi(endpoint=m.url).repo_info("mtest/stable").sha)
    assert shas[0] == shas[1]
    (repo / "b.txt").write_text("b")  # a new file is picked up and changes the commit
    with Mirror(mirror_root, log=tmp_path / "log") as m:
        api = hh.HfApi(endpoint=m.url)
        assert api.repo_info("mtest/stable").sha != shas[0]
        assert sorted(api.list_repo_files("mtest/stable")) == ["a.txt", "b.txt"]


def test_commit_follows_file_changes_on_a_running_mirror(mirror, tmp_path, publish):
    repo = publish("mtest/live", _write(tmp_path / "live", {"a.txt": "a"}))
    api = hh.HfApi(endpoint=mirror.url)
    first = api.repo_info("mtest/live").sha
    assert api.repo_info("mtest/live").sha == first
    (repo / "a.txt").write_text("changed")
    os.utime(repo / "a.txt", ns=(1, 1))
    assert api.repo_info("mtest/live").sha != first


def test_large_file_etag_is_sha256_and_a_cut_download_resumes_with_range(
    mirror, hf_env, publish, tmp_path
):
    big = os.urandom(LFS_THRESHOLD + 1000)
    publish("mtest/big", _write(tmp_path / "big", {"big.bin": big, "small.txt": "s"}))
    sha = hashlib.sha256(big).hexdigest()
    meta = hh.get_hf_file_metadata(hh.hf_hub_url("mtest/big", "big.bin", endpoint=mirror.url))
    assert meta.etag == sha and meta.size == len(big)
    parts = urllib.parse.urlsplit(mirror.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request("HEAD", "/mtest/big/resolve/main/big.bin")
    headers = conn.getresponse().headers
    conn.close()
    assert headers["X-Linked-Etag"] == f'"{sha}"' and headers["X-Linked-Size"] == str(len(big))
    (entry,) = [
        e for e in hh.HfApi(endpoint=mirror.url).list_repo_tree("mtest/big") if e.path == "big.bin"
    ]
    assert entry.lfs.sha256 == sha and entry.lfs.size == len(big)
    # The client writes 10 MiB chunks: cut after the first one, and it resumes with a Range request.
    mirror.set_faults([{"path": "mtest/big/big.bin", "kind": "close", "bytes": 10 * 2**20 + 500}])
    mirror.reset_stats()
    path = hh.hf_hub_download("mtest/big", "big.bin", endpoint=mirror.url, cache_dir=_cache(hf_env))
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
    assert (Path(_cache(hf_env)) / "models--mtest--big" / "blobs" / sha).exists()
    stats = mirror.stats()
    assert stats["by_path"]["GET /mtest/big/resolve/main/big.bin"] == 2
    assert stats["by_status"]["206"] == 1


def test_publish_refuses_ids_that_leave_the_store(mirror_root, tmp_path):
    for bad in ("../evil", "a/b/c", "/abs", "org/..", ""):
        with pytest.raises(ValueError):
            publish_folder(mirror_root, bad, tmp_path)
    assert not (Path(mirror_root).parent / "evil").exists()


# ---- git revisions -------------------------------------------------------------------------
def test_git_branches_tags_commits_and_pr_refs(mirror, hf_env, git_repo):
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    rid = git_repo["id"]
    read = lambda rev: Path(hh.hf_hub_download(rid, "config.json", revision=rev, **kw)).read_text()  # noqa: E731
    assert read("main") == '{"v": 2}'
    assert read("v1.0") == '{"v": 1}'
    assert read("dev") == '{"v": "dev"}'
    assert read(git_repo["v1"]) == '{"v": 1}'
    assert read("refs/pr/1") == '{"v": "dev"}'
    assert read("refs/convert/parquet") == '{"v": "dev"}'
    api = hh.HfApi(endpoint=mirror.url)
    assert api.repo_info(rid).sha == git_repo["v2"]
    assert api.repo_info(rid, revision="v1.0").sha == git_repo["v1"]
    assert sorted(api.list_repo_files(rid, revision="dev")) == [
        "README.md",
        "config.json",
        "data/a.txt",
        "extra.bin",
    ]
    refs = api.list_repo_refs(rid)
    assert {b.name: b.target_commit for b in refs.branches} == {
        "main": git_repo["v2"],
        "dev": git_repo["dev"],
    }
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": git_repo["v1"]}
    assert [(c.name, c.ref, c.target_commit) for c in refs.converts] == [
        ("parquet", "refs/convert/parquet", git_repo["dev"])
    ]


def test_git_snapshot_by_revision_with_patterns(mirror, hf_env, git_repo):
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    snap = Path(
        hh.snapshot_download(
            git_repo["id"], revision="v1.0", allow_patterns=["data/*", "*.json"], **kw
        )
    )
    assert snap.name == git_repo["v1"]
    files = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert files == ["config.json", "data/a.txt"]
    snap = Path(
        hh.snapshot_download(git_repo["id"], revision="dev", ignore_patterns=["*.md"], **kw)
    )
    assert (snap / "extra.bin").read_bytes() == b"\x00\x01dev"
    assert not (snap / "README.md").exists()
    # the ETag of a git file is its blob id
    meta = hh.get_hf_file_metadata(
        hh.hf_hub_url(git_repo["id"], "README.md", revision="v1.0", endpoint=mirror.url)
    )
    assert (
        meta.etag == hashlib.sha1(b"blob 3\x00one").hexdigest()
        and meta.commit_hash == git_repo["v1"]
    )


# ---- errors --------------------------------------------------------------------------------
def test_error_codes_map_to_the_clients_classes(mirror, hf_env, tiny_repo, git_repo):
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    with pytest.raises(RepositoryNotFoundError):
        hh.hf_hub_download("mtest/nothing-here", "config.json", **kw)
    with pytest.raises(RevisionNotFoundError):
        hh.hf_hub_download(tiny_repo, "config.json", revision="no-such-branch", **kw)
    with pytest.raises(RevisionNotFoundError):
        hh.hf_hub_download(git_repo["id"], "config.json", revision="no-such-branch", **kw)
    with pytest.raises(RemoteEntryNotFoundError):
        hh.hf_hub_download(tiny_repo, "missing.txt", **kw)
    api = hh.HfApi(endpoint=mirror.url)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("mtest/nothing-here")
    with pytest.raises(RevisionNotFoundError):
        api.repo_info(tiny_repo, revision="nope")
    # the missing file is recorded under .no_exist/<commit>, thanks to X-Repo-Commit
    sha = api.repo_info(tiny_repo).sha
    assert (
        Path(_cache(hf_env)) / "models--mtest--tiny" / ".no_exist" / sha / "missing.txt"
    ).exists()


def test_every_error_has_code_message_and_json_body(mirror, tiny_repo):
    cases = {
        "/mtest/nothing-here/resolve/main/x": (404, "RepoNotFound"),
        "/mtest/tiny/resolve/nope/config.json": (404, "RevisionNotFound"),
        "/mtest/tiny/resolve/main/missing": (404, "EntryNotFound"),
        "/api/models/mtest/nothing-here": (404, "RepoNotFound"),
        "/api/models/mtest/tiny/revision/nope": (404, "RevisionNotFound"),
        "/api/models/mtest/tiny/tree/main/missing": (404, "EntryNotFound"),
        "/api/agent-harnesses": (404, "NotFound"),
    }
    for path, (status, code) in cases.items():
        for method in ("GET", "HEAD"):
            got, headers, body = _raw(mirror, method, path)
            assert (got, headers.get("X-Error-Code")) == (status, code), (method, path)
            assert headers.get("X-Error-Message")
            if method == "GET":
                assert "error" in json.loads(body)
    _, headers, _ = _raw(mirror, "HEAD", "/mtest/tiny/resolve/main/missing")
    assert len(headers["X-Repo-Commit"]) == 40


def test_gated_private_and_bad_tokens(mirror, hf_env, mirror_config, tmp_path, publish):
    publish("mtest/gated", _write(tmp_path / "g", {"config.json": "{}"}))
    publish("mtest/private", _write(tmp_path / "p", {"config.json": "{}"}))
    mirror_config(
        {
            "gated": {"mtest/gated": ["tok-good"]},
            "private": {"mtest/private": ["tok-good"]},
            "tokens": ["tok-other"],
        }
    )
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    with pytest.raises(GatedRepoError):
        hh.hf_hub_download("mtest/gated", "config.json", token=False, **kw)
    with pytest.raises(GatedRepoError):  # a known token without access
        hh.hf_hub_download("mtest/gated", "config.json", token="tok-other", **kw)
    with pytest.raises(HfHubHTTPError) as bad:  # a token the mirror does not know
        hh.hf_hub_download("mtest/gated", "config.json", token="hf_wrongwrongwrong", **kw)
    assert bad.value.response.status_code == 401
    assert bad.value.response.headers["X-Error-Code"] == "InvalidCredentials"
    assert not isinstance(bad.value, (GatedRepoError, RepositoryNotFoundError))
    with pytest.raises(RepositoryNotFoundError):
        hh.hf_hub_download("mtest/private", "config.json", token=False, **kw)
    with pytest.raises(GatedRepoError):
        hh.HfApi(endpoint=mirror.url).repo_info("mtest/gated", token=False)
    assert hh.hf_hub_download("mtest/gated", "config.json", token="tok-good", **kw)
    assert hh.hf_hub_download("mtest/private", "config.json", token="tok-good", **kw)
    info = hh.HfApi(endpoint=mirror.url).repo_info("mtest/gated", token="tok-good")
    assert info.gated and not info.private


def test_config_is_reread_when_it_changes(mirror, hf_env, mirror_config, tmp_path, publish):
    publish("mtest/regated", _write(tmp_path / "g", {"config.json": "{}"}))
    api = hh.HfApi(endpoint=mirror.url)
    assert api.repo_info("mtest/regated", token=False).id == "mtest/regated"
    mirror_config({"gated": {"mtest/regated": ["t"]}})
    with pytest.raises(GatedRepoError):
        api.repo_info("mtest/regated", token=False)
    mirror_config({"gated": {}})
    assert api.repo_info("mtest/regated", token=False).id == "mtest/regated"
    Path(mirror.root, "mirror.json").write_text('{"gated": ["not", "a", "map"]}')
    assert api.repo_info("mtest/regated", token=False).id == "mtest/regated"  # ignored, and said so
    assert "mirror.json ignored" in Path(mirror.log_path).read_text()


# ---- offline -------------------------------------------------------------------------------
def test_offline_mode_serves_the_cache(mirror, hf_env, tiny_repo):
    kw = dict(endpoint=mirror.url, cache_dir=_cache(hf_env))
    snap = hh.snapshot_download(tiny_repo, **kw)
    assert hh.hf_hub_download(tiny_repo, "config.json", local_files_only=True, **kw)
    with pytest.raises(LocalEntryNotFoundError):
        hh.hf_hub_download(tiny_repo, "never-fetched.txt", local_files_only=True, **kw)
    script = (
        "import sys, huggingface_hub as hh\n"
        "from huggingface_hub import constants\n"
        "from huggingface_hub.errors import LocalEntryNotFoundError\n"
        "assert constants.HF_HUB_OFFLINE\n"
        "print(hh.snapshot_download(sys.argv[1]))\n"
        "print(hh.hf_hub_download(sys.argv[1], 'sub/x.txt'))\n"
        "try:\n    hh.hf_hub_download('mtest/never-cached', 'x')\n"
        "except LocalEntryNotFoundError:\n    print('MISS')\n"
    )
    env = {**os.environ, **hf_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run(
        [PY, "-c", script, tiny_repo], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == snap and Path(lines[1]).read_text() == "hi" and lines[2] == "MISS"


# ---- ranges and faults ---------------------------------------------------------------------
def test_range_requests_answer_206(mirror, tiny_repo):
    data = TINY["weights.safetensors"]
    url = f"{mirror.url}/{tiny_repo}/resolve/main/weights.safetensors"
    with httpx.Client() as client:
        r = client.get(url, headers={"Range": "bytes=1000-"})
        assert r.status_code == 206 and r.content == data[1000:]
        assert r.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
        r = client.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        r = client.get(url, headers={"Range": "bytes=-5"})
        assert r.content == data[-5:]
        r = client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416
        h = client.head(url)
        assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(data)
        assert h.headers["ETag"].startswith('"') and "X-Xet-Hash" not in h.headers
        assert "Location" not in h.headers


def test_close_mid_body_once_recovers_with_identical_bytes(mirror, hf_env, tiny_repo):
    mirror.set_faults([{"path": f"{tiny_repo}/weights.safetensors", "kind": "close", "times": 1}])
    mirror.reset_stats()
    path = hh.hf_hub_download(
        tiny_repo, "weights.safetensors", endpoint=mirror.url, cache_dir=_cache(hf_env)
    )
    assert Path(path).read_bytes() == TINY["weights.safetensors"]
    stats = mirror.stats()
    assert (
        stats["by_path"][f"GET /{tiny_repo}/resolve/main/weights.safetensors"] == 2
    )  # cut, then again


def test_503_twice_on_head_is_retried(mirror, hf_env, tiny_repo):
    mirror.set_faults(
        [
            {
                "path": f"{tiny_repo}/config.json",
                "kind": "status",
                "status": 503,
                "times": 2,
                "method": "HEAD",
            }
        ]
    )
    path = hh.hf_hub_download(
        tiny_repo, "config.json", endpoint=mirror.url, cache_dir=_cache(hf_env)
    )
    assert Path(path).read_text() == '{"a": 1}'


def test_500_on_get_fails_cleanly(mirror, hf_env, tiny_repo):
    mirror.set_faults(
        [
            {
                "path": f"{tiny_repo}/sub/x.txt",
                "kind": "status",
                "status": 500,
                "times": 1,
                "method": "GET",
            }
        ]
    )
    with pytest.raises(HfHubHTTPError) as err:
        hh.hf_hub_download(tiny_repo, "sub/x.txt", endpoint=mirror.url, cache_dir=_cache(hf_env))
    assert err.value.response.status_code == 500
    _assert_no_partial_files(_cache(hf_env))


def test_delay_then_success(mirror, hf_env, tiny_repo):
    mirror.set_faults([{"path": f"{tiny_repo}/*", "kind": "delay", "seconds": 0.2, "times": 2}])
    path = hh.hf_hub_download(
        tiny_repo, "config.json", endpoint=mirror.url, cache_dir=_cache(hf_env)
    )
    assert Path(path).read_text() == '{"a": 1}'
    assert [f["times"] for f in mirror._require().config.faults()] == [0]


def test_close_more_often_than_retries_leaves_no_partial_snapshot(mirror, hf_env, tiny_repo):
    mirror.set_faults(
        [{"path": f"{tiny_repo}/sub/deeper/y.bin", "kind": "close", "times": 50, "fraction": 0}]
    )
    with pytest.raises((httpx.HTTPError, OSError)):
        hh.hf_hub_download(
            tiny_repo, "sub/deeper/y.bin", endpoint=mirror.url, cache_dir=_cache(hf_env)
        )
    _assert_no_partial_files(_cache(hf_env))


def test_faults_from_mirror_json(mirror, hf_env, mirror_config, tiny_repo):
    mirror_config(
        {
            "faults": [
                {
                    "path": f"{tiny_repo}/config.json",
                    "kind": "status",
                    "status": 503,
                    "times": 1,
                    "method": "HEAD",
                }
            ]
        }
    )
    status, headers, _ = _raw(mirror, "HEAD", f"/{tiny_repo}/resolve/main/config.json")
    assert status == 503 and headers["X-Error-Code"]
    status, _, _ = _raw(mirror, "HEAD", f"/{tiny_repo}/resolve/main/config.json")
    assert status == 200


def _assert_no_partial_files(cache):
    snaps = list(Path(cache).glob("*/snapshots/**/*"))
    assert [p for p in snaps if p.is_file() or p.is_symlink()] == []
    blobs = [p for p in Path(cache).glob("*/blobs/*") if not p.name.endswith(".incomplete")]
    assert blobs == []


# ---- safety --------------------------------------------------------------------------------
def test_path_traversal_is_refused(mirror, tiny_repo, mirror_root, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP-SECRET-CONTENT")
    repo = Path(mirror_root, "models", "mtest", "tiny")
    os.symlink(outside, repo / "leak.txt")
    os.symlink(tmp_path, repo / "leakdir")
    os.symlink(repo / "config.json", repo / "inner-link.json")
    try:
        bad = [
            "/mtest/tiny/resolve/main/../../../../etc/passwd",
            "/mtest/tiny/resolve/main/%2E%2E/%2E%2E/tiny/config.json",
            "/mtest/tiny/resolve/main/%2Fetc%2Fpasswd",
            "/mtest/tiny/resolve/main/sub/..%2F..%2Fconfig.json",
            "/mtest/tiny/resolve/main/leak.txt",
            "/mtest/tiny/resolve/main/leakdir/secret.txt",
            "/api/models/mtest/tiny/tree/main/..%2F..",
            "/api/models/../../etc",
            "/..%2F..%2Fetc/resolve/main/passwd",
        ]
        for path in bad:
            status, headers, body = _raw(mirror, "GET", path)
            assert status in (400, 404) and headers.get("X-Error-Code"), path
            assert b"TOP-SECRET-CONTENT" not in body and b"root:" not in body
        assert "leak.txt" not in hh.HfApi(endpoint=mirror.url).list_repo_files(tiny_repo)
        status, _, body = _raw(mirror, "GET", "/mtest/tiny/resolve/main/inner-link.json")
        assert status == 200 and body == b'{"a": 1}'
    finally:
        for name in ("leak.txt", "leakdir", "inner-link.json"):
            os.unlink(repo / name)


def test_tokens_never_reach_the_log(mirror, mirror_config, tiny_repo, tmp_path, publish):
    publish("mtest/gated-log", _write(tmp_path / "g", {"config.json": "{}"}))
    mirror_config({"gated": {"mtest/gated-log": ["hf_goodtoken123456"]}})
    for token in ("hf_goodtoken123456", "hf_badtoken9999999"):
        _raw(
            mirror,
            "GET",
            "/mtest/gated-log/resolve/main/config.json?token=qs-secret-value",
            headers={"Authorization": f"Bearer {token}"},
        )
    log = Path(mirror.log_path).read_text()
    assert "GET /mtest/gated-log/resolve/main/config.json 200" in log
    assert "GET /mtest/gated-log/resolve/main/config.json 401" in log
    for secret in ("hf_goodtoken123456", "hf_badtoken9999999", "qs-secret-value", "Bearer"):
        assert secret not in log


def test_binds_to_localhost_only(mirror):
    assert mirror.url.startswith("http://127.0.0.1:")
    assert mirror._require().server_address[0] == "127.0.0.1"


def test_stats_count_requests_in_process_and_over_http(mirror, tiny_repo):
    mirror.reset_stats()
    _raw(mirror, "HEAD", f"/{tiny_repo}/resolve/main/config.json")
    _raw(mirror, "GET", f"/{tiny_repo}/resolve/main/config.json?x=1")
    _raw(mirror, "GET", f"/{tiny_repo}/resolve/main/config.json")
    stats = mirror.stats()
    assert stats["total"] == 3 and stats["by_method"] == {"HEAD": 1, "GET": 2}
    assert stats["by_path"][f"GET /{tiny_repo}/resolve/main/config.json"] == 2
    status, _, body = _raw(mirror, "GET", "/_mirror/stats")
    assert status == 200 and json.loads(body) == stats  # control requests are not counted
    assert _raw(mirror, "POST", "/_mirror/stats/reset")[0] == 200
    assert mirror.stats()["total"] == 0


# ---- the command line ----------------------------------------------------------------------
def test_cli_prints_one_ready_line_and_serves(tmp_path, tiny_repo, mirror_root):
    log = tmp_path / "cli.log"
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "pybridge.mirror",
            "serve",
            "--root",
            str(mirror_root),
            "--port",
            "0",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().rstrip("\n")
        prefix = f"hfbridge mirror serving {mirror_root} at http://127.0.0.1:"
        assert line.startswith(prefix) and line[len(prefix) :].isdigit()
        url = line.split(" at ")[1]
        assert hh.HfApi(endpoint=url).repo_info(tiny_repo).id == tiny_repo
        with httpx.Client() as client:
            stats = client.get(f"{url}/_mirror/stats").json()
            assert stats["by_path"] == {f"GET /api/models/{tiny_repo}": 1}
            assert client.post(f"{url}/_mirror/stats/reset").status_code == 200
            assert client.get(f"{url}/_mirror/stats").json()["total"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == ""  # exactly one line on stdout
    assert f"GET /api/models/{tiny_repo} 200" in log.read_text()


def test_console_script_is_installed():
    script = Path(PY).with_name("pybridge-mirror")
    out = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--root" in out.stdout
