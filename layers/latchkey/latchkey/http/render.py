"""Rendering an error in the shape of the route's protocol, in one place (CONVENTIONS §8).

- ``OAUTH``: RFC 6749 §5.2 ``{"error", "error_description"}``; ``invalid_token`` / ``insufficient_scope``
  carry an RFC 6750 §3 ``WWW-Authenticate: Bearer`` challenge.
- ``GOVERNOR``: governor's ``{"message", "code"}``.
- ``TETRATE``: Tetrate Service Bridge's ``{"error": "INVALID_GRANT", "errorMessage"}``.
- ``CONNECT``: the Connect protocol's ``{"code": "unauthenticated", "message"}`` with the HTTP status of
  the Connect code (Neosync's AuthService, :mod:`latchkey.neosync`).
- ``PAGE``: the hosted HTML error page (:func:`latchkey.pages.error_page`), for routes a person's
  browser visits.

Every body also carries ``request_id`` (an extension member clients ignore) and every error response
is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from enum import StrEnum

from ..errors import InsufficientScope, InvalidToken, LatchkeyError
from .router import Response


class Protocol(StrEnum):
    OAUTH = "oauth"
    GOVERNOR = "governor"
    PAGE = "page"  # hosted pages: the HTML error page
    TETRATE = "tetrate"  # Tetrate Service Bridge: {"error": <Error enum name>, "errorMessage"}
    CONNECT = "connect"  # Connect RPC (Neosync's AuthService): {"code": <Connect code>, "message"}


def _bearer_challenge(exc: LatchkeyError) -> str:
    return f'Bearer realm="latchkey", error="{exc.error}", error_description="{exc.description}"'


def render_error(protocol: Protocol, exc: LatchkeyError, request_id: str) -> Response:
    if protocol is Protocol.PAGE:
        from ..pages import error_page  # deferred: only page routes load the template engine

        return error_page(exc, request_id)
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **exc.headers}
    if isinstance(exc, InvalidToken | InsufficientScope):
        headers.setdefault("WWW-Authenticate", _bearer_challenge(exc))
    if protocol is Protocol.GOVERNOR:
        body = {"message": exc.description, "code": exc.error, "request_id": request_id}
    elif protocol is Protocol.TETRATE:
        from ..tetrate import error_body

        body = {**error_body(exc), "request_id": request_id}
    elif protocol is Protocol.CONNECT:
        from .. import neosync

        body = {**neosync.error_body(exc), "request_id": request_id}
        return Response(status_code=neosync.error_status(exc), content_type="application/json",
                        body=json.dumps(body, separators=(",", ":")), headers=headers)
    else:
        body = {"error": exc.error, "error_description": exc.description, "request_id": request_id}
    return Response(status_code=exc.status, content_type="application/json",
                    body=json.dumps(body, separators=(",", ":")), headers=headers)
