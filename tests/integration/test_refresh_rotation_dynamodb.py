"""Refresh token rotation on DynamoDB Local: the reuse grace window and the family revocation as DynamoDB's
conditional writes and transactions evaluate them.

The handlers run in-process behind the local gateway (``tests.flow_support``) on a fresh DynamoDB Local
table. The gateway runs one invocation of a function at a time (like one Lambda instance), so the truly
concurrent redemptions call the token endpoint's pipeline from several threads, each held after its first
read until all have read (as several Lambda instances would): their ``TransactWriteItems`` really race,
and DynamoDB's condition failures and transaction conflicts decide.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from latchkey import clock, services
from latchkey.errors import InvalidGrant, LatchkeyError
from latchkey.events import OUTBOX_ENTITY, EventName
from latchkey.rfc6749 import token_endpoint
from latchkey.store.dynamodb import DynamoItemStore, deserialize
from tests.flow_support import Agent, add_app, add_user, basic, flow_stack, pkce_pair

pytestmark = pytest.mark.integration

REDIRECT = "https://app.example/cb"
PASSWORD = "a long test password"
GRACE = 5  # REFRESH_TOKEN_REUSE_GRACE's default


@pytest.fixture
def stack(monkeypatch, dynamodb_local, fresh_table):
    store = DynamoItemStore(dynamodb_local.client(), fresh_table)
    for url in flow_stack(monkeypatch, store=store):
        yield url, dynamodb_local.client(), fresh_table


@pytest.fixture
def now(monkeypatch):
    moment = {"t": int(time.time())}
    monkeypatch.setattr(clock, "now", lambda: moment["t"])
    return moment


def sign_in(url: str, client_id: str, secret: str) -> dict[str, Any]:
    agent = Agent(url)
    verifier, challenge = pkce_pair()
    query = agent.authorize(client_id, "alice", PASSWORD, redirect_uri=REDIRECT, scope="openid offline_access",
                            code_challenge=challenge, code_challenge_method="S256")
    answer = agent.token({"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
                          "code_verifier": verifier}, authorization=basic(client_id, secret))
    assert answer.status == 200, answer.text
    return answer.json()


def refresh(url: str, client_id: str, secret: str, value: str):
    return Agent(url).token({"grant_type": "refresh_token", "refresh_token": value},
                            authorization=basic(client_id, secret))


def in_parallel(count: int, call: Any) -> list[Any]:
    barrier = threading.Barrier(count)

    def run(_index: int) -> Any:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def redeem_together(monkeypatch, client_id: str, secret: str, value: str, count: int, *,
                    hold: str = "find") -> list[Any]:
    """The token endpoint's pipeline from ``count`` threads, each held after its first ``hold`` read until
    every thread has made it; errors are returned."""
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
            return token_endpoint.token({"grant_type": "refresh_token", "refresh_token": value},
                                        basic(client_id, secret))
        except LatchkeyError as exc:
            return exc

    try:
        return in_parallel(count, run)
    finally:
        monkeypatch.setattr(tokens, hold, real)


def outbox(client: Any, table: str, name: EventName) -> list[dict[str, Any]]:
    """The outbox messages called ``name`` in the table."""
    found, params = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**params)
        found += [deserialize(raw) for raw in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    messages = [json.loads(item["message"]) for item in found if item.get("entity") == OUTBOX_ENTITY]
    return [m for m in messages if m["name"] == str(name)]


def test_parallel_refreshes_within_the_grace_window_succeed_on_dynamodb(stack, monkeypatch):
    url, client, table = stack
    user = add_user("alice", PASSWORD)
    client_id, secret = add_app()
    first = sign_in(url, client_id, secret)

    # parallel clients through the gateway
    answers = in_parallel(4, lambda: refresh(url, client_id, secret, first["refresh_token"]))
    assert [a.status for a in answers] == [200] * 4, [a.text for a in answers]
    # parallel Lambda instances: four TransactWriteItems on the same row at once
    second = sign_in(url, client_id, secret)
    results = redeem_together(monkeypatch, client_id, secret, second["refresh_token"], 4)
    assert all(isinstance(r, dict) for r in results), results

    issued = [a.json()["refresh_token"] for a in answers] + [r["refresh_token"] for r in results]
    assert len(set(issued)) == 8
    for value in issued:  # every token handed out is good
        answer = refresh(url, client_id, secret, value)
        assert answer.status == 200, answer.text
    assert outbox(client, table, EventName.OAUTH_TOKEN_REVOKED) == []
    generated = outbox(client, table, EventName.OAUTH_TOKEN_GENERATED)
    assert len(generated) == 2 + 8 + 8 and {m["userId"] for m in generated} == {user.user_id}


def test_a_late_replay_revokes_the_family_once_on_dynamodb(stack, monkeypatch, now):
    url, client, table = stack
    user = add_user("alice", PASSWORD)
    client_id, secret = add_app()
    first = sign_in(url, client_id, secret)
    t0 = now["t"]
    second = refresh(url, client_id, secret, first["refresh_token"]).json()
    now["t"] = t0 + GRACE - 1
    within = refresh(url, client_id, secret, first["refresh_token"])  # inside the window: a good answer
    assert within.status == 200, within.text
    other = sign_in(url, client_id, secret)

    now["t"] = t0 + GRACE  # replays, racing each other, after the window
    results = redeem_together(monkeypatch, client_id, secret, first["refresh_token"], 4, hold="family_revoked")
    assert all(isinstance(r, InvalidGrant) for r in results), results
    revoked = outbox(client, table, EventName.OAUTH_TOKEN_REVOKED)
    assert [(m["clientId"], m["userId"]) for m in revoked] == [(client_id, user.user_id)]  # exactly one
    for value in (first["refresh_token"], second["refresh_token"], within.json()["refresh_token"]):
        answer = refresh(url, client_id, secret, value)
        assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")
    assert len(outbox(client, table, EventName.OAUTH_TOKEN_REVOKED)) == 1
    assert refresh(url, client_id, secret, other["refresh_token"]).status == 200  # another family
