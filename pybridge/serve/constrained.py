"""Chat requests whose answer is constrained: ``response_format`` (``json_schema``,
``json_object``) and a forced tool call (``tool_choice`` "required" or a named function).

transformers serve ignores both fields, and its continuous batching takes no per-request logits
processor. So such a request runs through a ChatCompletionHandler of its own on transformers
serve's sequential path (the model's GenerateManager: one inference thread per model), with
pybridge.structured's logits processor added. The answer, the stream and the tool calls (read by
transformers' response parser) have the shapes of every other chat answer. ``tool_choice``
"none" sends the request without its tools.
"""

from __future__ import annotations

from .. import structured
from ..errors import PybridgeError
from .guard import ServeError

CONSTRAINT_FIELDS = ("response_format", "tool_choice")


def chat_handler(chat, body: dict, registry):
    """(handler, body) for a chat request: ``chat`` itself when nothing is constrained and the
    request may share continuous batching (which is greedy: its sampling settings are fixed when
    its cache is made, so a request that samples runs on the sequential path)."""
    try:
        constraint = structured.from_openai(
            body.get("response_format"), body.get("tools"), body.get("tool_choice")
        )
    except PybridgeError as e:
        raise ServeError(422, str(e)) from None
    rest = {k: v for k, v in body.items() if k not in CONSTRAINT_FIELDS}
    if body.get("tool_choice") == "none":
        rest.pop("tools", None)
    if chat is None:
        return chat, rest
    if constraint is None:
        shared = registry.config.continuous_batching and _greedy(rest, registry)
        return (chat if shared else SequentialChat(chat)), rest
    return ConstrainedChat(chat, registry, constraint), rest


def _greedy(body: dict, registry) -> bool:
    """Whether the request decodes greedily: temperature 0, or none given for a model whose
    generation config does not sample; and no top_p or seed."""
    if body.get("top_p") not in (None, 1, 1.0) or body.get("seed") is not None:
        return False
    temperature = body.get("temperature")
    if temperature is None:
        _, model, _ = registry.generation_model(body.get("model"))
        return not model.generation_config.do_sample
    return temperature in (0, 0.0)


class SequentialChat:
    """A chat handler on transformers serve's sequential path, for a request that samples."""

    def __init__(self, chat):
        self.chat = chat

    async def handle_request(self, body: dict, request_id: str):
        return await sequential_handler(self.chat, None).handle_request(body, request_id)


def handler_class(kind="chat"):
    """transformers serve's handler of ``kind`` ("chat" or "completion"), sampling as OpenAI's API
    does: a temperature above 0 (or a top_p below 1) samples, whatever the model's generation
    config says (transformers serve only ever turns sampling off, for temperature 0). Its
    ``max_time``, the server's timeout, stops a generation that runs longer, freeing the model's
    inference thread (transformers serve has no limit of its own)."""
    if kind not in _handler_classes:
        if kind == "chat":
            from transformers.cli.serving.chat_completion import ChatCompletionHandler as base
        else:
            from transformers.cli.serving.completion import CompletionHandler as base

        class OpenAIHandler(base):
            max_time = None

            def _build_generation_config(self, body, model_generation_config, use_cb=False):
                config = super()._build_generation_config(body, model_generation_config, use_cb)
                if (body.get("temperature") or 0) > 0 or body.get("top_p") not in (None, 1):
                    config.do_sample = True
                if self.max_time is not None:
                    config.max_time = self.max_time
                return config

        if kind == "chat":

            class OpenAIHandler(OpenAIHandler):  # noqa: F811 - the chat one, with its own end
                async def _non_streaming(self, request_id, model, processor, model_id, inputs,
                                         gen_config, gen_manager, tools=None):  # fmt: skip
                    recorded = _Recorded(gen_manager)
                    try:
                        return await super()._non_streaming(
                            request_id, model, processor, model_id, inputs, gen_config,
                            gen_manager=recorded, tools=tools,
                        )  # fmt: skip
                    except ValueError:
                        if not recorded.hit(gen_config.max_new_tokens):
                            raise
                        return self._cut_short(request_id, model_id, recorded.result)

                def _cut_short(self, request_id, model_id, result):
                    """A tool call that max_tokens ended: transformers' parser refuses the
                    unfinished call; the answer is its text, cut short, with finish_reason
                    "length", as a response_format answer cut short is."""
                    from fastapi.responses import JSONResponse
                    from openai.types.completion_usage import CompletionUsage

                    content, input_len, ids = result
                    usage = CompletionUsage(
                        prompt_tokens=input_len,
                        completion_tokens=len(ids),
                        total_tokens=input_len + len(ids),
                    )
                    answer = self._build_completion(
                        request_id, content, model_id, finish_reason="length", usage=usage
                    )
                    return JSONResponse(answer, media_type="application/json")

        _handler_classes[kind] = OpenAIHandler
    return _handler_classes[kind]


_handler_classes = {}


class _Recorded:
    """A generation manager that keeps what its generate_non_streaming() returned."""

    def __init__(self, manager):
        self.manager, self.result = manager, None

    async def generate_non_streaming(self, *args, **kwargs):
        self.result = await self.manager.generate_non_streaming(*args, **kwargs)
        return self.result

    def hit(self, max_new_tokens) -> bool:
        return (
            self.result is not None
            and max_new_tokens is not None
            and (len(self.result[2]) >= max_new_tokens)
        )

    def __getattr__(self, name):
        return getattr(self.manager, name)


def sequential_handler(chat, logits):
    return handler_class()(
        model_manager=chat.model_manager,
        generation_state=_Sequential(chat.generation_state, logits),
        chat_template_kwargs=chat.chat_template_kwargs,
    )


class ConstrainedChat:
    """A chat handler for one constrained request."""

    def __init__(self, chat, registry, constraint):
        self.chat, self.registry, self.constraint = chat, registry, constraint

    async def handle_request(self, body: dict, request_id: str):
        _, model, processor = self.registry.generation_model(body["model"])
        tokenizer = getattr(processor, "tokenizer", processor)
        try:
            logits = structured.model_logits_processor(
                tokenizer, model, self.constraint, model.generation_config.eos_token_id
            )
        except PybridgeError as e:
            raise ServeError(422, str(e)) from None
        return await sequential_handler(self.chat, logits).handle_request(body, request_id)


class _Sequential:
    """transformers serve's GenerationState as one constrained request sees it: no continuous
    batching, and the model's sequential manager with the logits processor added."""

    def __init__(self, state, logits):
        self.state, self.logits = state, logits

    def use_continuous_batching(self, model, modality) -> bool:
        return False

    def get_manager(self, model_id: str, use_cb: bool = False):
        return _WithLogitsProcessor(self.state.get_manager(model_id, use_cb=False), self.logits)

    def __getattr__(self, name):
        return getattr(self.state, name)


class _WithLogitsProcessor:
    """A GenerateManager whose generate() calls also get the logits processor."""

    def __init__(self, manager, logits):
        self.manager, self.logits = manager, logits

    def init_cb(self, model, gen_config) -> None:
        pass

    def generate_streaming(self, model, processor, inputs, gen_config, **kwargs):
        return self.manager.generate_streaming(
            model, processor, self._inputs(inputs), gen_config, **kwargs
        )

    async def generate_non_streaming(self, model, processor, inputs, gen_config, **kwargs):
        return await self.manager.generate_non_streaming(
            model, processor, self._inputs(inputs), gen_config, **kwargs
        )

    def _inputs(self, inputs) -> dict:
        from transformers import LogitsProcessorList

        if self.logits is None:
            return inputs
        # GenerateManager hands its inputs to generate() as keyword arguments; a
        # GenerationConfig cannot carry a logits processor.
        return {**inputs, "logits_processor": LogitsProcessorList([self.logits])}
