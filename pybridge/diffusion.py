"""Text to image with diffusers: its own pipelines, with the images as float64 arrays for R.

:func:`load` loads a diffusers text-to-image pipeline (``AutoPipelineForText2Image``) into the
model cache of :mod:`pybridge.models`; :func:`start` makes a :class:`Job` whose units are the
denoising steps, so that R (``job_run()``) moves a progress bar per step and stops the run on an
interrupt; :func:`text_to_image` runs it in one call.

The job is one call of the pipeline, ``pipe(prompts, generator=torch.Generator("cpu")
.manual_seed(seed), ..., output_type="np")``, on a worker thread that runs while R waits inside
a step (R holds the GIL between steps), so stepping changes no result: the images are those the
same call gives in Python, and the PNG files are written as diffusers' own ``.images[i].save()``
writes them.

Only the pipeline's files are downloaded: ``model_index.json`` first (a repo without one is not
a diffusers pipeline), then its components' folders, safetensors only, without the weight
variants (``*.fp16.safetensors``, ``*.non_ema.safetensors``) that the default load does not read.

torch and diffusers are imported on the first load, never at import.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import threading
import time

from . import _args, errors, jobs, memory, models

DEFAULT_STEPS = 50  # diffusers' default num_inference_steps
MULTIPLE = 8  # the VAEs of Stable Diffusion work on 8 x 8 pixel blocks
# Arguments this module sets itself: not to be given through `args`.
OWN_ARGS = (
    "prompt",
    "negative_prompt",
    "num_inference_steps",
    "height",
    "width",
    "guidance_scale",
    "num_images_per_prompt",
    "generator",
    "output_type",
    "return_dict",
    "callback_on_step_end",
    "callback_on_step_end_tensor_inputs",
    "callback",
    "callback_steps",
)
# Weight variants the default load does not read (diffusers loads variant=None).
VARIANT_PATTERNS = ("*.*.safetensors",)


class _Stopped(Exception):
    """Raised in the step callback to end a stopped run."""


# ---------------------------------------------------------------------------------------------
# Loading


def require_diffusers() -> None:
    """PythonEnvironmentError, with the fix, when diffusers is not installed."""
    import importlib.util

    models.require_model_stack()
    if "diffusers" not in sys.modules and importlib.util.find_spec("diffusers") is None:
        raise errors.PythonEnvironmentError(
            f"Text to image needs diffusers, which the Python at {sys.executable} does not have. "
            "From R, run install_pybridge(models = TRUE); from a shell, pip install "
            "'pybridge[models]' in that Python.",
            missing=["diffusers"],
            python=sys.executable,
        )


def components(index: dict) -> list:
    """The component folders ``model_index.json`` names (unet, vae, ...; not the empty ones)."""
    return sorted(
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
    )


def _not_diffusers(model, revision, path=None) -> errors.UnsupportedError:
    return errors.UnsupportedError(
        f"'{model}' is not a diffusers pipeline (it has no model_index.json). text_to_image() "
        "needs a diffusers text-to-image model such as "
        "'stable-diffusion-v1-5/stable-diffusion-v1-5'.",
        repo_id=model,
        revision=revision,
        filename="model_index.json",
        path=path,
        task="text-to-image",
    )


def _index(model, revision, env, token, quiet) -> tuple:
    """The pipeline's ``model_index.json`` as a dict, and the local folder if ``model`` is one."""
    from . import hub

    local = os.path.expanduser(str(model))
    if os.path.isdir(local):
        path = os.path.join(local, "model_index.json")
        if not os.path.isfile(path):
            raise _not_diffusers(model, revision, os.path.abspath(local))
        return _read_index(path, model, revision), os.path.abspath(local)
    try:
        path = hub.download(
            model, "model_index.json", revision=revision, env=env, token=token, quiet=quiet
        )
    except errors.EntryNotFoundError:
        raise _not_diffusers(model, revision) from None
    return _read_index(path, model, revision), None


def _read_index(path, model, revision) -> dict:
    try:
        with open(path, "rb") as handle:
            index = json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidFileError(
            f"The model '{model}' has a corrupt model_index.json: {exc}",
            repo_id=model,
            revision=revision,
            filename="model_index.json",
            path=path,
        ) from None
    if not isinstance(index, dict) or "_class_name" not in index:
        raise _not_diffusers(model, revision, path)
    return index


def folder(model, revision="main", env=None, token=None, quiet=True) -> str:
    """The local folder of the pipeline ``model``: its index and components, safetensors only."""
    from . import hub

    require_diffusers()
    index, local = _index(model, revision, env, token, quiet)
    parts = components(index)
    path = local or hub.local_folder(
        model,
        revision=revision,
        allow_patterns=["model_index.json"] + [f"{part}/*" for part in parts],
        ignore_patterns=list(models.OTHER_PATTERNS + models.PICKLE_PATTERNS + VARIANT_PATTERNS),
        env=env,
        token=token,
        quiet=quiet,
    )
    models.check_weights(path, model, revision, False, env, token)
    for part in [""] + [p for p in parts if os.path.isdir(os.path.join(path, p))]:
        models.check_files(os.path.join(path, part), model, revision)
    return path


def load(model, revision="main", device="cpu", env=None, token=None, quiet=True) -> dict:
    """Load the pipeline into the cache (an app can do it at start); its class and default
    size."""
    pipe = _entry(model, revision, device, env, token, quiet)
    height, width = default_size(pipe)
    return {
        "model": model,
        "revision": revision or "main",
        "device": str(device),
        "pipeline": type(pipe).__name__,
        "height": height,
        "width": width,
    }


def _entry(model, revision, device, env, token, quiet):
    if not isinstance(model, str) or not model.strip():
        raise errors.InvalidArgumentError(
            "model must be a Hub repo id or a folder of a diffusers pipeline.", argument="model"
        )
    # diffusers pipelines load safetensors only and no remote code
    key = models.cache_key("diffusion:text-to-image", model, revision, device, False, False, env)

    def loader():
        path = folder(model, revision, env=env, token=token, quiet=quiet)
        dev = models.torch_device(device)
        with models.quiet_transformers(), _quiet_diffusers():
            try:
                pipe = _build(path)
            except errors.PybridgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds here
                raise models.load_error(exc, model, "text-to-image", ["text-to-image"]) from exc
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(dev)

    return models.cached(key, loader)


def _build(path):
    import diffusers

    return diffusers.AutoPipelineForText2Image.from_pretrained(path, use_safetensors=True)


class _quiet_diffusers:
    """diffusers without progress bars, info logs or warnings while loading (restored after)."""

    def __enter__(self):
        from diffusers.utils import logging

        self.level = logging.get_verbosity()
        self.bars = logging.is_progress_bar_enabled()
        logging.set_verbosity_error()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from diffusers.utils import logging

        logging.set_verbosity(self.level)
        if self.bars:
            logging.enable_progress_bar()


def default_size(pipe) -> tuple:
    """The pipeline's own height and width when none is given (512 x 512 for SD 1.5)."""
    unet = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    sample = getattr(getattr(unet, "config", None), "sample_size", None)
    scale = getattr(pipe, "vae_scale_factor", MULTIPLE)
    if isinstance(sample, (list, tuple)):
        return int(sample[0]) * scale, int(sample[1]) * scale
    if isinstance(sample, int):
        return sample * scale, sample * scale
    return 0, 0


# ---------------------------------------------------------------------------------------------
# Arguments


def _prompts(value, name, n=None) -> list:
    items = _args.texts(value, name)
    if not items:
        raise errors.InvalidArgumentError(f"{name} must hold at least one text.", argument=name)
    blank = [i + 1 for i, text in enumerate(items) if not text.strip()]
    if blank:
        raise errors.InvalidArgumentError(
            f"{name} is empty at position{'s' if len(blank) > 1 else ''} "
            f"{_args.positions(blank)}: describe the image, e.g. "
            "'a watercolor painting of a lighthouse'.",
            argument=name,
            positions=blank,
        )
    if n is not None and len(items) not in (1, n):
        raise errors.InvalidArgumentError(
            f"Give one {name}, or one per prompt ({n} prompts, {len(items)} {name}s).",
            argument=name,
        )
    return items * n if n is not None and len(items) == 1 else items


def _size(value, name):
    if value is None:
        return None
    value = _args.count(value, name, minimum=MULTIPLE)
    if value % MULTIPLE:
        below = value - value % MULTIPLE
        raise errors.InvalidArgumentError(
            f"{name} must be a multiple of {MULTIPLE} (the VAE works on {MULTIPLE} x {MULTIPLE} "
            f"pixel blocks), not {value}: use {below} or {below + MULTIPLE}.",
            argument=name,
            value=value,
        )
    return value


def _guidance(value) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise errors.InvalidArgumentError(
            f"guidance_scale must be a number >= 0, not {value!r}.", argument="guidance_scale"
        )
    return float(value)


def _seed(value):
    if value is None:
        return None
    return _args.count(value, "seed", minimum=0)


def _extra(pipe, args) -> dict:
    """The other arguments of the pipeline's call (eta, guidance_rescale, clip_skip, ...)."""
    args = dict(args or {})
    params = inspect.signature(type(pipe).__call__).parameters
    known = set(params) - {"self", "kwargs"}
    own = sorted(set(args) & set(OWN_ARGS))
    unknown = sorted(set(args) - known - set(OWN_ARGS))
    if own or unknown:
        name = (own or unknown)[0]
        why = f"is not an argument of {type(pipe).__name__}"
        if own:
            why = "is set by text_to_image()'s own arguments"
        raise errors.InvalidArgumentError(
            f"text_to_image: `{name}` {why}. Its other arguments: "
            f"{', '.join(sorted(known - set(OWN_ARGS)))}.",
            argument=name,
        )
    return {name: _typed(params[name], value) for name, value in args.items()}


def _typed(param, value):
    """R gives 2 as 2.0: a whole double for an argument the pipeline types as int (clip_skip)
    becomes an int."""
    hint = str(param.annotation)
    if isinstance(value, float) and value.is_integer() and "int" in hint and "float" not in hint:
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------
# The job


def start(
    prompt,
    model,
    seed=None,
    steps=DEFAULT_STEPS,
    width=None,
    height=None,
    guidance_scale=7.5,
    negative_prompt=None,
    n=1,
    files=None,
    args=None,
    revision="main",
    device="cpu",
    env=None,
    token=None,
    quiet=True,
) -> "Job":
    """A job that makes ``n`` images per prompt in one call of the pipeline, one unit per
    denoising step. ``files`` (one per image, or None) are written as PNG at the end."""
    prompts = _prompts(prompt, "prompt")
    negative = negative_prompt
    if negative is not None:
        negative = _prompts(negative, "negative_prompt", len(prompts))
    n = _args.count(n, "n")
    call = {
        "prompt": prompts,
        "negative_prompt": negative,
        "num_inference_steps": _args.count(steps, "steps"),
        "height": _size(height, "height"),
        "width": _size(width, "width"),
        "guidance_scale": _guidance(guidance_scale),
        "num_images_per_prompt": n,
    }
    seed = _seed(seed)
    if files is not None:
        files = _files(files, len(prompts) * n)
    pipe = _entry(model, revision, device, env, token, quiet)
    _check_memory(pipe, call, len(prompts) * n)
    _check_steps(pipe, call["num_inference_steps"])
    call.update(_extra(pipe, args))
    if seed is not None:
        call["generator"] = models.import_torch().Generator("cpu").manual_seed(seed)
    return Job(pipe, call, [p for p in prompts for _ in range(n)], files)


# Bytes per pixel of an image at the least: the VAE decoder's last blocks (128 float32
# channels at full size) and the float64 RGB result that R receives.
BYTES_PER_PIXEL = 128 * 4 + 3 * 8


def _check_memory(pipe, call, images) -> None:
    """Images that cannot fit are refused before the first step, not after the denoising."""
    height, width = default_size(pipe)
    height, width = call["height"] or height, call["width"] or width
    memory.check(
        images * height * width * BYTES_PER_PIXEL,
        f"text_to_image() of {images} image(s) of {width} x {height}",
        "Ask for smaller images (width, height) or fewer (n).",
        width=width,
        height=height,
    )


def _files(files, count) -> list:
    files = _args.texts(files, "file")
    if len(files) != count:
        raise errors.InvalidArgumentError(
            f"Give one file per image: {count} image(s), {len(files)} file(s).", argument="file"
        )
    for path in files:  # checked now: a bad path found after the denoising loses its images
        parent = os.path.dirname(os.path.abspath(path))
        problem = (
            "is not a .png file name"
            if not path.lower().endswith(".png")
            else "is a folder, a device or a pipe, not a file"
            if os.path.exists(path) and not os.path.isfile(path)
            else "is in a folder that does not exist: create it first"
            if not os.path.isdir(parent)
            else "is in a folder that cannot be written"
            if not os.access(parent, os.W_OK)
            else None
        )
        if problem:
            raise errors.InvalidArgumentError(
                f"file '{path}' {problem}.", argument="file", path=path
            )
    return [os.path.abspath(path) for path in files]


def total_steps(pipe, steps) -> int:
    """How many denoising steps the scheduler will take (PNDM takes one more than asked)."""
    timesteps = _timesteps(pipe, steps)
    return steps if timesteps is None else len(timesteps)


def _check_steps(pipe, steps) -> None:
    """The scheduler's timesteps must exist in its training schedule: DDIM with steps_offset 1
    accepts 1000 steps of 1000 and then fails on index 1000, after the text encoder ran."""
    timesteps, trained = _timesteps(pipe, steps), pipe.scheduler.config.get("num_train_timesteps")
    if timesteps is not None and trained and len(timesteps) and int(max(timesteps)) >= trained:
        raise errors.InvalidArgumentError(
            f"steps = {steps} is more than this model's scheduler can take "
            f"({type(pipe.scheduler).__name__}, trained on {trained} timesteps): ask for fewer.",
            argument="steps",
        )


def _timesteps(pipe, steps):
    """The timesteps the scheduler would take for ``steps``, or None where it cannot tell."""
    import copy

    try:
        scheduler = copy.deepcopy(pipe.scheduler)
        scheduler.set_timesteps(steps)
        return scheduler.timesteps
    except ValueError as e:
        if "num_inference_steps" in str(e):  # more steps than it was trained on
            raise errors.InvalidArgumentError(f"steps: {e}", argument="steps") from None
        return None
    except Exception:  # noqa: BLE001 - schedulers that need more (sigmas, mu): cannot tell
        return None


class Job(jobs.Job):
    """One pipeline call on a worker thread; its units are denoising steps. ``stop()`` ends it at
    the end of the current step; the result is the images (n x height x width x 3, float64)."""

    def __init__(self, pipe, call, prompts, files):
        self.pipe, self.call, self.prompts, self.files = pipe, call, prompts, files
        self.total = total_steps(pipe, call["num_inference_steps"])
        self.progress = threading.Condition()
        self.thread = None
        self.ended = False
        self.error = None
        self.output_ = None

    @property
    def finished(self) -> bool:
        return self.stopped or self.ended

    def _work(self, threads):
        torch = models.import_torch()
        # OpenMP keeps the thread count per thread: take the caller's (torch.set_num_threads).
        torch.set_num_threads(threads)
        try:
            self.output_ = self.pipe(
                **self.call, output_type="np", callback_on_step_end=self._on_step
            )
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of step()
            self.error = exc
        finally:
            with self.progress:
                self.ended = True
                self.progress.notify_all()

    def _on_step(self, pipe, i, t, kwargs):
        with self.progress:
            self.total = int(getattr(pipe, "num_timesteps", None) or self.total)
            self.position = i + 1
            self.progress.notify_all()
        if self.stopped:
            raise _Stopped()
        return {}

    def advance(self, units, seconds) -> None:
        if self.thread is None:
            threads = models.import_torch().get_num_threads()
            self.thread = threading.Thread(
                target=self._work, args=(threads,), name="pybridge-diffusion", daemon=True
            )
            self.thread.start()
        target = None if units is None else self.position + units
        deadline = None if seconds is None else time.monotonic() + seconds
        with self.progress:
            while not self.ended and (target is None or self.position < target):
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    break
                self.progress.wait(wait)
        self._raise_error()

    def stop(self) -> dict:
        self.stopped = True  # the step callback ends the run at the end of the current step
        if self.thread is not None:
            self.thread.join()
        self.error = None
        return self.state()

    def _raise_error(self):
        if self.error is None:
            return
        exc, self.error = self.error, None
        if isinstance(exc, errors.PybridgeError):
            raise exc
        if isinstance(exc, ValueError):  # diffusers' check of the arguments (check_inputs)
            raise errors.InvalidArgumentError(
                f"text_to_image: {exc}", task="text-to-image"
            ) from exc
        raise errors.PythonError(
            f"Text to image failed: {type(exc).__name__}: {exc}",
            python_type=type(exc).__name__,
        ) from exc

    def output(self) -> dict:
        """The images and, per image, its prompt, its file ("" when none) and whether the
        safety checker blanked it."""
        import numpy as np

        images = np.asarray(self.output_.images)
        if self.files:
            for image, path in zip(self.pipe.numpy_to_pil(images), self.files):
                image.save(path)
        flagged = getattr(self.output_, "nsfw_content_detected", None) or [False] * len(images)
        return {
            "images": images.astype(np.float64),
            "prompt": list(self.prompts),
            "file": list(self.files or [""] * len(images)),
            "nsfw": np.asarray([bool(x) for x in flagged], dtype=bool),
        }


def text_to_image(prompt, model, **kwargs) -> dict:
    """:func:`start` and run the job to the end, in one call (R's quiet path)."""
    return jobs.run(start(prompt, model, **kwargs))
