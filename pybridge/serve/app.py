"""The ASGI app and its process: transformers serve's chat and completion handlers, the routes of
routes.py, the guard of guard.py, on uvicorn.

``transformers serve`` streams chat without the closing ``data: [DONE]`` that OpenAI's and
huggingface_hub's clients look for, puts ``usage`` on the last content chunk whether asked or
not, and defaults ``max_tokens`` to 1024: :func:`_openai_stream` and :func:`_chat_body` make
those what OpenAI's API says (usage only with ``stream_options.include_usage``, on a last chunk
with empty ``choices``; the server's ``max_tokens`` limit as the default).
"""

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .. import errors
from .config import READY_LINE, ServeConfig
from .constrained import chat_handler
from .finish import Finish
from .guard import Guard, ServeError, install_error_handlers
from .routes import SEED, Routes, check_fields, check_max_tokens, check_unicode

log = logging.getLogger("pybridge.serve")


def _named(request: Request, body: dict) -> dict:
    """The JSON body, with the model of a /models/<name>/ base URL when it names none."""
    if not isinstance(body, dict):
        raise ServeError(422, "The request body must be a JSON object.")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise ServeError(422, "`model` must be a string: the name of a served model.")
    model = request.scope.get("model")
    return {**body, "model": model} if model and not body.get("model") else body


NamedBody = Annotated[dict, Depends(_named)]


def build_app(config: ServeConfig, registry):
    from .batching import Batcher

    chat, completion = _handlers(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if chat is not None:
            await _warm_up(chat, registry)
        yield

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    install_error_handlers(app)
    if config.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"])
    batchers = {
        m.name: Batcher(_runner(m), config.max_batch_texts, config.max_queue, m.name)
        for m in registry.models.values()
        if m.kind in ("embedding", "classification", "rerank")
    }
    routes = Routes(registry, batchers, config)

    @app.get("/health")
    def health():
        state = registry.generation_state
        if state is not None and not state.is_cb_alive():
            raise ServeError(503, "The generation worker has stopped.", "unhealthy")
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [m.card() for m in registry.models.values()]}

    @app.get("/v1/models/{name:path}")
    def model(name: str):
        return registry.get(name).card()

    @app.get("/info")
    def info():
        return routes.info()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, body: NamedBody):
        body = _chat_body(body, registry, config)
        handler, body = chat_handler(chat, body, registry)  # response_format, tool_choice
        return await _openai_answer(handler, body, request, config.timeout)

    @app.post("/v1/completions")
    async def completions(request: Request, body: NamedBody):
        body = _chat_body(body, registry, config, tokens_field="max_tokens")
        return await _openai_answer(completion, body, request, config.timeout)

    @app.post("/v1/embeddings")
    async def embeddings(body: NamedBody):
        return await routes.openai_embeddings(body)

    @app.post("/embed")
    async def embed(body: NamedBody):
        return await routes.tei_embed(body)

    @app.post("/predict")
    async def predict(body: NamedBody):
        rows = await routes.tei_predict(body)
        return rows[0] if isinstance(body.get("inputs"), str) else rows

    @app.post("/rerank")
    async def rerank(body: NamedBody):
        return await routes.tei_rerank(body)

    @app.post("/generate")
    async def generate(body: NamedBody):
        return await routes.generate(body)

    @app.post("/generate_stream")
    async def generate_stream(body: NamedBody):
        return StreamingResponse(routes.generate_stream(body), media_type="text/event-stream")

    @app.post("/similarity")
    async def similarity(body: NamedBody):
        return await routes.sentence_similarity(body)

    @app.post("/")
    async def root(body: NamedBody):
        """TGI's and TEI's root route, for the model the body (or a /models/<name>/ base URL)
        names, else the first served one; the Inference API's sentence-similarity body
        (``inputs`` an object) is for an embedding model."""
        similarity = isinstance(body.get("inputs"), dict)
        served = registry.get(body.get("model"), "embedding" if similarity else None)
        if similarity:
            return await routes.sentence_similarity({**body, "model": served.name})
        if served.kind == "generation":
            if body.get("stream"):
                stream = routes.generate_stream(body)
                return StreamingResponse(stream, media_type="text/event-stream")
            return [await routes.generate(body)]
        if served.kind == "embedding":
            return await routes.tei_embed({**body, "model": served.name})
        rows = await routes.tei_predict({**body, "model": served.name})
        return JSONResponse(rows if isinstance(body.get("inputs"), list) else rows[:1])

    return app


class ModelPrefix:
    """``/models/<served name>/...`` is the server as seen by one model: a client given that base
    URL (InferenceClient(base_url=...) posts every task but chat to the base URL itself) reaches
    the usual routes with that model as the default."""

    def __init__(self, app, names):
        self.app = app
        self.names = sorted(names, key=len, reverse=True)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/models/"):
            rest = path[len("/models/") :]
            for name in self.names:
                if rest == name or rest.startswith(name + "/"):
                    tail = rest[len(name) :] or "/"
                    scope = {**scope, "path": tail, "raw_path": tail.encode(), "model": name}
                    break
        await self.app(scope, receive, send)


async def _warm_up(chat, registry):
    """One token of greedy generation per model before the server says it is ready: the first
    request would otherwise pay for generation's lazy set-up (and continuous batching's cache,
    made greedy here)."""
    for served in registry.of_kind("generation"):
        _, _, processor = registry.generation_model(served.name)
        if not getattr(getattr(processor, "tokenizer", processor), "chat_template", None):
            continue  # a plain language model (TGI's routes only): nothing to warm through chat
        body = {
            "model": served.name,
            "messages": [{"role": "user", "content": "Hello"}],
            "max_completion_tokens": 1,
            "temperature": 0,
        }
        await chat.handle_request(body, "warm-up")


def _handlers(registry):
    if registry.manager is None:
        return None, None
    from .constrained import handler_class

    shared = {"model_manager": registry.manager, "generation_state": registry.generation_state}
    for kind in ("chat", "completion"):
        handler_class(kind).max_time = registry.config.timeout
    return handler_class("chat")(**shared), handler_class("completion")(**shared)


# Names a client sends for "the model this server runs": TGI's documented "tgi", and the
# placeholder huggingface_hub's InferenceClient(base_url=...) sends when given no model.
DEFAULT_MODEL_NAMES = ("tgi", "dummy")


def _chat_body(body: dict, registry, config, tokens_field="max_completion_tokens") -> dict:
    """``body`` for transformers serve's handler: the served model, and the token limit checked
    and put in the one field the handler reads (``tokens_field``: the chat handler reads
    ``max_completion_tokens`` and refuses ``max_tokens``, the completion handler the reverse)."""
    body = dict(body)
    if not body.get("model") or body["model"] in DEFAULT_MODEL_NAMES:
        body["model"] = registry.get(None, "generation").name
    else:
        registry.get(body["model"], "generation")  # a served generation model, or 404
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    limit = check_max_tokens(body.get(name), config.max_tokens, name)
    body.pop("max_tokens", None)
    body.pop("max_completion_tokens", None)
    body[tokens_field] = limit
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise ServeError(422, "`logprobs` is not supported by this server: leave it out.")
    check_fields(body, OPENAI_NUMBERS, ("stream",))
    if body.get("n", 1) != 1:
        raise ServeError(422, "`n` must be 1: this server answers with one choice.")
    stop = body.get("stop")
    if not (stop is None or isinstance(stop, str) or _strings(stop)):
        raise ServeError(422, "`stop` must be a string or a list of strings.")
    options = body.get("stream_options")
    if not (options is None or isinstance(options, dict)):
        raise ServeError(
            422, '`stream_options` must be an object, such as {"include_usage": true}.'
        )
    if options:
        check_fields(options, flags=("include_usage",))
    if body.get("logit_bias") is not None:
        _, model, _ = registry.generation_model(body["model"])
        body["logit_bias"] = _logit_bias(body["logit_bias"], model.get_output_embeddings())
    if tokens_field == "max_tokens":  # a completion
        if not (isinstance(body.get("prompt"), str) and body["prompt"]):
            raise ServeError(422, "`prompt` must be a non-empty string.")
        check_unicode(body["prompt"], "prompt")
    else:
        _check_messages(body.get("messages"))
    return body


OPENAI_NUMBERS = {
    "temperature": (0, 2, False),
    "top_p": (0, 1, False),
    "frequency_penalty": (-2, 2, False),
    "presence_penalty": (-2, 2, False),
    "seed": SEED,
}


def _logit_bias(bias, output) -> dict:
    """OpenAI's {"token id": bias from -100 to 100}, its biases as floats (transformers refuses
    the integers that clients send); ``output`` is the model's output layer, whose rows are the
    token ids there are."""
    vocab = output.weight.shape[0] if output is not None else float("inf")
    ok = isinstance(bias, dict) and all(
        isinstance(k, str) and k.isdigit() and isinstance(v, (int, float))
        and not isinstance(v, bool) and -100 <= v <= 100
        for k, v in bias.items()
    )  # fmt: skip
    if not ok:
        raise ServeError(422, "`logit_bias` must map token ids to numbers from -100 to 100.")
    unknown = [k for k in bias if int(k) >= vocab]
    if unknown:
        raise ServeError(
            422, f"`logit_bias` names token ids the model does not have ({', '.join(unknown)}): "
            f"its vocabulary has {vocab}.",
        )  # fmt: skip
    return {k: float(v) for k, v in bias.items()}


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_messages(messages) -> None:
    if not (isinstance(messages, list) and messages):
        raise ServeError(422, "`messages` must be a non-empty list of {role, content}.")
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)):
            raise ServeError(422, f"`messages[{i}]` must be an object with a `role` string.")
        content = message.get("content")
        if not (content is None or isinstance(content, (str, list))):
            raise ServeError(422, f"`messages[{i}].content` must be a string or a list of parts.")
        if isinstance(content, str):
            check_unicode(content, f"messages[{i}].content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            _check_part(part, f"messages[{i}].content[{j}]")
        if message.get("tool_calls") is not None:
            _check_tool_calls(message["tool_calls"], f"messages[{i}].tool_calls")


def _check_part(part, name) -> None:
    """A content part: ``{"type": ..., ...}``, a text part's ``text`` a string."""
    if not (isinstance(part, dict) and isinstance(part.get("type"), str)):
        raise ServeError(422, f"`{name}` must be an object with a `type` string.")
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise ServeError(422, f"`{name}.text` must be a string.")
        check_unicode(part["text"], f"{name}.text")


def _check_tool_calls(calls, name) -> None:
    """An assistant's earlier tool calls: ``[{"function": {"name", "arguments"}}]``, the
    arguments a JSON object in a string (transformers' chat templates parse them)."""
    if not isinstance(calls, list):
        raise ServeError(422, f"`{name}` must be a list of tool calls.")
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(function, dict) and isinstance(function.get("name"), str)):
            raise ServeError(422, f'`{name}[{k}]` must be {{"function": {{"name", "arguments"}}}}.')
        arguments = function.get("arguments")
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ServeError(
                422, f"`{name}[{k}].function.arguments` must be a JSON object, as a string."
            )


async def _openai_answer(handler, body, request, timeout):
    if handler is None:
        raise ServeError(404, "No generation model is served here.", "not_found")
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    name = body["model"]
    finish = Finish(body.get("stop"), timeout)
    response = await handler.handle_request(body, request.headers.get("x-request-id") or _rid())
    if body.get("stream"):
        stream = _openai_stream(response.body_iterator, include_usage, name, finish)
        return StreamingResponse(stream, media_type="text/event-stream")
    answer = json.loads(response.body)
    answer["model"] = name  # transformers names its folder@revision; clients sent the served name
    for choice in answer.get("choices") or []:
        text = choice.get("message") or choice  # a chat's message, or a completion's choice
        field = "content" if "message" in choice else "text"
        text[field] = finish.whole(text.get(field))
        choice["finish_reason"] = finish.reason(choice.get("finish_reason"))
    return JSONResponse(answer, response.status_code)


async def _openai_stream(parts, include_usage: bool, name: str, finish: Finish):
    try:
        async for part in parts:
            text = part.decode() if isinstance(part, bytes) else part
            yield "".join(_openai_events(text, include_usage, name, finish))
        yield "data: [DONE]\n\n"
    finally:
        await parts.aclose()  # a client that left stops the generation (GeneratorExit inside)


def _openai_events(text: str, include_usage: bool, name: str, finish: Finish):
    for event in text.split("\n\n"):
        if not event.strip():
            continue
        if not event.startswith("data: {"):
            yield event + "\n\n"
            continue
        chunk = json.loads(event[len("data: ") :])
        if "model" in chunk:
            chunk["model"] = name
        for choice in chunk.get("choices") or []:
            _finish_chunk(choice, finish)
        usage = chunk.pop("usage", None)
        yield f"data: {json.dumps(chunk)}\n\n"
        if usage and include_usage:
            last = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
            yield f"data: {json.dumps({**last, 'choices': [], 'usage': usage})}\n\n"


def _finish_chunk(choice: dict, finish: Finish) -> None:
    """A streamed choice with its stop sequences left out; the text held back goes out with the
    last chunk, whose finish_reason says whether the timeout ended the generation."""
    delta = choice.get("delta") if "delta" in choice else choice  # a chat's, or a completion's
    field = "content" if "delta" in choice else "text"
    if isinstance(delta, dict) and isinstance(delta.get(field), str):
        delta[field] = finish.feed(delta[field])
    if choice.get("finish_reason") is not None:
        held = finish.flush()
        if held and isinstance(delta, dict):
            delta[field] = (delta.get(field) or "") + held
        choice["finish_reason"] = finish.reason(choice["finish_reason"])


def _rid() -> str:
    return uuid.uuid4().hex


def _runner(served):
    if served.kind == "rerank":
        return lambda pairs: served.scorer(pairs)
    if served.kind == "embedding":
        from .. import embed

        # normalised, if at all, per request (serve.embedding.finish): a batch mixes requests
        pooling = {**served.pooling(), "normalize": False}
        fast = served.spec.fast()
        return lambda texts: embed.embed(texts, served.folder, **pooling, **fast).tolist()
    from .. import pipeline

    def classify(texts):
        cols = pipeline.run(
            "text-classification",
            texts,
            model=served.folder,
            args={"top_k": None},
            **served.spec.fast(),
        )
        rows = [[] for _ in texts]
        for i, label, score in zip(cols["text_id"], cols["label"], cols["score"]):
            rows[int(i) - 1].append({"label": str(label), "score": float(score)})
        return [sorted(r, key=lambda d: -d["score"]) for r in rows]

    return classify


# ---------------------------------------------------------------------------------------------
# The process


def run(config: ServeConfig) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    if config.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    import uvicorn

    from .registry import Registry

    registry = Registry(config, env=None)
    registry.load()
    app = ModelPrefix(build_app(config, registry), list(registry.models))
    app = Guard(app, config.api_key, config.max_body_bytes)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, an answer's headers and body (two writes) wait
    # for the client's delayed ACK, 40 ms on every request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as e:
        raise errors.NetworkError(
            f"Could not listen on {config.host}:{config.port} ({e.strerror}): pick another port, "
            "or leave it out for a free one.",
            host=config.host,
            port=config.port,
        ) from None
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    )
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    threading.Thread(target=_announce, args=(server, url), daemon=True).start()
    server.run(sockets=[sock])
    return 0


def _announce(server, url):
    while not server.started:
        time.sleep(0.02)
    print(READY_LINE.format(url=url), flush=True)
