"""Reading request bodies and parameters once, at the edge (CONVENTIONS §10).

- :func:`form_params` (``application/x-www-form-urlencoded``, RFC 6749 §3.2): a parameter sent twice is
  ``invalid_request`` (RFC 6749 §3.1/§3.2: "parameters MUST NOT be included more than once"); empty
  values count as absent.
- :func:`json_object`: a JSON object or a protocol 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InvalidRequest, LatchkeyError, PayloadTooLarge
from .router import Router

MAX_BODY = 64 * 1024


def raw_body(app: Router, *, limit: int = MAX_BODY) -> bytes:
    event = app.current_event
    body = event.get("body") or ""
    try:
        data = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("The request body is not valid base64.") from exc
    if len(data) > limit:
        raise PayloadTooLarge()
    return data


def content_type(app: Router) -> str:
    value = app.current_event.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def form_params(app: Router, *, error: type[LatchkeyError] = InvalidRequest) -> dict[str, str]:
    """The form body as a dict; duplicates, a wrong content type or bad encoding raise ``error``."""
    if content_type(app) != "application/x-www-form-urlencoded":
        raise error("The request must be application/x-www-form-urlencoded.")
    try:
        text = raw_body(app).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise error("The request body is not valid form encoding.") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise error(f"The parameter {name} is repeated.")
        if value != "":
            params[name] = value
    return params


def json_object(app: Router, *, error: type[LatchkeyError] = InvalidRequest) -> dict[str, Any]:
    if content_type(app) != "application/json":
        raise error("The request must be application/json.")
    try:
        data = json.loads(raw_body(app))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: deeply nested arrays
        raise error("The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise error("The request body must be a JSON object.")
    return data


def query_param(app: Router, name: str) -> str | None:
    """One query parameter; API Gateway joins repeated ones with commas, so a comma means repeated
    for parameters that cannot contain one."""
    return (app.current_event.query_string_parameters or {}).get(name)


def query_params(app: Router, *, error: type[LatchkeyError] = InvalidRequest) -> dict[str, str]:
    """Every query parameter, from the raw query string (API Gateway's map would merge repeats): a
    repeated parameter raises ``error`` (RFC 6749 §3.1); empty values count as absent."""
    raw = app.current_event.get("rawQueryString") or ""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise error("The query string is not valid.") from exc
    params: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise error(f"The parameter {name} is repeated.")
        seen.add(name)
        if value != "":
            params[name] = value
    return params


def browser(app: Router) -> Any:
    """The :class:`latchkey.interaction.Browser` behind the request: cookies, address and ``Origin``."""
    from ..interaction import Browser

    event = app.current_event
    source = ((event.get("requestContext") or {}).get("http") or {}).get("sourceIp", "")
    return Browser(cookies=tuple(event.get("cookies") or ()), source_ip=source,
                   origin=event.headers.get("origin"))
