"""A small router for API Gateway HTTP API (payload v2) events, and the response it builds.

It replaces Powertools' event handler, which cost about 70 ms of import on every cold start for
features Latchkey does not use (OpenAPI generation, validation, CORS, compression, middlewares). What
the functions rely on is kept with the same meaning:

- routes are ``METHOD`` plus a rule whose ``<name>`` segments become keyword arguments (the raw,
  still percent-encoded text of one path segment; the characters Powertools accepted);
- the path is ``rawPath`` without the stage prefix (API Gateway adds ``/<stage>`` unless the stage is
  ``$default``);
- an exception is answered by the handler registered for the nearest class in its MRO; a request no
  route matches goes to the ``not_found`` handler;
- the result is the v2 response object: ``statusCode``, ``body`` (bytes are base64-encoded and
  flagged with ``isBase64Encoded``), ``headers`` (a list value is joined with ``", "``) and
  ``cookies``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cookie", "Event", "Response", "Router"]

_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"
_PARAMETER = re.compile(r"<(\w+)>")


@dataclass
class Cookie:
    """A ``Set-Cookie`` value (RFC 6265 §4.1)."""

    name: str
    value: str
    path: str = "/"
    secure: bool = True
    http_only: bool = True
    max_age: int | None = None
    same_site: str | None = "Lax"

    def __str__(self) -> str:
        parts = [f"{self.name}={self.value}"]
        if self.path:
            parts.append(f"Path={self.path}")
        if self.max_age is not None:
            parts.append(f"Max-Age={max(self.max_age, 0)}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts)


@dataclass
class Response:
    """What a route returns. ``content_type`` becomes the ``Content-Type`` header unless one is set."""

    status_code: int
    content_type: str | None = None
    body: str | bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    cookies: list[Cookie] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.headers = dict(self.headers or {})
        self.cookies = list(self.cookies or [])
        if self.content_type:
            self.headers.setdefault("Content-Type", self.content_type)

    def build(self) -> dict[str, Any]:
        body, encoded = self.body, False
        if isinstance(body, bytes):
            body, encoded = base64.b64encode(body).decode("ascii"), True
        elif body is not None and not isinstance(body, str):
            body = json.dumps(body, separators=(",", ":"))
        headers = {name: value if isinstance(value, str) else ", ".join(value)
                   for name, value in self.headers.items() if value is not None}
        return {"statusCode": self.status_code, "body": body, "isBase64Encoded": encoded, "headers": headers,
                "cookies": [str(cookie) for cookie in self.cookies]}


class Event(dict[str, Any]):
    """The v2 event, with its headers lower-cased (HTTP field names are case-insensitive)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__(raw)
        self.headers: dict[str, str] = {str(k).lower(): v for k, v in (raw.get("headers") or {}).items()}

    @property
    def query_string_parameters(self) -> dict[str, str]:
        return self.get("queryStringParameters") or {}

    @property
    def http_method(self) -> str:
        return str(((self.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()

    @property
    def path(self) -> str:
        raw = self.get("rawPath") or "/"
        stage = (self.get("requestContext") or {}).get("stage", "$default")
        if stage and stage != "$default" and raw.startswith(f"/{stage}"):
            return raw[len(stage) + 1:] or "/"
        return raw


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    function: Callable[..., Any]


class NotFoundError(Exception):
    """No route matched the request."""


class Router:
    """Routes of one Lambda function. ``current_event`` is the event being handled."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._handlers: dict[type[BaseException], Callable[[Any], Response]] = {}
        self._not_found: Callable[[Exception], Response] | None = None
        self.current_event: Event = Event({})
        self.lambda_context: Any = None

    def route(self, rule: str, method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        pattern = re.compile("^" + _PARAMETER.sub(lambda m: f"(?P<{m.group(1)}>{_SEGMENT})", rule) + "$")

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self._routes.append(_Route(method.upper(), pattern, function))
            return function

        return register

    def get(self, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(rule, "GET")

    def post(self, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(rule, "POST")

    def put(self, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(rule, "PUT")

    def delete(self, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(rule, "DELETE")

    def exception_handler(self, kind: type[BaseException]) -> Callable[[Callable[[Any], Response]], Callable]:
        def register(function: Callable[[Any], Response]) -> Callable[[Any], Response]:
            self._handlers[kind] = function
            return function

        return register

    def not_found(self, function: Callable[[Exception], Response]) -> Callable[[Exception], Response]:
        self._not_found = function
        return function

    def _dispatch(self) -> Response:
        event = self.current_event
        method, path = event.http_method, event.path
        for route in self._routes:
            if route.method == method and (match := route.pattern.match(path)):
                return route.function(**match.groupdict())
        if self._not_found is not None:
            return self._not_found(NotFoundError())
        return Response(404, "application/json", '{"message":"Not found"}')

    def _handler_for(self, exc: BaseException) -> Callable[[Any], Response] | None:
        for kind in type(exc).__mro__:
            if kind in self._handlers:
                return self._handlers[kind]
        return None

    def resolve(self, event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
        self.current_event, self.lambda_context = Event(event), lambda_context
        try:
            response = self._dispatch()
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = handler(exc)
        if not isinstance(response, Response):  # a route may return a plain JSON-able value
            response = Response(200, "application/json", response)
        return response.build()
