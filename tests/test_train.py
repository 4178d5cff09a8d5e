"""pybridge.train against a plain transformers Trainer script on the same data, model and seed."""

import math

import numpy as np
import pytest

from pybridge import errors, jobs, train
from pybridge.fixtures import models as demo_models
from pybridge.fixtures import task_models, trainer_reference


@pytest.fixture(scope="module")
def bert():
    return task_models.ensure(names=["bert"])["bert"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _split(n=120):
    d = trainer_reference.toy_classification(n)
    cut = n * 4 // 5
    return (d["text"][:cut], d["label"][:cut]), (d["text"][cut:], d["label"][cut:])


def test_stepping_in_slices_changes_no_loss(bert, tmp_path):
    """The worker thread is stepped in slices far shorter than a step; the losses still equal a
    plain Trainer run's (datasets.Dataset.from_dict + map, as a Python user writes it)."""
    pytest.importorskip("datasets")
    (texts, labels), (ev_texts, ev_labels) = _split()
    job = train.start(
        bert,
        texts,
        labels,
        ev_texts,
        ev_labels,
        epochs=2,
        learning_rate=1e-3,
        batch_size=8,
        seed=3,
        output_dir=str(tmp_path / "ours"),
        args={"logging_steps": 1},
    )
    states = []
    while not (state := jobs.step(job, seconds=0.001))["done"]:
        states.append(state)
    ours = jobs.result(job)
    assert len(states) > 1 and states[-1]["total"] == 24
    history = trainer_reference.plain_trainer(
        bert,
        texts,
        labels,
        ev_texts,
        ev_labels,
        str(tmp_path / "ref"),
        epochs=2,
        learning_rate=1e-3,
        batch_size=8,
        seed=3,
        logging_steps=1,
    )
    ref_loss = [h["loss"] for h in history if "loss" in h]
    loss = ours["metrics"]["loss"]
    np.testing.assert_allclose(loss[~np.isnan(loss)], ref_loss, rtol=0, atol=1e-6)
    ref_eval = [h["eval_loss"] for h in history if "eval_loss" in h]
    ev = ours["metrics"]["eval_loss"]
    np.testing.assert_allclose(ev[~np.isnan(ev)], ref_eval, rtol=0, atol=1e-6)
    assert ours["metrics"]["step"].dtype == np.int32


def test_metrics_are_accuracy_and_macro_f1():
    class Prediction:
        predictions = np.array([[2.0, 1, 0], [0, 2, 1], [0, 2, 1], [0, 1, 2], [2, 0, 1]])
        label_ids = np.array([0, 1, 2, 2, 1])

    got = train.classification_metrics(Prediction)
    assert got["accuracy"] == pytest.approx(3 / 5)
    # per class: f1(0) = 2/3 (tp 1, fp 1), f1(1) = 1/2 (tp 1, fp 1, fn 1), f1(2) = 2/3
    assert got["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"args": {"learnin_rate": 1}}, "learnin_rate"),
        ({"args": {"output_dir": "x"}}, "output_dir"),
        ({"args": {"hub_token": "hf_abcdefghijkl"}}, "hub_token"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.0**31}, "epochs"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"lora": {"rank": 4}}, "lora"),
    ],
)
def test_bad_arguments_are_refused_before_loading(bert, tmp_path, kwargs, argument):
    (texts, labels), _ = _split(20)
    with pytest.raises(errors.InvalidArgumentError) as info:
        train.start(bert, texts, labels, output_dir=str(tmp_path), **kwargs)
    assert info.value.fields["argument"] == argument


def test_label_checks(bert, tmp_path):
    (texts, labels), (ev_texts, _) = _split(20)
    with pytest.raises(errors.InvalidArgumentError, match="single class"):
        train.start(bert, texts, ["a"] * len(texts), output_dir=str(tmp_path))
    with pytest.raises(errors.InvalidArgumentError, match="gamma"):
        train.start(
            bert, texts, labels, ev_texts, ["gamma"] * len(ev_texts), output_dir=str(tmp_path)
        )


def test_text_generation_on_a_model_without_a_causal_head(tmp_path):
    t5 = task_models.ensure(names=["t5"])["t5"]
    with pytest.raises(errors.UnsupportedError):
        train.start(t5, ["a text", "another"], task="text-generation", output_dir=str(tmp_path))


def test_metric_columns_keep_one_row_per_log_and_evaluation():
    history = [
        {"loss": 1.0, "epoch": 0.5, "step": 1},
        {"eval_loss": 0.8, "epoch": 1.0, "step": 2},
        {"train_runtime": 1.0, "epoch": 1.0, "step": 2},
    ]
    cols = train.metric_columns(history)
    assert list(cols) == ["epoch", "step", "loss", "eval_loss"]
    assert cols["step"].tolist() == [1, 2]
    assert math.isnan(cols["loss"][1]) and cols["eval_loss"][1] == 0.8


def test_lora_on_an_architecture_peft_has_no_default_for_adapts_every_linear_layer(tmp_path):
    """peft 0.21 names no default target modules for DistilBERT: LoRA takes every linear layer."""
    distilbert = demo_models.ensure(names=["distilbert"])["distilbert"]
    (texts, labels), _ = _split(40)
    job = train.start(
        distilbert,
        texts,
        labels,
        epochs=1,
        batch_size=8,
        output_dir=str(tmp_path / "lora"),
        lora={"merge": True},
    )
    while not jobs.step(job, seconds=1.0)["done"]:
        pass
    out = jobs.result(job)
    assert 0 < out["trainable"] < out["parameters"] / 10


def test_resume_skips_a_checkpoint_a_killed_save_left_half_written(tmp_path):
    folder = tmp_path / train.CHECKPOINTS
    for step, files in ((5, ["config.json", "trainer_state.json"]), (10, ["config.json"])):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        for name in files:
            (folder / f"checkpoint-{step}" / name).write_text("{}")
    assert train._last_checkpoint(str(tmp_path)) == str(folder / "checkpoint-5")
    (folder / "checkpoint-5" / "trainer_state.json").unlink()
    assert train._last_checkpoint(str(tmp_path)) is None
