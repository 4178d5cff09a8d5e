"""A chat: its turns, and the chain of backends that answers them.

A backend is a Hub model run in this process (:class:`pybridge.generation.LocalChat`, through
transformers), or an endpoint of :mod:`pybridge.inference` (any OpenAI-compatible server, or an
HF Inference Provider) reached through huggingface_hub's ``InferenceClient``. The chain is tried
in order, as :func:`pybridge.inference.run_chain` does; a stream stays with the backend that
sent its first chunk.

R's ``hf_chat()`` holds one :class:`Chat`; tool calls are run by R (the functions are R's), which
sends their results back with :meth:`Chat.add_tool_result`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Iterator, List, Optional

import numpy as np

from . import errors, inference, structured

PARAMS = ("max_tokens", "temperature", "top_p", "seed", "stop", "tool_choice")
SEED_MAX = 2**32 - 1  # numpy's, which transformers.set_seed() seeds
TOOL_CHOICES = ("auto", "none", "required")
LOCAL_PARAMS = {"max_tokens": "max_new_tokens"}


class Local:
    """A Hub model (or folder) run in this process. Its model lives in pipeline()'s cache
    (:mod:`pybridge.models`), not in the chat: pipeline_cache_info() lists it and
    pipeline_cache_clear() frees it (the next turn loads it again)."""

    retries = 0

    def __init__(self, model: str, revision: str = "main", env=None, token=None):
        self.model, self.revision, self.env, self.token = model, revision, env, token
        self.label = f"local:{model}"

    def engine(self):
        """transformers' model, from pipeline()'s cache (loaded into it the first time)."""
        from .generation import LocalChat

        return LocalChat(self.model, self.revision, env=self.env, token=self.token)

    def reply(self, messages, params, tools, response_format, tool_choice=None) -> dict:
        """A forced tool call (``tool_choice``) and a ``response_format`` are enforced while
        generating, as hfbridge's server enforces them."""
        engine = self.engine()
        tools, settings = self._settings(engine, params, tools, response_format, tool_choice)
        return engine.reply(messages, tools=tools, read_tool_calls=True, **settings)

    def stream(self, messages, params, tools=None, tool_choice=None):
        engine = self.engine()
        tools, settings = self._settings(engine, params, tools, None, tool_choice)
        return engine.stream(messages, tools=tools, read_tool_calls=True, **settings)

    @staticmethod
    def _settings(engine, params, tools, response_format, tool_choice) -> tuple:
        """(tools, generate() settings), with the constraint of a forced tool call or a
        response_format as a logits processor."""
        if tool_choice == "none":
            tools = None
        constraint = structured.from_openai(response_format, tools, tool_choice)
        if constraint is not None:
            tokenizer, model = engine.tokenizer, engine.model
            processor = structured.model_logits_processor(tokenizer, model, constraint)
            params = {**params, "logits_processor": [processor]}
        return tools, _local(params)


def _local(params: dict) -> dict:
    return {LOCAL_PARAMS.get(k, k): v for k, v in params.items() if v is not None}


class Remote:
    """An endpoint of :mod:`pybridge.inference`, spoken to with OpenAI's chat shapes."""

    def __init__(self, spec: dict, model: Optional[str], env=None, token=None):
        self.ep = inference.endpoint({**spec, "model": spec.get("model") or model})
        self.env, self.token = env, token
        self.label = self.ep.label
        self.retries = self.ep.retries

    def client(self):
        return inference.client(self.ep, self.env, self.token)

    def reply(self, messages, params, tools, response_format, tool_choice=None) -> dict:
        out = self.client().chat_completion(
            messages,
            model=self.ep.model,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            **{k: v for k, v in params.items() if v is not None},
        )
        choice = out.choices[0]
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": _arguments(c.function.arguments)}
            for c in (choice.message.tool_calls or [])
        ]
        usage = out.usage
        return {
            "text": choice.message.content or "",
            "tool_calls": calls,
            "finish_reason": choice.finish_reason,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
        }

    def stream(self, messages, params, tools=None, tool_choice=None):
        c = self.client()  # the stream dies if its client is collected: keep it in the iterator
        parts = c.chat_completion(
            messages,
            model=self.ep.model,
            stream=True,
            stream_options={"include_usage": True},
            tools=tools,
            tool_choice=tool_choice,
            **{k: v for k, v in params.items() if v is not None},
        )
        return _RemoteStream(c, parts)


class _RemoteStream:
    """The content chunks of a streamed reply; its usage and its tool calls (whose deltas are
    joined by index, as OpenAI streams them) end up in ``result``."""

    def __init__(self, client, parts):
        self.client, self.parts, self.result = client, iter(parts), {}
        self.calls: dict = {}

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while True:
            chunk = next(self.parts)
            if chunk.usage:
                self.result["prompt_tokens"] = chunk.usage.prompt_tokens
                self.result["completion_tokens"] = chunk.usage.completion_tokens
            for choice in chunk.choices or []:
                if choice.finish_reason:
                    self.result["finish_reason"] = choice.finish_reason
                if choice.delta and choice.delta.tool_calls:
                    self._add_calls(choice.delta.tool_calls)
                if choice.delta and choice.delta.content:
                    return choice.delta.content

    def _add_calls(self, deltas) -> None:
        for delta in deltas:
            call = self.calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or delta.id or ""
            if delta.function:
                call["name"] = call["name"] or delta.function.name or ""
                call["arguments"] += _arguments(delta.function.arguments or "")
        self.result["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]

    def close(self):
        close = getattr(self.parts, "close", None)
        if close:
            close()


def _arguments(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class Chat:
    def __init__(
        self,
        backends: list,
        model: Optional[str] = None,
        system_prompt: Optional[str] = None,
        params: Optional[dict] = None,
        env=None,
        token=None,
    ):
        if not backends:
            raise errors.InvalidArgumentError("A chat needs a model or an endpoint.")
        self.backends = [_backend(b, model, env, token) for b in backends]
        self.system_prompt = _text(system_prompt, "system_prompt") if system_prompt else None
        self.params = _params(params)
        self.turns: List[dict] = []
        if isinstance(self.backends[0], Local):
            self.backends[0].engine()  # a model that cannot load fails here, not at the first turn

    # ---- asking ------------------------------------------------------------------------------

    def follow(self, env) -> None:
        """The variables of this call (R's ``hf_env()``: proxies, CAs, the Hub, the token) for
        every backend from now on: they are read at each call, not once at the chat's making."""
        for backend in self.backends:
            backend.env = env

    def send(self, content=None, tools=None, response_format=None, params=None, env=None) -> dict:
        """Adds the user's message (or, with None, answers the tool results already added) and
        the reply; returns the reply with its record."""
        if env is not None:
            self.follow(env)
        mark = len(self.turns)
        p, tools, tool_choice = self._ask(content, tools, params)

        def call(backend):
            return backend.reply(self.messages(), p, tools, response_format, tool_choice)

        try:
            answer = _run(self.backends, call, "chat")
        except BaseException:
            del self.turns[mark:]
            raise
        reply = answer.value
        self.turns.append(_assistant(reply, answer))
        return {**reply, **_record(answer)}

    def _ask(self, content, tools, params) -> tuple:
        """(params, tools, tool_choice) of a reply, checked; the user's turn is added."""
        p = {**self.params, **_params(params)}
        # tool_choice is for the user's turn: the answer to the tool results is the model's
        # own choice (a forced call would call the tools again and again).
        tool_choice = p.pop("tool_choice", None)
        if content is None:
            tool_choice = None
        tools = tools or None
        if tool_choice is not None:
            structured.forced_tools(tool_choice, structured.tool_parameters(tools))
        if content is not None:
            self.turns.append({"role": "user", "content": _text(content, "content")})
        return p, tools, tool_choice

    def structured(self, content, schema, env=None) -> dict:
        """A reply that follows the JSON schema ``schema``, parsed: {"kind": "frame", "value":
        columns} for an array of flat objects with the same keys, else {"kind": "value"}."""
        if not isinstance(schema, dict):
            raise errors.InvalidArgumentError(
                "`schema` must be a JSON schema (an object).", argument="schema"
            )
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        }
        no_tools = {"tool_choice": None}  # no tools are offered: the answer is the schema's
        mark = len(self.turns)
        reply = self.send(content, response_format=response_format, params=no_tools, env=env)
        try:
            value = json.loads(reply["text"])
        except ValueError:
            del self.turns[mark:]  # a failed request leaves the turns as they were
            raise errors.ValidationError(
                f"The reply from {reply['endpoint']} is not JSON (finish reason "
                f"{reply.get('finish_reason')}): {reply['text'][:200]!r}. Raise max_tokens if "
                "it was cut short.",
                endpoint=reply["endpoint"],
            ) from None
        return _structured_value(value)

    def add_tool_result(self, call_id: str, name: str, content) -> None:
        """The result of a tool call, sent back as JSON (a string as it is): R hands over its
        values as JSON's (hfbridge's chat_tool_value()); what JSON cannot hold is refused."""
        try:
            text = (
                content
                if isinstance(content, str)
                else json.dumps(_plain(content), allow_nan=False)
            )
        except (TypeError, ValueError) as exc:
            raise errors.InvalidArgumentError(
                f"The result of the tool '{name}' cannot be sent to the model as JSON ({exc}). "
                "Return text, numbers, logicals, lists or data frames.",
                argument="tool",
                tool=name,
            ) from None
        self.turns.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": text})

    def turn_count(self) -> int:
        return len(self.turns)

    def rollback(self, count: int) -> None:
        """Forgets the turns after the first ``count``: a request whose tool rounds failed
        leaves the turns as they were."""
        del self.turns[int(count) :]

    def stream(self, content=None, tools=None, params=None, env=None) -> "Stream":
        """As :meth:`send`, streamed: the reply's text chunk by chunk; its tool calls are in
        :meth:`Stream.record` once it has ended."""
        if env is not None:
            self.follow(env)
        p, tools, tool_choice = self._ask(content, tools, params)
        return Stream(self, p, tools, tool_choice)

    def messages(self) -> list:
        """The turns as OpenAI messages, after the system prompt."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return head + [_message(t) for t in self.turns]

    # ---- reading -----------------------------------------------------------------------------

    def turn_columns(self) -> dict:
        def col(name, kind):
            values = [t.get(name) for t in self.turns]
            if kind == "int":
                return np.asarray([-1 if v is None else v for v in values], dtype=np.int32)
            if kind == "float":
                return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            return ["" if v is None else str(v) for v in values]

        return {
            "role": col("role", "str"),
            "content": col("content", "str"),
            "tool_calls": [_calls_text(t.get("tool_calls")) for t in self.turns],
            "tokens_in": col("prompt_tokens", "int"),
            "tokens_out": col("completion_tokens", "int"),
            "endpoint": col("endpoint", "str"),
            "tries": col("tries", "int"),
            "latency_ms": col("latency_ms", "float"),
        }

    def backend_labels(self) -> list:
        return [b.label for b in self.backends]

    def clone(self) -> "Chat":
        twin = copy.copy(self)
        twin.turns = copy.deepcopy(self.turns)
        twin.params = dict(self.params)
        return twin


class Stream:
    """One streamed reply. The chain is tried until a backend sends its first chunk; after that
    the stream stays with it, and a failure is an error (nothing is sent twice)."""

    def __init__(self, chat: Chat, params: dict, tools=None, tool_choice=None):
        self.chat, self.params = chat, params
        self.tools, self.tool_choice = tools, tool_choice
        self.parts: Optional[Iterator[str]] = None
        self.text: List[str] = []
        self.answer = None
        self.done = False

    def next_chunk(self) -> Optional[str]:
        """The next chunk of text, or None at the end (the turn is then added)."""
        if self.done:
            return None
        try:
            if self.parts is None:
                return self._first()
            return self._take(next(self.parts))
        except StopIteration:
            return self._finish()
        except BaseException as exc:
            self._abandon()
            if isinstance(exc, errors.PybridgeError):
                raise
            where = self.answer.endpoint if self.answer else "the endpoint"
            raise errors.NetworkError(
                f"The stream from {where} broke after {len(self.text)} chunks "
                f"({type(exc).__name__}: {exc}); the reply was not kept.",
                endpoint=where,
            ) from None

    def _first(self) -> Optional[str]:
        messages = self.chat.messages()

        def call(backend):
            parts = backend.stream(messages, self.params, self.tools, self.tool_choice)
            try:
                first = next(parts)
            except StopIteration:
                first = None
            return backend, parts, first

        try:
            self.answer = _run(self.chat.backends, call, "chat (streamed)")
        except BaseException:
            self._abandon()
            raise
        _, self.parts, first = self.answer.value
        if first is None:
            return self._finish()
        return self._take(first)

    def _take(self, chunk: str) -> str:
        self.text.append(chunk)
        return chunk

    def _finish(self) -> None:
        self.done = True
        result = dict(getattr(self.parts, "result", None) or {})
        reply = {"text": "".join(self.text), "tool_calls": [], **result}
        self.chat.turns.append(_assistant(reply, self.answer))
        return None

    def _abandon(self) -> None:
        """Stops the generation and takes back the user's turn."""
        self.done = True
        close = getattr(self.parts, "close", None)
        if close:
            close()
        if self.chat.turns and self.chat.turns[-1]["role"] == "user":
            self.chat.turns.pop()

    def close(self) -> None:
        if not self.done:
            self._abandon()

    def record(self) -> dict:
        """Which backend answered, after how many tries, how long it took, and the finished
        turn's tokens."""
        if not self.answer:
            return {}
        turn = self.chat.turns[-1] if self.done and self.chat.turns else {}
        tokens = {k: turn.get(k) for k in ("prompt_tokens", "completion_tokens")}
        return {**_record(self.answer), **tokens, "tool_calls": turn.get("tool_calls") or []}


# ---- helpers -----------------------------------------------------------------------------------


def _backend(spec: dict, model, env, token):
    spec = dict(spec)
    if spec.get("local"):
        return Local(spec.get("model") or model, spec.get("revision") or "main", env, token)
    return Remote(spec, model, env, token)


def _run(backends, call, what) -> inference.Answer:
    """The failover chain over backends; a local one is tried once, after any remote ones
    before it."""
    chain = [_Link(b) for b in backends]
    return inference.run_chain(chain, lambda link: call(link.backend), what)


class _Link:
    """A backend in the shape run_chain takes (label, retries, api_key)."""

    def __init__(self, backend):
        self.backend = backend
        self.label = backend.label
        ep = getattr(backend, "ep", None)
        self.retries = ep.retries if ep else 0
        self.timeout = ep.timeout if ep else float("inf")
        self.api_key = ep.api_key if ep else None

    def sends_hf_token(self):
        ep = getattr(self.backend, "ep", None)
        return ep.sends_hf_token() if ep else False


def _record(answer) -> dict:
    return {"endpoint": answer.endpoint, "tries": answer.tries, "latency_ms": answer.latency_ms}


def _assistant(reply: dict, answer) -> dict:
    return {
        "role": "assistant",
        "content": reply.get("text", ""),
        "tool_calls": reply.get("tool_calls") or None,
        "prompt_tokens": reply.get("prompt_tokens"),
        "completion_tokens": reply.get("completion_tokens"),
        "finish_reason": reply.get("finish_reason"),
        **(_record(answer) if answer else {}),
        "at": time.time(),
    }


def _message(turn: dict) -> dict:
    msg = {"role": turn["role"], "content": turn.get("content", "")}
    if turn.get("tool_calls"):
        msg["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in turn["tool_calls"]
        ]
    if turn["role"] == "tool":
        msg["tool_call_id"] = turn["tool_call_id"]
        msg["name"] = turn.get("name")
    return msg


def tool_arguments(text: str) -> dict:
    """A tool call's arguments (a JSON object, as the model wrote it) for R's do.call()."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise errors.ValidationError(
            f"The model called a tool with arguments that are not a JSON object: {text[:200]!r}."
        )
    return value


def _structured_value(value) -> dict:
    flat = (str, int, float, bool, type(None))
    rows = value if isinstance(value, list) else None
    if rows and all(isinstance(r, dict) for r in rows):
        keys = list(rows[0])
        if all(list(r) == keys and all(isinstance(v, flat) for v in r.values()) for r in rows):
            return {"kind": "frame", "value": {k: [r[k] for r in rows] for k in keys}}
    return {"kind": "value", "value": value}


def _plain(value):
    """R's values as reticulate hands them over (numpy scalars and arrays) as JSON's."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist()) if value.size != 1 else _plain(value.item())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _calls_text(calls) -> str:
    return "; ".join(f"{c['name']}({c['arguments']})" for c in calls or [])


def _text(value, name) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidArgumentError(
            f"`{name}` must be a single non-empty string.", argument=name
        )
    return value


def _params(params: Optional[dict]) -> dict:
    params = dict(params or {})
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise errors.InvalidArgumentError(
            f"Unknown chat parameters: {', '.join(sorted(unknown))}; known: {', '.join(PARAMS)}.",
            argument="params",
        )
    for name in ("max_tokens", "seed"):
        v = params.get(name)
        if v is not None:
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if (
                not isinstance(v, int)
                or isinstance(v, bool)
                or v < (1 if name == "max_tokens" else 0)
                or (name == "seed" and v > SEED_MAX)
            ):
                low, high = (1, "") if name == "max_tokens" else (0, f" to {SEED_MAX}")
                raise errors.InvalidArgumentError(
                    f"`{name}` must be a whole number from {low}{high}.", argument=name
                )
            params[name] = v
    for name in ("temperature", "top_p"):
        v = params.get(name)
        if v is not None and (
            not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < math.inf
        ):
            raise errors.InvalidArgumentError(
                f"`{name}` must be a finite number >= 0.", argument=name
            )
    if params.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(params["tool_choice"])
    if params.get("stop") is not None:
        params["stop"] = _stop(params["stop"])
    return params


def _stop(value):
    """OpenAI's ``stop``: a non-empty string, or a list of them."""
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, (list, tuple))
        or not items
        or not all(isinstance(s, str) and s for s in items)
    ):
        raise errors.InvalidArgumentError(
            "`stop` must be a non-empty string or a vector of them.", argument="stop"
        )
    return value if isinstance(value, str) else list(items)


def _tool_choice(value):
    """OpenAI's ``tool_choice``; a string other than "auto", "none" and "required" names the
    tool that must be called."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str) and value and value not in TOOL_CHOICES:
        return {"type": "function", "function": {"name": value}}
    if isinstance(value, (str, dict)) and value:
        return value
    raise errors.InvalidArgumentError(
        '`tool_choice` must be "auto", "none", "required" or the name of a tool.',
        argument="tool_choice",
    )
