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

from . import clock, ratelimit, services
from .ratelimit import Counter, CounterKey

MAX_DELAY = 60
__all__ = ["Counter", "MAX_DELAY", "clear_user", "record_failure", "retry_after"]


def _user_key(username: str) -> CounterKey:
    return CounterKey(f"LOGINFAIL#USER#{ratelimit.digest(username)}", "LOGINFAIL", "login_failures")


def _address_key(address: str) -> CounterKey:
    return CounterKey(f"LOGINFAIL#ADDR#{address[:ratelimit.MAX_ADDRESS]}", "LOGINFAIL", "login_failures")


def _wait(counter: Counter | None, limit: int, now: int, *, slow_down: bool) -> int:
    """Seconds until ``counter`` allows another attempt (0: now)."""
    settings = services.settings()
    if counter is None:
        return 0
    if locked := ratelimit.locked_for(counter, limit, now):
        return locked
    if slow_down and counter.failures >= settings.login_slowdown_after:
        delay = min(MAX_DELAY, 2 ** (counter.failures - settings.login_slowdown_after))
        return max(0, counter.last_failure + delay - now)
    return 0


def retry_after(username: str, address: str) -> int:
    """0 when a sign-in attempt may proceed, else the seconds to wait."""
    settings, now = services.settings(), clock.now()
    user = _wait(ratelimit.read(_user_key(username), now), settings.login_max_failures, now, slow_down=True)
    by_address = _wait(ratelimit.read(_address_key(address), now), settings.login_max_address_failures, now,
                       slow_down=False)
    return max(user, by_address)


def record_failure(username: str, address: str) -> None:
    ratelimit.record((_user_key(username), _address_key(address)), window=services.settings().login_failure_window,
                     now=clock.now())


def clear_user(username: str) -> None:
    ratelimit.clear(_user_key(username))
