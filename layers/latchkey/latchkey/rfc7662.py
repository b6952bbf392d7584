"""OAuth 2.0 Token Introspection (RFC 7662, https://www.rfc-editor.org/rfc/rfc7662), ``POST /api/oauth/introspect``.

- §2.1: "the endpoint MUST also require some form of authorization ... to prevent token scanning": the
  caller authenticates as a confidential client (:mod:`latchkey.rfc6749.client_auth`; a public client's
  bare ``client_id`` proves nothing, so it is ``invalid_client``) or presents a valid Latchkey access
  token as ``Authorization: Bearer`` (§2.3: a bad one is RFC 6750's ``401 invalid_token``).
- ``token`` is required; ``token_type_hint`` is not needed (§2.1 "MAY ... use the hint"): a refresh token
  is recognised by its ``lk_rt_`` prefix, anything else is tried as an access token.
- §2.2: an active access token is described by ``active``, ``scope``, ``client_id``, ``token_type``
  (``Bearer``), ``exp``, ``iat``, ``nbf`` (when set), ``sub``, ``aud``, ``iss`` and ``jti``. Anything
  else — expired (checked to the second, without the verification leeway), revoked, signed by someone
  else, issued by another issuer, malformed — is just ``{"active": false}``: §2.2 "SHOULD NOT include any
  additional information about an inactive token".
- A refresh token is active while it can be redeemed: unexpired, unused or used less than
  ``REFRESH_TOKEN_REUSE_GRACE`` ago, its family neither revoked nor past its absolute lifetime, and its
  user's grant in force. It is described by ``active``, ``token_type`` (``refresh_token``), ``scope``,
  ``client_id``, ``sub`` (the user), ``exp`` (when it stops being redeemable) and ``iat``, to the client
  it was issued to only: §2.2 lets the server answer ``active: false`` to a caller not allowed to know
  about the token, and refresh tokens concern no resource server.
- Rate limits (issue 9, docs/security.md): calls are counted per source address (before anything is
  read) and per authenticated caller in this function instance's memory (``INTROSPECTION_*``), so the
  warm path keeps its single DynamoDB round trip; over a limit the answer is ``429`` with
  ``Retry-After`` and ``{"error": "temporarily_unavailable"}``. Failed client authentication is counted
  in the table by :mod:`latchkey.rfc6749.client_auth` (its counter rows join the read ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import clock, context, refresh_tokens, rfc8414, rfc9068, services, user_tokens
from .bearer import token_from_header
from .clients import client_key
from .config import Settings
from .crypto.jws import TokenInvalid
from .errors import InvalidClient, InvalidRequest, InvalidToken, LatchkeyError, TooManyRequests
from .ratelimit import WindowLimiter
from .rfc6749 import client_auth

INTROSPECT_PATH = "/api/oauth/introspect"
PARAMETERS = frozenset({"token", "token_type_hint"})
INACTIVE: dict[str, Any] = {"active": False}
CLAIMS = ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti")


class RateLimited(TooManyRequests):
    """429 with ``Retry-After``, in RFC 6749's error shape: ``temporarily_unavailable`` (§4.1.2.1) is the
    registered code a generic client understands as "retry later"; RFC 8628's ``slow_down`` means "poll
    5 s slower" and belongs to the device grant."""

    error, default_description = "temporarily_unavailable", "Too many introspection requests; retry later."


def _limiter(name: str, limit: int) -> WindowLimiter:
    window = services.settings().introspection_rate_window
    return services.cached(f"introspection_limiter_{name}", lambda: WindowLimiter(limit, window))


def _within_limit(name: str, limit: int, key: str) -> None:
    if wait := _limiter(name, limit).hit(key, clock.now()):
        raise RateLimited(wait, detail=f"introspection rate limit ({name}) reached for {key[:100]!r}")


def _is_bearer(authorization: str | None) -> bool:
    return bool(authorization) and authorization.strip().partition(" ")[0].lower() == "bearer"


def authorize_caller(params: Mapping[str, str], authorization: str | None) -> str:
    """The caller's client id, from client authentication or a bearer access token (§2.1)."""
    if _is_bearer(authorization):
        claims = active_claims(token_from_header(authorization))
        if claims is None:
            raise InvalidToken()
        return str(claims["client_id"])
    client = client_auth.authenticate(params, authorization, endpoint=INTROSPECT_PATH)
    if client.public:
        raise InvalidClient(detail=f"public client {client.client_id} cannot introspect")
    return client.client_id


def active_claims(token: str, *, now: int | None = None) -> dict[str, Any] | None:
    """The claims of an access token that is active right now, or None."""
    try:
        claims = rfc9068.verify(services.key_ring(), token, issuer=services.settings().issuer)
    except TokenInvalid:
        return None
    if int(claims["exp"]) <= (clock.now() if now is None else now) or services.is_revoked(claims["jti"]):
        return None
    if "grant_id" in claims:
        return claims if user_tokens.grant_is_live(claims) else None  # user, app and connection in one read
    if services.client_store().get(claims["client_id"]) is None:
        return None  # the app was deleted: its tokens died with it
    return claims


def introspect(params: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
    """The §2.2 introspection response for the authenticated caller's request."""
    settings = services.settings()
    _within_limit("address", settings.introspection_address_rate_limit, context.source_ip.get())
    _read_ahead(params, authorization)
    caller = authorize_caller(params, authorization)
    _within_limit("caller", settings.introspection_rate_limit, caller)
    token = params.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    if refresh_tokens.looks_like(token):
        return refresh_token_description(token, caller)
    claims = active_claims(token)
    if claims is None:
        return dict(INACTIVE)
    return {"active": True, "token_type": "Bearer", **{name: claims[name] for name in CLAIMS if name in claims}}


def _read_ahead(params: Mapping[str, str], authorization: str | None) -> None:
    """One BatchGetItem for everything the call will read: the caller's client and the token's denylist
    row and grant or client (refresh tokens: their row and grant). Guesses from unverified input only
    choose what to read; every check below still runs on what was read."""
    keys: list[tuple[str, str]] = []
    caller: str | None = None
    if not _is_bearer(authorization):
        try:
            caller = client_auth.credentials(params, authorization).client_id
        except LatchkeyError:
            caller = None  # authorize_caller raises the right error
        if caller is not None and 0 < len(caller) <= client_auth.MAX_ID_LENGTH:
            keys.append(client_key(caller))
            keys += [counter.key for counter in client_auth.failure_keys(caller)]  # read before the secret
    token = params.get("token") or ""
    if refresh_tokens.looks_like(token):
        if caller is not None:
            keys += refresh_tokens.read_ahead_keys(token, caller, services.secret_hash_key())
    elif token:
        keys += user_tokens.read_ahead_keys(user_tokens.peek_claims(token))
    services.prefetch(keys)


def refresh_token_description(value: str, caller: str) -> dict[str, Any]:
    """The §2.2 response for a refresh token, active only for the client it was issued to."""
    token = services.refresh_token_store().find(value)
    if token is None or token.client_id != caller:
        return dict(INACTIVE)
    settings, now = services.settings(), clock.now()
    live = user_tokens.load_grant(token.user_id, token.client_id, token.grant_id)
    if live is None:
        return dict(INACTIVE)
    absolute, _idle = refresh_tokens.lifetimes(live.client, settings)
    exp = min(token.usable_until(settings.refresh_token_reuse_grace), token.family_end(absolute))
    if exp <= now or services.refresh_token_store().family_revoked(token.family_id):
        return dict(INACTIVE)
    return {"active": True, "token_type": "refresh_token", "scope": token.scope, "client_id": token.client_id,
            "sub": token.user_id, "exp": exp, "iat": token.created_at}


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    confidential = [method for method in client_auth.METHODS if method != "none"]
    return {
        "introspection_endpoint": settings.issuer + INTROSPECT_PATH,
        # RFC 8414 §2 allows access token types here too: a bearer token may authorize the call.
        "introspection_endpoint_auth_methods_supported": [*confidential, "Bearer"],
        "introspection_endpoint_auth_signing_alg_values_supported": list(client_auth.ASSERTION_ALGS),
    }
