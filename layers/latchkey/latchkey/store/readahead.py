"""Reading ahead within one request: many keys in one ``BatchGetItem`` instead of one ``GetItem`` each.

A hot path that knows early which items it will read (introspection: the caller, the denylist row, the
token's grant; a refresh: the token row, the user and the consent) calls :func:`prefetch` once; later
``get``/``get_many`` calls of the same keys inside the same request are answered from what it read,
so a request costs one read round trip instead of three to five (issue 8's DynamoDB budget).

- The memo lives only for one request (:func:`request_scope`, entered by the HTTP glue for every
  invocation); outside a scope :func:`prefetch` does nothing and reads go to the store.
- A write through the store drops the keys it touches from the memo, so a read after a write inside the
  same request sees the store again.
- ``BatchGetItem`` here is strongly consistent like ``GetItem`` (:mod:`latchkey.store.dynamodb`).
- ``on_write`` callbacks let process caches (the client cache) drop entries whose items are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from . import Check, Item, ItemStore, Operation

Key = tuple[str, str]
_memo: ContextVar[dict[Key, Item | None] | None] = ContextVar("latchkey_readahead", default=None)


@contextmanager
def request_scope() -> Iterator[None]:
    """Reads ahead are kept until the end of this block (one request)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _operation_key(op: Operation) -> Key | None:
    item = getattr(op, "item", None)
    if isinstance(item, dict):
        return item.get("pk"), item.get("sk")
    pk, sk = getattr(op, "pk", None), getattr(op, "sk", None)
    return (pk, sk) if isinstance(pk, str) and isinstance(sk, str) else None


class ReadAheadStore:
    """An :class:`~latchkey.store.ItemStore` that answers prefetched keys from the request's memo."""

    def __init__(self, inner: ItemStore) -> None:
        self.inner = inner
        self._on_write: list[Callable[[Key], None]] = []

    def on_write(self, callback: Callable[[Key], None]) -> None:
        self._on_write.append(callback)

    def prefetch(self, keys: Iterable[Key]) -> None:
        memo = _memo.get()
        if memo is None:
            return
        missing = [key for key in dict.fromkeys(keys) if key not in memo]
        if not missing:
            return
        found = {(item["pk"], item["sk"]): item for item in self.inner.get_many(missing)}
        for key in missing:
            memo[key] = found.get(key)

    def get(self, pk: str, sk: str) -> Item | None:
        memo = _memo.get()
        if memo is not None and (pk, sk) in memo:
            item = memo[(pk, sk)]
            return dict(item) if item is not None else None
        return self.inner.get(pk, sk)

    def get_many(self, keys: Sequence[Key]) -> list[Item]:
        memo = _memo.get()
        if memo is None:
            return self.inner.get_many(keys)
        unique = list(dict.fromkeys(keys))
        missing = [key for key in unique if key not in memo]
        fetched = {(item["pk"], item["sk"]): item for item in self.inner.get_many(missing)} if missing else {}
        rows = [memo[key] if key in memo else fetched.get(key) for key in unique]
        return [dict(row) for row in rows if row is not None]

    def query(self, pk: str, **kwargs: Any) -> list[Item]:
        return self.inner.query(pk, **kwargs)

    def write(self, *operations: Operation) -> None:
        memo = _memo.get()
        try:
            self.inner.write(*operations)
        finally:  # also when it fails: a failed condition means the item is not what we read
            for op in operations:
                if (key := _operation_key(op)) is None:
                    continue
                if memo is not None:
                    memo.pop(key, None)
                if not isinstance(op, Check):  # a condition check changes nothing
                    for callback in self._on_write:
                        callback(key)

    def __getattr__(self, name: str) -> Any:  # backend extras (e.g. the memory store's change log)
        return getattr(self.inner, name)
