"""The served models: each resolved once, at start, to a folder pinned to one commit, and loaded
once. Clients name a model by the repo id (or folder) it was started with.

Generation models live in ``transformers serve``'s model manager (:class:`PinnedModels`), which
its chat and completion handlers use; it answers only for the served names. Embedding and
classification models run through pybridge's own embedding and pipeline code, so a result equals
``embed_text()`` and ``pipeline()`` in process.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .. import hub
from .config import TASKS, ModelSpec, ServeConfig

log = logging.getLogger("pybridge.serve")


class NotServed(LookupError):
    """404 for a model that is not served, or not for the task asked: ``served`` lists the
    served models as "name (task)", ``kind`` is the kind the task needs."""

    def __init__(self, name, served, kind=None, task=None):
        if kind is not None:
            tasks = " or ".join(t for t, k in TASKS.items() if k == kind)
            which = f"'{name}' runs {task}, not {tasks}" if name else f"no {tasks} model is served"
            super().__init__(
                f"Here {which}; the server serves {', '.join(served)}. "
                "Name one of those, or start a server with a model for the task "
                "(--model TASK=REPO)."
            )
            return
        super().__init__(
            f"The model '{name}' is not served here; GET /v1/models lists the served ones: "
            f"{', '.join(served)}."
        )


@dataclass
class Served:
    name: str
    spec: ModelSpec
    folder: str
    commit: Optional[str]
    scorer: Optional[object] = field(default=None, repr=False)  # a reranker's CrossEncoder
    quality: Optional[dict] = None  # the fast path's measures against fp32 (pybridge.fastpath)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def pooling(self) -> dict:
        """sentence-transformers' pooling and normalisation, from the folder's own files."""
        pooling, normalize = "mean", False
        modules = _json(os.path.join(self.folder, "modules.json")) or []
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Normalize"):
                normalize = True
            if kind.endswith("Pooling"):
                cfg = _json(os.path.join(self.folder, module.get("path", ""), "config.json")) or {}
                if cfg.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif cfg.get("pooling_mode_max_tokens"):
                    pooling = "max"
        return {"pooling": pooling, "normalize": normalize}

    def card(self) -> dict:
        """The entry of ``/v1/models``."""
        return {
            "id": self.name,
            "object": "model",
            "created": 0,
            "owned_by": self.name.split("/")[0] if "/" in self.name else "local",
            "task": self.spec.task,
            "revision": self.commit or self.spec.revision,
            **({"fastpath": self.quality} if self.quality else {}),
        }


class CrossEncoder:
    """A reranker: one logit per (query, text) pair (the route applies the sigmoid that
    sentence-transformers' CrossEncoder applies to a one-label model)."""

    def __init__(self, folder):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"{folder} has {self.model.config.num_labels} labels; a reranker has 1."
            )

    def __call__(self, pairs, raw=False) -> list:
        import torch

        queries, texts = [q for q, _ in pairs], [t for _, t in pairs]
        encoded = self.tokenizer(queries, texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(**encoded).logits[:, 0]
        return logits.tolist()


def _json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Registry:
    def __init__(self, config: ServeConfig, env: dict):
        self.config = config
        self.models: Dict[str, Served] = {}
        for spec in config.models:
            served = _resolve(spec, env)
            self.models[served.name] = served
        self.manager = None  # transformers serve's model manager, when a generation model is served
        self.generation_state = None

    def of_kind(self, kind) -> List[Served]:
        return [m for m in self.models.values() if m.kind == kind]

    def get(self, name: Optional[str], kind: Optional[str] = None) -> Served:
        """The model a request names, or without a name the first of that kind."""
        listed = [f"{m.name} ({m.spec.task})" for m in self.models.values()]
        if name is None:
            candidates = self.of_kind(kind) if kind else list(self.models.values())
            if candidates:
                return candidates[0]
            raise NotServed(None, listed, kind)
        served = self.models.get(name)
        if served is None:
            raise NotServed(name, [m for m, s in self.models.items() if not kind or s.kind == kind])
        if kind and served.kind != kind:
            raise NotServed(name, listed, kind, served.spec.task)
        return served

    def load(self) -> None:
        """Loads every model once, before the server answers."""
        generation = self.of_kind("generation")
        if generation:
            self._load_generation(generation)
        for served in self.of_kind("embedding"):
            from .. import embed, fastpath, jobs

            job = embed.start(["warm-up"], served.folder, **served.pooling(), **served.spec.fast())
            jobs.run(job)
            _fast_loaded(served, fastpath.quality_of(job))
        for served in self.of_kind("classification"):
            from .. import pipeline

            info = pipeline.load("text-classification", served.folder, **served.spec.fast())
            _fast_loaded(served, info["fastpath"])
        for served in self.of_kind("rerank"):
            served.scorer = CrossEncoder(served.folder)

    def _load_generation(self, served: List[Served]) -> None:
        from transformers.cli.serving.utils import GenerationState

        self.manager = PinnedModels({s.name: s.folder for s in served})
        self.generation_state = GenerationState(
            continuous_batching=self.config.continuous_batching,
            cb_config=_cb_config(self.config.cb_cache_tokens),
        )
        for s in served:
            self.manager.load_model_and_processor(self.manager.process_model_name(s.name))

    def generation_model(self, name: Optional[str]):
        """(served, model, tokenizer) of a loaded generation model."""
        served = self.get(name, "generation")
        key = self.manager.process_model_name(served.name)
        model, processor = self.manager.load_model_and_processor(key)
        return served, model, processor


def _fast_loaded(served: Served, quality: Optional[dict]) -> None:
    """Keeps the fast path's measures for /v1/models, and logs them (a warning below the
    threshold)."""
    if quality is None:
        return
    from .. import fastpath

    served.quality = {k: v for k, v in quality.items() if k != "folder"}
    fast = f"{quality['backend']} {quality['precision']}"
    line = f"{served.name}: {fast}, {fastpath.describe(quality)}"
    if quality["ok"]:
        log.info(line)
    else:
        log.warning(f"{line}: below {quality['threshold']}")


CB_PAGE_TOKENS = 256  # ContinuousBatchingConfig's default page_size


def _cb_config(cache_tokens: int):
    """A bounded paged cache. Left to itself, continuous batching sizes its cache from the free
    memory (on CPU, about 60% of the machine's RAM: 14 GB here, and half a minute to set up)."""
    from transformers import ContinuousBatchingConfig

    blocks = max(1, -(-cache_tokens // CB_PAGE_TOKENS))
    return ContinuousBatchingConfig(num_blocks=blocks, max_batch_tokens=min(cache_tokens, 4096))


def _resolve(spec: ModelSpec, env: dict) -> Served:
    source = os.path.expanduser(spec.source)
    if os.path.isdir(source):
        return Served(spec.source, spec, os.path.abspath(source), None)
    folder = hub.local_folder(spec.source, revision=spec.revision, env=env, quiet=True)
    parent = os.path.basename(os.path.dirname(folder))
    commit = os.path.basename(folder) if parent == "snapshots" else None
    return Served(spec.source, spec, folder, commit)


def _pinned_models_class():
    from transformers.cli.serving.model_manager import ModelManager

    class PinnedModelsImpl(ModelManager):
        """transformers serve's manager, answering only for the served names, each loaded from
        its pinned folder and never unloaded."""

        def __init__(self, folders: Dict[str, str]):
            super().__init__(device="cpu", dtype="auto", model_timeout=-1)
            self.folders = folders
            self.model_timeout = -1

        def process_model_name(self, model_id: str) -> str:
            if model_id in self.folders:
                return f"{self.folders[model_id]}@main"
            if model_id.endswith("@main") and model_id[:-5] in self.folders.values():
                return model_id
            raise NotServed(model_id, list(self.folders))

    return PinnedModelsImpl


def PinnedModels(folders: Dict[str, str]):  # noqa: N802 - a class made on first use
    return _pinned_models_class()(folders)
