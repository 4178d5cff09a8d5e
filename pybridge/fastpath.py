"""The fast path: a text model in bf16 or int8, on torch or ONNX Runtime, converted once, cached
on disk, and measured against fp32.

What each choice runs (``backend``, ``precision``):

- ``torch``, ``fp32``: the exact default; this module is not involved.
- ``torch``, ``bf16``: the weights in bfloat16, whose matrix products run on AMX (or
  AVX512-BF16), the linear layers' weights packed once for oneDNN (as torch.compile's freezing
  packs them). Outputs are cast back to float32.
- ``torch``, ``int8``: ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` (int8
  weights, activations quantized per batch, on VNNI).
- ``onnx``, ``fp32``: the model exported by ``torch.onnx.export`` (eager attention, so that
  onnxruntime's transformer optimizer fuses attention, GELU and layer norms), run by
  onnxruntime.
- ``onnx``, ``int8``: that graph through onnxruntime's dynamic quantization (per-channel int8
  weights).
- ``onnx``, ``bf16``: refused; onnxruntime's CPU provider has no bf16 kernels for these models.

optimum-onnx, which would do the export, requires transformers < 4.58, and this project runs
transformers 5: the export is torch's own, and the graph work onnxruntime's.

A conversion lives in ``<HF_HOME>/assets/hfbridge/fastpath/<repo folder>/<commit>/<head>-
<backend>-<precision>/`` (``HF_ASSETS_CACHE`` moves ``<HF_HOME>/assets``, as in
huggingface_hub's ``cached_assets_path``): ``quality.json`` for every conversion, and
``model.onnx`` for ONNX ones. A second process reads them without converting again and without
the network. A local folder's ``<commit>`` is a fingerprint of its files' sizes and dates.

``quality.json`` holds how far the fast model is from fp32 on :func:`calibration_texts`: the
cosine of each text's mean-pooled last hidden state (min and mean), and for a classifier the
share of labels (argmax of the logits, per text or per token) that agree. Below
:data:`THRESHOLD` it is flagged ``ok = False``, which R signals as a classed warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

from . import errors, models, settings, staging

BACKENDS = ("torch", "onnx")
PRECISIONS = ("fp32", "bf16", "int8")
THRESHOLD = 0.99
FORMAT = 3  # bump when a conversion changes, so that older ones are made again
# The model class of each head, and the pipeline tasks that take the fast path.
HEADS = {
    "base": "AutoModel",
    "sequence": "AutoModelForSequenceClassification",
    "token": "AutoModelForTokenClassification",
}
TASK_HEADS = {
    "feature-extraction": "base",
    "text-classification": "sequence",
    "token-classification": "token",
}
# The instructions a precision needs to be faster than fp32 (torch.cpu.get_capabilities names).
NEEDS = {
    "bf16": (("amx_bf16", "avx512_bf16"), "AMX or AVX512-BF16"),
    "int8": (("avx512_vnni", "avx_vnni", "amx_int8"), "AVX512-VNNI or AVX-VNNI"),
}
MACHINERY = {
    ("torch", "bf16"): "torch, bfloat16 weights packed for oneDNN (AMX)",
    ("torch", "int8"): "torch.ao dynamic int8 quantization of the linear layers (VNNI)",
    ("onnx", "fp32"): "onnxruntime {ort}{fused}",
    ("onnx", "int8"): "onnxruntime {ort}{fused}, dynamic int8 quantization per channel",
}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


# ---------------------------------------------------------------------------------------------
# Choices and checks


def choice(backend="torch", precision="fp32") -> tuple:
    """``(backend, precision)`` checked; ``None`` takes the exact default."""
    backend = "torch" if backend is None else backend
    precision = "fp32" if precision is None else precision
    if backend not in BACKENDS:
        raise errors.InvalidArgumentError(
            f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.", argument="backend"
        )
    if precision not in PRECISIONS:
        raise errors.InvalidArgumentError(
            f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.",
            argument="precision",
        )
    if (backend, precision) == ("onnx", "bf16"):
        raise errors.UnsupportedError(
            "onnxruntime's CPU provider has no bf16 kernels for these models. Use backend = "
            '"torch", precision = "bf16" (AMX), or backend = "onnx", precision = "int8".',
            backend=backend,
            precision=precision,
            fallback='backend = "torch", precision = "bf16"',
        )
    return backend, precision


def is_exact(backend, precision) -> bool:
    return choice(backend, precision) == ("torch", "fp32")


def cpu_features() -> set:
    """The CPU's instruction sets that torch reports (``amx_bf16``, ``avx512_vnni``, ...)."""
    torch = models.import_torch()
    return {name for name, value in torch.cpu.get_capabilities().items() if value is True}


def require_cpu(precision, features=None) -> None:
    """Refuses a precision the CPU has no instructions for: it would run emulated, slower than
    fp32. The error names the fallback."""
    if precision not in NEEDS:
        return
    features = cpu_features() if features is None else set(features)
    names, label = NEEDS[precision]
    if features & set(names):
        return
    other = "int8" if precision == "bf16" else "bf16"
    fallback = 'precision = "fp32"'
    if features & set(NEEDS[other][0]):
        fallback += f' (or precision = "{other}", which this CPU runs)'
    raise errors.UnsupportedError(
        f"precision = '{precision}' needs a CPU with {label}, and this one has none: it would run "
        f"emulated, slower than fp32. Use {fallback}.",
        precision=precision,
        needs=label,
        fallback=fallback,
    )


def require_cpu_device(device) -> None:
    if str(device) != "cpu":
        raise errors.UnsupportedError(
            "The fast path (backend, precision) runs on the CPU. Use device = 'cpu', or keep "
            "backend = 'torch', precision = 'fp32' on this device.",
            argument="device",
            fallback='backend = "torch", precision = "fp32"',
        )


def head_of(task) -> str:
    head = TASK_HEADS.get(task)
    if head is None:
        raise errors.UnsupportedError(
            f"backend and precision apply to {', '.join(TASK_HEADS)}; '{task}' runs in torch "
            "fp32 only. Leave backend = 'torch', precision = 'fp32'.",
            task=task,
            fallback='backend = "torch", precision = "fp32"',
        )
    return head


# ---------------------------------------------------------------------------------------------
# Where conversions live


def root(env=None) -> str:
    """``<HF_HOME>/assets/hfbridge/fastpath``, or under ``HF_ASSETS_CACHE`` (or its old name
    ``HUGGINGFACE_ASSETS_CACHE``), as huggingface_hub's ``cached_assets_path()`` reads them."""
    values = os.environ if env is None else dict(env or {})
    assets = (
        values.get("HF_ASSETS_CACHE")
        or values.get("HUGGINGFACE_ASSETS_CACHE")
        or os.path.join(settings.resolve(env).hf_home, "assets")
    )
    return os.path.join(os.path.expanduser(assets), "hfbridge", "fastpath")


def identity(path) -> tuple:
    """(repo folder name, commit) of a snapshot folder of the hub cache; for any other folder, a
    name made from its path and a fingerprint of its files (sizes and modification times)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if os.path.basename(parent) == "snapshots":
        return os.path.basename(os.path.dirname(parent)), os.path.basename(path)
    where = hashlib.sha256(path.encode()).hexdigest()[:12]
    files = hashlib.sha256()
    for name in sorted(models._files(path)):
        stat = os.stat(os.path.join(path, name))
        files.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"local--{os.path.basename(path)}--{where}", "files-" + files.hexdigest()[:16]


def folder(path, head, backend, precision, env=None) -> str:
    repo, commit = identity(path)
    return os.path.join(root(env), repo, commit, f"{head}-{backend}-{precision}")


def read_quality(where):
    try:
        with open(os.path.join(where, "quality.json"), encoding="utf-8") as handle:
            quality = json.load(handle)
    except (OSError, ValueError):
        return None
    return quality if quality.get("format") == FORMAT else None


def store(where, write) -> None:
    """``write(tmp)`` fills a staging folder, then it becomes ``where`` in one rename. When
    another process got there first, its conversion is kept (it may be in use); a folder
    without a quality record of this FORMAT (an older one, or one cut short) is replaced."""
    os.makedirs(os.path.dirname(where), exist_ok=True)
    tmp = staging.folder(os.path.dirname(where), "converting")
    try:
        write(tmp)
        if _placed(tmp, where):
            return
        shutil.rmtree(where, ignore_errors=True)  # an older FORMAT, or one cut short
        try:
            os.rename(tmp, where)
        except OSError:
            if read_quality(where) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _placed(tmp, where) -> bool:
    """True once ``where`` holds a conversion: another process's, or ``tmp`` renamed to it."""
    if read_quality(where) is not None:
        return True
    try:
        os.rename(tmp, where)
        return True
    except OSError:
        return read_quality(where) is not None


# ---------------------------------------------------------------------------------------------
# Loading


def load(path, head, backend, precision, trust_remote_code=False, env=None, threads=1):
    """``(model, quality)``: the fast model of the model folder ``path`` and how far it is from
    fp32, converted (and measured) on first use, read from the cache after.

    ``model`` is called as the torch model is (``model(input_ids=..., attention_mask=...)``) and
    answers float32 outputs: ``last_hidden_state`` for the ``base`` head, ``logits`` otherwise.
    ``threads`` are onnxruntime's threads per call.
    """
    backend, precision = choice(backend, precision)
    require_cpu(precision)
    where = folder(path, head, backend, precision, env)
    quality = read_quality(where)
    if backend == "onnx":
        if quality is None or not os.path.exists(os.path.join(where, "model.onnx")):
            store(where, lambda tmp: _convert_onnx(path, head, precision, trust_remote_code, tmp))
            quality = read_quality(where)
        config = _config(path, trust_remote_code)
        model = OnnxModel(os.path.join(where, "model.onnx"), config, head, threads)
    else:
        model, quality = _torch_model(path, head, precision, trust_remote_code, where, quality)
    return model, {**quality, "folder": where}


def pipeline(task, path, device, backend, precision, trust_remote_code=False, env=None):
    """transformers' pipeline of ``task`` over the fast model of ``path``, with its quality
    record as ``.fastpath``. onnxruntime takes torch's thread count (the pipeline runs one batch
    at a time)."""
    head = head_of(task)
    require_cpu_device(device)
    torch, transformers = models.import_torch(), models.import_transformers()
    threads = torch.get_num_threads()
    net, quality = load(path, head, backend, precision, trust_remote_code, env, threads)
    if backend == "onnx":
        net = _onnx_shell(path, head, net, trust_remote_code)
    tok = load_tokenizer(path, trust_remote_code)
    with models.quiet_transformers():
        pipe = transformers.pipeline(task, model=net, tokenizer=tok, device=device)
    if backend == "onnx":
        pipe.model.to("meta")  # its weights are onnxruntime's now: free torch's copy
    pipe.fastpath = quality
    return pipe


def _onnx_shell(path, head, onnx_model, trust_remote_code):
    """The torch model that transformers' pipeline expects (its config, its class), whose
    forward runs the onnxruntime session."""
    shell = _auto(head, path, trust_remote_code)

    def forward(input_ids=None, attention_mask=None, token_type_ids=None, **_ignored):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            feed["token_type_ids"] = token_type_ids
        return onnx_model(**feed)

    shell.forward = forward
    return shell


def _config(path, trust_remote_code):
    transformers = models.import_transformers()
    return transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)


def _auto(head, path, trust_remote_code, **kwargs):
    transformers = models.import_transformers()
    with models.quiet_transformers():
        return (
            getattr(transformers, HEADS[head])
            .from_pretrained(
                path,
                use_safetensors=models.use_safetensors(path),
                trust_remote_code=trust_remote_code,
                **kwargs,
            )
            .eval()
        )


def load_tokenizer(path, trust_remote_code):
    transformers = models.import_transformers()
    with models.quiet_transformers():
        return transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def _refuse_dual(model, path):
    """An image-text model (CLIP), as pybridge.embed.is_dual_encoder tells it."""
    if hasattr(model, "get_text_features") and hasattr(model, "get_image_features"):
        raise errors.UnsupportedError(
            f"The fast path covers text models; '{path}' is an image-text model. Use backend = "
            "'torch', precision = 'fp32'.",
            fallback='backend = "torch", precision = "fp32"',
        )


def _torch_model(path, head, precision, trust_remote_code, where, quality):
    torch = models.import_torch()
    started = time.monotonic()
    tok = load_tokenizer(path, trust_remote_code) if quality is None else None
    if precision == "bf16":
        model = _auto(head, path, trust_remote_code, dtype=torch.bfloat16)
        _refuse_dual(model, path)
        pack_linears(model)
        float_outputs(model)
        if quality is None:
            reference = _auto(head, path, trust_remote_code)
            quality = _measured(reference, model, tok, head, precision, where, started)
        return model, quality
    model = _auto(head, path, trust_remote_code)
    _refuse_dual(model, path)
    reference = _outputs(model, tok, head) if quality is None else None
    with _quiet():  # torch.ao.quantization's deprecation notice
        torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    if quality is None:
        quality = _measured(reference, model, tok, head, precision, where, started)
    return model, quality


def _measured(reference, fast, tok, head, precision, where, started) -> dict:
    """Quality of the torch model ``fast`` against ``reference`` (a model, or its outputs),
    written to ``where`` (torch conversions have nothing else to store)."""
    quality = record(compare(reference, fast, tok, head), "torch", precision, started)
    store(where, lambda tmp: _write_quality(tmp, quality))
    return quality


def pack_linears(model) -> None:
    """Each bf16 ``nn.Linear`` of ``model`` replaced by its weights packed once in oneDNN's
    layout: the same results, and 9% less time on all-MiniLM-L6-v2, where the layout was
    otherwise made again at every call. The GELU after a BERT-like intermediate layer runs inside
    that layer's matrix product (oneDNN's post-op), not as a pass of its own over the 4x wider
    activations: 28% less time in that layer. Left as they are where torch has no such op."""
    torch = models.import_torch()
    ops = torch.ops.mkldnn
    if not (hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise")):
        return
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.dtype == torch.bfloat16:
                setattr(module, name, _packed_linear_class()(child))
    for module in list(model.modules()):
        _fuse_gelu(module)


def _fuse_gelu(module) -> None:
    """A ``*Intermediate`` module whose forward is ``act(dense(x))`` (BERT's and its kin's), with
    an exact or tanh GELU: the GELU moves into the packed dense layer."""
    torch = models.import_torch()
    dense, act = getattr(module, "dense", None), getattr(module, "intermediate_act_fn", None)
    if not (
        type(module).__name__.endswith("Intermediate")
        and set(dict(module.named_children())) <= {"dense", "intermediate_act_fn"}
        and isinstance(dense, _packed_linear_class())
    ):
        return
    algorithm = _gelu_algorithm(act)
    if algorithm is not None:
        dense.post = ("gelu", algorithm)
        module.intermediate_act_fn = torch.nn.Identity()


def _gelu_algorithm(act):
    """The algorithm ("none": exact, or "tanh") of torch's and transformers' GELUs, else None."""
    torch = models.import_torch()
    if isinstance(act, torch.nn.GELU):
        return act.approximate
    if type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is (
        torch.nn.functional.gelu
    ):
        return "none"
    return None


@functools.lru_cache(maxsize=1)
def _packed_linear_class():
    torch = models.import_torch()

    class PackedLinear(torch.nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 512)
            self.bias = None if linear.bias is None else linear.bias.detach()
            self.post = ("none", "")  # oneDNN's post-op and its algorithm

        def forward(self, x):
            attr, algo = self.post
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, attr, [], algo)

    return PackedLinear


def float_outputs(model) -> None:
    """``model``'s floating outputs cast to float32 (a bf16 model's, for pooling and softmax)."""
    forward = model.forward

    @functools.wraps(forward)
    def float_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        for key, value in out.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                out[key] = value.float()
            elif key == "hidden_states" and value is not None:
                out[key] = tuple(v.float() for v in value)
        return out

    model.forward = float_forward


# ---------------------------------------------------------------------------------------------
# ONNX


class OnnxModel:
    """An onnxruntime session called like the torch model it was exported from."""

    def __init__(self, file, config, head, threads=1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        # Threads that spin between calls took a third longer on a busy 2-core machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own kinds
            raise errors.UnsupportedError(
                f"onnxruntime cannot run the converted model {file}: {_first_line(exc)}. Use "
                "backend = 'torch'.",
                path=file,
                fallback='backend = "torch"',
            ) from exc
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.config, self.head = config, head
        self.device = models.import_torch().device("cpu")

    def __call__(self, **feed):
        torch = models.import_torch()
        arrays = {}
        for name in self.inputs:
            value = feed.get(name)
            if value is None:  # token_type_ids the caller left out
                value = torch.zeros_like(feed["input_ids"])
            arrays[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
        values = dict(zip(self.outputs, self.session.run(None, arrays)))
        return _model_output(self.head, {k: torch.from_numpy(v) for k, v in values.items()})


def _model_output(head, values):
    from transformers import modeling_outputs as mo

    hidden = values["last_hidden_state"]
    if head == "base":
        return mo.BaseModelOutput(last_hidden_state=hidden, hidden_states=(hidden,))
    kind = mo.SequenceClassifierOutput if head == "sequence" else mo.TokenClassifierOutput
    return kind(logits=values["logits"], hidden_states=(hidden,))


def _convert_onnx(path, head, precision, trust_remote_code, out) -> None:
    started = time.monotonic()
    tok = load_tokenizer(path, trust_remote_code)
    reference = _auto(head, path, trust_remote_code, attn_implementation="eager")
    _refuse_dual(reference, path)
    # before the export, which leaves the traced model giving other results
    expected = _outputs(reference, tok, head)
    work = tempfile.mkdtemp(prefix="hfbridge-onnx-")
    try:
        exported = export(reference, tok, head, os.path.join(work, "exported.onnx"), path)
        fused = optimize(exported, reference.config, os.path.join(work, "fused.onnx"))
        final = os.path.join(out, "model.onnx")
        if precision == "int8":
            quantize(fused, final)
        else:
            shutil.copyfile(fused, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fast = OnnxModel(final, reference.config, head)
    quality = record(compare(expected, fast, tok, head), "onnx", precision, started)
    if fused == exported:
        quality["machinery"] = quality["machinery"].replace(", fused graph", "")
    _write_quality(out, quality)


def _export_module(model, names, head):
    torch = models.import_torch()

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *values):
            out = self.model(**dict(zip(names, values)), output_hidden_states=head != "base")
            if head == "base":
                return out.last_hidden_state
            return out.logits, out.hidden_states[-1]

    return Exported()


def export(model, tok, head, file, source) -> str:
    """``model`` as an ONNX graph with dynamic batch and sequence axes; an architecture torch
    cannot export is an UnsupportedError that names the fallback."""
    torch = models.import_torch()
    names = [n for n in INPUTS if n == "input_ids" or n in tok.model_input_names]
    sample = tok(["a short text", "a longer text, to export"], padding=True, return_tensors="pt")
    names = [n for n in names if n in sample]
    outputs = ["last_hidden_state"] if head == "base" else ["logits", "last_hidden_state"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + outputs}
    if head == "sequence":
        axes["logits"] = {0: "batch"}
    try:
        with _quiet(), _quiet_fd():
            torch.onnx.export(
                _export_module(model, names, head),
                tuple(sample[n] for n in names),
                file,
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
        kind = getattr(model.config, "model_type", "?")
        raise errors.UnsupportedError(
            f"'{source}' (a {kind} model) cannot be exported to ONNX: {_first_line(exc)}. Use "
            "backend = 'torch' (precision = 'bf16' or 'int8' run there too).",
            model_type=kind,
            backend="onnx",
            fallback='backend = "torch"',
        ) from exc
    return file


def optimize(file, config, out) -> str:
    """onnxruntime's transformer optimizer (attention, GELU, layer norm fusions) for the model
    types it knows; the exported graph as it is for the others."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    kind = getattr(config, "model_type", None)
    kind = "bert" if kind in ("distilbert", "roberta", "xlm-roberta", "electra", "mpnet") else kind
    if kind not in MODEL_TYPES:
        return file
    with _quiet():
        optimized = optimize_model(file, model_type=kind, num_heads=0, hidden_size=0, opt_level=1)
        optimized.save_model_to_file(out)
    return out


def quantize(file, out) -> str:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            file,
            out,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return out


@contextlib.contextmanager
def _quiet():
    """The exporter's and onnxruntime's warnings and prints kept off the user's console."""
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            with contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                yield
    finally:
        root_logger.setLevel(level)


@contextlib.contextmanager
def _quiet_fd():
    """Standard output and error at the file level: torch's exporter prints the graph of a
    failed export from C++."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                _flush_c_streams()  # what C++ buffered goes to the sink, not the console later
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _flush_c_streams() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def _first_line(exc) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"[:300]


# ---------------------------------------------------------------------------------------------
# Quality


NATURAL = [
    "The cat sat on the mat.",
    "This course is excellent, and the explanations are clear.",
    "The explanation was very confusing and far too long.",
    "Paris is the capital of France.",
    "Alice lives in Berlin and works for Acme Corporation.",
    "The meeting was moved to Monday at noon because of the holiday.",
    "Hugging Face hosts models, datasets and spaces for machine learning.",
    "I would not recommend this restaurant to anyone.",
    "Quarterly revenue rose by twelve percent, driven by strong sales in Asia.",
    "Please return the form before the end of the month.",
    "The patient reported mild headaches and trouble sleeping.",
    "Deep learning models need a lot of data and compute.",
    "What time does the last train leave for Lyon?",
    "The new update broke the login page again.",
    "She played the piano beautifully at the concert last night.",
    "Rain is expected over the weekend, with strong winds on Sunday.",
    "R users like data frames, matrices and vectors.",
    "The committee rejected the proposal after a long debate.",
    "Thanks a lot, that solved my problem!",
    "Customs delayed the shipment for three days.",
    "Our team won the championship after a dramatic final.",
    "The museum is closed on Tuesdays.",
    "This phone's battery barely lasts half a day.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Bob met Carol in London last year, and they founded a startup together.",
    "The service was slow, the food was cold, and the bill was wrong.",
    "A delightful film with a clever script and wonderful actors.",
    "The central bank kept interest rates unchanged.",
    "Can you recommend a good book about the history of Rome?",
    "Error: the file could not be opened because it is locked by another process.",
    "hello",
    "ok",
]
N_CALIBRATION = 200
MAX_TOKENS = 128


def calibration_texts(tokenizer, n=N_CALIBRATION, seed=0) -> list:
    """:data:`NATURAL` sentences, then texts decoded from random token ids of the model's own
    vocabulary (lengths log-normal, median 16 tokens), so that any tokenizer gets real words."""
    rng = np.random.default_rng(seed)
    special = set(tokenizer.all_special_ids)
    ids = np.array([i for i in range(len(tokenizer)) if i not in special])
    texts = list(NATURAL[:n])
    while len(texts) < n:
        length = int(np.clip(round(rng.lognormal(np.log(16), 0.8)), 2, MAX_TOKENS - 8))
        text = tokenizer.decode(rng.choice(ids, size=length).tolist(), skip_special_tokens=True)
        texts.append(text.strip() or "empty")
    return texts


def _outputs(model, tok, head, batch=16) -> list:
    """Per batch of the calibration texts: (hidden, mask, logits) as float32 numpy."""
    torch = models.import_torch()
    texts = calibration_texts(tok)
    if tok.pad_token is None:
        batch = 1
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            feed = tok(
                texts[start : start + batch],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            feed = {k: v for k, v in feed.items() if k in INPUTS}
            res = model(**feed, output_hidden_states=True)
            hidden = res.hidden_states[-1] if head != "base" else res.last_hidden_state
            logits = None if head == "base" else res.logits.float().numpy()
            out.append((hidden.float().numpy(), feed["attention_mask"].numpy(), logits))
    return out


def compare(reference, fast, tok, head) -> dict:
    """Cosines of mean-pooled hidden states, and the share of agreeing argmax labels."""
    ref = reference if isinstance(reference, list) else _outputs(reference, tok, head)
    got = _outputs(fast, tok, head)
    cosines, agree, labels = [], 0, 0
    for (h0, mask, l0), (h1, _, l1) in zip(ref, got):
        cosines.append(_cosines(_mean(h0, mask), _mean(h1, mask)))
        if head == "sequence":
            agree += int((l0.argmax(-1) == l1.argmax(-1)).sum())
            labels += len(l0)
        elif head == "token":
            real = mask.astype(bool)
            agree += int((l0.argmax(-1) == l1.argmax(-1))[real].sum())
            labels += int(real.sum())
    cosines = np.concatenate(cosines)
    return {
        "cosine_min": float(cosines.min()),
        "cosine_mean": float(cosines.mean()),
        "agreement": agree / labels if labels else None,
        "labels": labels,
        "texts": len(cosines),
    }


def _mean(hidden, mask):
    m = mask[..., None].astype(np.float64)
    return (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)


def _cosines(a, b):
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.clip(norms, 1e-12, None)


def record(measured, backend, precision, started=None) -> dict:
    """What quality.json holds: the measures, the verdict and what made the conversion."""
    ok = measured["cosine_min"] >= THRESHOLD and (
        measured["agreement"] is None or measured["agreement"] >= THRESHOLD
    )
    return {
        "format": FORMAT,
        "backend": backend,
        "precision": precision,
        **measured,
        "threshold": THRESHOLD,
        "ok": bool(ok),
        "machinery": MACHINERY[(backend, precision)].format(
            ort=_ort_version(), fused=", fused graph"
        ),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "convert_seconds": None if started is None else round(time.monotonic() - started, 2),
    }


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "?"


def _write_quality(where, quality) -> None:
    with open(os.path.join(where, "quality.json"), "w", encoding="utf-8") as handle:
        json.dump(quality, handle, indent=2)


def describe(quality) -> str:
    """One line for a printed pipeline or a warning."""
    text = f"cosine to fp32 min {quality['cosine_min']:.4f} (mean {quality['cosine_mean']:.4f})"
    if quality.get("agreement") is not None:
        text += f", labels agree {100 * quality['agreement']:.1f}%"
    return text + f" on {quality['texts']} calibration texts"


def quality_of(job):
    """The quality record of a job's fast model (an embedding or pipeline job), or None."""
    holder = getattr(job, "encoder", None) or getattr(job, "pipe", None)
    return getattr(holder, "fastpath", None)
