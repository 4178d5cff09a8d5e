"""tests/fault_server.py against the real clients: openai's and huggingface_hub's
InferenceClient must read its answers, and its faults, as they read a real server's."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

TEXT = "hello from the fault server"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def openai_client(server, **kw):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-fault", max_retries=0, **kw)


def hf_client(server, **kw):
    return InferenceClient(base_url=server.url, api_key="hf-fault", **kw)


def test_openai_streams_the_reply_to_a_clean_end(fault_server):
    stream = openai_client(fault_server).chat.completions.create(
        model="my-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(content) == TEXT
    assert content[1:] == ["hello", " from", " the", " fault", " server"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert {c.model for c in chunks} == {"my-model"}


def test_the_stream_ends_with_exactly_done(fault_server):
    fault_server.script([{"kind": "ok", "text": "one two"}])
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx2.stream("POST", fault_server.url + "/v1/chat/completions", json=body) as answer:
        raw = answer.read().decode()
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-2]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 3
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "one", " two"]
    assert "usage" not in chunks[-1]  # only when stream_options.include_usage asks for it


def test_inference_client_streams_the_reply_to_a_clean_end(fault_server):
    fault_server.script([{"kind": "ok", "text": "streamed by the fault server"}])
    client = hf_client(fault_server)  # the stream closes when its client is collected
    chunks = list(client.chat_completion(MESSAGES, model="m", stream=True))
    assert "".join(c.choices[0].delta.content for c in chunks) == "streamed by the fault server"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert fault_server.requests()[0]["path"] == "/v1/chat/completions"


def test_non_streaming_chat_answers_with_usage_in_both_clients(fault_server):
    reply = openai_client(fault_server).chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == TEXT
    assert reply.usage.prompt_tokens == 6 and reply.usage.completion_tokens == 5
    out = hf_client(fault_server).chat_completion(MESSAGES, model="m")
    assert out.choices[0].message.content == TEXT and out.model == "m"


def test_429_with_retry_after_reaches_both_clients(fault_server):
    action = {"kind": "status", "status": 429, "retry_after": 1, "message": "slow down"}
    fault_server.script([action, action])
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client(fault_server).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.response.headers["retry-after"] == "1"
    assert raised.value.body == {
        "message": "slow down",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(HfHubHTTPError) as raised:
        hf_client(fault_server).chat_completion(MESSAGES, model="m", stream=True)
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["retry-after"] == "1"
    assert "slow down" in str(raised.value)


@pytest.mark.parametrize(
    "status, error",
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (422, openai.UnprocessableEntityError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_any_status_is_the_clients_error_for_it(fault_server, status, error):
    fault_server.script(
        [{"kind": "status", "status": status}, {"kind": "status", "status": status}]
    )
    with pytest.raises(error) as raised:
        openai_client(fault_server).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == status
    assert "retry-after" not in raised.value.response.headers
    with pytest.raises(HfHubHTTPError) as raised:
        hf_client(fault_server).chat_completion(MESSAGES, model="m")
    assert raised.value.response.status_code == status


def test_openai_honours_retry_after_and_the_queue_then_answers(fault_server):
    fault_server.script([{"kind": "status", "status": 503, "retry_after": 0}])
    client = openai_client(fault_server).with_options(max_retries=1)
    reply = client.chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == TEXT
    assert [r["path"] for r in fault_server.requests()] == ["/v1/chat/completions"] * 2


def test_context_length_is_openais_400(fault_server):
    fault_server.script([{"kind": "context_length"}])
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(fault_server).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.code == "context_length_exceeded"
    assert "maximum context length is 32 tokens" in raised.value.message


def test_a_dropped_stream_is_an_incomplete_stream_in_openai(fault_server):
    fault_server.script([{"kind": "drop", "after": 2}])
    stream = openai_client(fault_server).chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    )
    seen = []
    with pytest.raises(openai.APIConnectionError) as raised:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["", "hello", " from"]
    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    assert "incomplete chunked read" in str(raised.value.__cause__)


def test_a_dropped_stream_is_an_incomplete_stream_in_inference_client(fault_server):
    fault_server.script([{"kind": "drop", "after": 3, "text": "a b c d e"}])
    client, seen = hf_client(fault_server), []
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in client.chat_completion(MESSAGES, model="m", stream=True):
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["", "a", " b", " c"]


def test_a_dropped_request_gets_no_answer_and_the_server_goes_on(fault_server):
    fault_server.script([{"kind": "drop"}, {"kind": "drop"}])
    with pytest.raises(openai.APIConnectionError) as raised:
        openai_client(fault_server).chat.completions.create(model="m", messages=MESSAGES)
    assert "without sending a response" in str(raised.value.__cause__)
    with pytest.raises(httpx2.RemoteProtocolError, match="without sending a response"):
        hf_client(fault_server).text_generation("hi")
    assert hf_client(fault_server).text_generation("hi") == TEXT


def test_tool_calls_parse_in_openai(fault_server):
    action = {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}
    fault_server.script([action, action])
    client = openai_client(fault_server)
    reply = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    stream = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, stream=True)
    calls, finish = {}, None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            entry["id"] = entry["id"] or delta.id
            entry["name"] = entry["name"] or delta.function.name
            entry["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


def test_requests_are_recorded_with_their_headers_and_bodies(fault_server):
    hf_client(fault_server, headers={"X-Extra": "1"}).chat_completion(MESSAGES, model="m")
    InferenceClient(base_url=fault_server.url, api_key="x").text_generation("Once")
    openai_client(fault_server).models.list()
    record = fault_server.requests()
    assert [(r["method"], r["path"]) for r in record] == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/"),
        ("GET", "/v1/models"),
    ]
    assert record[0]["headers"]["authorization"] == "Bearer hf-fault"
    assert record[0]["headers"]["x-extra"] == "1"
    assert record[0]["body"]["messages"] == MESSAGES and record[0]["body"]["model"] == "m"
    assert record[1]["headers"]["authorization"] == "Bearer x"
    assert record[1]["body"]["inputs"] == "Once"
    assert record[2]["headers"]["authorization"] == "Bearer sk-fault"
    assert record[2]["body"] is None


def test_models_pops_no_action_and_reset_clears_the_script(fault_server):
    fault_server.script([{"kind": "status", "status": 503}])
    assert [m.id for m in openai_client(fault_server).models.list()] == ["fault-model"]
    with pytest.raises(openai.InternalServerError):
        openai_client(fault_server).completions.create(model="m", prompt="hi")
    fault_server.script([{"kind": "status", "status": 503}])
    fault_server.reset()
    assert fault_server.requests() == []
    reply = openai_client(fault_server).completions.create(model="m", prompt="hi")
    assert reply.choices[0].text == TEXT


def test_a_bad_script_is_refused(fault_server):
    answer = httpx2.post(fault_server.url + "/_script", json={"actions": [{"kind": "explode"}]})
    assert answer.status_code == 422
    assert "kind is one of" in answer.json()["error"]["message"]
    assert httpx2.post(fault_server.url + "/_script", json=[]).status_code == 422
    assert fault_server.requests() == []


def test_embeddings_are_deterministic_vectors_of_four(fault_server):
    client = openai_client(fault_server)
    first = client.embeddings.create(model="m", input=["a", "b", "a"]).data
    again = client.embeddings.create(model="m", input="b").data
    assert [len(d.embedding) for d in first] == [4, 4, 4]
    assert first[0].embedding == first[2].embedding != first[1].embedding
    assert again[0].embedding == first[1].embedding


def test_a_scripted_json_answer_is_what_the_client_reads(fault_server):
    fault_server.script([{"kind": "ok", "json": [[0.5, -0.25, 1.0]]}])
    vectors = hf_client(fault_server).feature_extraction("hi")
    assert vectors.tolist() == [[0.5, -0.25, 1.0]]
    assert fault_server.requests()[0]["path"] == "/"


def test_slow_answers_time_out_in_both_clients_and_answer_when_waited_for(fault_server):
    fault_server.script([{"kind": "slow", "seconds": 2}, {"kind": "slow", "seconds": 2}])
    with pytest.raises(openai.APITimeoutError):
        openai_client(fault_server, timeout=0.2).chat.completions.create(
            model="m", messages=MESSAGES
        )
    with pytest.raises(InferenceTimeoutError):
        hf_client(fault_server, timeout=0.2).chat_completion(MESSAGES, model="m")
    fault_server.script([{"kind": "slow", "seconds": 0.2, "text": "late"}])
    assert (
        hf_client(fault_server).chat_completion(MESSAGES, model="m").choices[0].message.content
        == "late"
    )


def test_the_path_without_v1_is_served_too(fault_server):
    client = openai.OpenAI(base_url=fault_server.url, api_key="k", max_retries=0)
    reply = client.chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == TEXT
    assert fault_server.requests()[0]["path"] == "/chat/completions"


def test_a_slow_stream_sends_its_headers_then_times_out_before_the_first_chunk(fault_server):
    """InferenceClient's call returns once the headers are in: the timeout comes while reading,
    as httpx2's ReadTimeout, not as its InferenceTimeoutError."""
    fault_server.script([{"kind": "slow", "seconds": 1}, {"kind": "slow", "seconds": 1}])
    with pytest.raises(openai.APITimeoutError):
        list(
            openai_client(fault_server, timeout=0.2).chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            )
        )
    client = hf_client(fault_server, timeout=0.2)
    stream = client.chat_completion(MESSAGES, model="m", stream=True)
    with pytest.raises(httpx2.ReadTimeout):
        next(stream)
