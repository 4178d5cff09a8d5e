"""Local chat generation (pybridge.generation) against transformers' own generate() and
text-generation pipeline on the tiny chat fixture (hfbridge-tiny/chat)."""

from __future__ import annotations

import pytest

from pybridge import errors, generation
from pybridge.fixtures import task_models

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What do you think?"},
]
OTHER = [{"role": "user", "content": "Tell me something."}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def folder():
    return task_models.ensure(names=["chat"])["chat"]


@pytest.fixture(scope="module")
def chat(folder, one_torch_thread):
    return generation.LocalChat(folder)


@pytest.fixture(scope="module")
def ref(folder, one_torch_thread):
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    return tok, model


def generate(ref, messages, tools=None, seed=None, logits_processor=None, **settings):
    """transformers' generate() on the chat template's prompt: (new ids, reply text, prompt)."""
    tok, model = ref
    enc = tok.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    if seed is not None:
        transformers.set_seed(seed)
    if logits_processor is not None:
        settings["logits_processor"] = transformers.LogitsProcessorList(logits_processor)
    out = model.generate(**enc, **settings)
    prompt = enc["input_ids"].shape[1]
    new = out[0, prompt:].tolist()
    return new, tok.decode(new, skip_special_tokens=True), prompt


@pytest.mark.parametrize("messages", [MESSAGES, OTHER], ids=["system", "user"])
@pytest.mark.parametrize("tools", [None, [TOOL]], ids=["plain", "tools"])
def test_greedy_reply_equals_generate(chat, ref, messages, tools):
    new, text, prompt = generate(ref, messages, tools, max_new_tokens=40, do_sample=False)
    out = chat.reply(messages, max_new_tokens=40, tools=tools)
    assert out == {
        "text": text,
        "prompt_tokens": prompt,
        "completion_tokens": len(new),
        "finish_reason": "stop",
    }
    assert text.strip() and new[-1] == ref[0].eos_token_id  # it ended its turn


def test_length_limit(chat, ref):
    new, text, _ = generate(ref, MESSAGES, max_new_tokens=4, do_sample=False)
    out = chat.reply(MESSAGES, max_new_tokens=4)
    assert (out["text"], out["completion_tokens"], out["finish_reason"]) == (text, 4, "length")


@pytest.mark.parametrize("seed", [1, 7])
def test_seeded_sampling_is_reproducible_and_equals_generate(chat, ref, seed):
    settings = dict(max_new_tokens=30, do_sample=True, temperature=1.4, top_p=0.95)
    new, text, _ = generate(ref, MESSAGES, seed=seed, **settings)
    first = chat.reply(MESSAGES, max_new_tokens=30, temperature=1.4, top_p=0.95, seed=seed)
    chat.reply(OTHER, max_new_tokens=30, temperature=1.4, seed=seed + 100)  # moves torch's RNG
    again = chat.reply(MESSAGES, max_new_tokens=30, temperature=1.4, top_p=0.95, seed=seed)
    assert first == again
    assert (first["text"], first["completion_tokens"]) == (text, len(new))


def test_generate_kwargs_win_and_are_checked(chat, ref):
    new, text, _ = generate(ref, OTHER, max_new_tokens=20, do_sample=False, repetition_penalty=1.5)
    out = chat.reply(OTHER, max_new_tokens=20, generate_kwargs={"repetition_penalty": 1.5})
    assert (out["text"], out["completion_tokens"]) == (text, len(new))
    with pytest.raises(errors.InvalidArgumentError, match="not a generate"):
        chat.reply(OTHER, generate_kwargs={"temprature": 1})
    with pytest.raises(errors.InvalidArgumentError, match="top_k must be a whole number"):
        chat.reply(OTHER, generate_kwargs={"top_k": -1})


def test_logits_processor_reaches_generate(chat, ref):
    class Only(transformers.LogitsProcessor):
        def __init__(self, token_id):
            self.token_id = token_id

        def __call__(self, input_ids, scores):
            out = torch.full_like(scores, float("-inf"))
            out[:, self.token_id] = 0
            return out

    a = ref[0].convert_tokens_to_ids("A")
    new, text, _ = generate(ref, OTHER, logits_processor=[Only(a)], max_new_tokens=5)
    out = chat.reply(OTHER, max_new_tokens=5, logits_processor=[Only(a)])
    assert out["text"] == text == "AAAAA" and out["finish_reason"] == "length"


def test_stop_strings_end_the_reply_and_are_left_out(chat):
    whole = chat.reply(MESSAGES, max_new_tokens=40)
    full = whole["text"]
    words = full.split()
    assert len(words) >= 3, full
    stop = " " + words[2]  # a word inside the greedy reply (the tiny model's own words)
    out = chat.reply(MESSAGES, max_new_tokens=40, stop=[stop, "zzz"])
    assert out["text"] == full[: full.index(stop)] and out["finish_reason"] == "stop"
    assert out["completion_tokens"] < whole["completion_tokens"]


@pytest.mark.parametrize(
    "settings",
    [
        dict(max_new_tokens=40),
        dict(max_new_tokens=30, temperature=1.4, seed=3),
        dict(max_new_tokens=40, stop=" Berlin"),
        dict(max_new_tokens=6),
    ],
    ids=["greedy", "sampled", "stop", "length"],
)
def test_stream_chunks_join_to_the_reply(chat, settings):
    want = chat.reply(MESSAGES, **settings)
    stream = chat.stream(MESSAGES, **settings)
    assert stream.result is None
    chunks = list(stream)
    assert len(chunks) > 1 and all(isinstance(c, str) and c for c in chunks)
    assert "".join(chunks) == want["text"]
    assert stream.result == want
    assert list(stream) == []  # finished


def test_closing_a_stream_stops_generation(chat):
    settings = dict(max_new_tokens=200, generate_kwargs={"min_new_tokens": 200})
    stream = chat.stream(MESSAGES, **settings)
    first = next(stream)
    stream.close()
    assert not stream._thread.is_alive()
    assert stream.result["finish_reason"] == "cancelled"
    assert 0 < stream.result["completion_tokens"] < 200
    assert stream.result["text"].startswith(first)
    assert list(stream) == []
    stream.close()  # again: nothing happens
    # the model is free again
    assert chat.reply(OTHER, max_new_tokens=3)["completion_tokens"] == 3


def test_a_dropped_stream_stops_generating(chat):
    import gc

    stream = chat.stream(MESSAGES, max_new_tokens=200, generate_kwargs={"min_new_tokens": 200})
    next(stream)
    thread, outcome = stream._thread, stream._outcome
    del stream
    gc.collect()
    thread.join()
    assert len(outcome.new) < 200


def test_with_block_closes(chat):
    with chat.stream(MESSAGES, max_new_tokens=200, generate_kwargs={"min_new_tokens": 200}) as s:
        next(s)
    assert s.result["finish_reason"] == "cancelled" and not s._thread.is_alive()


def test_arguments_are_checked_before_generating(chat):
    for kwargs, match in [
        (dict(temperature=-1), "temperature must be a number >= 0"),
        (dict(top_p=0), "top_p must be a number > 0"),
        (dict(max_new_tokens=0), "max_new_tokens must be a whole number >= 1"),
        (dict(seed=-1), "seed must be a whole number >= 0"),
        (dict(stop=""), "stop must be a non-empty string"),
        (dict(logits_processor="x"), "logits_processor must be a list"),
    ]:
        with pytest.raises(errors.InvalidArgumentError, match=match):
            chat.reply(MESSAGES, **kwargs)
        with pytest.raises(errors.InvalidArgumentError, match=match):
            chat.stream(MESSAGES, **kwargs)
    with pytest.raises(errors.InvalidArgumentError, match="Message 1 has no role"):
        chat.stream([{"content": "Hi"}])


def test_a_model_without_template(one_torch_thread):
    gpt2 = task_models.ensure(names=["gpt2"])["gpt2"]
    with pytest.raises(errors.NoChatTemplateError, match="has no chat template"):
        generation.LocalChat(gpt2).reply(MESSAGES)


# ---------------------------------------------------------------------------------------------
# pipeline("text-generation") on messages


def test_pipeline_reply_equals_transformers_pipeline(folder, one_torch_thread):
    """The pipeline's own defaults too: without do_sample it samples (temperature 0.7)."""
    pipe = transformers.pipeline("text-generation", model=folder)
    for seed, args in [(5, {}), (6, {"top_k": 30}), (7, {"do_sample": False})]:
        transformers.set_seed(seed)
        want = pipe(MESSAGES, max_new_tokens=40, **args)[0]["generated_text"][-1]
        out = generation.pipeline_reply(
            "text-generation", MESSAGES, folder, args={"max_new_tokens": 40, "seed": seed, **args}
        )
        assert want["role"] == "assistant"
        assert out["generated_text"] == [want["content"]]
    assert out["finish_reason"] == ["stop"]
    assert out["prompt_tokens"].dtype.name == "int32" and out["prompt_tokens"].tolist() == [53]
    greedy = generation.LocalChat(folder).reply(MESSAGES)
    assert out["generated_text"] == [greedy["text"]]
    assert out["completion_tokens"].tolist() == [greedy["completion_tokens"]]


def test_pipeline_reply_with_several_sequences_equals_transformers_pipeline(folder, ref):
    """num_return_sequences gives a row per reply, as transformers' pipeline gives one per
    sequence (one generate() call: the same seed gives the same replies), each counted up to its
    own end; return_full_text = FALSE is the reply, as here."""
    pipe = transformers.pipeline("text-generation", model=folder)
    args = {"max_new_tokens": 12, "num_return_sequences": 3, "seed": 8}
    transformers.set_seed(8)
    want = pipe(MESSAGES, max_new_tokens=12, num_return_sequences=3, return_full_text=False)
    out = generation.pipeline_reply(
        "text-generation", MESSAGES, folder, args={**args, "return_full_text": False}
    )
    assert out["generated_text"] == [w["generated_text"] for w in want]
    tok = ref[0]
    for text, n, finish in zip(
        out["generated_text"], out["completion_tokens"].tolist(), out["finish_reason"]
    ):
        assert n == len(tok(text, add_special_tokens=False)["input_ids"]) + (finish == "stop")
    assert set(out["finish_reason"]) <= {"stop", "length"}
    with pytest.raises(errors.InvalidArgumentError, match="return_full_text must be FALSE"):
        generation.pipeline_reply(
            "text-generation", MESSAGES, folder, args={"return_full_text": True}
        )


def test_pipeline_reply_refuses_prompt_arguments(folder):
    with pytest.raises(errors.InvalidArgumentError, match="has no argument 'prefix'"):
        generation.pipeline_reply("text-generation", MESSAGES, folder, args={"prefix": "x"})
    with pytest.raises(errors.InvalidArgumentError, match="tools must be tool definitions"):
        generation.pipeline_reply("text-generation", MESSAGES, folder, args={"tools": [1]})
    with pytest.raises(errors.UnsupportedError, match="Only text-generation takes messages"):
        generation.pipeline_reply("fill-mask", MESSAGES, folder)


def test_pipeline_reply_from_the_hub(folder, publish, hf_env, one_torch_thread):
    publish("hfbridge-test-generation/chat", folder)
    out = generation.pipeline_reply(
        "text-generation",
        OTHER,
        "hfbridge-test-generation/chat",
        args={"max_new_tokens": 40, "tools": [TOOL], "do_sample": False},
        env=hf_env,
    )
    local = generation.LocalChat(folder).reply(OTHER, max_new_tokens=40, tools=[TOOL])
    assert out["generated_text"] == [local["text"]]
    assert out["completion_tokens"].tolist() == [local["completion_tokens"]]
