"""Structured output for ``generate()``: an answer that is JSON of a given schema (or any JSON
object), or a tool call, enforced token by token with llguidance's grammar matcher.

:func:`from_openai` reads what an OpenAI chat request asks for (``response_format``, ``tools``,
``tool_choice``) into a :class:`Constraint`; :func:`logits_processor` turns a constraint into a
transformers ``LogitsProcessor`` for one tokenizer. A tool call is written the way Qwen's and
Hermes' chat templates write one (the form transformers' response parser reads back)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

JSON is written with the separators of Python's ``json.dumps`` and no other whitespace, so that
a model cannot spend its token budget on blank space. When the budget ends before the JSON
closes, the text is a prefix of valid JSON, not valid JSON.
"""

from __future__ import annotations

import functools
import json
import re
import weakref
from dataclasses import dataclass, field
from typing import Dict, Optional

from .errors import InvalidArgumentError, UnsupportedError

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>\n", "\n</tool_call>"
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
ANY_OBJECT = {"type": "object"}
NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}
# OpenAI's rule for response_format and function names.
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class Constraint:
    """What generation may write: a JSON answer of the schema ``answer`` (None: no answer), or
    one call of a tool in ``tools`` ({name: parameters schema}), or either."""

    answer: Optional[dict] = None
    tools: Dict[str, dict] = field(default_factory=dict)

    def grammar(self) -> str:
        """The constraint as a Lark grammar in llguidance's dialect."""
        rules, choices = [], []
        for i, (name, parameters) in enumerate(self.tools.items()):
            head = TOOL_CALL_OPEN + '{"name": ' + json.dumps(name) + ', "arguments": '
            choices.append(f"call_{i}")
            rules.append(
                f"call_{i}: {json.dumps(head)} args_{i} {json.dumps('}' + TOOL_CALL_CLOSE)}"
            )
            rules.append(f"args_{i}: %json {_styled(parameters)}")
        if self.answer is not None:
            choices.append("answer")
            rules.append(f"answer: %json {_styled(self.answer)}")
        if not choices:
            raise InvalidArgumentError("A constraint needs an answer schema or a tool.")
        return "\n".join([f"start: {' | '.join(choices)}", *rules])


def _styled(schema: dict) -> str:
    return json.dumps({**schema, "x-guidance": JSON_STYLE})


def _check(constraint: Constraint, ll_tokenizer) -> None:
    """Each schema on its own, so that the message names the one llguidance cannot enforce."""
    from llguidance import LLMatcher

    parts = [("The response_format schema", constraint.answer)]
    parts = parts if constraint.answer is not None else []
    parts += [(f"The parameters of tool {name!r}", p) for name, p in constraint.tools.items()]
    for what, schema in parts:
        grammar = LLMatcher.grammar_from_json_schema(_styled(schema))
        problem = LLMatcher.validate_grammar(grammar, ll_tokenizer)
        if problem:
            reason = problem.splitlines()[0].split("failed to compile JSON schema: ")[-1]
            raise UnsupportedError(f"{what} cannot be enforced: {reason}")


# ---- OpenAI's request fields ------------------------------------------------------------------


def from_openai(response_format=None, tools=None, tool_choice=None) -> Optional[Constraint]:
    """The constraint an OpenAI chat request asks for, or None when generation is free.

    ``tool_choice`` "required" (or a named function) forces a tool call; with "auto" (the
    default) a ``response_format`` answer may also be a call of one of ``tools``; "none" allows
    no call. Raises InvalidArgumentError on a field of the wrong shape."""
    answer = answer_schema(response_format)
    offered = tool_parameters(tools)
    forced = forced_tools(tool_choice, offered)
    if forced is not None:
        return Constraint(None, {name: offered[name] for name in forced})
    if answer is None:
        return None
    return Constraint(answer, {} if tool_choice == "none" else offered)


def answer_schema(response_format) -> Optional[dict]:
    """The JSON schema of an OpenAI ``response_format``; None for text. TGI's grammar shape,
    ``{"type": "json_object" or "json", "value": schema}``, is what huggingface_hub's
    InferenceClient sends for OpenAI's json_schema to a ``base_url``."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind in ("json_object", "json") and "value" in response_format:
        schema = response_format["value"]
        if not isinstance(schema, dict):
            raise InvalidArgumentError("`response_format.value` must be a JSON schema.")
        return schema
    if kind == "json_object":
        return dict(ANY_OBJECT)
    if kind != "json_schema":
        raise InvalidArgumentError(
            '`response_format` must be {"type": "text"}, {"type": "json_object"} or '
            '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}.'
        )
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidArgumentError("`response_format.json_schema` must be an object.")
    if not isinstance(spec.get("name"), str) or not NAME.fullmatch(spec["name"]):
        raise InvalidArgumentError(
            "`response_format.json_schema.name` must be 1 to 64 letters, digits, _ or -."
        )
    if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
        raise InvalidArgumentError("`response_format.json_schema.strict` must be true or false.")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidArgumentError("`response_format.json_schema.schema` must be a JSON schema.")
    return schema


def tool_parameters(tools) -> Dict[str, dict]:
    """{name: parameters schema} of OpenAI ``tools``."""
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise InvalidArgumentError("`tools` must be a list of functions.")
    out = {}
    for i, tool in enumerate(tools):
        is_function = isinstance(tool, dict) and tool.get("type", "function") == "function"
        function = tool.get("function") if is_function else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidArgumentError(
                f'`tools[{i}]` must be {{"type": "function", "function": {{"name": ..., '
                '"parameters": {...}}}.'
            )
        parameters = function.get("parameters", NO_PARAMETERS)
        if not isinstance(parameters, dict):
            raise InvalidArgumentError(f"`tools[{i}].function.parameters` must be a JSON schema.")
        out[function["name"]] = parameters
    return out


def forced_tools(tool_choice, tools: Dict[str, dict]) -> Optional[list]:
    """The names of the tools one of which must be called; None when no call is forced."""
    if tool_choice is None or tool_choice in ("auto", "none"):
        return None
    if tool_choice == "required":
        name = None
    elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
    else:
        raise InvalidArgumentError(
            '`tool_choice` must be "none", "auto", "required" or '
            '{"type": "function", "function": {"name": ...}}.'
        )
    if not tools:
        raise InvalidArgumentError("`tool_choice` forces a tool call, but `tools` is empty.")
    if name is None and tool_choice != "required":
        raise InvalidArgumentError("`tool_choice.function.name` must name one of `tools`.")
    if name is not None and name not in tools:
        raise InvalidArgumentError(
            f"`tool_choice` names {name!r}, which is not one of `tools` ({', '.join(tools)})."
        )
    return [name] if name is not None else list(tools)


def model_logits_processor(tokenizer, model, constraint: Constraint, eos_token_id=None):
    """:func:`logits_processor` for ``model``, refused (UnsupportedError) when the constraint
    allows a tool call that the model's response template would not read back."""
    if constraint.tools:
        _check_tool_call_format(tokenizer, model)
    return logits_processor(tokenizer, constraint, eos_token_id)


def tool_call_field(tokenizer, model) -> dict:
    """How the model's response template (transformers serve's) reads tool calls back: its
    ``tool_calls`` field (open, close, content, ...), or {} when it reads none."""
    from transformers.cli.serving.utils import get_response_template

    template = get_response_template(tokenizer, model) or {}
    return (template.get("fields") or {}).get("tool_calls") or {}


def _check_tool_call_format(tokenizer, model) -> None:
    """A forced call is written as <tool_call>{"name", "arguments"}</tool_call>: only for models
    whose response template reads tool calls back in that form."""
    field = tool_call_field(tokenizer, model)
    opener = field.get("open") or field.get("open_pattern") or ""
    if not (
        "<tool_call>" in opener
        and field.get("close") == "</tool_call>"
        and field.get("content") == "json"
        and (field.get("transform") or {}).get("function") == "{content}"
    ):
        raise UnsupportedError(
            "This model does not write tool calls as <tool_call>{json}</tool_call> (the Qwen and "
            'Hermes form), so a tool call cannot be forced: use tool_choice "auto".'
        )


# ---- the logits processor ---------------------------------------------------------------------

_TOKENIZERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _ll_tokenizer(tokenizer, eos_token_id):
    """llguidance's view of a fast tokenizer (about a second for a large vocabulary: cached)."""
    import llguidance.hf

    eos = tuple(eos_token_id) if isinstance(eos_token_id, (list, tuple)) else (eos_token_id,)
    eos = tuple(e for e in eos if e is not None) or (tokenizer.eos_token_id,)
    cached = _TOKENIZERS.setdefault(tokenizer, {})
    if eos not in cached:
        cached[eos] = llguidance.hf.from_tokenizer(tokenizer, eos_token=list(eos))
    return cached[eos]


def logits_processor(tokenizer, constraint: Constraint, eos_token_id=None):
    """A transformers LogitsProcessor that lets ``generate()`` write only what ``constraint``
    allows, then one of the end tokens (``eos_token_id``: an id or a list, by default the
    tokenizer's). Raises UnsupportedError for a schema llguidance cannot enforce."""
    import llguidance

    ll_tokenizer = _ll_tokenizer(tokenizer, eos_token_id)
    _check(constraint, ll_tokenizer)
    grammar = llguidance.LLMatcher.grammar_from_lark(constraint.grammar())
    return _processor_class()(llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0))


@functools.lru_cache(maxsize=None)
def _processor_class():
    from transformers import LogitsProcessor

    class GrammarLogitsProcessor(LogitsProcessor):
        """One matcher per row of the batch; each step feeds it the last token and masks out
        every token the grammar does not allow next. Meant for one ``generate()`` call."""

        def __init__(self, matcher):
            self.matcher, self.rows = matcher, None

        def __call__(self, input_ids, scores):
            import torch

            if self.rows is None:  # the first step: input_ids is the prompt
                self.rows = [self.matcher.deep_copy() for _ in range(input_ids.shape[0])]
            else:
                for row, token in zip(self.rows, input_ids[:, -1].tolist()):
                    if not row.is_stopped():  # a finished row is fed padding
                        row.consume_token(token)
            allowed = torch.stack([_allowed(row, scores.shape[-1]) for row in self.rows])
            return scores.masked_fill(~allowed.to(scores.device), float("-inf"))

    return GrammarLogitsProcessor


def _allowed(matcher, width: int):
    import numpy as np
    import torch

    if matcher.is_error():
        raise RuntimeError(f"Constrained generation failed: {matcher.get_error()}")
    bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), np.uint8), bitorder="little")
    allowed = np.zeros(width, dtype=bool)
    n = min(width, bits.size)
    allowed[:n] = bits[:n].astype(bool)
    return torch.from_numpy(allowed)
