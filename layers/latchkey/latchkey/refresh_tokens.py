"""Refresh tokens (RFC 6749 §1.5, §6): opaque ``lk_rt_...`` values stored only as a keyed hash.

A row records what the token may be exchanged for (client, user, scope, the connection's ``grant_id``,
the sign-in's ``auth_time`` and ``sid``) and its ``family_id``: every token rotated from the same first
issue shares it, so reuse of a rotated token can revoke the whole family. Rows live until
``expires_at`` (TTL); readers check the expiry themselves. Rotation marks a row ``used_at`` with one
conditional write (CONVENTIONS §5) rather than deleting it, so a replay is recognised.

Rows are indexed per user (``gsi1``: ``USERTOKENS#<user>`` / ``<client>#<hash>``) so revoking a user or one
of their connections can find and delete them.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from . import clock
from .crypto.secrets import keyed_hash, new_secret
from .store import (
    ENTITY,
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    TTL_ATTRIBUTE,
    AttrMissing,
    Compare,
    Delete,
    ItemStore,
    NotExists,
    Operation,
    Put,
    Update,
    all_of,
    eq,
)

PREFIX = "rt"


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    client_id: str
    user_id: str
    scope: str
    grant_id: str
    family_id: str
    auth_time: int
    sid: str
    created_at: int
    expires_at: int
    used_at: int | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def to_item(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("token_hash")
        data.pop("expires_at")
        if data["used_at"] is None:
            data.pop("used_at")
        return {PK: f"REFRESH#{self.token_hash}", SK: "REFRESH", ENTITY: "refresh_token",
                GSI1PK: f"USERTOKENS#{self.user_id}", GSI1SK: f"{self.client_id}#{self.token_hash}",
                TTL_ATTRIBUTE: self.expires_at, **data}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> RefreshToken:
        return cls(token_hash=item[PK].removeprefix("REFRESH#"), client_id=item["client_id"],
                   user_id=item["user_id"], scope=item["scope"], grant_id=item["grant_id"],
                   family_id=item["family_id"], auth_time=int(item["auth_time"]), sid=item.get("sid", ""),
                   created_at=int(item["created_at"]), expires_at=int(item[TTL_ATTRIBUTE]),
                   used_at=int(item["used_at"]) if item.get("used_at") is not None else None)


class RefreshTokenStore(Protocol):
    def new_op(self, *, client_id: str, user_id: str, scope: str, grant_id: str, auth_time: int, sid: str,
               ttl: int, now: int, family_id: str | None = None) -> tuple[str, RefreshToken, Operation]: ...

    def find(self, value: str) -> RefreshToken | None: ...

    def consume_op(self, token: RefreshToken, now: int) -> Operation: ...

    def delete_op(self, token_hash: str) -> Operation: ...

    def revoke_family_op(self, family_id: str, ttl: int) -> Operation: ...

    def family_revoked(self, family_id: str) -> bool: ...

    def for_user(self, user_id: str, client_id: str | None = None) -> list[RefreshToken]: ...


class ItemRefreshTokenStore:
    def __init__(self, items: ItemStore, hash_key: bytes) -> None:
        self._items = items
        self._key = hash_key

    def hash(self, value: str) -> str:
        return keyed_hash(self._key, value)

    def new_op(self, *, client_id: str, user_id: str, scope: str, grant_id: str, auth_time: int, sid: str,
               ttl: int, now: int, family_id: str | None = None) -> tuple[str, RefreshToken, Operation]:
        """A new refresh token: (the value, shown once; its row; the write storing it)."""
        value = new_secret(PREFIX)
        token = RefreshToken(token_hash=self.hash(value), client_id=client_id, user_id=user_id, scope=scope,
                             grant_id=grant_id, family_id=family_id or _secrets.token_hex(16),
                             auth_time=auth_time, sid=sid, created_at=now, expires_at=now + ttl)
        return value, token, Put(token.to_item(), condition=NotExists())

    def find(self, value: str) -> RefreshToken | None:
        """The row of an unexpired refresh token (used or not), or None."""
        if not value.startswith(f"lk_{PREFIX}_") or len(value) > 200:
            return None
        item = self._items.get(f"REFRESH#{self.hash(value)}", "REFRESH")
        if item is None:
            return None
        token = RefreshToken.from_item(item)
        return token if token.expires_at > clock.now() else None

    def consume_op(self, token: RefreshToken, now: int) -> Operation:
        """Mark the token used: succeeds once, only for its client and before it expires."""
        return Update(f"REFRESH#{token.token_hash}", "REFRESH", set={"used_at": now},
                      condition=all_of(AttrMissing("used_at"), eq("client_id", token.client_id),
                                       Compare(TTL_ATTRIBUTE, ">", now)))

    def delete_op(self, token_hash: str) -> Operation:
        return Delete(f"REFRESH#{token_hash}", "REFRESH")

    def revoke_family_op(self, family_id: str, ttl: int) -> Operation:
        """Mark a whole family revoked (outliving any token in it): no member can be redeemed again."""
        now = clock.now()
        return Put({PK: f"REFRESHFAMILY#{family_id}", SK: "REVOKED", ENTITY: "revoked_refresh_family",
                    "revoked_at": now, TTL_ATTRIBUTE: now + ttl})

    def family_revoked(self, family_id: str) -> bool:
        return self._items.get(f"REFRESHFAMILY#{family_id}", "REVOKED") is not None

    def for_user(self, user_id: str, client_id: str | None = None) -> list[RefreshToken]:
        items = self._items.query(f"USERTOKENS#{user_id}", index="gsi1",
                                  sk_prefix=f"{client_id}#" if client_id else None)
        return [RefreshToken.from_item(item) for item in items]
