"""Why the fast path has no better int8 (issue 25): the quality that int8 schemes can reach on
all-MiniLM-L6-v2 and the bench's 2,000 texts, against fp32, with the report's own measures
(each text's cosine, top-10 overlap of a semantic search of the first 200 texts).

Every nn.Linear is replaced by a simulated int8 one (values rounded as int8 would hold them,
arithmetic in fp32), which isolates the rounding from any kernel:
  weights       int8 weights per output channel, fp32 activations (weight-only int8)
  w8a8          int8 weights per channel and int8 activations per token (dynamic, symmetric)
  smooth        w8a8 after SmoothQuant's scaling (alpha 0.5, from the 200 calibration texts)
  smooth_mixed  smooth on the query, key, value and intermediate layers; the rest fp32
Then `smooth_mixed` runs for real in bf16 (torch._int_mm on the int8 layers, the others packed
for oneDNN as the bf16 fast path packs them), timed against that bf16 fast path in the same
process.

Usage: python bench/fastpath/int8_study.py TEXTS_FILE   (bench/data/pipeline_texts_2000.txt,
which bench/pipelines/make_data.py writes)
"""

from __future__ import annotations

import importlib.util
import os
import re
import statistics
import sys
import time

import numpy as np

from pybridge import fastpath
from pybridge.models import import_torch, import_transformers

HERE = os.path.dirname(os.path.abspath(__file__))
MIXED_INT8 = r"attention\.self\.(query|key|value)$|intermediate\.dense$"
QUERIES = 200


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipelines = _load("pipelines_bench_py", "../pipelines/bench_py.py")
report = _load("fastpath_report", "report.py")
torch = import_torch()


def int8(values, dim):
    """``values`` rounded to symmetric int8 steps, one scale per slice along ``dim``."""
    scale = values.abs().amax(dim, keepdim=True).clamp(min=1e-8) / 127
    return torch.round(values / scale).clamp(-127, 127), scale


class SimulatedInt8(torch.nn.Module):
    def __init__(self, linear, smooth, activations):
        super().__init__()
        q, scale = int8(linear.weight.detach().float() * smooth, 1)
        self.weight, self.bias, self.inv = q * scale, linear.bias, 1 / smooth
        self.activations = activations

    def forward(self, x):
        x = x * self.inv
        if self.activations:
            q, scale = int8(x, -1)
            x = q * scale
        return torch.nn.functional.linear(x, self.weight, self.bias)


class Int8Linear(torch.nn.Module):
    """The same rounding as SimulatedInt8 with activations, on torch._int_mm (VNNI)."""

    def __init__(self, linear, smooth):
        super().__init__()
        q, scale = int8(linear.weight.detach().float() * smooth, 1)
        self.weight = q.to(torch.int8).t().contiguous()
        self.scale, self.bias, self.inv = scale.t(), linear.bias.detach().float(), 1 / smooth

    def forward(self, x):
        shape = x.shape
        q, scale = int8(x.reshape(-1, shape[-1]).float() * self.inv, -1)
        acc = torch._int_mm(q.to(torch.int8), self.weight)
        out = torch.addcmul(self.bias, acc.float(), scale * self.scale)
        return out.to(x.dtype).reshape(*shape[:-1], -1)


def smoothing(model, tok, alpha=0.5):
    """SmoothQuant's per-input-channel scales: max|X|^alpha / max|W|^(1 - alpha)."""
    peaks, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):

            def hook(_module, inputs, _out, name=name):
                peak = inputs[0].detach().float().abs().flatten(0, -2).amax(0)
                peaks[name] = torch.maximum(peaks.get(name, peak), peak)

            hooks.append(module.register_forward_hook(hook))
    pipelines.floor_embed(tok, model, fastpath.calibration_texts(tok))
    for hook in hooks:
        hook.remove()
    return {
        name: peak.clamp(min=1e-5).pow(alpha)
        / model.get_submodule(name)
        .weight.detach()
        .float()
        .abs()
        .amax(0)
        .clamp(min=1e-5)
        .pow(1 - alpha)
        for name, peak in peaks.items()
    }


def replace(model, pattern, build, scales, **options):
    """Each nn.Linear of ``model`` whose name matches ``pattern`` replaced by
    ``build(linear, scales[name], **options)``."""
    for name, module in list(model.named_modules()):
        if isinstance(module, torch.nn.Linear) and re.search(pattern, name):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, build(module, scales[name], **options))
    return model


def model(dtype=None):
    transformers = import_transformers()
    return transformers.AutoModel.from_pretrained(pipelines.minilm(), dtype=dtype).eval()


def quality(emb, ref, ref_top):
    cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
    top = report.top10(emb, QUERIES)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top)])
    return f"cosine min {cos.min():.5f} mean {cos.mean():.6f}, top-10 {overlap:.3f}"


def bf16_fast(int8_pattern=None, smooth=None):
    fast = model(torch.bfloat16)
    if int8_pattern:
        replace(fast, int8_pattern, Int8Linear, smooth)
    fastpath.pack_linears(fast)
    fastpath.float_outputs(fast)
    return fast


def median_seconds(fn, rounds=3):
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        texts = [line.rstrip("\n") for line in handle if line.strip()]
    tok = import_transformers().AutoTokenizer.from_pretrained(pipelines.minilm())
    embed = lambda m: pipelines.floor_embed(tok, m, texts)  # noqa: E731
    with torch.inference_mode():
        ref = embed(model())
        ref_top = report.top10(ref, QUERIES)
        smooth = smoothing(model(), tok)
        ones = {name: torch.ones(s.shape) for name, s in smooth.items()}
        variants = {
            "weights": (ones, False, "."),
            "w8a8": (ones, True, "."),
            "smooth": (smooth, True, "."),
            "smooth_mixed": (smooth, True, MIXED_INT8),
        }
        for label, (scales, activations, pattern) in variants.items():
            simulated = replace(model(), pattern, SimulatedInt8, scales, activations=activations)
            print(f"{label:<14}{quality(embed(simulated), ref, ref_top)}", flush=True)
        bf16, mixed = bf16_fast(), bf16_fast(MIXED_INT8, smooth)
        print(f"{'bf16':<14}{quality(embed(bf16), ref, ref_top)}")
        print(f"{'mixed (real)':<14}{quality(embed(mixed), ref, ref_top)}")
        ratio = median_seconds(lambda: embed(bf16)) / median_seconds(lambda: embed(mixed))
        print(f"speed of the real mixed model against the bf16 fast path: {ratio:.2f}x")


if __name__ == "__main__":
    main()
