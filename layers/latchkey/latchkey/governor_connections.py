"""governor's connection routes (``/api/oauth/connection...``, WIRE §2; governor ``service/user/oauth``).

A connection is the consent a user gave one app (:mod:`latchkey.connections`). These routes are "only
accessible by user": the caller is the user named by the ``sub`` of a user's access token (one that
carries a ``grant_id``, from the authorization code or refresh grant); a client's own token
(``client_credentials``, whose ``sub`` is the client) is ``403``.

=====================================  =====================  ============================================
route                                  scope                  here
=====================================  =====================  ============================================
``GET /connection?amount=&offset=``    ``connection:read``    :func:`list_connections` → :func:`render_many`
``GET /connection/id/{id}``            ``connection:read``    :func:`get`
``DELETE /connection/id/{id}``         ``connection:write``   :func:`delete` → 204
=====================================  =====================  ============================================

Choices, where governor's description leaves room:

- ``{id}`` is the app's client id (a user has at most one connection per app).
- Only connections in force are shown: a connection made before the user was last revoked (an older
  generation, :mod:`latchkey.users`) is gone for every purpose, even while its row awaits cleanup.
- The list is most recently used first (``access_time``, then client id); ``amount`` 1-255 is required
  and ``offset`` defaults to 0, as for apps (:func:`latchkey.apps.parse_amount`).
- ``auth_time``, ``access_time`` and ``creation_time`` are integer epoch seconds.
- Deleting a connection (:func:`latchkey.revocation.revoke_connection`) removes the row with one
  ``oauthTokenRevoked`` in one transaction: every access token of that app for the user stops working at
  once (their ``grant_id`` is gone) and its refresh tokens are refused and then deleted.
"""

from __future__ import annotations

from typing import Any

from . import bearer, revocation, services, user_tokens
from .apps import valid_client_id
from .connections import Connection
from .errors import Forbidden, NotFound

SCOPE_CONNECTION_READ = "gov.user.oauth.connection:read"
SCOPE_CONNECTION_WRITE = "gov.user.oauth.connection:write"
NOT_FOUND = "No connection exists with that app."
USERS_ONLY = "Only a user's access token may be used here."


def require_user(authorization: str | None, scope: str) -> dict[str, Any]:
    """The verified claims of a user's access token carrying ``scope`` (RFC 6750 401/403 otherwise);
    a client's own token is ``403``."""
    claims = bearer.require(authorization, scope)
    if user_tokens.GRANT_ID_CLAIM not in claims:
        raise Forbidden(USERS_ONLY, detail=f"client token of {claims.get('client_id')} on a user route")
    return claims


def caller(authorization: str | None, scope: str) -> str:
    """The user id of the caller."""
    return str(require_user(authorization, scope)["sub"])


def render_many(connections: list[Connection]) -> dict[str, Any]:
    return {"connections": [c.render() for c in connections]}


def _live(user_id: str) -> list[Connection]:
    user = services.user_store().get(user_id)
    return [c for c in services.connection_store().for_user(user_id) if c.valid_for(user)]


def list_connections(user_id: str, amount: int, offset: int) -> list[Connection]:
    """The page ``[offset, offset + amount)`` of the user's connections in force, most recently used first."""
    ordered = sorted(_live(user_id), key=lambda c: (-c.access_time, c.client_id))
    return ordered[offset:offset + amount]


def find(user_id: str, client_id: str) -> Connection | None:
    if not valid_client_id(client_id):
        return None  # such an id can never have been stored
    connection = services.connection_store().get(user_id, client_id)
    if connection is None or not connection.valid_for(services.user_store().get(user_id)):
        return None
    return connection


def get(user_id: str, client_id: str) -> Connection:
    connection = find(user_id, client_id)
    if connection is None:
        raise NotFound(NOT_FOUND)
    return connection


def delete(user_id: str, client_id: str) -> None:
    """End the user's connection to ``client_id`` and every token issued from it."""
    if find(user_id, client_id) is None or not revocation.revoke_connection(user_id, client_id):
        raise NotFound(NOT_FOUND)
