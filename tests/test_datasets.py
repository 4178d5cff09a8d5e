"""pybridge.datasets against datasets.load_dataset on the same repos of the local mirror.

load_dataset runs in a child Python (datasets and huggingface_hub read HF_ENDPOINT once, at
import), which writes each split's arrow table and features; the test decodes pybridge's columns
back to Python values and compares them value by value.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from pybridge import datasets as D
from pybridge import errors
from pybridge.fixtures import datasets as fixture_datasets

WRITE_TOKEN = "hf_pyDatasetsWriteToken012345"


@pytest.fixture(scope="module")
def folders():
    return fixture_datasets.ensure()


@pytest.fixture
def repos(folders, publish, hf_env):
    for name, folder in folders.items():
        publish(f"pyds/{name}", folder, repo_type="dataset")
    return hf_env


def load_with_datasets(hf_env, tmp_path, repo_id, config, split):
    """datasets.load_dataset in a child process: (arrow table, features dict)."""
    out = tmp_path / f"{repo_id.replace('/', '_')}-{config}-{split}"
    code = (
        "import json, sys, datasets, pyarrow as pa\n"
        "repo, config, split, out = sys.argv[1:5]\n"
        "ds = datasets.load_dataset(repo, None if config == '-' else config, split=split)\n"
        "with pa.OSFile(out + '.arrow', 'wb') as f:\n"
        "    with pa.ipc.new_file(f, ds.data.table.schema) as w:\n"
        "        w.write_table(ds.data.table)\n"
        "json.dump(ds.features.to_dict(), open(out + '.json', 'w'))\n")
    env = {**os.environ, **hf_env, "HF_DATASETS_CACHE": str(tmp_path / "ds-cache"),
           "HF_HUB_DISABLE_XET": "1"}
    subprocess.run([sys.executable, "-c", code, repo_id, config or "-", split, str(out)],
                   env=env, check=True, capture_output=True)
    with pa.memory_map(str(out) + ".arrow") as f:
        table = pa.ipc.open_file(f).read_all()
    return table, json.loads(open(str(out) + ".json").read())


def decode(spec):
    """pybridge's column spec as Python values (None for NA)."""
    kind = spec["kind"]
    na = spec.get("na")
    if kind == "list":
        child = decode(spec["child"])
        off = spec["offsets"]
        values = [child[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    elif kind == "factor":
        return [None if c < 0 else int(c) for c in spec["codes"]]
    elif kind == "string":
        if "joined" in spec:
            values = spec["joined"].split(spec["sep"])[:-1]
        else:
            values = list(spec["values"])
    elif kind == "timestamp":
        values = [datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=float(v))
                  for v in spec["values"]]
    else:
        values = [v.item() for v in spec["values"]]
    if na is not None:
        values = [None if m else v for v, m in zip(values, na)]
    return values


def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        return abs((a - b.replace(tzinfo=None)).total_seconds()) < 1e-6
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def assert_equal_to_datasets(res, table, features):
    assert res["names"] == table.column_names
    assert res["num_rows"] == table.num_rows
    for name, spec in zip(res["names"], res["columns"]):
        expected = table.column(name).to_pylist()
        got = decode(spec)
        assert len(got) == len(expected), name
        bad = [i for i, (g, e) in enumerate(zip(got, expected)) if not same(g, e)]
        assert not bad, f"{name}: row {bad[0]}: {got[bad[0]]!r} != {expected[bad[0]]!r}"
        if features[name].get("_type") == "ClassLabel":
            assert spec["kind"] == "factor"
            assert spec["levels"] == features[name]["names"]


CASES = [("sharded", None, "train"), ("sharded", None, "test"), ("configs", None, "train"),
         ("configs", "second", "validation"), ("csv", None, "train"), ("tsv", None, "train"),
         ("jsonl", None, "validation")]


@pytest.mark.parametrize("name,config,split", CASES)
def test_read_equals_load_dataset(repos, tmp_path, name, config, split):
    repo_id = f"pyds/{name}"
    table, features = load_with_datasets(repos, tmp_path, repo_id, config, split)
    res = D.read(repo_id, split=split, config=config, env=repos, quiet=True)
    assert_equal_to_datasets(res, table, features)


def test_kinds_of_the_sharded_repo(repos):
    res = D.read("pyds/sharded", env=repos, quiet=True)
    kinds = {n: c["kind"] for n, c in zip(res["names"], res["columns"])}
    assert kinds == {"idx": "integer", "text": "string", "score": "double", "label": "factor",
                     "ids": "list", "flag": "logical", "when": "timestamp", "big": "double"}
    big = res["columns"][res["names"].index("big")]
    assert big["inexact"] is False  # beyond int32, within 2^53


def test_columns_and_n_max_read_only_what_is_needed(repos, mirror):
    mirror.reset_stats()
    res = D.read("pyds/sharded", columns=["label", "text"], n_max=45, env=repos, quiet=True)
    assert res["names"] == ["label", "text"] and res["num_rows"] == 45
    paths = [p for p in mirror.stats()["by_path"] if p.endswith(".parquet")]
    assert paths
    assert all("train-00000" in p for p in paths)  # the first shard holds 100 rows


def test_missing_split_config_and_column_name_what_exists(repos):
    with pytest.raises(errors.EntryNotFoundError) as err:
        D.read("pyds/configs", split="test", env=repos)
    assert err.value.fields["splits"] == ["train", "validation"]
    with pytest.raises(errors.EntryNotFoundError) as err:
        D.read("pyds/configs", config="third", env=repos)
    assert err.value.fields["configs"] == ["first", "second"]
    with pytest.raises(errors.EntryNotFoundError) as err:
        D.read("pyds/csv", columns=["text", "nope"], env=repos)
    assert err.value.fields["column"] == ["nope"] and "score" in err.value.fields["columns"]
    with pytest.raises(errors.RepoNotFoundError):
        D.read("pyds/absent", env=repos)


def test_offline_after_a_first_read_makes_no_request(repos, mirror):
    first = D.read("pyds/sharded", split="test", env=repos, quiet=True)
    mirror.reset_stats()
    offline = {**repos, "HF_HUB_OFFLINE": "1"}
    again = D.read("pyds/sharded", split="test", env=offline, quiet=True)
    assert mirror.stats()["total"] == 0
    assert same([decode(c) for c in again["columns"]], [decode(c) for c in first["columns"]])
    with pytest.raises(errors.OfflineNotCachedError) as err:
        D.read("pyds/sharded", split="train", env=offline)
    assert err.value.fields["splits"] == ["test"]


def test_info_counts_rows_and_features(repos):
    info = D.info("pyds/sharded", env=repos)
    assert info["splits"]["split"] == ["train", "test"]
    assert list(info["splits"]["num_rows"]) == [321.0, 50.0]
    levels = dict(zip(info["features"]["column"], info["features"]["levels"]))
    assert levels["label"] == "neg|pos|neutral"


def test_upload_round_trip_is_read_by_datasets(repos, mirror_config, tmp_path):
    import numpy as np

    mirror_config({"write": {"datasets/pyup/*": [WRITE_TOKEN]}})
    columns = {"names": ["n", "label", "ids"], "columns": [
        {"kind": "integer", "values": np.array([1, 2, 3], dtype=np.int32), "na": None},
        {"kind": "factor", "values": np.array([1, 0, 0], dtype=np.int32),
         "na": np.array([False, False, True]), "levels": ["neg", "pos"]},
        {"kind": "list", "offsets": np.array([0, 2, 2, 3], dtype=np.int32), "na": None,
         "child": {"kind": "double", "values": np.array([0.5, 1.5, 2.5]), "na": None}},
    ]}
    D.upload(columns, "pyup/round", env=repos, token=WRITE_TOKEN, quiet=True)
    table, features = load_with_datasets(repos, tmp_path, "pyup/round", None, "train")
    assert features["label"] == {"names": ["neg", "pos"], "_type": "ClassLabel"}
    assert table.column("label").to_pylist() == [1, 0, None]
    assert table.column("ids").to_pylist() == [[0.5, 1.5], [], [2.5]]
    back = D.read("pyup/round", env=repos, quiet=True)
    assert_equal_to_datasets(back, table, features)
