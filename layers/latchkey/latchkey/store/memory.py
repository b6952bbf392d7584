"""In-memory :class:`~latchkey.store.ItemStore` for unit tests and ``make dev --store memory``.

It mirrors DynamoDB's semantics that Latchkey relies on: atomic multi-item writes with conditions,
strongly consistent reads, sorted partitions and a GSI, and a change log shaped like a DynamoDB
Stream with ``NEW_IMAGE`` (so the local event relay works without DynamoDB Local).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import (
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    All,
    AnyOf,
    AttrMissing,
    Check,
    Compare,
    Condition,
    ConditionFailed,
    Delete,
    Exists,
    Item,
    NotExists,
    Operation,
    Put,
    Update,
    check_batch,
)


@dataclass(frozen=True, slots=True)
class Change:
    """One stream record: ``INSERT``/``MODIFY``/``REMOVE`` with the new image (None on remove)."""

    sequence: int
    event_name: str
    keys: tuple[str, str]
    new_image: Item | None


def _matches(item: Item | None, condition: Condition | None) -> bool:
    if condition is None:
        return True
    if isinstance(condition, Exists):
        return item is not None
    if isinstance(condition, NotExists):
        return item is None
    if isinstance(condition, AttrMissing):
        return item is None or condition.attr not in item
    if isinstance(condition, All):
        return all(_matches(item, c) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(_matches(item, c) for c in condition.conditions)
    if isinstance(condition, Compare):
        if item is None or condition.attr not in item:
            return condition.op == "<>"
        left, right = item[condition.attr], condition.value
        try:
            return {
                "=": lambda: left == right, "<>": lambda: left != right, "<": lambda: left < right,
                "<=": lambda: left <= right, ">": lambda: left > right, ">=": lambda: left >= right,
            }[condition.op]()
        except TypeError:
            return False  # DynamoDB: comparing different types is simply false
    raise TypeError(f"unknown condition {condition!r}")


class MemoryItemStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Item] = {}
        self._lock = threading.RLock()
        self._changes: list[Change] = []
        self._sequence = 0

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, pk: str, sk: str) -> Item | None:
        with self._lock:
            item = self._items.get((pk, sk))
            return copy.deepcopy(item) if item is not None else None

    def query(self, pk: str, *, sk_prefix: str | None = None, index: str | None = None,
              limit: int | None = None, forward: bool = True) -> list[Item]:
        if index not in (None, "gsi1"):
            raise ValueError(f"unknown index {index!r}")
        pk_attr, sk_attr = (GSI1PK, GSI1SK) if index else (PK, SK)
        with self._lock:
            found = [
                item for item in self._items.values()
                if item.get(pk_attr) == pk and sk_attr in item
                and (sk_prefix is None or str(item[sk_attr]).startswith(sk_prefix))
            ]
            found.sort(key=lambda item: (item[sk_attr], item[PK], item[SK]), reverse=not forward)
            if limit is not None:
                found = found[:limit]
            return copy.deepcopy(found)

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        with self._lock:
            unique = dict.fromkeys((pk, sk) for pk, sk in keys)
            return [copy.deepcopy(self._items[key]) for key in unique if key in self._items]

    # -- writes --------------------------------------------------------------------------------------
    def write(self, *operations: Operation) -> None:
        check_batch(operations)
        with self._lock:
            for index, op in enumerate(operations):
                key = (op.item[PK], op.item[SK]) if isinstance(op, Put) else (op.pk, op.sk)
                if not _matches(self._items.get(key), op.condition):
                    raise ConditionFailed(index if len(operations) > 1 else None)
            for op in operations:
                self._apply(op)

    def _apply(self, op: Operation) -> None:
        if isinstance(op, Check):
            return
        if isinstance(op, Put):
            key = (op.item[PK], op.item[SK])
            existed = key in self._items
            self._items[key] = copy.deepcopy(op.item)
            self._record("MODIFY" if existed else "INSERT", key)
        elif isinstance(op, Delete):
            key = (op.pk, op.sk)
            if self._items.pop(key, None) is not None:
                self._record("REMOVE", key)
        elif isinstance(op, Update):
            key = (op.pk, op.sk)
            existed = key in self._items
            item: dict[str, Any] = copy.deepcopy(self._items.get(key, {PK: op.pk, SK: op.sk}))
            item.update(copy.deepcopy(op.set))
            for name in op.remove:
                item.pop(name, None)
            for name, delta in op.add.items():
                item[name] = item.get(name, 0) + delta
            self._items[key] = item
            self._record("MODIFY" if existed else "INSERT", key)

    def _record(self, event_name: str, key: tuple[str, str]) -> None:
        self._sequence += 1
        image = copy.deepcopy(self._items[key]) if event_name != "REMOVE" else None
        self._changes.append(Change(self._sequence, event_name, key, image))

    # -- stream --------------------------------------------------------------------------------------
    def changes_after(self, sequence: int, limit: int = 100) -> list[Change]:
        """Stream records with a sequence number above ``sequence`` (oldest first)."""
        with self._lock:
            return [c for c in self._changes if c.sequence > sequence][:limit]
