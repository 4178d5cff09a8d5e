"""Chat and task verbs on remote endpoints (pybridge.chat, pybridge.inference), over real HTTP:
the failover chain against tests/fault_server.py (429 with Retry-After, 503, refused
connections, slow answers, streams dropped mid-way, tool calls), and the HF token's scope,
read from the headers that server records. The results against hfbridge's own server are
compared with huggingface_hub's InferenceClient and with the in-process models in
test_serve_clients.py."""

from __future__ import annotations

import pytest

from pybridge import chat, errors, inference

REFUSED = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
HF_TOKEN = "hf_faketokenfaketoken1234"


def link(url, **kw):
    return {"url": url, "retries": 0, **kw}


def a_chat(*links, **kw):
    return chat.Chat(list(links), model="fault-model", **kw)


def chat_posts(fault_server):
    return [r for r in fault_server.requests() if r["path"].endswith("/chat/completions")]


def test_reply_records_endpoint_tries_and_tokens(fault_server):
    fault_server.script([{"kind": "ok", "text": "fine thanks"}])
    c = a_chat(link(fault_server.url + "/v1"), system_prompt="Be brief.", params={"max_tokens": 9})
    reply = c.send("How are you?")
    assert reply["text"] == "fine thanks"
    assert (reply["endpoint"], reply["tries"]) == (fault_server.url + "/v1", 1)
    assert reply["completion_tokens"] > 0
    body = chat_posts(fault_server)[0]["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How are you?"},
    ]
    assert body["max_tokens"] == 9 and body["model"] == "fault-model"
    turns = c.turn_columns()
    assert turns["role"] == ["user", "assistant"]
    assert turns["content"] == ["How are you?", "fine thanks"]


def test_429_is_retried_after_retry_after_then_answers(fault_server):
    fault_server.script([{"kind": "status", "status": 429, "retry_after": 1}, {"kind": "ok"}])
    c = a_chat(link(fault_server.url + "/v1", retries=2))
    reply = c.send("hi")
    assert reply["tries"] == 2
    assert len(chat_posts(fault_server)) == 2


def test_rate_limit_after_the_tries_is_classed_with_the_delay(fault_server):
    fault_server.script([{"kind": "status", "status": 429, "retry_after": 0}] * 3)
    c = a_chat(link(fault_server.url + "/v1", retries=1))
    with pytest.raises(errors.RateLimitError) as caught:
        c.send("hi")
    assert caught.value.fields["retry_after"] == 0
    assert len(chat_posts(fault_server)) == 2
    assert c.turn_columns()["role"] == []  # a failed request leaves the turns as they were


def test_503_and_refused_fail_over_to_the_next_endpoint(fault_server):
    fault_server.script([{"kind": "status", "status": 503}, {"kind": "ok", "text": "second"}])
    first = link(fault_server.url + "/v1")
    second = link(fault_server.url + "/v1/", model="other")
    c = a_chat(link(REFUSED), first, second)
    reply = c.send("hi")
    assert reply["text"] == "second" and reply["tries"] == 3
    assert reply["endpoint"] == fault_server.url + "/v1"  # the second URL, without its slash
    assert [p["body"]["model"] for p in chat_posts(fault_server)] == ["fault-model", "other"]


@pytest.mark.parametrize(
    "status, error",
    [(400, errors.ValidationError), (401, errors.AuthError), (403, errors.AuthError),
     (422, errors.ValidationError)],
)  # fmt: skip
def test_client_errors_never_fail_over(fault_server, status, error):
    fault_server.script([{"kind": "status", "status": status, "message": "no"}, {"kind": "ok"}])
    c = a_chat(link(fault_server.url + "/v1", retries=2), link(fault_server.url + "/v1"))
    with pytest.raises(error):
        c.send("hi")
    assert len(chat_posts(fault_server)) == 1


def test_context_length_is_its_own_error(fault_server):
    fault_server.script([{"kind": "context_length"}])
    with pytest.raises(errors.ContextLengthError, match="maximum context length"):
        a_chat(link(fault_server.url + "/v1")).send("a very long prompt")


def test_every_endpoint_failing_lists_each_error(fault_server):
    fault_server.script([{"kind": "status", "status": 503}])
    c = a_chat(link(REFUSED), link(fault_server.url + "/v1"))
    with pytest.raises(errors.UnreachableError) as caught:
        c.send("hi")
    found = caught.value.fields["errors"]
    assert len(found) == 2
    assert "Connection refused" in found[0] or "ConnectError" in found[0]
    assert "503" in found[1]


def test_a_slow_endpoint_times_out_and_the_next_answers(fault_server):
    fault_server.script([{"kind": "slow", "seconds": 3}, {"kind": "ok", "text": "quick"}])
    c = a_chat(link(fault_server.url + "/v1", timeout=0.5), link(fault_server.url + "/v1"))
    assert c.send("hi")["text"] == "quick"


def test_a_stream_fails_over_before_its_first_chunk(fault_server):
    fault_server.script([{"kind": "status", "status": 503}, {"kind": "ok", "text": "a b c"}])
    c = a_chat(link(fault_server.url + "/v1"), link(fault_server.url + "/v1/"))
    s = c.stream("hi")
    chunks = list(iter(s.next_chunk, None))
    assert "".join(chunks) == "a b c" and len(chunks) == 3
    assert s.record()["tries"] == 2
    assert c.turn_columns()["content"] == ["hi", "a b c"]
    assert c.turn_columns()["tokens_out"][1] > 0  # the usage chunk (include_usage) was read


def test_a_stream_never_switches_after_its_first_chunk(fault_server):
    fault_server.script([{"kind": "drop", "after": 2, "text": "one two three four"}])
    c = a_chat(link(fault_server.url + "/v1"), link(fault_server.url + "/v1/"))
    s = c.stream("hi")
    assert s.next_chunk() and s.next_chunk()
    with pytest.raises(errors.NetworkError, match="broke after 2 chunks"):
        s.next_chunk()
    assert len(chat_posts(fault_server)) == 1
    assert c.turn_columns()["role"] == []


def test_tool_calls_come_back_and_their_results_are_sent(fault_server):
    fault_server.script(
        [
            {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"kind": "ok", "text": "It is sunny in Paris."},
        ]
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    c = a_chat(link(fault_server.url + "/v1"))
    first = c.send("Weather in Paris?", tools=tools)
    (call,) = first["tool_calls"]
    assert call["name"] == "get_weather"
    assert chat.tool_arguments(call["arguments"]) == {"city": "Paris"}
    c.add_tool_result(call["id"], call["name"], {"forecast": "sunny"})
    assert c.send(None, tools=tools)["text"] == "It is sunny in Paris."
    sent = chat_posts(fault_server)[1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {
        "role": "tool",
        "content": '{"forecast": "sunny"}',
        "tool_call_id": call["id"],
        "name": "get_weather",
    }


def test_stop_must_be_non_empty_strings():
    for stop in ("", [], ["x", ""], [1]):
        with pytest.raises(errors.InvalidArgumentError, match="`stop` must"):
            a_chat(link(REFUSED), params={"stop": stop})
    assert a_chat(link(REFUSED), params={"stop": ("x", "y")}).params["stop"] == ["x", "y"]


def test_a_tool_result_json_cannot_hold_is_refused_and_a_failed_request_rolls_back():
    c = a_chat(link(REFUSED))
    c.turns.append({"role": "user", "content": "Weather?"})
    for bad in (float("nan"), {"when": object()}, [1j]):
        with pytest.raises(errors.InvalidArgumentError, match="'get_weather' cannot be sent"):
            c.add_tool_result("call_1", "get_weather", bad)
    assert c.turn_count() == 1
    c.add_tool_result("call_1", "get_weather", [{"day": 1, "sky": None}])
    assert c.turns[-1]["content"] == '[{"day": 1, "sky": null}]'
    c.rollback(1)
    assert c.turn_count() == 1


def test_structured_reply_is_parsed_and_tables_become_columns(fault_server):
    rows = '[{"name": "a", "n": 1}, {"name": "b", "n": 2}]'
    fault_server.script([{"kind": "ok", "text": rows}, {"kind": "ok", "text": "not json"}])
    schema = {"type": "array", "items": {"type": "object"}}
    c = a_chat(link(fault_server.url + "/v1"))
    assert c.structured("list two", schema) == {
        "kind": "frame",
        "value": {"name": ["a", "b"], "n": [1, 2]},
    }
    # InferenceClient(base_url=) sends TGI's grammar shape for OpenAI's json_schema
    fmt = chat_posts(fault_server)[0]["body"]["response_format"]
    assert fmt == {"type": "json_object", "value": schema}
    with pytest.raises(errors.ValidationError, match="not JSON"):
        c.structured("again", schema)
    assert c.turn_columns()["content"] == ["list two", rows]  # the failed turn is not kept


# ---- keys: the HF token goes only to Hugging Face hosts ---------------------------------------


def auth_headers(fault_server):
    return [r["headers"].get("authorization") for r in fault_server.requests()]


def test_hf_token_never_reaches_another_host(fault_server):
    env = {"HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": "https://huggingface.co"}
    fault_server.script([{"kind": "ok"}, {"kind": "ok"}])
    a_chat(link(fault_server.url + "/v1"), env=env).send("hi")
    inference.infer("text-generation", ["x"], [link(fault_server.url)], env=env)
    assert auth_headers(fault_server) == [None, None]


def test_a_hub_on_the_same_host_does_not_vouch_for_another_port(fault_server):
    host = fault_server.url.rsplit(":", 1)[0]
    env = {"HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": f"{host}:1"}  # the Hub: same host, other port
    a_chat(link(fault_server.url + "/v1"), env=env).send("hi")
    assert auth_headers(fault_server) == [None]


def test_an_endpoint_gets_its_own_key(fault_server):
    env = {"HF_TOKEN": HF_TOKEN}
    a_chat(link(fault_server.url + "/v1", api_key="endpoint-key"), env=env).send("hi")
    assert auth_headers(fault_server) == ["Bearer endpoint-key"]


def test_the_hub_hf_endpoint_names_gets_the_token(fault_server):
    env = {"HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": fault_server.url}
    a_chat(link(fault_server.url + "/v1"), env=env).send("hi")
    assert auth_headers(fault_server) == [f"Bearer {HF_TOKEN}"]


def test_no_message_shows_a_key(fault_server):
    fault_server.script([{"kind": "status", "status": 401, "message": "bad key endpoint-key"}])
    c = a_chat(link(fault_server.url + "/v1", api_key="endpoint-key"))
    with pytest.raises(errors.AuthError) as caught:
        c.send("hi")
    assert "endpoint-key" not in str(caught.value)
    assert "its own api_key" in str(caught.value)
    assert "endpoint-key" not in repr(inference.endpoint({"url": "http://x", "api_key": "k"}))


# ---- task verbs ---------------------------------------------------------------------------------


def test_task_verbs_read_the_shapes_of_tgi_and_tei(fault_server):
    fault_server.script(
        [
            {"kind": "ok", "json": [[{"label": "POSITIVE", "score": 0.9},
                                     {"label": "NEGATIVE", "score": 0.1}]]},
            {"kind": "ok", "json": [[0.5, 0.25], [1.0, 2.0]]},
            {"kind": "ok", "json": [{"entity_group": "PER", "score": 0.8, "word": "Ada",
                                     "start": 0, "end": 3}]},
            {"kind": "ok", "json": [{"label": "sport", "score": 0.7},
                                    {"label": "food", "score": 0.3}]},
        ]
    )  # fmt: skip
    url = [link(fault_server.url)]
    cols, record = inference.infer("text-classification", ["good"], url)
    assert cols["label"] == ["POSITIVE"] and list(cols["score"]) == [0.9]
    assert record["endpoint"] == fault_server.url and record["tries"] == 1
    matrix, _ = inference.infer("feature-extraction", ["a", "b"], url)
    assert matrix.tolist() == [[0.5, 0.25], [1.0, 2.0]]
    cols, _ = inference.infer("token-classification", ["Ada codes"], url)
    assert (cols["entity_group"], cols["word"], list(cols["start"]), list(cols["end"])) == (
        ["PER"],
        ["Ada"],
        [1],
        [3],
    )
    cols, _ = inference.infer(
        "zero-shot-classification", ["goal!"], url, args={"candidate_labels": ["sport", "food"]}
    )
    assert cols["label"] == ["sport", "food"]
    bodies = [r["body"] for r in fault_server.requests()]
    assert bodies[3]["parameters"]["candidate_labels"] == ["sport", "food"]


def test_pipeline_arguments_take_inference_client_names_or_are_refused_before_a_request(
    fault_server,
):
    """The local pipeline()'s arguments reach InferenceClient under its names (stop_sequence is
    stop, truncation is truncate); those no remote API honours, and unknown ones, are refused
    before anything is sent, instead of InferenceClient's TypeError."""
    fault_server.script(
        [{"kind": "ok", "json": [{"generated_text": "th"}]}, {"kind": "ok", "json": [[0.5, 1.0]]}]
    )
    url = [link(fault_server.url)]
    args = {"stop_sequence": "e", "num_return_sequences": 1.0, "max_new_tokens": 5.0}
    cols, _ = inference.infer("text-generation", ["Once"], url, args=args)
    assert cols["generated_text"] == ["th"]
    inference.infer("feature-extraction", ["a"], url, args={"truncation": True})
    sent = [r["body"] for r in fault_server.requests()]
    assert sent[0]["parameters"] == {"stop": ["e"], "max_new_tokens": 5}
    assert sent[1]["truncate"] is True
    refused = [
        ("text-generation", {"num_return_sequences": 2.0}, errors.UnsupportedError, "one text"),
        ("text-generation", {"num_beams": 2}, errors.UnsupportedError, "no parameter for"),
        ("text-generation", {"stream": True}, errors.InvalidArgumentError, "no argument"),
        ("text-classification", {"normalize": True}, errors.InvalidArgumentError, "normalize"),
        ("image-to-text", {"max_new_tokens": 3}, errors.UnsupportedError, "image_to_text"),
    ]
    for task, args, error, match in refused:
        with pytest.raises(error, match=match):
            inference.infer(task, ["input.png"], url, args=args)
    assert len(fault_server.requests()) == 2  # nothing more was sent


def test_bad_task_and_inputs_are_classed():
    with pytest.raises(errors.UnsupportedError):
        inference.infer("summarization", ["x"], [link(REFUSED)])
    with pytest.raises(errors.InvalidArgumentError):
        inference.infer("text-generation", [], [link(REFUSED)])
    with pytest.raises(errors.InvalidArgumentError):
        inference.endpoint({"url": "ftp://x"})
    with pytest.raises(errors.InvalidArgumentError):
        inference.endpoint({"url": "http://x", "provider": "auto"})
    for provider in ("é", "a\nb", "../../etc/passwd"):
        with pytest.raises(errors.InvalidArgumentError, match="together"):
            inference.endpoint({"provider": provider})
    assert inference.endpoint({"provider": "together"}).provider == "together"


def test_image_and_audio_tasks_read_inference_client_shapes(fault_server, tmp_path):
    from PIL import Image

    image, audio = tmp_path / "a.png", tmp_path / "a.wav"
    Image.new("RGB", (4, 3), (200, 10, 10)).save(image)
    audio.write_bytes(b"RIFF not really")
    fault_server.script(
        [
            {"kind": "ok", "json": [{"label": "cat", "score": 0.25},
                                    {"label": "dog", "score": 0.75}]},
            {"kind": "ok", "json": [{"label": "car", "score": 0.5, "box": {
                "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}}]},
            {"kind": "ok", "json": [{"generated_text": "a red square"}]},
            {"kind": "ok", "json": {"text": "hello world"}},
        ]
    )  # fmt: skip
    url = [link(fault_server.url)]
    cols, _ = inference.infer("image-classification", [str(image)], url)
    assert (cols["image"], cols["label"], list(cols["score"])) == (
        [str(image)] * 2,
        ["dog", "cat"],
        [0.75, 0.25],
    )
    cols, _ = inference.infer("object-detection", [str(image)], url)
    assert [cols[k][0] for k in ("label", "xmin", "ymin", "xmax", "ymax")] == ["car", 1, 2, 30, 40]
    cols, _ = inference.infer("image-to-text", [str(image)], url)
    assert cols["generated_text"] == ["a red square"]
    cols, _ = inference.infer("automatic-speech-recognition", [str(audio)], url)
    assert (list(cols["audio_id"]), cols["text"]) == ([1], ["hello world"])
    sent = [r for r in fault_server.requests() if r["method"] == "POST"]
    assert len(sent) == 4 and sent[0]["body"] is None  # the file's bytes, not JSON
    with pytest.raises(errors.InvalidArgumentError, match="does not exist"):
        inference.infer("image-classification", [str(tmp_path / "missing.png")], url)


def test_image_inputs_are_read_and_checked_here_as_the_local_pipeline_reads_them(
    fault_server, mirror, publish, tmp_path
):
    """A page or file that is not an image is invalid_file, and an image URL that fails is
    that URL's network error: none reaches the endpoint, whose chain would blame itself."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (4, 3), (10, 200, 10)).save(folder / "green.png")
    (folder / "page.png").write_text("<html>not an image</html>")
    publish("remote/images", folder, repo_type="dataset")
    base = f"{mirror.url}/datasets/remote/images/resolve/main"
    fault_server.script([{"kind": "ok", "json": [{"label": "green", "score": 1.0}]}])
    url = [link(fault_server.url)]
    cols, _ = inference.infer("image-classification", [f"{base}/green.png"], url)
    assert cols["label"] == ["green"]
    with pytest.raises(errors.InvalidFileError) as err:
        inference.infer("image-classification", [f"{base}/page.png"], url)
    assert err.value.fields["position"] == 1
    with pytest.raises(errors.InvalidFileError):
        inference.infer("image-classification", [str(folder / "page.png")], url)
    with pytest.raises(errors.NetworkError) as err:
        inference.infer("image-classification", [f"{base}/missing.png"], url)
    assert err.value.fields["url"] == f"{base}/missing.png"
    posts = [r for r in fault_server.requests() if r["method"] == "POST"]
    assert len(posts) == 1  # only the good image reached the endpoint


def test_an_hfbridge_server_without_a_model_for_the_task_is_left_for_the_next(
    fault_server, tmp_path
):
    """Its root answers with the first model it serves, whatever the task: a task it does not
    serve is unsupported there, and the chain moves on."""
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (4, 3)).save(image)
    server = link(fault_server.url + "/v1", served={"minilm": "feature-extraction"})
    with pytest.raises(errors.UnsupportedError, match="serves no model for image-classification"):
        inference.infer("image-classification", [str(image)], [server])
    assert fault_server.requests() == []
    fault_server.script([{"kind": "ok", "json": [{"label": "cat", "score": 1.0}]}])
    cols, record = inference.infer(
        "image-classification", [str(image)], [server, link(fault_server.url)]
    )
    assert cols["label"] == ["cat"] and record["endpoint"] == fault_server.url
