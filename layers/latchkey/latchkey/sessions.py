"""Hosted-login sessions: who is signed in on Latchkey's pages in this browser.

The browser holds a random session id in a cookie; the table holds only its keyed hash
(:func:`latchkey.crypto.secrets.keyed_hash`), with a TTL. A session is valid while it has not expired
and was made in the user's current generation (:mod:`latchkey.users`): revoking, disabling or deleting
the user ends it without touching the row.

The cookie (RFC 6265bis): ``HttpOnly``, ``SameSite=Lax`` (sent on the top-level GET that brings the user
back from the app, never on cross-site POSTs), ``Path=/`` and, when the issuer is https, ``Secure`` and
the ``__Host-`` name prefix (which browsers honour only for Secure, host-only, Path=/ cookies; on a
plain-http localhost issuer the prefix would make the browser drop the cookie).
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass
from typing import Any, Protocol

from . import clock
from .crypto.secrets import keyed_hash, new_secret
from .store import ENTITY, GSI1PK, GSI1SK, PK, SK, TTL_ATTRIBUTE, Delete, ItemStore, NotExists, Operation, Put
from .users import User

PREFIX = "ss"
COOKIE = "latchkey_session"


def cookie_name(issuer: str) -> str:
    return f"__Host-{COOKIE}" if issuer.startswith("https://") else COOKIE


def cookie_attributes(issuer: str) -> str:
    secure = "; Secure" if issuer.startswith("https://") else ""
    return f"Path=/; HttpOnly; SameSite=Lax{secure}"


def set_cookie(issuer: str, value: str, max_age: int) -> str:
    return f"{cookie_name(issuer)}={value}; Max-Age={max_age}; {cookie_attributes(issuer)}"


def clear_cookie(issuer: str) -> str:
    return f"{cookie_name(issuer)}=; Max-Age=0; {cookie_attributes(issuer)}"


def read_cookie(cookies: list[str] | None, name: str) -> str | None:
    """The value of cookie ``name`` among API Gateway v2's ``cookies`` (``["a=1", "b=2"]``)."""
    for cookie in cookies or ():
        for part in cookie.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name and value:
                return value
    return None


@dataclass(frozen=True, slots=True)
class Session:
    session_hash: str
    sid: str  # public identifier: OIDC ``sid`` and the events' ``sessionId``; never the cookie value
    user_id: str
    generation: int
    auth_time: int
    created_at: int
    expires_at: int

    def valid_for(self, user: User | None, now: int | None = None) -> bool:
        moment = clock.now() if now is None else now
        return (user is not None and user.active and user.user_id == self.user_id
                and user.generation == self.generation and self.expires_at > moment)

    def to_item(self) -> dict[str, Any]:
        return {PK: f"SESSION#{self.session_hash}", SK: "SESSION", ENTITY: "session",
                GSI1PK: f"USERSESSIONS#{self.user_id}", GSI1SK: f"{self.created_at:012d}#{self.sid}",
                "sid": self.sid, "user_id": self.user_id, "generation": self.generation,
                "auth_time": self.auth_time, "created_at": self.created_at, TTL_ATTRIBUTE: self.expires_at}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Session:
        return cls(session_hash=item[PK].removeprefix("SESSION#"), sid=item["sid"], user_id=item["user_id"],
                   generation=int(item["generation"]), auth_time=int(item["auth_time"]),
                   created_at=int(item["created_at"]), expires_at=int(item[TTL_ATTRIBUTE]))


class SessionStore(Protocol):
    def create_op(self, user: User, *, ttl: int, now: int) -> tuple[str, Session, Operation]: ...

    def find(self, cookie_value: str | None) -> Session | None: ...

    def delete_op(self, session: Session) -> Operation: ...

    def for_user(self, user_id: str) -> list[Session]: ...


class ItemSessionStore:
    def __init__(self, items: ItemStore, hash_key: bytes) -> None:
        self._items = items
        self._key = hash_key

    def create_op(self, user: User, *, ttl: int, now: int) -> tuple[str, Session, Operation]:
        """A new session for ``user`` signed in at ``now``: (cookie value, session, the write)."""
        value = new_secret(PREFIX)
        session = Session(session_hash=keyed_hash(self._key, value), sid=_secrets.token_hex(16),
                          user_id=user.user_id, generation=user.generation, auth_time=now, created_at=now,
                          expires_at=now + ttl)
        return value, session, Put(session.to_item(), condition=NotExists())

    def find(self, cookie_value: str | None) -> Session | None:
        """The unexpired session the cookie names (not yet checked against the user)."""
        if not cookie_value or not cookie_value.startswith(f"lk_{PREFIX}_") or len(cookie_value) > 200:
            return None
        item = self._items.get(f"SESSION#{keyed_hash(self._key, cookie_value)}", "SESSION")
        if item is None:
            return None
        session = Session.from_item(item)
        return session if session.expires_at > clock.now() else None

    def delete_op(self, session: Session) -> Operation:
        return Delete(f"SESSION#{session.session_hash}", "SESSION")

    def for_user(self, user_id: str) -> list[Session]:
        return [Session.from_item(item) for item in self._items.query(f"USERSESSIONS#{user_id}", index="gsi1")]
