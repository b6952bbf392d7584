"""API Gateway HTTP API (payload v2) glue shared by every thin handler.

``create_app(Protocol.OAUTH)`` gives a :class:`~latchkey.http.router.Router` whose errors are rendered
in the route's protocol; ``lambda_handler(app)`` wraps ``app.resolve`` in :mod:`latchkey.observability`'s
logger and metrics decorators (structured logs with the request id, EMF metrics) and sets the per-request context.
Tracing is Lambda's own active tracing (``Tracing: Active``): the X-Ray SDK is not loaded, it cost
about 160 ms of every cold start.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from .. import context, snapstart
from ..errors import LatchkeyError, NotFound, ServerError, TemporarilyUnavailable
from ..observability import logger, metrics
from ..store import WriteConflict
from ..store.readahead import request_scope
from .render import Protocol, render_error
from .router import Response, Router

__all__ = ["Protocol", "Response", "Router", "create_app", "json_response", "lambda_handler", "header"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None,
                  cache: dict[str, str] | None = None) -> Response:
    """A JSON response; ``Cache-Control: no-store`` unless ``cache`` says otherwise."""
    merged = {**(NO_STORE if cache is None else cache), **(headers or {})}
    return Response(status_code=status, content_type="application/json",
                    body=json.dumps(body, separators=(",", ":")), headers=merged)


def create_app(protocol: Protocol) -> Router:
    app = Router()

    @app.exception_handler(LatchkeyError)
    def _known(exc: LatchkeyError) -> Response:
        if exc.status >= 500:
            logger.error("request failed", extra={"error": exc.error, "detail": exc.detail})
        elif exc.detail:
            logger.info("request refused", extra={"error": exc.error, "detail": exc.detail})
        return render_error(protocol, exc, context.request_id.get())

    @app.exception_handler(WriteConflict)
    def _conflict(exc: WriteConflict) -> Response:
        # a transaction that lost to a concurrent one on the same item, past whatever retries the domain
        # code makes: nothing was written, the client may simply try again
        logger.warning("write conflict not retried", extra={"detail": str(exc)[:200]})
        return render_error(protocol, TemporarilyUnavailable(headers={"Retry-After": "1"}), context.request_id.get())

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unexpected failure")  # the stack goes to the log, never to the client
        return render_error(protocol, ServerError(), context.request_id.get())

    @app.not_found
    def _not_found(exc: Exception) -> Response:
        return render_error(protocol, NotFound(), context.request_id.get())

    return app


def header(app: Router, name: str) -> str | None:
    """A request header, case-insensitively."""
    return app.current_event.headers.get(name.lower())


def _trace_id(headers: dict[str, str]) -> str:
    """AccelByte's ``X-Ab-TraceID``, else the W3C ``traceparent`` trace id, else X-Ray's root, else new."""
    if value := headers.get("x-ab-traceid"):
        return value[:128]
    if (value := headers.get("traceparent")) and (match := _TRACEPARENT.match(value.strip())):
        return match.group(1)
    if value := headers.get("x-amzn-trace-id"):
        for part in value.split(";"):
            if part.strip().startswith("Root="):
                return part.strip()[5:]
    return uuid.uuid4().hex


def lambda_handler(app: Router) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for one route: logging and metrics around ``app.resolve``; registers the
    SnapStart restore hook (:mod:`latchkey.snapstart`)."""
    snapstart.register()

    @logger.inject_lambda_context
    @metrics.log_metrics
    def handler(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        request_id = (event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex
        request_token = context.request_id.set(request_id)
        trace_token = context.trace_id.set(_trace_id(headers))
        source_token = context.source_ip.set(
            str(((event.get("requestContext") or {}).get("http") or {}).get("sourceIp") or ""))
        try:
            logger.append_keys(request_id=request_id, trace_id=context.trace_id.get())
            with request_scope():  # reads ahead (latchkey.store.readahead) live for this request only
                result = app.resolve(event, lambda_context)
        finally:
            context.request_id.reset(request_token)
            context.trace_id.reset(trace_token)
            context.source_ip.reset(source_token)
        result.setdefault("headers", {})["X-Request-Id"] = request_id
        status = int(result.get("statusCode", 500))
        metrics.add_metric(name=f"Http{status // 100}xx", unit="Count", value=1)
        return result

    return handler
