"""Revoked access tokens (RFC 7009 §2 for self-contained tokens): a ``jti`` denylist.

A row lives exactly as long as the token it revokes (TTL = the token's ``exp``); readers check the
expiry themselves because DynamoDB deletes expired rows late.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import clock
from .store import ENTITY, PK, SK, TTL_ATTRIBUTE, ItemStore, Operation, Put


class Denylist(Protocol):
    def revoke_op(self, jti: str, expires_at: int) -> Operation: ...

    def revoke(self, jti: str, expires_at: int, *, also: Sequence[Operation] = ()) -> None: ...

    def is_revoked(self, jti: str) -> bool: ...


class ItemDenylist:
    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def revoke_op(self, jti: str, expires_at: int) -> Operation:
        return Put({PK: f"REVOKED#{jti}", SK: "REVOKED", ENTITY: "revoked_token", "jti": jti,
                    TTL_ATTRIBUTE: expires_at})

    def revoke(self, jti: str, expires_at: int, *, also: Sequence[Operation] = ()) -> None:
        """Deny ``jti`` until ``expires_at``; ``also`` (e.g. the revocation event) commits with it."""
        self._items.write(self.revoke_op(jti, expires_at), *also)

    def is_revoked(self, jti: str) -> bool:
        row = self._items.get(f"REVOKED#{jti}", "REVOKED")
        return row is not None and row[TTL_ATTRIBUTE] > clock.now()
