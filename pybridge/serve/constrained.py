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
    """(handler, body) for a chat request: ``chat`` itself when nothing is constrained."""
    try:
        constraint = structured.from_openai(
            body.get("response_format"), body.get("tools"), body.get("tool_choice")
        )
    except PybridgeError as e:
        raise ServeError(422, str(e)) from None
    rest = {k: v for k, v in body.items() if k not in CONSTRAINT_FIELDS}
    if body.get("tool_choice") == "none":
        rest.pop("tools", None)
    if constraint is None or chat is None:
        return chat, rest
    return ConstrainedChat(chat, registry, constraint), rest


class ConstrainedChat:
    """A chat handler for one constrained request."""

    def __init__(self, chat, registry, constraint):
        self.chat, self.registry, self.constraint = chat, registry, constraint

    async def handle_request(self, body: dict, request_id: str):
        from transformers.cli.serving.chat_completion import ChatCompletionHandler

        _, model, processor = self.registry.generation_model(body["model"])
        tokenizer = getattr(processor, "tokenizer", processor)
        if self.constraint.tools:
            _check_tool_call_format(tokenizer, model)
        try:
            logits = structured.logits_processor(
                tokenizer, self.constraint, model.generation_config.eos_token_id
            )
        except PybridgeError as e:
            raise ServeError(422, str(e)) from None
        handler = ChatCompletionHandler(
            model_manager=self.chat.model_manager,
            generation_state=_Sequential(self.chat.generation_state, logits),
            chat_template_kwargs=self.chat.chat_template_kwargs,
        )
        return await handler.handle_request(body, request_id)


def _check_tool_call_format(tokenizer, model) -> None:
    """A forced call is written as <tool_call>{"name", "arguments"}</tool_call>: only for models
    whose response template reads tool calls back in that form."""
    from transformers.cli.serving.utils import get_response_template

    template = get_response_template(tokenizer, model) or {}
    field = (template.get("fields") or {}).get("tool_calls") or {}
    opener = field.get("open") or field.get("open_pattern") or ""
    if not (
        "<tool_call>" in opener
        and field.get("close") == "</tool_call>"
        and field.get("content") == "json"
        and (field.get("transform") or {}).get("function") == "{content}"
    ):
        raise ServeError(
            422,
            "This model does not write tool calls as <tool_call>{json}</tool_call> (the Qwen and "
            'Hermes form), so a tool call cannot be forced: send tool_choice "auto".',
        )


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

        # GenerateManager hands its inputs to generate() as keyword arguments; a
        # GenerationConfig cannot carry a logits processor.
        return {**inputs, "logits_processor": LogitsProcessorList([self.logits])}
