"""Datasets on the Hub as columns for R, and R columns back to the Hub as parquet.

Which files make which config and split is decided as ``datasets`` decides it, with its own
pieces: the README's ``configs:`` YAML (``MetadataConfigs``), ``dataset_info`` (features, row and
byte counts), and, without YAML, its file-name pattern tables (``_get_data_files_patterns`` over
``ALL_SPLIT_PATTERNS`` and ``ALL_DEFAULT_PATTERNS``). The patterns are matched against the repo's
file list (fsspec's glob rules, datasets' hidden-file rules), so no ``datasets`` cache and no
``hf://`` file system is involved: files come through :mod:`pybridge.hub`, into huggingface_hub's
cache, and work offline once cached. The Hub's parquet export (``refs/convert/parquet``:
``<config>/<split>/0000.parquet``) is read as its folders say.

pyarrow reads: parquet with only the asked columns and only the row groups needed for
``n_max`` (and only the shards needed), csv/tsv as ``datasets`` does (pandas, then arrow), json
and jsonl with pyarrow's reader. Features come from the parquet's ``huggingface`` schema
metadata (``datasets.Features.from_arrow_schema``) or the YAML.

This module holds the verbs, the repo's layout and the reader; the codec between arrow tables
and R's columns is :mod:`pybridge.columns`. R gets a table as its ``encode_table`` gives it:
``{"names": [...], "columns": [spec, ...], "num_rows": n, "held": ...}``, each spec a dict with
a ``kind`` and the addresses of the arrow buffers that hold its values (see ``column_spec``),
which R's C code copies into R vectors before it releases ``held``: one copy, where a list of str
or a numpy array through reticulate costs two and more. Never rows, never pandas.

``datasets`` and pyarrow are imported on first use: ``import pybridge.hub`` stays free of them.
The module's name is this file's; inside it ``import datasets`` is absolute and finds the library.
"""

from __future__ import annotations

import json
import os
import re
from typing import Optional

import numpy as np

from . import _args, cache, errors, hub, jobs
from .columns import decode_table, encode_table, feature_levels, feature_type
from .dataset_upload import upload  # noqa: F401 - R calls datasets.upload (push_to_hub's way)
from .settings import resolve

REPO_TYPE = "dataset"
FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json"}
CONVERT_REVISION = "refs/convert/parquet"
_CONVERT_FILE = re.compile(r"^([^/]+)/(?:partial-)?([^/]+)/\d+\.parquet$")


# ---------------------------------------------------------------------------------------------
# The verbs


def read(
    repo_id,
    split="train",
    config=None,
    revision="main",
    columns=None,
    n_max=None,
    env=None,
    token=None,
    quiet=False,
) -> dict:
    """One split as columns for R (see the module docstring); only the files, columns and row
    groups needed."""
    n_max = _args.check_n_max(n_max)
    columns = _args.check_columns(columns)
    repo = _open_repo(repo_id, revision, env, token, quiet)
    config, files = _split_files(repo, config, split)
    reader = _Reader(repo, config, split, files, columns, quiet)
    table = reader.read(n_max)
    return encode_table(table, reader.features(table))


def info(repo_id, revision="main", env=None, token=None) -> dict:
    """Configs, splits (with files, rows and bytes) and features, as columns."""
    repo = _open_repo(repo_id, revision, env, token, True)
    configs = _configs(repo)
    split_rows = {
        k: [] for k in ("config", "split", "num_rows", "num_bytes", "num_files", "format")
    }
    feature_rows = {k: [] for k in ("config", "column", "type", "levels")}
    for name, splits in configs.items():
        known = repo.dataset_infos.get(name)
        seen_features = None
        for split, paths in splits.items():
            if (
                not paths
            ):  # no files: online, a pattern that matches none (skipped as read skips it)
                if repo.offline:
                    raise _split_not_cached(repo, name, split, splits)
                continue
            known_split = (known.splits or {}).get(split) if known is not None else None
            rows = _parquet_rows(repo, paths) if known_split is None else known_split.num_examples
            size = sum(repo.sizes.get(p) or 0 for p in paths)
            split_rows["config"].append(name)
            split_rows["split"].append(split)
            split_rows["num_rows"].append(np.nan if rows is None else float(rows))
            split_rows["num_bytes"].append(float(size) if repo.sizes else np.nan)
            split_rows["num_files"].append(len(paths))
            split_rows["format"].append(_format_of(paths, repo, name, split))
            if seen_features is None:
                seen_features = (
                    known.features
                    if known is not None and known.features
                    else _parquet_features(repo, paths)
                )
        for column, feature in (seen_features or {}).items():
            feature_rows["config"].append(name)
            feature_rows["column"].append(column)
            feature_rows["type"].append(feature_type(feature))
            feature_rows["levels"].append(feature_levels(feature))
    split_rows["num_rows"] = np.asarray(split_rows["num_rows"], dtype=np.float64)
    split_rows["num_bytes"] = np.asarray(split_rows["num_bytes"], dtype=np.float64)
    split_rows["num_files"] = np.asarray(split_rows["num_files"], dtype=np.int32)
    return {
        "repo_id": repo_id,
        "sha": repo.sha,
        "default_config": _default_config(repo, configs),
        "splits": split_rows,
        "features": feature_rows,
    }


def open_chunks(
    repo_id,
    split="train",
    config=None,
    revision="main",
    columns=None,
    chunk_size=10_000,
    env=None,
    token=None,
    quiet=False,
) -> "Chunks":
    """A reader of one split, chunk by chunk (a :class:`Chunks` job). Parquet shards are
    downloaded one at a time, as they are reached."""
    chunk_size = _args.check_chunk_size(chunk_size)
    columns = _args.check_columns(columns)
    repo = _open_repo(repo_id, revision, env, token, quiet)
    config, files = _split_files(repo, config, split)
    return Chunks(_Reader(repo, config, split, files, columns, quiet), chunk_size)


def write(columns, path, split="train") -> dict:
    """Write R's columns as a parquet file with datasets' features in its metadata (a factor
    as ClassLabel). ``columns`` is ``{"names": [...], "columns": [spec, ...]}`` as R sends it."""
    import pyarrow.parquet as pq

    table, features = decode_table(columns)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pq.write_table(table, path)
    return {"path": path, "num_rows": table.num_rows, "split": split}


# ---------------------------------------------------------------------------------------------
# The repo at one commit: its files, README metadata and configs


class _Repo:
    def __init__(self, repo_id, revision, sha, paths, sizes, env, token, offline):
        self.repo_id, self.revision, self.sha = repo_id, revision, sha
        self.paths, self.sizes = paths, sizes
        self.env, self.token, self.offline = env, token, offline
        self.metadata_configs, self.dataset_infos = {}, {}

    def download(self, path, quiet=True) -> str:
        return hub.download(
            self.repo_id,
            path,
            revision=self.sha,
            repo_type=REPO_TYPE,
            quiet=quiet,
            env=self.env,
            token=self.token,
        )

    def ctx(self, **more) -> dict:
        return {"repo_id": self.repo_id, "revision": self.revision, "repo_type": REPO_TYPE, **more}


def _open_repo(repo_id, revision, env, token, quiet) -> _Repo:
    s = resolve(env, token)
    ctx = _args.repo_context(repo_id, revision, REPO_TYPE)
    if s.offline:
        sha, paths, sizes = _cached_listing(s, ctx)
    else:
        listed = hub.repo_info(
            repo_id, revision=revision, repo_type=REPO_TYPE, env=env, token=token
        )
        sha, paths = listed["sha"], list(listed["path"])
        sizes = {p: (None if np.isnan(v) else int(v)) for p, v in zip(paths, listed["size"])}
        cache.write_ref(s.cache_dir, ctx, sha)  # files come by commit; offline, the ref finds them
    repo = _Repo(repo_id, revision, sha, paths, sizes, env, token, s.offline)
    _read_card(repo)
    return repo


def _cached_listing(s, ctx):
    """The commit, files and their sizes of a cached revision, from huggingface_hub's cache
    folder."""
    found = cache.cached_snapshot(s.cache_dir, ctx)
    if found is None:
        raise errors.OfflineNotCachedError(
            f"Dataset '{ctx['repo_id']}' at revision '{ctx['revision']}' is not in the cache at "
            f"{s.cache_dir}, and the call is offline (HF_HUB_OFFLINE). Read it once online, or "
            "point HF_HOME / HF_HUB_CACHE at a cache that has it.",
            **ctx,
        )
    sha, paths = found
    snapshot = cache.snapshot_folder(s.cache_dir, ctx, sha)
    return sha, paths, {p: _file_size(os.path.join(snapshot, p)) for p in paths}


def _file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:  # a link whose blob is gone
        return None


def _read_card(repo: _Repo):
    """The README's YAML as datasets reads it: configs and dataset_info."""
    if "README.md" not in repo.paths:
        return
    import yaml
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData
    from huggingface_hub.repocard import metadata_load

    try:
        card = DatasetCardData(**(metadata_load(repo.download("README.md")) or {}))
        repo.metadata_configs = MetadataConfigs.from_dataset_card_data(card)
        repo.dataset_infos = DatasetInfosDict.from_dataset_card_data(card)
    except (ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise errors.InvalidFileError(
            f"The README.md of dataset '{repo.repo_id}' has YAML that datasets cannot read: {exc}",
            **repo.ctx(filename="README.md"),
        ) from None


def _configs(repo: _Repo) -> dict:
    """``{config: {split: [paths]}}``, as datasets resolves them, in datasets' order."""
    if getattr(repo, "_configs", None) is not None:
        return repo._configs
    from datasets.data_files import sanitize_patterns

    out = {}
    if repo.metadata_configs:
        for name, cfg in repo.metadata_configs.items():
            if cfg.get("data_files") is not None:
                patterns = sanitize_patterns(cfg["data_files"])
                base = ""
            else:
                base = (cfg.get("data_dir") or "").strip("/")
                patterns = _default_patterns(repo, base)
            out[name] = {
                str(split): _resolve_all(repo, pats, base) for split, pats in patterns.items()
            }
    elif _data_paths(repo) and all(_CONVERT_FILE.match(p) for p in _data_paths(repo)):
        for p in _data_paths(repo):
            config, split = _CONVERT_FILE.match(p).groups()
            out.setdefault(config, {}).setdefault(split, []).append(p)
        out = {config: _in_split_order(splits) for config, splits in out.items()}
    else:
        patterns = _default_patterns(repo, "")
        out["default"] = {
            str(split): _resolve_all(repo, pats, "") for split, pats in patterns.items()
        }
    repo._configs = out
    return out


def _in_split_order(splits: dict) -> dict:
    """train, validation and test first, as datasets orders the splits it finds by name."""
    from datasets.data_files import SPLIT_KEYWORDS

    known = [str(split) for split in SPLIT_KEYWORDS]
    order = sorted(splits, key=lambda s: known.index(s) if s in known else len(known))
    return {split: splits[split] for split in order}


def _data_paths(repo):
    return [
        p for p in repo.paths if os.path.splitext(p)[1].lower() in FORMATS or p.endswith(".parquet")
    ]


def _default_patterns(repo, base) -> dict:
    from datasets.data_files import _get_data_files_patterns

    try:
        return _get_data_files_patterns(lambda pattern: _resolve(repo, pattern, base))
    except FileNotFoundError:
        if repo.offline:
            raise errors.OfflineNotCachedError(
                f"No data file of dataset '{repo.repo_id}' is in the cache, and the call is "
                "offline (HF_HUB_OFFLINE). Read it once online first.",
                **repo.ctx(),
            ) from None
        raise errors.EntryNotFoundError(
            f"Dataset '{repo.repo_id}' has no data files that datasets recognises (parquet, csv, "
            "tsv, json, jsonl; split names in file or folder names, or configs in the README).",
            **repo.ctx(),
        ) from None


def _resolve_all(repo, patterns, base) -> list:
    out = []
    for pattern in patterns:
        try:
            found = _resolve(repo, pattern, base)
        except FileNotFoundError:
            found = []
        out.extend(p for p in found if p not in out)
    return out


def _resolve(repo, pattern, base) -> list:
    """datasets.data_files.resolve_pattern over the repo's file list: fsspec's glob, datasets'
    rules for hidden and special folders and ignored files, and only the formats read here."""
    from datasets.data_files import (
        FILES_TO_IGNORE,
        _is_inside_unrequested_special_dir,
        _is_unrequested_hidden_file_or_is_inside_unrequested_hidden_dir,
    )
    from fsspec.utils import glob_translate

    full = f"{base}/{pattern}" if base else pattern
    full = re.sub(r"^hf://datasets/[^@]+@[^/]+/", "", full).lstrip("/")
    rx = re.compile(glob_translate(full))
    ignore = set(FILES_TO_IGNORE) - {os.path.basename(full)}
    out = [
        p
        for p in repo.paths
        if rx.match(p)
        and os.path.basename(p) not in ignore
        and not _is_inside_unrequested_special_dir(p, full)
        and not _is_unrequested_hidden_file_or_is_inside_unrequested_hidden_dir(p, full)
        and _format(p) is not None
    ]
    if not out:
        raise FileNotFoundError(pattern)
    return sorted(out)


def _format(path) -> Optional[str]:
    name = path.lower()
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt
    return None


def _default_config(repo, configs) -> Optional[str]:
    if repo.metadata_configs:
        try:
            found = repo.metadata_configs.get_default_config_name()
        except ValueError:
            found = None
        if found:
            return found
    if len(configs) == 1:
        return next(iter(configs))
    return "default" if "default" in configs else None


def _split_files(repo, config, split):
    """The config's name and the files of its split; classed errors naming what exists."""
    configs = _configs(repo)
    names = list(configs)
    if config is None:
        config = _default_config(repo, configs)
        if config is None:
            raise errors.InvalidArgumentError(
                f"Dataset '{repo.repo_id}' has several configs and none is the default: pick one "
                f"with config = one of {', '.join(names)}.",
                argument="config",
                configs=names,
                **repo.ctx(),
            )
    if config not in configs:
        raise errors.EntryNotFoundError(
            f"Dataset '{repo.repo_id}' has no config '{config}'; its configs are "
            f"{', '.join(names)}.",
            config=config,
            configs=names,
            **repo.ctx(),
        )
    splits = {k: v for k, v in configs[config].items() if v}
    if split not in splits:
        kind = errors.OfflineNotCachedError if repo.offline else errors.EntryNotFoundError
        where = " in the cache (offline)" if repo.offline else ""
        raise kind(
            f"Dataset '{repo.repo_id}' (config '{config}') has no split '{split}'{where}; its "
            f"splits are {', '.join(splits) or 'none'}.",
            split=split,
            splits=list(splits),
            config=config,
            **repo.ctx(),
        )
    return config, splits[split]


def _split_not_cached(repo, config, split, splits):
    cached = [name for name, paths in splits.items() if paths]
    return errors.OfflineNotCachedError(
        f"Split '{split}' of dataset '{repo.repo_id}' (config '{config}') is not in the cache, and "
        f"the call is offline (HF_HUB_OFFLINE); cached: {', '.join(cached) or 'none'}. Read it "
        "once online first.",
        split=split,
        splits=cached,
        config=config,
        **repo.ctx(),
    )


def _format_of(paths, repo, config, split) -> str:
    formats = sorted({_format(p) for p in paths})
    if len(formats) != 1:
        raise errors.UnsupportedError(
            f"Split '{split}' of dataset '{repo.repo_id}' (config '{config}') mixes the formats "
            f"{', '.join(formats)}; hfbridge reads one format per split.",
            split=split,
            config=config,
            **repo.ctx(),
        )
    return formats[0]


# ---------------------------------------------------------------------------------------------
# Reading one split


class _Reader:
    """Reads one split's files in order, downloading each when it is reached."""

    def __init__(self, repo, config, split, files, columns, quiet):
        """``columns``: checked by the verb (``_args.check_columns``), before any request."""
        self.repo, self.config, self.split, self.files = repo, config, split, files
        self.format = _format_of(files, repo, config, split)
        self.columns = columns
        self.quiet = quiet
        self.yaml_features = None
        known = repo.dataset_infos.get(config)
        cfg = repo.metadata_configs.get(config) if repo.metadata_configs else None
        if cfg and cfg.get("features") is not None:
            self.yaml_features = cfg["features"]
        elif known is not None and known.features:
            self.yaml_features = known.features
        self._schema_features = None

    def local(self, path) -> str:
        return self.repo.download(path, quiet=self.quiet)

    def read(self, n_max=None):
        import pyarrow as pa

        tables, remaining = [], n_max
        for batch in self.batches(None, n_max):
            tables.append(batch)
            if remaining is not None:
                remaining -= batch.num_rows
        if not tables:
            return self._empty()
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def batches(self, chunk_size, n_max=None):
        """Tables of at most chunk_size rows (None: one per file or row-group run), at most
        n_max rows in all; each with the first one's columns."""
        remaining, first = n_max, None
        for path in self.files:  # n_max = 0 still reads the first file's schema
            local = self.local(path)  # the hub's errors pass as they are
            tables = self._file_tables(path, local, chunk_size, remaining)
            for table in _readable(tables, self.repo, path, self.format):
                table = self._finish(table, path)
                if first is None:
                    first = table.schema
                self._check_schema(first, table.schema, path)
                if remaining is not None:
                    table = table.slice(0, remaining)
                    remaining -= table.num_rows
                yield table
                if remaining is not None and remaining <= 0:
                    return

    def _file_tables(self, path, local, chunk_size, remaining):
        import pyarrow as pa

        if self.format == "parquet":
            pf = _parquet_file(self.repo, path, local)
            if self._schema_features is None:
                self._schema_features = _features_from_schema(pf.schema_arrow)
            columns = self._columns_in(pf.schema_arrow.names, path)
            if chunk_size is None and remaining is None:
                yield pf.read(columns=columns)
            elif chunk_size is None:
                groups, rows = [], 0
                for i in range(pf.num_row_groups):
                    if rows >= remaining:
                        break
                    groups.append(i)
                    rows += pf.metadata.row_group(i).num_rows
                yield pf.read_row_groups(groups, columns=columns)
            else:
                for batch in pf.iter_batches(batch_size=chunk_size, columns=columns):
                    yield pa.Table.from_batches([batch])
            return
        table = _read_text_file(local, self.format)
        table = table.select(self._columns_in(table.column_names, path))
        if chunk_size is None:
            yield table
        else:
            for start in range(0, max(table.num_rows, 1), chunk_size):
                yield table.slice(start, chunk_size)

    def _check_schema(self, first, schema, path):
        """A split is one table: a file whose columns (names or types) differ from the first
        file's cannot join it, whole or in chunks."""
        if [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in first]:
            return  # nullability and metadata aside
        raise errors.InvalidFileError(
            f"'{path}' of dataset '{self.repo.repo_id}' (config '{self.config}', split "
            f"'{self.split}') has the columns {_describe_schema(schema)}, where the split's first "
            f"file has {_describe_schema(first)}: the files of a split must have the same columns "
            "and types.",
            format=self.format,
            split=self.split,
            config=self.config,
            **self.repo.ctx(filename=path),
        )

    def _columns_in(self, available, path):
        if self.columns is None:
            return list(available)
        missing = [c for c in self.columns if c not in available]
        if missing:
            raise errors.EntryNotFoundError(
                f"Dataset '{self.repo.repo_id}' (config '{self.config}', split '{self.split}') "
                f"has no column {', '.join(repr(c) for c in missing)}; its columns are "
                f"{', '.join(available)}.",
                column=missing,
                columns=list(available),
                split=self.split,
                config=self.config,
                **self.repo.ctx(filename=path),
            )
        return list(self.columns)

    def _finish(self, table, path):
        """The table cast to the YAML's features, as datasets does, where the YAML has them."""
        if self.yaml_features is None:
            return table
        from datasets.table import table_cast

        features = {k: v for k, v in self.yaml_features.items() if k in table.column_names}
        import datasets

        try:
            return table_cast(table, datasets.Features(features).arrow_schema)
        except (ValueError, TypeError) as exc:
            raise errors.InvalidFileError(
                f"'{path}' does not fit the features of the README: {exc}",
                **self.repo.ctx(filename=path),
            ) from None

    def features(self, table):
        import datasets

        if self.yaml_features is not None:
            base = self.yaml_features
        elif self._schema_features is not None:
            base = self._schema_features
        else:
            base = datasets.Features.from_arrow_schema(table.schema)
        return {name: base.get(name) for name in table.column_names}

    def _empty(self):
        import pyarrow as pa

        return pa.table({c: pa.array([], pa.null()) for c in (self.columns or [])})


def _readable(tables, repo, path, fmt):
    """``tables``, read from the file ``path`` and checked in full; a file that cannot be read as
    ``fmt`` (cut short, corrupted, not that format) or holds an invalid value is an
    InvalidFileError that names it."""
    import pyarrow as pa

    try:
        for table in tables:
            _check_values(table)
            yield table
    except errors.PybridgeError:
        raise
    except (pa.ArrowException, ValueError, EOFError, OSError) as exc:
        raise _unreadable(repo, path, fmt, exc) from None


def _describe_schema(schema) -> str:
    return ", ".join(f"{field.name} ({field.type})" for field in schema) or "none"


def _check_values(table):
    """Arrow's full check of every column. Parquet can hold a string that is not UTF-8, which
    arrow reads as it is; in R such a string fails in each later use (``nchar()``, regular
    expressions, printing)."""
    import pyarrow as pa

    for name, column in zip(table.column_names, table.columns):
        try:
            column.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise pa.ArrowInvalid(f"column '{name}': {exc}") from None


def _parquet_file(repo, path, local):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(local, memory_map=True)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(repo, path, "parquet", exc) from None


def _unreadable(repo, path, fmt, exc):
    return errors.InvalidFileError(
        f"'{path}' of dataset '{repo.repo_id}' cannot be read as {fmt}: {exc}",
        format=fmt,
        **repo.ctx(filename=path),
    )


def _features_from_schema(schema):
    import datasets

    try:
        return datasets.Features.from_arrow_schema(schema)
    except Exception:  # noqa: BLE001 - an odd schema still reads, with arrow's own types
        return None


def _read_text_file(path, fmt):
    """csv and tsv as datasets reads them (pandas, then arrow); json lines with pyarrow."""
    import pyarrow as pa

    if fmt in ("csv", "tsv"):
        import pandas as pd

        df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
        return pa.Table.from_pandas(df, preserve_index=False)
    import pyarrow.json as paj

    try:
        return paj.read_json(path, read_options=paj.ReadOptions(block_size=16 << 20))
    except pa.ArrowInvalid:  # a JSON document rather than JSON lines
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise ValueError(
                "a JSON document must be a list of objects (rows), or an object that holds one"
            ) from None
        return pa.Table.from_pylist(data)


def _parquet_rows(repo, paths):
    total = 0
    for p in paths:
        if _format(p) != "parquet":
            return None
        local = _cached_or_none(repo, p)
        if local is None:
            return None
        total += _parquet_file(repo, p, local).metadata.num_rows
    return total


def _parquet_features(repo, paths):
    for p in paths:
        if _format(p) == "parquet":
            local = _cached_or_none(repo, p)
            return (
                _features_from_schema(_parquet_file(repo, p, local).schema_arrow) if local else None
            )
    return None


def _cached_or_none(repo, path):
    """The parquet file, downloaded when online (a footer is all info() reads from it)."""
    try:
        return repo.download(path)
    except errors.OfflineNotCachedError:
        return None


class Chunks(jobs.Job):
    """A split read chunk by chunk, as a job (:mod:`pybridge.jobs`) whose units are rows: each
    step reads one chunk and gives its columns for R in the state's ``chunk`` (None at the end),
    whatever ``units`` and ``seconds`` say. ``total`` is -1 when the rows are not known before
    reading (csv and json files)."""

    def __init__(self, reader: _Reader, chunk_size: int):
        self.reader = reader
        self.chunk_size = chunk_size
        self._batches = None
        self._pending = None
        self._ended = False
        known = reader.repo.dataset_infos.get(reader.config)
        split = (known.splits or {}).get(reader.split) if known is not None else None
        rows = split.num_examples if split is not None else _parquet_rows_meta(reader)
        self.total = -1 if rows is None else int(rows)

    @property
    def finished(self) -> bool:
        return self.stopped or self._ended

    def step(self, units=None, seconds=None) -> dict:
        chunk = None if self.finished else self._next()
        self._ended = chunk is None
        return {**self.state(), "chunk": chunk}

    def stop(self) -> dict:
        if self._batches is not None:
            self._batches.close()  # closes the file being read
        self._batches = self._pending = None
        return super().stop()

    def output(self):
        return None  # the chunks went to R one by one

    def _next(self):
        import pyarrow as pa

        if self._batches is None:
            self._batches = self.reader.batches(self.chunk_size)
        parts, rows = [], 0
        if self._pending is not None:
            parts.append(self._pending)
            rows = self._pending.num_rows
            self._pending = None
        for table in self._batches:
            take = min(table.num_rows, self.chunk_size - rows)
            parts.append(table.slice(0, take))
            rows += take
            if take < table.num_rows:
                self._pending = table.slice(take)
            if rows >= self.chunk_size:
                break
        if not parts:
            return None
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        if table.num_rows == 0:
            return None
        self.position += table.num_rows
        return encode_table(table, self.reader.features(table))


def _parquet_rows_meta(reader):
    """Rows of a parquet split from its footers; None for other formats (they are counted only
    by reading them)."""
    if reader.format != "parquet":
        return None
    return _parquet_rows(reader.repo, reader.files)


# ---------------------------------------------------------------------------------------------
# Argument checks
