"""Sentence embeddings and hidden states, fast: length-sorted batches in inference mode.

The texts are tokenized once, sorted by token count and cut into batches (:func:`plan_batches`),
so that each batch is padded only to its own longest text, by at most 10% of it (transformers'
feature-extraction pipeline pads every batch to its longest text in input order, and spends most
of its time on padding). Pooling follows sentence-transformers: ``mean`` over real tokens, ``cls``
(the first token) or ``max`` (padding set to -1e9 first), then optional L2 normalisation.
``max_length`` defaults to the model's ``sentence_bert_config.json`` ``max_seq_length`` when there
is one (256 for all-MiniLM-L6-v2), else to what the tokenizer and the position embeddings allow.

On a CPU the batches run side by side, one per torch thread (:func:`run_batches`).

An image-text model (CLIP: a config with a text and a vision tower, and ``get_text_features``)
embeds each text with its own pooling and projection, ``get_text_features``, into the space of
its image features (``embed_image()``, :mod:`pybridge.vision`); ``pooling`` does not apply, and
hidden states are those of its text tower.

:func:`start` tokenizes the texts and plans the batches in a :class:`Job` (the protocol of
:mod:`pybridge.jobs`: a step runs some batches, so that R shows progress). :func:`embed` and
:func:`hidden_states` run one to the end.
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _args, errors, fastpath, jobs, models
from .threads import run_parallel
from .tokenizer import library_failures

POOLINGS = ("mean", "cls", "max")


# ---------------------------------------------------------------------------------------------
# One-call API


def embed(
    texts,
    model,
    pooling="mean",
    normalize=False,
    batch_size=32,
    max_length=None,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    backend="torch",
    precision="fp32",
) -> np.ndarray:
    """An (n, d) float64 matrix of pooled embeddings, one row per text, in input order.
    ``backend`` and ``precision`` other than torch fp32 take the fast path
    (:mod:`pybridge.fastpath`)."""
    job = start(
        texts,
        model,
        "embed",
        pooling=pooling,
        normalize=normalize,
        batch_size=batch_size,
        max_length=max_length,
        revision=revision,
        device=device,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        env=env,
        token=token,
        backend=backend,
        precision=precision,
    )
    return jobs.run(job)


def hidden_states(
    texts,
    model,
    layers=-1,
    batch_size=32,
    max_length=None,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
) -> dict:
    """Each text's token vectors of the chosen layers, stacked: see :meth:`Job.hidden_result`."""
    job = start(
        texts,
        model,
        "hidden",
        layers=layers,
        batch_size=batch_size,
        max_length=max_length,
        revision=revision,
        device=device,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        env=env,
        token=token,
    )
    return jobs.run(job)


# ---------------------------------------------------------------------------------------------
# Jobs, for progress bars


def start(
    texts,
    model,
    kind="embed",
    pooling="mean",
    normalize=False,
    layers=-1,
    batch_size=32,
    max_length=None,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    quiet=True,
    backend="torch",
    precision="fp32",
) -> "Job":
    """Load the model (cached), tokenize the texts and plan length-sorted batches."""
    texts = _args.texts(texts, "texts")
    if pooling not in POOLINGS:
        raise errors.InvalidArgumentError(
            f"pooling must be one of {', '.join(POOLINGS)}.", argument="pooling"
        )
    batch_size = _args.count(batch_size, "batch_size")
    max_length = None if max_length is None else _args.count(max_length, "max_length")
    fast = fastpath.choice(backend, precision)
    encoder = load(
        model, revision, device, allow_pickle, trust_remote_code, env, token, quiet, *fast
    )
    return Job(encoder, texts, kind, pooling, bool(normalize), layers, batch_size, max_length)


# ---------------------------------------------------------------------------------------------
# Loading


class Encoder:
    """A tokenizer, a bare model (AutoModel) and the default max_length, cached together.
    ``text`` is the model that reads the texts (an image-text model's text tower), ``dim`` the
    width of an embedding."""

    def __init__(self, tokenizer, model, max_length):
        self.tokenizer, self.model, self.max_length = tokenizer, model, max_length
        self.inputs = set(tokenizer.model_input_names)
        self.dual = is_dual_encoder(model)
        self.text = model.text_model if self.dual else model
        self.dim = int(model.config.projection_dim if self.dual else model.config.hidden_size)
        self.fastpath = None  # the quality record of a fast model (pybridge.fastpath)


def is_dual_encoder(model) -> bool:
    """An image-text model such as CLIP: text and image features in one space."""
    return hasattr(model, "get_text_features") and hasattr(model, "get_image_features")


def projected(out):
    """What ``get_text_features``/``get_image_features`` give: a tensor, or (transformers 5)
    an output whose ``pooler_output`` is the projection."""
    return out if hasattr(out, "shape") else out.pooler_output


def load(
    model,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    quiet=True,
    backend="torch",
    precision="fp32",
) -> Encoder:
    exact = fastpath.is_exact(backend, precision)
    kind = "encoder" if exact else f"encoder ({backend} {precision})"
    key = models.cache_key(kind, model, revision, device, allow_pickle, trust_remote_code, env)

    def loader():
        transformers = models.import_transformers()

        path = models.folder(model, revision, allow_pickle, env=env, token=token, quiet=quiet)
        dev = models.torch_device(device)
        if not exact:
            return _fast_encoder(path, dev, backend, precision, trust_remote_code, env)
        with models.quiet_transformers():
            try:
                tok = transformers.AutoTokenizer.from_pretrained(
                    path, trust_remote_code=bool(trust_remote_code)
                )
                net = transformers.AutoModel.from_pretrained(
                    path,
                    use_safetensors=models.use_safetensors(path),
                    trust_remote_code=bool(trust_remote_code),
                )
            except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
                raise models.load_error(
                    exc, model, "embeddings", ["any model with a tokenizer that AutoModel loads"]
                ) from exc
        _check_reads_text(net, model)
        return Encoder(tok, net.to(dev).eval(), _default_max_length(path, tok, net.config))

    return models.cached(key, loader)


def _check_reads_text(net, model) -> None:
    """A model whose input is not token ids (Whisper's audio features, ViT's pixels) cannot
    embed text; a dual encoder (CLIP) embeds it with its text half."""
    if net.main_input_name != "input_ids" and not is_dual_encoder(net):
        raise errors.UnsupportedError(
            f"'{model}' ({type(net).__name__}) reads {net.main_input_name}, not text: it cannot "
            "embed texts. Use a text encoder (a BERT-like or sentence-transformers model), or a "
            "CLIP-like model for text and images.",
            task="feature-extraction",
            model=model,
        )


def _fast_encoder(path, dev, backend, precision, trust_remote_code, env) -> Encoder:
    """The encoder of :mod:`pybridge.fastpath`; onnxruntime runs one thread per batch, the
    batches side by side (:func:`run_batches`)."""
    fastpath.require_cpu_device(dev)
    net, quality = fastpath.load(path, "base", backend, precision, trust_remote_code, env)
    tok = fastpath.load_tokenizer(path, bool(trust_remote_code))
    encoder = Encoder(tok, net, _default_max_length(path, tok, net.config))
    encoder.fastpath = quality
    return encoder


def _default_max_length(path, tokenizer, config):
    st_config = os.path.join(path, "sentence_bert_config.json")
    if os.path.exists(st_config):
        with open(st_config, encoding="utf-8") as handle:
            value = json.load(handle).get("max_seq_length")
        if value:
            return int(value)
    limits = [tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
    limits = [int(x) for x in limits if x is not None and x < 1e6]
    return min(limits) if limits else None


# ---------------------------------------------------------------------------------------------
# The work


MAX_PADDING = 0.1


def run_batches(run_batch, batches, device) -> None:
    """``run_batch(rows)`` for every batch, in inference mode. On a CPU with several torch
    threads, one batch per thread with one thread each: a sentence batch makes small matrix
    products, which gain less from sharing cores than from running side by side (measured on
    2 cores: 23% faster). torch's thread count is process-wide, so it is set for the call."""
    torch = models.import_torch()

    def work(rows):
        with torch.inference_mode():  # per thread
            run_batch(rows)

    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or len(batches) < 2:
        for rows in batches:
            work(rows)
        return
    torch.set_num_threads(1)
    try:
        run_parallel([lambda rows=rows: work(rows) for rows in batches], threads)
    finally:
        torch.set_num_threads(threads)


def plan_batches(lengths: np.ndarray, batch_size: int) -> list:
    """Rows in batches of at most ``batch_size``, longest texts first. A batch also ends before
    a text shorter than (1 - MAX_PADDING) of its longest one, so that no text is more than 10%
    padding: in the long tail of a corpus, 32 neighbours in length order can differ twofold,
    and the model's time goes by padded tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        floor = (1 - MAX_PADDING) * lengths[order[start]]
        fits = lengths[order[start:end]] >= floor  # sorted: True, then False
        end = start + max(1, int(fits.sum()))
        batches.append(order[start:end])
        start = end
    return batches


def _check_max_length(encoder, max_length) -> None:
    """A max_length past the model's positions would reach torch as a tensor size error."""
    config = getattr(encoder.text, "config", None)
    if max_length is None or not isinstance(getattr(config, "max_position_embeddings", None), int):
        return
    limit = models.token_limit(encoder.tokenizer, config)
    if limit and max_length > limit:
        raise errors.InvalidArgumentError(
            f"max_length = {max_length} is more than the {limit} tokens this model takes: "
            f"use at most {limit}.",
            argument="max_length",
        )


def _check_tokens(lengths) -> None:
    """An empty text on a model that adds no special tokens (GPT-2) has nothing to pool."""
    empty = [int(i) + 1 for i in np.flatnonzero(lengths == 0)]
    if empty:
        raise errors.InvalidArgumentError(
            f"text {', '.join(map(str, empty[:10]))}{' ...' if len(empty) > 10 else ''} has no "
            "tokens for this model (it is empty, and the model adds no special tokens): drop "
            "it, or give it some text.",
            argument="texts",
            texts=empty,
        )


class Job(jobs.Job):
    """Tokenized texts in length-sorted batches, and the results gathered so far. Its units are
    batches."""

    def __init__(self, encoder, texts, kind, pooling, normalize, layers, batch_size, max_length):
        self.encoder, self.kind = encoder, kind
        self.pooling, self.normalize = pooling, normalize
        _check_max_length(encoder, max_length)
        limit = max_length or encoder.max_length
        with library_failures():
            tok = encoder.tokenizer
            enc = (
                tok(texts, truncation=limit is not None, max_length=limit, padding=False)
                if texts
                else {"input_ids": []}
            )
        self.ids = enc["input_ids"]
        self.types = enc.get("token_type_ids") if "token_type_ids" in encoder.inputs else None
        self.tokens = [enc.tokens(i) for i in range(len(texts))] if kind == "hidden" else None
        lengths = np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))
        _check_tokens(lengths)
        self.lengths = lengths
        self.batches = plan_batches(lengths, batch_size)
        self.layers = self._layers(layers) if kind == "hidden" else None
        self.out = [None] * len(texts)

    @property
    def total(self) -> int:
        """How many batches the job has."""
        return len(self.batches)

    def _layers(self, layers):
        n = self.encoder.text.config.num_hidden_layers + 1
        layers = [layers] if isinstance(layers, (int, float)) else list(layers)
        out = []
        for layer in layers:
            if not float(layer).is_integer() or not -n <= int(layer) < n:
                raise errors.InvalidArgumentError(
                    f"layers must be whole numbers from {-n} to {n - 1} (0 is the embedding "
                    f"output, -1 the last layer); got {layer}.",
                    argument="layers",
                )
            out.append(int(layer) % n)
        return out

    def advance(self, units, seconds) -> None:
        end = self.total if units is None else min(self.total, self.position + units)
        run_batches(self._run_batch, self.batches[self.position : end], self.encoder.model.device)
        self.position = end

    def _tensors(self, rows):
        torch = models.import_torch()

        tok = self.encoder.tokenizer
        width = int(self.lengths[rows].max())
        ids = np.full((len(rows), width), tok.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64) if self.types is not None else None
        left = tok.padding_side == "left"
        for k, r in enumerate(rows):
            n = len(self.ids[r])
            cols = slice(width - n, width) if left else slice(0, n)
            ids[k, cols] = self.ids[r]
            mask[k, cols] = 1
            if types is not None:
                types[k, cols] = self.types[r]
        dev = self.encoder.model.device
        feed = {
            "input_ids": torch.from_numpy(ids).to(dev),
            "attention_mask": torch.from_numpy(mask).to(dev),
        }
        if types is not None:
            feed["token_type_ids"] = torch.from_numpy(types).to(dev)
        return feed

    def _run_batch(self, rows):
        feed = self._tensors(rows)
        if self.kind == "embed" and self.encoder.dual:
            out = projected(self.encoder.model.get_text_features(**feed))
            if self.normalize:
                out = models.import_torch().nn.functional.normalize(out, p=2, dim=1)
            for k, r in enumerate(rows):
                self.out[r] = out[k].float().cpu().numpy()
            return
        if self.kind == "embed":
            hidden = self.encoder.model(**feed).last_hidden_state
            pooled = pool(hidden, feed["attention_mask"], self.pooling, self.normalize)
            for k, r in enumerate(rows):
                self.out[r] = pooled[k]
            return
        states = self.encoder.text(**feed, output_hidden_states=True).hidden_states
        mask = feed["attention_mask"].bool()
        for k, r in enumerate(rows):
            self.out[r] = np.stack(
                [states[layer][k][mask[k]].float().cpu().numpy() for layer in self.layers], axis=-1
            )

    def output(self):
        if self.kind == "embed":
            return self.embed_result()
        return self.hidden_result()

    def embed_result(self) -> np.ndarray:
        if not self.out:
            return np.zeros((0, self.encoder.dim), dtype=np.float64)
        return np.stack(self.out).astype(np.float64)

    def hidden_result(self) -> dict:
        """``values``: (total tokens, hidden) float64, or (total tokens, hidden, layers) when
        several layers are asked; ``lengths``: tokens per text (int32); ``tokens``: their
        strings, all texts one after the other."""
        hidden = self.encoder.text.config.hidden_size
        mats = self.out or [np.zeros((0, hidden, len(self.layers)))]
        values = np.concatenate(mats).astype(np.float64)
        if len(self.layers) == 1:
            values = values[:, :, 0]
        return {
            "values": np.ascontiguousarray(values),
            "lengths": np.asarray([m.shape[0] for m in self.out], dtype=np.int32),
            "tokens": [t for toks in self.tokens for t in toks],
            "layers": np.asarray(self.layers, dtype=np.int32),
        }


def pool(hidden, mask, pooling: str, normalize: bool) -> np.ndarray:
    """sentence-transformers' Pooling (mean, cls, max) and Normalize, as float32 numpy rows."""
    torch = models.import_torch()

    if pooling == "cls":
        out = hidden[:, 0]
    else:
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if pooling == "mean":
            out = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        else:
            out = hidden.masked_fill(m == 0, -1e9).max(1).values
    if normalize:
        out = torch.nn.functional.normalize(out, p=2, dim=1)
    return out.float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Arguments
