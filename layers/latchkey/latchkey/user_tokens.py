"""Tokens a user grants an app (authorization code and refresh grants): issuing them and checking them.

Issuing (:func:`issue`) signs an RFC 9068 access token whose ``sub`` is the user and which carries the
connection's ``grant_id`` (plus ``auth_time`` and ``sid``), an ID Token when ``openid`` was granted,
and a refresh token when ``offline_access`` was granted to an app registered for ``refresh_token``.
It returns the writes that must commit with the grant's own (the refresh token row, the connection's
``access_time`` and ``oauthTokenGenerated``), so nothing is issued half-way.

Checking (:func:`grant_is_live`): an access token with a ``grant_id`` is good only while its user exists
and is active, the app exists, and the user's connection to the app still has that ``grant_id`` in the
user's current generation. All three rows come back in one ``BatchGetItem``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import clock, refresh_tokens, rfc9068, services
from .clients import Client
from .connections import Connection
from .events import EventName, build_event, outbox_put
from .oidc import OFFLINE_ACCESS, OPENID, id_token
from .rfc6749.grants import TokenResponse, scope_string
from .store import PK, SK, Operation
from .users import User, user_key

GRANT_ID_CLAIM = "grant_id"
# The app whose connection the grant_id belongs to, when it is not the token's client_id (a token
# obtained by token exchange, RFC 8693, for another app still dies with the user's original consent).
GRANT_CLIENT_CLAIM = "grant_client_id"


@dataclass(frozen=True, slots=True)
class Issued:
    response: TokenResponse
    writes: tuple[Operation, ...]
    jti: str
    refresh_hash: str | None = None
    family_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def issue(*, client: Client, user: User, connection: Connection, scopes: Iterable[str], auth_time: int,
          sid: str, nonce: str | None = None, refresh_family: str | None = None,
          refresh_scopes: Iterable[str] | None = None, refresh_family_created_at: int | None = None) -> Issued:
    """``refresh_scopes``: the scope of the refresh token when it differs from the access token's (a
    narrowed refresh: RFC 6749 §6, the new refresh token's scope "MUST be identical" to the old one's).

    The refresh token expires after the app's idle lifetime, but never after its family's absolute end
    (:func:`latchkey.refresh_tokens.lifetimes`): a rotation passes ``refresh_family`` and the family's
    first issue ``refresh_family_created_at``; without them a new family starts now."""
    settings = services.settings()
    granted = tuple(sorted(set(scopes)))
    kept = granted if refresh_scopes is None else tuple(sorted(set(refresh_scopes)))
    now = clock.now()
    ttl = min(client.access_token_ttl or settings.access_token_ttl, settings.access_token_ttl)
    extra = {GRANT_ID_CLAIM: connection.grant_id, "auth_time": auth_time}
    if sid:
        extra["sid"] = sid
    access = rfc9068.issue(services.key_ring(), issuer=settings.issuer, alg=settings.access_token_alg,
                           client_id=client.client_id, subject=user.user_id, audience=settings.issuer,
                           scopes=granted, ttl=ttl, extra=extra, now=now)
    body: dict[str, Any] = {}
    writes: list[Operation] = []
    refresh_hash = family_id = None
    if OFFLINE_ACCESS in kept and "refresh_token" in client.grant_types:
        absolute, idle = refresh_tokens.lifetimes(client, settings)
        started = now if refresh_family is None or refresh_family_created_at is None else refresh_family_created_at
        value, row, put = services.refresh_token_store().new_op(
            client_id=client.client_id, user_id=user.user_id, scope=scope_string(kept),
            grant_id=connection.grant_id, auth_time=auth_time, sid=sid,
            ttl=max(1, min(now + idle, started + absolute) - now), now=now, family_id=refresh_family,
            family_created_at=started)
        body["refresh_token"] = value
        refresh_hash, family_id = row.token_hash, row.family_id
        writes.append(put)
    if OPENID in granted:
        body["id_token"] = id_token.issue(
            services.key_ring(), issuer=settings.issuer, client=client, user=user, scopes=granted,
            auth_time=auth_time, nonce=nonce, sid=sid, access_token=access.token, ttl=ttl, now=now)
    writes.append(services.connection_store().touch_op(user.user_id, client.client_id, now))
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=client.client_id,
                        user_id=user.user_id, session_id=sid, response_type="code")
    writes.append(outbox_put(event, ttl=settings.event_ttl, now=now))
    response = TokenResponse(access_token=access.token, expires_in=access.expires_in,
                             scope=access.claims["scope"], extra=body)
    return Issued(response=response, writes=tuple(writes), jti=access.jti, refresh_hash=refresh_hash,
                  family_id=family_id, claims=access.claims)


@dataclass(frozen=True, slots=True)
class LiveGrant:
    user: User
    client: Client
    connection: Connection


def _grant_keys(user_id: str, client_id: str) -> list[tuple[str, str]]:
    return [user_key(user_id), (f"CLIENT#{client_id}", "CLIENT"), (f"USER#{user_id}", f"CONNECTION#{client_id}")]


def read_ahead_keys(claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every item checking the access token with ``claims`` reads: its denylist row and its grant (a user's
    token) or its client (a client's token). ``claims`` may be unverified: the keys only say what to read."""
    from .denylist import denied_key

    jti, client_id, sub = claims.get("jti"), claims.get("client_id"), claims.get("sub")
    if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in (jti, client_id, sub)):
        return []
    keys = [denied_key(str(jti)), (f"CLIENT#{client_id}", "CLIENT")]
    if claims.get(GRANT_ID_CLAIM) is not None:
        grant_client = claims.get(GRANT_CLIENT_CLAIM, client_id)
        if isinstance(grant_client, str):
            keys += _grant_keys(str(sub), grant_client)
    return keys


def peek_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, NOT verified: only to decide what to read ahead; {} when unreadable."""
    import json

    from .crypto.b64 import b64url_decode

    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16384:
        return {}
    try:
        payload = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def load_grant(user_id: str, client_id: str, grant_id: str) -> LiveGrant | None:
    """The user, app and connection behind ``grant_id``, if the grant is still in force."""
    keys = _grant_keys(user_id, client_id)
    rows = {(item[PK], item[SK]): item for item in services.item_store().get_many(keys)}
    user_row, client_row, connection_row = (rows.get(key) for key in keys)
    if user_row is None or client_row is None or connection_row is None:
        return None
    user, connection = User.from_item(user_row), Connection.from_item(connection_row)
    if not connection.valid_for(user) or connection.grant_id != grant_id:
        return None
    return LiveGrant(user=user, client=Client.from_item(client_row), connection=connection)


def grant_is_live(claims: Mapping[str, Any]) -> bool:
    """For a verified access token: True unless it is a user's token whose grant has ended."""
    grant_id = claims.get(GRANT_ID_CLAIM)
    if grant_id is None:
        return True  # a client's own token (client_credentials): no user grant behind it
    client_id = claims.get(GRANT_CLIENT_CLAIM, claims["client_id"])
    if client_id != claims["client_id"] and services.client_store().get(str(claims["client_id"])) is None:
        return False  # an exchanged token (RFC 8693) also dies with the app that holds it
    return load_grant(str(claims["sub"]), str(client_id), str(grant_id)) is not None
