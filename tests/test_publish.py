"""Publishing: the mirror's write routes driven by the real huggingface_hub client, then
pybridge.publish (repo verbs, save_model, push_model) checked against transformers.

No mocks: HfApi and pybridge talk to pybridge.mirror over real HTTP; saved models are loaded back
with transformers and compared with what it saves and generates itself.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import urllib.parse
from pathlib import Path

import httpx2
import huggingface_hub as hh
import huggingface_hub.constants
import numpy as np
import pytest
from huggingface_hub.errors import HfHubHTTPError

from pybridge import errors, model_folder, publish
from pybridge.mirror.store import lfs_object_path

WRITE = "hf_writeTokenForPublishTests01"
READ = "hf_readOnlyTokenForPublish02"


@pytest.fixture
def writable(mirror_config):
    """mirror.json granting WRITE on ptest/* (models, datasets, spaces); READ may only read."""
    mirror_config(
        {
            "write": {"ptest/*": [WRITE], "datasets/ptest/*": [WRITE], "spaces/ptest/*": [WRITE]},
            "tokens": [READ],
            "users": {"ptester": [WRITE]},
        }
    )


@pytest.fixture
def api(mirror, monkeypatch):
    monkeypatch.setattr(hh.constants, "HF_HUB_DISABLE_XET", True)  # what pybridge does per call
    return hh.HfApi(endpoint=mirror.url, token=WRITE)


def _folder(root: Path, files: dict) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _git(repo: Path, *args) -> str:
    out = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), *args], capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def _head(url, repo_path):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request("HEAD", repo_path)
    response = conn.getresponse()
    headers = dict(response.getheaders())
    conn.close()
    return response.status, headers


WEIGHTS = b"\x00\x01" + os.urandom(30_000)  # a NUL byte: uploaded through LFS
FILES = {
    "config.json": '{"model_type": "gpt2"}',
    "weights.safetensors": WEIGHTS,
    "sub/notes.txt": "hello",
    "README.md": "---\nlicense: mit\n---\n# Tiny\n",
}


# ---- the mirror's write routes, with huggingface_hub itself ----------------------------------
def test_create_upload_commit_are_git_commits_and_every_revision_stays_readable(
    mirror, mirror_root, writable, api, tmp_path, hf_env
):
    url = api.create_repo("ptest/m1")
    assert url == f"{mirror.url}/ptest/m1"
    repo = mirror_root / "models" / "ptest" / "m1"
    assert _git(repo, "rev-parse", "--is-bare-repository") == "true"
    first = api.upload_folder(
        folder_path=_folder(tmp_path / "src", FILES), repo_id="ptest/m1", commit_message="first"
    )
    assert _git(repo, "rev-parse", "main") == first.oid
    assert _git(repo, "log", "-1", "--format=%s", first.oid) == "first"
    second = api.upload_file(
        path_or_fileobj=b"v2", path_in_repo="sub/notes.txt", repo_id="ptest/m1"
    )
    assert _git(repo, "rev-parse", f"{second.oid}^") == first.oid
    assert second.commit_url == f"{mirror.url}/ptest/m1/commit/{second.oid}"
    cache = tmp_path / "cache"
    old = hh.hf_hub_download(
        "ptest/m1", "sub/notes.txt", revision=first.oid, endpoint=mirror.url, cache_dir=cache
    )
    new = hh.hf_hub_download("ptest/m1", "sub/notes.txt", endpoint=mirror.url, cache_dir=cache)
    assert Path(old).read_text() == "hello" and Path(new).read_text() == "v2"
    got = hh.hf_hub_download(
        "ptest/m1", "weights.safetensors", endpoint=mirror.url, cache_dir=cache
    )
    assert Path(got).read_bytes() == WEIGHTS
    assert sorted(api.list_repo_files("ptest/m1")) == sorted([".gitattributes", *FILES])


def test_lfs_files_answer_the_sha256_etag_with_x_linked_headers(
    mirror, mirror_root, writable, api, tmp_path
):
    api.create_repo("ptest/lfs")
    api.upload_folder(folder_path=_folder(tmp_path / "src", FILES), repo_id="ptest/lfs")
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    # stored as git-lfs stores it: a pointer in git, the object under lfs/objects
    repo = mirror_root / "models" / "ptest" / "lfs"
    assert Path(lfs_object_path(str(repo), sha)).read_bytes() == WEIGHTS
    pointer = _git(repo, "cat-file", "-p", "main:weights.safetensors")
    assert pointer.splitlines()[1:] == [f"oid sha256:{sha}", f"size {len(WEIGHTS)}"]
    status, headers = _head(mirror.url, "/ptest/lfs/resolve/main/weights.safetensors")
    assert status == 200
    assert headers["ETag"] == f'"{sha}"' and headers["X-Linked-Etag"] == f'"{sha}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(WEIGHTS))
    _, small = _head(mirror.url, "/ptest/lfs/resolve/main/config.json")
    assert "X-Linked-Etag" not in small and len(small["ETag"].strip('"')) == 40
    path = hh.hf_hub_download(
        "ptest/lfs", "weights.safetensors", endpoint=mirror.url, cache_dir=tmp_path / "cache"
    )
    assert (tmp_path / "cache" / "models--ptest--lfs" / "blobs" / sha).exists()
    assert Path(path).read_bytes() == WEIGHTS
    (entry,) = [e for e in api.list_repo_tree("ptest/lfs") if e.path == "weights.safetensors"]
    assert entry.lfs.sha256 == sha and entry.size == len(WEIGHTS)


def test_unchanged_files_are_not_sent_again(mirror, writable, api, tmp_path):
    api.create_repo("ptest/same")
    src = _folder(tmp_path / "src", FILES)
    api.upload_folder(folder_path=src, repo_id="ptest/same")
    mirror.reset_stats()
    (src / "config.json").write_text('{"model_type": "gpt2", "n": 2}')
    api.upload_folder(folder_path=src, repo_id="ptest/same")
    stats = mirror.stats()["by_path"]
    assert not any(k.startswith("PUT ") for k in stats)


def test_space_sdk_private_and_exist_ok(mirror, writable, api):
    api.create_repo("ptest/app", repo_type="space", space_sdk="docker")
    assert api.repo_info("ptest/app", repo_type="space").sdk == "docker"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("ptest/app", repo_type="space", space_sdk="docker")
    assert err.value.response.status_code == 409
    assert api.create_repo("ptest/app", repo_type="space", space_sdk="docker", exist_ok=True)
    api.create_repo("ptest/hidden", private=True)
    assert api.repo_info("ptest/hidden").private is True
    with pytest.raises(hh.errors.RepositoryNotFoundError):
        hh.HfApi(endpoint=mirror.url, token=False).repo_info("ptest/hidden")


def test_writes_need_a_write_token(mirror, mirror_root, writable, api, tmp_path):
    for token, status in ((False, 401), ("hf_unknownTokenAbcdef123", 401), (READ, 403)):
        other = hh.HfApi(endpoint=mirror.url, token=token)
        with pytest.raises(HfHubHTTPError) as err:
            other.create_repo("ptest/denied")
        assert err.value.response.status_code == status
    assert not (mirror_root / "models" / "ptest" / "denied").exists()
    api.create_repo("ptest/guarded")
    head = api.repo_info("ptest/guarded").sha
    with pytest.raises(HfHubHTTPError) as err:
        hh.HfApi(endpoint=mirror.url, token=READ).upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="ptest/guarded"
        )
    assert err.value.response.status_code == 403
    assert api.repo_info("ptest/guarded").sha == head
    with pytest.raises(HfHubHTTPError):  # outside the granted globs
        api.create_repo("elsewhere/x")


def test_stale_parent_commit_is_refused(mirror, writable, api):
    api.create_repo("ptest/stale")
    first = api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="ptest/stale")
    second = api.upload_file(
        path_or_fileobj=b"2", path_in_repo="a.txt", repo_id="ptest/stale", parent_commit=first.oid
    )
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(
            path_or_fileobj=b"3",
            path_in_repo="a.txt",
            repo_id="ptest/stale",
            parent_commit=first.oid,
        )
    assert err.value.response.status_code == 412
    assert api.repo_info("ptest/stale").sha == second.oid


def test_branches_tags_deletions_and_pull_requests(mirror, writable, api, tmp_path):
    api.create_repo("ptest/refs")
    base = api.upload_folder(folder_path=_folder(tmp_path / "src", FILES), repo_id="ptest/refs")
    api.create_branch("ptest/refs", branch="dev")
    api.create_tag("ptest/refs", tag="v1", tag_message="first")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_branch("ptest/refs", branch="dev")
    assert err.value.response.status_code == 409
    api.create_branch("ptest/refs", branch="dev", exist_ok=True)
    on_dev = api.upload_file(
        path_or_fileobj=b"d", path_in_repo="dev.txt", repo_id="ptest/refs", revision="dev"
    )
    gone = api.delete_folder("sub", "ptest/refs")
    api.delete_file("config.json", "ptest/refs")
    refs = api.list_repo_refs("ptest/refs")
    assert {b.name: b.target_commit for b in refs.branches}["dev"] == on_dev.oid
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": base.oid}
    assert "sub/notes.txt" in api.list_repo_files("ptest/refs", revision="v1")
    assert "sub/notes.txt" not in api.list_repo_files("ptest/refs", revision=gone.oid)
    assert "config.json" not in api.list_repo_files("ptest/refs")
    pr = api.upload_file(
        path_or_fileobj=b"p", path_in_repo="pr.txt", repo_id="ptest/refs", create_pr=True
    )
    assert pr.pr_url == f"{mirror.url}/ptest/refs/discussions/1"
    assert "pr.txt" in api.list_repo_files("ptest/refs", revision="refs/pr/1")
    assert "pr.txt" not in api.list_repo_files("ptest/refs")


def test_refs_with_pull_requests_and_the_commit_history_as_huggingface_hub_reads_them(
    mirror, mirror_root, writable, api, publish, tmp_path
):
    api.create_repo("ptest/history")
    first = api.upload_file(
        path_or_fileobj=b"1",
        path_in_repo="a.txt",
        repo_id="ptest/history",
        commit_message="First file",
        commit_description="Why it is there.",
    )
    pr = api.upload_file(
        path_or_fileobj=b"2", path_in_repo="b.txt", repo_id="ptest/history", create_pr=True
    )
    refs = api.list_repo_refs("ptest/history", include_pull_requests=True)
    assert [(p.name, p.ref, p.target_commit) for p in refs.pull_requests] == [
        ("pr/1", "refs/pr/1", pr.oid)
    ]
    assert api.list_repo_refs("ptest/history").pull_requests is None

    repo = mirror_root / "models" / "ptest" / "history"
    commits = api.list_repo_commits("ptest/history")
    assert [c.commit_id for c in commits] == _git(repo, "rev-list", "main").split()
    assert commits[0].commit_id == first.oid
    assert (commits[0].title, commits[0].message) == ("First file", "Why it is there.")
    assert commits[0].authors == ["ptester"]  # the account of the token (mirror.json users)
    assert commits[0].created_at.timestamp() == int(_git(repo, "show", "-s", "--format=%ct"))
    assert (commits[-1].title, commits[-1].message) == ("initial commit", "")
    on_pr = api.list_repo_commits("ptest/history", revision="refs/pr/1")
    assert [c.commit_id for c in on_pr] == [pr.oid, first.oid, commits[-1].commit_id]
    with pytest.raises(hh.errors.RevisionNotFoundError):
        api.list_repo_commits("ptest/history", revision="nope")

    publish("ptest/plainlog", _folder(tmp_path / "plainlog", {"a.txt": "a"}))
    before = api.list_repo_commits("ptest/plainlog")
    assert [c.commit_id for c in before] == [api.repo_info("ptest/plainlog").sha]
    api.create_tag("ptest/plainlog", tag="v1")  # the import: the same commit, now in git
    after = api.list_repo_commits("ptest/plainlog")
    assert [(c.commit_id, c.title, c.created_at) for c in after] == [
        (c.commit_id, c.title, c.created_at) for c in before
    ]


def test_plain_folder_repo_becomes_git_on_its_first_write(
    mirror, mirror_root, writable, api, publish, tmp_path
):
    files = {"a.txt": "a", "sub/z.bin": b"\x00\xff", "sub-x/c.txt": "c", "sub.txt": "s"}
    folder = publish("ptest/plain", _folder(tmp_path / "plain", files))
    (Path(folder) / ".gitignore").write_text("*.txt\n")  # served, so imported too
    served = api.repo_info("ptest/plain").sha
    # The head the mirror reported is the parent of the first write, and stays readable.
    new = api.upload_file(
        path_or_fileobj=b"b", path_in_repo="b.txt", repo_id="ptest/plain", parent_commit=served
    )
    assert (Path(folder) / ".git").is_dir()
    assert _git(Path(folder), "rev-parse", f"{new.oid}^") == served
    assert sorted(api.list_repo_files("ptest/plain")) == sorted([*files, ".gitignore", "b.txt"])
    assert sorted(api.list_repo_files("ptest/plain", revision=served)) == sorted(
        [*files, ".gitignore"]
    )
    pinned = api.hf_hub_download(
        "ptest/plain", "sub/z.bin", revision=served, cache_dir=tmp_path / "fresh-cache"
    )
    assert Path(pinned).read_bytes() == b"\x00\xff"


def test_a_branch_or_tag_is_a_first_write_of_a_plain_folder_too(
    mirror, writable, api, publish, tmp_path
):
    publish("ptest/plainref", _folder(tmp_path / "plainref", {"a.txt": "a"}))
    served = api.repo_info("ptest/plainref").sha
    api.create_branch("ptest/plainref", branch="dev")
    api.create_tag("ptest/plainref", tag="v1")
    refs = api.list_repo_refs("ptest/plainref")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": served, "dev": served}
    assert [t.target_commit for t in refs.tags] == [served]


def test_an_upload_cut_mid_body_leaves_nothing_in_the_store(
    mirror, mirror_root, writable, api, tmp_path
):
    api.create_repo("ptest/cut")
    head = api.repo_info("ptest/cut").sha
    mirror.set_faults(
        [
            {
                "path": "/ptest/cut.git/info/lfs/objects/upload/*",
                "kind": "close",
                "method": "PUT",
                "times": -1,
            }
        ]
    )
    blob = b"\x00" + os.urandom(200_000)
    with pytest.raises(RuntimeError, match="Error while uploading 'w.bin'"):
        api.upload_file(path_or_fileobj=blob, path_in_repo="w.bin", repo_id="ptest/cut")
    repo = mirror_root / "models" / "ptest" / "cut"
    assert api.repo_info("ptest/cut").sha == head
    assert not Path(lfs_object_path(str(repo), hashlib.sha256(blob).hexdigest())).exists()
    assert list((repo / "lfs" / "tmp").iterdir()) == []
    # a commit body cut in half commits nothing either
    mirror.set_faults(
        [{"path": "/api/models/ptest/cut/commit/*", "kind": "close", "method": "POST", "times": -1}]
    )
    with pytest.raises(httpx2.TransportError):
        api.upload_file(path_or_fileobj=b"small", path_in_repo="s.txt", repo_id="ptest/cut")
    assert api.repo_info("ptest/cut").sha == head
    mirror.set_faults([])
    done = api.upload_file(path_or_fileobj=blob, path_in_repo="w.bin", repo_id="ptest/cut")
    assert _git(repo, "rev-parse", "main") == done.oid


def test_whoami_names_the_account_and_role(mirror, writable):
    assert hh.HfApi(endpoint=mirror.url, token=WRITE).whoami()["name"] == "ptester"
    read = hh.HfApi(endpoint=mirror.url, token=READ).whoami()
    assert read["auth"]["accessToken"]["role"] == "read"


def test_xet_on_cannot_upload_to_the_mirror(mirror, writable, monkeypatch):
    """Why pybridge turns Xet off for endpoints other than huggingface.co."""
    monkeypatch.setattr(hh.constants, "HF_HUB_DISABLE_XET", False)
    api = hh.HfApi(endpoint=mirror.url, token=WRITE)
    api.create_repo("ptest/xet", exist_ok=True)
    with pytest.raises(ConnectionError):  # hf_xet's, for the mirror has no xet-write-token route
        api.upload_file(
            path_or_fileobj=b"\x00" + b"x" * 100, path_in_repo="w.bin", repo_id="ptest/xet"
        )


# ---- pybridge.publish ------------------------------------------------------------------------
def test_publish_verbs_return_plain_values(mirror, writable, hf_env, tmp_path, monkeypatch):
    monkeypatch.setattr(hh.constants, "HF_HUB_DISABLE_XET", False)  # hf_xet's default
    env = {**hf_env, "HF_TOKEN": WRITE}
    made = publish.create_repo("ptest/p1", env=env)
    assert made == {"repo_id": "ptest/p1", "repo_type": "model", "url": f"{mirror.url}/ptest/p1"}
    src = _folder(tmp_path / "src", FILES)
    res = publish.upload_folder(str(src), "ptest/p1", ignore_patterns=["sub/*"], env=env)
    assert hh.constants.HF_HUB_DISABLE_XET is False  # restored after the call
    assert set(res) == {"commit_oid", "commit_url", "pr_url", "repo_id", "revision"}
    assert res["commit_url"].endswith(res["commit_oid"]) and res["pr_url"] is None
    api = hh.HfApi(endpoint=mirror.url, token=WRITE)
    assert "sub/notes.txt" not in api.list_repo_files("ptest/p1")
    one = publish.upload_file(
        str(src / "sub" / "notes.txt"), "notes.txt", "ptest/p1", create_pr=True, env=env
    )
    assert one["pr_url"].endswith("/discussions/1")
    gone = publish.delete_file("config.json", "ptest/p1", env=env)
    assert api.repo_info("ptest/p1").sha == gone["commit_oid"]
    branch = publish.create_branch("ptest/p1", "dev", env=env)
    assert branch == {"repo_id": "ptest/p1", "branch": "dev", "commit": gone["commit_oid"]}
    tag = publish.create_tag("ptest/p1", "v1", env=env)
    assert tag["commit"] == gone["commit_oid"]
    who = publish.whoami(env=env)
    assert who["name"] == "ptester" and who["role"] == "write"
    assert who["token_source"] == "HF_TOKEN" and WRITE not in json.dumps(who)


def test_publish_errors_are_classed_and_never_show_the_token(
    mirror, mirror_root, writable, hf_env, tmp_path
):
    env = {**hf_env, "HF_TOKEN": WRITE}
    with pytest.raises(errors.AuthError):
        publish.create_repo("ptest/e1", env=hf_env)  # no token: refused before any request
    with pytest.raises(errors.AuthError) as err:
        publish.create_repo("ptest/e1", env={**hf_env, "HF_TOKEN": READ})
    assert READ not in str(err.value) and "may not write" in str(err.value)
    assert not (mirror_root / "models" / "ptest" / "e1").exists()
    publish.create_repo("ptest/e1", env=env)
    with pytest.raises(errors.RepoExistsError) as err:
        publish.create_repo("ptest/e1", env=env)
    assert err.value.code == "repo_exists" and err.value.fields["repo_id"] == "ptest/e1"
    assert publish.create_repo("ptest/e1", exist_ok=True, env=env)["repo_id"] == "ptest/e1"
    first = publish.upload_file(__file__, "a.py", "ptest/e1", env=env)
    publish.upload_file(__file__, "b.py", "ptest/e1", env=env)
    with pytest.raises(errors.StaleParentError) as err:
        publish.upload_file(
            __file__, "c.py", "ptest/e1", parent_commit=first["commit_oid"], env=env
        )
    assert err.value.code == "stale_parent"
    with pytest.raises(errors.InvalidArgumentError) as err:
        publish.upload_file(str(tmp_path / "missing.bin"), "m.bin", "ptest/e1", env=env)
    assert err.value.fields["path"].endswith("missing.bin")
    with pytest.raises(errors.InvalidArgumentError):
        publish.upload_folder(str(tmp_path / "nope"), "ptest/e1", env=env)
    publish.create_branch("ptest/e1", "dev", env=env)
    with pytest.raises(errors.RefExistsError):
        publish.create_branch("ptest/e1", "dev", env=env)
    with pytest.raises(errors.RepoNotFoundError):
        publish.upload_file(__file__, "a.py", "ptest/never-created", env=env)
    with pytest.raises(errors.InvalidArgumentError):
        publish.create_repo("ptest/app2", repo_type="space", env=env)
    for name in ("a b", "refs/heads/x"):  # names the Hub refuses (400)
        with pytest.raises(errors.InvalidArgumentError, match="refused"):
            publish.create_branch("ptest/e1", name, env=env)
    for path in ("x\ny.txt", "x\x01y.txt", "dir/"):
        with pytest.raises(errors.InvalidArgumentError) as err:
            publish.upload_file(__file__, path, "ptest/e1", env=env)
        assert err.value.fields["argument"] == "path_in_repo"
    publish.create_tag("ptest/e1", "v1", env=env)
    with pytest.raises(errors.RevisionNotFoundError, match="not a branch"):
        publish.upload_file(__file__, "d.py", "ptest/e1", revision="v1", env=env)
    log = Path(mirror.log_path).read_text()
    assert WRITE not in log and READ not in log


def test_a_cut_upload_is_a_network_error_and_commits_nothing(
    mirror, mirror_root, writable, hf_env, tmp_path
):
    env = {**hf_env, "HF_TOKEN": WRITE}
    publish.create_repo("ptest/cut2", env=env)
    head = hh.HfApi(endpoint=mirror.url).repo_info("ptest/cut2").sha
    src = _folder(tmp_path / "src", {"w.safetensors": b"\x00" + os.urandom(100_000)})
    mirror.set_faults(
        [
            {
                "path": "/api/models/ptest/cut2/commit/*",
                "kind": "close",
                "method": "POST",
                "times": -1,
            }
        ]
    )
    with pytest.raises(errors.NetworkError):
        publish.upload_folder(str(src), "ptest/cut2", env=env)
    assert hh.HfApi(endpoint=mirror.url).repo_info("ptest/cut2").sha == head
    assert "w.safetensors" not in hh.HfApi(endpoint=mirror.url).list_repo_files("ptest/cut2")
    repo = mirror_root / "models" / "ptest" / "cut2"
    assert list((repo / "lfs" / "tmp").iterdir()) == []


# ---- save_model / push_model against transformers --------------------------------------------
@pytest.fixture(scope="module")
def gpt2():
    """The tiny GPT-2 of the fixtures: its folder, its weights as R hands them over (Fortran
    order), and its config."""
    from safetensors.numpy import load_file

    from pybridge.fixtures import models

    folder = models.ensure(names=["gpt2"])["gpt2"]
    weights = {
        k: np.asfortranarray(v.astype(np.float64))
        for k, v in load_file(os.path.join(folder, "model.safetensors")).items()
    }
    config = json.loads(Path(folder, "config.json").read_text())
    return {"folder": folder, "weights": weights, "config": config}


def _transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


def test_save_model_writes_what_save_pretrained_writes(gpt2, tmp_path):
    transformers = _transformers()
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(gpt2["folder"], "tokenizer.json"))
    card = {
        "license": "mit",
        "tags": ["r"],
        "pipeline_tag": "text-generation",
        "base_model": "gpt2",
        "description": "Changed in R.",
    }
    out = tmp_path / "saved"
    written = model_folder.save_model(
        str(out), gpt2["weights"], gpt2["config"], tokenizer=tok, card=card
    )
    names = {Path(p).name for p in written}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    } <= names
    ours = transformers.AutoModelForCausalLM.from_pretrained(out)
    ref = transformers.AutoModelForCausalLM.from_pretrained(gpt2["folder"])
    for name, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    # the tokenizer transformers loads from our files encodes and names special tokens as the
    # original does
    reloaded = transformers.AutoTokenizer.from_pretrained(out)
    original = transformers.AutoTokenizer.from_pretrained(gpt2["folder"])
    text = "Hello, world! The cat sat."
    assert reloaded(text)["input_ids"] == original(text)["input_ids"]
    assert reloaded.eos_token == original.eos_token == "<|endoftext|>"
    data = hh.ModelCard.load(out / "README.md").data
    assert data.license == "mit" and data.pipeline_tag == "text-generation"
    assert data.base_model == "gpt2" and data.library_name == "transformers"
    assert "r" in data.tags and "Changed in R." in (out / "README.md").read_text()


def test_shards_and_index_as_transformers_writes_them(gpt2, tmp_path):
    transformers = _transformers()
    model = transformers.AutoModelForCausalLM.from_pretrained(gpt2["folder"])
    model.save_pretrained(tmp_path / "ref", max_shard_size="20KB")
    ref_index = json.loads((tmp_path / "ref" / "model.safetensors.index.json").read_text())
    ours = tmp_path / "ours"
    # transformers saves the LM model's names (transformer.*, tied lm_head left out)
    weights = {f"transformer.{k}": v for k, v in gpt2["weights"].items()}
    model_folder.save_model(str(ours), weights, gpt2["config"], max_shard_size="20KB")
    index = json.loads((ours / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == ref_index["weight_map"]
    assert index["metadata"]["total_size"] == ref_index["metadata"]["total_size"]
    assert sorted(p.name for p in ours.glob("model-*.safetensors")) == sorted(
        p.name for p in (tmp_path / "ref").glob("model-*.safetensors")
    )
    loaded = transformers.AutoModelForCausalLM.from_pretrained(ours)
    for name, value in model.state_dict().items():
        assert np.array_equal(loaded.state_dict()[name].numpy(), value.numpy()), name
    # saving again unsharded removes the old shards, as save_pretrained does, and keeps the
    # user's own files; the new folder replaces the old one in one exchange, so a killed save
    # leaves one or the other (the old one's inode is gone, its files linked into the new one)
    (ours / "modeling_custom.py").write_text("# mine\n")
    (ours / "notes").mkdir()
    (ours / "notes" / "a.txt").write_text("kept")
    before = ours.stat().st_ino
    model_folder.save_model(str(ours), weights, gpt2["config"])
    assert not list(ours.glob("model-*.safetensors"))
    assert not (ours / "model.safetensors.index.json").exists()
    assert (ours / "modeling_custom.py").read_text() == "# mine\n"
    assert (ours / "notes" / "a.txt").read_text() == "kept"
    assert ours.stat().st_ino != before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_two_folders_are_exchanged_in_one_step(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from-a").write_text("")
    assert model_folder._exchange(str(tmp_path / "a"), str(tmp_path / "b"))
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from-a"]
    assert list((tmp_path / "a").iterdir()) == []


def test_save_model_refuses_bad_input_and_leaves_the_folder_as_it_was(gpt2, tmp_path):
    out = tmp_path / "kept"
    out.mkdir()
    (out / "modeling_custom.py").write_text("# mine\n")
    with pytest.raises(errors.InvalidArgumentError):
        model_folder.save_model(str(out), gpt2["weights"], {"n_embd": 32})  # no model_type
    with pytest.raises(errors.InvalidArgumentError):
        model_folder.save_model(str(out), {"w": np.array(["a"])}, gpt2["config"])
    with pytest.raises(errors.InvalidArgumentError):
        model_folder.save_model(str(out), gpt2["weights"], gpt2["config"], card={"licence": "mit"})
    with pytest.raises(errors.InvalidArgumentError, match="not a float type"):
        model_folder.save_model(str(out), gpt2["weights"], gpt2["config"], default_dtype="int8")
    no_tokenizer = tmp_path / "config-only"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(errors.InvalidFileError, match="no tokenizer files"):
        model_folder.save_model(
            str(out), gpt2["weights"], gpt2["config"], tokenizer=str(no_tokenizer)
        )
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(errors.InvalidArgumentError, match="not a JSON file"):
        model_folder.save_model(str(out), gpt2["weights"], str(tmp_path / "bad.json"))
    assert [p.name for p in out.iterdir()] == ["modeling_custom.py"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


GENERATE = """
import json, sys, transformers
transformers.logging.set_verbosity_error()
repo, prompt, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = transformers.AutoTokenizer.from_pretrained(repo)
model = transformers.AutoModelForCausalLM.from_pretrained(repo)
w = model.transformer.h[0].attn.c_attn.weight
transformers.set_seed(seed)
out = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=8, do_sample=True,
                     top_k=20, pad_token_id=tok.eos_token_id)
print(json.dumps({"ids": out[0].tolist(), "w": float(w[1, 2])}))
"""


def test_push_model_then_transformers_reads_it_through_the_mirror(
    gpt2, mirror, writable, hf_env, tmp_path
):
    env = {**hf_env, "HF_TOKEN": WRITE}
    weights = dict(gpt2["weights"])
    changed = np.array(weights["h.0.attn.c_attn.weight"], order="F")
    changed[1, 2] = 0.625  # R's [2, 3]
    weights["h.0.attn.c_attn.weight"] = changed
    res = publish.push_model(
        "ptest/gpt2-pushed",
        weights,
        gpt2["config"],
        tokenizer=gpt2["folder"],
        card={"license": "mit"},
        max_shard_size="30KB",
        env=env,
    )
    files = hh.HfApi(endpoint=mirror.url).list_repo_files("ptest/gpt2-pushed")
    assert "model.safetensors.index.json" in files and "tokenizer.json" in files
    child = {**os.environ, **hf_env, "HF_ENDPOINT": mirror.url, "HF_HUB_DISABLE_XET": "1"}
    child.pop("HF_TOKEN", None)
    run = subprocess.run(
        [os.sys.executable, "-c", GENERATE, "ptest/gpt2-pushed", "Hello", "3"],
        env=child,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(run.stdout)
    assert got["w"] == 0.625
    ref = subprocess.run(
        [
            os.sys.executable,
            "-c",
            GENERATE.replace(
                "w = model.transformer.h[0].attn.c_attn.weight",
                "import torch\nwith torch.no_grad(): "
                "model.transformer.h[0].attn.c_attn.weight[1, 2] = "
                "0.625\nw = model.transformer.h[0].attn.c_attn.weight",
            ),
            gpt2["folder"],
            "Hello",
            "3",
        ],
        env=child,
        capture_output=True,
        text=True,
        check=True,
    )
    assert got["ids"] == json.loads(ref.stdout)["ids"]
    # a second push with one file: the old shards are deleted in the same commit
    again = publish.push_model("ptest/gpt2-pushed", weights, gpt2["config"], env=env)
    files = hh.HfApi(endpoint=mirror.url).list_repo_files("ptest/gpt2-pushed")
    assert "model.safetensors" in files and not any(f.startswith("model-0") for f in files)
    assert again["commit_oid"] != res["commit_oid"]


def test_publishing_imports_neither_torch_nor_transformers(mirror, writable, hf_env, tmp_path):
    code = (
        "import sys, json\n"
        "from pybridge import publish\n"
        f"env = {json.dumps({**hf_env, 'HF_TOKEN': WRITE})}\n"
        "publish.create_repo('ptest/light', exist_ok=True, env=env)\n"
        f"publish.upload_file({json.dumps(__file__)}, 'a.py', 'ptest/light', env=env)\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [os.sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **hf_env},
    )
    assert out.stdout.strip() == "[]"
