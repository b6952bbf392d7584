"""The authorization request (RFC 6749 §4.1.1, OpenID Connect Core 1.0 §3.1.2.1), validated.

Order matters (RFC 6749 §4.1.2.1, RFC 9700 §4.11): until the client and its ``redirect_uri`` are known
good, an error is shown to the user on Latchkey's error page (:class:`PageError`) and never redirected;
after that, errors go back to the app as ``error``/``error_description``/``state``/``iss`` query
parameters (:class:`RedirectError`).

- ``response_type=code`` only (RFC 9700 §2.1.2: no implicit; §2.4: no password grant). ``response_mode``
  may only be ``query``. ``request``/``request_uri`` objects are not supported (OIDC §6 error codes).
- ``redirect_uri``: exact string match with a registered URI (RFC 9700 §2.1), except that for loopback
  redirect URIs of native apps any port is accepted (RFC 8252 §7.3). It may be left out only when the
  app has exactly one registered URI (RFC 6749 §3.1.2.3) and ``openid`` is not requested (OIDC
  §3.1.2.1 makes it REQUIRED).
- ``scope``: scope-tokens (§3.3), each one of the app's registered scopes or a standard OIDC scope.
- PKCE (:mod:`latchkey.rfc7636`): S256 only, required for public clients.
- ``prompt`` (``none``, ``login``, ``consent``, ``select_account``; ``none`` alone), ``max_age`` (a
  non-negative integer), ``nonce``, ``login_hint``, ``ui_locales``, ``display``, ``id_token_hint``,
  ``claims_locales``, ``acr_values`` are accepted (the last ones are not acted on); a parameter sent
  twice is ``invalid_request``.
- The response carries ``iss`` (RFC 9207) and the ``state`` the app sent.

A valid request is kept server-side (a row with a TTL) while the user signs in and consents; the pages
refer to it by a random id. A row of kind :data:`RETURN` (:func:`return_request`) only signs the user in
and then sends them back to a page of this issuer (RFC 8628's device page), never to an app.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .. import clock, rfc8414, services
from ..clients import Client
from ..config import Settings
from ..errors import InvalidScope, LatchkeyError
from ..loopback import is_loopback
from ..oidc import OPENID, STANDARD_SCOPES
from ..rfc7636 import check_request
from ..store import ENTITY, PK, SK, TTL_ATTRIBUTE, Delete, Exists, Operation, Put, Update

AUTHORIZE_PATH = "/api/oauth/authorize"
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
ACCEPTED = frozenset({
    "client_id", "response_type", "redirect_uri", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "login_hint", "ui_locales", "response_mode", "display",
    "id_token_hint", "claims_locales", "acr_values", "request", "request_uri", "claims", "resource",
})
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
MAX_LENGTHS = {"state": 2048, "nonce": 512, "login_hint": 256, "ui_locales": 128, "scope": 2000}
AUTHORIZE, RETURN = "authorize", "return"  # kinds of pending request: an app's, or a sign-in for our own page


class PageError(LatchkeyError):
    """An error shown on Latchkey's error page, never redirected (the redirect target is not trusted)."""

    error, status, default_description = "invalid_request", 400, "The request is invalid."

    def __init__(self, error: str, description: str, *, detail: str | None = None) -> None:
        super().__init__(description, detail=detail)
        self.error = error  # type: ignore[misc]


class RedirectError(Exception):
    """An error for the app, sent to its validated ``redirect_uri`` (§4.1.2.1)."""

    def __init__(self, redirect_uri: str, error: str, description: str, state: str | None) -> None:
        super().__init__(description)
        self.redirect_uri, self.error, self.description, self.state = redirect_uri, error, description, state

    def location(self) -> str:
        return redirect_location(self.redirect_uri, error=self.error, error_description=self.description,
                                 state=self.state)


def redirect_location(redirect_uri: str, **params: str | None) -> str:
    """``redirect_uri`` with ``params`` (None values dropped) and RFC 9207's ``iss`` added to its query."""
    query = {k: v for k, v in params.items() if v is not None}
    query["iss"] = services.settings().issuer
    parts = urlsplit(redirect_uri)
    joined = f"{parts.query}&{urlencode(query)}" if parts.query else urlencode(query)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


def _loopback_parts(uri: str) -> tuple[str, str, str] | None:
    """(host, path, query) of a plain-http loopback URI with a valid port and nothing else in it (no
    userinfo, no fragment: RFC 6749 §3.1.2); None for any other URI."""
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme != "http" or not is_loopback(parts.hostname) or "#" in uri or "@" in parts.netloc:
        return None
    return str(parts.hostname), parts.path, parts.query


def match_redirect_uri(client: Client, requested: str) -> bool:
    """Exact match, or a loopback URI equal but for its port (RFC 8252 §7.3)."""
    registered = client.all_redirect_uris
    if requested in registered:
        return True
    asked = _loopback_parts(requested)
    return asked is not None and any(_loopback_parts(uri) == asked for uri in registered)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    request_id: str
    client_id: str
    redirect_uri: str
    redirect_uri_sent: bool
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: tuple[str, ...]
    max_age: int | None
    login_hint: str | None
    ui_locales: str | None
    created_at: int
    login_sid: str | None = None  # the session signed in for this very request (prompt=login, max_age)
    kind: str = AUTHORIZE  # RETURN: sign in, then go to ``redirect_uri`` (a page of this issuer)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())

    def redirect(self, **params: str | None) -> str:
        return redirect_location(self.redirect_uri, state=self.state, **params)

    def error(self, error: str, description: str) -> RedirectError:
        return RedirectError(self.redirect_uri, error, description, self.state)

    def to_item(self, ttl: int) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "request_id"}
        data["prompt"] = " ".join(self.prompt)
        return {PK: f"AUTHREQ#{self.request_id}", SK: "AUTHREQ", ENTITY: "authorization_request",
                TTL_ATTRIBUTE: self.created_at + ttl, **data}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AuthorizationRequest:
        return cls(request_id=item[PK].removeprefix("AUTHREQ#"), client_id=item["client_id"],
                   redirect_uri=item["redirect_uri"], redirect_uri_sent=bool(item["redirect_uri_sent"]),
                   scope=item.get("scope", ""), state=item.get("state"), nonce=item.get("nonce"),
                   code_challenge=item.get("code_challenge"), prompt=tuple(item.get("prompt", "").split()),
                   max_age=int(item["max_age"]) if item.get("max_age") is not None else None,
                   login_hint=item.get("login_hint"), ui_locales=item.get("ui_locales"),
                   created_at=int(item["created_at"]), login_sid=item.get("login_sid"),
                   kind=item.get("kind", AUTHORIZE))


def find_client(client_id: str | None) -> Client:
    if not client_id:
        raise PageError("invalid_request", "The request has no client_id.")
    client = services.client_store().get(client_id) if _CLIENT_ID.match(client_id) else None
    if client is None:
        raise PageError("invalid_client", "The app that sent you here is not known.",
                        detail=f"unknown client {client_id[:128]!r}")
    return client


def resolve_redirect_uri(client: Client, requested: str | None, *, openid: bool) -> tuple[str, bool]:
    """(the redirect URI to use, whether the request named it); raises :class:`PageError`."""
    if requested is None:
        registered = client.all_redirect_uris
        if openid or len(registered) != 1:
            raise PageError("invalid_request", "The request has no redirect_uri.")
        return registered[0], False
    if not match_redirect_uri(client, requested):
        raise PageError("invalid_request", "The redirect_uri is not registered for this app.",
                        detail=f"client {client.client_id} redirect_uri {requested[:200]!r}")
    return requested, True


def allowed_scopes(client: Client) -> frozenset[str]:
    return client.scopes | set(STANDARD_SCOPES)


def check_scope(client: Client, scope: str | None) -> tuple[str, ...]:
    """The requested scopes (§3.3), each allowed for ``client``; raises ``invalid_scope``."""
    if not scope:
        return ()
    tokens = scope.split(" ")
    if any(not _SCOPE_TOKEN.match(t) for t in tokens):
        raise InvalidScope("The scope parameter is malformed.")
    unknown = set(tokens) - allowed_scopes(client)
    if unknown:
        raise InvalidScope("The app may not request that scope.", detail=" ".join(sorted(unknown)))
    return tuple(dict.fromkeys(tokens))


def parse(params: Mapping[str, str]) -> AuthorizationRequest:
    """Validate an authorization request; raises :class:`PageError` or :class:`RedirectError`."""
    client = find_client(params.get("client_id"))
    scope_param = params.get("scope")
    openid = OPENID in (scope_param or "").split(" ")
    redirect_uri, sent = resolve_redirect_uri(client, params.get("redirect_uri"), openid=openid)
    state = params.get("state")
    if state is not None and len(state) > MAX_LENGTHS["state"]:
        raise PageError("invalid_request", "The state parameter is too long.")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, error, description, state)

    response_type = params.get("response_type")
    if response_type is None:
        raise fail("invalid_request", "The response_type parameter is required.")
    if response_type != "code":
        raise fail("unsupported_response_type", "Only response_type=code is supported.")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "The app is not registered for the authorization code flow.")
    if params.get("response_mode", "query") != "query":
        raise fail("invalid_request", "Only response_mode=query is supported.")
    if "request" in params:
        raise fail("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported.")
    for name, limit in MAX_LENGTHS.items():
        if len(params.get(name, "")) > limit:
            raise fail("invalid_request", f"The {name} parameter is too long.")
    try:
        scopes = check_scope(client, scope_param)
        challenge = check_request(params.get("code_challenge"), params.get("code_challenge_method"),
                                  public=client.public)
    except LatchkeyError as exc:
        raise fail(exc.error, exc.description) from exc
    prompt = tuple(params.get("prompt", "").split())
    if set(prompt) - PROMPTS:
        raise fail("invalid_request", "The prompt parameter has an unknown value.")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values.")
    max_age = params.get("max_age")
    if max_age is not None and not re.fullmatch(r"[0-9]{1,9}", max_age):  # not isdigit(): "²" is a digit
        raise fail("invalid_request", "max_age must be a non-negative integer.")
    return AuthorizationRequest(
        request_id=secrets.token_urlsafe(24), client_id=client.client_id, redirect_uri=redirect_uri,
        redirect_uri_sent=sent, scope=" ".join(scopes), state=state, nonce=params.get("nonce"),
        code_challenge=challenge, prompt=prompt, max_age=int(max_age) if max_age is not None else None,
        login_hint=params.get("login_hint"), ui_locales=params.get("ui_locales"), created_at=clock.now())


def return_request(return_to: str) -> AuthorizationRequest:
    """A pending sign-in that, once the user has signed in, sends the browser to ``return_to`` (a URL of
    this issuer built by the server, e.g. ``/device?user_code=...``) instead of to an app."""
    return AuthorizationRequest(
        request_id=secrets.token_urlsafe(24), client_id="", redirect_uri=return_to, redirect_uri_sent=False,
        scope="", state=None, nonce=None, code_challenge=None, prompt=(), max_age=None, login_hint=None,
        ui_locales=None, created_at=clock.now(), kind=RETURN)


def store_op(request: AuthorizationRequest) -> Operation:
    return Put(request.to_item(services.settings().authorization_request_ttl))


def load(request_id: str | None) -> AuthorizationRequest | None:
    """The pending request ``request_id`` names, unless it expired or was completed."""
    if not request_id or len(request_id) > 64:
        return None
    item = services.item_store().get(f"AUTHREQ#{request_id}", "AUTHREQ")
    if item is None or int(item[TTL_ATTRIBUTE]) <= clock.now():
        return None
    return AuthorizationRequest.from_item(item)


def signed_in_op(request: AuthorizationRequest, sid: str) -> Operation:
    """Record that the user signed in for this request (session ``sid``), so ``prompt=login`` and
    ``max_age`` are satisfied by that sign-in only; fails if the request was completed meanwhile."""
    return Update(f"AUTHREQ#{request.request_id}", "AUTHREQ", set={"login_sid": sid}, condition=Exists())


def complete_op(request: AuthorizationRequest) -> Operation:
    """Remove the pending request; fails if it was already completed (a double-submitted form)."""
    return Delete(f"AUTHREQ#{request.request_id}", "AUTHREQ", condition=Exists())




@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    return {
        "authorization_endpoint": settings.issuer + AUTHORIZE_PATH,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 §3
        "prompt_values_supported": sorted(PROMPTS),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }
