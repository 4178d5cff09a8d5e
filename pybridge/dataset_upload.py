"""One split of R's columns pushed to a dataset repo as ``datasets.Dataset.push_to_hub`` does.

One commit holds, as push_to_hub's last commit holds them:

- the split's shard, ``<data_dir>/<split>-00000-of-00001.parquet``, where ``data_dir`` is
  ``data`` for the config ``default`` and the config's name otherwise;
- the deletion of the split's earlier files there (``<data_dir>/<split>-*``: older shards, of
  any count);
- the README, its YAML updated by datasets' own ``_get_updated_dataset_card`` (the helper
  push_to_hub calls): the config's ``dataset_info`` (features, the split's rows and bytes) and
  ``configs: data_files``, with the other splits and configs and the card's text kept, and a
  legacy ``dataset_infos.json`` updated when the repo has one.

The README and the file list are read at the head of main, through huggingface_hub's
``HfFileSystem`` pinned to that commit, and the commit names it as ``parent_commit``: a commit
in between is ``stale_parent``, never a README that lost it. As in push_to_hub, a split whose
features differ from those of the config's other splits is refused.
"""

from __future__ import annotations

import os
import tempfile

from . import _args, errors, hub_call, publish
from .columns import decode_table
from .hub_call import hf_api

REPO_TYPE = "dataset"


def upload(
    columns,
    repo_id,
    split="train",
    config=None,
    private=False,
    commit_message=None,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """Push ``columns`` (``{"names", "columns"}`` as R sends them) as the split ``split`` of the
    config ``config`` (``None``: ``default``), creating the repo if needed; the commit."""
    _args.check_split_name(split)
    config = _args.check_config_name(config)
    ctx = _args.repo_context(repo_id, "main", REPO_TYPE)
    s = hub_call.write_settings(env, token, ctx, "hub_upload_dataset")
    data_dir = "data" if config == "default" else config
    table, features = decode_table(columns)
    with tempfile.TemporaryDirectory(prefix="hfbridge-upload-") as tmp:
        shard = _write_shard(table, tmp, f"{split}-00000-of-00001.parquet")
        publish.create_repo(
            repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True, env=env, token=token
        )
        push = _Push(s, repo_id, config, split, data_dir, table, features, shard)
        message = commit_message or f"Upload the {split} split with hfbridge"
        info = hub_call.write(lambda: push.commit(message), s, ctx, quiet, commit=True)
    return publish.commit_result(info, ctx)


def _write_shard(table, folder, name) -> str:
    import pyarrow.parquet as pq

    path = os.path.join(folder, name)
    pq.write_table(table, path)
    return path


class _Push:
    """The commit of one split, computed from the repo at its current head."""

    def __init__(self, s, repo_id, config, split, data_dir, table, features, shard):
        self.s, self.repo_id, self.config, self.split = s, repo_id, config, split
        self.data_dir, self.table, self.features, self.shard = data_dir, table, features, shard
        self.path_in_repo = f"{data_dir}/{split}-00000-of-00001.parquet"

    def commit(self, message):
        api = hf_api(self.s)
        parent = api.repo_info(
            self.repo_id, repo_type=REPO_TYPE, revision="main", token=self.s.token
        ).sha
        fs = self._files_at(parent)
        old = fs.glob(f"{self.data_dir}/{self.split}-*", detail=True)
        card, legacy_infos = self._card(fs, old)
        ops = [self._add(self.path_in_repo, self.shard), self._add("README.md", card)]
        if legacy_infos is not None:
            ops.append(self._add("dataset_infos.json", legacy_infos))
        ops += [self._delete(path) for path in old if path != self.path_in_repo]
        return api.create_commit(
            self.repo_id,
            operations=ops,
            commit_message=message,
            repo_type=REPO_TYPE,
            revision="main",
            parent_commit=parent,
            token=self.s.token,
        )

    def _files_at(self, commit):
        """The repo at ``commit`` as a file system, as push_to_hub sees it."""
        from fsspec.implementations.dirfs import DirFileSystem
        from huggingface_hub import HfFileSystem

        hffs = HfFileSystem(endpoint=self.s.endpoint, token=self.s.token, skip_instance_cache=True)
        return DirFileSystem(path=f"datasets/{self.repo_id}@{commit}", fs=hffs)

    def _card(self, fs, old) -> tuple:
        """The README and the legacy dataset_infos.json (None if the repo has none), as bytes."""
        import json
        from dataclasses import asdict

        from datasets.arrow_dataset import _get_updated_dataset_card
        from datasets.splits import SplitInfo

        split_info = SplitInfo(
            name=self.split, num_bytes=self.table.nbytes, num_examples=self.table.num_rows
        )
        try:
            card, legacy = _get_updated_dataset_card(
                fs=fs,
                config_name=self.config,
                splits_info=[split_info],
                features=self.features,
                data_dir=self.data_dir,
                set_default=None,
                uploaded_sizes=[os.path.getsize(self.shard)],
                deleted_sizes=[sum(info["size"] for info in old.values())],
                remove_other_splits=False,
            )
        except ValueError as exc:
            if "Features of the new split" not in str(exc):
                raise
            raise errors.InvalidArgumentError(
                f"The columns of `df` do not match those of the other splits of config "
                f"'{self.config}' of dataset '{self.repo_id}', and a config's splits share their "
                f"features (as push_to_hub requires): {exc}",
                argument="df",
                config=self.config,
                split=self.split,
                repo_id=self.repo_id,
                repo_type=REPO_TYPE,
            ) from None
        info = self._with_features(card)
        if legacy is not None:
            legacy[self.config] = asdict(info)
        infos = None if legacy is None else json.dumps(legacy).encode("utf-8")
        return str(card).encode("utf-8"), infos

    def _with_features(self, card):
        """The config's dataset_info with the split's features. push_to_hub keeps the features
        the README had when the split it replaces is the config's only one, and load_dataset
        then fails to cast the new columns to them."""
        from datasets.info import DatasetInfosDict

        info = DatasetInfosDict.from_dataset_card_data(card.data)[self.config]
        info.features = self.features
        DatasetInfosDict({self.config: info}).to_dataset_card_data(card.data)
        return info

    @staticmethod
    def _add(path_in_repo, source):
        """``source``: a local file's path, or the file's bytes."""
        from huggingface_hub import CommitOperationAdd

        return CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=source)

    @staticmethod
    def _delete(path_in_repo):
        from huggingface_hub import CommitOperationDelete

        return CommitOperationDelete(path_in_repo=path_in_repo)
