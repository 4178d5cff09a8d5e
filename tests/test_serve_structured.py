"""Structured output and forced tool calls in the local server (response_format json_schema and
json_object, tool_choice), with the real openai client and the bodies ellmer sends. Every answer
is compared with the same constrained greedy generate() run in this process (pybridge.structured
over the same model), read back by transformers serve's own response parser.
"""

from __future__ import annotations

import json

import httpx2 as httpx
import pytest
from test_serve import Server

from pybridge import structured
from pybridge.errors import InvalidArgumentError, UnsupportedError
from pybridge.fixtures import task_models

MESSAGES = [{"role": "user", "content": "The food was excellent."}]
REVIEW = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "spoiled": {"type": "boolean"},
    },
    "required": ["sentiment", "stars", "spoiled"],
    "additionalProperties": False,
}
STRICT = {
    "type": "json_schema",
    "json_schema": {"name": "review", "schema": REVIEW, "strict": True},
}
NOTE = {  # a short free string, which the prompt shapes
    "type": "json_schema",
    "json_schema": {
        "name": "note",
        "schema": {
            "type": "object",
            "properties": {"note": {"type": "string", "maxLength": 12}},
            "required": ["note"],
            "additionalProperties": False,
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
DICE = {
    "type": "function",
    "function": {
        "name": "roll_dice",
        "parameters": {
            "type": "object",
            "properties": {"sides": {"type": "integer", "minimum": 2, "maximum": 9}},
            "required": ["sides"],
            "additionalProperties": False,
        },
    },
}


def check_against(schema: dict, value) -> None:
    """The schema's rules that the schemas here use (jsonschema is not a dependency): types,
    enum, integer bounds, maxLength, required keys, no additional keys."""
    kinds = {"object": dict, "string": str, "integer": int, "boolean": bool}
    assert isinstance(value, kinds[schema["type"]]), (schema, value)
    if schema["type"] == "string":
        assert len(value) <= schema.get("maxLength", len(value))
    if schema["type"] == "integer":
        assert not isinstance(value, bool)
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value)
    if "enum" in schema:
        assert value in schema["enum"]
    if schema["type"] == "object":
        assert set(schema.get("required", [])) <= set(value)
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(schema["properties"])
        for key, item in value.items():
            check_against(schema["properties"][key], item)


@pytest.fixture(scope="module")
def chat_folder():
    return task_models.ensure(names=["chat"])["chat"]


@pytest.fixture(scope="module")
def served(chat_folder, tmp_path_factory):
    """Continuous batching on, as by default; no test here sends an unconstrained chat, so its
    cache (sized from the machine's free memory) is never allocated."""
    log = tmp_path_factory.mktemp("structured-log") / "serve.log"
    server = Server(["--model", f"chat={chat_folder}", "--max-tokens", "128"], log=log)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(served):
    from openai import OpenAI

    return OpenAI(base_url=served.url + "/v1", api_key="unused")


@pytest.fixture(scope="module")
def reference(chat_folder):
    """(content, tool calls, new tokens) of a greedy generate() in process under the constraint
    of an OpenAI request, read back as transformers serve reads a reply."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.cli.serving.utils import parse_assistant_message

    tok = AutoTokenizer.from_pretrained(chat_folder)
    model = AutoModelForCausalLM.from_pretrained(chat_folder)

    def reply(max_new_tokens=128, tools=None, **request):
        constraint = structured.from_openai(tools=tools, **request)
        ids = tok.apply_chat_template(
            MESSAGES, tools=tools, add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        processors = []
        if constraint is not None:
            eos = model.generation_config.eos_token_id
            processors = [structured.logits_processor(tok, constraint, eos)]
        with torch.inference_mode():
            out = model.generate(
                ids, max_new_tokens=max_new_tokens, do_sample=False, logits_processor=processors
            )
        new = out[0, ids.shape[1] :].tolist()
        text = tok.decode(new, skip_special_tokens=True)
        content, _, calls = parse_assistant_message(tok, model, new, ids, text, tools=tools)
        return content, calls, len(new)

    return reply


# ---- response_format ----------------------------------------------------------------------------


def test_json_schema_strict_answer_validates_and_equals_generate(client, reference, chat_folder):
    out = client.chat.completions.create(
        model=chat_folder, messages=MESSAGES, response_format=STRICT, temperature=0
    )
    choice = out.choices[0]
    check_against(REVIEW, json.loads(choice.message.content))
    text, _, n_out = reference(response_format=STRICT)
    assert choice.message.content == text
    assert choice.finish_reason == "stop" and out.usage.completion_tokens == n_out
    assert out.model == chat_folder and choice.message.tool_calls is None


def test_json_schema_stream_joins_to_the_same_answer_and_ends_with_done(served, client, reference):
    chunks = list(
        client.chat.completions.create(
            model="tgi",
            messages=MESSAGES,
            response_format=STRICT,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    text, _, n_out = reference(response_format=STRICT)
    assert joined == text
    check_against(REVIEW, json.loads(joined))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == n_out
    body = {"messages": MESSAGES, "response_format": STRICT, "stream": True}
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, timeout=60) as r:
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and not any('"usage"' in e for e in events)


def test_inference_client_json_schema_arrives_as_tgi_grammar_and_is_enforced(served, reference):
    from huggingface_hub import InferenceClient

    # InferenceClient(base_url=) sends OpenAI's json_schema as {"type": "json_object", "value"}
    out = InferenceClient(base_url=served.url + "/v1").chat_completion(
        MESSAGES, model="tgi", response_format=STRICT, temperature=0
    )
    content = out.choices[0].message.content
    check_against(REVIEW, json.loads(content))
    assert content == reference(response_format=STRICT)[0]


def test_json_object_answer_is_a_json_object(client, reference):
    out = client.chat.completions.create(
        model="tgi", messages=MESSAGES, response_format={"type": "json_object"}, temperature=0
    )
    content = out.choices[0].message.content
    assert isinstance(json.loads(content), dict)
    assert content == reference(response_format={"type": "json_object"})[0]


def test_a_budget_that_ends_inside_the_json_is_length(client, reference):
    whole, _, n_out = reference(response_format=STRICT)
    out = client.chat.completions.create(
        model="tgi", messages=MESSAGES, response_format=STRICT, temperature=0, max_tokens=n_out // 2
    )
    choice = out.choices[0]
    assert choice.finish_reason == "length" and out.usage.completion_tokens == n_out // 2
    assert whole.startswith(choice.message.content) and choice.message.content != whole
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content)


@pytest.mark.parametrize(
    "extra, says",
    [
        ({"response_format": "json"}, "`response_format` must be"),
        ({"response_format": {"type": "xml"}}, "`response_format` must be"),
        ({"response_format": {"type": "json_schema"}}, "`response_format.json_schema`"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": REVIEW}}}, "name"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": 3}}},
            "must be a JSON schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": 1}}},
            "strict",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "r", "schema": {"not": {"type": "string"}}},
                }
            },
            "cannot be enforced",
        ),
        ({"tools": [WEATHER], "tool_choice": "always"}, "`tool_choice` must be"),
        ({"tool_choice": "required"}, "`tools` is empty"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "not one of `tools` (get_weather)",
        ),
        ({"tools": [{"type": "function"}], "tool_choice": "required"}, "`tools[0]` must be"),
    ],
)
def test_malformed_constraints_get_422_in_the_error_shape(served, extra, says):
    r = httpx.post(served.url + "/v1/chat/completions", json={"messages": MESSAGES, **extra})
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == "validation"
    assert says in body["error"]


@pytest.mark.parametrize(
    "route, body",
    [
        ("/embed", {"inputs": "hello"}),
        ("/v1/embeddings", {"input": "hello"}),
        ("/predict", {"inputs": "hello"}),
        ("/rerank", {"query": "q", "texts": ["a"]}),
        ("/", {"inputs": {"source_sentence": "a", "sentences": ["b"]}}),
    ],
)
def test_a_task_no_served_model_runs_is_a_404_naming_the_served_ones(
    served, chat_folder, route, body
):
    r = httpx.post(served.url + route, json=body, timeout=60)
    assert r.status_code == 404, r.text
    assert r.json()["error_type"] == "not_found"
    assert f"{chat_folder} (chat)" in r.json()["error"]


# ---- tools --------------------------------------------------------------------------------------


def test_tool_choice_required_answers_a_parsed_tool_call(client, reference):
    out = client.chat.completions.create(
        model="tgi", messages=MESSAGES, tools=[WEATHER], tool_choice="required", temperature=0
    )
    choice = out.choices[0]
    call = choice.message.tool_calls[0]
    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
    assert call.type == "function" and call.function.name == "get_weather"
    check_against(WEATHER["function"]["parameters"], json.loads(call.function.arguments))
    _, calls, n_out = reference(tools=[WEATHER], tool_choice="required")
    assert [(c.name, c.arguments) for c in calls] == [(call.function.name, call.function.arguments)]
    assert out.usage.completion_tokens == n_out


def test_a_forced_tool_call_that_max_tokens_cuts_ends_with_length(client, reference):
    """As a response_format answer cut short: the text so far and finish_reason "length", not a
    424 from transformers' parser, which refuses the unfinished call."""
    _, calls, n_out = reference(tools=[WEATHER], tool_choice="required")
    assert calls  # the whole budget gives a parsed call
    for stream in (False, True):
        out = client.chat.completions.create(
            model="tgi",
            messages=MESSAGES,
            tools=[WEATHER],
            tool_choice="required",
            temperature=0,
            max_tokens=n_out // 2,
            stream=stream,
        )
        if stream:
            chunks = [c for c in out if c.choices]
            assert not any(c.choices[0].delta.tool_calls for c in chunks)
            assert chunks[-1].choices[0].finish_reason == "length"
            continue
        choice = out.choices[0]
        assert choice.finish_reason == "length" and choice.message.tool_calls is None
        assert choice.message.content.startswith("<tool_call>")
        assert out.usage.completion_tokens == n_out // 2


def test_a_named_tool_choice_calls_that_tool_streaming_too(client, reference):
    named = {"type": "function", "function": {"name": "roll_dice"}}
    tools = [WEATHER, DICE]
    chunks = list(
        client.chat.completions.create(
            model="tgi",
            messages=MESSAGES,
            tools=tools,
            tool_choice=named,
            temperature=0,
            stream=True,
        )
    )
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert [t.function.name for t in calls] == ["roll_dice"]
    check_against(DICE["function"]["parameters"], json.loads(calls[0].function.arguments))
    _, expected, _ = reference(tools=tools, tool_choice=named)
    assert calls[0].function.arguments == expected[0].arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_choice_none_sends_no_tools_and_auto_with_a_schema_allows_either(client, reference):
    out = client.chat.completions.create(
        model="tgi",
        messages=MESSAGES,
        tools=[WEATHER],
        tool_choice="none",
        response_format=NOTE,
        temperature=0,
    )
    assert out.choices[0].message.tool_calls is None
    check_against(NOTE["json_schema"]["schema"], json.loads(out.choices[0].message.content))
    assert out.choices[0].message.content == reference(response_format=NOTE)[0]  # no tools
    assert out.choices[0].message.content != reference(tools=[WEATHER], response_format=NOTE)[0]
    out = client.chat.completions.create(
        model="tgi", messages=MESSAGES, tools=[WEATHER], response_format=STRICT, temperature=0
    )
    content, calls, _ = reference(tools=[WEATHER], response_format=STRICT)
    message = out.choices[0].message
    assert message.content == content
    got = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    assert got == [(c.name, c.arguments) for c in calls or []]


def test_a_local_chat_forces_and_reads_tool_calls_as_the_server_does(chat_folder, reference):
    """pybridge.chat's local backend (R's hf_chat(model)): the same constrained greedy reply as
    the reference, read back into the same calls; the answer to the tools' results is the
    model's own, and a call cut short by max_tokens stays text."""
    from pybridge import chat

    named = {"type": "function", "function": {"name": "roll_dice"}}
    cases = [
        ("required", "required", [WEATHER]),
        (named, named, [WEATHER, DICE]),
        ("roll_dice", named, [WEATHER, DICE]),  # a tool's name, as R gives it
    ]
    for ours, theirs, tools in cases:
        local = chat.Chat([{"local": True, "model": chat_folder}], params={"max_tokens": 128})
        out = local.send(MESSAGES[0]["content"], tools=tools, params={"tool_choice": ours})
        _, calls, n_out = reference(tools=tools, tool_choice=theirs)
        assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [
            (c.name, c.arguments) for c in calls
        ]
        assert out["finish_reason"] == "tool_calls" and out["completion_tokens"] == n_out
    call = out["tool_calls"][0]
    local.add_tool_result(call["id"], call["name"], {"rolled": 4})
    answer = local.send(None, tools=tools)
    assert answer["tool_calls"] == [] and answer["finish_reason"] in ("stop", "length")
    assert [t["role"] for t in local.turns] == ["user", "assistant", "tool", "assistant"]
    cut = chat.Chat([{"local": True, "model": chat_folder}], params={"max_tokens": 24})
    out = cut.send(MESSAGES[0]["content"], tools=[WEATHER], params={"tool_choice": "required"})
    assert out["tool_calls"] == [] and out["finish_reason"] == "length"
    assert out["text"].startswith("<tool_call>")


def test_a_streamed_chat_reads_tool_calls_locally_and_from_the_server(
    chat_folder, served, reference
):
    """A stream offers the tools too: the local model's forced call, read by transformers
    serve's streaming parser, is the constrained greedy reference's, and none of its text
    reaches the chunks; the server streams its call as tool-call deltas, which come back
    joined. The answer to the results streams as text."""
    from pybridge import chat

    named = {"type": "function", "function": {"name": "roll_dice"}}
    content, expected, _ = reference(tools=[WEATHER, DICE], tool_choice=named)
    local = chat.Chat([{"local": True, "model": chat_folder}], params={"max_tokens": 128})
    remote = chat.Chat([{"url": served.url + "/v1"}], model=chat_folder, params={"max_tokens": 128})
    for c in (local, remote):
        stream = c.stream(
            MESSAGES[0]["content"], tools=[WEATHER, DICE], params={"tool_choice": "roll_dice"}
        )
        chunks = list(iter(stream.next_chunk, None))
        calls = stream.record()["tool_calls"]
        assert [(x["name"], x["arguments"]) for x in calls] == [
            (x.name, x.arguments) for x in expected
        ]
        assert calls[0]["id"] and "".join(chunks) == (content or "")
        assert not any("tool_call" in chunk or "roll_dice" in chunk for chunk in chunks)
        c.add_tool_result(calls[0]["id"], calls[0]["name"], {"rolled": 4})
        answer = c.stream(None, tools=[WEATHER, DICE])
        text = "".join(iter(answer.next_chunk, None))
        assert answer.record()["tool_calls"] == [] and text == c.turns[-1]["content"]
        assert [t["role"] for t in c.turns] == ["user", "assistant", "tool", "assistant"]
        assert c.turns[1]["tool_calls"] == calls


def test_a_chat_refuses_a_tool_choice_that_cannot_apply(chat_folder, monkeypatch):
    from pybridge import chat

    local = chat.Chat([{"local": True, "model": chat_folder}], params={"max_tokens": 4})
    for choice, says in [
        ("required", "`tools` is empty"),
        ("get_time", "not one of `tools`"),
        (3, "`tool_choice` must be"),
    ]:
        tools = None if choice == "required" else [WEATHER]
        with pytest.raises(InvalidArgumentError, match=says):
            local.send("Hello", tools=tools, params={"tool_choice": choice})
    # a model whose response template reads calls in another form (say, Mistral's [TOOL_CALLS])
    tok = local.backends[0].engine().tokenizer
    other = {"fields": {"tool_calls": {"open": "[TOOL_CALLS]", "content": "json"}}}
    monkeypatch.setattr(tok, "response_template", other, raising=False)
    with pytest.raises(UnsupportedError, match="cannot be forced"):
        local.send("Hello", tools=[WEATHER], params={"tool_choice": "required"})
    assert local.turns == []  # a refused turn leaves no trace


# ---- ellmer -------------------------------------------------------------------------------------


def test_the_body_ellmer_sends_for_structured_output(served, reference, chat_folder):
    """ellmer's chat_openai()$chat_structured(): content parts, max_completion_tokens,
    stream_options.include_usage and a strict json_schema named structured_data."""
    schema = {
        "type": "object",
        "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["sentiment"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "structured_data", "schema": schema, "strict": True},
    }
    body = {
        "model": chat_folder,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": MESSAGES[0]["content"]}]}
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 64,
        "response_format": response_format,
    }
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        events = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    check_against(schema, json.loads(content))
    text, _, n_out = reference(max_new_tokens=64, response_format=response_format)
    assert content == text
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == n_out
    assert all(c["model"] == chat_folder for c in chunks)


# ---- pybridge.structured on its own -------------------------------------------------------------


def test_the_constraint_of_a_request_and_its_classed_errors(chat_folder):
    from transformers import AutoTokenizer

    assert structured.from_openai({"type": "text"}, [WEATHER], "auto") is None
    forced = structured.from_openai(STRICT, [WEATHER, DICE], "required")
    assert forced.answer is None and list(forced.tools) == ["get_weather", "roll_dice"]
    either = structured.from_openai(STRICT, [WEATHER])
    assert either.answer == REVIEW and list(either.tools) == ["get_weather"]
    assert structured.from_openai(STRICT, [WEATHER], "none").tools == {}
    with pytest.raises(InvalidArgumentError) as err:
        structured.from_openai({"type": "json_schema", "json_schema": []})
    assert err.value.code == "invalid_argument"
    tok = AutoTokenizer.from_pretrained(chat_folder)
    bad = structured.Constraint(None, {"f": {"type": "object", "patternProperties": 1}})
    with pytest.raises(UnsupportedError, match="parameters of tool 'f'"):
        structured.logits_processor(tok, bad)


def test_a_batch_is_constrained_row_by_row_as_each_alone(chat_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(chat_folder)
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True)
        for m in ("The food was excellent.", "Hello!")
    ]
    prompts = [tok.decode(p["input_ids"] if hasattr(p, "keys") else p) for p in prompts]

    def answers(texts):
        enc = tok(texts, return_tensors="pt", padding=True)
        processor = structured.logits_processor(tok, structured.Constraint(REVIEW))
        out = model.generate(
            **enc, max_new_tokens=64, do_sample=False, logits_processor=[processor]
        )
        return [
            tok.decode(row[enc["input_ids"].shape[1] :], skip_special_tokens=True) for row in out
        ]

    both = answers(prompts)
    assert both == answers(prompts[:1]) + answers(prompts[1:])
    for text in both:
        check_against(REVIEW, json.loads(text))
