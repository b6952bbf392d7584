"""The UserInfo endpoint (OpenID Connect Core 1.0 §5.3), ``GET|POST /api/oauth/userinfo``.

https://openid.net/specs/openid-connect-core-1_0.html#UserInfo, protected as an RFC 6750 resource
(https://www.rfc-editor.org/rfc/rfc6750):

- the access token comes in ``Authorization: Bearer`` (§2.1) or, on POST, as the form parameter
  ``access_token`` (§2.2); §2: "Clients MUST NOT use more than one method to transmit the token in each
  request", so both at once is ``400 invalid_request``;
- the token must be a live user's access token Latchkey issued (signature, ``iss``, ``exp``, ``typ``, the
  denylist, and the user / app / connection behind its ``grant_id`` still in force), else
  ``401 invalid_token``; a client's own token (``client_credentials``) has no user to describe and is
  ``invalid_token`` too;
- §5.3.1: the token must carry ``openid``, else ``403 insufficient_scope``;
- §5.3.2: the answer is the claims the token's scopes release (:func:`latchkey.oidc.user_claims`), about
  the user as stored now (a profile edit shows at once), ``sub`` always; never cached.

The checks read the user, the app and the connection once (one ``BatchGetItem``), and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import rfc8414, rfc9068, services, user_tokens
from ..bearer import token_from_header
from ..config import Settings
from ..crypto.jws import TokenInvalid
from ..errors import InsufficientScope, InvalidRequest, InvalidToken
from . import CLAIMS_SUPPORTED, OPENID, STANDARD_SCOPES, user_claims

USERINFO_PATH = "/api/oauth/userinfo"
FORM_PARAMETER = "access_token"


def access_token(authorization: str | None, form: Mapping[str, str] | None = None) -> str:
    """The token of the request (RFC 6750 §2.1 header or §2.2 form body, never both)."""
    in_form = (form or {}).get(FORM_PARAMETER)
    if in_form is not None:
        if authorization:
            raise InvalidRequest("Send the access token in the Authorization header or the form, not both.")
        if " " in in_form.strip():
            raise InvalidRequest("The access_token parameter is malformed.")
        return in_form.strip()
    return token_from_header(authorization)


def userinfo(authorization: str | None, form: Mapping[str, str] | None = None) -> dict[str, Any]:
    """§5.3.2: the claims about the token's user that its scopes release."""
    token = access_token(authorization, form)
    try:
        claims = rfc9068.verify(services.key_ring(), token, issuer=services.settings().issuer)
    except TokenInvalid as exc:
        raise InvalidToken(detail=str(exc)) from exc
    services.prefetch(user_tokens.read_ahead_keys(claims))  # the denylist row and the grant, in one read
    if services.is_revoked(claims["jti"]):
        raise InvalidToken(detail=f"jti {claims['jti']} is revoked")
    grant_id = claims.get(user_tokens.GRANT_ID_CLAIM)
    if grant_id is None:
        raise InvalidToken(detail=f"jti {claims['jti']} is a client's token, not a user's")
    live = user_tokens.load_grant(str(claims["sub"]), str(claims["client_id"]), str(grant_id))
    if live is None:
        raise InvalidToken(detail=f"the grant behind jti {claims['jti']} has ended")
    scopes = str(claims.get("scope", "")).split()
    if OPENID not in scopes:
        raise InsufficientScope(f"The access token lacks the scope {OPENID}.", headers={
            "WWW-Authenticate": f'Bearer realm="latchkey", error="insufficient_scope", scope="{OPENID}"'})
    return user_claims(live.user, scopes)


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    return {
        "userinfo_endpoint": settings.issuer + USERINFO_PATH,
        "scopes_supported": list(STANDARD_SCOPES),
        "claims_supported": list(CLAIMS_SUPPORTED),
    }
