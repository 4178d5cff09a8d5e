"""pybridge.diffusion against diffusers itself, on the tiny Stable Diffusion pipeline of
pybridge.fixtures.diffusion_models served by the mirror.

Each run is compared with diffusers' own pipeline loaded from the same folder in Python, called
with the same prompts, size, steps and a CPU generator with the same seed, whose images are saved
as PNG as a Python user saves them: the arrays equal the PNG to 1/255, and the PNG files written
by pybridge have the same pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pybridge import diffusion as D
from pybridge import errors, jobs, models
from pybridge.fixtures import diffusion_models as dm

diffusers = pytest.importorskip("diffusers")

REPO = dm.REPO_IDS["sd"]
PROMPTS = ["a photo of a cat sitting on a red sofa", "a small robot reading a book"]
# Not square, so that height and width cannot be swapped unseen.
SIZE = dict(height=48, width=64)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder():
    return dm.ensure()["sd"]


@pytest.fixture(scope="module")
def repo(mirror, folder):
    mirror.publish(REPO, folder)
    return REPO


@pytest.fixture(scope="module", autouse=True)
def empty_cache():
    models.cache_clear()
    yield
    models.cache_clear()


def _reference(folder, tmp_path, prompts, seed, **call):
    out = tmp_path / "reference"
    out.mkdir(exist_ok=True)
    return dm.reference_pngs(folder, prompts, str(out), seed, **call)


def _same_as_pngs(images, pngs):
    assert images.shape == (len(pngs), SIZE["height"], SIZE["width"], 3)
    assert images.dtype == np.float64
    for image, png in zip(images, pngs):
        # The PNG holds round(x * 255): within half a level of the float image.
        assert np.abs(image - dm.read_png(png)).max() <= 0.5 / 255 + 1e-6


def test_images_equal_diffusers_pngs(repo, folder, hf_env, tmp_path):
    files = [str(tmp_path / f"mine-{i}.png") for i in range(2)]
    res = D.text_to_image(PROMPTS, repo, seed=7, steps=3, files=files, env=hf_env, **SIZE)
    pngs = _reference(folder, tmp_path, PROMPTS, 7, num_inference_steps=3, **SIZE)
    _same_as_pngs(res["images"], pngs)
    for mine, theirs in zip(files, pngs):
        assert np.array_equal(dm.read_png(mine), dm.read_png(theirs))
    assert res["prompt"] == PROMPTS
    assert res["file"] == files
    assert res["nsfw"].tolist() == [False, False]
    # The images are not blank: the comparison compares something.
    assert res["images"].std() > 0.05
    assert not np.array_equal(res["images"][0], res["images"][1])


def test_images_per_prompt_negative_prompt_and_call_arguments(repo, folder, hf_env, tmp_path):
    call = dict(num_inference_steps=2, guidance_scale=5.0, negative_prompt=["blurry"], **SIZE)
    res = D.text_to_image(
        PROMPTS[:1],
        repo,
        seed=3,
        steps=2,
        guidance_scale=5,
        negative_prompt="blurry",
        n=2,
        args={"eta": 0.5},
        env=hf_env,
        **SIZE,
    )
    pngs = _reference(folder, tmp_path, PROMPTS[:1], 3, num_images_per_prompt=2, eta=0.5, **call)
    _same_as_pngs(res["images"], pngs)
    assert res["prompt"] == PROMPTS[:1] * 2
    assert res["file"] == ["", ""]


def test_default_size_and_the_model_cache(repo, hf_env):
    info = D.load(repo, env=hf_env)
    assert (info["pipeline"], info["height"], info["width"]) == ("StableDiffusionPipeline", 64, 64)
    res = D.text_to_image("a cat", repo, seed=1, steps=1, env=hf_env)
    assert res["images"].shape == (1, 64, 64, 3)
    cache = models.cache_info()
    row = cache["kind"].index("diffusion:text-to-image")
    assert cache["model"][row] == repo
    assert cache["hits"][row] >= 1


def test_steps_one_at_a_time_and_stop(repo, folder, hf_env, tmp_path):
    job = D.start(PROMPTS[:1], repo, seed=11, steps=4, env=hf_env, **SIZE)
    assert job.state() == {"done": False, "step": 0, "total": 4}
    seen = []
    while True:
        state = jobs.step(job, units=1)
        seen.append(state["step"])
        if state["done"]:
            break
    assert seen[:4] == [1, 2, 3, 4]
    pngs = _reference(folder, tmp_path, PROMPTS[:1], 11, num_inference_steps=4, **SIZE)
    _same_as_pngs(jobs.result(job)["images"], pngs)

    stopped = D.start(PROMPTS[:1], repo, seed=11, steps=50, env=hf_env, **SIZE)
    jobs.step(stopped, units=2)
    state = jobs.stop(stopped)
    assert state["done"] and state["step"] < 50
    assert not stopped.thread.is_alive()
    with pytest.raises(errors.InvalidArgumentError, match="was stopped"):
        jobs.result(stopped)


def test_only_the_pipeline_files_are_downloaded(mirror, folder, hf_env, tmp_path):
    src = tmp_path / "repo"
    shutil.copytree(folder, src)
    unet = src / "unet" / "diffusion_pytorch_model.safetensors"
    shutil.copy(unet, src / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    shutil.copy(unet, src / "v1-5-pruned.safetensors")
    (src / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not a pickle")
    (src / "notes").mkdir()
    (src / "notes" / "big.safetensors").write_bytes(unet.read_bytes())
    mirror.publish("hfbridge-tiny/sd-with-extras", src)
    path = D.folder("hfbridge-tiny/sd-with-extras", env=hf_env)
    got = sorted(
        os.path.relpath(os.path.join(root, name), path)
        for root, _dirs, names in os.walk(path)
        for name in names
    )
    want = sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _dirs, names in os.walk(folder)
        for name in names
    )
    assert got == want


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(height=50), "height"),
        (dict(width=4), "width"),
        (dict(prompt=""), "prompt"),
        (dict(prompt=["a cat", "  "]), "prompt"),
        (dict(prompt=[]), "prompt"),
        (dict(negative_prompt=["a", "b", "c"]), "negative_prompt"),
        (dict(steps=0), "steps"),
        (dict(steps=1000), "steps"),  # DDIM with steps_offset 1: timestep 1000 of 1000
        (dict(steps=1001), "steps"),
        (dict(seed=-1), "seed"),
        (dict(guidance_scale=float("nan")), "guidance_scale"),
        (dict(n=0), "n"),
        (dict(files=["a.png", "b.png"]), "file"),
        (dict(files=["/no/such/folder/a.png"]), "file"),
        (dict(files=["/tmp"]), "file"),
        (dict(files=["/tmp/picture.jpg"]), "file"),
        (dict(files=[""]), "file"),
        (dict(args={"generator": 1}), "generator"),
        (dict(args={"no_such_argument": 1}), "no_such_argument"),
    ],
)
def test_bad_arguments(folder, kwargs, argument):
    kwargs = {"prompt": "a cat", "steps": 1, **kwargs}
    with pytest.raises(errors.InvalidArgumentError) as err:
        D.start(model=folder, **kwargs)
    assert err.value.fields["argument"] == argument


def test_multiple_of_8_says_which_sizes_fit(folder):
    with pytest.raises(errors.InvalidArgumentError, match="use 48 or 56"):
        D.start("a cat", folder, height=50)


def test_not_a_diffusers_model(mirror, hf_env, tmp_path):
    from pybridge.fixtures import models as fm

    gpt2 = fm.ensure(names=["gpt2"])["gpt2"]
    with pytest.raises(errors.UnsupportedError, match="not a diffusers pipeline") as err:
        D.start("a cat", gpt2)
    assert err.value.fields["task"] == "text-to-image"
    mirror.publish("hfbridge-tiny/gpt2-for-diffusion", gpt2)
    with pytest.raises(errors.UnsupportedError, match="not a diffusers pipeline"):
        D.start("a cat", "hfbridge-tiny/gpt2-for-diffusion", env=hf_env)
    with pytest.raises(errors.RepoNotFoundError):
        D.start("a cat", "hfbridge-tiny/no-such-pipeline", env=hf_env)


def test_an_unknown_pipeline_class_is_unsupported(folder, tmp_path):
    src = tmp_path / "odd"
    shutil.copytree(folder, src)
    index = json.loads((src / "model_index.json").read_text())
    index["_class_name"] = "NoSuchPipeline"
    (src / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(errors.UnsupportedError, match="text-to-image"):
        D.start("a cat", str(src))


def test_corrupt_component_config_is_an_invalid_file(folder, tmp_path):
    src = tmp_path / "corrupt"
    shutil.copytree(folder, src)
    (src / "unet" / "config.json").write_text('{"_class_name": ')
    with pytest.raises(errors.InvalidFileError) as err:
        D.start("a cat", str(src))
    assert err.value.fields["filename"] == "config.json"


def test_import_loads_neither_torch_nor_diffusers():
    code = (
        "import sys, pybridge.diffusion; "
        "print(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_demo_store_publishes_the_fixture(tmp_path):
    from pybridge.fixtures import demo

    store = demo.build_demo_store(str(tmp_path), [REPO])[REPO]
    assert os.path.isfile(os.path.join(store, "model_index.json"))
    names = [name for _root, _dirs, files in os.walk(store) for name in files]
    assert "diffusion_pytorch_model.safetensors" in names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".ckpt"))]


def test_a_whole_double_for_an_int_argument_becomes_an_int(folder):
    job = D.start(model=folder, prompt="a cat", steps=1, args={"clip_skip": 1.0, "eta": 1.0})
    assert type(job.call["clip_skip"]) is int and type(job.call["eta"]) is float


def test_images_that_cannot_fit_are_refused_before_the_first_step(folder):
    with pytest.raises(errors.MemoryLimitError) as err:
        D.start(model=folder, prompt="a cat", steps=1, width=800_000, height=800_000)
    assert err.value.fields["width"] == 800_000 and err.value.fields["bytes"] > 1e14
