"""Runs transformers 4 pipelines on cases read from stdin (JSON) and prints their outputs (JSON).

Started by the ``transformers4`` fixture of tests/test_pipeline.py with
PYTHONPATH=.venv/transformers4, so that ``import transformers`` is transformers 4 while torch,
numpy and safetensors are the venv's.
Each case: {"task", "model" (a folder), "inputs", "call" (keyword arguments of the call)}.
"""

import json
import os
import sys

import transformers

if not transformers.__version__.startswith("4."):
    sys.exit(
        f"expected transformers 4, got {transformers.__version__} from {transformers.__file__}"
    )
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

import torch  # noqa: E402

torch.set_num_threads(1)


def tokenizer(folder):
    """transformers 5 writes extra_special_tokens as a list; transformers 4 reads a map there,
    and the same list as additional_special_tokens."""
    with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as handle:
        extra = json.load(handle).get("extra_special_tokens")
    kwargs = {}
    if isinstance(extra, list):
        kwargs = {"extra_special_tokens": {}, "additional_special_tokens": extra}
    return transformers.AutoTokenizer.from_pretrained(folder, **kwargs)


pipes = {}
results = []
for case in json.load(sys.stdin):
    key = (case["task"], case["model"])
    if key not in pipes:
        pipes[key] = transformers.pipeline(
            case["task"], model=case["model"], tokenizer=tokenizer(case["model"]), device="cpu"
        )
    inputs = case["inputs"]
    out = (
        pipes[key](**inputs, **case["call"])
        if isinstance(inputs, dict)
        else pipes[key](inputs, **case["call"])
    )
    results.append(out)
json.dump({"version": transformers.__version__, "results": results}, sys.stdout)
