"""A user's connections to apps (governor's ``/api/oauth/connection``): the consent a user gave one app.

One row per (user, app) under the user's partition, holding the granted ``scope``, governor's times
(``auth_time``, ``access_time``, ``creation_time``) and a random ``grant_id``. Every token issued from the
consent (access tokens carry ``grant_id`` as a claim; refresh tokens store it) is valid only while the
connection exists with that same ``grant_id`` in the user's current generation
(:mod:`latchkey.users`), so deleting the connection, or revoking the user, kills them all at once.

Consent is remembered here: a new authorization request whose scopes the connection already covers needs
no consent screen (unless ``prompt=consent``); asking for more scopes asks again and widens the grant.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .records import Record
from .store import ENTITY, GSI1PK, GSI1SK, PK, SK, Delete, Exists, ItemStore, Operation, Put, Update
from .users import User

SK_PREFIX = "CONNECTION#"


def _key(user_id: str, client_id: str) -> tuple[str, str]:
    return f"USER#{user_id}", f"{SK_PREFIX}{client_id}"


@dataclass(frozen=True)
class Connection(Record):
    """A user's consent to one app (a :class:`~latchkey.records.Record`)."""

    user_id: str
    client_id: str
    scope: str
    grant_id: str
    generation: int
    auth_time: int
    access_time: int
    creation_time: int

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def valid_for(self, user: User | None) -> bool:
        """Still in force: the user exists, is active and has not been revoked since."""
        return user is not None and user.active and user.user_id == self.user_id \
            and self.generation == user.generation

    def covers(self, scopes: Iterable[str]) -> bool:
        return set(scopes) <= self.scopes

    def render(self) -> dict[str, Any]:
        """governor's connection JSON."""
        return {"client_id": self.client_id, "scope": self.scope, "auth_time": self.auth_time,
                "access_time": self.access_time, "creation_time": self.creation_time}

    def to_item(self) -> dict[str, Any]:
        pk, sk = _key(self.user_id, self.client_id)
        return {PK: pk, SK: sk, ENTITY: "connection", GSI1PK: f"CLIENTCONN#{self.client_id}",
                GSI1SK: self.user_id, **self.model_dump()}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Connection:
        return cls.from_stored(item)


class ConnectionStore(Protocol):
    def get(self, user_id: str, client_id: str) -> Connection | None: ...

    def for_user(self, user_id: str) -> list[Connection]: ...

    def for_client(self, client_id: str) -> list[Connection]: ...

    def grant_op(self, user: User, client_id: str, scopes: Iterable[str], *, auth_time: int,
                 now: int) -> tuple[Connection, Operation]: ...

    def touch_op(self, user_id: str, client_id: str, now: int) -> Operation: ...

    def delete_op(self, user_id: str, client_id: str, *, must_exist: bool = True) -> Operation: ...


class ItemConnectionStore:
    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def get(self, user_id: str, client_id: str) -> Connection | None:
        item = self._items.get(*_key(user_id, client_id))
        return Connection.from_item(item) if item else None

    def for_user(self, user_id: str) -> list[Connection]:
        """Every connection row of the user, by client id (stale generations included: filter with
        :meth:`Connection.valid_for`)."""
        items = self._items.query(f"USER#{user_id}", sk_prefix=SK_PREFIX)
        return [Connection.from_item(item) for item in items]

    def for_client(self, client_id: str) -> list[Connection]:
        items = self._items.query(f"CLIENTCONN#{client_id}", index="gsi1")
        return [Connection.from_item(item) for item in items]

    def grant_op(self, user: User, client_id: str, scopes: Iterable[str], *, auth_time: int,
                 now: int) -> tuple[Connection, Operation]:
        """The connection after the user consents to ``scopes`` (widening a live connection, or a new
        one with a fresh ``grant_id``) and the write that stores it."""
        existing = self.get(user.user_id, client_id)
        if existing is not None and existing.valid_for(user):
            connection = existing.model_copy(update={
                "scope": " ".join(sorted(existing.scopes | set(scopes))), "auth_time": auth_time,
                "access_time": now})
        else:
            connection = Connection(user_id=user.user_id, client_id=client_id, scope=" ".join(sorted(set(scopes))),
                                    grant_id=secrets.token_hex(16), generation=user.generation,
                                    auth_time=auth_time, access_time=now, creation_time=now)
        return connection, Put(connection.to_item())

    def touch_op(self, user_id: str, client_id: str, now: int) -> Operation:
        """governor's ``access_time``: set whenever the connection's tokens are issued or used."""
        return Update(*_key(user_id, client_id), set={"access_time": now}, condition=Exists())

    def delete_op(self, user_id: str, client_id: str, *, must_exist: bool = True) -> Operation:
        return Delete(*_key(user_id, client_id), condition=Exists() if must_exist else None)
