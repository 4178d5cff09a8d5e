"""Loading transformers models for pipelines and embeddings: safely, and once per process.

- Every model folder comes from the hub layer (:func:`pybridge.hub.local_folder`), so revisions,
  tokens, the endpoint, the cache and offline mode behave as for any other download.
- Weights load from safetensors only. A repo whose weights are only pickles (``*.bin``, ``*.pt``,
  ...) is refused with :class:`PickleWeightsError` unless ``allow_pickle=True``, and pickle files
  are not even downloaded unless allowed. ``trust_remote_code`` is False unless asked.
- A process-level cache keeps each loaded model under (kind, model, revision, device, options),
  so that a Shiny app or a loop calling ``pipeline()``/``embed_text()`` again loads it once.
  :func:`cache_clear` empties it.

torch and transformers are imported here lazily, on the first load, never by the hub layer.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import json
import os
import sys
import threading

from . import errors, torch_guard

PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
# Weights for other frameworks, never needed here.
OTHER_PATTERNS = (
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.onnx_data",
    "*.tflite",
    "*.ot",
    "*.gguf",
    "*.mlmodel",
    "*.mlpackage/*",
    "onnx/*",
    "openvino/*",
    "coreml/*",
)

_cache: dict = {}
_hits: dict = {}
_lock = threading.RLock()


PickleWeightsError = errors.PickleWeightsError


# ---------------------------------------------------------------------------------------------
# The cache


def cache_key(kind, model, revision, device, allow_pickle, trust_remote_code, env) -> tuple:
    """A loaded model's key in the cache (:func:`cached`): what was loaded, from which revision
    of which source, for which device, and what loading it allowed. :func:`cache_info` reads
    the first four."""
    return (
        kind,
        model,
        revision or "main",
        str(device),
        bool(allow_pickle),
        bool(trust_remote_code),
        source(model, env),
    )


def cached(key: tuple, loader):
    """The value cached under ``key``, made by ``loader()`` the first time."""
    with _lock:
        if key in _cache:
            _hits[key] += 1
            return _cache[key]
    value = loader()
    with _lock:
        if key not in _cache:
            _cache[key] = value
            _hits[key] = 0
        return _cache[key]


def cache_info() -> dict:
    """The cached models as columns: kind, model, revision, device and hits (int32)."""
    import numpy as np

    with _lock:
        keys = list(_cache)
        hits = [_hits[k] for k in keys]
    return {
        "kind": [str(k[0]) for k in keys],
        "model": [str(k[1]) for k in keys],
        "revision": [str(k[2]) for k in keys],
        "device": [str(k[3]) for k in keys],
        "hits": np.asarray(hits, dtype=np.int32),
    }


def cache_clear() -> int:
    """Forget every cached model; returns how many there were."""
    with _lock:
        n = len(_cache)
        _cache.clear()
        _hits.clear()
    gc.collect()
    return n


# ---------------------------------------------------------------------------------------------
# Folders and weights


def source(model: str, env=None) -> str:
    """Where ``model`` comes from, part of its key in the model cache: its folder, or the Hub
    endpoint that serves the repo id (the same id on another endpoint is another model)."""
    path = os.path.expanduser(str(model))
    if os.path.isdir(path):
        return os.path.abspath(path)
    from . import settings

    return settings.resolve(env).endpoint


def folder(
    model: str, revision="main", allow_pickle=False, env=None, token=None, quiet=True
) -> str:
    """The local folder of ``model``, with safetensors weights (or pickles if allowed)."""
    from . import hub

    require_model_stack()  # before downloading weights that could not be used

    ignore = list(OTHER_PATTERNS) + ([] if allow_pickle else list(PICKLE_PATTERNS))
    path = hub.local_folder(
        model,
        revision=revision or "main",
        ignore_patterns=ignore,
        env=env,
        token=token,
        quiet=quiet,
    )
    check_weights(path, model, revision, allow_pickle, env, token)
    check_files(path, model, revision)
    return path


def _files(path: str) -> list:
    out = []
    for root, _dirs, names in os.walk(path):
        rel = os.path.relpath(root, path)
        out += [n if rel == "." else f"{rel}/{n}" for n in names]
    return out


def _matching(files, patterns) -> list:
    return sorted(f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns))


def check_weights(path, model, revision, allow_pickle, env=None, token=None):
    """Refuse a folder without safetensors weights, naming pickles when that is what there is."""
    files = _files(path)
    if _matching(files, ("*.safetensors",)):
        return
    pickles = _matching(files, PICKLE_PATTERNS)
    if allow_pickle and pickles:
        return
    if not pickles and not os.path.isdir(os.path.expanduser(model)):
        pickles = _remote_pickles(model, revision, env, token)
    where = dict(repo_id=model, revision=revision, path=path)
    if pickles:
        raise PickleWeightsError(
            f"'{model}' has weights only as pickle files ({', '.join(pickles[:3])}), which can run "
            "code when loaded, and hfbridge loads safetensors only. Use a revision with "
            "model.safetensors, or pass allow_pickle = TRUE if you trust this repo.",
            files=pickles,
            **where,
        )
    raise errors.EntryNotFoundError(
        f"'{model}' has no weights (no *.safetensors file). Is it a model repo?",
        filename="model.safetensors",
        **where,
    )


def check_files(path, model, revision) -> None:
    """The folder's JSON files and safetensors headers, checked before transformers reads them,
    so that a corrupt one (cut short, not UTF-8) is an InvalidFileError that names it rather
    than a model that "cannot be used for the task"."""
    from . import safetensors

    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        try:
            if name.endswith(".json"):
                with open(full, "rb") as handle:
                    json.loads(handle.read().decode("utf-8"))
            elif name.endswith(".safetensors"):
                safetensors.open_file(full).close()
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # InvalidFileError is a ValueError too: its message names the file already.
            why = exc if isinstance(exc, errors.InvalidFileError) else f"{name} is not JSON: {exc}"
            raise errors.InvalidFileError(
                f"The model '{model}' has a corrupt file: {why}",
                repo_id=model,
                revision=revision,
                filename=name,
                path=full,
            ) from None


def _remote_pickles(model, revision, env, token) -> list:
    """Pickle weights the repo lists (they were not downloaded); [] when offline or unknown."""
    from . import hub

    try:
        return _matching(
            hub.list_files(model, revision=revision, env=env, token=token), PICKLE_PATTERNS
        )
    except errors.PybridgeError:
        return []


def use_safetensors(path: str):
    """What to pass as from_pretrained's ``use_safetensors``."""
    return True if _matching(_files(path), ("*.safetensors",)) else None


# ---------------------------------------------------------------------------------------------
# torch and transformers

MODEL_STACK = ("torch", "transformers")  # pybridge's `models` extra (pyproject.toml)


def require_model_stack() -> None:
    """Raises PythonEnvironmentError, with the fix, if torch or transformers is not installed:
    an install without pybridge's ``models`` extra serves the Hub, tokenizers and safetensors."""
    import importlib.util

    missing = [
        name
        for name in MODEL_STACK
        if name not in sys.modules and importlib.util.find_spec(name) is None
    ]
    if missing:
        raise errors.PythonEnvironmentError(
            f"Models need {' and '.join(missing)}, which the Python at {sys.executable} does not "
            "have: it was installed without pybridge's `models` extra. From R, run "
            "install_pybridge(models = TRUE); from a shell, pip install 'pybridge[models]' (or "
            "pip install -e '.[models]' in the hfbridge sources) in that Python.",
            missing=missing,
            python=sys.executable,
        )


def import_torch():
    """torch, once the model stack is known to be installed (see torch_guard.import_torch)."""
    require_model_stack()
    return torch_guard.import_torch()


def import_transformers():
    """transformers, after torch (see :func:`import_torch`)."""
    require_model_stack()
    import_torch()
    import transformers

    return transformers


def torch_device(device: str):
    """A torch.device for ``device`` ('cpu', 'cuda', 'cuda:1', 'mps'), checked."""
    torch = import_torch()

    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError) as exc:
        raise errors.InvalidArgumentError(
            f"'{device}' is not a device torch knows; use 'cpu', 'cuda', 'cuda:0' or 'mps'.",
            argument="device",
        ) from exc
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if not available.get(dev.type, False):
        raise errors.UnsupportedError(
            f"The device '{device}' is not available in this torch build "
            f"(torch {torch.__version__}). Use device = 'cpu'.",
            argument="device",
        )
    return dev


@contextlib.contextmanager
def quiet_transformers():
    """transformers without progress bars or info logs while loading (restored after)."""
    import_transformers()
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    level = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def load_error(exc: Exception, model: str, task: str, supported) -> errors.PybridgeError:
    """A transformers loading failure as the error R users can act on."""
    text = str(exc)
    if "trust_remote_code" in text:
        return errors.UnsupportedError(
            f"'{model}' needs its own Python code to load. hfbridge does not run it unless you "
            "pass trust_remote_code = TRUE (only for repos you trust).",
            repo_id=model,
            task=task,
        )
    return errors.UnsupportedError(
        f"The model '{model}' cannot be used for the task '{task}' ({type(exc).__name__}: "
        f"{text.splitlines()[0] if text else ''}). Supported tasks: {', '.join(supported)}.",
        repo_id=model,
        task=task,
        supported=list(supported),
    )


def set_threads(n) -> int:
    """Set torch's intra-op threads for this process (a future worker gives each of its W
    workers cores / W, so that a machine is not oversubscribed); returns the previous count."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise errors.InvalidArgumentError(
            "threads must be a whole number >= 1.", argument="threads"
        )
    torch = import_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before


def token_limit(tokenizer, config):
    """The tokens a text may have: the model's positions, or the tokenizer's model_max_length
    just below them (RoBERTa's 514 positions take 512 tokens). A smaller model_max_length alone
    does not refuse a text: transformers only warns, and the model takes it."""
    limit = getattr(tokenizer, "model_max_length", None)
    limit = limit if isinstance(limit, int) and 0 < limit < 10**6 else None
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return limit
    if limit is not None and positions - 2 <= limit < positions:
        return limit
    return positions


def check_attention_memory(config, tokens: int, subject: str, advice: str) -> None:
    """A model's attention scores for ``tokens`` tokens (heads x n x n floats, a few at once)
    must fit in memory: a model with relative or rotary positions takes any length, and a
    50,000-token text had the OOM killer end the R session instead of an error."""
    from . import memory

    heads = getattr(config, "num_heads", None) or getattr(config, "num_attention_heads", None)
    heads = heads if isinstance(heads, int) and heads > 0 else 16
    memory.check(heads * tokens * tokens * 4 * 3, subject, advice, argument="inputs")
