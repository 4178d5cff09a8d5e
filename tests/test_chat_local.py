"""pybridge.chat's Chat on a model run in this process (R's ``hf_chat(model)``): the tiny chat
fixture (hfbridge-tiny/chat) and the GPT-2 fixture given a chat template, through transformers.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from pybridge import chat, errors, models
from pybridge.fixtures import task_models

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folders():
    return task_models.ensure(names=["chat", "gpt2"])


@pytest.fixture
def chat_folder(folders, one_torch_thread):
    return folders["chat"]


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
