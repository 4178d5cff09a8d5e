"""pybridge.chat's Chat on a model run in this process (R's ``hf_chat(model)``): the tiny chat
fixture (hfbridge-tiny/chat) and the GPT-2 fixture given a chat template, through transformers.
"""

from __future__ import annotations

import gc
import shutil
import weakref

import pytest

from pybridge import chat, errors, generation, models
from pybridge.fixtures import task_models

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folders():
    return task_models.ensure(names=["chat", "gpt2"])


@pytest.fixture
def chat_folder(folders, one_torch_thread):
    return folders["chat"]


@pytest.fixture(scope="module")
def gpt2_chat_folder(folders, tmp_path_factory):
    """The GPT-2 fixture (128 positions, learned) with a plain chat template."""
    folder = tmp_path_factory.mktemp("gpt2chat") / "gpt2chat"
    shutil.copytree(folders["gpt2"], folder)
    (folder / "chat_template.jinja").write_text(
        "{%- for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{ 'assistant:' }}{%- endif %}"
    )
    return str(folder)


def local_chat(folder, **params) -> chat.Chat:
    return chat.Chat([{"local": True, "model": folder}], params=params or None)


def test_the_chat_model_is_in_the_model_cache_and_freed_with_it(chat_folder):
    """pipeline_cache_info() lists a local chat's model and pipeline_cache_clear() frees it, even
    while the chat lives on; its next turn loads the model again."""
    models.cache_clear()
    talk = local_chat(chat_folder, max_tokens=2)
    talk.send("Hi")
    info = models.cache_info()
    assert (info["kind"], info["model"]) == (["pipeline:text-generation"], [chat_folder])
    assert info["hits"][0] >= 1  # the turn reused the model the chat loaded
    loaded = weakref.ref(talk.backends[0].engine().model)
    assert models.cache_clear() == 1
    gc.collect()
    assert loaded() is None  # nothing else holds the model
    assert talk.send("Again")["text"] is not None
    assert models.cache_info()["model"] == [chat_folder]


def test_a_structured_reply_cut_short_leaves_the_turns_as_they_were(chat_folder):
    talk = local_chat(chat_folder, max_tokens=3)
    talk.send("Hi")
    before = talk.turn_columns()["content"]
    schema = {
        "type": "object",
        "properties": {"stars": {"type": "integer"}},
        "required": ["stars"],
    }
    with pytest.raises(errors.ValidationError, match="not JSON"):
        talk.structured("Rate the food from 1 to 5.", schema)
    assert talk.turn_columns()["content"] == before


def test_a_conversation_past_gpt2s_positions_is_refused_as_a_text_is(gpt2_chat_folder):
    """generate() on a GPT-2 prompt past n_positions fails with "index out of range in self":
    a chat turn, a stream and pipeline()'s conversation are refused before, naming the longest
    message, and the refused turn is not kept."""
    positions = transformers.AutoConfig.from_pretrained(gpt2_chat_folder).n_positions
    talk = local_chat(gpt2_chat_folder, max_tokens=20)
    talk.send("Hello")
    kept = talk.turn_columns()["content"]
    long = "word " * positions
    with pytest.raises(errors.InvalidArgumentError, match="longest message is message 3, user"):
        talk.send(long)
    stream = talk.stream(long)
    with pytest.raises(errors.InvalidArgumentError, match=f"more than the {positions} tokens"):
        stream.next_chunk()
    assert talk.turn_columns()["content"] == kept
    messages = [{"role": "system", "content": long}, {"role": "user", "content": "Hi"}]
    with pytest.raises(errors.InvalidArgumentError, match="message 1, system") as refused:
        generation.pipeline_reply("text-generation", messages, gpt2_chat_folder, args={})
    assert refused.value.fields["position"] == 1
    # a prompt that fits with its new tokens still runs; one token more does not
    short = [{"role": "user", "content": "Hi"}]
    tok = transformers.AutoTokenizer.from_pretrained(gpt2_chat_folder)
    prompt = len(tok.apply_chat_template(short, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ])  # fmt: skip
    room = positions - prompt
    fits = {"max_new_tokens": room, "min_new_tokens": room, "do_sample": False}
    out = generation.pipeline_reply("text-generation", short, gpt2_chat_folder, args=fits)
    assert out["completion_tokens"][0] == room  # every position is used
    over = {**fits, "max_new_tokens": room + 1}
    with pytest.raises(errors.InvalidArgumentError, match="max_new_tokens = "):
        generation.pipeline_reply("text-generation", short, gpt2_chat_folder, args=over)


def test_a_rotary_model_runs_past_its_trained_positions_as_in_transformers(chat_folder):
    """Documented choice: rotary positions take any length (transformers only warns), so a
    conversation past max_position_embeddings is answered; the memory guard alone bounds it
    (test_pipeline.py's test_a_text_whose_attention_cannot_fit...)."""
    config = transformers.AutoConfig.from_pretrained(chat_folder)
    assert getattr(config, "n_positions", None) is None
    talk = local_chat(chat_folder, max_tokens=2)
    reply = talk.send("word " * config.max_position_embeddings)
    assert reply["prompt_tokens"] > config.max_position_embeddings
    assert 1 <= reply["completion_tokens"] <= 2
