"""Failure counters in the table, and a per-instance call limiter: the brute-force limits' shared parts.

**Failure counters** (:class:`CounterKey`, :func:`read`, :func:`record`, :func:`locked_for`): one row per
principal (a username, a client id, a source address) holding ``failures``, ``last_failure`` and a TTL set
by the first failure of a window. Within the window the count only grows; when the window ends the row
is stale (and DynamoDB's TTL removes it later), and the next failure starts a new window. A key is
*locked* while its count is at the limit, until its window ends. Users:

- :mod:`latchkey.lockout`: the hosted sign-in, per username and per address (``LOGIN_*``);
- :mod:`latchkey.rfc6749.client_auth`: failed client authentication at the token, revocation,
  introspection and device authorization endpoints, per client id and per address (``CLIENT_AUTH_*``).

Reading a counter is a plain ``get`` through the request's read-ahead memo, so a caller that names the
counter keys in its :func:`latchkey.services.prefetch` batch reads them in the same round trip.

**Call limiter** (:class:`WindowLimiter`): a fixed-window counter per key kept in the function
instance's memory, for limits on *every* call of a hot path (introspection), where a table write per call
would double the path's DynamoDB round trips. It limits what one instance serves; API Gateway's route
throttling (template.yaml) caps the whole route. See docs/security.md.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from . import services
from .store import (
    ENTITY,
    PK,
    SK,
    TTL_ATTRIBUTE,
    Compare,
    ConditionFailed,
    Delete,
    NotExists,
    Operation,
    Put,
    Update,
    WriteConflict,
    any_of,
)

RECORD_ATTEMPTS = 3

MAX_ADDRESS = 64  # characters of a source address kept in a key (an IPv6 address has at most 45)


@dataclass(frozen=True, slots=True)
class CounterKey:
    """Where a principal's failures are counted: the row's key and its ``entity`` name."""

    pk: str
    sk: str
    entity: str

    @property
    def key(self) -> tuple[str, str]:
        return self.pk, self.sk


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    failures: int
    last_failure: int
    window_ends: int


def digest(value: str) -> str:
    """A fixed-length, injection-free key part for a principal's name (case-folded)."""
    return hashlib.sha256(value.casefold().encode("utf-8")).hexdigest()


def address_part(address: str) -> str:
    return address[:MAX_ADDRESS] or "unknown"


def read(key: CounterKey, now: int) -> Counter | None:
    """The key's counter in its current window, or None (no failures, or the window is over)."""
    item = services.item_store().get(key.pk, key.sk)
    if item is None or int(item[TTL_ATTRIBUTE]) <= now:
        return None
    return Counter(key.pk, int(item["failures"]), int(item["last_failure"]), int(item[TTL_ATTRIBUTE]))


def locked_for(counter: Counter | None, limit: int, now: int) -> int:
    """Seconds until ``counter``'s window ends when it has reached ``limit``; 0 when not locked."""
    if counter is None or counter.failures < limit:
        return 0
    return max(1, counter.window_ends - now)


def failure_operation(key: CounterKey, counter: Counter | None, *, window: int, now: int) -> Operation:
    """The write that counts one more failure on ``key`` (``counter``: its current state, from :func:`read`)."""
    if counter is None:  # the first failure of a window (or a stale row DynamoDB has not yet removed)
        # conditional: two first failures at once must not both start the window (one would be lost)
        return Put({PK: key.pk, SK: key.sk, ENTITY: key.entity, "failures": 1, "last_failure": now,
                    TTL_ATTRIBUTE: now + window}, condition=any_of(NotExists(), Compare(TTL_ATTRIBUTE, "<=", now)))
    return Update(key.pk, key.sk, set={"last_failure": now}, add={"failures": 1})


def record(keys: Iterable[CounterKey], *, window: int, now: int) -> dict[CounterKey, Counter]:
    """Count one failure on each key, in one write; returns each key's counter after it. A window another
    request started meanwhile is read again and counted on (a few attempts)."""
    unique = list(dict.fromkeys(keys))
    for attempt in range(RECORD_ATTEMPTS):
        operations: list[Operation] = []
        after: dict[CounterKey, Counter] = {}
        for key in unique:
            counter = read(key, now)
            operations.append(failure_operation(key, counter, window=window, now=now))
            after[key] = Counter(key.pk, 1, now, now + window) if counter is None else \
                Counter(key.pk, counter.failures + 1, now, counter.window_ends)
        if not operations:
            return after
        try:
            services.item_store().write(*operations)
            return after
        except (ConditionFailed, WriteConflict):
            if attempt == RECORD_ATTEMPTS - 1:
                raise
    return {}


def clear(key: CounterKey) -> None:
    services.item_store().write(Delete(key.pk, key.sk))


class WindowLimiter:
    """At most ``limit`` calls per key in each fixed ``window`` of seconds, counted in this process.

    Keeps at most ``max_keys`` keys (the least recently started windows are dropped first), so a flood
    of distinct keys cannot grow the instance's memory.
    """

    def __init__(self, limit: int, window: int, *, max_keys: int = 4096) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._windows: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key -> (window start, calls)
        self._lock = threading.Lock()

    def hit(self, key: str, now: int) -> int:
        """Count a call; 0 when it is within the limit, else the seconds until the key's window ends."""
        if self.limit <= 0:  # 0 turns the limit off
            return 0
        with self._lock:
            start, calls = self._windows.get(key, (now, 0))
            if now >= start + self.window or now < start:
                start, calls = now, 0
            if calls >= self.limit:
                return max(1, start + self.window - now)
            self._windows[key] = (start, calls + 1)
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
            return 0
