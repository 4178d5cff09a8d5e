"""The routes ``transformers serve`` lacks, in the shapes the field's clients read:
OpenAI's embeddings and model list, TGI's generate family and info, TEI's embed and predict.

TGI generation runs ``generate()`` on the loaded model under a per-model lock, greedy unless the
request samples; chat and completions go through ``transformers serve``'s handlers (app.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from typing import Any, List

from . import embedding
from .guard import ServeError


def check_texts(value: Any, limit: int, name="input") -> List[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ServeError(422, f"`{name}` must be a string or a non-empty list of strings.")
    if len(texts) > limit:
        raise ServeError(413, f"`{name}` has {len(texts)} texts; the limit is {limit}.")
    for i, text in enumerate(texts):
        check_unicode(text, f"{name}[{i}]" if isinstance(value, list) else name)
    return texts


def check_unicode(text: str, name: str) -> None:
    """422 for a text that JSON may carry but a tokenizer cannot read: a lone surrogate
    (``"\\ud800"``) is valid JSON and no Unicode text. Batched with other requests, it would
    make the whole batch fail."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ServeError(
            422, f"`{name}` is not valid Unicode: it holds a lone surrogate at {e.start}."
        ) from None


def check_max_tokens(value, limit: int, name: str) -> int:
    if value is None:
        return limit
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ServeError(422, f"`{name}` must be a whole number >= 1.")
    if value > limit:
        raise ServeError(422, f"`{name}` is {value}; this server allows at most {limit}.")
    return value


def check_fields(body: dict, numbers=None, flags=()) -> None:
    """422 for a field of ``body`` that is given but is not what it must be: ``numbers`` maps a
    name to (low, high or None, whole), a low of :data:`ABOVE_0` meaning above 0; ``flags`` are
    booleans. Checked here, a bad value is the client's error; passed on, it made generate()
    fail (a 424)."""
    for name, (low, high, whole) in (numbers or {}).items():
        value = body.get(name)
        if value is None:
            continue
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (not whole or float(value).is_integer())
            and (value > 0 if low is ABOVE_0 else value >= low)
            and (high is None or value <= high)
        )
        if not ok:
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            span = "above 0" if low is ABOVE_0 else span
            kind = "a whole number" if whole else "a number"
            raise ServeError(422, f"`{name}` must be {kind} {span}, not {value!r}.")
    for name in flags:
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise ServeError(422, f"`{name}` must be true or false, not {body[name]!r}.")


ABOVE_0 = "above 0"  # a low bound that 0 itself does not meet
SEED = (0, 2**64 - 1, True)
TGI_NUMBERS = {
    "temperature": (0, None, False),
    "top_k": (0, None, True),
    "top_p": (0, 1, False),
    "repetition_penalty": (ABOVE_0, None, False),  # generate() divides by it
    "seed": SEED,
}
TGI_FLAGS = ("do_sample", "details", "return_full_text")


class Routes:
    def __init__(self, registry, batchers, config):
        self.registry, self.batchers, self.config = registry, batchers, config
        self.locks = {name: threading.Lock() for name in registry.models}

    async def _timed(self, awaitable):
        try:
            return await asyncio.wait_for(awaitable, self.config.timeout)
        except asyncio.TimeoutError:
            raise ServeError(
                503, f"The request took longer than {self.config.timeout} s.", "timeout", 1
            ) from None

    # ---- embeddings and classification (batched) ----------------------------------------

    async def _batched(self, kind, items, model=None):
        """The served model of ``kind`` a request names, and its rows for ``items`` (texts, or
        (query, text) pairs), run in the model's batcher with the other requests waiting."""
        served = self.registry.get(model, kind)
        return served, await self._timed(self.batchers[served.name].submit(items))

    async def _embeddings(self, texts, model, options, name):
        """The served embedding model and its rows for ``texts``, with the request's options."""
        served = self.registry.get(model, "embedding")
        texts = embedding.prompted(served, texts, options.prompt_name)
        if not options.truncate:
            embedding.check_lengths(served, texts, name)
        _, rows = await self._batched("embedding", texts, served.name)
        return served, texts, embedding.finish(served, rows, options)

    async def openai_embeddings(self, body: dict):
        texts = check_texts(body.get("input"), self.config.max_inputs)
        options = embedding.openai_options(body)
        served, texts, rows = await self._embeddings(texts, body.get("model"), options, "input")
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        limit = embedding.encoder(served).max_length or math.inf
        tokens = sum(min(n, limit) for n in embedding.token_counts(served, texts))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": served.name, "usage": usage}

    async def tei_embed(self, body: dict):
        texts = check_texts(body.get("inputs"), self.config.max_inputs, "inputs")
        options = embedding.tei_options(body)
        _, _, rows = await self._embeddings(texts, body.get("model"), options, "inputs")
        return rows

    async def sentence_similarity(self, body: dict):
        """The Inference API's sentence-similarity: ``{"inputs": {"source_sentence",
        "sentences"}}`` -> the cosine similarity of the source with each sentence."""
        inputs = body.get("inputs")
        source = inputs.get("source_sentence") if isinstance(inputs, dict) else None
        if not isinstance(source, str) or not source:
            raise ServeError(422, "`inputs.source_sentence` must be a non-empty string.")
        check_unicode(source, "inputs.source_sentence")
        limit = self.config.max_inputs - 1
        sentences = check_texts(inputs.get("sentences"), limit, "inputs.sentences")
        options = embedding.EmbedOptions(normalize=True)
        _, _, rows = await self._embeddings([source, *sentences], body.get("model"), options, "")
        return embedding.cosine_similarities(rows)

    async def tei_predict(self, body: dict):
        texts = check_texts(body.get("inputs"), self.config.max_inputs, "inputs")
        _, rows = await self._batched("classification", texts, body.get("model"))
        return rows

    async def tei_rerank(self, body: dict):
        """TEI's /rerank: ``{"query", "texts"}`` -> ``[{"index", "score"}]``, best first, with
        ``"text"`` when ``return_text``; ``raw_scores`` leaves out the sigmoid."""
        query = body.get("query")
        if not isinstance(query, str) or not query:
            raise ServeError(422, "`query` must be a non-empty string.")
        check_unicode(query, "query")
        texts = check_texts(body.get("texts"), self.config.max_inputs, "texts")
        pairs = [(query, t) for t in texts]
        _, logits = await self._batched("rerank", pairs, body.get("model"))
        raw = bool(body.get("raw_scores"))
        scores = logits if raw else [0.5 * (1 + math.tanh(x / 2)) for x in logits]  # sigmoid
        ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
        out = [{"index": i, "score": float(scores[i])} for i in ranked]
        if body.get("return_text"):
            for row in out:
                row["text"] = texts[row["index"]]
        return out

    # ---- TGI generation ------------------------------------------------------------------

    def _generation_args(self, body: dict):
        inputs = body.get("inputs")
        if not isinstance(inputs, str) or not inputs:
            raise ServeError(422, "`inputs` must be a non-empty string.")
        check_unicode(inputs, "inputs")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise ServeError(422, "`parameters` must be an object.")
        check_fields(params, TGI_NUMBERS, TGI_FLAGS)
        stop = params.get("stop")
        if stop is not None and not (
            isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)
        ):
            raise ServeError(422, "`stop` must be a list of non-empty strings.")
        # the server's max_tokens is the default too, as on the OpenAI routes (TGI's is 100)
        max_new = check_max_tokens(
            params.get("max_new_tokens"), self.config.max_tokens, "max_new_tokens"
        )
        return inputs, params, max_new

    def _generate_kwargs(self, params, max_new, tokenizer):
        # max_time: a generation stops at the server's timeout, and frees the model's lock
        kwargs = {
            "max_new_tokens": max_new,
            "pad_token_id": tokenizer.pad_token_id,
            "max_time": self.config.timeout,
        }
        temperature = params.get("temperature")
        if params.get("do_sample") or (temperature is not None and temperature > 0):
            kwargs.update(do_sample=True, temperature=temperature or 1.0)
            for name in ("top_k", "top_p"):
                if params.get(name) is not None:
                    kwargs[name] = params[name]
        else:
            kwargs["do_sample"] = False
        if params.get("repetition_penalty") is not None:
            kwargs["repetition_penalty"] = float(params["repetition_penalty"])
        if params.get("stop"):  # TGI's stop sequences: generation ends after one, which it keeps
            kwargs.update(stop_strings=list(params["stop"]), tokenizer=tokenizer)
        return kwargs

    def _run_generate(self, served, model, tokenizer, inputs, params, max_new, streamer=None):
        import torch

        encoded = tokenizer(inputs, return_tensors="pt")
        kwargs = self._generate_kwargs(params, max_new, tokenizer)
        if streamer is not None:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([streamer.stop])
        with self.locks[served.name], torch.inference_mode():
            if params.get("seed") is not None:
                torch.manual_seed(int(params["seed"]))
            out = model.generate(**encoded, streamer=streamer, **kwargs)
        new = out[0, encoded["input_ids"].shape[1] :].tolist()
        return encoded["input_ids"].shape[1], new

    async def generate(self, body: dict):
        inputs, params, max_new = self._generation_args(body)
        served, model, tokenizer = self.registry.generation_model(body.get("model"))
        n_in, new = await self._timed(
            asyncio.to_thread(self._run_generate, served, model, tokenizer, inputs, params, max_new)
        )
        text = tokenizer.decode(new, skip_special_tokens=True)
        if params.get("return_full_text"):
            text = inputs + text
        reason = _tgi_reason(tokenizer, new, params)
        out = {"generated_text": text}
        if params.get("details"):
            out["details"] = {
                "finish_reason": reason,
                "generated_tokens": len(new),
                "seed": params.get("seed"),
                "prefill": [],
                "tokens": [_token(tokenizer, i) for i in new],
            }
        return out

    def generate_stream(self, body: dict):
        """TGI's token events; the last carries ``generated_text`` and ``details``."""
        inputs, params, max_new = self._generation_args(body)
        served, model, tokenizer = self.registry.generation_model(body.get("model"))
        streamer = _TokenStreamer(tokenizer)
        worker = threading.Thread(
            target=self._stream_worker,
            args=(streamer, served, model, tokenizer, inputs, params, max_new),
            daemon=True,
        )

        async def events():
            try:
                async for event in stream():
                    yield event
            finally:  # the client left, or the stream ended: the generation stops
                streamer.stop.event.set()

        async def stream():
            worker.start()
            ids, held = [], None  # the last token waits: it goes out with generated_text
            loop = asyncio.get_running_loop()
            while True:
                item = await loop.run_in_executor(None, streamer.queue.get)
                if item is None:
                    break
                if isinstance(item, Exception):
                    yield _sse(
                        {"error": f"{type(item).__name__}: {item}", "error_type": "generation"}
                    )
                    return
                if held is not None:
                    yield _sse({"token": _token(tokenizer, held), "generated_text": None})
                ids.append(item)
                held = item
            text = tokenizer.decode(ids, skip_special_tokens=True)
            reason = _tgi_reason(tokenizer, ids, params)
            details = {"finish_reason": reason, "generated_tokens": len(ids), "seed": None}
            last = _token(tokenizer, held) if held is not None else None
            yield _sse({"token": last, "generated_text": text, "details": details})

        return events()

    def _stream_worker(self, streamer, served, model, tokenizer, inputs, params, max_new):
        try:
            self._run_generate(served, model, tokenizer, inputs, params, max_new, streamer)
        except Exception as exc:  # noqa: BLE001 - sent to the client as an error event
            streamer.queue.put(exc)
        finally:
            streamer.queue.put(None)

    def info(self) -> dict:
        first = next(iter(self.registry.models.values()))
        return {
            "model_id": first.name,
            "model_sha": first.commit,
            "model_pipeline_tag": first.spec.task,
            "max_input_tokens": None,
            "max_total_tokens": None,
            "max_new_tokens": self.config.max_tokens,
            "max_client_batch_size": self.config.max_inputs,
            "router": "hfbridge-serve",
            "version": "1",
            "models": [m.card() for m in self.registry.models.values()],
        }


class _TokenStreamer:
    """A generate() streamer (transformers' BaseStreamer interface: put, end) that hands each new
    token id to a queue; the first put() is the prompt, and is skipped."""

    def __init__(self, tokenizer):
        import queue

        self.queue: "queue.Queue" = queue.Queue()
        self.prompt_seen = False
        self.stop = _stop_criterion()

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for i in value.reshape(-1).tolist():
            self.queue.put(int(i))

    def end(self):
        pass


def _tgi_reason(tokenizer, new, params) -> str:
    """TGI's finish_reason: the end-of-sequence token, a stop sequence (generation ends at the
    token that completes the first one, which may run past it), or the length."""
    if new and new[-1] == tokenizer.eos_token_id:
        return "eos_token"
    text = tokenizer.decode(new, skip_special_tokens=True)
    if any(s in text for s in params.get("stop") or []):
        return "stop_sequence"
    return "length"


def _stop_criterion():
    """A generate() stopping criterion that stops every sequence once its ``event`` is set."""
    import torch
    from transformers import StoppingCriteria

    class Stop(StoppingCriteria):
        def __init__(self):
            self.event = threading.Event()

        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)

    return Stop()


def _token(tokenizer, token_id: int) -> dict:
    special = token_id in set(tokenizer.all_special_ids)
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return {"id": token_id, "text": text, "logprob": None, "special": special}


def _sse(obj) -> str:
    return f"data: {json.dumps(obj)}\n\n"
