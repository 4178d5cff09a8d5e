"""The arguments of ``hf_inference()``'s task verbs, under the names ``InferenceClient`` gives
them, checked before any request.

A task takes the parameters of its ``InferenceClient`` method (read from its signature, so a
newer huggingface_hub brings its own), and the local pipeline()'s arguments under the name
that method gives them (``stop_sequence`` is ``stop``). A local argument that the remote API has
no way to honour is ``unsupported``, saying why; any other name is ``invalid_argument``. Either
way nothing has been sent, and the chain does not move on to the next endpoint.
"""

from __future__ import annotations

import inspect

from . import errors
from .pipeline_args import shown

# The InferenceClient method of each task verb.
METHODS = {
    "text-generation": "text_generation",
    "feature-extraction": "feature_extraction",
    "text-classification": "text_classification",
    "token-classification": "token_classification",
    "zero-shot-classification": "zero_shot_classification",
    "image-classification": "image_classification",
    "zero-shot-image-classification": "zero_shot_image_classification",
    "object-detection": "object_detection",
    "image-to-text": "image_to_text",
    "automatic-speech-recognition": "automatic_speech_recognition",
}
# Parameters hfbridge sets itself, or that would change the shape of the answer it reads.
OWN = {"self", "model", "stream", "details", "decoder_input_details", "encoding_format"}


def _stop(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _truncate(value) -> bool:
    return value not in (False, "do_not_truncate")


# Local pipeline() arguments that InferenceClient names otherwise: its name, and the value as it
# takes it.
RENAMED = {
    "text-generation": {"stop_sequence": ("stop", _stop)},
    "feature-extraction": {"truncation": ("truncate", _truncate)},
}
# Local arguments whose value the remote API cannot honour beyond a default: why, and the value
# that is no request at all.
CANNOT = {
    "text-generation": {
        "num_return_sequences": (
            1,
            "the text-generation API (TGI's, and InferenceClient.text_generation()) returns one "
            "text per prompt. Repeat the prompt in `inputs` (with do_sample = TRUE) for several",
        ),
    },
}


def remote_args(task: str, args: dict) -> dict:
    """``args`` under the names of the task's InferenceClient method, or the refusal of the
    first one it cannot take."""
    takes = parameters(task)
    out = {}
    for name, value in args.items():
        default, why = CANNOT.get(task, {}).get(name, (None, None))
        if why is not None:
            if value != default:
                raise errors.UnsupportedError(
                    f"{task} on an endpoint cannot take {name} = {shown(value)}: {why}.",
                    argument=name,
                    task=task,
                )
            continue
        remote, convert = RENAMED.get(task, {}).get(name, (name, None))
        if remote in takes:
            out[remote] = convert(value) if convert else value
        elif name in local_arguments(task):
            raise errors.UnsupportedError(
                f"{task}: `{name}` is an argument of the local pipeline() that "
                f"InferenceClient.{METHODS[task]}() has no parameter for, so no endpoint would "
                f"honour it. The arguments on an endpoint: {accepted(task, takes)}.",
                argument=name,
                task=task,
            )
        else:
            raise errors.InvalidArgumentError(
                f"{task} has no argument `{name}`. The arguments on an "
                f"endpoint: {accepted(task, takes)}.",
                argument=name,
                task=task,
            )
    return out


def accepted(task: str, takes: set) -> str:
    return ", ".join(sorted(takes | set(RENAMED.get(task, {}))))


def parameters(task: str) -> set:
    """The parameters of the task's InferenceClient method, but its input and those of OWN."""
    from huggingface_hub import InferenceClient

    names = list(inspect.signature(getattr(InferenceClient, METHODS[task])).parameters)
    return set(names[2:]) - OWN  # after self and the input (prompt, text, image, audio)


def local_arguments(task: str) -> set:
    """The arguments the local pipeline() of the task takes."""
    from . import audio, pipeline_args, vision

    if task in vision.ARGS:
        return set(vision.ARGS[task])
    if task in audio.TASKS:
        return set(audio.ARGS)
    return set(pipeline_args.TASKS[task])
