"""Image pipelines and image embeddings for R: transformers' own pipelines, results as columns.

:mod:`pybridge.pipeline` loads and caches the pipelines of :data:`TASKS` and hands their calls
here (:func:`start`). Images are paths or http(s) URLs. They are checked before the model runs
(a missing file, a folder, text, a file that is no image: classed errors naming the input),
then opened one by one as the pipeline asks for them, as transformers' ``load_image`` opens
them (EXIF orientation, RGB), so that the results equal transformers' pipelines on the same
files. URLs are fetched with huggingface_hub's HTTP session (its proxy settings; no token goes
to a host that is not the Hub's).

transformers 5 runs ``image-to-text`` as ``image-text-to-text``: a captioning model (BLIP,
VisionEncoderDecoder, GIT) gets each image with a prompt, ``""`` by default.

:func:`embed_start` runs an image-text model's image tower (CLIP's ``get_image_features``) in
batches, the batches side by side on a CPU's cores, as :mod:`pybridge.embed` runs the text
tower for ``embed_text()``, so that both land in one space.

torch and transformers are imported on the first load, never at import.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np

from . import _args, embed, errors, hub_call, jobs, models, pipeline_args
from .pipeline_args import GENERATE, SEED, Choice, Number, Text, Texts, Whole

TASKS = (
    "image-classification",
    "zero-shot-image-classification",
    "object-detection",
    "image-to-text",
)
# The name transformers 5 knows the task by.
TRANSFORMERS_TASK = {"image-to-text": "image-text-to-text"}
# transformers 5 has no default captioner (its image-text-to-text default is a 2B chat model).
DEFAULTS = {"image-to-text": "Salesforce/blip-image-captioning-base"}
TIMEOUT = 30.0  # seconds for one image URL

_TIMEOUT_SPEC = Number(0, open=("low",))
ARGS = {
    "image-classification": {
        "top_k": Whole(1, none=True),
        "function_to_apply": Choice("sigmoid", "softmax", "none"),
        "timeout": _TIMEOUT_SPEC,
    },
    "zero-shot-image-classification": {
        "candidate_labels": Texts(),
        "hypothesis_template": Text(template=True),
        "timeout": _TIMEOUT_SPEC,
    },
    "object-detection": {"threshold": Number(0, 1), "timeout": _TIMEOUT_SPEC},
    "image-to-text": {
        **GENERATE,
        "prompt": Text(empty=True),
        "seed": SEED,
        "timeout": _TIMEOUT_SPEC,
    },
}


def check_args(task: str, name: str, args: dict) -> dict:
    """The task's arguments checked against :data:`ARGS` (see :mod:`pybridge.pipeline_args`)."""
    return pipeline_args.check(task, name, args, table=ARGS[name])


# ---------------------------------------------------------------------------------------------
# Images


def is_url(item: str) -> bool:
    return item.startswith(("http://", "https://"))


def check_images(value, name="inputs") -> list:
    """The inputs as a list of paths or URLs; a local file must exist and be an image (its
    header is read). InvalidArgumentError or InvalidFileError otherwise, with the position."""
    items = _args.texts(value, name)
    for position, item in enumerate(items, start=1):
        if not is_url(item):
            _check_file(item, name, position)
    return items


def _check_file(item: str, name: str, position: int) -> None:
    path = os.path.expanduser(item)
    where = dict(argument=name, path=item, position=position)
    if os.path.isdir(path):
        raise errors.InvalidArgumentError(
            f"{name}[{position}] '{item}' is a folder; give the paths of its image files, e.g. "
            "list.files(folder, pattern = '[.](png|jpe?g)$', full.names = TRUE).",
            **where,
        )
    if not os.path.isfile(path):
        looks_like_text = " " in item.strip() and os.sep not in item and "." not in item[-6:]
        raise errors.InvalidArgumentError(
            f"{name}[{position}] '{item}' is not an image: image tasks take image files or "
            "http(s) URLs, not text."
            if looks_like_text
            else f"{name}[{position}]: the image file '{item}' does not exist (working "
            f"directory: {os.getcwd()}).",
            **where,
        )
    from PIL import Image

    try:
        Image.open(path).close()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _unreadable(item, exc, position) from None


def _unreadable(item, exc, position=None) -> errors.InvalidFileError:
    why = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the downloaded bytes", str(exc))
    return errors.InvalidFileError(
        f"'{item}' is not an image that Pillow can read ({type(exc).__name__}: {why}).",
        path=item,
        position=position,
    )


def open_image(item: str, timeout=None, position=None):
    """The image at a path or URL as transformers' ``load_image`` gives it: upright, RGB.
    ``position`` (1-based) goes into the error of an image that cannot be read."""
    from PIL import Image
    from transformers.image_utils import load_image

    source = io.BytesIO(download(item, timeout)) if is_url(item) else os.path.expanduser(item)
    try:
        return load_image(Image.open(source))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _unreadable(item, exc, position) from None


def image_bytes(item: str, position=None, timeout=None) -> bytes:
    """The bytes of the image at a path or URL, once Pillow has read them as an image."""
    from PIL import Image

    if is_url(item):
        data = download(item, timeout)
    else:
        with open(os.path.expanduser(item), "rb") as handle:
            data = handle.read()
    try:
        Image.open(io.BytesIO(data)).load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _unreadable(item, exc, position) from None
    return data


def download(url: str, timeout=None) -> bytes:
    """The body of ``url``, fetched with huggingface_hub's session (no retries: a failing URL
    fails the call, as in transformers)."""
    return hub_call.fetch(url, timeout or TIMEOUT, "the image")


# ---------------------------------------------------------------------------------------------
# Pipelines


def build(name, path, dev, use_safetensors, trust_remote_code):
    """transformers' pipeline of the task ``name`` for the model folder ``path``."""
    transformers = models.import_transformers()
    _check_model_fits(transformers, path, name, trust_remote_code)
    return transformers.pipeline(
        TRANSFORMERS_TASK.get(name, name),
        model=path,
        device=dev,
        trust_remote_code=trust_remote_code,
        model_kwargs={"use_safetensors": use_safetensors},
    )


_MAPPINGS = {
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "zero-shot-image-classification": "MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "object-detection": "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
    "image-to-text": "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
}


def _check_model_fits(transformers, path, name, trust_remote_code) -> None:
    """transformers only logs a model type that its task does not take (then fails later, or
    runs a head it made up): a ValueError here, which the loader turns into UnsupportedError.
    Models with their own code (``auto_map``) are left to transformers."""
    from transformers.models.auto import modeling_auto

    config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if getattr(config, "auto_map", None):
        return
    if config.model_type not in getattr(modeling_auto, _MAPPINGS[name]):
        raise ValueError(f"a {config.model_type} model is not one for {name}")


def start(task, name, pipe, items, args, batch_size=None) -> "Job":
    """A job running ``pipe`` lazily over ``items`` (paths and URLs that passed
    :func:`check_images`), with the checked ``args``."""
    if batch_size is not None:
        args["batch_size"] = _args.count(batch_size, "batch_size")
    if name == "zero-shot-image-classification" and not args.get("candidate_labels"):
        raise errors.InvalidArgumentError(
            "zero-shot-image-classification needs candidate_labels, e.g. candidate_labels = "
            "c('a cat', 'a dog').",
            argument="candidate_labels",
            task=task,
        )
    if isinstance(args.get("candidate_labels"), str):
        args["candidate_labels"] = [args["candidate_labels"]]
    seed = args.pop("seed", None)
    if seed is not None:
        models.import_transformers().set_seed(seed)
    timeout = args.pop("timeout", None)
    prompt = args.pop("prompt", "")
    if name == "image-to-text":
        args = _generate_args(args)
        feed = (
            {"images": open_image(x, timeout, i), "text": prompt}
            for i, x in enumerate(items, start=1)
        )
    else:
        feed = (open_image(x, timeout, i) for i, x in enumerate(items, start=1))
    outputs = iter(pipe(feed, **args)) if items else iter(())
    return Job(name, task, items, outputs)


def _generate_args(args: dict) -> dict:
    """image-text-to-text takes generate()'s settings in ``generate_kwargs`` (max_new_tokens
    also on its own)."""
    keep = {k: args.pop(k) for k in ("batch_size", "max_new_tokens") if k in args}
    return {**keep, "generate_kwargs": args} if args else keep


class Job(jobs.PipelineJob):
    """One pipeline call over many images, consumed step by step; its units are images."""

    def __init__(self, name, task, items, outputs):
        super().__init__(task, items, outputs)
        self.name = name

    def output(self) -> dict:
        return _CONVERTERS[self.name](self)


def _rows(job):
    """(image, result) for every result of every image, in input order."""
    for item, res in zip(job.items, job.results):
        for r in [res] if isinstance(res, dict) else res:
            yield item, r


def _labels(job) -> dict:
    rows = list(_rows(job))
    return {
        "image": [item for item, _ in rows],
        "label": [str(r["label"]) for _, r in rows],
        "score": np.asarray([r["score"] for _, r in rows], dtype=np.float64),
    }


def _boxes(job) -> dict:
    rows = list(_rows(job))
    cols = _labels(job)
    for side in ("xmin", "ymin", "xmax", "ymax"):
        cols[side] = np.asarray([r["box"][side] for _, r in rows], dtype=np.int32)
    return cols


def _captions(job) -> dict:
    rows = list(_rows(job))
    return {
        "image": [item for item, _ in rows],
        "generated_text": [str(r["generated_text"]) for _, r in rows],
    }


_CONVERTERS = {
    "image-classification": _labels,
    "zero-shot-image-classification": _labels,
    "object-detection": _boxes,
    "image-to-text": _captions,
}


# ---------------------------------------------------------------------------------------------
# Image embeddings


def embed_images(
    images,
    model,
    normalize=False,
    batch_size=32,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    timeout=None,
) -> np.ndarray:
    """An (n, d) float64 matrix: the image features of an image-text model, one row per image."""
    job = embed_start(
        images,
        model,
        normalize,
        batch_size,
        revision,
        device,
        allow_pickle,
        trust_remote_code,
        env,
        token,
        timeout=timeout,
    )
    return jobs.run(job)


def embed_start(
    images,
    model,
    normalize=False,
    batch_size=32,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    quiet=True,
    timeout=None,
) -> "ImageJob":
    """Check the images, load the model (cached) and plan the batches."""
    items = check_images(images, "images")
    batch_size = _args.count(batch_size, "batch_size")
    if timeout is not None:
        timeout = _args.positive(timeout, "timeout")
    encoder = load_encoder(
        model, revision, device, allow_pickle, trust_remote_code, env, token, quiet
    )
    return ImageJob(encoder, items, bool(normalize), batch_size, timeout)


class ImageEncoder:
    """An image processor and an image-text model (CLIP), cached together."""

    def __init__(self, processor, model):
        self.processor, self.model = processor, model
        self.dim = int(model.config.projection_dim)


def load_encoder(
    model,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    quiet=True,
) -> ImageEncoder:
    key = models.cache_key(
        "image-encoder", model, revision, device, allow_pickle, trust_remote_code, env
    )

    def loader():
        transformers = models.import_transformers()
        path = models.folder(model, revision, allow_pickle, env=env, token=token, quiet=quiet)
        dev = models.torch_device(device)
        with models.quiet_transformers():
            try:
                processor = transformers.AutoImageProcessor.from_pretrained(
                    path, trust_remote_code=bool(trust_remote_code)
                )
                net = transformers.AutoModel.from_pretrained(
                    path,
                    use_safetensors=models.use_safetensors(path),
                    trust_remote_code=bool(trust_remote_code),
                )
            except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
                raise models.load_error(exc, model, "image embeddings", _EMBED_MODELS) from exc
        if not embed.is_dual_encoder(net):
            raise errors.UnsupportedError(
                f"embed_image() needs an image-text model such as CLIP (one with "
                f"get_image_features); '{model}' is a {type(net).__name__}.",
                repo_id=model,
                task="image embeddings",
            )
        return ImageEncoder(processor, net.to(dev).eval())

    return models.cached(key, loader)


_EMBED_MODELS = ["image-text models such as CLIP, e.g. openai/clip-vit-base-patch32"]


class ImageJob(jobs.Job):
    """Images in batches of ``batch_size``, opened, processed and embedded batch by batch; its
    units are batches."""

    def __init__(self, encoder, items, normalize, batch_size, timeout):
        self.encoder, self.items = encoder, items
        self.normalize, self.timeout = normalize, timeout
        starts = range(0, len(items), batch_size)
        self.batches = [np.arange(s, min(s + batch_size, len(items))) for s in starts]
        self.out = [None] * len(items)

    @property
    def total(self) -> int:
        return len(self.batches)

    def advance(self, units, seconds) -> None:
        end = self.total if units is None else min(self.total, self.position + units)
        device = self.encoder.model.device
        embed.run_batches(self._run_batch, self.batches[self.position : end], device)
        self.position = end

    def _run_batch(self, rows):
        torch = models.import_torch()
        images = [open_image(self.items[r], self.timeout, int(r) + 1) for r in rows]
        pixels = self.encoder.processor(images=images, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.encoder.model.device)
        out = embed.projected(self.encoder.model.get_image_features(pixel_values=pixels))
        if self.normalize:
            out = torch.nn.functional.normalize(out, p=2, dim=1)
        for k, r in enumerate(rows):
            self.out[r] = out[k].float().cpu().numpy()

    def output(self) -> np.ndarray:
        if not self.out:
            return np.zeros((0, self.encoder.dim), dtype=np.float64)
        return np.stack(self.out).astype(np.float64)
