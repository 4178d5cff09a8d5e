"""What the server is asked to serve, and its limits: parsed from the command line, checked before
any model loads, so that a bad argument fails at once with a message that says what to give."""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, field
from typing import List, Optional

READY_LINE = "hfbridge serve ready at {url}"
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


class ConfigError(ValueError):
    pass


@dataclass
class ModelSpec:
    task: str  # a key of TASKS
    source: str  # a repo id or a local folder
    revision: str = "main"

    @property
    def kind(self) -> str:
        return TASKS[self.task]

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        """``task=repo[@revision]`` or ``task=folder``."""
        task, sep, source = text.partition("=")
        if not sep or not source:
            raise ConfigError(f"--model {text!r}: write task=repo_id[@revision] or task=folder.")
        if task not in TASKS:
            raise ConfigError(f"--model {text!r}: the task must be one of {', '.join(TASKS)}.")
        revision = "main"
        if "@" in source and not os.path.isdir(source):
            source, revision = source.rsplit("@", 1)
        return cls(task, source, revision or "main")


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

    def check(self) -> "ServeConfig":
        if not self.models:
            raise ConfigError("Name at least one model: --model task=repo_id.")
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
    p = argparse.ArgumentParser(
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
        ).check()
    except ConfigError as e:
        p.error(str(e))
