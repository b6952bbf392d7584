"""Stored records (clients, users, connections) as frozen dataclasses with the few pydantic-style
methods the code uses (``model_dump``, ``model_copy``, ``model_validate``, ``model_fields``).

Not pydantic models: almost every function reads one of these on its first request, and pydantic's
import and model building cost about a third of a cold start (issue 8). Their input is validated
before it is stored (request models in :mod:`latchkey.client_metadata`, :mod:`latchkey.useradmin`,
our own writes); what a record does on construction is normalise what storage gives back: lists
become tuples, DynamoDB's Decimals become int, enum values their enum, per the annotations. An
unknown field is a TypeError, a missing required one too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


def plain(value: Any) -> Any:
    """DynamoDB's Decimals inside nested values: whole ones become int, others float."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@cache
def _converters(cls: type) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(cls).items():
        if name.startswith("_") or typing.get_origin(hint) is ClassVar:
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1
        kind = args[0] if optional else hint
        if typing.get_origin(kind) is tuple:
            result[name] = lambda v: v if isinstance(v, tuple) else tuple(v or ())
        elif kind is bool:
            result[name] = bool
        elif kind is int:
            result[name] = lambda v: v if type(v) is int else int(v)
        elif isinstance(kind, type) and issubclass(kind, Enum):
            result[name] = lambda v, k=kind: v if isinstance(v, k) else k(v)
        elif typing.get_origin(kind) is dict or kind is dict:
            result[name] = plain
    return result


class _FieldNames:
    def __get__(self, obj: Any, cls: type) -> dict[str, Any]:
        return {f.name: f for f in dataclasses.fields(cls)}


class Record:
    """Mixin for ``@dataclass(frozen=True)`` records."""

    model_fields = _FieldNames()

    # fields that must be given although a default (-1) keeps them after fields with defaults
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        missing = [name for name in self.REQUIRED if getattr(self, name) == -1]
        if missing:
            raise TypeError(f"{type(self).__name__} needs {', '.join(missing)}")
        for name, convert in _converters(type(self)).items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, convert(value))

    def model_dump(self, mode: str = "python", include: set[str] | None = None,
                   exclude: set[str] | None = None) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if (include is None or f.name in include) and f.name not in (exclude or ())}
        if mode == "json":
            data = {k: list(v) if isinstance(v, tuple) else v.value if isinstance(v, Enum) else v
                    for k, v in data.items()}
        return data

    def model_copy(self: R, *, update: dict[str, Any] | None = None) -> R:
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]

    @classmethod
    def model_validate(cls: type[R], data: dict[str, Any]) -> R:
        return cls(**data)

    @classmethod
    def from_stored(cls: type[R], item: dict[str, Any]) -> R:
        """The record in a stored item (the item's key and index attributes are left out)."""
        names = cls.model_fields
        return cls(**{k: v for k, v in item.items() if k in names})
