"""What the server is asked to serve, and its limits: parsed from the command line, checked before
any model loads, so that a bad argument fails at once with a message that says what to give."""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, field
from typing import List, Optional

READY_LINE = "hfbridge serve ready at {url}"
# A server that cannot start says why on one stdout line, which R's hf_serve() turns into the
# error's class: the pybridge error code, then the message.
FAILED_LINE = "hfbridge serve failed: {code} {message}"


def failure_line(code: str, message: str) -> str:
    return FAILED_LINE.format(code=code, message=" ".join(str(message).split()))


# Task names as users write them -> the kind of model the server runs for them.
TASKS = {
    "chat": "generation",
    "text-generation": "generation",
    "feature-extraction": "embedding",
    "embedding": "embedding",
    "sentence-similarity": "embedding",
    "text-classification": "classification",
    "sentiment-analysis": "classification",
    "rerank": "rerank",
    "text-ranking": "rerank",
}


# The kinds that take the fast path (pybridge.fastpath), and its choices.
FAST_KINDS = ("embedding", "classification")
BACKENDS = ("torch", "onnx")
PRECISIONS = ("fp32", "bf16", "int8")


class ConfigError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(failure_line("invalid_argument", message), flush=True)
        super().error(message)


@dataclass
class ModelSpec:
    task: str  # a key of TASKS
    source: str  # a repo id or a local folder
    revision: str = "main"
    backend: Optional[str] = None  # None: the server's --backend
    precision: Optional[str] = None

    @property
    def kind(self) -> str:
        return TASKS[self.task]

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        """``task=repo[@revision][#backend-precision]`` or ``task=folder[#backend-precision]``."""
        task, sep, source = text.partition("=")
        if not sep or not source:
            raise ConfigError(f"--model {text!r}: write task=repo_id[@revision] or task=folder.")
        if task not in TASKS:
            raise ConfigError(f"--model {text!r}: the task must be one of {', '.join(TASKS)}.")
        backend = precision = None
        if "#" in source and not os.path.isdir(source):
            source, fast = source.rsplit("#", 1)
            backend, _, precision = fast.partition("-")
            _check_fast(text, backend, precision)
        revision = "main"
        if "@" in source and not os.path.isdir(source):
            source, revision = source.rsplit("@", 1)
        return cls(task, source, revision or "main", backend, precision)

    def fast(self) -> dict:
        """The fast path's arguments of embed() and pipeline.run()."""
        return {"backend": self.backend or "torch", "precision": self.precision or "fp32"}


def _check_fast(where, backend, precision) -> None:
    if backend not in BACKENDS or precision not in PRECISIONS:
        raise ConfigError(
            f"{where}: the fast path is backend-precision, with a backend of "
            f"{', '.join(BACKENDS)} and a precision of {', '.join(PRECISIONS)}, e.g. torch-bf16."
        )


@dataclass
class ServeConfig:
    models: List[ModelSpec]
    host: str = "127.0.0.1"
    port: int = 0
    api_key: Optional[str] = field(default=None, repr=False)
    offline: bool = False
    max_body_bytes: int = 2 * 1024 * 1024
    max_inputs: int = 512
    max_tokens: int = 512
    timeout: float = 120.0
    max_queue: int = 8192
    max_batch_texts: int = 2048
    continuous_batching: bool = False
    cb_cache_tokens: int = 32768
    cors: bool = False
    log_prompts: bool = False
    backend: str = "torch"
    precision: str = "fp32"

    def check(self) -> "ServeConfig":
        if not self.models:
            raise ConfigError("Name at least one model: --model task=repo_id.")
        _check_fast("--backend/--precision", self.backend, self.precision)
        for spec in self.models:
            if spec.kind in FAST_KINDS:
                spec.backend = spec.backend or self.backend
                spec.precision = spec.precision or self.precision
            elif spec.backend and spec.fast() != {"backend": "torch", "precision": "fp32"}:
                raise ConfigError(
                    f"--model {spec.task}={spec.source}: the fast path serves feature-extraction "
                    "and text-classification models."
                )
        if not _is_loopback(self.host) and not self.api_key:
            raise ConfigError(
                f"Binding to {self.host}, which other machines can reach, needs an API key: "
                "set one (--api-key-env VAR with the key in that variable), or bind to 127.0.0.1."
            )
        for name in ("max_body_bytes", "max_inputs", "max_tokens", "max_queue", "max_batch_texts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1.")
        if not 0 <= self.port <= 65535:
            raise ConfigError("--port must be from 0 to 65535.")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_key(a) -> Optional[str]:
    if a.api_key_stdin:
        import sys

        return sys.stdin.readline().strip() or None
    return os.environ.get(a.api_key_env) or None if a.api_key_env else None


def parse_args(argv=None) -> ServeConfig:
    p = _Parser(
        prog="python -m pybridge.serve",
        description="Serve cached Hugging Face models over OpenAI, TGI and TEI routes.",
    )
    p.add_argument("--model", action="append", default=[], metavar="TASK=REPO[@REV]")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable that holds the API key (never the key on the command line)",
    )
    key.add_argument(
        "--api-key-stdin", action="store_true", help="read the API key from the first line of stdin"
    )
    p.add_argument("--offline", action="store_true", help="serve from the cache only")
    p.add_argument("--max-body-bytes", type=int, default=2 * 1024 * 1024)
    p.add_argument("--max-inputs", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--max-queue", type=int, default=8192)
    p.add_argument("--max-batch-texts", type=int, default=2048)
    p.add_argument(
        "--continuous-batching",
        action="store_true",
        help="greedy chat requests share transformers' continuous batching (off, as in "
        "transformers serve; its paged cache takes up to --cb-cache-tokens tokens)",
    )
    p.add_argument("--cb-cache-tokens", type=int, default=32768, help=argparse.SUPPRESS)
    p.add_argument("--cors", action="store_true", help="allow every origin (off by default)")
    p.add_argument("--log-prompts", action="store_true", help="log prompts (off by default)")
    p.add_argument(
        "--backend",
        default="torch",
        choices=BACKENDS,
        help="the fast path of the embedding and classification models (pybridge.fastpath); "
        "a model's own task=repo#backend-precision wins",
    )
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    a = p.parse_args(argv)
    try:
        return ServeConfig(
            models=[ModelSpec.parse(m) for m in a.model],
            host=a.host,
            port=a.port,
            api_key=_api_key(a),
            offline=a.offline,
            max_body_bytes=a.max_body_bytes,
            max_inputs=a.max_inputs,
            max_tokens=a.max_tokens,
            timeout=a.timeout,
            max_queue=a.max_queue,
            max_batch_texts=a.max_batch_texts,
            continuous_batching=a.continuous_batching,
            cb_cache_tokens=a.cb_cache_tokens,
            cors=a.cors,
            log_prompts=a.log_prompts,
            backend=a.backend,
            precision=a.precision,
        ).check()
    except ConfigError as e:
        p.error(str(e))
