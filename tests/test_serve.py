"""The local inference server (python -m pybridge.serve) against real clients: openai,
huggingface_hub's InferenceClient, plain HTTP, and the bodies ellmer sends. Every answer is
compared with transformers or sentence-transformers run in this process on the same input.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest

from pybridge.fixtures import models as model_fixtures
from pybridge.fixtures import task_models

ROOT = Path(__file__).resolve().parent.parent
CHAT = "hfbridge-tiny/chat"
MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "The food was excellent."},
]


class Server:
    def __init__(self, args, env=None, log=None):
        self.log = log
        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybridge.serve", *args],
            stdout=subprocess.PIPE,
            stderr=open(log, "w") if log else subprocess.DEVNULL,
            text=True,
            env=full_env,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("hfbridge serve ready at "):
            self.stop()
            raise RuntimeError(f"the server did not start: {line!r}; log: {self.read_log()}")
        self.url = line.split(" at ", 1)[1].strip()

    def read_log(self) -> str:
        return Path(self.log).read_text() if self.log and Path(self.log).exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    built = task_models.ensure(names=["chat", "gpt2", "sentiment", "reranker"])
    built["minilm"] = _with_prompts(model_fixtures.minilm_folder(), tmp_path_factory)
    return built


def _with_prompts(folder, tmp_path_factory) -> str:
    """all-MiniLM-L6-v2 with a sentence-transformers prompt named "query" (its files linked)."""
    out = tmp_path_factory.mktemp("minilm-prompts")
    for entry in Path(folder).iterdir():
        if entry.name != "config_sentence_transformers.json":
            (out / entry.name).symlink_to(entry)
    config = json.loads((Path(folder) / "config_sentence_transformers.json").read_text())
    config["prompts"] = {"query": "query: "}
    (out / "config_sentence_transformers.json").write_text(json.dumps(config))
    return str(out)


@pytest.fixture(scope="module")
def served(folders, mirror, mirror_root, tmp_path_factory):
    from pybridge.mirror import publish_folder

    publish_folder(mirror_root, CHAT, folders["chat"])
    home = tmp_path_factory.mktemp("serve-home")
    env = {"HF_ENDPOINT": mirror.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    args = [
        "--model", f"chat={CHAT}",
        "--model", f"text-generation={folders['gpt2']}",
        "--model", f"feature-extraction={folders['minilm']}",
        "--model", f"text-classification={folders['sentiment']}",
        "--model", f"rerank={folders['reranker']}",
        "--max-tokens", "48", "--max-inputs", "300", "--max-body-bytes", "200000",
    ]  # fmt: skip
    server = Server(args, env, log)
    server.env, server.home = env, home
    yield server
    server.stop()


def post(server, route, body, **kw):
    return httpx.post(server.url + route, json=body, timeout=60, **kw)


# ---- in-process references --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_reference(folders):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.cli.serving.utils import parse_assistant_message

    tok = AutoTokenizer.from_pretrained(folders["chat"])
    model = AutoModelForCausalLM.from_pretrained(folders["chat"])

    def reply(messages, max_new_tokens=16):
        import torch

        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, ids.shape[1] :].tolist()
        # transformers' own reading of a reply (its response template, for Qwen2 models)
        content, _, _ = parse_assistant_message(
            tok,
            model,
            new,
            input_ids=ids,
            cleaned_content=tok.decode(new, skip_special_tokens=True),
        )
        return content, ids.shape[1], len(new)

    return reply


@pytest.fixture(scope="module")
def st_model(folders):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folders["minilm"], device="cpu")


# ---- OpenAI -----------------------------------------------------------------------------------


def test_openai_chat_equals_transformers_generate(served, chat_reference):
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="unused")
    out = client.chat.completions.create(
        model=CHAT, messages=MESSAGES, max_tokens=16, temperature=0
    )
    text, n_in, n_out = chat_reference(MESSAGES, 16)
    assert out.choices[0].message.content == text
    assert out.usage.prompt_tokens == n_in and out.usage.completion_tokens == n_out
    assert out.model == CHAT


def test_openai_stream_joins_to_the_same_reply_and_ends_with_done(served, chat_reference):
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="unused")
    chunks = list(
        client.chat.completions.create(
            model=CHAT,
            messages=MESSAGES,
            max_completion_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text, n_in, n_out = chat_reference(MESSAGES, 16)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == n_out
    assert all(c.usage is None for c in chunks[:-1])
    with httpx.stream(
        "POST",
        served.url + "/v1/chat/completions",
        json={"messages": MESSAGES, "stream": True, "max_tokens": 4},
        timeout=60,
    ) as raw:
        events = [line for line in raw.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert not any('"usage"' in e for e in events)  # usage only when asked for


def test_openai_stop_sequences_are_left_out_of_the_answer(served, chat_reference):
    """As OpenAI's API: the answer ends before the stop sequence, streamed or not."""
    from openai import OpenAI

    whole, _, _ = chat_reference(MESSAGES, 16)
    stop = whole[5:8]
    expected = whole[: whole.find(stop)]
    client = OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    ask = {"model": CHAT, "messages": MESSAGES, "max_tokens": 16, "temperature": 0}
    out = client.chat.completions.create(**ask, stop=[stop, "never-met"])
    assert out.choices[0].message.content == expected
    assert out.choices[0].finish_reason == "stop"
    chunks = [c for c in client.chat.completions.create(**ask, stop=stop, stream=True) if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_models_retrieve_answers_the_model_and_logprobs_are_refused(served):
    from openai import OpenAI, UnprocessableEntityError

    client = OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    model = client.models.retrieve(CHAT)
    listed = {m.id: m for m in client.models.list()}
    assert model == listed[CHAT] and model.task == "chat"
    assert httpx.get(served.url + "/v1/models/nope/none").status_code == 404
    with pytest.raises(UnprocessableEntityError) as refused:
        client.chat.completions.create(
            model=CHAT, messages=MESSAGES, max_tokens=2, logprobs=True, top_logprobs=2
        )
    assert "logprobs" in refused.value.response.json()["error"]


def test_openai_completion_equals_transformers_generate(served, folders):
    """/v1/completions: a plain prompt, no chat template; the limit in either field."""
    import torch
    from openai import OpenAI
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folders["chat"])
    model = AutoModelForCausalLM.from_pretrained(folders["chat"])
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        new = model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :]
    client = OpenAI(base_url=served.url + "/v1", api_key="unused")
    out = client.completions.create(
        model=CHAT, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert out.choices[0].text == tok.decode(new, skip_special_tokens=True)
    assert out.usage.completion_tokens == len(new)
    too_many = post(served, "/v1/completions", {"prompt": "Hi", "max_completion_tokens": 10**6})
    assert too_many.status_code == 422 and "max_completion_tokens" in too_many.json()["error"]


def test_openai_embeddings_equal_sentence_transformers(served, st_model, folders):
    from openai import OpenAI

    texts = ["A cat sat on the mat.", "Deep learning is powerful.", "Paris is in France."]
    client = OpenAI(base_url=served.url + "/v1", api_key="unused")
    out = client.embeddings.create(model=folders["minilm"], input=texts)
    got = np.array([d.embedding for d in out.data])
    np.testing.assert_allclose(got, st_model.encode(texts), atol=1e-5)
    assert [d.index for d in out.data] == [0, 1, 2]


def test_embedding_options_are_those_of_tei_and_openai(served, st_model, folders):
    """normalize, dimensions, truncate and prompt_name on /embed; dimensions and the base64
    encoding (what OpenAI's client asks for by default) on /v1/embeddings, and usage counted in
    the tokenizer's tokens. Each against sentence-transformers."""
    import torch
    from openai import OpenAI
    from sentence_transformers import SentenceTransformer

    texts = ["A cat sat on the mat.", "Deep learning is powerful."]
    assert type(st_model[-1]).__name__ == "Normalize"
    raw = SentenceTransformer(modules=list(st_model)[:-1], device="cpu").encode(texts)

    def embed(**options):
        answer = post(served, "/embed", {"inputs": texts, "model": folders["minilm"], **options})
        assert answer.status_code == 200, answer.text
        return np.asarray(answer.json())

    def unit(m):
        return torch.nn.functional.normalize(torch.tensor(m), dim=1).numpy()

    np.testing.assert_allclose(embed(normalize=False), raw, atol=1e-5)
    np.testing.assert_allclose(embed(normalize=True), st_model.encode(texts), atol=1e-5)
    np.testing.assert_allclose(embed(dimensions=8), unit(raw[:, :8]), atol=1e-5)
    np.testing.assert_allclose(embed(dimensions=8, normalize=False), raw[:, :8], atol=1e-5)
    np.testing.assert_allclose(
        embed(prompt_name="query"), st_model.encode(texts, prompt_name="query"), atol=1e-5
    )
    long = {"inputs": ["word " * 400], "model": folders["minilm"]}
    assert post(served, "/embed", long).status_code == 200  # cut at the model's length
    refused = post(served, "/embed", {**long, "truncate": False})
    assert refused.status_code == 413 and "tokens" in refused.json()["error"]
    for bad in (
        {"normalize": "no"},
        {"truncate": 0},
        {"dimensions": 0},
        {"dimensions": 10_000},
        {"prompt_name": "passage"},
        {"truncation_direction": "left"},
    ):
        answer = post(served, "/embed", {"inputs": texts, "model": folders["minilm"], **bad})
        assert answer.status_code == 422, (bad, answer.text)

    client = OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    out = client.embeddings.create(model=folders["minilm"], input=texts)  # asks for base64
    np.testing.assert_allclose([d.embedding for d in out.data], st_model.encode(texts), atol=1e-5)
    tokens = sum(len(ids) for ids in st_model.tokenizer(texts)["input_ids"])
    assert out.usage.prompt_tokens == out.usage.total_tokens == tokens
    cut = client.embeddings.create(model=folders["minilm"], input=texts, dimensions=16)
    np.testing.assert_allclose([d.embedding for d in cut.data], unit(raw[:, :16]), atol=1e-5)
    bad = post(served, "/v1/embeddings", {"input": texts, "encoding_format": "hex"})
    assert bad.status_code == 422, bad.text


def test_models_lists_each_served_model_with_its_task_and_pinned_commit(served):
    data = httpx.get(served.url + "/v1/models").json()["data"]
    by_id = {m["id"]: m for m in data}
    assert by_id[CHAT]["task"] == "chat"
    assert len(by_id[CHAT]["revision"]) == 40  # resolved through the Hub to a commit
    assert {m["task"] for m in data} == {
        "chat",
        "text-generation",
        "feature-extraction",
        "text-classification",
        "rerank",
    }


# ---- huggingface_hub's InferenceClient ---------------------------------------------------------


def test_inference_client_chat_and_stream(served, chat_reference):
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=served.url, api_key="unused")
    out = client.chat_completion(MESSAGES, model=CHAT, max_tokens=16, temperature=0)
    text, _, _ = chat_reference(MESSAGES, 16)
    assert out.choices[0].message.content == text
    streamed = client.chat_completion(MESSAGES, max_tokens=16, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text


def test_inference_client_text_generation_equals_generate(served, folders):
    from huggingface_hub import InferenceClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folders["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(folders["gpt2"])
    ids = tok("The cat", return_tensors="pt")["input_ids"]
    ref = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
    client = InferenceClient(base_url=f"{served.url}/models/{folders['gpt2']}", api_key="unused")
    assert client.text_generation("The cat", max_new_tokens=8) == expected
    stream = client.text_generation("The cat", max_new_tokens=8, stream=True, details=True)
    events = list(stream)
    assert "".join(e.token.text for e in events if not e.token.special) == expected
    assert events[-1].generated_text == expected and events[-1].details.generated_tokens <= 8
    raw = post(
        served,
        "/",
        {"inputs": "The cat", "parameters": {"max_new_tokens": 8}, "model": folders["gpt2"]},
    )
    assert raw.json() == [{"generated_text": expected}]  # return_full_text is false, as in TGI
    full = post(
        served,
        "/generate",
        {
            "inputs": "The cat",
            "parameters": {"max_new_tokens": 8, "return_full_text": True},
            "model": folders["gpt2"],
        },
    )
    assert full.json()["generated_text"] == "The cat" + expected


def test_tgi_stop_sequences_end_the_generation_as_generate_does(served, folders):
    """TGI's parameters.stop (InferenceClient's stop): generation ends after the token that
    completes one, which the text keeps, with finish_reason stop_sequence."""
    from huggingface_hub import InferenceClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folders["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(folders["gpt2"])
    ids = tok("The cat", return_tensors="pt")["input_ids"]
    greedy = dict(do_sample=False, pad_token_id=tok.pad_token_id, max_new_tokens=16)
    whole = tok.decode(model.generate(ids, **greedy)[0, ids.shape[1] :], skip_special_tokens=True)
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    ref = model.generate(ids, stop_strings=[stop], tokenizer=tok, **greedy)
    expected = tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
    assert stop in expected and len(expected) < len(whole)
    client = InferenceClient(base_url=f"{served.url}/models/{folders['gpt2']}", api_key="unused")
    out = client.text_generation("The cat", max_new_tokens=16, stop=[stop], details=True)
    assert out.generated_text == expected and out.details.finish_reason == "stop_sequence"
    events = list(client.text_generation("The cat", max_new_tokens=16, stop=[stop], stream=True,
                                         details=True))  # fmt: skip
    assert events[-1].generated_text == expected
    assert events[-1].details.finish_reason == "stop_sequence"
    bad = post(served, "/generate", {"inputs": "Hi", "parameters": {"stop": [""]}})
    assert bad.status_code == 422


def test_tgi_routes_default_to_the_server_max_tokens(served, folders):
    """The server's max_tokens (48 here) is the most new tokens a request may ask for, and the
    default: a TGI request that names none is served, not refused for TGI's default of 100."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folders["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(folders["gpt2"])
    ids = tok("The cat", return_tensors="pt")["input_ids"]
    ref = model.generate(ids, max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
    body = {"inputs": "The cat", "model": folders["gpt2"]}
    for route in ("/generate", "/"):
        answer = post(served, route, body)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert (got[0] if route == "/" else got)["generated_text"] == expected


def test_inference_client_feature_extraction_and_classification(served, folders, st_model):
    from huggingface_hub import InferenceClient
    from transformers import pipeline

    emb = InferenceClient(base_url=f"{served.url}/models/{folders['minilm']}", api_key="x")
    got = np.asarray(emb.feature_extraction("The weather is lovely today."))
    np.testing.assert_allclose(
        got.reshape(-1), st_model.encode(["The weather is lovely today."])[0], atol=1e-5
    )
    clf = InferenceClient(base_url=f"{served.url}/models/{folders['sentiment']}", api_key="x")
    out = clf.text_classification("I love this wonderful film.", top_k=2)
    ref = pipeline("text-classification", model=folders["sentiment"], top_k=None)(
        "I love this wonderful film."
    )
    ref = ref[0] if ref and isinstance(ref[0], list) else ref
    assert [o.label for o in out] == [r["label"] for r in ref]
    np.testing.assert_allclose([o.score for o in out], [r["score"] for r in ref], atol=1e-5)


def test_inference_client_sentence_similarity_equals_sentence_transformers(
    served, folders, st_model
):
    from huggingface_hub import InferenceClient

    source, others = "The weather is lovely today.", ["It is sunny.", "Deep learning is powerful."]
    want = st_model.similarity(st_model.encode([source]), st_model.encode(others))[0].tolist()
    client = InferenceClient(base_url=f"{served.url}/models/{folders['minilm']}", api_key="x")
    np.testing.assert_allclose(client.sentence_similarity(source, others), want, atol=1e-5)
    # at the root without a model: the embedding model, not the first served (chat) one
    root = InferenceClient(base_url=served.url, api_key="x")
    np.testing.assert_allclose(root.sentence_similarity(source, others), want, atol=1e-5)
    body = {"inputs": {"source_sentence": source, "sentences": others}}
    np.testing.assert_allclose(post(served, "/similarity", body).json(), want, atol=1e-5)
    wrong = post(served, f"/models/{CHAT}/", body)
    assert wrong.status_code == 404 and f"'{CHAT}' runs chat" in wrong.json()["error"]
    bad = post(served, "/similarity", {"inputs": {"source_sentence": source}})
    assert bad.status_code == 422 and "sentences" in bad.json()["error"]


# ---- TEI, TGI and plain HTTP -------------------------------------------------------------------


def test_tei_embed_is_nested_and_predict_batches(served, folders, st_model):
    embedded = post(served, "/embed", {"inputs": "hello", "model": folders["minilm"]}).json()
    assert isinstance(embedded, list) and len(embedded) == 1 and len(embedded[0]) == 384
    np.testing.assert_allclose(embedded[0], st_model.encode(["hello"])[0], atol=1e-5)
    rows = post(served, "/predict", {"inputs": ["good", "bad"]}).json()
    assert len(rows) == 2 and all(set(r[0]) == {"label", "score"} for r in rows)
    info = httpx.get(served.url + "/info").json()
    assert info["max_new_tokens"] == 48 and len(info["models"]) == 5
    assert httpx.get(served.url + "/health").json() == {"status": "ok"}


def test_tei_rerank_equals_sentence_transformers_cross_encoder(served, folders):
    from sentence_transformers import CrossEncoder

    query = "Where does Alice live?"
    texts = ["Alice lives in Berlin.", "The cat sat on the mat.", "Bob met Carol in London."]
    ref = CrossEncoder(folders["reranker"], device="cpu").predict([(query, t) for t in texts])
    got = post(served, "/rerank", {"query": query, "texts": texts, "return_text": True}).json()
    assert [g["index"] for g in got] == list(np.argsort(-np.asarray(ref), kind="stable"))
    np.testing.assert_allclose([g["score"] for g in got], sorted(ref, reverse=True), atol=1e-6)
    assert [g["text"] for g in got] == [texts[g["index"]] for g in got]
    raw = post(served, "/rerank", {"query": query, "texts": texts, "raw_scores": True}).json()
    logits = np.log(np.asarray(ref) / (1 - np.asarray(ref)))
    np.testing.assert_allclose(sorted(g["score"] for g in raw), sorted(logits), atol=1e-4)
    bad = post(served, "/rerank", {"texts": texts})
    assert bad.status_code == 422 and bad.json()["error_type"] == "validation"


def test_curl_gets_the_same_embeddings_as_the_client(served, folders):
    out = subprocess.run(
        ["curl", "-s", "-X", "POST", served.url + "/embed", "-H", "Content-Type: application/json",
         "-d", json.dumps({"inputs": ["hello"], "model": folders["minilm"]})],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if out.returncode == 127:
        pytest.skip("curl is not installed")
    ref = post(served, "/embed", {"inputs": ["hello"], "model": folders["minilm"]}).json()
    np.testing.assert_allclose(json.loads(out.stdout), ref, atol=0)


def test_the_bodies_ellmer_sends_are_accepted(served):
    schema = {
        "type": "object",
        "properties": {"sentiment": {"type": "string"}},
        "required": ["sentiment"],
        "additionalProperties": False,
    }
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    }
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 8,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "structured_data", "schema": schema, "strict": True},
        },
        "tools": [tool],
        "seed": 1,
        "temperature": 0,
    }
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]", events
    usage = json.loads(events[-2][len("data: ") :])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] <= 8


# ---- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, content, status",
    [
        ("/v1/embeddings", b"{not json", 422),
        ("/v1/embeddings", b'{"input": 5}', 422),
        ("/embed", b'{"inputs": ["\xff\xfe"]}', 422),
        ("/v1/chat/completions", b'{"messages": "hi"}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "max_tokens": 4096}', 422),
        ("/v1/chat/completions", b'{"model": "nope/none", "messages": [{"role": "user"}]}', 404),
        ("/generate", b'{"inputs": ""}', 422),
        ("/embed", json.dumps({"inputs": ["x"] * 301}).encode(), 413),
        ("/embed", json.dumps({"inputs": ["x" * 250_000]}).encode(), 413),
        ("/v1/embeddings", b"[1, 2]", 422),
        ("/v1/chat/completions", b'{"max_tokens": 3}', 422),
        ("/v1/chat/completions", b'{"messages": ["hello"]}', 422),
        ("/v1/chat/completions", b'{"messages": [{"content": "hi"}]}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": 5}]}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "temperature": "hot"}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "top_p": -0.5}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "stop": 5}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "n": 3}', 422),
        ("/v1/chat/completions",
         b'{"messages": [{"role": "user"}], "top_p": -1, "stream": true}', 422),
        ("/v1/completions", b'{"max_tokens": 3}', 422),
        ("/generate", b'{"inputs": "Hi", "parameters": {"temperature": "x"}}', 422),
        ("/generate", b'{"inputs": "Hi", "parameters": {"seed": -1}}', 422),
        ("/generate", b'{"inputs": "Hi", "parameters": {"top_k": 1.5}}', 422),
        ("/generate", b'{"inputs": "Hi", "parameters": {"details": "yes"}}', 422),
        ("/generate", b'{"inputs": "Hi", "parameters": {"repetition_penalty": 0}}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": [{"x": 1}]}]}', 422),
        ("/v1/chat/completions",
         b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "stream_options": "x"}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "model": ["a"]}', 422),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "model": 5}', 422),
        ("/v1/chat/completions",
         b'{"messages": [{"role": "user"}], "logit_bias": {"99999999": 5}}', 422),
        ("/v1/chat/completions",
         b'{"messages": [{"role": "user"}, {"role": "assistant", "tool_calls": "x"}]}', 422),
        ("/v1/chat/completions",
         b'{"messages": [{"role": "user"}, {"role": "assistant", "tool_calls": [{"id": "1", '
         b'"type": "function", "function": {"name": "f", "arguments": "{no"}}]}]}', 422),
        ("/v1/chat/completions",
         b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 422),
        ("/v1/completions", b'{"prompt": "", "max_tokens": 3}', 422),
        ("/embed", b'{"inputs": "x", "model": 5}', 422),
    ],
)  # fmt: skip
def test_bad_requests_get_the_error_shape(served, route, content, status):
    r = httpx.post(
        served.url + route, content=content, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "error_type"} and body["error"]


def test_a_chunked_body_over_the_limit_is_413_and_a_small_one_is_served(served, folders):
    def chunks(total):
        head = b'{"input": "'
        yield head
        for _ in range(total // 10_000):
            yield b"a" * 10_000
        yield b'", "model": "' + folders["minilm"].encode() + b'"}'

    headers = {"content-type": "application/json"}
    big = httpx.post(served.url + "/v1/embeddings", content=chunks(300_000), headers=headers)
    assert big.status_code == 413 and big.json()["error_type"], big.text
    small = httpx.post(served.url + "/v1/embeddings", content=chunks(20_000), headers=headers)
    assert small.status_code == 200 and len(small.json()["data"]) == 1


def test_a_port_in_use_fails_the_start_with_a_network_line(served, folders):
    port = served.url.rsplit(":", 1)[1]
    out = subprocess.run(
        [sys.executable, "-m", "pybridge.serve", "--model",
         f"feature-extraction={folders['minilm']}", "--port", port],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.startswith("hfbridge serve failed: network Could not listen on"), out.stdout


def test_a_client_that_leaves_mid_stream_and_fifty_at_once_leave_it_healthy(served, folders):
    with httpx.stream(
        "POST",
        served.url + "/v1/chat/completions",
        json={"messages": MESSAGES, "stream": True, "max_tokens": 48},
        timeout=60,
    ) as r:
        next(r.iter_lines())  # one event, then the client goes
    texts = [f"text number {i}" for i in range(50)]

    def one(text):
        return post(served, "/v1/embeddings", {"input": text, "model": folders["minilm"]})

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, texts))
    assert [a.status_code for a in answers] == [200] * 50
    assert httpx.get(served.url + "/health").json() == {"status": "ok"}


def test_a_generation_stops_at_the_server_timeout_and_frees_the_model(tmp_path):
    """A slow model and a 2 s timeout: a long chat answers with what was generated by then, and a
    TGI request that timed out leaves the model free for the next one."""
    slow = task_models.ensure(names=["chat_slow"])["chat_slow"]
    args = ["--model", f"chat={slow}", "--max-tokens", "4096", "--timeout", "2"]
    server = Server(args, {}, tmp_path / "slow.log")
    try:
        from transformers import GenerationConfig

        ends = GenerationConfig.from_pretrained(slow).eos_token_id
        never_end = {str(i): -100 for i in (ends if isinstance(ends, list) else [ends])}
        body = {"messages": MESSAGES, "max_tokens": 4000, "temperature": 0, "logit_bias": never_end}
        answer = post(server, "/v1/chat/completions", body).json()
        assert 0 < answer["usage"]["completion_tokens"] < 4000
        assert answer["choices"][0]["finish_reason"] == "length"  # not a natural "stop"
        with httpx.stream(
            "POST", server.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60
        ) as r:
            events = [json.loads(e[6:]) for e in r.iter_lines() if e.startswith("data: {")]
        assert [c["choices"][0].get("finish_reason") for c in events if c["choices"]][
            -1
        ] == "length"
        params = {"max_new_tokens": 4000}  # greedy from "Hi": this model never ends it
        timed_out = post(server, "/generate", {"inputs": "Hi", "parameters": params})
        assert timed_out.status_code == 503 and timed_out.json()["error_type"] == "timeout"
        after = post(server, "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 1}})
        assert after.status_code == 200, after.text
    finally:
        server.stop()


def test_a_tgi_stream_whose_client_leaves_frees_the_model(tmp_path):
    """Greedy from "Hi" the slow model never ends, so a stream of 4000 tokens would hold the
    model's lock for minutes: once its client leaves, the next request is answered."""
    slow = task_models.ensure(names=["chat_slow"])["chat_slow"]
    args = ["--model", f"chat={slow}", "--max-tokens", "4096", "--timeout", "600"]
    server = Server(args, {}, tmp_path / "stream.log")
    try:
        body = {"inputs": "Hi", "parameters": {"max_new_tokens": 4000}}
        with httpx.stream("POST", server.url + "/generate_stream", json=body, timeout=60) as r:
            next(r.iter_lines())  # one token, then the client goes
        one = {"inputs": "Hi", "parameters": {"max_new_tokens": 1}}
        after = httpx.post(server.url + "/generate", json=one, timeout=60)  # not minutes
        assert after.status_code == 200, after.text
    finally:
        server.stop()


def test_the_log_holds_no_prompt_and_no_authorization(served):
    body = {"messages": [{"role": "user", "content": "SECRETPROMPT"}], "max_tokens": 2}
    auth = {"Authorization": "Bearer hf_LogLeakCheck0123456789"}
    assert post(served, "/v1/chat/completions", body, headers=auth).status_code == 200
    time.sleep(0.2)
    log = served.read_log()
    assert "POST /v1/chat/completions 200" in log
    assert "SECRETPROMPT" not in log and "LogLeakCheck" not in log


def test_a_bad_text_among_concurrent_embedding_requests_fails_alone(served, folders, st_model):
    """A lone surrogate is valid JSON and no text: it is refused by itself (422), and the good
    requests queued with it are answered."""
    good_texts = [f"good text number {i} " * 20 for i in range(10)]

    def good(text):
        return post(served, "/embed", {"inputs": [text] * 20, "model": folders["minilm"]})

    def bad():
        content = b'{"inputs": ["\\ud800"]}'
        headers = {"content-type": "application/json"}
        return httpx.post(served.url + "/embed", content=content, headers=headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(11) as pool:
        goods = [pool.submit(good, t) for t in good_texts[:5]]
        refused = pool.submit(bad)
        goods += [pool.submit(good, t) for t in good_texts[5:]]
        answers = [g.result() for g in goods]
    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    for text, answer in zip(good_texts, answers):
        np.testing.assert_allclose(answer.json()[0], st_model.encode([text])[0], atol=1e-5)
    assert refused.result().status_code == 422, refused.result().text
    assert "surrogate" in refused.result().json()["error"]


def test_a_batch_that_fails_is_run_again_request_by_request():
    """The batcher's own behaviour, with a runner that cannot take one text: only the request
    that holds it fails."""
    import asyncio

    from pybridge.serve.batching import Batcher

    def run(texts):
        if "poison" in texts:
            raise ValueError("cannot embed that")
        return [len(t) for t in texts]

    batcher = Batcher(run, max_texts=100, max_queue=100, name="test")

    async def all_at_once():
        requests = [["a", "bb"], ["poison"], ["ccc"]]
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)

    first, failed, last = asyncio.run(all_at_once())
    assert first == [1, 2] and last == [3]
    assert isinstance(failed, ValueError)


def test_a_model_failure_is_answered_on_a_connection_that_stays_open(served, folders):
    """A prompt longer than gpt2's positions makes generate() fail (424); the answer comes
    from the route, so the keep-alive connection serves the next request and the log has no
    traceback (which would quote the prompt)."""
    import http.client

    host, port = served.url.split("//")[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"content-type": "application/json"}
    body = {"inputs": "LONGPROMPT " * 3000, "parameters": {"max_new_tokens": 2}}
    conn.request("POST", f"/models/{folders['gpt2']}/generate", json.dumps(body), headers)
    failed = conn.getresponse()
    assert failed.status == 424 and json.loads(failed.read())["error_type"] == "generation"
    conn.request("GET", "/health")  # the same connection
    assert conn.getresponse().status == 200
    conn.close()
    time.sleep(0.2)
    log = served.read_log()
    assert "Traceback" not in log and "LONGPROMPT" not in log


# ---- security and start-up ----------------------------------------------------------------------


def test_an_api_key_guards_every_route(folders, tmp_path):
    key = "sk-local-test-key-123"
    server = Server(
        ["--model", f"feature-extraction={folders['minilm']}", "--api-key-env", "TEST_KEY"],
        {"TEST_KEY": key},
        tmp_path / "key.log",
    )
    try:
        for route in ("/health", "/v1/models", "/info"):
            assert httpx.get(server.url + route).status_code == 401
            wrong = httpx.get(server.url + route, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error_type"] == "authentication"
            ok = httpx.get(server.url + route, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        assert key not in " ".join(server.proc.args)
    finally:
        server.stop()
    assert key not in server.read_log()


def test_a_non_loopback_host_without_a_key_is_refused_before_loading(folders):
    out = subprocess.run(
        [sys.executable, "-m", "pybridge.serve", "--model", f"chat={folders['chat']}",
         "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "needs an API key" in out.stderr


def test_offline_serves_the_pinned_commit_from_the_cache(served, tmp_path):
    env = {**served.env, "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there
    server = Server(["--model", f"chat={CHAT}", "--offline"], env, tmp_path / "off.log")
    try:
        online = httpx.get(served.url + "/v1/models").json()["data"]
        offline = httpx.get(server.url + "/v1/models").json()["data"]
        pick = {m["id"]: m["revision"] for m in online}
        assert offline[0]["revision"] == pick[CHAT]
    finally:
        server.stop()


def test_continuous_batching_is_greedy_and_sampling_requests_stay_reproducible(
    folders, chat_reference, tmp_path
):
    """With --continuous-batching, greedy requests share the batch (whose sampling settings are
    fixed when its cache is made, at start); a request that samples runs on the sequential path,
    so its seed is honoured."""
    from openai import OpenAI

    server = Server(
        ["--model", f"chat={folders['chat']}", "--continuous-batching"], log=tmp_path / "l"
    )
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="unused")

        def ask(**kw):
            return (
                client.chat.completions.create(
                    model=folders["chat"], messages=MESSAGES, max_tokens=16, **kw
                )
                .choices[0]
                .message.content
            )

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            greedy = list(pool.map(lambda _: ask(temperature=0), range(4)))
        assert greedy == [chat_reference(MESSAGES, 16)[0]] * 4
        sampled = [ask(temperature=1.5, seed=s) for s in (7, 7, 8)]
        assert sampled[0] == sampled[1] and sampled[0] != greedy[0]
    finally:
        server.stop()
