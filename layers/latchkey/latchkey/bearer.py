"""Bearer-protected routes (RFC 6750): the admin guard of governor's routes.

The token must be an access token Latchkey issued (RFC 9068, verified locally against the current key
set: signature, ``iss``, ``exp``, ``typ``), not revoked, and carry the route's scope. A missing or bad
token is ``401 invalid_token``; a missing scope is ``403 insufficient_scope`` (RFC 6750 §3.1).
"""

from __future__ import annotations

from typing import Any

from . import rfc9068, services, user_tokens
from .crypto.jws import TokenInvalid
from .errors import InsufficientScope, InvalidRequest, InvalidToken


def token_from_header(authorization: str | None) -> str:
    """RFC 6750 §2.1: ``Authorization: Bearer <token>`` (scheme case-insensitive)."""
    if not authorization:
        raise InvalidToken("An access token is required.")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidToken("An access token is required.")
    if " " in value.strip():
        raise InvalidRequest("The Authorization header is malformed.")
    return value.strip()


def require(authorization: str | None, scope: str) -> dict[str, Any]:
    """The verified claims of the caller's token, which must carry ``scope``."""
    token = token_from_header(authorization)
    try:
        claims = rfc9068.verify(services.key_ring(), token, issuer=services.settings().issuer)
    except TokenInvalid as exc:
        raise InvalidToken(detail=str(exc)) from exc
    if services.is_revoked(claims["jti"]):
        raise InvalidToken(detail=f"jti {claims['jti']} is revoked")
    if not user_tokens.grant_is_live(claims):
        raise InvalidToken(detail=f"the grant behind jti {claims['jti']} has ended")
    if scope not in str(claims.get("scope", "")).split():
        raise InsufficientScope(f"The access token lacks the scope {scope}.", headers={
            "WWW-Authenticate": f'Bearer realm="latchkey", error="insufficient_scope", scope="{scope}"'})
    return claims
