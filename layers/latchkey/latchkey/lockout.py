"""Brute-force protection for the sign-in form: failures counted per username and per source address.

Counters are table rows with a TTL (``LOGIN_FAILURE_WINDOW``). Within a window:

- after ``LOGIN_SLOWDOWN_AFTER`` failures for a username, each further attempt must wait 1, 2, 4 ... up
  to 60 s after the previous failure (slowing a guesser down without locking a user out for a typo; an
  address shared by many people, behind NAT, is not slowed, only locked at its own, higher limit);
- at ``LOGIN_MAX_FAILURES`` (per username) or ``LOGIN_MAX_ADDRESS_FAILURES`` (per address) the key is
  locked until the window ends.

A refused attempt does not look at the password at all. The username counter is keyed by the name as
typed (case-folded) whether or not such a user exists, so the answers never reveal which usernames are
real; a successful sign-in clears its username's counter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import clock, services
from .store import ENTITY, PK, SK, TTL_ATTRIBUTE, Delete, Put, Update

MAX_DELAY = 60


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    failures: int
    last_failure: int
    window_ends: int


def _user_key(username: str) -> str:
    digest = hashlib.sha256(username.casefold().encode("utf-8")).hexdigest()
    return f"LOGINFAIL#USER#{digest}"


def _address_key(address: str) -> str:
    return f"LOGINFAIL#ADDR#{address[:64]}"


def _read(key: str, now: int) -> Counter | None:
    item = services.item_store().get(key, "LOGINFAIL")
    if item is None or int(item[TTL_ATTRIBUTE]) <= now:
        return None
    return Counter(key, int(item["failures"]), int(item["last_failure"]), int(item[TTL_ATTRIBUTE]))


def _wait(counter: Counter | None, limit: int, now: int, *, slow_down: bool) -> int:
    """Seconds until ``counter`` allows another attempt (0: now)."""
    settings = services.settings()
    if counter is None:
        return 0
    if counter.failures >= limit:
        return max(1, counter.window_ends - now)
    if slow_down and counter.failures >= settings.login_slowdown_after:
        delay = min(MAX_DELAY, 2 ** (counter.failures - settings.login_slowdown_after))
        return max(0, counter.last_failure + delay - now)
    return 0


def retry_after(username: str, address: str) -> int:
    """0 when a sign-in attempt may proceed, else the seconds to wait."""
    settings, now = services.settings(), clock.now()
    return max(_wait(_read(_user_key(username), now), settings.login_max_failures, now, slow_down=True),
               _wait(_read(_address_key(address), now), settings.login_max_address_failures, now, slow_down=False))


def record_failure(username: str, address: str) -> None:
    settings, now = services.settings(), clock.now()
    for key in (_user_key(username), _address_key(address)):
        if _read(key, now) is None:  # first failure of a window (or a stale row DynamoDB has not yet removed)
            services.item_store().write(Put({PK: key, SK: "LOGINFAIL", ENTITY: "login_failures", "failures": 1,
                                             "last_failure": now, TTL_ATTRIBUTE: now + settings.login_failure_window}))
        else:
            services.item_store().write(Update(key, "LOGINFAIL", set={"last_failure": now}, add={"failures": 1}))


def clear_user(username: str) -> None:
    services.item_store().write(Delete(_user_key(username), "LOGINFAIL"))
