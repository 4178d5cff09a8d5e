"""pybridge.vision against transformers itself, on the tiny image models served by the mirror.

Each image task runs through the hub layer (repo ids on the local mirror) and is compared with
transformers' own pipeline built from the same folder, on the same image files: same labels,
scores within 1e-5, equal boxes, the same captions. ``embed_images`` is compared with CLIP's
``get_image_features`` run one image at a time, and ``embed_text`` on CLIP with
``get_text_features``. URLs are served by the local mirror (a dataset repo of the images).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pybridge import embed, errors, models, vision
from pybridge import pipeline as P
from pybridge.fixtures import vision_models as vm

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
PIL = pytest.importorskip("PIL")
load_image = transformers.image_utils.load_image  # as transformers' pipelines open images

TOL = 1e-5
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders():
    return vm.ensure()


@pytest.fixture(scope="module")
def images(folders):
    """PNG and JPEG files of three sizes, a grey one and an RGBA one."""
    root = folders["images"]
    return [os.path.join(root, name) for name in vm.image_files()]


@pytest.fixture(scope="module")
def hub(mirror, folders):
    for name, repo_id in vm.REPO_IDS.items():
        mirror.publish(repo_id, folders[name])
    mirror.publish(vm.IMAGES_REPO, folders["images"], repo_type="dataset")
    return dict(vm.REPO_IDS)


@pytest.fixture(scope="module")
def urls(mirror, hub, images):
    base = f"{mirror.url}/datasets/{vm.IMAGES_REPO}/resolve/main/"
    return [base + os.path.basename(p) for p in images]


@pytest.fixture(scope="module", autouse=True)
def empty_cache():
    models.cache_clear()
    yield
    models.cache_clear()


@pytest.fixture(scope="module")
def reference(folders):
    """transformers' pipeline of a task on a fixture folder, built once per (task, name)."""
    built = {}

    def get(task, name):
        if (task, name) not in built:
            built[task, name] = transformers.pipeline(task, model=folders[name], device="cpu")
        return built[task, name]

    return get


def flat(results, items):
    """transformers' per-image lists of dicts as (image, dict) rows."""
    return [(item, r) for item, res in zip(items, results) for r in res]


def assert_labels(ours, want):
    assert ours["image"] == [item for item, _ in want]
    assert ours["label"] == [r["label"] for _, r in want]
    np.testing.assert_allclose(ours["score"], [r["score"] for _, r in want], atol=TOL)
    assert ours["score"].dtype == np.float64


def test_image_classification_matches_transformers(hf_env, hub, images, reference):
    ref = reference("image-classification", "vit")
    for args in ({}, {"top_k": 2.0}, {"function_to_apply": "sigmoid", "top_k": None}):
        ours = P.run("image-classification", images, hub["vit"], args=args, env=hf_env)
        want = ref(images, **{k: int(v) if isinstance(v, float) else v for k, v in args.items()})
        assert_labels(ours, flat(want, images))
    # batches give what transformers' batches give
    ours = P.run("image-classification", images, hub["vit"], batch_size=4.0, env=hf_env)
    assert_labels(ours, flat(ref(images, batch_size=4), images))
    # the classifier learnt the colours
    top = P.run("image-classification", images, hub["vit"], args={"top_k": 1}, env=hf_env)
    named = dict(zip(top["image"], top["label"]))
    for path, what in vm.image_files().items():
        if what is not None:
            assert named[os.path.join(os.path.dirname(images[0]), path)] == what[0]


def test_zero_shot_image_classification_matches_transformers(hf_env, hub, images, reference):
    ref = reference("zero-shot-image-classification", "clip")
    labels = ["a red circle", "a green square", "a blue triangle"]
    for args in ({}, {"hypothesis_template": "{}"}):
        ours = P.run(
            "zero-shot-image-classification",
            images,
            hub["clip"],
            args={"candidate_labels": labels, **args},
            env=hf_env,
        )
        want = ref(images, candidate_labels=labels, **args)
        assert_labels(ours, flat(want, images))


def test_object_detection_boxes_equal_transformers(hf_env, hub, images, reference):
    ref = reference("object-detection", "detr")
    for args in ({}, {"threshold": 0.0}):
        ours = P.run("object-detection", images, hub["detr"], args=args, env=hf_env)
        want = flat(ref(images, **args), images)
        assert_labels(ours, want)
        for side in ("xmin", "ymin", "xmax", "ymax"):
            assert ours[side].tolist() == [r["box"][side] for _, r in want]
            assert ours[side].dtype == np.int32
    assert len(ours["image"]) == 5 * len(images)  # every query, at threshold 0


def test_image_to_text_matches_transformers(hf_env, hub, images, reference):
    ref = reference("image-text-to-text", "blip")
    for args in ({}, {"prompt": "a red", "max_new_tokens": 3.0}):
        ours = P.run("image-to-text", images, hub["blip"], args=args, env=hf_env)
        prompt = args.get("prompt", "")
        extra = {"max_new_tokens": 3} if args else {}
        want = [ref(p, text=prompt, **extra) for p in images]
        assert ours["image"] == images
        assert ours["generated_text"] == [w[0]["generated_text"] for w in want]
    assert ours["generated_text"][0].startswith("a red")
    plain = P.run("image-to-text", images[:1], hub["blip"], env=hf_env)
    assert plain["generated_text"][0].startswith("a red")  # what the captioner was taught


def test_urls_give_what_files_give(hf_env, hub, images, urls, reference):
    ours = P.run("image-classification", urls, hub["vit"], env=hf_env)
    files = P.run("image-classification", images, hub["vit"], env=hf_env)
    assert ours["label"] == files["label"]
    np.testing.assert_allclose(ours["score"], files["score"], atol=TOL)
    assert ours["image"][0] == urls[0]
    # transformers fetches URLs itself: the same result
    want = reference("image-classification", "vit")(urls)
    assert_labels(ours, flat(want, urls))
    emb = vision.embed_images(urls[:3], hub["clip"], env=hf_env)
    np.testing.assert_allclose(emb, vision.embed_images(images[:3], hub["clip"], env=hf_env))


def test_url_failures_are_network_errors(hf_env, hub, urls):
    missing = urls[0].rsplit("/", 1)[0] + "/missing.png"
    with pytest.raises(errors.NetworkError) as err:
        P.run("image-classification", [missing], hub["vit"], env=hf_env)
    assert err.value.fields["status"] == 404 and err.value.fields["url"] == missing
    with pytest.raises(errors.NetworkError):
        P.run("image-classification", ["http://127.0.0.1:9/x.png"], hub["vit"], env=hf_env)


def test_an_image_url_timeout_bounds_the_whole_download(fault_server):
    # each byte comes within the timeout, the whole body (10 s) does not
    with pytest.raises(errors.NetworkError, match="ReadTimeout"):
        vision.download(f"{fault_server.url}/_drip?every=0.25&count=40", timeout=1.5)


def clip_reference(folder):
    model = transformers.CLIPModel.from_pretrained(folder).eval()
    return model, transformers.CLIPProcessor.from_pretrained(folder)


def clip_image_features(model, processor, images):
    """transformers' CLIP image features, one image at a time."""
    with torch.no_grad():
        return np.stack(
            [
                model.get_image_features(**processor(images=load_image(p), return_tensors="pt"))
                .pooler_output[0]
                .numpy()
                for p in images
            ]
        )


def unit_rows(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_embed_images_equal_clip_image_features(hf_env, hub, folders, images):
    model, processor = clip_reference(folders["clip"])
    want = clip_image_features(model, processor, images)
    for batch_size in (1, 4, 32):
        ours = vision.embed_images(images, hub["clip"], batch_size=batch_size, env=hf_env)
        assert ours.dtype == np.float64 and ours.shape == (len(images), 16)
        np.testing.assert_allclose(ours, want, atol=TOL)
    unit = vision.embed_images(images, hub["clip"], normalize=True, env=hf_env)
    np.testing.assert_allclose(unit, unit_rows(want), atol=TOL)
    assert vision.embed_images([], hub["clip"], env=hf_env).shape == (0, 16)


def test_embed_text_on_clip_equals_text_features_in_one_space(hf_env, hub, folders, images):
    model, processor = clip_reference(folders["clip"])
    texts = ["a red circle", "a green square", "This is a photo of a blue triangle."]
    with torch.no_grad():
        batch = processor.tokenizer(texts, padding=True, return_tensors="pt")
        want = model.get_text_features(**batch).pooler_output.numpy()
        states = model.text_model(
            **processor.tokenizer(texts[:1], return_tensors="pt"), output_hidden_states=True
        ).hidden_states
    ours = embed.embed(texts, hub["clip"], env=hf_env)
    np.testing.assert_allclose(ours, want, atol=TOL)
    # one space: a text and the pictures compare as transformers' own CLIP features do (which
    # picture the tiny CLIP puts nearest is its own matter: it is trained anew on each machine)
    img = vision.embed_images(images, hub["clip"], normalize=True, env=hf_env)
    txt = embed.embed(texts[:1], hub["clip"], normalize=True, env=hf_env)
    ref = unit_rows(clip_image_features(model, processor, images)) @ unit_rows(want[0])
    np.testing.assert_allclose(img @ txt[0], ref, atol=TOL)
    assert np.argmax(img @ txt[0]) == np.argmax(ref)
    hidden = embed.hidden_states(texts[:1], hub["clip"], layers=[0, -1], env=hf_env)
    np.testing.assert_allclose(hidden["values"][:, :, 0], states[0][0].numpy(), atol=TOL)
    np.testing.assert_allclose(hidden["values"][:, :, 1], states[-1][0].numpy(), atol=TOL)


def test_bad_images_are_classed_errors_before_the_model_loads(hf_env, hub, folders, images):
    models.cache_clear()
    corrupt = os.path.join(folders["images"], "broken", "corrupt.png")
    cases = [
        (["nope.png"], errors.InvalidArgumentError, "does not exist"),
        ([images[0], "a photo of a cat"], errors.InvalidArgumentError, "not text"),
        ([folders["images"]], errors.InvalidArgumentError, "is a folder"),
        ([images[0], corrupt], errors.InvalidFileError, "not an image"),
        ([3], errors.InvalidArgumentError, "strings"),
    ]
    for inputs, cls, words in cases:
        for run, model in ((P.run, "vit"), (vision.embed_images, "clip")):
            args = ("image-classification",) if run is P.run else ()
            with pytest.raises(cls, match=words) as err:
                run(*args, inputs, hub[model], env=hf_env)
            if cls is not errors.InvalidArgumentError or words != "strings":
                assert err.value.fields["position"] == len(inputs)
    assert models.cache_info()["kind"] == []  # refused before any model loaded


def test_an_image_whose_body_cannot_be_read_names_its_position(hf_env, hub, images, tmp_path):
    with open(images[0], "rb") as handle:
        head = handle.read()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(head[: len(head) // 2])  # its header reads, its pixels do not
    for run, model in ((P.run, "vit"), (vision.embed_images, "clip")):
        args = ("image-classification",) if run is P.run else ()
        with pytest.raises(errors.InvalidFileError) as err:
            run(*args, [images[0], images[1], str(truncated)], hub[model], env=hf_env)
        assert err.value.fields == {"path": str(truncated), "position": 3}


def test_models_and_arguments_that_do_not_fit(hf_env, hub, images):
    with pytest.raises(errors.UnsupportedError, match="cannot be used for the task"):
        P.load("object-detection", hub["blip"], env=hf_env)
    with pytest.raises(errors.UnsupportedError, match="image-text model"):
        vision.embed_images(images[:1], hub["vit"], env=hf_env)
    bad = [
        ("image-classification", {"top_k": 0}, "top_k"),
        ("object-detection", {"threshold": 2}, "threshold"),
        ("image-classification", {"candidate_labels": ["a"]}, "candidate_labels"),
        ("zero-shot-image-classification", {"hypothesis_template": "no slot"}, "hypothesis"),
        ("image-to-text", {"temperature": 0}, "temperature"),
    ]
    for task, args, argument in bad:
        with pytest.raises(errors.InvalidArgumentError, match=argument):
            P.run(task, images[:1], hub["vit"], args=args, env=hf_env)
    with pytest.raises(errors.InvalidArgumentError, match="candidate_labels"):
        P.run("zero-shot-image-classification", images[:1], hub["clip"], env=hf_env)


def test_tasks_are_listed_with_their_defaults():
    tasks = P.supported_tasks()
    for task in vision.TASKS:
        assert task in tasks
    assert P.default_model("image-classification") == "google/vit-base-patch16-224"
    assert P.default_model("image-to-text") == vision.DEFAULTS["image-to-text"]
