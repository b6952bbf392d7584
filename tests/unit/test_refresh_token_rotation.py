"""Refresh token rotation (RFC 9700 §4.14.2) with a reuse grace window, absolute and idle lifetimes per
app, revocation (RFC 7009) and introspection (RFC 7662) of refresh tokens, through the local gateway.

Parallel refreshes with the same token inside ``REFRESH_TOKEN_REUSE_GRACE`` all succeed (Hydra
#1831/#3604); a use after the window revokes the family, announced by exactly one ``oauthTokenRevoked``.
The clock (``latchkey.clock.now``) is frozen and moved by hand where the test is about time.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from latchkey import apps, clock, revocation, services
from latchkey.errors import InvalidGrant, LatchkeyError
from latchkey.events import OUTBOX_ENTITY, EventName
from latchkey.rfc6749 import refresh_token as grant
from latchkey.rfc6749 import token_endpoint
from latchkey.store import ENTITY, PK, Check, WriteConflict
from tests.flow_support import Agent, Response, add_app, add_user, basic, flow_stack
from tests.unit import grant_support
from tests.unit.oauth_support import RecordingStore, check_openapi

PASSWORD = "correct horse battery"
FULL = "openid profile offline_access games:read"
GRACE = 5  # REFRESH_TOKEN_REUSE_GRACE's default
IDLE, ABSOLUTE = 14 * 86400, 30 * 86400  # REFRESH_TOKEN_IDLE_TTL, REFRESH_TOKEN_TTL defaults
INACTIVE = {"active": False}


@pytest.fixture
def store():
    return RecordingStore()


@pytest.fixture
def base(monkeypatch, store):
    """The local stack on the recording store (signing keys from tests.flow_support's shared pool)."""
    yield from flow_stack(monkeypatch, store=store)


@pytest.fixture
def now(monkeypatch):
    """A frozen clock: set ``now["t"]`` to move it."""
    moment = {"t": int(time.time())}
    monkeypatch.setattr(clock, "now", lambda: moment["t"])
    return moment


@pytest.fixture
def user(base):
    return add_user("alice", PASSWORD, name="Alice Liddell")


@pytest.fixture
def app(base):
    return add_app(scope="games:read")


@pytest.fixture
def other(base):
    return add_app(name="Other App", scope="games:read")


# --- helpers -----------------------------------------------------------------------------------------------
def sign_in(base: str, app: tuple[str, str | None], scope: str = FULL) -> dict[str, Any]:
    return grant_support.sign_in(base, app[0], app[1], scope=scope)


def _client_form(app: tuple[str, str | None], form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    client_id, secret = app
    if secret is None:
        return {**form, "client_id": client_id}, {}
    return form, {"Authorization": basic(client_id, secret)}


def refresh(base: str, app: tuple[str, str | None], value: str) -> Response:
    return grant_support.refresh(base, app[0], app[1], value)


def revoke(base: str, app: tuple[str, str | None], value: str, **extra: str) -> Response:
    form, headers = _client_form(app, {"token": value, **extra})
    return Agent(base).request("POST", "/api/oauth/revoke", form=form, headers=headers)


def introspect(base: str, value: str, *, app: tuple[str, str | None] | None = None, bearer: str | None = None,
               **extra: str) -> dict[str, Any]:
    if bearer is not None:
        form, headers = {"token": value, **extra}, {"Authorization": f"Bearer {bearer}"}
    else:
        assert app is not None
        form, headers = _client_form(app, {"token": value, **extra})
    answer = Agent(base).request("POST", "/api/oauth/introspect", form=form, headers=headers)
    assert answer.status == 200, answer.text
    openapi(answer, "introspect")
    return answer.json()


def assert_error(answer: Response, error: str, status: int = 400) -> None:
    assert (answer.status, answer.json()["error"]) == (status, error), answer.text


def refused(base: str, app: tuple[str, str | None], *values: str) -> None:
    for value in values:
        assert_error(refresh(base, app, value), "invalid_grant")


def in_parallel(count: int, call: Any) -> list[Any]:
    """``call()`` from ``count`` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(_index: int) -> Any:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def redeem_together(monkeypatch, app: tuple[str, str], value: str, count: int, *, hold: str = "find") -> list[Any]:
    """The token endpoint's pipeline (what the Lambda handler calls) from ``count`` threads at once, each
    held after its first ``hold`` read (``find``: the token row; ``family_revoked``) until every thread
    has made it, so their conditional writes really race. (The local gateway runs one invocation of a
    function at a time, like one Lambda instance; this is several instances.) Errors are returned."""
    tokens = services.refresh_token_store()
    barrier, real, local = threading.Barrier(count), getattr(tokens, hold), threading.local()

    def held(*args: Any) -> Any:
        found = real(*args)
        if not getattr(local, "held", False):
            local.held = True
            barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(tokens, hold, held)

    def run() -> Any:
        try:
            return token_endpoint.token({"grant_type": "refresh_token", "refresh_token": value}, basic(*app))
        except LatchkeyError as exc:
            return exc

    try:
        return in_parallel(count, run)
    finally:
        monkeypatch.setattr(tokens, hold, real)


class _Headers(dict):
    """Response headers (lower-cased by the agent), looked up case-insensitively."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(str(name).lower())

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())


@dataclass
class _Answer:
    status: int
    headers: _Headers
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def openapi(answer: Response, endpoint: str) -> None:
    """The answer matches what openapi.yaml documents for the route and status."""
    check_openapi(endpoint, _Answer(answer.status, _Headers(answer.headers), answer.text))


def events(store: RecordingStore, name: EventName) -> list[dict[str, Any]]:
    return [e for e in store.events() if e["name"] == str(name)]


def revoked(store: RecordingStore) -> list[tuple[str, str]]:
    return [(e["clientId"], e["userId"]) for e in events(store, EventName.OAUTH_TOKEN_REVOKED)]


def family_revocations(store: RecordingStore) -> list[tuple[Any, ...]]:
    """The transactions that wrote a family revocation marker."""
    return [ops for ops in store.writes
            if any(getattr(op, "item", {}).get(ENTITY) == "revoked_refresh_family" for op in ops)]


def settings(**values: Any) -> None:
    services.override(settings=services.settings().replace(**values))


# --- the grace window ----------------------------------------------------------------------------------------
def test_parallel_refreshes_within_the_grace_window_all_succeed(base, store, user, app):
    first = sign_in(base, app)
    answers = in_parallel(4, lambda: refresh(base, app, first["refresh_token"]))
    assert [a.status for a in answers] == [200] * 4, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert len({b["refresh_token"] for b in bodies}) == 4 and len({b["access_token"] for b in bodies}) == 4
    for body in bodies:  # every answer is good: access tokens active, refresh tokens rotate in turn
        assert introspect(base, body["access_token"], app=app)["active"] is True
        assert introspect(base, body["refresh_token"], app=app)["active"] is True
        assert refresh(base, app, body["refresh_token"]).status == 200
    assert revoked(store) == []  # not theft
    rows = store.rows("refresh_token")
    assert len(rows) == 1 + 4 + 4 and len({row["family_id"] for row in rows}) == 1  # one family
    generated = events(store, EventName.OAUTH_TOKEN_GENERATED)
    assert len(generated) == 1 + 4 + 4  # the code exchange and every refresh
    assert {(e["clientId"], e["userId"]) for e in generated} == {(app[0], user.user_id)}


def test_racing_redemptions_inside_the_window_all_succeed(base, store, monkeypatch, user, app):
    """Four redemptions read the row unused; one conditional write wins, the three others fail on the
    row's condition, read it again and go through as grace redemptions."""
    first = sign_in(base, app)
    tokens, reads = services.refresh_token_store(), []
    real = tokens.find
    monkeypatch.setattr(tokens, "find", lambda value: reads.append(value) or real(value))
    results = redeem_together(monkeypatch, app, first["refresh_token"], 4)
    assert all(isinstance(r, dict) for r in results), results
    assert len(reads) == 4 + 3  # every loser read the row a second time
    assert len({r["refresh_token"] for r in results}) == 4
    for result in results:
        assert refresh(base, app, result["refresh_token"]).status == 200
    assert revoked(store) == []
    assert len(events(store, EventName.OAUTH_TOKEN_GENERATED)) == 1 + 4 + 4


def test_racing_replays_after_the_window_revoke_and_announce_once(base, store, monkeypatch, now, user, app):
    """Four replays all read the family as not revoked; the revocation is conditional, so one of them
    revokes it and announces it."""
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    now["t"] += GRACE
    results = redeem_together(monkeypatch, app, first["refresh_token"], 4, hold="family_revoked")
    assert all(isinstance(r, InvalidGrant) for r in results), results
    assert revoked(store) == [(app[0], user.user_id)]
    assert len(family_revocations(store)) == 1
    refused(base, app, second["refresh_token"])


def test_a_second_use_inside_the_window_is_not_theft(base, store, now, user, app):
    first = sign_in(base, app)
    t0 = now["t"]
    second = refresh(base, app, first["refresh_token"]).json()
    now["t"] = t0 + GRACE - 1  # the last second of the window
    third = refresh(base, app, first["refresh_token"])
    assert third.status == 200, third.text
    third = third.json()
    assert third["refresh_token"] != second["refresh_token"]
    assert claims(third["access_token"])["grant_id"] == claims(second["access_token"])["grant_id"]
    assert refresh(base, app, second["refresh_token"]).status == 200
    assert refresh(base, app, third["refresh_token"]).status == 200
    assert revoked(store) == []


def test_a_replay_after_the_window_revokes_the_whole_family_once(base, store, now, user, app):
    first = sign_in(base, app)
    t0 = now["t"]
    second = refresh(base, app, first["refresh_token"]).json()  # first used at t0
    now["t"] = t0 + GRACE - 1
    parallel = refresh(base, app, first["refresh_token"]).json()  # inside the window: same family
    fourth = refresh(base, app, second["refresh_token"]).json()
    other_family = sign_in(base, app)
    before = len(events(store, EventName.OAUTH_TOKEN_GENERATED))

    now["t"] = t0 + GRACE  # the window is over
    assert_error(refresh(base, app, first["refresh_token"]), "invalid_grant")
    assert revoked(store) == [(app[0], user.user_id)]
    [write] = family_revocations(store)  # the marker and the event: one transaction
    assert {op.item[ENTITY] for op in write} == {"revoked_refresh_family", OUTBOX_ENTITY}
    # every token of the family is refused now, those issued inside the window too
    refused(base, app, first["refresh_token"], second["refresh_token"], parallel["refresh_token"],
            fourth["refresh_token"])
    assert len(revoked(store)) == 1  # refusals of a revoked family announce nothing more
    assert len(events(store, EventName.OAUTH_TOKEN_GENERATED)) == before
    assert refresh(base, app, other_family["refresh_token"]).status == 200  # another sign-in: another family


def test_concurrent_replays_after_the_window_revoke_and_announce_once(base, store, now, user, app):
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    now["t"] += GRACE
    answers = in_parallel(4, lambda: refresh(base, app, first["refresh_token"]))
    assert [(a.status, a.json()["error"]) for a in answers] == [(400, "invalid_grant")] * 4
    assert revoked(store) == [(app[0], user.user_id)]
    assert len(family_revocations(store)) == 1
    refused(base, app, second["refresh_token"])


def test_without_a_grace_window_a_second_use_is_theft(base, store, now, user, app):
    settings(refresh_token_reuse_grace=0)
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    assert_error(refresh(base, app, first["refresh_token"]), "invalid_grant")  # the same second
    refused(base, app, second["refresh_token"])
    assert revoked(store) == [(app[0], user.user_id)]


def test_a_longer_configured_window_is_honoured(base, store, now, user, app):
    settings(refresh_token_reuse_grace=30)
    first = sign_in(base, app)
    t0 = now["t"]
    refresh(base, app, first["refresh_token"])
    now["t"] = t0 + 29
    assert refresh(base, app, first["refresh_token"]).status == 200
    now["t"] = t0 + 30
    assert_error(refresh(base, app, first["refresh_token"]), "invalid_grant")
    assert len(revoked(store)) == 1


# --- races settled by the transaction's conditions ------------------------------------------------------------
def test_a_redemption_that_lost_the_race_is_redeemed_again_within_the_window(base, store, monkeypatch, user, app):
    """The row read said "unused", but another request used it before this write: the write's condition
    fails, the row is read again, and the redemption goes through as a grace redemption."""
    first = sign_in(base, app)
    tokens = services.refresh_token_store()
    stale = tokens.find(first["refresh_token"])
    assert refresh(base, app, first["refresh_token"]).status == 200
    real, reads = tokens.find, []

    def find(value: str):
        reads.append(value)
        return stale if len(reads) == 1 else real(value)

    monkeypatch.setattr(tokens, "find", find)
    answer = refresh(base, app, first["refresh_token"])
    assert answer.status == 200, answer.text
    assert len(reads) == 2
    assert revoked(store) == []


def test_a_rotation_of_a_revoked_family_fails_in_its_transaction(base, store, monkeypatch, user, app):
    """The family is checked only by the redemption's transaction (no read of its own): a revocation
    committed before the rotation makes it fail as a whole."""
    first = sign_in(base, app)
    tokens = services.refresh_token_store()
    row = tokens.find(first["refresh_token"])
    rows = len(store.rows("refresh_token"))
    services.item_store().write(tokens.revoke_family_op(row.family_id, 3600))
    real, attempted = store.write, []

    def write(*operations):
        attempted.append(operations)
        return real(*operations)

    monkeypatch.setattr(store, "write", write)
    assert_error(refresh(base, app, first["refresh_token"]), "invalid_grant")
    [transaction] = attempted  # one attempt, refused by its family check (operation 1)
    assert isinstance(transaction[1], Check) and transaction[1].pk == f"REFRESHFAMILY#{row.family_id}"
    assert len(store.rows("refresh_token")) == rows  # nothing was issued
    assert tokens.find(first["refresh_token"]).used_at is None
    assert len(events(store, EventName.OAUTH_TOKEN_GENERATED)) == 1


def test_a_write_conflict_is_retried(base, store, monkeypatch, user, app):
    """DynamoDB cancels a transaction that collides with another on the same item (TransactionConflict)."""
    first = sign_in(base, app)
    monkeypatch.setattr(grant, "CONFLICT_BACKOFF", 0)
    real, attempts = store.write, []

    def write(*operations):
        if any(isinstance(op, Check) and op.pk.startswith("REFRESHFAMILY#") for op in operations):
            attempts.append(1)
            if len(attempts) < 3:
                raise WriteConflict("TransactionConflict")
        return real(*operations)

    monkeypatch.setattr(store, "write", write)
    answer = refresh(base, app, first["refresh_token"])
    assert answer.status == 200, answer.text
    assert len(attempts) == 3


def test_endless_write_conflicts_are_temporarily_unavailable(base, store, monkeypatch, user, app):
    first = sign_in(base, app)
    monkeypatch.setattr(grant, "CONFLICT_BACKOFF", 0)
    real = store.write

    def write(*operations):
        if any(isinstance(op, Check) and op.pk.startswith("REFRESHFAMILY#") for op in operations):
            raise WriteConflict("TransactionConflict")
        return real(*operations)

    monkeypatch.setattr(store, "write", write)
    answer = refresh(base, app, first["refresh_token"])
    assert_error(answer, "temporarily_unavailable", 503)
    openapi(answer, "token")
    monkeypatch.setattr(store, "write", real)
    assert refresh(base, app, first["refresh_token"]).status == 200  # nothing was spent


# --- lifetimes -----------------------------------------------------------------------------------------------
def test_the_first_refresh_token_follows_the_app_idle_lifetime(base, now, user):
    app = add_app(scope="games:read", refresh_token_ttl=1000, refresh_token_idle_ttl=600)
    t0 = now["t"]
    first = sign_in(base, app)
    described = introspect(base, first["refresh_token"], app=app)
    assert (described["iat"], described["exp"]) == (t0, t0 + 600)


def test_the_absolute_lifetime_ends_the_family_even_within_idle(base, store, now, user):
    app = add_app(scope="games:read", refresh_token_ttl=1000, refresh_token_idle_ttl=600)
    t0 = now["t"]
    first = sign_in(base, app)
    now["t"] = t0 + 500
    second = refresh(base, app, first["refresh_token"]).json()
    assert introspect(base, second["refresh_token"], app=app)["exp"] == t0 + 1000  # not t0 + 500 + 600
    now["t"] = t0 + 900
    third = refresh(base, app, second["refresh_token"]).json()
    assert introspect(base, third["refresh_token"], app=app)["exp"] == t0 + 1000
    now["t"] = t0 + 999
    assert introspect(base, third["refresh_token"], app=app)["active"] is True
    now["t"] = t0 + 1000  # third was issued 100 s ago, well within idle: the family is over all the same
    assert_error(refresh(base, app, third["refresh_token"]), "invalid_grant")
    assert introspect(base, third["refresh_token"], app=app) == INACTIVE
    assert revoked(store) == []  # expiry is not theft


def test_an_idle_refresh_token_expires(base, store, now, user):
    app = add_app(scope="games:read", refresh_token_idle_ttl=600)
    t0 = now["t"]
    first, idle = sign_in(base, app), sign_in(base, app)
    now["t"] = t0 + 599
    second = refresh(base, app, first["refresh_token"])
    assert second.status == 200, second.text
    now["t"] = t0 + 600
    assert_error(refresh(base, app, idle["refresh_token"]), "invalid_grant")  # unused for 600 s
    now["t"] = t0 + 599 + 599
    third = refresh(base, app, second.json()["refresh_token"])  # each use renews the idle lifetime
    assert third.status == 200, third.text
    now["t"] = t0 + 599 + 599 + 600
    assert_error(refresh(base, app, third.json()["refresh_token"]), "invalid_grant")
    assert revoked(store) == []


def test_the_deployment_lifetimes_cap_longer_app_values(base, now, user):
    settings(refresh_token_ttl=2000, refresh_token_idle_ttl=700)
    app = add_app(scope="games:read", refresh_token_ttl=5000, refresh_token_idle_ttl=5000)
    t0 = now["t"]
    idle, first = sign_in(base, app), sign_in(base, app)
    assert introspect(base, idle["refresh_token"], app=app)["exp"] == t0 + 700
    now["t"] = t0 + 700
    assert_error(refresh(base, app, idle["refresh_token"]), "invalid_grant")
    value = first["refresh_token"]
    for step in (600, 1200, 1800):
        now["t"] = t0 + step
        answer = refresh(base, app, value)
        assert answer.status == 200, (step, answer.text)
        value = answer.json()["refresh_token"]
    assert introspect(base, value, app=app)["exp"] == t0 + 2000
    now["t"] = t0 + 2000
    assert_error(refresh(base, app, value), "invalid_grant")


def test_the_deployment_defaults_apply_to_apps_without_their_own(base, now, user, app):
    t0 = now["t"]
    first = sign_in(base, app)
    assert introspect(base, first["refresh_token"], app=app)["exp"] == t0 + IDLE
    value = first["refresh_token"]
    for step in range(1, 3):  # rotate every 13 days: idle never runs out ...
        now["t"] = t0 + step * 13 * 86400
        value = refresh(base, app, value).json()["refresh_token"]
    assert introspect(base, value, app=app)["exp"] == min(now["t"] + IDLE, t0 + ABSOLUTE)
    now["t"] = t0 + ABSOLUTE  # ... but the family ends 30 days after the sign-in
    assert_error(refresh(base, app, value), "invalid_grant")


def test_shortening_the_app_lifetime_ends_existing_families(base, now, user):
    app = add_app(scope="games:read", refresh_token_ttl=1000)
    t0 = now["t"]
    first = sign_in(base, app)
    apps.update(app[0], {"name": "Example App", "redirect_uri": "https://app.example/cb",
                         "refresh_token_ttl": 300})
    now["t"] = t0 + 299
    second = refresh(base, app, first["refresh_token"])
    assert second.status == 200, second.text
    assert introspect(base, second.json()["refresh_token"], app=app)["exp"] == t0 + 300
    now["t"] = t0 + 300
    assert_error(refresh(base, app, second.json()["refresh_token"]), "invalid_grant")


# --- revocation (RFC 7009) ----------------------------------------------------------------------------------------
def test_revoking_a_refresh_token_revokes_its_family(base, store, user, app):
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    answer = revoke(base, app, second["refresh_token"])
    assert (answer.status, answer.body) == (200, b"")
    assert answer.headers["cache-control"] == "no-store"
    openapi(answer, "revoke")
    refused(base, app, second["refresh_token"], first["refresh_token"])  # first: inside its window, yet revoked
    assert revoked(store) == [(app[0], user.user_id)]
    [write] = family_revocations(store)
    assert {op.item[ENTITY] for op in write} == {"revoked_refresh_family", OUTBOX_ENTITY}
    writes = len(store.writes)
    assert revoke(base, app, second["refresh_token"]).status == 200  # again: nothing more
    assert revoke(base, app, first["refresh_token"]).status == 200
    assert len(store.writes) == writes and len(revoked(store)) == 1


def test_revoking_a_rotated_refresh_token_revokes_the_current_one(base, store, now, user, app):
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    now["t"] += 3600  # long after the rotation: the old value still names the family
    assert revoke(base, app, first["refresh_token"], token_type_hint="access_token").status == 200
    refused(base, app, second["refresh_token"])
    assert revoked(store) == [(app[0], user.user_id)]


def test_another_clients_attempt_changes_nothing(base, store, user, app, other):
    first = sign_in(base, app)
    answer = revoke(base, other, first["refresh_token"], token_type_hint="refresh_token")
    assert_error(answer, "invalid_request")  # RFC 7009 §2.1, as for another client's access token
    assert answer.json()["error_description"] == "The token was not issued to this client."
    openapi(answer, "revoke")
    assert revoked(store) == [] and family_revocations(store) == []
    assert refresh(base, app, first["refresh_token"]).status == 200


def test_a_public_client_revokes_its_own_refresh_token(base, store, user):
    spa = (add_app(public=True)[0], None)
    first = sign_in(base, spa, scope="openid offline_access")
    answer = revoke(base, spa, first["refresh_token"])
    assert answer.status == 200, answer.text
    refused(base, spa, first["refresh_token"])
    assert revoked(store) == [(spa[0], user.user_id)]


@pytest.mark.parametrize("value", ["lk_rt_unknown", "lk_rt_" + "a" * 43, "lk_rt_" + "a" * 300])
def test_an_unknown_refresh_token_is_200_and_changes_nothing(base, store, app, value):
    writes = len(store.writes)
    assert revoke(base, app, value, token_type_hint="refresh_token").status == 200
    assert len(store.writes) == writes


def test_an_expired_refresh_token_is_200_and_changes_nothing(base, store, now, user, app):
    first = sign_in(base, app)
    now["t"] += IDLE
    writes = len(store.writes)
    assert revoke(base, app, first["refresh_token"]).status == 200
    assert len(store.writes) == writes and revoked(store) == []


# --- introspection (RFC 7662) ------------------------------------------------------------------------------------
def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_introspecting_a_refresh_token(base, now, user, app):
    t0 = now["t"]
    first = sign_in(base, app)
    expected = {"active": True, "token_type": "refresh_token", "scope": "games:read offline_access openid profile",
                "client_id": app[0], "sub": user.user_id, "exp": t0 + IDLE, "iat": t0}
    assert introspect(base, first["refresh_token"], app=app) == expected
    assert introspect(base, first["refresh_token"], app=app, token_type_hint="access_token") == expected
    own = first["access_token"]  # the app's own access token authorizes the call too (RFC 7662 §2.1)
    assert introspect(base, first["refresh_token"], bearer=own) == expected
    # and access tokens are described as before
    assert introspect(base, own, app=app)["token_type"] == "Bearer"


def test_only_the_owning_client_sees_it_active(base, user, app, other):
    first = sign_in(base, app)
    assert introspect(base, first["refresh_token"], app=other) == INACTIVE
    assert introspect(base, first["refresh_token"], app=other, token_type_hint="refresh_token") == INACTIVE
    theirs = sign_in(base, other, scope="openid")["access_token"]
    assert introspect(base, first["refresh_token"], bearer=theirs) == INACTIVE
    assert introspect(base, first["refresh_token"], app=app)["active"] is True


def test_a_rotated_refresh_token_is_active_only_within_the_window(base, now, user, app):
    first = sign_in(base, app)
    t0 = now["t"]
    now["t"] = t0 + 10
    second = refresh(base, app, first["refresh_token"]).json()
    described = introspect(base, first["refresh_token"], app=app)
    assert described["active"] is True and described["exp"] == t0 + 10 + GRACE
    now["t"] = t0 + 10 + GRACE
    assert introspect(base, first["refresh_token"], app=app) == INACTIVE
    assert introspect(base, second["refresh_token"], app=app)["active"] is True


def test_a_revoked_family_is_inactive(base, now, user, app):
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    now["t"] += GRACE
    assert_error(refresh(base, app, first["refresh_token"]), "invalid_grant")  # theft
    assert introspect(base, second["refresh_token"], app=app) == INACTIVE


def test_an_ended_grant_or_an_expired_token_is_inactive(base, now, user, app):
    first, idle = sign_in(base, app), sign_in(base, app)
    now["t"] += IDLE
    assert introspect(base, idle["refresh_token"], app=app) == INACTIVE
    now["t"] -= IDLE
    assert introspect(base, first["refresh_token"], app=app)["active"] is True
    assert revocation.revoke_connection(user.user_id, app[0])
    assert introspect(base, first["refresh_token"], app=app) == INACTIVE


@pytest.mark.parametrize("value", ["lk_rt_unknown", "lk_rt_", "lk_rt_" + "a" * 300])
def test_unknown_refresh_tokens_are_inactive(base, app, value):
    assert introspect(base, value, app=app) == INACTIVE


def test_stored_rows_never_hold_the_value(base, store, user, app):
    first = sign_in(base, app)
    second = refresh(base, app, first["refresh_token"]).json()
    dumped = json.dumps(store.rows("refresh_token"), default=str)
    assert first["refresh_token"] not in dumped and second["refresh_token"] not in dumped
    assert all(row[PK].startswith("REFRESH#") and row["family_created_at"] for row in store.rows("refresh_token"))


def test_the_value_ends_with_a_locator_of_its_user_that_cannot_be_changed(base, user, app):
    from latchkey import refresh_tokens

    first = sign_in(base, app)
    value = first["refresh_token"]
    row = services.refresh_token_store().find(value)
    assert refresh_tokens.user_hint(value) == row.user_id
    keys = refresh_tokens.read_ahead_keys(value, row.client_id, services.secret_hash_key())
    assert keys == [(f"REFRESH#{row.token_hash}", "REFRESH"), (f"USER#{row.user_id}", "USER"),
                    (f"USER#{row.user_id}", f"CONNECTION#{row.client_id}"), (f"CLIENT#{row.client_id}", "CLIENT")]
    forged = value.rpartition(".")[0] + ".Ym9i"  # "bob": the locator is part of the hashed value
    refused(base, app, forged)
    assert refresh(base, app, value).status == 200


@pytest.mark.parametrize("value", ["lk_rt_abc", "lk_rt_abc.", "lk_rt_abc.!!!", "lk_rt_abc.__8"])
def test_a_value_without_a_readable_locator_reads_only_its_row(value):
    from latchkey import refresh_tokens

    assert refresh_tokens.user_hint(value) is None
    assert [key[1] for key in refresh_tokens.read_ahead_keys(value, "c", b"k" * 32)] == ["REFRESH"]
