"""Chat templates on a tokenizer handle (pybridge.tokenizer.apply_chat_template), compared with
transformers' AutoTokenizer.apply_chat_template on the tiny chat fixture (hfbridge-tiny/chat)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pybridge import errors
from pybridge import tokenizer as T
from pybridge.fixtures import task_models

transformers = pytest.importorskip("transformers")

REPO = "hfbridge-test-chat/chat"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What do you think?"},
]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_TURNS = MESSAGES + [
    {
        "role": "assistant",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
        ],
    },
    {"role": "tool", "content": "sunny"},
]


@pytest.fixture(scope="module")
def folder():
    return task_models.ensure(names=["chat"])["chat"]


@pytest.fixture(scope="module")
def reference(folder):
    return transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture
def hub_tok(folder, publish, hf_env):
    publish(REPO, folder)
    return T.from_pretrained(REPO, env=hf_env)


def _config_template_folder(folder, tmp_path) -> Path:
    """The fixture with its template in tokenizer_config.json (as transformers 4 saved it)."""
    out = tmp_path / "config-template"
    shutil.copytree(folder, out)
    template = (out / "chat_template.jinja").read_text()
    (out / "chat_template.jinja").unlink()
    config = json.loads((out / "tokenizer_config.json").read_text())
    (out / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    return out


@pytest.mark.parametrize("tools", [None, [TOOL]])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("messages", [MESSAGES, TOOL_TURNS], ids=["plain", "tool-turns"])
def test_equals_transformers_from_the_hub(
    hub_tok, reference, messages, tools, add_generation_prompt
):
    want_text = reference.apply_chat_template(
        messages, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    want_ids = reference.apply_chat_template(
        messages, tools=tools, add_generation_prompt=add_generation_prompt, return_dict=False
    )
    text = T.apply_chat_template(hub_tok, messages, add_generation_prompt, False, tools)
    ids = T.apply_chat_template(hub_tok, messages, add_generation_prompt, True, tools)
    assert text == want_text
    assert ids.dtype == np.int32 and ids.tolist() == want_ids
    # the ids are the handle's own encoding of the text, without added special tokens
    assert T.encode_ids(hub_tok, [text], add_special_tokens=False)["ids"].tolist() == want_ids


def test_defaults_are_a_generation_prompt_as_text(hub_tok, reference):
    out = T.apply_chat_template(hub_tok, MESSAGES)
    assert out == reference.apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    assert out.endswith("<|im_start|>assistant\n")


def test_template_in_tokenizer_config_json(folder, reference, tmp_path):
    local = _config_template_folder(folder, tmp_path)
    tok = T.from_pretrained(str(local))
    assert T.apply_chat_template(tok, MESSAGES, tools=[TOOL]) == reference.apply_chat_template(
        MESSAGES, tools=[TOOL], add_generation_prompt=True, tokenize=False
    )
    own = transformers.AutoTokenizer.from_pretrained(local)
    assert own.chat_template == reference.chat_template  # the same template, read from the config


def test_a_tokenizer_json_file_in_the_folder_finds_its_template(folder, reference):
    tok = T.from_file(str(Path(folder) / "tokenizer.json"))
    assert T.apply_chat_template(tok, MESSAGES, tokenize=True).tolist() == (
        reference.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=False)
    )


def test_tools_as_json_text_or_one_tool_equal_the_list(hub_tok):
    want = T.apply_chat_template(hub_tok, MESSAGES, tools=[TOOL])
    assert T.apply_chat_template(hub_tok, MESSAGES, tools=json.dumps([TOOL])) == want
    assert T.apply_chat_template(hub_tok, MESSAGES, tools=TOOL) == want
    assert T.apply_chat_template(hub_tok, MESSAGES, tools=[]) == T.apply_chat_template(
        hub_tok, MESSAGES
    )


def test_no_template_is_a_classed_error(folder, tmp_path):
    gpt2 = task_models.ensure(names=["gpt2"])["gpt2"]
    with pytest.raises(errors.NoChatTemplateError, match="has no chat template") as err:
        T.apply_chat_template(T.from_pretrained(gpt2), MESSAGES)
    assert err.value.code == "no_chat_template" and err.value.fields["path"] == gpt2
    # a tokenizer.json on its own, and a tokenizer made from JSON text
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(Path(folder) / "tokenizer.json", alone / "tokenizer.json")
    for tok in (
        T.from_file(str(alone / "tokenizer.json")),
        T.from_str(T.from_file(folder).to_str()),
    ):
        with pytest.raises(errors.NoChatTemplateError, match="no chat template"):
            T.apply_chat_template(tok, MESSAGES)


@pytest.mark.parametrize(
    "messages, match",
    [
        ([], "messages is empty"),
        ("Hello", "messages must be a data frame"),
        ({"role": "user", "content": "Hello"}, "messages is one message"),
        ([{"content": "Hello"}], "Message 1 has no role"),
        ([MESSAGES[0], {"role": "", "content": "Hello"}], "Message 2: role must be a non-empty"),
        (
            [{"role": "user", "content": ["a", "b"]}],
            r"Message 1 \(user\): content must be a string",
        ),
        ([{"role": "user", "content": 3}], "content must be a string, not a number"),
        ([{"role": "user"}], r"Message 1 \(user\) has no content"),
        ([{"role": "assistant"}], r"Message 1 \(assistant\) has no content"),
        (["Hello"], "Message 1 must be a named list"),
    ],
)
def test_bad_messages_are_named(hub_tok, messages, match):
    with pytest.raises(errors.InvalidArgumentError, match=match) as err:
        T.apply_chat_template(hub_tok, messages)
    assert err.value.fields["argument"] == "messages"


def test_bad_tools_and_flags(hub_tok):
    with pytest.raises(errors.InvalidArgumentError, match="tools is not valid JSON"):
        T.apply_chat_template(hub_tok, MESSAGES, tools="{not json")
    with pytest.raises(errors.InvalidArgumentError, match="not at positions 2"):
        T.apply_chat_template(hub_tok, MESSAGES, tools=[TOOL, "get_weather"])
    with pytest.raises(errors.InvalidArgumentError, match="tokenize must be TRUE or FALSE"):
        T.apply_chat_template(hub_tok, MESSAGES, tokenize="yes")


def test_a_template_that_refuses_the_conversation(folder, tmp_path):
    local = tmp_path / "strict"
    shutil.copytree(folder, local)
    (local / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m.role == 'tool' %}"
        "{{ raise_exception('Tool turns are not supported.') }}{% endif %}"
        "{{ m.content }}{% endfor %}"
    )
    tok = T.from_pretrained(str(local))
    assert T.apply_chat_template(tok, MESSAGES) == "".join(m["content"] for m in MESSAGES)
    with pytest.raises(errors.InvalidArgumentError, match="Tool turns are not supported"):
        T.apply_chat_template(tok, TOOL_TURNS)


def test_loading_stays_light_until_a_template_is_applied(folder, publish, hf_env):
    publish(REPO, folder)
    code = (
        "import json, sys\n"
        "from pybridge import tokenizer as T\n"
        f"tok = T.from_pretrained({REPO!r}, env=json.loads(sys.argv[1]))\n"
        "print('transformers' in sys.modules)\n"
        "T.apply_chat_template(tok, [{'role': 'user', 'content': 'Hi'}])\n"
        "print('transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(hf_env)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]
