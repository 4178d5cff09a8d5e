"""Speech to text for R: transformers' automatic-speech-recognition pipeline, results as columns.

:mod:`pybridge.pipeline` loads and caches the pipeline of :data:`TASKS` and hands its calls here
(:func:`start`). An input is an audio file's path (wav, mp3, flac, ogg, m4a and whatever else
ffmpeg reads) or samples (a float vector in [-1, 1]) with their ``sampling_rate``. Inputs are
checked before the model runs (a missing file, text, bad samples or rate: classed errors naming
the input), then decoded one by one as the pipeline asks for them.

ffmpeg decodes as transformers' ``ffmpeg_read`` does (mono, the model's rate, 32-bit floats), but
reads the file by its path rather than through a pipe: ffmpeg can then seek, so an m4a whose
index comes after its audio (ffmpeg's own default, and many recorders') decodes (through a pipe
it fails: "partial file"), and an mp3 loses its encoder padding as gapless players drop it.
Samples at another rate than the model's go through the same ffmpeg resampler, as a file at
that rate would; transformers would need torchaudio, which has no build for this torch.

Long audio runs as transformers runs it: Whisper transcribes audio longer than its 30 s window
with its own sequential long-form algorithm; ``chunk_length_s`` cuts it into overlapping chunks
that run in batches and are stitched together.

torch and transformers are imported on the first load, never at import.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np

from . import _args, errors, jobs, models, pipeline_args
from .pipeline_args import GENERATE, SEED, Bad, Choice, Either, Flag, Number, Spec, Text

TASKS = ("automatic-speech-recognition",)
LOWEST_RATE, HIGHEST_RATE = 1000, 768000  # Hz; below 1000, a rate given in kHz (16, 44.1)


class Rates(Spec):
    """A sampling rate in Hz, or one per input."""

    describe = (
        f"a whole number of Hz from {LOWEST_RATE} to {HIGHEST_RATE} (e.g. 16000), or one per input"
    )

    def __call__(self, value):
        rates = value if isinstance(value, (list, tuple)) else [value]
        if not rates:
            raise Bad()
        out = [_rate(r) for r in rates]
        return out if isinstance(value, (list, tuple)) else out[0]


def _rate(value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Bad()
    if not LOWEST_RATE <= value <= HIGHEST_RATE:
        raise Bad()
    return value


ARGS = {
    "sampling_rate": Rates(),
    "return_timestamps": Either(Flag(), Choice("word")),
    "chunk_length_s": Number(0, open=("low",)),
    "stride_length_s": Number(0),
    "language": Text(),
    "task": Choice("transcribe", "translate"),
    "return_language": Flag(),
    "seed": SEED,
    # one transcript per input: more sequences would be dropped
    **{k: v for k, v in GENERATE.items() if k != "num_return_sequences"},
}


def check_args(task: str, name: str, args: dict) -> dict:
    """The task's arguments checked against :data:`ARGS` (see :mod:`pybridge.pipeline_args`)."""
    return pipeline_args.check(task, name, args, table=ARGS)


# ---------------------------------------------------------------------------------------------
# Inputs


class Audio:
    """One input: a file (``path`` as given) or ``samples`` at ``rate`` Hz."""

    def __init__(self, path=None, samples=None, rate=None):
        self.path, self.samples, self.rate = path, samples, rate

    def decode(self, sampling_rate: int, position: int) -> np.ndarray:
        """Mono float32 samples at ``sampling_rate``."""
        if self.path is not None:
            return decode(self.path, sampling_rate, position)
        if self.rate == sampling_rate:
            return self.samples
        return resample(self.samples, self.rate, sampling_rate)


def check_inputs(value, args: dict, name="inputs") -> list:
    """The inputs as :class:`Audio`: a path, samples, or a list of them. A file must exist;
    samples need ``args['sampling_rate']`` (one, or one per input), which is taken out of
    ``args``. InvalidArgumentError otherwise, naming the input's position."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise errors.InvalidArgumentError(
            f"{name} is empty: give audio files or samples.", argument=name
        )
    samples = {
        position: _samples(item, name, position)
        for position, item in enumerate(items, start=1)
        if not isinstance(item, str)
    }
    rates = _rates_per_input(args.pop("sampling_rate", None), len(samples), name)
    out = []
    for position, item in enumerate(items, start=1):
        if isinstance(item, str):
            out.append(Audio(path=_check_file(item, name, position)))
        else:
            out.append(Audio(samples=samples[position], rate=rates.pop(0)))
    return out


def _rates_per_input(rates, n_samples, name) -> list:
    if rates is None and n_samples:
        raise errors.InvalidArgumentError(
            f"{name} holds samples: give their sampling_rate in Hz, e.g. sampling_rate = 16000.",
            argument="sampling_rate",
        )
    if rates is not None and not n_samples:
        raise errors.InvalidArgumentError(
            "sampling_rate is for samples; audio files carry their own.",
            argument="sampling_rate",
            value=pipeline_args.shown(rates),
        )
    rates = rates if isinstance(rates, list) else [rates] * n_samples
    if len(rates) != n_samples:
        raise errors.InvalidArgumentError(
            f"Give one sampling_rate, or one per input of samples ({n_samples}); got {len(rates)}.",
            argument="sampling_rate",
        )
    return list(rates)


def _check_file(item: str, name: str, position: int) -> str:
    path = os.path.expanduser(item)
    where = dict(argument=name, path=item, position=position)
    if os.path.isfile(path):
        return item
    if os.path.isdir(path):
        raise errors.InvalidArgumentError(
            f"{name}[{position}] '{item}' is a folder; give the paths of its audio files, e.g. "
            "list.files(folder, pattern = '[.](wav|mp3)$', full.names = TRUE).",
            **where,
        )
    looks_like_text = " " in item.strip() and os.sep not in item and "." not in item[-6:]
    raise errors.InvalidArgumentError(
        f"{name}[{position}] '{item}' is text, not audio: speech recognition takes audio "
        "files, or samples with their sampling_rate."
        if looks_like_text
        else f"{name}[{position}]: the audio file '{item}' does not exist (working directory: "
        f"{os.getcwd()}).",
        **where,
    )


def _samples(item, name, position) -> np.ndarray:
    where = dict(argument=name, position=position)
    try:
        samples = np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError):
        samples = None
    if samples is None or samples.dtype.kind != "f" or isinstance(item, (bool, dict)):
        raise errors.InvalidArgumentError(
            f"{name}[{position}] is a {type(item).__name__}: give an audio file's path, or "
            "samples (a numeric vector) with their sampling_rate.",
            **where,
        )
    samples = samples.reshape(-1) if samples.ndim > 1 and min(samples.shape) == 1 else samples
    if samples.ndim != 1 or samples.size == 0:
        raise errors.InvalidArgumentError(
            f"{name}[{position}]: samples must be one channel, a non-empty vector (got shape "
            f"{samples.shape}); mix channels down first, e.g. rowMeans(x).",
            **where,
        )
    if not np.isfinite(samples).all() or np.abs(samples).max() > 1:
        raise errors.InvalidArgumentError(
            f"{name}[{position}]: samples must be finite numbers within -1 to 1 (16-bit "
            "integer samples: divide them by 32768).",
            **where,
        )
    return samples


# ---------------------------------------------------------------------------------------------
# ffmpeg


def ffmpeg() -> str:
    """The ffmpeg program on the PATH, or SystemDependencyError saying how to install it."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise errors.SystemDependencyError(
            "Decoding audio needs ffmpeg, which is not on the PATH. Install it (Debian and "
            "Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg), or give samples with "
            "their sampling_rate instead of files.",
            program="ffmpeg",
        )
    return found


def _run(cmd, data=None) -> tuple:
    """ffmpeg's float32 output, its exit code and the last line it wrote to stderr."""
    done = subprocess.run(cmd, input=data, capture_output=True, check=False)
    samples = np.frombuffer(done.stdout, dtype="<f4")
    why = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return samples, done.returncode, (why[-1] if why else "no audio in it")


_OUTPUT = ["-ac", "1", "-f", "f32le", "pipe:1"]  # mono 32-bit floats, as ffmpeg_read asks


def decode(path: str, sampling_rate: int, position=None) -> np.ndarray:
    """The audio file at ``path`` as mono float32 samples at ``sampling_rate``."""
    cmd = [ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error"]
    # "file:" makes a name such as "take2:final.wav" or "pipe:0" a file, not ffmpeg's protocol
    source = "file:" + os.path.abspath(os.path.expanduser(path))
    cmd += ["-i", source, "-vn", "-ar", str(sampling_rate)] + _OUTPUT
    samples, exit_code, why = _run(cmd)
    if exit_code != 0 or samples.size == 0:
        raise errors.InvalidFileError(
            f"'{path}' is not audio that ffmpeg can decode ({why}).", path=path, position=position
        )
    return samples


def resample(samples: np.ndarray, rate: int, sampling_rate: int) -> np.ndarray:
    """Mono float32 ``samples`` from ``rate`` to ``sampling_rate`` Hz, by ffmpeg's resampler."""
    cmd = [ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error"]
    cmd += ["-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
    cmd += ["-ar", str(sampling_rate)] + _OUTPUT
    out, exit_code, why = _run(cmd, np.ascontiguousarray(samples, dtype="<f4").tobytes())
    if exit_code != 0:
        raise errors.PythonError(f"ffmpeg could not resample the samples ({why}).")
    return out


# ---------------------------------------------------------------------------------------------
# The pipeline


def build(name, path, dev, use_safetensors, trust_remote_code):
    """transformers' pipeline of the task ``name`` for the model folder ``path``."""
    transformers = models.import_transformers()
    pipe = transformers.pipeline(
        name,
        model=path,
        device=dev,
        trust_remote_code=trust_remote_code,
        model_kwargs={"use_safetensors": use_safetensors},
    )
    _check_model_fits(pipe, name)
    return pipe


def _check_model_fits(pipe, name) -> None:
    """A model that is no speech recognizer is a ValueError here, which the loader turns into
    UnsupportedError (transformers may build the pipeline and fail at the first call)."""
    from transformers.pipelines import SUPPORTED_TASKS

    autos = SUPPORTED_TASKS[name]["pt"]
    names = set()
    for auto in autos:
        for value in auto._model_mapping._model_mapping.values():
            names.update(value if isinstance(value, (list, tuple)) else [value])
    if type(pipe.model).__name__ not in names or pipe.feature_extractor is None:
        raise ValueError(f"{type(pipe.model).__name__} is not a speech recognition model")


def refuse_speech_model(path) -> None:
    """A speech model (by its config's model_type) in the folder ``path`` of a text task:
    transformers builds the pipeline, logs an error and fails on the first text with an
    AttributeError. A ValueError here, which the loader turns into UnsupportedError."""
    from transformers.models.auto import modeling_auto as auto

    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            model_type = json.load(handle).get("model_type")
    except (OSError, ValueError):
        return  # transformers says what is wrong with it
    speech = {**auto.MODEL_FOR_CTC_MAPPING_NAMES, **auto.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES}
    if model_type in speech:
        raise ValueError(
            f"'{model_type}' is a speech model, which takes audio: use the task '{TASKS[0]}'"
        )


def start(task, name, pipe, items, args, batch_size=None) -> "Job":
    """A job running ``pipe`` lazily over ``items`` (:class:`Audio` from :func:`check_inputs`)
    with the checked ``args``; each input is decoded when the pipeline asks for it."""
    if batch_size is not None:
        args["batch_size"] = _args.count(batch_size, "batch_size")
    seed = args.pop("seed", None)
    if seed is not None:
        models.import_transformers().set_seed(seed)
    if "chunk_length_s" in args:
        args["ignore_warning"] = True  # chunking is documented; transformers warns every call
    rate = pipe.feature_extractor.sampling_rate
    feed = (item.decode(rate, i) for i, item in enumerate(items, start=1))
    outputs = iter(pipe(feed, **args)) if items else iter(())
    return Job(task, items, outputs, args)


class Job(jobs.PipelineJob):
    """One pipeline call over many inputs, consumed step by step; its units are inputs."""

    # transformers' refusals: a ValueError, or a TypeError for a language it does not know or
    # timestamps a CTC model cannot give
    refused = (ValueError, TypeError)

    def __init__(self, task, items, outputs, args):
        super().__init__(task, items, outputs)
        self.args = args

    def output(self) -> dict:
        return columns(self.items, self.results, self.args)


def columns(items, results, args) -> dict:
    """One row per input (``audio_id``, ``file``, ``text``), or with timestamps one per
    segment (or word), with ``segment``, ``start`` and ``end`` in seconds (NaN: not predicted);
    ``language`` with return_language. ``file`` is "" for samples."""
    stamps = bool(args.get("return_timestamps"))
    rows = []
    for i, (item, res) in enumerate(zip(items, results), start=1):
        chunks = res.get("chunks") or []
        if stamps:
            rows += [(i, item, k, c) for k, c in enumerate(chunks, start=1)]
        else:
            first = chunks[0] if chunks else {}
            rows.append((i, item, 1, {"text": res["text"], "language": first.get("language")}))
    cols = {
        "audio_id": np.asarray([r[0] for r in rows], dtype=np.int32),
        "file": [r[1].path or "" for r in rows],
    }
    if stamps:
        cols["segment"] = np.asarray([r[2] for r in rows], dtype=np.int32)
        cols["start"] = _seconds([r[3]["timestamp"][0] for r in rows])
        cols["end"] = _seconds([r[3]["timestamp"][1] for r in rows])
    cols["text"] = [str(r[3]["text"]) for r in rows]
    if args.get("return_language"):
        cols["language"] = [str(r[3].get("language") or "") for r in rows]
    return cols


def _seconds(values) -> np.ndarray:
    return np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)
