"""OAuth 2.0 Token Revocation (RFC 7009, https://www.rfc-editor.org/rfc/rfc7009), ``POST /api/oauth/revoke``.

- §2.1: the client authenticates as at the token endpoint (:mod:`latchkey.rfc6749.client_auth`; public
  clients with ``none`` too); ``token`` is required (else ``invalid_request``); ``token_type_hint`` is
  optional and never narrows the search: a refresh token is recognised by its ``lk_rt_`` prefix, anything
  else is tried as an access token (an unknown hint is ignored, as §2.1 allows).
- §2.1: "verifies whether the token was issued to the client making the revocation request. If this
  validation fails, the request is refused": a valid token of another client is ``400 invalid_request``
  and nothing is revoked (as node-oidc-provider does).
- §2.2: "200 if the token has been revoked successfully or if the client submitted an invalid token":
  unknown, malformed, foreign and expired tokens, and tokens already revoked, are ``200`` with an empty
  body, and change nothing.
- Access tokens are self-contained JWTs (RFC 9068), so revoking one puts its ``jti`` on the denylist
  until the token expires (:mod:`latchkey.denylist`), in the same transaction as the
  ``oauthTokenRevoked`` outbox row. (``unsupported_token_type``, §2.2.1, is never needed: every token
  Latchkey can recognise can be revoked.)
- Refresh tokens (§2.1: "the authorization server SHOULD also invalidate ... other refresh tokens based
  on the same authorization grant"): revoking one, used or not, revokes its whole rotation family (the
  family marker of :mod:`latchkey.refresh_tokens`), with ``oauthTokenRevoked`` in the same conditional
  write, so a family is revoked and announced once. The access tokens already issued from the family
  stay valid until they expire (short-lived; revoke them one by one, or the connection).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import refresh_tokens, rfc8414, rfc9068, services
from .config import Settings
from .crypto.jws import TokenInvalid
from .errors import InvalidRequest
from .events import EventName, build_event, outbox_put
from .rfc6749 import client_auth, token_endpoint
from .rfc6749.refresh_token import retry_conflicts, revoke_family

REVOKE_PATH = "/api/oauth/revoke"
PARAMETERS = frozenset({"token", "token_type_hint"})


def user_of(claims: Mapping[str, Any]) -> str:
    """The user a token was issued for; empty for machine tokens, whose ``sub`` is the client id."""
    subject = str(claims.get("sub", ""))
    return "" if subject == claims.get("client_id") else subject


def revoke(params: Mapping[str, str], authorization: str | None) -> bool:
    """Revoke ``token`` for the authenticated client; True when something was revoked. Every write is
    conditional and idempotent, so one DynamoDB cancelled for a TransactionConflict (a refresh or another
    revocation of the same family at the same moment) is retried (:func:`retry_conflicts`)."""
    client = client_auth.authenticate(params, authorization, endpoint=REVOKE_PATH)
    token = params.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    return retry_conflicts(lambda: _revoke(token, client.client_id), f"revocation by {client.client_id}")


def _revoke(token: str, client_id: str) -> bool:
    if refresh_tokens.looks_like(token):
        return _revoke_refresh_token(token, client_id)
    settings = services.settings()
    try:
        claims = rfc9068.verify(services.key_ring(), token, issuer=settings.issuer)
    except TokenInvalid:
        return False  # §2.2: an invalid token is not an error
    if claims["client_id"] != client_id:
        raise InvalidRequest("The token was not issued to this client.",
                             detail=f"client {client_id} tried to revoke a token of {claims['client_id']}")
    event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=client_id,
                        user_id=user_of(claims))
    # Conditional: a token already revoked is not revoked (nor announced) twice, even under a race.
    return services.denylist().revoke(claims["jti"], int(claims["exp"]),
                                      also=[outbox_put(event, ttl=settings.event_ttl)])


def _revoke_refresh_token(value: str, client_id: str) -> bool:
    token = services.refresh_token_store().find(value)
    if token is None:
        return False  # §2.2: unknown or expired
    if token.client_id != client_id:
        raise InvalidRequest("The token was not issued to this client.",
                             detail=f"client {client_id} tried to revoke a refresh token of {token.client_id}")
    return revoke_family(token)


@rfc8414.contributes
def _metadata(settings: Settings) -> dict[str, Any]:
    return {
        "revocation_endpoint": settings.issuer + REVOKE_PATH,
        # public clients revoke with "none", once a grant gives them tokens at all
        "revocation_endpoint_auth_methods_supported": token_endpoint.auth_methods(),
        "revocation_endpoint_auth_signing_alg_values_supported": list(client_auth.ASSERTION_ALGS),
    }
