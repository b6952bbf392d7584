"""The refresh token grant (RFC 6749 §6), with rotation (RFC 9700 §4.14.2).

- The refresh token must exist, be unexpired, belong to the authenticated client (§6: "MUST ... ensure
  that the refresh token was issued to the authenticated client") and its family must not be revoked;
  else ``invalid_grant``.
- ``scope`` may narrow, never widen, the original grant (§6: "MUST NOT include any scope not originally
  granted"): ``invalid_scope``.
- The user must still be active and the connection still in force (the consent may have been revoked).
- Rotation: the old token is marked used by one conditional write together with the new token row,
  ``access_time`` and ``oauthTokenGenerated``. Presenting a used token again is treated as theft
  (RFC 9700 §4.14.2): the whole family is revoked and the answer is ``invalid_grant``.
- A new ID Token is returned when ``openid`` is in scope (OIDC Core §12.2), without ``nonce``.
"""

from __future__ import annotations

from .. import services, user_tokens
from ..errors import InvalidGrant, InvalidRequest, InvalidScope
from ..store import ConditionFailed
from .grants import Grant, TokenRequest, TokenResponse, register_grant

GRANT_TYPE = "refresh_token"


def _revoke_family(family_id: str) -> None:
    store = services.refresh_token_store()
    services.item_store().write(store.revoke_family_op(family_id, services.settings().refresh_token_ttl))


def refresh_token(request: TokenRequest) -> TokenResponse:
    client, params = request.client, request.params
    value = params.get("refresh_token")
    if value is None:
        raise InvalidRequest("The refresh_token parameter is required.")
    store = services.refresh_token_store()
    token = store.find(value)
    if token is None:
        raise InvalidGrant(detail="unknown or expired refresh token")
    if token.client_id != client.client_id:
        raise InvalidGrant(detail=f"refresh token of {token.client_id} presented by {client.client_id}")
    if store.family_revoked(token.family_id):
        raise InvalidGrant(detail="refresh token family revoked")
    if token.used_at is not None:
        _revoke_family(token.family_id)
        raise InvalidGrant(detail="refresh token reused; its family is revoked")
    scope = params.get("scope")
    scopes = token.scopes if scope is None else frozenset(scope.split(" "))
    if not scopes <= token.scopes or "" in scopes:
        raise InvalidScope("The scope exceeds what was originally granted.")
    live = user_tokens.load_grant(token.user_id, client.client_id, token.grant_id)
    if live is None:
        raise InvalidGrant(detail="the user or their consent is no longer in force")
    issued = user_tokens.issue(client=client, user=live.user, connection=live.connection, scopes=scopes,
                               auth_time=token.auth_time, sid=token.sid, refresh_family=token.family_id,
                               refresh_scopes=token.scopes)
    try:
        services.item_store().write(store.consume_op(token, int(issued.claims["iat"])), *issued.writes)
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            _revoke_family(token.family_id)
            raise InvalidGrant(detail="refresh token redeemed concurrently") from exc
        raise
    return issued.response


GRANT = register_grant(Grant(grant_type=GRANT_TYPE, handler=refresh_token,
                             parameters=frozenset({"refresh_token", "scope"}), public_clients=True))
