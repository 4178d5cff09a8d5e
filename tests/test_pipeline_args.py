"""Every task argument is checked, for type and range, before the model runs (issue #10).

Table-driven: for each task, each argument gets a value of the wrong type and, where it has a
range, values outside it. Each must fail with InvalidArgumentError naming the argument, the task
and the value, whether given per call (:func:`pipeline.start`) or as a default
(:func:`pipeline.load`). Valid values still give what transformers' own pipeline gives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pybridge import errors, models
from pybridge import pipeline as P
from pybridge.fixtures import task_models as tm

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TOL = 1e-5

# task -> (fixture model, inputs, the arguments a call needs)
TASKS = {
    "sentiment-analysis": ("sentiment", ["good", "bad"], {}),
    "zero-shot-classification": ("nli", ["good"], {"candidate_labels": ["a", "b"]}),
    "ner": ("ner", ["Alice lives in Berlin."], {}),
    "question-answering": ("qa", None, {"question": "Where?", "context": "Alice is in Berlin."}),
    "fill-mask": ("fill_mask", ["Paris is the [MASK] of France."], {}),
    "summarization": ("t5", ["A short text."], {"max_new_tokens": 2}),
    "translation_en_to_fr": ("t5", ["A short text."], {"max_new_tokens": 2}),
    "text2text-generation": ("t5", ["A short text."], {"max_new_tokens": 2}),
    "text-generation": ("gpt2", ["Once upon"], {"max_new_tokens": 2}),
    "feature-extraction": ("bert", ["A short text."], {}),
}

GENERATE_BAD = {
    "max_new_tokens": ["x", 0, -1, 2.5, 2**31, 1e308],
    "num_beams": ["x", 0, 2**31],
    "do_sample": ["yes", 1],
    "temperature": ["hot", 0, -0.5, math.inf],
    "top_k": ["x", -1, 2.5, 1e308],
    "top_p": ["x", 1.5, -0.1],
    "num_return_sequences": ["x", 0, 2**31],
    "seed": ["x", -1, 2**32],
    "max_length": [0],
    "min_length": [-1],
    "repetition_penalty": [0, "x"],
    "no_repeat_ngram_size": [-1],
    "early_stopping": ["sometimes"],
    "length_penalty": ["x"],
    "eos_token_id": [-1, "x"],
    "bad_words_ids": [[[-1]], "x"],
}
SEQ2SEQ_BAD = {
    **GENERATE_BAD,
    "prefix": [1],
    "truncation": ["maybe"],
    "clean_up_tokenization_spaces": ["x"],
}

BAD = {
    "sentiment-analysis": {
        "top_k": ["two", -1, 0, 1.5, [1, 2]],
        "function_to_apply": [1, "cosine"],
        "truncation": ["maybe", 1],
        "max_length": ["x", 0],
        "batch_size": [0, "x"],
    },
    "zero-shot-classification": {
        "candidate_labels": [3, [], [""], ""],
        "multi_label": ["yes", 1],
        "hypothesis_template": [2, "No place for a label."],
    },
    "ner": {"aggregation_strategy": [1, "mean"], "ignore_labels": [1, []], "stride": ["x", 0]},
    "question-answering": {
        "question": [1, ""],
        "context": [1, ""],
        "top_k": ["x", 0, -1],
        "max_answer_len": ["x", 0, 1e308],
        "doc_stride": ["x", 0],
        "max_seq_len": ["x", -5],
        "max_question_len": ["x", 0],
        "handle_impossible_answer": ["x"],
        "align_to_words": [0],
    },
    "fill-mask": {
        "top_k": ["x", -1, 0],
        "targets": [1, [""], []],
        "tokenizer_kwargs": ["x", {"foo": 1}, {"max_length": 0}],
    },
    "summarization": SEQ2SEQ_BAD,
    "translation_en_to_fr": {"src_lang": [1, ""], "tgt_lang": [1, ""], "num_beams": [0]},
    "text2text-generation": SEQ2SEQ_BAD,
    "text-generation": {
        **GENERATE_BAD,
        "return_full_text": ["no", 0],
        "prefix": [1],
        "stop_sequence": [1, ""],
        "handle_long_generation": ["cut"],
        "skip_special_tokens": ["x"],
    },
    "feature-extraction": {
        "tokenize_kwargs": ["x", {"foo": 1}, {"truncation": "sometimes"}],
        "truncation": ["maybe"],
    },
}

CASES = [
    (task, arg, value)
    for task, table in BAD.items()
    for arg, values in table.items()
    for value in values
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders():
    models.cache_clear()
    yield tm.ensure()
    models.cache_clear()


def call_args(task, arg, value) -> dict:
    _, _, needed = TASKS[task]
    return {**needed, arg: value}


@pytest.mark.parametrize("task,arg,value", CASES, ids=[f"{t}-{a}-{v!r}" for t, a, v in CASES])
def test_a_bad_value_is_refused_per_call(folders, task, arg, value):
    name, inputs, _ = TASKS[task]
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.start(task, inputs, folders[name], args=call_args(task, arg, value))
    fields = info.value.fields
    assert fields["argument"] == arg and fields["task"] == task
    assert "value" in fields and arg in str(info.value) and task in str(info.value)


@pytest.mark.parametrize("task,arg,value", CASES, ids=[f"{t}-{a}-{v!r}" for t, a, v in CASES])
def test_a_bad_default_is_refused_at_load(folders, task, arg, value):
    name, _, _ = TASKS[task]
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.load(task, folders[name], args=call_args(task, arg, value))
    assert info.value.fields["argument"] == arg and info.value.fields["task"] == task


@pytest.mark.parametrize("task", list(TASKS))
def test_an_unknown_argument_is_refused_and_the_known_ones_listed(folders, task):
    name, inputs, _ = TASKS[task]
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.start(task, inputs, folders[name], args=call_args(task, "top_K", 2))
    assert info.value.fields["argument"] == "top_K" and "batch_size" in str(info.value)


def test_the_bad_value_is_shown_as_given(folders):
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.start("sentiment-analysis", ["good"], folders["sentiment"], args={"top_k": -1.0})
    assert info.value.fields["value"] == "-1" and "got -1" in str(info.value)
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.start("sentiment-analysis", ["good"], folders["sentiment"], args={"top_k": "two"})
    assert info.value.fields["value"] == '"two"'


# Ranges that depend on another argument or on the model (the tiny models take 128 tokens and
# have 400 words).
TOGETHER = [
    ("question-answering", {"doc_stride": 64, "max_seq_len": 64}, "doc_stride"),
    ("question-answering", {"max_seq_len": 1000}, "max_seq_len"),
    ("ner", {"stride": 2, "aggregation_strategy": "none"}, "stride"),
    ("ner", {"stride": 128, "aggregation_strategy": "simple"}, "stride"),
    ("fill-mask", {"top_k": 401}, "top_k"),
]


@pytest.mark.parametrize("task,args,arg", TOGETHER)
def test_ranges_that_depend_on_another_argument_or_the_model(folders, task, args, arg):
    name, inputs, needed = TASKS[task]
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.start(task, inputs, folders[name], args={**needed, **args})
    assert info.value.fields["argument"] == arg and info.value.fields["task"] == task


def test_what_only_generate_can_tell_is_an_invalid_argument_too(folders):
    """Greedy search has one sequence: transformers says so when it runs."""
    args = {"max_new_tokens": 2, "do_sample": False, "num_return_sequences": 2}
    with pytest.raises(errors.InvalidArgumentError) as info:
        P.run("text-generation", ["Once upon"], folders["gpt2"], args=args)
    assert info.value.fields["task"] == "text-generation"
    assert "num_return_sequences" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Valid values still give transformers' results


def reference(task, folder):
    return transformers.pipeline(task, model=folder, device="cpu")


TEXTS = ["This course is excellent.", "The explanation was very confusing."]


@pytest.mark.parametrize(
    "args",
    [
        {"top_k": None},
        {"function_to_apply": "sigmoid"},
        {"top_k": 1.0, "function_to_apply": "NONE"},
        {"truncation": True, "max_length": 4.0},
    ],
)
def test_valid_classification_arguments_match_transformers(folders, args):
    ours = P.run("sentiment-analysis", TEXTS, folders["sentiment"], args=dict(args))
    py_args = {k: int(v) if isinstance(v, float) else v for k, v in args.items()}
    want = reference("text-classification", folders["sentiment"])(TEXTS, **py_args)
    flat = [r for w in want for r in ([w] if isinstance(w, dict) else w)]
    assert ours["label"] == [r["label"] for r in flat]
    np.testing.assert_allclose(ours["score"], [r["score"] for r in flat], atol=TOL)


def test_valid_zero_shot_template_matches_transformers(folders):
    args = {"candidate_labels": "travel, work", "hypothesis_template": "It is about {}."}
    ours = P.run("zero-shot-classification", TEXTS, folders["nli"], args=dict(args))
    want = reference("zero-shot-classification", folders["nli"])(TEXTS, **args)
    assert ours["label"] == [lab for w in want for lab in w["labels"]]
    np.testing.assert_allclose(ours["score"], [s for w in want for s in w["scores"]], atol=TOL)


def test_valid_fill_mask_targets_match_transformers(folders):
    texts = ["Paris is the [MASK] of France."]
    vocab = transformers.AutoTokenizer.from_pretrained(folders["fill_mask"]).get_vocab()
    targets = sorted(t for t in vocab if t.isalpha())[:3]
    ours = P.run("fill-mask", texts, folders["fill_mask"], args={"targets": targets, "top_k": 2})
    want = reference("fill-mask", folders["fill_mask"])(texts, targets=targets, top_k=2)
    assert ours["token_str"] == [r["token_str"] for r in want]
    np.testing.assert_allclose(ours["score"], [r["score"] for r in want], atol=TOL)


def test_valid_generation_arguments_match_transformers(folders):
    args = {
        "max_new_tokens": 3,
        "do_sample": False,
        "return_full_text": False,
        "repetition_penalty": 1.3,
        "no_repeat_ngram_size": 2.0,
    }
    ours = P.run("text-generation", ["Once upon a time"], folders["gpt2"], args=dict(args))
    want = reference("text-generation", folders["gpt2"])(
        ["Once upon a time"],
        **{
            k: int(v) if isinstance(v, float) and k != "repetition_penalty" else v
            for k, v in args.items()
        },
    )
    assert ours["generated_text"] == [w[0]["generated_text"] for w in want]
