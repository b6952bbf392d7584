"""Latchkey's hosted pages (login, consent, logout, logged out, error): rendering and security headers.

Templates are Jinja2 with autoescaping on (every value from a request or the table is escaped). The pages
run no script at all. The one stylesheet is inlined and allowed by its SHA-256 in the Content Security
Policy, so the policy can stay ``default-src 'none'``:

- ``style-src 'sha256-…'``, ``img-src 'self' data:`` (the app's logo is served by Latchkey),
- ``form-action 'self'`` plus the origin of the app's redirect URI (browsers apply ``form-action`` to the
  redirects that follow a form post, and the consent post ends at the app),
- ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY``) against clickjacking, ``base-uri 'none'``;

with ``Cache-Control: no-store``, ``Referrer-Policy: same-origin`` (request ids never reach another site
in a Referer header, while the browser still sends a real ``Origin`` on the pages' own form posts, which
the CSRF check requires; ``no-referrer`` makes Chromium send ``Origin: null``),
``X-Content-Type-Options: nosniff``, ``Cross-Origin-Opener-Policy: same-origin`` and, for an https
issuer, HSTS.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import services
from ..errors import LatchkeyError
from ..http.router import Cookie, Response
from ..interaction import Outcome, Page, Redirect, SetCookie

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=1)
def stylesheet() -> tuple[str, str]:
    """(the CSS, its CSP source ``'sha256-…'``)."""
    css = (HERE / "style.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return css, f"'sha256-{digest}'"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{parts.scheme}:" if parts.scheme else None  # a native app's private-use scheme
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"http://{host}:*"  # loopback redirect URIs may use any port (RFC 8252 §7.3)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    _, style_hash = stylesheet()
    targets = " ".join(dict.fromkeys(o for t in form_targets if (o := _origin(t))))
    form_action = f"'self' {targets}".strip()
    headers = {
        "Content-Security-Policy": (f"default-src 'none'; style-src {style_hash}; img-src 'self' data:; "
                                    f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"),
        "Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if services.settings().issuer.startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def render(template: str, context: dict[str, Any]) -> str:
    css, _ = stylesheet()
    from markupsafe import Markup

    return _environment().get_template(template).render(css=Markup(css), **context)  # noqa: S704 - our own file, not input


def _cookie(spec: SetCookie) -> Cookie:
    secure = services.settings().issuer.startswith("https://")
    return Cookie(name=spec.name, value=spec.value, path="/", secure=secure, http_only=True, max_age=spec.max_age,
                  same_site="Lax")


def respond(outcome: Outcome) -> Response:
    """The HTTP response for an :class:`~latchkey.interaction.Outcome`."""
    cookies = [_cookie(c) for c in outcome.cookies]
    if isinstance(outcome, Redirect):
        return Response(status_code=302, headers={"Location": outcome.location, **security_headers()},
                        cookies=cookies)
    assert isinstance(outcome, Page)
    return Response(status_code=outcome.status, content_type="text/html; charset=utf-8",
                    body=render(outcome.template, outcome.context), cookies=cookies,
                    headers={**security_headers(outcome.form_targets), **outcome.headers})


def error_page(exc: LatchkeyError, request_id: str) -> Response:
    """The error page (never a redirect: the redirect target may not be trusted)."""
    body = render("error.html", {"error": exc.error, "description": exc.description, "request_id": request_id})
    return Response(status_code=exc.status, content_type="text/html; charset=utf-8", body=body,
                    headers={**security_headers(), **exc.headers})
