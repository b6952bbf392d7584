"""The refresh token grant (RFC 6749 §6), with rotation and reuse detection (RFC 9700 §4.14.2).

- The refresh token must exist, be unexpired, belong to the authenticated client (§6: "MUST ... ensure
  that the refresh token was issued to the authenticated client") and its family must be neither revoked
  nor past its absolute lifetime; else ``invalid_grant``.
- ``scope`` may narrow, never widen, the original grant (§6: "MUST NOT include any scope not originally
  granted"): ``invalid_scope``.
- The user must still be active and the connection still in force (the consent may have been revoked).
- Rotation: the old token is marked used by one transaction together with the new token row (same
  family, same absolute end: :mod:`latchkey.refresh_tokens`), the "family not revoked" check,
  ``access_time`` and ``oauthTokenGenerated`` (CONVENTIONS §5).
- Reuse grace (Hydra #1831/#3604): a used token may be redeemed again for ``REFRESH_TOKEN_REUSE_GRACE``
  seconds after its first use, so a client refreshing twice in parallel gets two good answers (tokens of
  the same family) rather than a revoked family. The transaction's condition is "used less than the
  grace ago", not a read. Two redemptions racing are serialised by the conditions: the loser reads the
  row again and becomes a grace redemption (or, after the window, a replay).
- A used token presented after the window is treated as theft (RFC 9700 §4.14.2): the whole family is
  revoked by one conditional write that also emits ``oauthTokenRevoked``, so concurrent replays announce
  it once; the answer is ``invalid_grant``, and every token of the family is refused from then on.
- A new ID Token is returned when ``openid`` is in scope (OIDC Core §12.2), without ``nonce``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .. import clock, refresh_tokens, services, user_tokens
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, TemporarilyUnavailable
from ..events import EventName, build_event, outbox_put
from ..refresh_tokens import RefreshToken, lifetimes
from ..store import ConditionFailed, WriteConflict
from .grants import Grant, TokenRequest, TokenResponse, register_grant

GRANT_TYPE = "refresh_token"
ATTEMPTS = 6  # reads + conditional writes; a race on the same token settles in two, DynamoDB conflicts in a few
CONFLICT_BACKOFF = 0.02  # seconds before retrying a write that collided with another transaction; doubles
RETRY_AFTER = "1"  # seconds a client told 503 temporarily_unavailable should wait

_T = TypeVar("_T")


def conflict_pause(attempt: int) -> None:
    """Wait before retrying a write DynamoDB cancelled for a TransactionConflict (another transaction on
    the same items): exponential, with jitter so the colliding requests do not collide again."""
    time.sleep(CONFLICT_BACKOFF * 2 ** attempt * (0.5 + random.random()))  # noqa: S311 (jitter)


def busy(detail: str) -> TemporarilyUnavailable:
    """503 temporarily_unavailable with ``Retry-After``: the request lost every retry to write conflicts."""
    return TemporarilyUnavailable(detail=detail, headers={"Retry-After": RETRY_AFTER})


def retry_conflicts(call: Callable[[], _T], what: str) -> _T:
    """``call()``, again (after :func:`conflict_pause`) while it raises :class:`WriteConflict`, for an
    operation that is safe to repeat: it reads what it needs again and its writes are conditional, so a
    cancelled transaction (which wrote nothing) leaves nothing to undo. :func:`busy` after ``ATTEMPTS``."""
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except WriteConflict:
            if attempt + 1 < ATTEMPTS:
                conflict_pause(attempt)
    raise busy(f"{what} lost {ATTEMPTS} write conflicts in a row")


def revoke_family(token: RefreshToken) -> bool:
    """Revoke ``token``'s whole family and announce it with one ``oauthTokenRevoked``, in one conditional
    write: False, with nothing written, when the family was already revoked."""
    settings = services.settings()
    event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=token.client_id,
                        user_id=token.user_id)
    store = services.refresh_token_store()
    try:
        services.item_store().write(store.revoke_family_op(token.family_id, settings.refresh_token_ttl, once=True),
                                    outbox_put(event, ttl=settings.event_ttl))
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            return False
        raise
    return True


def refresh_token(request: TokenRequest) -> TokenResponse:
    client, params = request.client, request.params
    value = params.get("refresh_token")
    if value is None:
        raise InvalidRequest("The refresh_token parameter is required.")
    services.prefetch(refresh_tokens.read_ahead_keys(value, client.client_id, services.secret_hash_key()))
    for attempt in range(ATTEMPTS):
        try:
            return _redeem(request, value)
        except ConditionFailed as exc:
            if exc.index == 1:  # the family is revoked (the transaction checks it; nothing reads it before)
                raise InvalidGrant(detail="refresh token family revoked") from None
            if exc.index != 0:
                raise
            # 0: the token was redeemed meanwhile (read it again: a grace redemption, or a replay)
        except WriteConflict:
            if attempt + 1 < ATTEMPTS:
                conflict_pause(attempt)
    raise busy(f"refresh of {client.client_id} lost {ATTEMPTS} races in a row")


def _redeem(request: TokenRequest, value: str) -> TokenResponse:
    """Reads (prefetched together) and one conditional transaction (ConditionFailed index 0: the old row,
    1: the family, which is checked only there)."""
    client, params = request.client, request.params
    store, settings = services.refresh_token_store(), services.settings()
    token = store.find(value)
    if token is None:
        raise InvalidGrant(detail="unknown or expired refresh token")
    if token.client_id != client.client_id:
        raise InvalidGrant(detail=f"refresh token of {token.client_id} presented by {client.client_id}")
    now = clock.now()
    absolute, _idle = lifetimes(client, settings)
    if token.family_end(absolute) <= now:
        raise InvalidGrant(detail="refresh token family past its absolute lifetime")
    grace = settings.refresh_token_reuse_grace
    if token.used_at is not None and now >= token.used_at + grace:
        revoked = revoke_family(token)
        raise InvalidGrant(detail=f"refresh token reused {now - token.used_at} s after its rotation; "
                                  + ("its family is revoked" if revoked else "its family was already revoked"))
    scope = params.get("scope")
    scopes = token.scopes if scope is None else frozenset(scope.split(" "))
    if not scopes <= token.scopes or "" in scopes:
        raise InvalidScope("The scope exceeds what was originally granted.")
    live = user_tokens.load_grant(token.user_id, client.client_id, token.grant_id)
    if live is None:
        raise InvalidGrant(detail="the user or their consent is no longer in force")
    issued = user_tokens.issue(client=client, user=live.user, connection=live.connection, scopes=scopes,
                               auth_time=token.auth_time, sid=token.sid, refresh_family=token.family_id,
                               refresh_scopes=token.scopes, refresh_family_created_at=token.family_start)
    moment = int(issued.claims["iat"])
    redeem = store.consume_op(token, moment) if token.used_at is None else store.grace_op(token, moment, grace)
    services.item_store().write(redeem, store.family_live_op(token.family_id), *issued.writes, *request.guard)
    return issued.response


GRANT = register_grant(Grant(grant_type=GRANT_TYPE, handler=refresh_token,
                             parameters=frozenset({"refresh_token", "scope"}), public_clients=True))
