"""Remote inference through huggingface_hub's ``InferenceClient``: endpoints, their keys, the
failover chain, and the task verbs, with results in the shapes of the local pipelines.

An endpoint is one of:
- a URL of any OpenAI-compatible, TGI or TEI server (hfbridge's own, vLLM, llama.cpp, Ollama);
- an HF Inference Provider (``provider="auto"`` or a named one), routed by huggingface_hub.

Keys: the HF token goes to Hugging Face hosts only (and to the Hub HF_ENDPOINT names). Any other
endpoint gets its own ``api_key``, or nothing; :mod:`hub_call`'s session hook makes sure of it
for every request, as ``InferenceClient`` would otherwise send the saved token anywhere.

Failover: ``InferenceClient`` never retries. :func:`run_chain` tries each endpoint in order,
retrying one with backoff (honouring ``Retry-After``) on 429, 503, timeouts and refused
connections, moving on after its tries or on any other server failure, and never on 400, 401,
403 or 422, which another endpoint would refuse too. Every result records which endpoint
answered, after how many tries, and how long it took.
"""

from __future__ import annotations

import contextvars
import dataclasses
import time
from typing import Callable, List, Optional

import numpy as np

from . import errors, hub_call, inference_args
from .settings import register_url_credentials, resolve

BACKOFF = hub_call.INFERENCE_BACKOFF  # seconds before the second try; doubles after
MAX_WAIT = 30.0  # a Retry-After longer than this moves on to the next endpoint at once


@dataclasses.dataclass
class Endpoint:
    url: Optional[str] = None
    provider: Optional[str] = None
    model: Optional[str] = None
    api_key: Optional[str] = dataclasses.field(default=None, repr=False)
    timeout: float = 120.0
    retries: int = 2
    served: dict = dataclasses.field(default_factory=dict)  # an hfbridge server's: name -> task

    def model_for(self, task: str) -> Optional[str]:
        """The first model an hfbridge server serves for ``task`` (its root routes answer with
        the first model it serves, whatever the task: a chat model for a classification)."""
        from .serve.config import TASKS as SERVED_KINDS

        kind = SERVED_KINDS.get(task)
        return next(
            (n for n, t in self.served.items() if kind and SERVED_KINDS.get(t) == kind), None
        )

    @property
    def label(self) -> str:
        if self.url:
            return errors.redact(self.url)  # a password in the URL is never shown
        return f"provider:{self.provider}" + (f" ({self.model})" if self.model else "")

    def sends_hf_token(self) -> bool:
        return self.provider is not None or hub_call.token_may_reach(self.url)


def endpoint(spec: dict) -> Endpoint:
    """An :class:`Endpoint` from R's list (url or provider, model, api_key, timeout, retries)."""
    spec = dict(spec or {})
    url, provider = spec.get("url"), spec.get("provider")
    if (url is None) == (provider is None):
        raise errors.InvalidArgumentError(
            'An endpoint is a URL (endpoint = "http://host:port/v1") or an Inference Provider '
            '(provider = "auto"), not both and not neither.',
            argument="endpoint",
        )
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise errors.InvalidArgumentError(
            f"An endpoint URL must start with http:// or https://, not '{url}'.",
            argument="endpoint",
        )
    if provider is not None:
        _check_provider(provider)
    key = spec.get("api_key")
    errors.register_secret(key)
    if url is not None:
        register_url_credentials(url)
    return Endpoint(
        url=url.rstrip("/") if url else None,
        provider=provider,
        model=spec.get("model"),
        api_key=key or None,
        timeout=float(spec.get("timeout") or 120.0),
        retries=int(spec.get("retries") if spec.get("retries") is not None else 2),
        served=dict(spec.get("served") or {}),
    )


def _check_provider(provider) -> None:
    from huggingface_hub.inference._providers import PROVIDERS

    known = sorted(PROVIDERS)
    if provider != "auto" and provider not in known:
        raise errors.InvalidArgumentError(
            f"'{provider}' is not an Inference Provider huggingface_hub knows: use \"auto\" or "
            f"one of {', '.join(known)}.",
            argument="provider",
        )


def client(ep: Endpoint, env=None, token=None, task_url: Optional[str] = None):
    """The ``InferenceClient`` of one endpoint, with the key that may go there."""
    from huggingface_hub import InferenceClient

    s = resolve(env, token)
    hub_call.note_hub(s)
    key = ep.api_key or (s.token if ep.sends_hf_token() else None)
    if ep.url:
        return InferenceClient(base_url=task_url or ep.url, api_key=key, timeout=ep.timeout)
    return InferenceClient(provider=ep.provider, api_key=key, timeout=ep.timeout)


# ---------------------------------------------------------------------------------------------
# The failover chain


@dataclasses.dataclass
class Answer:
    value: object
    endpoint: str
    tries: int
    latency_ms: float


def run_chain(endpoints: List[Endpoint], call: Callable, what: str) -> Answer:
    """``call(endpoint)`` on the first endpoint that answers; see the module's docstring.
    ``tries`` counts every try, on every endpoint; ``latency_ms`` is the whole call's."""
    failures, tries, started = [], 0, time.monotonic()
    for ep in endpoints:
        for attempt in range(1, ep.retries + 2):
            tries += 1
            key = hub_call.endpoint_key.set(ep.api_key or "")
            try:
                value = call(ep)
                return Answer(value, ep.label, tries, (time.monotonic() - started) * 1000)
            except errors.UnsupportedError as exc:  # this endpoint cannot: the next may
                err = exc
                break
            except errors.PybridgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is classified
                err, wait = classify(exc, ep, what)
            finally:
                hub_call.endpoint_key.reset(key)
            if wait is None and (len(endpoints) == 1 or isinstance(err, FATAL)):
                raise err from None
            if wait is None or attempt > ep.retries or wait > MAX_WAIT:
                break
            time.sleep(max(wait, BACKOFF * 2 ** (attempt - 1)))
        failures.append((ep.label, err))
    if len(failures) == 1:
        raise failures[0][1]
    raise errors.UnreachableError(
        f"Every endpoint failed for {what}: "
        + "; ".join(f"{label}: {err.message}" for label, err in failures),
        errors=[f"{label}: {err.message}" for label, err in failures],
        endpoints=[label for label, _ in failures],
    )


FATAL = (errors.AuthError, errors.ValidationError, errors.ContextLengthError)


def classify(exc, ep, what: str):
    """(the pybridge error, seconds to wait before trying again, or None for no retry)."""
    if ep.api_key:
        sent = "its own api_key"
    else:
        sent = "the HF token" if ep.sends_hf_token() else "no key"
    return hub_call.translate_inference(exc, ep.label, what, ep.timeout, sent)


# ---------------------------------------------------------------------------------------------
# Task verbs, in the local pipelines' shapes

TASKS = (
    "text-generation",
    "feature-extraction",
    "text-classification",
    "token-classification",
    "zero-shot-classification",
    "image-classification",
    "zero-shot-image-classification",
    "object-detection",
    "image-to-text",
    "automatic-speech-recognition",
)
MEDIA_TASKS = TASKS[5:]  # inputs are file paths or URLs, sent as the files' bytes


PARALLEL = 8  # requests in flight at once: a server batches them (hfbridge's, TEI, vLLM)
EMBED_CHUNK = 64  # texts per feature-extraction request (TEI's /embed takes a list)


def infer(task: str, inputs, endpoints: list, model=None, args=None, env=None, token=None):
    """One task on a list of texts through the chain; returns the pipeline's columns (or the
    matrix of feature-extraction) and the answer's record (endpoint, tries, latency_ms)."""
    if task not in TASKS:
        raise errors.UnsupportedError(
            f"hf_inference() runs {', '.join(TASKS)}; not '{task}'.", task=task
        )
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if not texts or not all(isinstance(t, str) for t in texts):
        raise errors.InvalidArgumentError(
            "`inputs` must be a non-empty character vector.", argument="inputs"
        )
    args = {k: _whole(k, v) for k, v in (args or {}).items()}
    # feature-extraction's normalize goes to the server (TEI's: FALSE gives the raw pooled rows,
    # as embed_text(normalize = FALSE) here), and TRUE scales the rows here too, whatever the
    # server does; other tasks have no normalize (remote_args refuses it)
    normalize = task == "feature-extraction" and bool(args.get("normalize", False))
    args = inference_args.remote_args(task, args)
    sent = _media_inputs(task, texts) if task in MEDIA_TASKS else texts
    chain = [endpoint(e) for e in endpoints]
    run = _RUNNERS[task]
    items = (
        [texts[i : i + EMBED_CHUNK] for i in range(0, len(texts), EMBED_CHUNK)]
        if task == "feature-extraction"
        else sent
    )

    def call(ep):
        chosen = model or ep.model or ep.model_for(task)
        if ep.served and chosen is None:  # its root would answer with another task's model
            raise errors.UnsupportedError(
                f"The hfbridge server at {ep.label} serves no model for {task}; it serves "
                + ", ".join(f"{name} ({kind})" for name, kind in ep.served.items())
                + '. Start one with hf_serve(c("'
                + task
                + '" = REPO)).',
                task=task,
                endpoint=ep.label,
            )
        c = client(ep, env, token, task_url=_task_url(ep, chosen))
        m = None if ep.url else chosen
        if len(items) == 1:
            return [run(c, items[0], m, args)]
        from concurrent.futures import ThreadPoolExecutor

        # each request runs in a copy of this context: the call's Hub and endpoint key, which
        # hub_call's token hook reads in the thread that sends the request
        context = contextvars.copy_context()
        with ThreadPoolExecutor(min(PARALLEL, len(items))) as pool:
            return list(pool.map(lambda item: context.copy().run(run, c, item, m, args), items))

    answer = run_chain(chain, call, task)
    record = {"endpoint": answer.endpoint, "tries": answer.tries, "latency_ms": answer.latency_ms}
    out = _COLUMNS[task](texts, answer.value)
    if normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out, record


def _media_inputs(task, paths) -> list:
    """What is sent for each input of an image or audio task. An image is read and checked
    here, from its file or its URL, as the local pipeline reads it: a URL that fails is that
    URL's network error (not the endpoint's, which the chain would then leave), and a file or
    page that is not an image is invalid_file. Audio files go as paths, audio URLs as bytes."""
    import os

    from . import vision

    if task == "automatic-speech-recognition":
        for i, path in enumerate(paths, start=1):
            if not vision.is_url(path) and not os.path.isfile(os.path.expanduser(path)):
                raise errors.InvalidArgumentError(
                    f"Input {i}, '{path}', is not a file or an http(s) URL.",
                    argument="inputs",
                    path=path,
                    position=i,
                )
        return [vision.download(p) if vision.is_url(p) else os.path.expanduser(p) for p in paths]
    vision.check_images(paths)
    return [vision.image_bytes(p, i) for i, p in enumerate(paths, start=1)]


# Parameters that servers take as integers only; R gives 4 as the double 4.
WHOLE_ARGS = ("max_new_tokens", "top_k", "seed", "top_n_tokens", "truncate", "best_of")


def _whole(name, value):
    if name in WHOLE_ARGS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _task_url(ep: Endpoint, model) -> Optional[str]:
    """InferenceClient(base_url=) posts every task but chat to the base URL itself. A URL that
    ends in /v1 is an OpenAI base: the TGI/TEI routes are at its root, and an hfbridge server
    serves one model's at /models/<name>."""
    if not ep.url:
        return None
    base = ep.url[: -len("/v1")] if ep.url.endswith("/v1") else ep.url
    name = model or ep.model
    return f"{base}/models/{name}" if name and ep.url.endswith("/v1") else base


def _generate(c, text, model, args):
    return c.text_generation(text, model=model, **args)


def _embed(c, texts, model, args):
    """A list of texts in one request, as TEI's /embed takes it: [n, d], or [n, tokens, d]."""
    out = np.asarray(c.feature_extraction(texts, model=model, **args), dtype=np.float64)
    return out if out.ndim >= 2 and out.shape[0] == len(texts) else out[None, ...]


def _classify(c, text, model, args):
    """The best ``top_k`` labels (1 by default, as the local pipeline), whatever the server
    sends."""
    top_k = args.get("top_k") or 1
    rest = {k: v for k, v in args.items() if k != "top_k"}
    res = c.text_classification(text, model=model, top_k=top_k, **rest)
    return sorted(res, key=lambda r: -r.score)[:top_k]


def _tokens(c, text, model, args):
    return c.token_classification(text, model=model, **args)


def _zero_shot(c, text, model, args):
    labels = args.get("candidate_labels")
    if not labels:
        raise errors.InvalidArgumentError(
            "zero-shot-classification needs `candidate_labels`.", argument="candidate_labels"
        )
    rest = {k: v for k, v in args.items() if k != "candidate_labels"}
    return c.zero_shot_classification(text, list(labels), model=model, **rest)


def _image_labels(c, path, model, args):
    res = c.image_classification(path, model=model, **args)
    return sorted(res, key=lambda r: -r.score)


def _image_zero_shot(c, path, model, args):
    labels = args.get("candidate_labels")
    if not labels:
        raise errors.InvalidArgumentError(
            "zero-shot-image-classification needs `candidate_labels`.",
            argument="candidate_labels",
        )
    rest = {k: v for k, v in args.items() if k != "candidate_labels"}
    res = c.zero_shot_image_classification(path, list(labels), model=model, **rest)
    return sorted(res, key=lambda r: -r.score)


def _detect(c, path, model, args):
    return c.object_detection(path, model=model, **args)


def _caption(c, path, model, args):
    return [c.image_to_text(path, model=model, **args)]


def _transcribe(c, path, model, args):
    return [c.automatic_speech_recognition(path, model=model, **args)]


_RUNNERS = {
    "text-generation": _generate,
    "feature-extraction": _embed,
    "text-classification": _classify,
    "token-classification": _tokens,
    "zero-shot-classification": _zero_shot,
    "image-classification": _image_labels,
    "zero-shot-image-classification": _image_zero_shot,
    "object-detection": _detect,
    "image-to-text": _caption,
    "automatic-speech-recognition": _transcribe,
}


def _ids(values):
    return np.asarray(values, dtype=np.int32)


def _generated_columns(texts, results):
    ids = _ids(range(1, len(texts) + 1))
    return {"text_id": ids, "prompt": list(texts), "generated_text": [str(r) for r in results]}


def _embedding_matrix(texts, results):
    """n x d. TEI and hfbridge's server pool on the server; a server that answers per token
    ([n, tokens, d]) is mean-pooled here."""
    rows = [r.mean(axis=1) if r.ndim == 3 else r for r in results]
    return np.vstack(rows)


def _label_columns(texts, results, with_text=True):
    ids, text, label, score = [], [], [], []
    for i, res in enumerate(results):
        for r in res:
            ids.append(i + 1)
            text.append(texts[i])
            label.append(str(r.label))
            score.append(float(r.score))
    cols = {"text_id": _ids(ids), "text": text, "label": label, "score": np.asarray(score)}
    if not with_text:
        del cols["text"]
    return cols


def _token_columns(texts, results):
    rows = [(i + 1, r) for i, res in enumerate(results) for r in res]
    return {
        "text_id": _ids([i for i, _ in rows]),
        "entity_group": [str(r.entity_group or getattr(r, "entity", "")) for _, r in rows],
        "score": np.asarray([float(r.score) for _, r in rows]),
        "word": [str(r.word) for _, r in rows],
        "start": _ids([-1 if r.start is None else r.start + 1 for _, r in rows]),
        "end": _ids([-1 if r.end is None else r.end for _, r in rows]),
    }


def _image_rows(paths, results):
    return [(paths[i], r) for i, res in enumerate(results) for r in res]


def _image_label_columns(paths, results):
    rows = _image_rows(paths, results)
    return {
        "image": [p for p, _ in rows],
        "label": [str(r.label) for _, r in rows],
        "score": np.asarray([float(r.score) for _, r in rows]),
    }


def _box_columns(paths, results):
    rows = _image_rows(paths, results)
    cols = _image_label_columns(paths, results)
    for side in ("xmin", "ymin", "xmax", "ymax"):
        cols[side] = _ids([int(getattr(r.box, side)) for _, r in rows])
    return cols


def _caption_columns(paths, results):
    rows = _image_rows(paths, results)
    return {
        "image": [p for p, _ in rows],
        "generated_text": [str(r.generated_text) for _, r in rows],
    }


def _transcript_columns(paths, results):
    return {
        "audio_id": _ids(range(1, len(paths) + 1)),
        "file": list(paths),
        "text": [str(res[0].text) for res in results],
    }


_COLUMNS = {
    "text-generation": _generated_columns,
    "feature-extraction": _embedding_matrix,
    "text-classification": _label_columns,
    "token-classification": _token_columns,
    "zero-shot-classification": lambda t, r: _label_columns(t, r, with_text=False),
    "image-classification": _image_label_columns,
    "zero-shot-image-classification": _image_label_columns,
    "object-detection": _box_columns,
    "image-to-text": _caption_columns,
    "automatic-speech-recognition": _transcript_columns,
}
