"""Revoked access tokens (RFC 7009 §2 for self-contained tokens): a ``jti`` denylist.

A row lives exactly as long as the token it revokes (TTL = the token's ``exp``); readers check the
expiry themselves because DynamoDB deletes expired rows late.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import clock
from .store import ENTITY, PK, SK, TTL_ATTRIBUTE, Compare, ConditionFailed, ItemStore, NotExists, Operation, Put, any_of


class Denylist(Protocol):
    def revoke_op(self, jti: str, expires_at: int) -> Operation: ...

    def revoke(self, jti: str, expires_at: int, *, also: Sequence[Operation] = ()) -> bool: ...

    def is_revoked(self, jti: str) -> bool: ...


def denied_key(jti: str) -> tuple[str, str]:
    """The key of the denylist row of ``jti``."""
    return f"REVOKED#{jti}", "REVOKED"


class ItemDenylist:
    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def revoke_op(self, jti: str, expires_at: int) -> Operation:
        """The denylist write; it fails while the ``jti`` is already denied, so a token is revoked (and
        announced) once even when two revocations race."""
        return Put({PK: denied_key(jti)[0], SK: denied_key(jti)[1], ENTITY: "revoked_token", "jti": jti,
                    TTL_ATTRIBUTE: expires_at},
                   condition=any_of(NotExists(), Compare(TTL_ATTRIBUTE, "<=", clock.now())))

    def revoke(self, jti: str, expires_at: int, *, also: Sequence[Operation] = ()) -> bool:
        """Deny ``jti`` until ``expires_at``; ``also`` (e.g. the revocation event) commits with it.
        False, with nothing written, when the token was already revoked."""
        try:
            self._items.write(self.revoke_op(jti, expires_at), *also)
        except ConditionFailed as exc:
            if exc.index in (None, 0):
                return False
            raise
        return True

    def is_revoked(self, jti: str) -> bool:
        row = self._items.get(*denied_key(jti))
        return row is not None and row[TTL_ATTRIBUTE] > clock.now()
