"""A local API Gateway HTTP API: every ``HttpApi`` route of ``template.yaml`` invoked in-process with a
payload format 2.0 event, and the handler's answer turned back into HTTP the way API Gateway does.

Behaviour copied from API Gateway HTTP APIs (``$default`` stage):

- route selection: exact paths win over ``{param}`` paths, greedy ``{proxy+}`` comes last; a path that
  matches no route *for this method* is ``404 {"message":"Not Found"}``;
- the event: lower-cased headers (repeated ones joined with ``,``), ``cookies`` split from the Cookie
  header (which is then removed), query parameters decoded and repeated keys joined with ``,``, body
  base64-encoded unless the content type is text (``text/*``, ``application/json``,
  ``application/x-www-form-urlencoded``);
- the response: a dict with ``statusCode`` is used as is (``cookies`` become ``Set-Cookie`` headers,
  base64 bodies are decoded); anything else is ``200`` with the value as a JSON body;
- a handler that raises (or returns nonsense) is ``500 {"message":"Internal Server Error"}``; the
  traceback goes to stderr only;
- request bodies over 10 MB are ``413`` (API Gateway's payload limit).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from . import template
from .lambda_runtime import ACCOUNT_ID, LoadedFunction

MAX_BODY = 10 * 1024 * 1024
API_ID = "devstack"
STAGE = "$default"
TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded")
NOT_FOUND = (404, {"message": "Not Found"})
SERVER_ERROR = (500, {"message": "Internal Server Error"})
TOO_LARGE = (413, {"message": "Request Entity Too Large"})

_PARAM = re.compile(r"^\{([A-Za-z0-9_.-]+)(\+?)\}$")


# --- routes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledRoute:
    method: str  # GET, POST, ... or ANY
    path: str
    function: LoadedFunction
    segments: tuple[tuple[str, str], ...]  # ("lit", text) | ("param", name) | ("greedy", name)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def rank(self) -> tuple[int, int, int]:
        """Lower is more specific: no greedy first, then fewer parameters, then more literal segments."""
        kinds = [kind for kind, _ in self.segments]
        return ("greedy" in kinds, kinds.count("param"), -kinds.count("lit"))

    def match(self, path: str) -> dict[str, str] | None:
        parts = path.strip("/").split("/") if path.strip("/") else []
        params: dict[str, str] = {}
        for index, (kind, value) in enumerate(self.segments):
            if kind == "greedy":
                rest = parts[index:]
                if not rest or any(p == "" for p in rest[:-1]) or rest == [""]:
                    return None
                params[value] = unquote("/".join(rest))
                return params
            if index >= len(parts):
                return None
            if kind == "lit":
                if parts[index] != value:
                    return None
            else:
                if parts[index] == "":
                    return None
                params[value] = unquote(parts[index])
        return params if len(parts) == len(self.segments) else None


def compile_route(method: str, path: str, function: LoadedFunction) -> CompiledRoute:
    segments: list[tuple[str, str]] = []
    raw = [s for s in path.strip("/").split("/") if s] if path != "/" else []
    for position, segment in enumerate(raw):
        found = _PARAM.match(segment)
        if not found:
            segments.append(("lit", segment))
        elif found.group(2):
            if position != len(raw) - 1:
                raise ValueError(f"greedy path variable must be last: {path}")
            segments.append(("greedy", found.group(1)))
        else:
            segments.append(("param", found.group(1)))
    return CompiledRoute(method=method.upper(), path=path, function=function, segments=tuple(segments))


def compile_routes(routes: Iterable[template.Route],
                   doc: dict[str, Any] | None = None) -> list[CompiledRoute]:
    """One :class:`LoadedFunction` per function (shared by its routes), routes most specific first."""
    functions: dict[str, LoadedFunction] = {}
    compiled = []
    for route in routes:
        function = functions.get(route.function)
        if function is None:
            function = LoadedFunction.from_template(route.function, route.module_file, route.handler_name,
                                                    doc)
            functions[route.function] = function
        compiled.append(compile_route(route.method, route.path, function))
    return sorted(compiled, key=lambda r: r.rank)


def select(routes: Sequence[CompiledRoute], method: str,
           path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        params = route.match(path)
        if params is not None:
            return route, params
    return None


# --- the event ------------------------------------------------------------------------------------
def is_text(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in TEXT_TYPES


def new_request_id() -> str:
    """API Gateway's request ids look like ``Jh2JfhX6IAMEPRw=`` (10 random bytes, base64)."""
    return base64.b64encode(os.urandom(10)).decode("ascii")


def build_event(*, method: str, raw_path: str, raw_query: str, headers: Sequence[tuple[str, str]],
                body: bytes, route_key: str, path_parameters: dict[str, str], source_ip: str,
                protocol: str = "HTTP/1.1", request_id: str | None = None,
                now: float | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event."""
    moment = time.time() if now is None else now
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    domain = merged.get("host", "127.0.0.1")
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {"method": method, "path": raw_path, "protocol": protocol, "sourceIp": source_ip,
                 "userAgent": merged.get("user-agent", "")},
        "requestId": request_id or new_request_id(),
        "routeKey": route_key,
        "stage": STAGE,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(moment)),
        "timeEpoch": int(moment * 1000),
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        text = None
        if is_text(merged.get("content-type")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        event["body"] = text if text is not None else base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


# --- the response ---------------------------------------------------------------------------------
class BadResponse(Exception):
    """The handler's answer is not something API Gateway could return (it answers 500 then)."""


def map_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) for a handler's return value, by API Gateway's payload 2.0 rules."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: 200, application/json, and the value itself as the body (a string as is).
        body = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], body.encode("utf-8")

    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise BadResponse(f"statusCode {status!r}")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), _header_value(value)))
    for cookie in result.get("cookies") or []:
        headers.append(("Set-Cookie", str(cookie)))

    raw = result.get("body")
    if raw is None:
        body = b""
    elif isinstance(raw, str):
        if result.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw, validate=True)
            except ValueError as exc:
                raise BadResponse("isBase64Encoded body is not base64") from exc
        else:
            body = raw.encode("utf-8")
    else:
        raise BadResponse(f"body must be a string, not {type(raw).__name__}")
    return status, headers, body


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    text = str(value)
    if "\r" in text or "\n" in text:
        raise BadResponse("header value contains a line break")
    return text


# --- the server -----------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "devstack-gateway"
    sys_version = ""
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits for the client's
    # delayed ACK (~40 ms per keep-alive request on Linux).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815

    def _dispatch(self) -> None:
        gateway = self.server.gateway
        raw_path, _, raw_query = self.path.partition("?")
        if raw_path.startswith(("http://", "https://")):  # absolute-form request target
            raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
        raw_path = raw_path or "/"

        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            try:
                body = self._read_chunked(gateway.max_body)
            except ValueError:
                return self._send_json(400, {"message": "Bad Request"}, close=True)
            if body is None:
                return self._send_json(*TOO_LARGE, close=True)
        else:
            try:
                length = int(length_header) if length_header else 0
            except ValueError:
                return self._send_json(400, {"message": "Bad Request"}, close=True)
            if length > gateway.max_body:
                return self._send_json(*TOO_LARGE, close=True)
            body = self.rfile.read(length) if length > 0 else b""

        found = select(gateway.routes, self.command, raw_path)
        if found is None:
            return self._send_json(*NOT_FOUND)
        route, params = found
        headers = [(name, value) for name, value in self.headers.items()
                   if name.lower() not in ("content-length", "transfer-encoding", "connection")]
        if body:
            headers.append(("content-length", str(len(body))))
        headers += gateway.forwarded_headers(self.client_address[0], headers)
        event = build_event(method=self.command, raw_path=raw_path, raw_query=raw_query, headers=headers,
                            body=body, route_key=route.route_key, path_parameters=params,
                            source_ip=self.client_address[0], protocol=self.request_version)
        try:
            result = route.function.invoke(event)
            status, out_headers, out_body = map_response(result)
        except Exception:  # noqa: BLE001 - any handler failure is API Gateway's 500
            print(f"devstack: {route.function.function} failed on {self.command} {raw_path}:\n"
                  f"{traceback.format_exc()}", file=sys.stderr, flush=True)
            return self._send_json(*SERVER_ERROR)
        self._send(status, out_headers, out_body, request_id=event["requestContext"]["requestId"])

    def _read_chunked(self, limit: int) -> bytes | None:
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send_json(self, status: int, document: dict[str, Any], close: bool = False) -> None:
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        self._send(status, [("Content-Type", "application/json")], body, close=close)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, *,
              request_id: str | None = None, close: bool = False) -> None:
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        self.send_response_only(status)
        self.send_header("Date", formatdate(usegmt=True))
        skip = {"content-length", "transfer-encoding", "connection", "date"}
        for name, value in headers:
            if name.lower() not in skip:
                self.send_header(name, value)
        if request_id and not any(name.lower() == "apigw-requestid" for name, _ in headers):
            self.send_header("apigw-requestid", request_id)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        if self.server.gateway.access_log:
            sys.stderr.write(f"devstack gateway: {self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)


class Gateway:
    """The local HTTP API. ``Gateway(port=0)`` binds at once (so the port is known before handlers
    are configured); :meth:`start` serves in a thread, :meth:`stop` shuts it down."""

    def __init__(self, routes: Iterable[template.Route] | None = None, *, host: str = "127.0.0.1",
                 port: int = 3000, max_body: int = MAX_BODY, access_log: bool = False) -> None:
        self.routes = compile_routes(template.routes() if routes is None else routes)
        self.max_body = max_body
        self.access_log = access_log
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def forwarded_headers(self, client_ip: str, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers API Gateway adds: X-Forwarded-*, and an X-Ray trace id when none came in."""
        present = {name.lower() for name, _ in headers}
        added = [("x-forwarded-for", client_ip), ("x-forwarded-port", str(self.port)),
                 ("x-forwarded-proto", "http")]
        if "x-amzn-trace-id" not in present:
            added.append(("x-amzn-trace-id",
                          f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"))
        return [(name, value) for name, value in added if name not in present or name == "x-forwarded-for"]

    def start(self) -> Gateway:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="devstack-gateway", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def route_table(routes: Iterable[template.Route] | None = None) -> list[str]:
    """``METHOD /path  ->  Function`` lines for the banner."""
    found = list(template.routes() if routes is None else routes)
    width = max((len(route.path) for route in found), default=0)
    return [f"{route.method:<6} {route.path:<{width}}  ->  {route.function}" for route in found]
