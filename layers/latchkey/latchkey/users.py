"""Users: one item per user plus a username reservation item, written in one transaction so two
sign-ups cannot take the same (case-insensitive) username.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from .store import ENTITY, GSI1PK, GSI1SK, PK, SK, ConditionFailed, Exists, ItemStore, NotExists, Operation, Put


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class User(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

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
    created_at: int
    updated_at: int

    def to_item(self) -> dict[str, Any]:
        return {PK: f"USER#{self.user_id}", SK: "USER", ENTITY: "user", GSI1PK: "USERS",
                GSI1SK: self.username.casefold(), **self.model_dump(mode="json")}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> User:
        return cls.model_validate({k: v for k, v in item.items() if k in cls.model_fields})


class UsernameTaken(Exception):
    pass


def _username_key(username: str) -> tuple[str, str]:
    return f"USERNAME#{username.casefold()}", "USERNAME"


class UserStore(Protocol):
    def get(self, user_id: str) -> User | None: ...

    def get_by_username(self, username: str) -> User | None: ...

    def create(self, user: User, *, also: Sequence[Operation] = ()) -> None: ...

    def replace(self, user: User, *, also: Sequence[Operation] = ()) -> None: ...


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
        """Overwrite an existing user (the username is fixed; renaming is a separate operation)."""
        self._items.write(Put(user.to_item(), condition=Exists()), *also)
