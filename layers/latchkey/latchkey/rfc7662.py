"""OAuth 2.0 Token Introspection (RFC 7662, https://www.rfc-editor.org/rfc/rfc7662), ``POST /api/oauth/introspect``.

- §2.1: "the endpoint MUST also require some form of authorization ... to prevent token scanning": the
  caller authenticates as a confidential client (:mod:`latchkey.rfc6749.client_auth`; a public client's
  bare ``client_id`` proves nothing, so it is ``invalid_client``) or presents a valid Latchkey access
  token as ``Authorization: Bearer`` (§2.3: a bad one is RFC 6750's ``401 invalid_token``).
- ``token`` is required; ``token_type_hint`` is ignored (only access tokens exist yet).
- §2.2: an active token is described by ``active``, ``scope``, ``client_id``, ``token_type`` (``Bearer``),
  ``exp``, ``iat``, ``nbf`` (when set), ``sub``, ``aud``, ``iss`` and ``jti``. Anything else — expired
  (checked to the second, without the verification leeway), revoked, signed by someone else, issued by
  another issuer, malformed — is just ``{"active": false}``: §2.2 "SHOULD NOT include any additional
  information about an inactive token".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import clock, rfc8414, rfc9068, services, user_tokens
from .bearer import token_from_header
from .config import Settings
from .crypto.jws import TokenInvalid
from .errors import InvalidClient, InvalidRequest, InvalidToken
from .rfc6749 import client_auth

INTROSPECT_PATH = "/api/oauth/introspect"
PARAMETERS = frozenset({"token", "token_type_hint"})
INACTIVE: dict[str, Any] = {"active": False}
CLAIMS = ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti")


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
    authorize_caller(params, authorization)
    token = params.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    claims = active_claims(token)
    if claims is None:
        return dict(INACTIVE)
    return {"active": True, "token_type": "Bearer", **{name: claims[name] for name in CLAIMS if name in claims}}


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    confidential = [method for method in client_auth.METHODS if method != "none"]
    return {
        "introspection_endpoint": settings.issuer + INTROSPECT_PATH,
        # RFC 8414 §2 allows access token types here too: a bearer token may authorize the call.
        "introspection_endpoint_auth_methods_supported": [*confidential, "Bearer"],
        "introspection_endpoint_auth_signing_alg_values_supported": list(client_auth.ASSERTION_ALGS),
    }
