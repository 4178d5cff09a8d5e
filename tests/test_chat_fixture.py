"""The tiny chat fixture (task_models.build_chat): a Qwen2 ChatML model, checked with transformers
itself."""

import json
from pathlib import Path

import pytest

from pybridge.fixtures import task_models

transformers = pytest.importorskip("transformers")

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What do you think?"},
]
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat do you think?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
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


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    return task_models.ensure(tmp_path_factory.mktemp("chat-models"), ["chat"])["chat"]


@pytest.fixture(scope="module")
def tok(chat):
    return transformers.AutoTokenizer.from_pretrained(chat)


@pytest.fixture(scope="module")
def model(chat):
    return transformers.AutoModelForCausalLM.from_pretrained(chat)


def test_registered_for_the_demo_store():
    from pybridge.fixtures import demo

    assert task_models.REPO_IDS["chat"] == "hfbridge-tiny/chat"
    assert demo._task_repo_ids()["chat"] == "hfbridge-tiny/chat"
    assert "hfbridge-tiny/chat" in demo.DEMO_REPOS


def test_folder_has_the_chat_template_file(chat):
    folder = Path(chat)
    assert (folder / "chat_template.jinja").read_text() == task_models.CHATML_TEMPLATE
    for name in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]:
        assert (folder / name).exists(), name


def test_special_tokens(tok, model):
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    assert ids == [0, 1, 2]
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert model.generation_config.eos_token_id == tok.eos_token_id == 2
    assert model.generation_config.pad_token_id == tok.pad_token_id == 0
    assert model.config.model_type == "qwen2"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (32, 2)
    # the special tokens are single tokens, not split into bytes
    assert tok("<|im_start|>user<|im_end|>")["input_ids"][0] == 1
    assert tok("<|im_start|>user<|im_end|>")["input_ids"][-1] == 2


def test_chatml_prompt(tok):
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == PROMPT
    without = tok.apply_chat_template(MESSAGES, tokenize=False)
    assert without == PROMPT[: -len("<|im_start|>assistant\n")]


def test_chatml_prompt_with_tools(tok):
    text = tok.apply_chat_template(
        MESSAGES, tools=[TOOL], add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(TOOL) + "\n</tools>" in text
    assert text.endswith(PROMPT[PROMPT.index("<|im_start|>user") :])
    # a tool call and its result, as Qwen2.5 renders them
    conv = MESSAGES + [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "content": "sunny"},
    ]
    text = tok.apply_chat_template(conv, tools=[TOOL], add_generation_prompt=True, tokenize=False)
    assert text.endswith(
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def _generate(tok, model):
    enc = tok.apply_chat_template(
        MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=30, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_greedy_generation_answers_and_is_deterministic(tok, model):
    new = _generate(tok, model)
    assert len(new) > 0
    reply = tok.decode(new, skip_special_tokens=True)
    assert isinstance(reply, str) and reply.strip()
    assert _generate(tok, model) == new


def test_text_generation_pipeline_chats(chat):
    pipe = transformers.pipeline("text-generation", model=chat)
    out = pipe(MESSAGES, max_new_tokens=30, do_sample=False)
    turns = out[0]["generated_text"]
    assert turns[:2] == MESSAGES
    assert turns[-1]["role"] == "assistant" and isinstance(turns[-1]["content"], str)
