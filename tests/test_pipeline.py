"""pybridge.pipeline against transformers itself, on tiny task models served by the mirror.

Each task runs through the hub layer (repo ids on the local mirror) and is compared with the
transformers pipeline built from the same folder in Python, on the same inputs: same labels,
scores within 1e-5, same generated text for the same seed. transformers 5 has no pipeline for
question-answering, summarization, translation and text2text-generation: those are compared with
the model's own logits and ``generate()``, and with transformers 4's pipelines, run from
``.venv/transformers4`` in a subprocess (tests/reference/).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pybridge import errors, jobs, models
from pybridge import pipeline as P
from pybridge.fixtures import task_models as tm

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TEXTS = [
    "This course is excellent.",
    "The explanation was very confusing.",
    "Alice lives in Berlin and works for Acme.",
    "Hello world, this is a test.",
]
TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders():
    return tm.ensure()


@pytest.fixture(scope="module")
def hub_models(mirror, folders):
    """Every tiny model published on the mirror under its repo id."""
    for name, repo_id in tm.REPO_IDS.items():
        mirror.publish(repo_id, folders[name])
    return dict(tm.REPO_IDS)


@pytest.fixture(scope="module", autouse=True)
def empty_cache():
    models.cache_clear()
    yield
    models.cache_clear()


def reference(task, folder):
    return transformers.pipeline(task, model=folder, device="cpu")


def test_text_classification_matches_transformers(hf_env, hub_models, folders):
    ref = reference("text-classification", folders["sentiment"])
    for args in ({}, {"top_k": 2.0}):
        ours = P.run("sentiment-analysis", TEXTS, hub_models["sentiment"], args=args, env=hf_env)
        want = ref(TEXTS, **{k: int(v) for k, v in args.items()})
        want = [[w] if isinstance(w, dict) else w for w in want]
        flat = [(i + 1, TEXTS[i], r["label"], r["score"]) for i, w in enumerate(want) for r in w]
        assert list(ours["text_id"]) == [f[0] for f in flat]
        assert ours["text"] == [f[1] for f in flat]
        assert ours["label"] == [f[2] for f in flat]
        np.testing.assert_allclose(ours["score"], [f[3] for f in flat], atol=TOL)
        assert ours["text_id"].dtype == np.int32 and ours["score"].dtype == np.float64
    # the seed's example: the tiny classifier learnt these two
    assert ours["label"][:4] == ["POSITIVE", "NEGATIVE", "NEGATIVE", "POSITIVE"]


def test_batch_size_gives_the_same_scores(hf_env, hub_models):
    one = P.run("text-classification", TEXTS, hub_models["sentiment"], env=hf_env)
    four = P.run("text-classification", TEXTS, hub_models["sentiment"], batch_size=4, env=hf_env)
    assert one["label"] == four["label"]
    np.testing.assert_allclose(one["score"], four["score"], atol=TOL)


MIXED = [
    "Short.",
    "Hi",
    "Alice lives in Berlin and works for Acme, and Bob met Carol in London.",
    "A text of middle length.",
    "The explanation was very confusing, and the course long.",
]


@pytest.mark.parametrize(
    "task,name,args,texts",
    [
        ("text-classification", "sentiment", {"top_k": 2}, MIXED),
        ("zero-shot-classification", "nli", {"candidate_labels": ["travel", "work"]}, MIXED),
        ("ner", "ner", {"aggregation_strategy": "simple"}, MIXED),
        ("fill-mask", "fill_mask", {}, [t + " It was [MASK]." for t in MIXED]),
        ("feature-extraction", "bert", {}, MIXED),
    ],
)
def test_length_sorted_batches_keep_the_input_order(hf_env, hub_models, task, name, args, texts):
    one_by_one = P.run(task, texts, hub_models[name], args=dict(args), env=hf_env)
    batched = P.run(task, texts, hub_models[name], batch_size=3, args=dict(args), env=hf_env)
    assert batched.keys() == one_by_one.keys()
    for key, want in one_by_one.items():
        if isinstance(want, np.ndarray) and want.dtype.kind == "f":
            np.testing.assert_allclose(batched[key], want, atol=TOL)
        else:
            assert list(batched[key]) == list(want), key


@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot_matches_transformers(hf_env, hub_models, folders, multi_label):
    labels = ["travel", "cooking", "work"]
    args = {"candidate_labels": labels, "multi_label": multi_label}
    ours = P.run("zero-shot-classification", TEXTS, hub_models["nli"], args=args, env=hf_env)
    want = reference("zero-shot-classification", folders["nli"])(TEXTS, **args)
    assert list(ours["text_id"]) == [i + 1 for i in range(len(TEXTS)) for _ in labels]
    assert ours["label"] == [lab for w in want for lab in w["labels"]]
    np.testing.assert_allclose(ours["score"], [s for w in want for s in w["scores"]], atol=TOL)


@pytest.mark.parametrize("strategy", [None, "simple", "first"])
def test_token_classification_matches_transformers(hf_env, hub_models, folders, strategy):
    args = {} if strategy is None else {"aggregation_strategy": strategy}
    ours = P.run("ner", TEXTS, hub_models["ner"], args=args, env=hf_env)
    want = reference("token-classification", folders["ner"])(TEXTS, **args)
    rows = [(i + 1, r) for i, w in enumerate(want) for r in w]
    key = "entity" if strategy is None else "entity_group"
    assert list(ours["text_id"]) == [i for i, _ in rows]
    assert ours[key] == [r[key] for _, r in rows]
    assert ours["word"] == [r["word"] for _, r in rows]
    np.testing.assert_allclose(ours["score"], [r["score"] for _, r in rows], atol=TOL)
    # 1-based inclusive offsets: R's substr(text, start, end) is Python's text[start-1:end]
    assert list(ours["start"]) == [r["start"] + 1 for _, r in rows]
    assert list(ours["end"]) == [r["end"] for _, r in rows]
    for i, s, e, (_, r) in zip(ours["text_id"], ours["start"], ours["end"], rows):
        assert TEXTS[i - 1][s - 1 : e] == TEXTS[i - 1][r["start"] : r["end"]]


@pytest.mark.parametrize("args", [{}, {"stride": 16, "aggregation_strategy": "simple"}])
def test_token_classification_of_a_long_text_matches_transformers(hf_env, folders, args):
    """transformers cuts a text at the tokenizer's model_max_length, or windows it with
    stride: a text longer than the model's positions is not refused."""
    long = ["good " * 300]
    ours = P.run("ner", long, folders["ner"], args=args, env=hf_env)
    want = reference("token-classification", folders["ner"])(long, **args)[0]
    key = "entity_group" if args else "entity"
    assert len(want) > 0 and ours[key] == [r[key] for r in want]
    assert list(ours["start"]) == [r["start"] + 1 for r in want]
    np.testing.assert_allclose(ours["score"], [r["score"] for r in want], atol=TOL)


def test_a_long_text_is_refused_with_the_argument_that_cuts_it(hf_env, folders):
    long = ["[MASK] " + "good " * 300]
    with pytest.raises(errors.InvalidArgumentError, match="tokenizer_kwargs") as err:
        P.run("fill-mask", long, folders["fill_mask"], env=hf_env)
    assert err.value.fields["texts"] == [1]
    cut = P.run(
        "fill-mask",
        long,
        folders["fill_mask"],
        env=hf_env,
        args={"tokenizer_kwargs": {"truncation": True}},
    )
    assert len(cut["token_str"]) > 0


def test_fill_mask_matches_transformers(hf_env, hub_models, folders):
    texts = ["Paris is the [MASK] of France.", "The cat sat on the [MASK]."]
    ours = P.run("fill-mask", texts, hub_models["fill_mask"], args={"top_k": 3.0}, env=hf_env)
    want = reference("fill-mask", folders["fill_mask"])(texts, top_k=3)
    flat = [(i + 1, r) for i, w in enumerate(want) for r in w]
    assert list(ours["text_id"]) == [i for i, _ in flat]
    assert list(ours["token_id"]) == [r["token"] for _, r in flat]
    assert ours["token_str"] == [r["token_str"] for _, r in flat]
    assert ours["sequence"] == [r["sequence"] for _, r in flat]
    np.testing.assert_allclose(ours["score"], [r["score"] for _, r in flat], atol=TOL)
    one = P.run("fill-mask", texts[:1], hub_models["fill_mask"], env=hf_env)
    assert list(one["text_id"]) == [1] * 5 and one["token_str"][0] == flat[0][1]["token_str"]
    assert list(one["mask"]) == [1] * 5


def test_fill_mask_of_several_masks_says_which_mask(hf_env, hub_models, folders):
    text = "The [MASK] sat on the [MASK]."
    ours = P.run("fill-mask", [text], hub_models["fill_mask"], args={"top_k": 2}, env=hf_env)
    want = reference("fill-mask", folders["fill_mask"])(text, top_k=2)
    assert list(ours["mask"]) == [m + 1 for m, per in enumerate(want) for _ in per]
    assert ours["token_str"] == [r["token_str"] for per in want for r in per]


@pytest.mark.parametrize(
    "args",
    [
        {"max_new_tokens": 6, "do_sample": False},
        {
            "max_new_tokens": 6,
            "do_sample": True,
            "temperature": 0.8,
            "top_k": 20,
            "top_p": 0.95,
            "num_return_sequences": 2,
            "seed": 42,
        },
    ],
)
def test_text_generation_matches_transformers(hf_env, hub_models, folders, args):
    prompts = ["Once upon a time", "The weather is"]
    ours = P.run("text-generation", prompts, hub_models["gpt2"], args=dict(args), env=hf_env)
    ref_args = dict(args)
    if "seed" in ref_args:
        transformers.set_seed(ref_args.pop("seed"))
    want = reference("text-generation", folders["gpt2"])(prompts, **ref_args)
    n = args.get("num_return_sequences", 1)
    assert list(ours["text_id"]) == [i + 1 for i in range(len(prompts)) for _ in range(n)]
    assert ours["prompt"] == [p for p in prompts for _ in range(n)]
    assert ours["generated_text"] == [r["generated_text"] for w in want for r in w]


def test_steps_give_the_texts_of_one_seeded_call(hf_env, hub_models, folders):
    """R pulls results in steps (for its progress bar): one seeded Python call all the same."""
    prompts = ["Once upon a time", "The weather is", "Hello"] * 5
    args = {"max_new_tokens": 3, "do_sample": True, "top_k": 20}
    job = P.start(
        "text-generation", prompts, hub_models["gpt2"], args=dict(args, seed=3), env=hf_env
    )
    assert job.total == 15 and jobs.step(job, 4) == {"done": False, "step": 4, "total": 15}
    assert jobs.step(job, 4.0) == {"done": False, "step": 8, "total": 15}
    with pytest.raises(errors.InvalidArgumentError):
        jobs.result(job)
    assert jobs.step(job) == {"done": True, "step": 15, "total": 15}
    transformers.set_seed(3)
    want = reference("text-generation", folders["gpt2"])(prompts, **args)
    assert jobs.result(job)["generated_text"] == [w[0]["generated_text"] for w in want]


def test_text_generation_seed_is_reproducible(hf_env, hub_models):
    args = {"max_new_tokens": 8, "do_sample": True, "seed": 7}
    a = P.run("text-generation", ["Hello"], hub_models["gpt2"], args=dict(args), env=hf_env)
    b = P.run("text-generation", ["Hello"], hub_models["gpt2"], args=dict(args), env=hf_env)
    assert a["generated_text"] == b["generated_text"]


def generate_reference(folder, texts, prefix, **gen):
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    out = []
    for text in texts:
        ids = tok(prefix + text, return_tensors="pt")
        ids.pop("token_type_ids", None)
        out += tok.batch_decode(
            model.generate(**ids, **gen),
            skip_special_tokens=True,
            clean_up_tokenization_spaces=False,
        )
    return out


@pytest.mark.parametrize("name", ["t5", "bart"])
@pytest.mark.parametrize(
    "task,prefix",
    [
        ("summarization", "summarize: "),
        ("translation_en_to_fr", "translate English to French: "),
        ("text2text-generation", ""),
    ],
)
def test_seq2seq_matches_generate(hf_env, hub_models, folders, name, task, prefix):
    texts = TEXTS[:3]
    ours = P.run(task, texts, hub_models[name], args={"max_new_tokens": 5.0}, env=hf_env)
    beams = generate_reference(folders[name], texts, prefix, max_new_tokens=5, num_beams=4)
    assert list(ours["text_id"]) == [1, 2, 3]
    assert ours["generated_text"] == beams  # transformers 4's default: 4 beams
    greedy = P.run(
        task, texts, hub_models[name], args={"max_new_tokens": 5, "num_beams": 1}, env=hf_env
    )
    want = generate_reference(folders[name], texts, prefix, max_new_tokens=5)
    assert greedy["generated_text"] == want
    assert any(w.strip() for w in want)  # the tiny models were taught to say something


def test_seq2seq_beams_and_sequences(hf_env, hub_models, folders):
    args = {"max_new_tokens": 4, "num_beams": 3, "num_return_sequences": 2}
    ours = P.run("summarization", TEXTS[:2], hub_models["t5"], args=dict(args), env=hf_env)
    want = generate_reference(folders["t5"], TEXTS[:2], "summarize: ", **args)
    assert list(ours["text_id"]) == [1, 1, 2, 2]
    assert ours["generated_text"] == want


def qa_reference(folder, question, context, max_answer_len=15):
    """The best span by brute force over the model's own logits: context tokens only, scored
    by softmax(start) * softmax(end), widened to whole words."""
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    enc = tok(question, context, return_offsets_mapping=True)
    with torch.no_grad():
        out = model(
            **{k: torch.tensor([enc[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        )
    seq = enc.sequence_ids(0)
    ok = np.array([s == 1 for s in seq])
    ok[0] = True  # [CLS] stays in the softmax, as transformers 4 did
    ps = torch.softmax(torch.where(torch.tensor(ok), out.start_logits[0], -10000.0), 0).numpy()
    pe = torch.softmax(torch.where(torch.tensor(ok), out.end_logits[0], -10000.0), 0).numpy()
    best = (-1.0, 0, 0)
    for s in range(1, len(seq)):
        for e in range(s, min(len(seq), s + max_answer_len)):
            if seq[s] == 1 and seq[e] == 1 and ps[s] * pe[e] > best[0]:
                best = (ps[s] * pe[e], s, e)
    score, s, e = best
    encoding = enc.encodings[0]
    a = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
    b = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
    return score, a, b


def test_question_answering_matches_the_models_logits(hf_env, hub_models, folders):
    questions = ["Where does Alice live?", "Who works for Acme?"]
    context = "Alice lives in Berlin and works for Acme. Bob met Carol in London last year."
    ours = P.run(
        "question-answering",
        None,
        hub_models["qa"],
        args={"question": questions, "context": context},
        env=hf_env,
    )
    assert ours["question"] == questions and ours["context"] == [context] * 2
    for k, q in enumerate(questions):
        score, a, b = qa_reference(folders["qa"], q, context)
        assert ours["start"][k] == a + 1 and ours["end"][k] == b
        assert ours["answer"][k] == context[a:b]
        assert abs(ours["score"][k] - score) < TOL
    top = P.run(
        "question-answering",
        None,
        hub_models["qa"],
        args={"question": questions[0], "context": context, "top_k": 3},
        env=hf_env,
    )
    assert len(top["answer"]) == 3 and list(top["score"]) == sorted(top["score"], reverse=True)
    assert abs(top["score"][0] - ours["score"][0]) < TOL


def test_question_answering_long_context_uses_windows(hf_env, hub_models, folders):
    context = " ".join(TEXTS * 12)  # longer than the tiny model's 128 positions
    ours = P.run(
        "question-answering",
        None,
        hub_models["qa"],
        args={
            "question": "Where does Alice live?",
            "context": context,
            "max_seq_len": 64,
            "doc_stride": 16,
        },
        env=hf_env,
    )
    s, e = ours["start"][0], ours["end"][0]
    assert 1 <= s <= e <= len(context) and ours["answer"][0] == context[s - 1 : e]


def test_feature_extraction_matches_transformers(hf_env, hub_models, folders):
    ours = P.run("feature-extraction", TEXTS, hub_models["bert"], env=hf_env)
    want = reference("feature-extraction", folders["bert"])(TEXTS, return_tensors=True)
    lengths = [w.shape[1] for w in want]
    assert list(ours["lengths"]) == lengths and ours["lengths"].dtype == np.int32
    np.testing.assert_allclose(
        ours["values"], np.concatenate([w[0].numpy() for w in want]), atol=TOL
    )
    assert ours["tokens"][:2] == ["[CLS]", "this"]


def test_default_model_of_sentiment_analysis(hf_env, hub_models, folders):
    info = P.load("sentiment-analysis", env=hf_env)
    assert info["model"] == "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    assert info["model"] == P.default_model("sentiment-analysis")
    ours = P.run("sentiment-analysis", TEXTS[:2], env=hf_env)
    assert ours["label"] == ["POSITIVE", "NEGATIVE"]


def test_unknown_task_lists_the_supported_ones(hf_env):
    with pytest.raises(errors.UnsupportedError) as info:
        P.load("image-classification", "hfbridge-tiny/bert", env=hf_env)
    assert "sentiment-analysis" in str(info.value) and "question-answering" in str(info.value)
    assert "text-generation" in info.value.fields["supported"]


@pytest.mark.parametrize(
    "task,name",
    [
        ("fill-mask", "gpt2"),
        ("summarization", "gpt2"),
        ("summarization", "bert"),
        ("fill-mask", "t5"),
    ],
)
def test_a_model_the_task_cannot_use(hf_env, hub_models, task, name):
    with pytest.raises(errors.UnsupportedError) as info:
        P.load(task, hub_models[name], env=hf_env)
    assert "Supported tasks" in str(info.value) and info.value.fields["task"] == P.canonical(task)


def test_pickle_only_repo_is_refused_unless_allowed(hf_env, hub_models):
    models.cache_clear()
    repo = hub_models["pickle_only"]
    with pytest.raises(models.PickleWeightsError) as info:
        P.load("feature-extraction", repo, env=hf_env)
    assert info.value.code == "pickle_weights" and "allow_pickle" in str(info.value)
    assert info.value.fields["files"] == ["pytorch_model.bin"]
    cache = os.path.join(hf_env["HF_HOME"], "hub")
    assert not [f for _, _, fs in os.walk(cache) for f in fs if f.endswith(".bin")]
    P.load("feature-extraction", repo, allow_pickle=True, env=hf_env)
    out = P.run("feature-extraction", ["hello"], repo, allow_pickle=True, env=hf_env)
    assert out["values"].shape[1] == 32


def test_models_are_loaded_once_and_cleared(hf_env, hub_models):
    models.cache_clear()
    repo = hub_models["sentiment"]
    P.load("sentiment-analysis", repo, env=hf_env)
    P.load("text-classification", repo, env=hf_env)  # the alias shares the loaded model
    P.run("sentiment-analysis", TEXTS[:1], repo, env=hf_env)
    info = models.cache_info()
    assert info["kind"] == ["pipeline:text-classification"] and list(info["hits"]) == [2]
    P.load("sentiment-analysis", repo, device="cpu", revision="main", env=hf_env)
    assert list(models.cache_info()["hits"]) == [3]
    assert models.cache_clear() == 1 and models.cache_info()["kind"] == []


def test_offline_works_from_the_cache(hf_env, hub_models):
    repo = hub_models["sentiment"]
    online = P.run("sentiment-analysis", TEXTS, repo, env=hf_env)
    models.cache_clear()
    offline = P.run(
        "sentiment-analysis",
        TEXTS,
        repo,
        env={**hf_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert offline["label"] == online["label"]


def test_revision_is_honoured(hf_env, mirror, folders, tmp_path):
    """A git repo on the mirror: branch v2 renames the labels."""
    work = tmp_path / "repo"
    shutil.copytree(folders["sentiment"], work)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "v1"], check=True)
    subprocess.run(git + ["checkout", "-qb", "v2"], check=True)
    config = (work / "config.json").read_text()
    (work / "config.json").write_text(config.replace("NEGATIVE", "neg").replace("POSITIVE", "pos"))
    subprocess.run(git + ["commit", "-qam", "v2"], check=True)
    subprocess.run(git + ["checkout", "-q", "main"], check=True)
    mirror.publish("hfbridge-tiny/sentiment-revisions", work)
    main = P.run("sentiment-analysis", TEXTS[:2], "hfbridge-tiny/sentiment-revisions", env=hf_env)
    v2 = P.run(
        "sentiment-analysis",
        TEXTS[:2],
        "hfbridge-tiny/sentiment-revisions",
        revision="v2",
        env=hf_env,
    )
    assert main["label"] == ["POSITIVE", "NEGATIVE"] and v2["label"] == ["pos", "neg"]
    with pytest.raises(errors.RevisionNotFoundError):
        P.load("sentiment-analysis", "hfbridge-tiny/sentiment-revisions", revision="v3", env=hf_env)


def test_the_same_repo_id_on_another_endpoint_is_another_model(
    hf_env, hub_models, folders, isolated_mirror
):
    isolated_mirror.publish(hub_models["sentiment"], folders["nli"])  # another classifier
    here = P.run("sentiment-analysis", TEXTS[:2], hub_models["sentiment"], env=hf_env)
    there_env = {**hf_env, "HF_ENDPOINT": isolated_mirror.url}
    there = P.run("sentiment-analysis", TEXTS[:2], hub_models["sentiment"], env=there_env)
    assert here["label"] == ["POSITIVE", "NEGATIVE"]
    assert set(there["label"]) <= set(
        transformers.AutoConfig.from_pretrained(folders["nli"]).id2label.values()
    )
    assert (
        P.run("sentiment-analysis", TEXTS[:2], hub_models["sentiment"], env=hf_env)["label"]
        == here["label"]
    )


def test_bad_arguments_are_classed(hf_env, hub_models):
    with pytest.raises(errors.InvalidArgumentError):
        P.run("sentiment-analysis", ["ok", None], hub_models["sentiment"], env=hf_env)
    with pytest.raises(errors.InvalidArgumentError):
        P.run("zero-shot-classification", ["x"], hub_models["nli"], env=hf_env)
    with pytest.raises(errors.InvalidArgumentError):
        P.run("question-answering", None, hub_models["qa"], args={"question": "q"}, env=hf_env)
    with pytest.raises(errors.UnsupportedError):
        P.load("sentiment-analysis", hub_models["sentiment"], device="cuda:3", env=hf_env)


def test_hub_and_import_do_not_load_torch(hf_env, hub_models):
    code = (
        "import sys, pybridge.hub as h, pybridge.pipeline, pybridge.embed, pybridge.models\n"
        f"h.local_folder({hub_models['sentiment']!r})\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **hf_env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------
# The pipelines transformers 5 removed, against transformers 4's own (tests/reference/)

REFERENCE = os.path.join(os.path.dirname(__file__), "reference")
TRANSFORMERS4 = os.path.join(os.path.dirname(os.path.dirname(__file__)), ".venv", "transformers4")
QUESTIONS = ["Where does Alice live?", "Who works for Acme?"]
CONTEXT = "Alice lives in Berlin and works for Acme. Bob met Carol in London last year."
LONG_CONTEXT = " ".join(TEXTS * 12)  # longer than the tiny model's 128 positions
SEQ2SEQ_TASKS = ["summarization", "translation_en_to_fr", "text2text-generation"]
SEQ2SEQ_KEYS = {
    "summarization": "summary_text",
    "translation_en_to_fr": "translation_text",
    "text2text-generation": "generated_text",
}
BEAMS = {"max_new_tokens": 4, "num_beams": 3, "num_return_sequences": 2}


def v4_cases(folders):
    qa = [
        ("question-answering", folders["qa"], {"question": q, "context": CONTEXT}, {})
        for q in QUESTIONS
    ]
    qa.append(
        (
            "question-answering",
            folders["qa"],
            {"question": QUESTIONS[0], "context": CONTEXT},
            {"top_k": 3},
        )
    )
    qa.append(
        (
            "question-answering",
            folders["qa"],
            {"question": QUESTIONS[0], "context": LONG_CONTEXT},
            {"max_seq_len": 64, "doc_stride": 16},
        )
    )
    seq2seq = [
        (task, folders[name], TEXTS[:3], {"max_new_tokens": 5})
        for name in ("t5", "bart")
        for task in SEQ2SEQ_TASKS
    ]
    seq2seq.append(("summarization", folders["t5"], TEXTS[:2], BEAMS))
    return qa + seq2seq


@pytest.fixture(scope="module")
def transformers4(folders):
    """The outputs of transformers 4's pipelines on :func:`v4_cases`, in the same order."""
    if not os.path.isdir(TRANSFORMERS4):
        if os.environ.get("HFBRIDGE_REQUIRE_REFERENCE"):
            pytest.fail(f"{TRANSFORMERS4} is missing: run tools/setup.sh")
        pytest.skip("the transformers 4 reference is not installed (tools/setup.sh)")
    cases = [{"task": t, "model": m, "inputs": i, "call": c} for t, m, i, c in v4_cases(folders)]
    env = {**os.environ, "PYTHONPATH": TRANSFORMERS4, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, os.path.join(REFERENCE, "pipelines_v4.py")],
        input=json.dumps(cases),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert got["version"].startswith("4.")
    return got["results"]


def test_question_answering_equals_transformers4(hf_env, hub_models, transformers4):
    ours = P.run(
        "question-answering",
        None,
        hub_models["qa"],
        args={"question": QUESTIONS, "context": CONTEXT},
        env=hf_env,
    )
    for k, want in enumerate(transformers4[:2]):
        assert ours["answer"][k] == want["answer"]
        assert (ours["start"][k], ours["end"][k]) == (want["start"] + 1, want["end"])
        assert ours["context"][k][ours["start"][k] - 1 : ours["end"][k]] == want["answer"]
        assert abs(ours["score"][k] - want["score"]) < TOL
    top = P.run(
        "question-answering",
        None,
        hub_models["qa"],
        args={"question": QUESTIONS[0], "context": CONTEXT, "top_k": 3},
        env=hf_env,
    )
    want = transformers4[2]
    assert top["answer"] == [w["answer"] for w in want]
    assert list(top["start"]) == [w["start"] + 1 for w in want]
    np.testing.assert_allclose(top["score"], [w["score"] for w in want], atol=TOL)
    long = P.run(
        "question-answering",
        None,
        hub_models["qa"],
        args={
            "question": QUESTIONS[0],
            "context": LONG_CONTEXT,
            "max_seq_len": 64,
            "doc_stride": 16,
        },
        env=hf_env,
    )
    want = transformers4[3]
    assert (long["answer"][0], long["start"][0], long["end"][0]) == (
        want["answer"],
        want["start"] + 1,
        want["end"],
    )
    assert abs(long["score"][0] - want["score"]) < TOL


@pytest.mark.parametrize(
    "k,name,task",
    [
        (4 + i * 3 + j, name, task)
        for i, name in enumerate(("t5", "bart"))
        for j, task in enumerate(SEQ2SEQ_TASKS)
    ],
)
def test_seq2seq_equals_transformers4(hf_env, hub_models, transformers4, k, name, task):
    ours = P.run(task, TEXTS[:3], hub_models[name], args={"max_new_tokens": 5}, env=hf_env)
    assert list(ours["text_id"]) == [1, 2, 3]
    assert ours["generated_text"] == [w[SEQ2SEQ_KEYS[task]] for w in transformers4[k]]


def test_seq2seq_beams_equal_transformers4(hf_env, hub_models, transformers4):
    ours = P.run("summarization", TEXTS[:2], hub_models["t5"], args=dict(BEAMS), env=hf_env)
    want = transformers4[10]
    assert list(ours["text_id"]) == [1, 1, 2, 2]
    assert ours["generated_text"] == [w["summary_text"] for per_text in want for w in per_text]


def test_a_text_whose_attention_cannot_fit_is_a_memory_error_not_an_oom_kill(folders):
    """T5's relative positions and a rotary chat model take any length; a long text made
    attention scores that had the OOM killer end R (summarization), or ran for ever (chat)."""
    from pybridge import chat

    long_words, one_word = "a " * 500_000, "a" * 1_000_000  # 10^12 scores and more
    with pytest.raises(errors.MemoryLimitError, match="truncation = TRUE"):
        P.run("summarization", [long_words], folders["t5"])
    with pytest.raises(errors.MemoryLimitError, match="Shorten the prompts"):
        P.run("text-generation", [one_word], folders["chat"], args={"max_new_tokens": 2})
    local = chat.Chat([{"local": True, "model": folders["chat"]}], model=folders["chat"])
    with pytest.raises(errors.MemoryLimitError):
        local.send(one_word)
    assert local.turns == []  # the refused turn is not kept


def test_length_check_counts_long_texts_in_one_batch_and_quietly(folders):
    """The check names exactly the texts over the limit (counted in batches: the start of each
    long text, then whole texts whose start fits), without transformers' own warning."""
    tok = transformers.AutoTokenizer.from_pretrained(folders["sentiment"])
    limit = tok.model_max_length = 40
    width = (limit + 8) * P.PREFIX_CHARS_PER_TOKEN
    items = [
        "short",
        "word " * 20,  # 2 tokens a word, and 2 special tokens: over
        "word " * 15,  # fits, though longer than the limit in characters
        "x" * (width + 100),  # one unknown word longer than the start: [UNK], fits
        "word " * (width // 5 + 50),  # over in its start already: estimated from it
    ]
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    transformers.logging.add_handler(handler)
    try:
        found = dict(P._over(tok, items, limit))
    finally:
        transformers.logging.remove_handler(handler)
    assert sorted(found) == [1, 4]
    assert found[1] == len(tok(items[1])["input_ids"])
    assert found[4] >= len(tok(items[4])["input_ids"]) * 0.9
    assert "Token indices sequence length" not in logged.getvalue()
