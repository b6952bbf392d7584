"""Refresh tokens (RFC 6749 §1.5, §6): opaque ``lk_rt_...`` values stored only as a keyed hash.

A row records what the token may be exchanged for (client, user, scope, the connection's ``grant_id``,
the sign-in's ``auth_time`` and ``sid``) and its ``family_id``: every token rotated from the same first
issue shares it, so reuse of a rotated token can revoke the whole family. Each row also carries
``family_created_at`` (the first issue), so rotation can never extend the family's absolute lifetime.

Lifetimes (:func:`lifetimes`): a family ends ``REFRESH_TOKEN_TTL`` after its first issue (an app's
``refresh_token_ttl`` may shorten it); each token expires ``REFRESH_TOKEN_IDLE_TTL`` after it was issued
(an app's ``refresh_token_idle_ttl`` may shorten it), never after its family's end. Rows live until
``expires_at`` (TTL); readers check the expiry themselves.

Rotation marks a row ``used_at`` with one conditional write (CONVENTIONS §5) rather than deleting it, so
a replay is recognised. A used row stays redeemable for ``REFRESH_TOKEN_REUSE_GRACE`` seconds (a client
refreshing twice in parallel, Hydra #1831/#3604): :meth:`ItemRefreshTokenStore.grace_op` is the
condition "used less than that long ago". A family is revoked by one marker row
(``REFRESHFAMILY#<id>``); every redemption checks its absence in the same transaction.

The value ends with ``.<base64url(user id)>``, a locator: the token endpoint reads the row, the user and
their consent in one ``BatchGetItem`` (:func:`read_ahead_keys`) instead of one after the other. It is only
a hint for what to read: the row's own ``user_id`` decides, so a forged locator only reads the wrong
items (and the redemption then reads the right ones). It discloses nothing new: the user id is the
``sub`` of every access token issued with it.

Rows are indexed per user (``gsi1``: ``USERTOKENS#<user>`` / ``<client>#<hash>``) so revoking a user or one
of their connections can find and delete them.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import clock
from .crypto.b64 import b64url_decode, b64url_encode
from .crypto.secrets import keyed_hash, new_secret
from .store import (
    ENTITY,
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    TTL_ATTRIBUTE,
    AttrMissing,
    Check,
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

if TYPE_CHECKING:
    from .clients import Client
    from .config import Settings

PREFIX = "rt"
VALUE_PREFIX = f"lk_{PREFIX}_"


def lifetimes(client: Client, settings: Settings) -> tuple[int, int]:
    """(absolute, idle) seconds for the refresh token families of ``client``: the app's own values,
    capped by the deployment's ``REFRESH_TOKEN_TTL`` / ``REFRESH_TOKEN_IDLE_TTL``."""
    absolute = min(client.refresh_token_ttl or settings.refresh_token_ttl, settings.refresh_token_ttl)
    idle = min(client.refresh_token_idle_ttl or settings.refresh_token_idle_ttl, settings.refresh_token_idle_ttl)
    return absolute, idle


MAX_VALUE_LENGTH = 512


def user_hint(value: str) -> str | None:
    """The user id the value's locator names, if it has a readable one."""
    _, dot, locator = value.rpartition(".")
    if not dot or not locator or len(locator) > 300:
        return None
    try:
        return b64url_decode(locator).decode("utf-8") or None
    except (ValueError, UnicodeDecodeError):
        return None


def read_ahead_keys(value: str, client_id: str, hash_key: bytes) -> list[tuple[str, str]]:
    """Everything a redemption of ``value`` by ``client_id`` reads: the row, and with a locator the user,
    their consent to the client and the client (:func:`latchkey.user_tokens.load_grant`)."""
    if not looks_like(value) or len(value) > MAX_VALUE_LENGTH:
        return []
    keys = [(f"REFRESH#{keyed_hash(hash_key, value)}", "REFRESH")]
    if (user_id := user_hint(value)) is not None:
        keys += [(f"USER#{user_id}", "USER"), (f"USER#{user_id}", f"CONNECTION#{client_id}"),
                 (f"CLIENT#{client_id}", "CLIENT")]
    return keys


def looks_like(value: str) -> bool:
    """The value has the refresh token prefix (RFC 7009/7662: no need for ``token_type_hint``)."""
    return value.startswith(VALUE_PREFIX)


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
    family_created_at: int = 0  # the family's first issue; 0 only for rows written before it was stored
    used_at: int | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    @property
    def family_start(self) -> int:
        return self.family_created_at or self.created_at

    def family_end(self, absolute: int) -> int:
        """When the family dies, for an absolute lifetime of ``absolute`` seconds."""
        return self.family_start + absolute

    def usable_until(self, grace: int) -> int:
        """The first second the token can no longer be redeemed (unused: its expiry; used: the end of the
        reuse grace window, ``used_at + grace``, at most its expiry)."""
        return self.expires_at if self.used_at is None else min(self.expires_at, self.used_at + grace)

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
                   family_created_at=int(item.get("family_created_at", item["created_at"])),
                   used_at=int(item["used_at"]) if item.get("used_at") is not None else None)


class RefreshTokenStore(Protocol):
    def new_op(self, *, client_id: str, user_id: str, scope: str, grant_id: str, auth_time: int, sid: str,
               ttl: int, now: int, family_id: str | None = None,
               family_created_at: int | None = None) -> tuple[str, RefreshToken, Operation]: ...

    def find(self, value: str) -> RefreshToken | None: ...

    def consume_op(self, token: RefreshToken, now: int) -> Operation: ...

    def grace_op(self, token: RefreshToken, now: int, grace: int) -> Operation: ...

    def family_live_op(self, family_id: str) -> Operation: ...

    def delete_op(self, token_hash: str) -> Operation: ...

    def revoke_family_op(self, family_id: str, ttl: int, *, once: bool = False) -> Operation: ...

    def family_revoked(self, family_id: str) -> bool: ...

    def for_user(self, user_id: str, client_id: str | None = None) -> list[RefreshToken]: ...


class ItemRefreshTokenStore:
    def __init__(self, items: ItemStore, hash_key: bytes) -> None:
        self._items = items
        self._key = hash_key

    def hash(self, value: str) -> str:
        return keyed_hash(self._key, value)

    def new_op(self, *, client_id: str, user_id: str, scope: str, grant_id: str, auth_time: int, sid: str,
               ttl: int, now: int, family_id: str | None = None,
               family_created_at: int | None = None) -> tuple[str, RefreshToken, Operation]:
        """A new refresh token living ``ttl`` seconds: (the value, shown once; its row; the write storing it).
        Without ``family_id`` it starts a family (created ``now``); with it, it joins that family, whose
        first issue ``family_created_at`` it carries on."""
        value = f"{new_secret(PREFIX)}.{b64url_encode(user_id.encode('utf-8'))}"
        token = RefreshToken(token_hash=self.hash(value), client_id=client_id, user_id=user_id, scope=scope,
                             grant_id=grant_id, family_id=family_id or _secrets.token_hex(16),
                             auth_time=auth_time, sid=sid, created_at=now, expires_at=now + ttl,
                             family_created_at=now if family_id is None or family_created_at is None
                             else family_created_at)
        return value, token, Put(token.to_item(), condition=NotExists())

    def find(self, value: str) -> RefreshToken | None:
        """The row of an unexpired refresh token (used or not), or None."""
        if not looks_like(value) or len(value) > MAX_VALUE_LENGTH:
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

    def grace_op(self, token: RefreshToken, now: int, grace: int) -> Operation:
        """Redeem an already used token again within the reuse grace window: the condition that it was
        used less than ``grace`` seconds before ``now`` (and is still this client's, unexpired). It leaves
        ``used_at`` alone, so the window never slides."""
        return Check(f"REFRESH#{token.token_hash}", "REFRESH",
                     condition=all_of(Compare("used_at", ">", now - grace), eq("client_id", token.client_id),
                                      Compare(TTL_ATTRIBUTE, ">", now)))

    def family_live_op(self, family_id: str) -> Operation:
        """The condition that the family is not revoked, to commit with a redemption (so a revocation
        racing a rotation wins or loses as a whole)."""
        return Check(f"REFRESHFAMILY#{family_id}", "REVOKED", condition=NotExists())

    def delete_op(self, token_hash: str) -> Operation:
        return Delete(f"REFRESH#{token_hash}", "REFRESH")

    def revoke_family_op(self, family_id: str, ttl: int, *, once: bool = False) -> Operation:
        """Mark a whole family revoked (outliving any token in it): no member can be redeemed again.
        ``once``: the write fails (:class:`ConditionFailed`) when the family is already revoked, so the
        revocation, and the event committed with it, happens once even under concurrent replays."""
        now = clock.now()
        return Put({PK: f"REFRESHFAMILY#{family_id}", SK: "REVOKED", ENTITY: "revoked_refresh_family",
                    "revoked_at": now, TTL_ATTRIBUTE: now + ttl}, condition=NotExists() if once else None)

    def family_revoked(self, family_id: str) -> bool:
        return self._items.get(f"REFRESHFAMILY#{family_id}", "REVOKED") is not None

    def for_user(self, user_id: str, client_id: str | None = None) -> list[RefreshToken]:
        items = self._items.query(f"USERTOKENS#{user_id}", index="gsi1",
                                  sk_prefix=f"{client_id}#" if client_id else None)
        return [RefreshToken.from_item(item) for item in items]
