"""An OpenAI-compatible server that misbehaves on command: the remote end of the tests of
retries, failover and token handling. FastAPI on uvicorn, no model behind it.

    python tests/fault_server.py [--host 127.0.0.1] [--port 0]

prints ``fault server ready at http://HOST:PORT`` once it serves, then serves until killed.

Control routes (never scripted, never recorded):

- ``POST /_script`` ``{"actions": [...]}`` replaces the queue of actions; each API request pops
  the next one, ``{"kind": "ok"}`` once the queue is empty;
- ``GET /_requests``: ``[{"method", "path", "headers", "body"}]`` of every API request since the
  last reset, in order (header names lowercased, the body parsed JSON or null);
- ``POST /_reset`` clears the queue and the record;
- ``GET /_drip?every=S&count=N``: N bytes, one every S seconds (a URL slower than its timeout,
  whose every read still comes in time).

API routes, all recorded: ``POST /v1/chat/completions`` (and ``/chat/completions``; SSE when the
body has ``"stream": true``), ``POST /v1/completions``, ``POST /v1/embeddings``, ``POST /`` (TGI
and TEI style), each popping one action; ``GET /v1/models`` pops none. Any other path is recorded
and answered 404.

Actions: ``ok`` (``text``, ``json``: a raw answer), ``status`` (``status``, ``retry_after``,
``message``, ``type``, ``code``), ``context_length`` (the 400 OpenAI and vLLM send), ``slow``
(``seconds``, then as ``ok``; a stream sends its headers at once and waits before the first
chunk), ``drop`` (a stream sends ``after`` content chunks and then closes the connection without
ending the chunked body; otherwise the connection closes with no answer at all) and ``tool_call``
(``name``, ``arguments``, ``id``; chat only, elsewhere as ``ok``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

READY_LINE = "fault server ready at {url}"
DEFAULT_TEXT = "hello from the fault server"
MODEL = "fault-model"
KINDS = ("ok", "status", "context_length", "slow", "drop", "tool_call")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 32 tokens. However, you requested 57 tokens (41 in "
    "the messages, 16 in the completion). Please reduce the length of the messages or completion."
)

# The open connections by client address. ASGI cannot close a connection without an answer (an
# app that raises gets a 500 from uvicorn), so a route that drops one closes its transport.
_TRANSPORTS: dict = {}


class _TrackedH11(H11Protocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        _TRANSPORTS[self.client] = transport

    def connection_lost(self, exc):
        _TRANSPORTS.pop(self.client, None)
        super().connection_lost(exc)


class Script:
    """The queue of actions and the record of API requests."""

    def __init__(self):
        self.actions: deque = deque()
        self.requests: list = []

    async def record(self, request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {}
        for name, value in request.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.requests.append(
            {"method": request.method, "path": request.url.path, "headers": headers, "body": body}
        )
        return body

    async def take(self, request: Request):
        """Records the request; returns its body, its action and its number (from 1)."""
        body = await self.record(request)
        action = self.actions.popleft() if self.actions else {"kind": "ok"}
        return body, action, len(self.requests)


def check_actions(actions) -> str | None:
    if not isinstance(actions, list):
        return 'The body must be {"actions": [...]}.'
    for i, action in enumerate(actions):
        kind = action.get("kind", "ok") if isinstance(action, dict) else None
        if kind not in KINDS:
            return f"Action {i + 1} must be an object whose kind is one of {', '.join(KINDS)}."
        status = action.get("status")
        if kind == "status" and not (isinstance(status, int) and 400 <= status <= 599):
            return f"Action {i + 1} (status) needs an error status, 400 to 599."
    return None


def error_answer(status: int, message: str, type_=None, code=None, retry_after=None):
    type_ = type_ or ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = {"error": {"message": message, "type": type_, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def failure(action: dict):
    """The error answer of a ``status`` or ``context_length`` action, else None."""
    kind = action.get("kind", "ok")
    if kind == "context_length":
        return error_answer(400, CONTEXT_LENGTH_MESSAGE, code="context_length_exceeded")
    if kind != "status":
        return None
    status = action["status"]
    message = action.get("message") or f"The fault server answers {status} as scripted."
    code = action.get("code", "rate_limit_exceeded" if status == 429 else None)
    return error_answer(status, message, action.get("type"), code, action.get("retry_after"))


async def drop(request: Request):
    """Closes the request's connection once what was written has left; later writes are lost."""
    transport = _TRANSPORTS.get(request.scope["client"])
    while transport.get_write_buffer_size():
        await asyncio.sleep(0.005)
    transport.abort()
    await asyncio.sleep(0)  # uvicorn sees the connection lost and writes nothing more


async def wait_if_slow(action: dict):
    if action.get("kind") == "slow":
        await asyncio.sleep(float(action.get("seconds", 1)))


# ---- answer bodies ----------------------------------------------------------------------------


def words(text: str) -> list:
    """The text in pieces of one word each, with the spaces before it; joined, the text again."""
    pieces = re.findall(r"\s*\S+(?:\s+$)?", text)
    return pieces or ([text] if text else [])


def count_words(body) -> int:
    if not isinstance(body, dict):
        return 0
    texts = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    texts += [body.get("prompt"), body.get("inputs")]
    return sum(len(t.split()) for t in texts if isinstance(t, str))


def model_of(body) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) and model else MODEL


def usage(body, completion: int) -> dict:
    prompt = count_words(body)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def tool_call(action: dict, n: int) -> dict:
    return {
        "id": action.get("id", f"call_fault_{n}"),
        "type": "function",
        "function": {
            "name": action.get("name", "get_weather"),
            "arguments": json.dumps(action.get("arguments", {})),
        },
    }


def chat_completion(body, action: dict, n: int) -> dict:
    if action.get("kind") == "tool_call":
        call = tool_call(action, n)
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish, produced = "tool_calls", len(words(call["function"]["arguments"]))
    else:
        text = action.get("text", DEFAULT_TEXT)
        message, finish, produced = {"role": "assistant", "content": text}, "stop", len(words(text))
    return {
        "id": f"chatcmpl-fault-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_of(body),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage(body, produced),
    }


def stream_deltas(action: dict, n: int) -> list:
    """[(delta, finish_reason)] of a streamed reply, as OpenAI sends them."""
    if action.get("kind") == "tool_call":
        call = tool_call(action, n)
        arguments = call["function"]["arguments"]
        opening = {"index": 0, **call, "function": {**call["function"], "arguments": ""}}
        parts = [arguments[i : i + 8] for i in range(0, len(arguments), 8)]
        return [
            ({"role": "assistant", "content": None}, None),
            ({"tool_calls": [opening]}, None),
            *[({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}, None) for p in parts],
            ({}, "tool_calls"),
        ]
    role = ({"role": "assistant", "content": ""}, None)
    pieces = words(action.get("text", DEFAULT_TEXT))
    if action.get("kind") == "drop":
        return [role] + [({"content": p}, None) for p in pieces[: int(action.get("after", 1))]]
    deltas = [({"content": p}, None) for p in pieces] or [({}, None)]
    deltas[-1] = (deltas[-1][0], "stop")
    return [role] + deltas


async def chat_events(request: Request, body: dict, action: dict, n: int):
    await wait_if_slow(action)
    head = {"id": f"chatcmpl-fault-{n}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model_of(body)}  # fmt: skip
    deltas = stream_deltas(action, n)
    for delta, finish in deltas:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        yield f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"
    if action.get("kind") == "drop":
        await drop(request)
        return
    if (body.get("stream_options") or {}).get("include_usage"):
        produced = sum(1 for d, _ in deltas if d.get("content") or d.get("tool_calls"))
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage(body, produced)})}\n\n"
    yield "data: [DONE]\n\n"


def completion(body, action: dict, n: int) -> dict:
    text = action.get("text", DEFAULT_TEXT)
    return {
        "id": f"cmpl-fault-{n}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model_of(body),
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": usage(body, len(words(text))),
    }


def vector(value) -> list:
    digest = hashlib.sha256(json.dumps(value).encode()).digest()
    return [round(b / 127.5 - 1, 6) for b in digest[:4]]


def embeddings(body, action: dict, n: int) -> dict:
    inputs = body.get("input") if isinstance(body, dict) else None
    inputs = inputs if isinstance(inputs, list) else [inputs]
    rows = enumerate(inputs)
    data = [{"object": "embedding", "index": i, "embedding": vector(x)} for i, x in rows]
    prompt = sum(len(x.split()) for x in inputs if isinstance(x, str))
    counts = {"prompt_tokens": prompt, "total_tokens": prompt}
    return {"object": "list", "data": data, "model": model_of(body), "usage": counts}


def generated(body, action: dict, n: int) -> list:
    return [{"generated_text": action.get("text", DEFAULT_TEXT)}]


# ---- the app ----------------------------------------------------------------------------------


def build_app(script: Script | None = None) -> FastAPI:
    script = script or Script()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/_script")
    async def set_script(request: Request):
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        actions = body.get("actions") if isinstance(body, dict) else None
        problem = check_actions(actions)
        if problem:
            return error_answer(422, problem)
        script.actions = deque(actions)
        return {"queued": len(actions)}

    @app.get("/_requests")
    async def requests():
        return script.requests

    @app.post("/_reset")
    async def reset():
        script.actions.clear()
        script.requests.clear()
        return {"reset": True}

    @app.get("/v1/models")
    async def models(request: Request):
        await script.record(request)
        card = {"id": MODEL, "object": "model", "created": 0, "owned_by": "fault-server"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions")
    async def chat(request: Request):
        body, action, n = await script.take(request)
        if isinstance(body, dict) and body.get("stream") is True and failure(action) is None:
            events = chat_events(request, body, action, n)
            return StreamingResponse(events, media_type="text/event-stream")
        return await answer(request, body, action, n, chat_completion)

    async def answer(request, body, action, n, default):
        failed = failure(action)
        if failed is not None:
            return failed
        if action.get("kind") == "drop":
            await drop(request)
            return Response()
        await wait_if_slow(action)
        return JSONResponse(action["json"] if "json" in action else default(body, action, n))

    def route(default):
        async def handle(request: Request):
            return await answer(request, *await script.take(request), default)

        return handle

    app.post("/v1/completions")(route(completion))
    app.post("/v1/embeddings")(route(embeddings))
    app.post("/")(route(generated))

    @app.get("/_drip")
    async def drip(every: float = 0.25, count: int = 40):
        """``count`` bytes, one every ``every`` seconds: a download that never times out a read."""

        async def body():
            for _ in range(count):
                yield b"x"
                await asyncio.sleep(every)

        return StreamingResponse(body(), media_type="image/png")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
    async def elsewhere(request: Request):
        await script.record(request)
        return error_answer(404, f"The fault server has no route {request.url.path}.")

    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, headers and body wait for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        build_app(), http=_TrackedH11, lifespan="off", log_level="warning", access_log=False,
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    threading.Thread(target=announce, args=(server, url), daemon=True).start()
    server.run(sockets=[sock])
    return 0


def announce(server, url):
    while not server.started:
        time.sleep(0.02)
    print(READY_LINE.format(url=url), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
