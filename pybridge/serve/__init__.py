"""A local inference server over models in the Hugging Face cache: one model load serves every R
process, Shiny session and HTTP client.

It speaks the routes the field's clients already speak, on one ASGI app (FastAPI on uvicorn):

- OpenAI: ``/v1/chat/completions`` (SSE streaming), ``/v1/completions``, ``/v1/models`` and
  ``/v1/embeddings``. Chat and completions are ``transformers serve``'s own handlers
  (``transformers.cli.serving``: its model manager, generation managers and continuous
  batching); the rest is added here.
- TGI: ``POST /`` with ``{"inputs", "parameters"}``, ``/generate``, ``/generate_stream``,
  ``/info`` and ``/health``.
- TEI: ``/embed``, ``/predict``, ``/rerank``, and ``POST /`` for an embedding or classification
  model.

Every model is named at start (``task=repo[@revision]`` or ``task=folder``), loaded once and
pinned to the commit it resolved to; ``--offline`` serves from the cache alone. Errors have one
shape, ``{"error", "error_type"}``. Run it with ``python -m pybridge.serve`` (see ``--help``);
when every model is loaded and the port listens it prints one line,
``hfbridge serve ready at http://HOST:PORT``. R's ``hf_serve()`` starts it that way.
"""

from .config import READY_LINE, ModelSpec, ServeConfig, failure_line, parse_args  # noqa: F401


def main(argv=None) -> int:
    import logging
    import sys

    config = parse_args(argv)
    try:
        from .app import run
    except ImportError as e:  # fastapi, uvicorn or openai: pybridge's serve extra
        print(f"ImportError: {e}. The server needs pip install 'pybridge[serve]'.", file=sys.stderr)
        return 3
    try:
        return run(config)
    except Exception as e:  # noqa: BLE001 - said on stdout for R, and logged with its trace
        from .. import errors

        logging.getLogger(__name__).exception("The server could not start.")
        if isinstance(e, errors.PybridgeError):
            print(failure_line(e.code, e.message), flush=True)
        else:
            print(failure_line("python", errors.safe_text(f"{type(e).__name__}: {e}")), flush=True)
        return 1
