"""pybridge.datasets against datasets.load_dataset on the same repos of the local mirror.

load_dataset runs in a child Python (datasets and huggingface_hub read HF_ENDPOINT once, at
import), which writes each split's arrow table and features; the test decodes pybridge's columns
back to Python values and compares them value by value.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import math
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from pybridge import columns as C
from pybridge import datasets as D
from pybridge import errors, jobs
from pybridge.fixtures import datasets as fixture_datasets
from pybridge.fixtures import demo

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
        "json.dump(ds.features.to_dict(), open(out + '.json', 'w'))\n"
    )
    env = {
        **os.environ,
        **hf_env,
        "HF_DATASETS_CACHE": str(tmp_path / "ds-cache"),
        "HF_HUB_DISABLE_XET": "1",
    }
    subprocess.run(
        [sys.executable, "-c", code, repo_id, config or "-", split, str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    with pa.memory_map(str(out) + ".arrow") as f:
        table = pa.ipc.open_file(f).read_all()
    return table, json.loads(open(str(out) + ".json").read())


def read_buffers(b):
    """The values a ``buffers`` description points at, read as R's C code reads them (nulls as
    None; strings as UTF-8, NUL kept)."""
    n, off = int(b["length"]), int(b["offset"])
    if n == 0:
        return []

    def raw(address, nbytes):
        return ctypes.string_at(int(address), nbytes) if nbytes else b""

    def bits(address):
        data = np.frombuffer(raw(address, (off + n + 7) // 8), dtype=np.uint8)
        return np.unpackbits(data, bitorder="little")[off : off + n].astype(bool).tolist()

    valid = bits(b["validity"]) if b["validity"] else [True] * n
    typ = b["type"]
    if typ == "bool":
        values = bits(b["values"])
    elif typ in ("int32", "float64"):
        dt = np.dtype(np.int32 if typ == "int32" else np.float64)
        values = np.frombuffer(raw(b["values"], (off + n) * dt.itemsize), dt)[off:].tolist()
    else:
        dt = np.dtype(np.int32 if typ == "utf8" else np.int64)
        o = np.frombuffer(raw(b["values"], (off + n + 1) * dt.itemsize), dt)[off:].tolist()
        data = raw(b["data"], o[-1])
        values = [data[o[i] : o[i + 1]].decode("utf-8") for i in range(n)]
    return [v if ok else None for v, ok in zip(values, valid)]


def decode(spec):
    """pybridge's column spec as Python values (None for NA)."""
    kind = spec["kind"]
    if kind == "list":
        child = decode(spec["child"])
        off = read_buffers(spec["offsets"])
        values = [child[off[i] : off[i + 1]] for i in range(len(off) - 1)]
        na = read_buffers(spec["na"]) if spec["na"] is not None else [False] * len(values)
        return [None if m else v for v, m in zip(values, na)]
    values = read_buffers(spec["buffers"])
    if kind == "factor":
        return [None if c is None else c - 1 for c in values]
    if kind == "timestamp":
        return [
            None if v is None else datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=v)
            for v in values
        ]
    if kind == "date":
        return [
            None if v is None else datetime.date(1970, 1, 1) + datetime.timedelta(days=v)
            for v in values
        ]
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


CASES = [
    ("edge", None, "train"),
    ("sharded", None, "train"),
    ("sharded", None, "test"),
    ("configs", None, "train"),
    ("configs", "second", "validation"),
    ("csv", None, "train"),
    ("tsv", None, "train"),
    ("jsonl", None, "validation"),
]


@pytest.mark.parametrize("name,config,split", CASES)
def test_read_equals_load_dataset(repos, tmp_path, name, config, split):
    repo_id = f"pyds/{name}"
    table, features = load_with_datasets(repos, tmp_path, repo_id, config, split)
    res = D.read(repo_id, split=split, config=config, env=repos, quiet=True)
    assert_equal_to_datasets(res, table, features)


@pytest.mark.parametrize("legacy", list(demo.DEMO_DATASET_IDS))
def test_demo_datasets_load_in_datasets_under_their_namespaced_id(
    publish, hf_env, tmp_path, legacy
):
    """datasets 5 refuses an id without a namespace ("imdb"); the demo serves each dataset
    under the Hub's namespaced id too, the same files."""
    namespaced = demo.DEMO_DATASET_IDS[legacy]
    built = demo.build_demo_store(tmp_path / "store", [legacy, namespaced])
    for repo_id, folder in built.items():
        publish(repo_id, folder, repo_type="dataset")
    config = "en" if legacy == "c4" else None
    table, features = load_with_datasets(hf_env, tmp_path, namespaced, config, "train")
    res = D.read(legacy, split="train", config=config, env=hf_env, quiet=True)
    assert_equal_to_datasets(res, table, features)


def test_edge_columns_equal_arrow_sliced_and_large_string():
    """Every type with nulls, empty strings and lists, NUL and non-ASCII text, read from arrow's
    buffers (also when the arrays start at an offset, as slices and chunks do)."""
    from pybridge.fixtures.datasets import edge_features, edge_rows

    schema = edge_features().arrow_schema
    table = pa.Table.from_pydict(edge_rows(), schema=schema)
    for part in (table, table.slice(1), table.slice(3, 2), table.slice(6)):
        res = C.encode_table(part, dict(edge_features()))
        for name, spec in zip(res["names"], res["columns"]):
            expected = part.column(name).to_pylist()
            assert same(decode(spec), expected), name
    res = C.encode_table(table, dict(edge_features()))
    kinds = {
        n: (c["kind"], c.get("buffers", {}).get("type"))
        for n, c in zip(res["names"], res["columns"])
    }
    assert kinds["s"] == ("string", "utf8") and kinds["ls"] == ("string", "large_utf8")
    assert kinds["label"] == ("factor", "int32") and kinds["i64"] == ("double", "float64")
    res["held"].release()
    assert res["held"].arrays == []


def test_empty_table_has_the_columns_of_its_features(repos):
    res = D.read("pyds/edge_empty", env=repos, quiet=True)
    full = D.read("pyds/edge", env=repos, quiet=True)
    assert res["num_rows"] == 0 and res["names"] == full["names"]
    assert [c["kind"] for c in res["columns"]] == [
        "integer" if c.get("inexact") is not None else c["kind"] for c in full["columns"]
    ]
    assert all(decode(c) == [] for c in res["columns"])


def test_kinds_of_the_sharded_repo(repos):
    res = D.read("pyds/sharded", env=repos, quiet=True)
    kinds = {n: c["kind"] for n, c in zip(res["names"], res["columns"])}
    assert kinds == {
        "idx": "integer",
        "text": "string",
        "score": "double",
        "label": "factor",
        "ids": "list",
        "flag": "logical",
        "when": "timestamp",
        "big": "double",
    }
    big = res["columns"][res["names"].index("big")]
    assert big["inexact"] is False  # beyond int32, within 2^53


def test_columns_and_n_max_read_only_what_is_needed(repos, mirror):
    mirror.reset_stats()
    res = D.read("pyds/sharded", columns=["label", "text"], n_max=45, env=repos, quiet=True)
    assert res["names"] == ["label", "text"] and res["num_rows"] == 45
    paths = [p for p in mirror.stats()["by_path"] if p.endswith(".parquet")]
    assert paths
    assert all("train-00000" in p for p in paths)  # the first shard holds 100 rows


def test_chunks_are_a_job_of_one_chunk_a_step(repos):
    """R's job_run() reads chunks as it runs any job: each step's state carries the next chunk,
    counts the rows read and says done at the end; stop() ends a read early."""
    whole = D.read("pyds/sharded", columns=["idx"], env=repos, quiet=True)
    reader = D.open_chunks("pyds/sharded", columns=["idx"], chunk_size=100, env=repos, quiet=True)
    assert reader.total == 321
    states, idx = [], []
    while not (state := jobs.step(reader))["done"]:
        states.append({k: v for k, v in state.items() if k != "chunk"})
        idx += decode(state["chunk"]["columns"][0])
        state["chunk"]["held"].release()
    assert states == [{"done": False, "step": n, "total": 321} for n in (100, 200, 300, 321)]
    assert state["chunk"] is None and state["step"] == 321
    assert idx == decode(whole["columns"][0])
    assert jobs.result(reader) is None
    csv = D.open_chunks("pyds/csv", chunk_size=2, env=repos, quiet=True)
    assert csv.total == -1
    first = jobs.step(csv)
    assert first["chunk"]["num_rows"] == 2 and not first["done"]
    assert jobs.stop(csv) == {"done": True, "step": 2, "total": -1}
    assert jobs.step(csv)["chunk"] is None


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


def test_info_offline_needs_every_split_cached_and_then_equals_online(repos):
    offline = {**repos, "HF_HUB_OFFLINE": "1"}
    D.read("pyds/configs", config="first", split="train", env=repos, quiet=True)
    with pytest.raises(errors.OfflineNotCachedError) as err:
        D.info("pyds/configs", env=offline)
    assert err.value.fields["split"] == "validation" and err.value.fields["splits"] == ["train"]
    for config, split in [("first", "validation"), ("second", "train"), ("second", "validation")]:
        D.read("pyds/configs", config=config, split=split, env=repos, quiet=True)
    online, cached = D.info("pyds/configs", env=repos), D.info("pyds/configs", env=offline)
    assert not np.isnan(cached["splits"]["num_bytes"]).any()
    for key in ("num_rows", "num_bytes", "num_files"):
        assert list(cached["splits"][key]) == list(online["splits"][key]), key
    assert cached["features"] == online["features"]


def test_upload_round_trip_is_read_by_datasets(repos, mirror_config, tmp_path):
    import numpy as np

    mirror_config({"write": {"datasets/pyup/*": [WRITE_TOKEN]}})
    columns = {
        "names": ["n", "label", "ids"],
        "columns": [
            {"kind": "integer", "values": np.array([1, 2, 3], dtype=np.int32), "na": None},
            {
                "kind": "factor",
                "values": np.array([1, 0, 0], dtype=np.int32),
                "na": np.array([False, False, True]),
                "levels": ["neg", "pos"],
            },
            {
                "kind": "list",
                "offsets": np.array([0, 2, 2, 3], dtype=np.int32),
                "na": None,
                "child": {"kind": "double", "values": np.array([0.5, 1.5, 2.5]), "na": None},
            },
        ],
    }
    D.upload(columns, "pyup/round", env=repos, token=WRITE_TOKEN, quiet=True)
    table, features = load_with_datasets(repos, tmp_path, "pyup/round", None, "train")
    assert features["label"] == {"names": ["neg", "pos"], "_type": "ClassLabel"}
    assert table.column("label").to_pylist() == [1, 0, None]
    assert table.column("ids").to_pylist() == [[0.5, 1.5], [], [2.5]]
    back = D.read("pyup/round", env=repos, quiet=True)
    assert_equal_to_datasets(back, table, features)


def push_with_datasets(hf_env, tmp_path, code):
    """Python code run in a child process with ``datasets``, ``HfApi`` as ``api`` and the mirror
    (datasets reads HF_ENDPOINT at import)."""
    env = {
        **os.environ,
        **hf_env,
        "HF_TOKEN": WRITE_TOKEN,
        "HF_DATASETS_CACHE": str(tmp_path / "ds-cache"),
        "HF_HUB_DISABLE_XET": "1",
    }
    prelude = "import datasets\nfrom huggingface_hub import HfApi\napi = HfApi()\n"
    subprocess.run([sys.executable, "-c", prelude + code], env=env, check=True, capture_output=True)


def text_label_columns(texts, labels):
    return {
        "names": ["text", "label"],
        "columns": [
            {"kind": "string", "values": texts, "na": None},
            {"kind": "integer", "values": np.array(labels, dtype=np.int32), "na": None},
        ],
    }


TEXT_LABEL = (
    "features = datasets.Features({'text': datasets.Value('string'), "
    "'label': datasets.Value('int32')})\n"
)


def test_upload_replaces_a_split_pushed_by_datasets(repos, mirror_config, tmp_path):
    """The train split of a datasets push (2 shards, a test split, a card with text) replaced:
    its shards go, the README's dataset_info and configs follow, the rest stays."""
    mirror_config({"write": {"datasets/pyup/*": [WRITE_TOKEN]}})
    push_with_datasets(
        repos,
        tmp_path,
        TEXT_LABEL + "datasets.DatasetDict({\n"
        "  'train': datasets.Dataset.from_dict({'text': ['a'] * 2000, 'label': [0] * 2000},"
        " features=features),\n"
        "  'test': datasets.Dataset.from_dict({'text': ['t'] * 3, 'label': [1] * 3},"
        " features=features),\n"
        "}).push_to_hub('pyup/pushed', max_shard_size='10KB')\n"
        "card = open(api.hf_hub_download('pyup/pushed', 'README.md', repo_type='dataset')).read()\n"
        "api.upload_file(path_or_fileobj=(card + '\\n# Reviews\\nWritten by hand.\\n').encode(),"
        " path_in_repo='README.md', repo_id='pyup/pushed', repo_type='dataset')\n",
    )
    before = D._open_repo("pyup/pushed", "main", repos, None, True).paths
    assert len([f for f in before if f.startswith("data/train")]) == 2
    D.upload(text_label_columns(["x", "y"], [1, 2]), "pyup/pushed", env=repos, token=WRITE_TOKEN)

    files = D._open_repo("pyup/pushed", "main", repos, None, True).paths
    assert [f for f in files if f.startswith("data/train")] == ["data/train-00000-of-00001.parquet"]
    table, features = load_with_datasets(repos, tmp_path, "pyup/pushed", None, "train")
    assert table.column("text").to_pylist() == ["x", "y"]
    assert_equal_to_datasets(D.read("pyup/pushed", env=repos, quiet=True), table, features)
    test, _ = load_with_datasets(repos, tmp_path, "pyup/pushed", None, "test")
    assert test.num_rows == 3
    info = D.info("pyup/pushed", env=repos)
    assert dict(zip(info["splits"]["split"], info["splits"]["num_rows"])) == {
        "train": 2.0,
        "test": 3.0,
    }
    readme = open(D._open_repo("pyup/pushed", "main", repos, None, True).download("README.md"))
    assert readme.read().endswith("# Reviews\nWritten by hand.\n")


def test_upload_with_other_columns_replaces_the_only_split(repos, mirror_config, tmp_path):
    """The README's features become the new ones (push_to_hub itself would keep the old)."""
    mirror_config({"write": {"datasets/pyup/*": [WRITE_TOKEN]}})
    push_with_datasets(
        repos,
        tmp_path,
        "datasets.Dataset.from_dict({'text': ['a'] * 2000, 'label': [0] * 2000})"
        ".push_to_hub('pyup/reshaped', max_shard_size='20KB')\n",
    )
    other = {
        "names": ["score"],
        "columns": [{"kind": "double", "values": np.array([0.5, 1.5]), "na": None}],
    }
    D.upload(other, "pyup/reshaped", env=repos, token=WRITE_TOKEN)
    table, features = load_with_datasets(repos, tmp_path, "pyup/reshaped", None, "train")
    assert features == {"score": {"dtype": "float64", "_type": "Value"}}
    assert_equal_to_datasets(D.read("pyup/reshaped", env=repos, quiet=True), table, features)


def test_upload_to_a_config_pushed_with_config_name(repos, mirror_config, tmp_path):
    mirror_config({"write": {"datasets/pyup/*": [WRITE_TOKEN]}})
    push_with_datasets(
        repos,
        tmp_path,
        TEXT_LABEL + "datasets.Dataset.from_dict({'text': ['a', 'b'], 'label': [0, 1]},"
        " features=features).push_to_hub('pyup/configured', config_name='reviews')\n",
    )
    columns = text_label_columns(["new"], [5])
    D.upload(columns, "pyup/configured", config="reviews", env=repos, token=WRITE_TOKEN)
    table, features = load_with_datasets(repos, tmp_path, "pyup/configured", "reviews", "train")
    assert table.column("text").to_pylist() == ["new"]
    back = D.read("pyup/configured", config="reviews", env=repos, quiet=True)
    assert_equal_to_datasets(back, table, features)


def test_upload_whose_features_differ_from_the_other_splits_is_refused(
    repos, mirror_config, tmp_path
):
    mirror_config({"write": {"datasets/pyup/*": [WRITE_TOKEN]}})
    D.upload(text_label_columns(["a"], [1]), "pyup/twosplits", env=repos, token=WRITE_TOKEN)
    columns = text_label_columns(["b"], [2])
    D.upload(columns, "pyup/twosplits", split="test", env=repos, token=WRITE_TOKEN)
    other = {"names": ["text"], "columns": [{"kind": "string", "values": ["c"], "na": None}]}
    with pytest.raises(errors.InvalidArgumentError) as err:
        D.upload(other, "pyup/twosplits", split="test", env=repos, token=WRITE_TOKEN)
    assert err.value.fields["argument"] == "df"
    assert D.info("pyup/twosplits", env=repos)["splits"]["split"] == ["train", "test"]
    with pytest.raises(errors.InvalidArgumentError):
        D.upload(other, "pyup/twosplits", config="data", env=repos, token=WRITE_TOKEN)


def dataset_folder(tmp_path, name, files):
    """A dataset repo's folder of ``{path: text or arrow table}`` (tables written as parquet)."""
    import pyarrow.parquet as pq

    folder = tmp_path / name
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pa.Table):
            pq.write_table(content, target)
        else:
            target.write_text(content)
    return folder


def test_a_json_file_that_is_no_table_is_an_invalid_file(publish, hf_env, tmp_path):
    publish("pyds/json_scalar", dataset_folder(tmp_path, "j", {"train.json": "42"}), "dataset")
    for call in (D.read, D.open_chunks):
        with pytest.raises(errors.InvalidFileError) as err:
            reader = call("pyds/json_scalar", env=hf_env, quiet=True)
            jobs.step(reader)
        assert err.value.fields["filename"] == "train.json"
        assert "cannot be read as json" in str(err.value)


def test_shards_with_different_columns_are_an_invalid_file_whole_and_in_chunks(
    publish, hf_env, tmp_path
):
    files = {
        "data/train-00000-of-00002.parquet": pa.table({"a": [1, 2]}),
        "data/train-00001-of-00002.parquet": pa.table({"b": ["x"]}),
        "data/test-00000-of-00002.parquet": pa.table({"a": [1, 2]}),
        "data/test-00001-of-00002.parquet": pa.table({"a": ["x"]}),  # same name, other type
    }
    publish("pyds/schemas", dataset_folder(tmp_path, "s", files), "dataset")
    for split in ("train", "test"):
        second = f"data/{split}-00001-of-00002.parquet"
        with pytest.raises(errors.InvalidFileError) as err:
            D.read("pyds/schemas", split=split, env=hf_env, quiet=True)
        assert err.value.fields["filename"] == second
        assert "columns" in str(err.value)
        for chunk_size in (1, 3):  # a chunk within the first shard, or across both
            reader = D.open_chunks(
                "pyds/schemas", split=split, chunk_size=chunk_size, env=hf_env, quiet=True
            )
            with pytest.raises(errors.InvalidFileError) as err:
                while not jobs.step(reader)["done"]:
                    pass
            assert err.value.fields["filename"] == second
    assert D.read("pyds/schemas", columns=["a"], n_max=2, env=hf_env)["num_rows"] == 2


def test_a_readme_whose_yaml_does_not_parse_is_an_invalid_file(publish, hf_env, tmp_path):
    card = "---\nconfigs:\n- config_name: x\n  data_files: [nope/*.csv\n---\n# A card\n"
    files = {"README.md": card, "train.csv": "a\n1\n"}
    publish("pyds/bad_yaml", dataset_folder(tmp_path, "y", files), "dataset")
    for call in (D.read, D.info, D.open_chunks):
        with pytest.raises(errors.InvalidFileError) as err:
            call("pyds/bad_yaml", env=hf_env)
        assert err.value.fields["filename"] == "README.md"
        assert "YAML" in str(err.value)


def test_a_repo_of_only_a_readme_has_no_data_files(publish, hf_env, tmp_path):
    files = {"README.md": "---\nlicense: mit\n---\n# Nothing yet\n"}
    publish("pyds/readme_only", dataset_folder(tmp_path, "r", files), "dataset")
    for call in (D.read, D.info, D.open_chunks):
        with pytest.raises(errors.EntryNotFoundError) as err:
            call("pyds/readme_only", env=hf_env)
        assert "has no data files that datasets recognises" in str(err.value)
