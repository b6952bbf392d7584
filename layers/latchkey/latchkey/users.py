"""Users: one item per user plus a username reservation item, written in one transaction so two
sign-ups cannot take the same (case-insensitive) username.

``generation`` is the user's revocation counter. Sessions, connections (and through them every token)
record the generation they were made in and are valid only while it is the user's current one, so
"end every session and revoke every token" is one conditional increment of this number, however many
rows the user has (a DynamoDB transaction holds at most 100). The stale rows are cleaned up afterwards,
best effort, and expire by TTL in any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from .records import Record
from .store import (
    ENTITY,
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    AttrMissing,
    Condition,
    ConditionFailed,
    Delete,
    Exists,
    ItemStore,
    NotExists,
    Operation,
    Put,
    Update,
    all_of,
    any_of,
    eq,
)

USERS_INDEX_PK = "USERS"


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True)
class User(Record):
    """A user account (a :class:`~latchkey.records.Record`)."""

    user_id: str
    username: str
    password_hash: str
    email: str = ""
    email_verified: bool = False
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    picture: str = ""
    profile: str = ""
    status: UserStatus = UserStatus.ACTIVE
    generation: int = 0
    created_at: int = -1  # required: -1 means "not given"
    updated_at: int = -1

    REQUIRED = ("created_at", "updated_at")

    @property
    def active(self) -> bool:
        return self.status is UserStatus.ACTIVE

    def to_item(self) -> dict[str, Any]:
        return {PK: f"USER#{self.user_id}", SK: "USER", ENTITY: "user", GSI1PK: USERS_INDEX_PK,
                GSI1SK: self.username.casefold(), **self.model_dump(mode="json")}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> User:
        return cls.from_stored(item)


class UsernameTaken(Exception):
    pass


def user_key(user_id: str) -> tuple[str, str]:
    return f"USER#{user_id}", "USER"


def _username_key(username: str) -> tuple[str, str]:
    return f"USERNAME#{username.casefold()}", "USERNAME"


class UserStore(Protocol):
    def get(self, user_id: str) -> User | None: ...

    def get_by_username(self, username: str) -> User | None: ...

    def create(self, user: User, *, also: Sequence[Operation] = ()) -> None: ...

    def replace(self, user: User, *, also: Sequence[Operation] = ()) -> None: ...

    def list(self, amount: int, offset: int) -> list[User]: ...

    def delete(self, user: User, *, also: Sequence[Operation] = ()) -> None: ...

    def bump_generation_op(self, user: User, **changes: Any) -> Operation: ...


class ItemUserStore:
    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def get(self, user_id: str) -> User | None:
        item = self._items.get(f"USER#{user_id}", "USER")
        return User.from_item(item) if item else None

    def get_by_username(self, username: str) -> User | None:
        reservation = self._items.get(*_username_key(username))
        return self.get(reservation["user_id"]) if reservation else None

    def create(self, user: User, *, also: Sequence[Operation] = ()) -> None:
        pk, sk = _username_key(user.username)
        try:
            self._items.write(
                Put({PK: pk, SK: sk, ENTITY: "username", "user_id": user.user_id}, condition=NotExists()),
                Put(user.to_item(), condition=NotExists()), *also)
        except ConditionFailed as exc:
            if exc.index in (None, 0):
                raise UsernameTaken(user.username) from exc
            raise

    def replace(self, user: User, *, also: Sequence[Operation] = ()) -> None:
        """Overwrite an existing user (the username is fixed; renaming is a separate operation). Fails
        with ConditionFailed if the user changed generation since read: writing the old generation
        back would bring revoked sessions and tokens back to life."""
        self._items.write(Put(user.to_item(), condition=all_of(Exists(), _same_generation(user))), *also)

    def list(self, amount: int, offset: int) -> list[User]:
        """The page ``[offset, offset + amount)`` of users ordered by username (GSI ``gsi1``)."""
        items = self._items.query(USERS_INDEX_PK, index="gsi1", limit=offset + amount)
        return [User.from_item(item) for item in items[offset:offset + amount]]

    def delete(self, user: User, *, also: Sequence[Operation] = ()) -> None:
        """Remove the user and their username reservation (``also`` joins the transaction)."""
        self._items.write(Delete(*user_key(user.user_id), condition=Exists()),
                          Delete(*_username_key(user.username)), *also)

    def bump_generation_op(self, user: User, **changes: Any) -> Operation:
        """The write that moves ``user`` to the next generation (ending every session and token it
        holds), with optional attribute ``changes``; it fails if the user changed generation since read."""
        return Update(*user_key(user.user_id), set={**changes, "generation": user.generation + 1},
                      condition=all_of(Exists(), _same_generation(user)))


def _same_generation(user: User) -> Condition:
    """The stored user is still in the generation ``user`` was read in."""
    same = eq("generation", user.generation)
    if user.generation == 0:
        return any_of(same, AttrMissing("generation"))  # rows written before the counter existed
    return same
