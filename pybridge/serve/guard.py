"""What stands before every route: the API key, the body limit, the request log, and the one
error shape, ``{"error": str, "error_type": str}``, with TGI's statuses (422 validation, 424
generation, 429 overloaded with Retry-After, 413 payload too large, 503 loading or unhealthy).

The middlewares are plain ASGI, so they see streamed bodies and streamed answers as they pass.
The log has the method, the path without its query, the status and the time: never a header, a
token or a prompt.
"""

from __future__ import annotations

import hmac
import json
import logging
import time

log = logging.getLogger("pybridge.serve")

ERROR_TYPES = {
    400: "validation",
    401: "authentication",
    404: "not_found",
    405: "validation",
    413: "payload_too_large",
    422: "validation",
    424: "generation",
    429: "overloaded",
    503: "unhealthy",
}


class ServeError(Exception):
    def __init__(self, status: int, message: str, error_type=None, retry_after=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.error_type = error_type or ERROR_TYPES.get(status, "server")
        self.retry_after = retry_after


def error_body(status: int, message: str, error_type=None) -> dict:
    return {"error": message, "error_type": error_type or ERROR_TYPES.get(status, "server")}


async def send_error(send, status, message, error_type=None, retry_after=None):
    body = json.dumps(error_body(status, message, error_type)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after is not None:
        headers.append((b"retry-after", str(int(retry_after)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """API key (compared in constant time), body limit, and the request log, for every route."""

    def __init__(self, app, api_key, max_body_bytes):
        self.app = app
        self.key = f"Bearer {api_key}".encode() if api_key else None
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), [0]

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, logged_send)
        finally:
            path = scope.get("path", "")
            took = (time.monotonic() - started) * 1000
            log.info("%s %s %d %.0fms", scope.get("method"), path, status[0], took)

    async def _guarded(self, scope, receive, send):
        if self.key is not None and not self._authorized(scope):
            return await send_error(send, 401, "A valid API key is needed: Authorization: Bearer.")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await send_error(send, 413, self._too_large())
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            # chunked: read here, since FastAPI answers an error raised while it reads with 422
            body = await self._whole_body(receive)
            if body is None:
                return await send_error(send, 413, self._too_large())
            receive = _replay(body, receive)
        received = [0]

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    raise ServeError(413, self._too_large())
            return message

        try:
            await self.app(scope, limited_receive, send)
        except ServeError as err:
            await send_error(send, err.status, err.message, err.error_type, err.retry_after)

    async def _whole_body(self, receive):
        """A body sent without a Content-Length, read whole; None once it passes the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _authorized(self, scope) -> bool:
        given = b""
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                given = value
        return hmac.compare_digest(given, self.key)

    def _too_large(self) -> str:
        return f"The request body is larger than the limit of {self.max_body} bytes."


def _replay(body: bytes, receive):
    """An ASGI receive that gives ``body`` in one message, then what ``receive`` gives."""
    given = [False]

    async def replay():
        if given[0]:
            return await receive()
        given[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def install_error_handlers(app) -> None:
    """FastAPI's and Starlette's own errors, and ours, in the one shape; any other failure of a
    route is the model's (424), answered by the route itself (:func:`_answering_route_class`)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from .batching import Overloaded
    from .registry import NotServed

    def reply(status, message, error_type=None, retry_after=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
        return JSONResponse(error_body(status, message, error_type), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return reply(422, f"The request is not valid: {problems}")

    @app.exception_handler(HTTPException)
    async def _http(request, exc):
        status = 422 if exc.status_code == 400 else exc.status_code
        return reply(status, str(exc.detail))

    @app.exception_handler(ServeError)
    async def _serve(request, exc):
        return reply(exc.status, exc.message, exc.error_type, exc.retry_after)

    @app.exception_handler(NotServed)
    async def _not_served(request, exc):
        return reply(404, str(exc), "not_found")

    @app.exception_handler(Overloaded)
    async def _overloaded(request, exc):
        return reply(429, f"The server is overloaded: {exc} Try again shortly.", retry_after=1)

    app.router.route_class = _answering_route_class(app)


def model_failed(exc: Exception):
    """The 424 of a failure of the model (or of the code around it), logged by its type alone:
    its message may quote the request."""
    from fastapi.responses import JSONResponse

    log.warning("request failed: %s", type(exc).__name__)
    message = f"The model failed: {type(exc).__name__}: {exc}"
    return JSONResponse(error_body(424, message, "generation"), 424)


def _answering_route_class(app):
    """FastAPI's APIRoute, answering a failure that no exception handler takes with a 424 itself.
    Left to an ``Exception`` handler, Starlette's ServerErrorMiddleware answers and then raises
    again: uvicorn logs the traceback (with the request's text in it) and closes the keep-alive
    connection, so the client's next request on it fails."""
    from fastapi.routing import APIRoute

    class AnsweringRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def answered(request):
                try:
                    return await handler(request)
                except Exception as exc:
                    handled = tuple(
                        k
                        for k in app.exception_handlers
                        if isinstance(k, type) and k is not Exception
                    )
                    if isinstance(exc, handled):
                        raise
                    return model_failed(exc)

            return answered

    return AnsweringRoute
