"""Storage: one small item-level Protocol with two implementations, and the vocabulary to use it.

Latchkey keeps all state in one DynamoDB table (single-table design, see the comment block on
``Table`` in ``template.yaml``). Aggregate stores (signing keys, clients, users, the event outbox, ...)
are written against :class:`ItemStore`, which has a DynamoDB implementation
(:mod:`latchkey.store.dynamodb`) and an in-memory one (:mod:`latchkey.store.memory`);
``tests/contract`` runs the same tests against both.

Writes are lists of operations committed atomically by :meth:`ItemStore.write`: a state change and
its outbox events are one transaction (CONVENTIONS §5: single use is a condition, not a
read-then-write). Conditions are a tiny structured language that both backends evaluate identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Item = dict[str, Any]

PK, SK = "pk", "sk"
GSI1PK, GSI1SK = "gsi1pk", "gsi1sk"
TTL_ATTRIBUTE = "expires_at"  # epoch seconds; DynamoDB deletes late, so readers check it themselves
ENTITY = "entity"


# --- Conditions -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Exists:
    """The item exists."""


@dataclass(frozen=True, slots=True)
class NotExists:
    """The item does not exist."""


@dataclass(frozen=True, slots=True)
class Compare:
    """``attr <op> value`` where op is one of ``= <> < <= > >=``; a missing attribute fails (except ``<>``)."""

    attr: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in ("=", "<>", "<", "<=", ">", ">="):
            raise ValueError(f"unknown comparison {self.op!r}")


@dataclass(frozen=True, slots=True)
class AttrMissing:
    """The item exists without ``attr``, or does not exist."""

    attr: str


@dataclass(frozen=True, slots=True)
class All:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]


Condition = Exists | NotExists | Compare | AttrMissing | All | AnyOf


def eq(attr: str, value: Any) -> Compare:
    return Compare(attr, "=", value)


def all_of(*conditions: Condition) -> All:
    return All(tuple(conditions))


def any_of(*conditions: Condition) -> AnyOf:
    return AnyOf(tuple(conditions))


# --- Operations -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Put:
    item: Item
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """Set attributes, remove attributes and add to numbers on one item (creating it if absent)."""

    pk: str
    sk: str
    set: dict[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    add: dict[str, int] = field(default_factory=dict)
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    pk: str
    sk: str
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Check:
    pk: str
    sk: str
    condition: Condition


Operation = Put | Update | Delete | Check

MAX_OPERATIONS = 100  # DynamoDB TransactWriteItems limit


class ConditionFailed(Exception):
    """A write's condition did not hold; nothing was written. ``index`` is the failing operation."""

    def __init__(self, index: int | None = None) -> None:
        super().__init__(f"condition failed (operation {index})")
        self.index = index


class WriteConflict(Exception):
    """Another transaction touched the same items at the same time; nothing was written. Retry."""


class ItemStore(Protocol):
    """The item-level store every aggregate store is written against."""

    def get(self, pk: str, sk: str) -> Item | None:
        """The item, read strongly consistent, or None."""
        ...

    def query(self, pk: str, *, sk_prefix: str | None = None, index: str | None = None,
              limit: int | None = None, forward: bool = True) -> list[Item]:
        """Items of one partition (of the table or of ``index="gsi1"``), sorted by sort key."""
        ...

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        """The items that exist among ``keys`` (``(pk, sk)`` pairs), read strongly consistent, in the
        order of ``keys``; a key listed twice is read and returned once."""
        ...

    def write(self, *operations: Operation) -> None:
        """Apply every operation or none (raises :class:`ConditionFailed` / :class:`WriteConflict`)."""
        ...


def key_of(item: Item) -> tuple[str, str]:
    return item[PK], item[SK]


def check_batch(operations: tuple[Operation, ...]) -> None:
    if not operations:
        raise ValueError("nothing to write")
    if len(operations) > MAX_OPERATIONS:
        raise ValueError(f"at most {MAX_OPERATIONS} operations per transaction")
    keys = [(op.item[PK], op.item[SK]) if isinstance(op, Put) else (op.pk, op.sk) for op in operations]
    if len(set(keys)) != len(keys):
        raise ValueError("a transaction may touch each item once")  # DynamoDB's rule too
