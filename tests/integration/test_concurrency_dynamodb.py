"""Concurrency on DynamoDB Local (issue 9): many threads on the same code, token, device code and app.

The token, revocation and introspection handlers run in-process exactly as Lambda runs them
(``functions/<dir>/app.py``'s ``handler`` with an API Gateway v2 event, :mod:`tests.unit.oauth_support`)
from a thread pool, against a fresh DynamoDB Local table; a :class:`threading.Barrier` releases the
requests together so their reads and conditional writes really overlap, as several Lambda instances
would. The hosted sign-in and device approval go through the local gateway (:mod:`tests.flow_support`).

DynamoDB Local applies writes one at a time and never answers ``TransactionConflict``, which real DynamoDB
does when a write touches an item another transaction is writing. :class:`ConflictingClient` brings that
rule back in front of DynamoDB Local (for the contention test only): a write touching an item an in-flight
write touches is refused the way DynamoDB refuses it (``TransactionCanceledException`` with a
``TransactionConflict`` reason, ``TransactionConflictException`` for a single-item write), so
:mod:`latchkey.store.dynamodb`'s error mapping and every caller's handling of ``WriteConflict`` are what
is tested.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.dynamodb_local import DUMMY_CREDENTIALS, REGION
from latchkey import apps, clock, services
from latchkey.crypto.secrets import keyed_hash
from latchkey.events import OUTBOX_ENTITY, EventName
from latchkey.store import Update
from latchkey.store.dynamodb import DynamoItemStore, deserialize
from tests.flow_support import Agent, FrozenClock, add_app, add_user, flow_stack, pkce_pair
from tests.unit import oauth_support as s

pytestmark = pytest.mark.integration

REDIRECT = "https://app.example/cb"
PASSWORD = "a long test password"
GRACE = 5  # REFRESH_TOKEN_REUSE_GRACE's default
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CODE_GRANTS = ("authorization_code", "refresh_token")


# --- DynamoDB's transaction conflicts over DynamoDB Local ---------------------------------------------------
Key = tuple[str, str]


def _key(raw: dict[str, Any]) -> Key:
    return raw["pk"]["S"], raw["sk"]["S"]


class ConflictingClient:
    """A boto3 DynamoDB client that refuses writes the way DynamoDB does under contention (when ``enabled``).

    - A write (``PutItem``/``UpdateItem``/``DeleteItem``/``TransactWriteItems``, a ``ConditionCheck``
      included) touching an item that a write in flight touches is refused with ``TransactionConflict``;
    - :meth:`arm` makes the calling thread's next write conflict whatever else is in flight (every request
      of the contention test arms it, so every code path meets at least one conflict);
    - a thread is never refused twice in a row (real contention ends; this keeps the test deterministic:
      code that retries gets through, code that does not answers 500).

    Everything else (reads, the table's other calls) goes straight to DynamoDB Local.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._in_flight: Counter[Key] = Counter()
        self._local = threading.local()
        self.enabled = False
        self.relentless = False  # refuse every write, twice in a row too (a hot item that never cools down)
        self.conflicts: Counter[str] = Counter()  # refusals, by operation
        self.refused_items: Counter[str] = Counter()  # refusals, by the refused item's kind (pk prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def arm(self) -> None:
        self._local.armed = True

    def put_item(self, **params: Any) -> Any:
        return self._write("PutItem", [_key(params["Item"])], self._client.put_item, params)

    def update_item(self, **params: Any) -> Any:
        return self._write("UpdateItem", [_key(params["Key"])], self._client.update_item, params)

    def delete_item(self, **params: Any) -> Any:
        return self._write("DeleteItem", [_key(params["Key"])], self._client.delete_item, params)

    def transact_write_items(self, **params: Any) -> Any:
        keys = [_key(p["Item"] if "Item" in p else p["Key"]) for item in params["TransactItems"]
                for p in item.values()]
        return self._write("TransactWriteItems", keys, self._client.transact_write_items, params)

    def _write(self, operation: str, keys: list[Key], call: Callable[..., Any], params: dict[str, Any]) -> Any:
        if not self.enabled:
            return call(**params)
        local = self._local
        with self._lock:
            busy = [key in self._in_flight for key in keys]
            armed = getattr(local, "armed", False)
            refuse = self.relentless or (not getattr(local, "refused_last", False) and (armed or any(busy)))
            local.armed = False
            local.refused_last = refuse
            if refuse:
                if not any(busy):
                    busy[0] = True
                self.conflicts[operation] += 1
                for key, conflicting in zip(keys, busy, strict=True):
                    if conflicting:
                        self.refused_items[key[0].split("#", 1)[0]] += 1
            else:
                self._in_flight.update(keys)
        if refuse:
            raise _conflict(operation, busy)
        try:
            return call(**params)
        finally:
            with self._lock:
                self._in_flight.subtract(keys)
                self._in_flight = +self._in_flight  # drop the zeros


def _conflict(operation: str, busy: list[bool]) -> ClientError:
    """The error DynamoDB answers (the shape botocore parses it into)."""
    if operation != "TransactWriteItems":
        return ClientError({"Error": {"Code": "TransactionConflictException",
                                      "Message": "Transaction is ongoing for the item"}}, operation)
    reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"} if conflicting
               else {"Code": "None"} for conflicting in busy]
    message = "Transaction cancelled, please refer cancellation reasons for specific reasons [" + \
        ", ".join(r["Code"] for r in reasons) + "]"
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": message},
                        "CancellationReasons": reasons}, operation)


# --- the stack -------------------------------------------------------------------------------------------
@dataclass
class Stack:
    url: str
    client: ConflictingClient
    table: str
    clock: FrozenClock

    def outbox(self, name: EventName) -> list[dict[str, Any]]:
        """The outbox messages called ``name`` in the table."""
        found, params = [], {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.client.scan(**params)
            found += [deserialize(raw) for raw in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        messages = [json.loads(item["message"]) for item in found if item.get("entity") == OUTBOX_ENTITY]
        return [m for m in messages if m["name"] == str(name)]


@pytest.fixture
def stack(monkeypatch, dynamodb_local, fresh_table):
    # every failed authentication of the rotation test counts; a lockout is not what these tests are about
    monkeypatch.setenv("CLIENT_AUTH_MAX_FAILURES", "100000")
    monkeypatch.setenv("CLIENT_AUTH_MAX_ADDRESS_FAILURES", "100000")
    # botocore as services._aws_client configures it, with a connection per thread
    raw = boto3.session.Session().client(
        "dynamodb", endpoint_url=dynamodb_local.endpoint, region_name=REGION, **DUMMY_CREDENTIALS,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10,
                      max_pool_connections=64))
    client = ConflictingClient(raw)
    for url in flow_stack(monkeypatch, store=DynamoItemStore(client, fresh_table)):
        for function in ("token", "revoke", "introspect"):
            s.handler(function)  # loaded once, before any thread asks for it
        yield Stack(url, client, fresh_table, FrozenClock(monkeypatch))


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released at once by a barrier; their results, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=60)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def token_call(form: dict[str, str], client_id: str, secret: str | None) -> s.Answer:
    """``POST /api/oauth/token`` through the token function's Lambda handler, in this thread."""
    headers = {"Authorization": s.basic(client_id, secret)} if secret else {}
    return s.call("token", form, headers=headers)


def statuses(answers: list[s.Answer]) -> Counter[tuple[int, str | None]]:
    return Counter((a.status, a.error if a.status != 200 else None) for a in answers)


def sign_in(stack: Stack, client_id: str, scope: str = "openid offline_access") -> tuple[str, str]:
    """A fresh authorization code through the hosted login: (code, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    query = Agent(stack.url).authorize(client_id, "alice", PASSWORD, redirect_uri=REDIRECT, scope=scope,
                                       code_challenge=challenge, code_challenge_method="S256")
    return query["code"], verifier


def code_form(code: str, verifier: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}


def refresh_form(value: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": value}


def tokens(stack: Stack, client_id: str, secret: str) -> dict[str, Any]:
    code, verifier = sign_in(stack, client_id)
    answer = token_call(code_form(code, verifier), client_id, secret)
    assert answer.status == 200, answer.body
    return answer.json()


def introspect(token: str, client_id: str, secret: str) -> dict[str, Any]:
    answer = s.call("introspect", {"token": token}, headers={"Authorization": s.basic(client_id, secret)})
    assert answer.status == 200, answer.body
    return answer.json()


def family_of(value: str) -> str:
    found = services.refresh_token_store().find(value)
    assert found is not None
    return found.family_id


# --- 1. one authorization code, 50 redemptions ------------------------------------------------------------
def test_fifty_parallel_redemptions_of_one_code_give_tokens_once_and_revoke_them(stack):
    add_user("alice", PASSWORD)
    client_id, secret = add_app(grant_types=CODE_GRANTS)
    code, verifier = sign_in(stack, client_id)

    answers = together([lambda: token_call(code_form(code, verifier), client_id, secret)] * 50)

    assert statuses(answers) == {(200, None): 1, (400, "invalid_grant"): 49}, [a.body for a in answers]
    winner = next(a for a in answers if a.status == 200).json()
    # RFC 6749 §4.1.2 / RFC 9700 §4.14: the replays revoked what the first redemption issued
    assert introspect(winner["access_token"], client_id, secret) == {"active": False}
    assert introspect(winner["refresh_token"], client_id, secret) == {"active": False}
    refused = token_call(refresh_form(winner["refresh_token"]), client_id, secret)
    assert (refused.status, refused.error) == (400, "invalid_grant")
    assert len(stack.outbox(EventName.OAUTH_TOKEN_GENERATED)) == 1
    assert len(stack.outbox(EventName.OAUTH_TOKEN_REVOKED)) == 1  # 49 replays, one revocation
    assert token_call(code_form(code, verifier), client_id, secret).error == "invalid_grant"


# --- 2. one refresh token, parallel rotations, then a late replay -----------------------------------------
def test_parallel_refreshes_in_the_grace_window_share_one_family_that_a_late_replay_kills(stack):
    add_user("alice", PASSWORD)
    client_id, secret = add_app(grant_types=CODE_GRANTS)
    first = tokens(stack, client_id, secret)
    original = first["refresh_token"]
    family = family_of(original)

    answers = together([lambda: token_call(refresh_form(original), client_id, secret)] * 20)

    assert statuses(answers) == {(200, None): 20}, [a.body for a in answers]
    issued = [a.json()["refresh_token"] for a in answers]
    assert len(set(issued)) == 20 and original not in issued
    assert {family_of(value) for value in issued} == {family}  # one family: the same family_id rows
    assert stack.outbox(EventName.OAUTH_TOKEN_REVOKED) == []
    assert introspect(issued[0], client_id, secret)["active"] is True

    stack.clock.advance(GRACE)  # the window is over: a use of the original is theft (RFC 9700 §4.14.2)
    replay = token_call(refresh_form(original), client_id, secret)
    assert (replay.status, replay.error) == (400, "invalid_grant")
    assert services.refresh_token_store().family_revoked(family)
    for value in [original, *issued]:  # every token of the family is refused from now on
        answer = token_call(refresh_form(value), client_id, secret)
        assert (answer.status, answer.error) == (400, "invalid_grant"), answer.body
    assert len(stack.outbox(EventName.OAUTH_TOKEN_REVOKED)) == 1
    assert tokens(stack, client_id, secret)["refresh_token"]  # a new sign-in starts a new family


# --- 3. one approved device code, parallel polls ----------------------------------------------------------
def approved_device_code(stack: Stack, client_id: str, secret: str) -> str:
    answer = Agent(stack.url).request("POST", "/api/oauth/device/code", form={"scope": "openid offline_access"},
                                      headers={"Authorization": s.basic(client_id, secret)})
    assert answer.status == 200, answer.text
    body = answer.json()
    browser = Agent(stack.url)
    hop = browser.get("/device")
    assert hop.status == 302, hop.status
    back = browser.login(browser.get(hop.location), "alice", PASSWORD)
    assert back.status == 302, back.status
    page = browser.get(f"/device?user_code={body['user_code']}")
    assert page.status == 200, page.text[:300]
    form = page.form()
    form["decision"] = "allow"
    assert browser.post("/device", form).status == 200
    return body["device_code"]


def test_parallel_polls_of_an_approved_device_code_get_tokens_once(stack):
    add_user("alice", PASSWORD)
    client_id, secret = add_app(grant_types=(DEVICE_GRANT, "refresh_token"))
    device_code = approved_device_code(stack, client_id, secret)
    poll = {"grant_type": DEVICE_GRANT, "device_code": device_code}

    answers = together([lambda: token_call(poll, client_id, secret)] * 30)

    # RFC 8628 §3.5 via latchkey.rfc8628: approved → tokens once; a code already used is invalid_grant
    assert statuses(answers) == {(200, None): 1, (400, "invalid_grant"): 29}, [a.body for a in answers]
    assert len(stack.outbox(EventName.OAUTH_TOKEN_GENERATED)) == 1
    winner = next(a for a in answers if a.status == 200).json()
    assert introspect(winner["access_token"], client_id, secret)["active"] is True
    assert token_call(poll, client_id, secret).error == "invalid_grant"


# --- 4. secret rotation while the app asks for tokens -----------------------------------------------------
def test_no_request_started_after_a_rotation_gets_a_token_with_the_old_secret(stack):
    client, old = s.add_client("machine", scope="read")
    assert old is not None
    form = {"grant_type": "client_credentials"}
    assert token_call(form, "machine", old).status == 200  # warm: the record is in the client cache
    stop, rotated = threading.Event(), {}

    def hammer() -> list[tuple[float, int, str | None]]:
        seen = []
        while not stop.is_set():
            started = time.monotonic()
            answer = token_call(form, "machine", old)
            seen.append((started, answer.status, answer.error))
        return seen

    def rotate() -> list[tuple[float, int, str | None]]:
        time.sleep(0.3)  # the hammering is under way
        credentials = apps.rotate("machine")
        rotated["at"], rotated["secret"] = time.monotonic(), credentials.key
        time.sleep(0.5)  # and goes on for a while after it
        stop.set()
        return []

    results = [entry for batch in together([hammer] * 8 + [rotate]) for entry in batch]

    before = [r for r in results if r[0] < rotated["at"]]
    after = [r for r in results if r[0] >= rotated["at"]]
    assert any(status == 200 for _, status, _ in before)  # the old secret worked until the rotation
    assert after and {(status, error) for _, status, error in after} == {(401, "invalid_client")}
    assert token_call(form, "machine", rotated["secret"]).status == 200

    # another Lambda instance rotates it: this process's cache still holds the old record (warm, stale)
    newer = "secret-rotated-elsewhere"
    services.item_store().inner.write(Update(
        "CLIENT#machine", "CLIENT", set={"secret_hash": keyed_hash(services.secret_hash_key(), newer),
                                         "updated_at": clock.now() + 1}))
    assert services.client_cache().holds("machine")
    answers = together([lambda: token_call(form, "machine", rotated["secret"])] * 10)
    assert statuses(answers) == {(401, "invalid_client"): 10}, [a.body for a in answers]
    assert token_call(form, "machine", newer).status == 200
    assert token_call(form, "machine", old).status == 401


# --- 5. contention: TransactionConflict is retried, never a 500 --------------------------------------------
def test_transaction_conflicts_under_contention_never_surface_as_5xx(stack):
    add_user("alice", PASSWORD)
    client_id, secret = add_app(grant_types=(*CODE_GRANTS, DEVICE_GRANT))
    shared = tokens(stack, client_id, secret)  # refreshed by 10 threads at once (grace redemptions)
    doomed = tokens(stack, client_id, secret)  # its refresh family revoked by 5 threads, its access token by 5
    codes = [sign_in(stack, client_id) for _ in range(2)]  # each redeemed by 5 threads
    device_code = approved_device_code(stack, client_id, secret)  # polled by 5 threads
    poll = {"grant_type": DEVICE_GRANT, "device_code": device_code}

    calls: list[tuple[str, Callable[[], s.Answer]]] = []
    auth = {"Authorization": s.basic(client_id, secret)}
    calls += [("refresh", lambda: token_call(refresh_form(shared["refresh_token"]), client_id, secret))] * 10
    for code, verifier in codes:
        calls += [("code", lambda c=code, v=verifier: token_call(code_form(c, v), client_id, secret))] * 5
    calls += [("revoke", lambda: s.call("revoke", {"token": doomed["refresh_token"]}, headers=auth))] * 5
    calls += [("revoke", lambda: s.call("revoke", {"token": doomed["access_token"]}, headers=auth))] * 5
    calls += [("device", lambda: token_call(poll, client_id, secret))] * 5

    def armed(call: Callable[[], s.Answer]) -> Callable[[], s.Answer]:
        def run() -> s.Answer:
            stack.client.arm()  # this request's first write meets a TransactionConflict
            return call()
        return run

    stack.client.enabled = True
    answers = together([armed(call) for _, call in calls])
    stack.client.enabled = False

    assert [a.body for a in answers if a.status >= 500] == []
    by_kind: dict[str, Counter[tuple[int, str | None]]] = {}
    for (kind, _), answer in zip(calls, answers, strict=True):
        by_kind.setdefault(kind, Counter())[(answer.status, answer.error if answer.body else None)] += 1
    assert by_kind == {"refresh": {(200, None): 10}, "code": {(200, None): 2, (400, "invalid_grant"): 8},
                       "revoke": {(200, None): 10}, "device": {(200, None): 1, (400, "invalid_grant"): 4}}
    assert sum(stack.client.conflicts.values()) >= 25  # every request that writes met at least one
    for kind in ("REFRESH", "CODE", "REVOKED", "REFRESHFAMILY", "DEVICE"):
        assert stack.client.refused_items[kind] > 0, stack.client.refused_items
    # and the outcome is the one without conflicts
    assert services.refresh_token_store().family_revoked(family_of(doomed["refresh_token"]))
    assert introspect(doomed["access_token"], client_id, secret) == {"active": False}
    assert len(stack.outbox(EventName.OAUTH_TOKEN_REVOKED)) == 2 + 2  # the doomed family and token, 2 replays


def test_a_request_that_loses_every_retry_is_503_with_retry_after_and_writes_nothing(stack):
    add_user("alice", PASSWORD)
    client_id, secret = add_app(grant_types=CODE_GRANTS)
    first = tokens(stack, client_id, secret)
    code, verifier = sign_in(stack, client_id)
    generated = len(stack.outbox(EventName.OAUTH_TOKEN_GENERATED))
    auth = {"Authorization": s.basic(client_id, secret)}

    stack.client.enabled = stack.client.relentless = True
    answers = [token_call(refresh_form(first["refresh_token"]), client_id, secret),
               token_call(code_form(code, verifier), client_id, secret),
               s.call("revoke", {"token": first["access_token"]}, headers=auth)]
    stack.client.enabled = stack.client.relentless = False

    for answer in answers:  # not a bare 500: the client is told to come back
        assert (answer.status, answer.error, answer.headers.get("Retry-After")) == \
            (503, "temporarily_unavailable", "1"), answer.body
    assert stack.client.conflicts["TransactWriteItems"] == 3 * 6  # refresh_token.ATTEMPTS each
    assert len(stack.outbox(EventName.OAUTH_TOKEN_GENERATED)) == generated  # nothing was written
    assert introspect(first["access_token"], client_id, secret)["active"] is True
    assert token_call(refresh_form(first["refresh_token"]), client_id, secret).status == 200
    assert token_call(code_form(code, verifier), client_id, secret).status == 200
