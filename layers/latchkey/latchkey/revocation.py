"""Ending what a user holds: every session, connection and token, or one app's connection.

- :func:`revoke_user` (governor's ``PUT /user/id/{id}/revoke``, and disabling a user): one transaction
  moves the user to the next generation (:mod:`latchkey.users`) and writes one ``oauthTokenRevoked``;
  from that moment every session, connection, access token and refresh token of the user is refused.
  Deleting a user (:func:`delete_user`) removes the row instead, with the same event.
- :func:`revoke_connection` (``DELETE /connection/id/{id}``): the connection row and one
  ``oauthTokenRevoked`` for that app, in one transaction; the app's tokens for the user die with the
  connection's ``grant_id``.

Afterwards :func:`cleanup` deletes the dead rows (sessions, connections, refresh tokens) in small
batches. It is best effort: correctness never depends on it (the generation / ``grant_id`` checks do),
and TTLs remove whatever it misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import services
from .events import EventName, build_event, outbox_put
from .observability import logger
from .store import ConditionFailed, Operation
from .users import User

BATCH = 25


def _revoked_event(user_id: str, client_id: str = "") -> Operation:
    settings = services.settings()
    event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace=settings.namespace,
                        parent_namespace=settings.parent_namespace, client_id=client_id, user_id=user_id)
    return outbox_put(event, ttl=settings.event_ttl)


def revoke_user(user: User, *, client_id: str = "", **changes: Any) -> None:
    """End every session and token of ``user`` (optionally changing attributes, e.g. ``status``), with
    one ``oauthTokenRevoked`` whose ``clientId`` is ``client_id``, the client acting (events/asyncapi.yaml
    requires one). Raises :class:`latchkey.store.ConditionFailed` if the user changed generation (was
    revoked) concurrently or no longer exists."""
    store = services.user_store()
    services.item_store().write(store.bump_generation_op(user, **changes), _revoked_event(user.user_id, client_id))
    _tidy(user.user_id, below_generation=user.generation + 1)


def delete_user(user: User, *, client_id: str = "") -> None:
    """Delete ``user`` and their username, with one ``oauthTokenRevoked`` (``clientId``: the client
    acting); then clean up their rows."""
    services.user_store().delete(user, also=(_revoked_event(user.user_id, client_id),))
    _tidy(user.user_id)


def revoke_connection(user_id: str, client_id: str) -> bool:
    """Delete the user's connection to ``client_id`` with one ``oauthTokenRevoked``; False if there was
    none."""
    try:
        services.item_store().write(services.connection_store().delete_op(user_id, client_id),
                                    _revoked_event(user_id, client_id))
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            return False
        raise
    try:  # best effort, like _tidy: the tokens died with the connection's grant_id
        _delete_in_batches([services.refresh_token_store().delete_op(t.token_hash)
                            for t in services.refresh_token_store().for_user(user_id, client_id)])
    except Exception:  # noqa: BLE001
        logger.warning("cleanup after a connection revocation failed", extra={"user_id": user_id}, exc_info=True)
    return True


def cleanup_client(client_id: str) -> None:
    """After an app was deleted: remove its connections and their refresh tokens (already dead, since a
    user's token is honoured only while the app row exists), best effort."""
    connections, refresh = services.connection_store(), services.refresh_token_store()
    try:
        operations: list[Operation] = []
        for connection in connections.for_client(client_id):
            operations.append(connections.delete_op(connection.user_id, client_id, must_exist=False))
            operations += [refresh.delete_op(t.token_hash) for t in refresh.for_user(connection.user_id, client_id)]
        _delete_in_batches(operations)
    except Exception:  # noqa: BLE001 - best effort by design; TTLs remove what is left
        logger.warning("cleanup after an app deletion failed", extra={"client_id": client_id}, exc_info=True)


def cleanup(user_id: str, *, below_generation: int | None = None) -> None:
    """Delete the user's dead rows: sessions and connections made before ``below_generation`` (all of
    them when None, for a deleted user) and the refresh tokens of the connections deleted."""
    sessions, connections = services.session_store(), services.connection_store()
    refresh = services.refresh_token_store()

    def dead(generation: int) -> bool:
        return below_generation is None or generation < below_generation

    operations: list[Operation] = [sessions.delete_op(s) for s in sessions.for_user(user_id) if dead(s.generation)]
    stale = [c for c in connections.for_user(user_id) if dead(c.generation)]
    live_grants = {c.grant_id for c in connections.for_user(user_id)} - {c.grant_id for c in stale}
    operations += [connections.delete_op(c.user_id, c.client_id, must_exist=False) for c in stale]
    operations += [refresh.delete_op(t.token_hash) for t in refresh.for_user(user_id)
                   if t.grant_id not in live_grants]
    _delete_in_batches(operations)


def _tidy(user_id: str, *, below_generation: int | None = None) -> None:
    """:func:`cleanup` after a committed revocation: a failure there (a conflicting write, throttling) is
    logged, not raised, so the caller is not told that a revocation which did happen failed."""
    try:
        cleanup(user_id, below_generation=below_generation)
    except Exception:  # noqa: BLE001 - best effort by design; TTLs remove what is left
        logger.warning("cleanup after revocation failed", extra={"user_id": user_id}, exc_info=True)


def _delete_in_batches(operations: Sequence[Operation]) -> None:
    for start in range(0, len(operations), BATCH):
        services.item_store().write(*operations[start:start + BATCH])
