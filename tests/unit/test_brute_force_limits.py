"""Brute force (issue 9): failed client authentication counted per client id and per source address,
a locked client answered exactly like a wrong secret, no counter work on the success path, the
per-instance introspection rate limits, the request's source address, and API Gateway's route throttling.

The real handlers run on the in-memory store (``RecordingStore``), with small limits set in the
environment."""

from __future__ import annotations

import pytest

from devstack import template
from latchkey import clock, context, services
from latchkey.http import create_app, json_response, lambda_handler
from latchkey.http.render import Protocol
from latchkey.ratelimit import WindowLimiter
from latchkey.rfc6749 import client_auth
from tests.helpers import LambdaContext
from tests.unit import oauth_support as s
from tests.unit.oauth_support import basic

CC = {"grant_type": "client_credentials", "scope": "read"}
LIMITS = {"CLIENT_AUTH_MAX_FAILURES": "3", "CLIENT_AUTH_MAX_ADDRESS_FAILURES": "5",
          "CLIENT_AUTH_FAILURE_WINDOW": "900", "INTROSPECTION_RATE_LIMIT": "4",
          "INTROSPECTION_ADDRESS_RATE_LIMIT": "6", "INTROSPECTION_RATE_WINDOW": "60"}


@pytest.fixture
def store(monkeypatch):
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)
    yield from s.environment(monkeypatch)


def send(endpoint, form, *, auth=None, ip="203.0.113.9"):
    """A call to ``endpoint`` from source address ``ip``."""
    event = s.event(endpoint, form, headers={"Authorization": auth} if auth else None)
    event["requestContext"]["http"]["sourceIp"] = ip
    result = s.handler(endpoint)(event, LambdaContext())
    return s.Answer(result["statusCode"], result.get("headers") or {}, result.get("body") or "")


def refusal(answer):
    """What a client can see of a refusal: status, error, description and the challenge."""
    body = answer.json()
    return answer.status, body["error"], body.get("error_description"), answer.headers.get("WWW-Authenticate")


def failure_rows(store):
    return {row["pk"]: int(row["failures"]) for row in store.rows("client_auth_failures")}


class Counting:
    """Counts the store calls (round trips) the next requests make."""

    def __init__(self, store, monkeypatch):
        self.calls: list[str] = []
        for name in ("get", "get_many", "query", "write"):
            original = getattr(store, name)

            def wrapped(*args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, wrapped)


# --- client authentication failures ---------------------------------------------------------------
def test_wrong_secrets_lock_the_client_and_the_locked_answer_is_the_wrong_secret_answer(store, monkeypatch):
    _client, secret = s.add_client("locked-app")
    wrong = [send("token", CC, auth=basic("locked-app", f"guess-{n}"), ip=f"198.51.100.{n}") for n in range(3)]
    assert [a.status for a in wrong] == [401, 401, 401]
    assert failure_rows(store)[client_auth.failure_keys("locked-app")[0].pk] == 3

    locked = send("token", CC, auth=basic("locked-app", secret), ip="198.51.100.77")  # the right secret
    assert refusal(locked) == refusal(wrong[0]) == (401, "invalid_client", "Client authentication failed.",
                                                    'Basic realm="latchkey"')
    assert "access_token" not in locked.body
    # the refusal is counted like a wrong secret (the same write, so the same cost)
    assert failure_rows(store)[client_auth.failure_keys("locked-app")[0].pk] == 4

    _other, other_secret = s.add_client("other-app")  # other clients, same address: unaffected
    assert send("token", CC, auth=basic("other-app", other_secret), ip="198.51.100.77").status == 200

    later = clock.now() + 901  # the window ends: the client may authenticate again
    monkeypatch.setattr(clock, "now", lambda: later)
    assert send("token", CC, auth=basic("locked-app", secret), ip="198.51.100.77").status == 200


def test_a_warm_instance_learns_the_lock_from_its_failures(store):
    _client, secret = s.add_client("warm-app")
    assert send("token", CC, auth=basic("warm-app", secret)).status == 200  # the record is now cached
    assert services.client_cache().holds("warm-app")
    for n in range(3):
        assert send("token", CC, auth=basic("warm-app", "nope"), ip=f"192.0.2.{n}").status == 401
    answer = send("token", CC, auth=basic("warm-app", secret), ip="192.0.2.200")
    assert refusal(answer) == (401, "invalid_client", "Client authentication failed.", 'Basic realm="latchkey"')


def test_a_lock_counted_by_another_instance_applies_here_after_the_next_failure(store):
    _client, secret = s.add_client("shared-app")
    assert send("token", CC, auth=basic("shared-app", secret)).status == 200  # cached here
    key = client_auth.failure_keys("shared-app")[0]
    store.write(client_auth.ratelimit.failure_operation(key, None, window=900, now=clock.now()))
    for _ in range(2):  # other instances count two more: the client is at its limit (3)
        store.write(client_auth.ratelimit.Update(key.pk, key.sk, add={"failures": 1}))
    # the warm path reads no counter, so this instance does not know yet (docs/security.md) ...
    assert send("token", CC, auth=basic("shared-app", secret)).status == 200
    # ... until its next failure, which reads the counter after counting it
    assert send("token", CC, auth=basic("shared-app", "wrong")).status == 401
    assert send("token", CC, auth=basic("shared-app", secret)).status == 401


def test_failures_from_one_address_lock_the_address_for_every_client(store):
    _client, secret = s.add_client("innocent")
    for n in range(5):  # unknown client ids count on the address too
        answer = send("token", CC, auth=basic(f"no-such-client-{n}", "x"), ip="203.0.113.50")
        assert refusal(answer)[:2] == (401, "invalid_client")
    assert send("token", CC, auth=basic("innocent", secret), ip="203.0.113.50").status == 401
    assert send("token", CC, auth=basic("innocent", secret), ip="203.0.113.51").status == 200
    assert failure_rows(store)[client_auth.failure_keys("x", "203.0.113.50")[1].pk] == 6


def test_revocation_and_introspection_failures_count_on_the_same_counter(store):
    _client, secret = s.add_client("multi")
    assert send("revoke", {"token": "t"}, auth=basic("multi", "wrong"), ip="192.0.2.1").status == 401
    assert send("revoke", {"token": "t"}, auth=basic("multi", "wrong"), ip="192.0.2.2").status == 401
    assert send("introspect", {"token": "t"}, auth=basic("multi", "wrong"), ip="192.0.2.3").status == 401
    assert send("token", CC, auth=basic("multi", secret), ip="192.0.2.4").status == 401
    assert send("introspect", {"token": "t"}, auth=basic("multi", secret), ip="192.0.2.5").status == 401


def test_bad_assertions_count_and_lock_a_private_key_jwt_client(store):
    private, jwk = s.key_pair("ES256", kid="k1")
    stranger, _ = s.key_pair("ES256", kid="k1")
    s.add_client("jwt-app", method="private_key_jwt", jwks={"keys": [jwk]})

    def form(key):
        return {**CC, "client_assertion_type": s.JWT_BEARER,
                "client_assertion": s.assertion("jwt-app", key, "ES256", "k1")}

    assert send("token", form(private)).status == 200
    for n in range(3):
        assert send("token", form(stranger), ip=f"192.0.2.{n}").status == 401
    answer = send("token", form(private), ip="192.0.2.99")  # a valid assertion, but the client is locked
    assert refusal(answer) == (401, "invalid_client", "Client authentication failed.", None)


def test_a_public_client_presenting_no_credential_is_neither_counted_nor_locked(store):
    s.add_client("public-app", method="none", grant_types=("authorization_code",))
    for _ in range(8):
        answer = send("token", {"grant_type": "authorization_code", "client_id": "no-such-public", "code": "x"})
        assert refusal(answer)[:2] == (401, "invalid_client")
    assert failure_rows(store) == {}


def test_the_success_path_reads_and_writes_no_counter(store, monkeypatch):
    _client, secret = s.add_client("fast")
    assert send("token", CC, auth=basic("fast", "wrong"), ip="192.0.2.1").status == 401  # a counter exists
    assert send("token", CC, auth=basic("fast", secret)).status == 200  # warms the client cache
    counting = Counting(store, monkeypatch)
    writes_before = len(store.writes)
    assert send("token", CC, auth=basic("fast", secret)).status == 200
    assert counting.calls == ["write"]  # warm: one round trip, the token's own write
    assert not any(op_key.startswith("CLIENTAUTHFAIL") for ops in store.writes[writes_before:]
                   for op_key in (getattr(op, "pk", None) or op.item["pk"] for op in ops))
    assert failure_rows(store) == {client_auth.failure_keys("fast")[0].pk: 1,
                                   client_auth.failure_keys("fast", "192.0.2.1")[1].pk: 1}  # nothing cleared

    services.client_cache().invalidate("fast")  # cold: the counters come in the client's batch
    counting.calls.clear()
    assert send("token", CC, auth=basic("fast", secret)).status == 200
    assert counting.calls == ["get_many", "write"]


# --- introspection rate limits ------------------------------------------------------------------
def test_introspection_calls_per_caller_are_limited_with_429_and_retry_after(store, monkeypatch):
    s.add_client("rs1", secret="rs1-secret")
    s.add_client("rs2", secret="rs2-secret")
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start)
    statuses = [send("introspect", {"token": "x"}, auth=basic("rs1", "rs1-secret"), ip=f"192.0.2.{n}").status
                for n in range(4)]
    assert statuses == [200, 200, 200, 200]
    over = send("introspect", {"token": "x"}, auth=basic("rs1", "rs1-secret"), ip="192.0.2.9")
    assert over.status == 429
    assert over.json()["error"] == "temporarily_unavailable"
    assert over.headers["Retry-After"] == "60"
    assert over.headers["Cache-Control"] == "no-store"
    assert send("introspect", {"token": "x"}, auth=basic("rs2", "rs2-secret"), ip="192.0.2.9").status == 200
    monkeypatch.setattr(clock, "now", lambda: start + 60)  # the next window
    assert send("introspect", {"token": "x"}, auth=basic("rs1", "rs1-secret"), ip="192.0.2.9").status == 200


def test_introspection_calls_per_address_are_limited_before_anything_is_read(store, monkeypatch):
    for n in range(3):
        s.add_client(f"caller{n}", secret="caller-secret")
    statuses = [send("introspect", {"token": "x"}, auth=basic(f"caller{n % 3}", "caller-secret"),
                     ip="198.51.100.7").status for n in range(6)]
    assert statuses == [200] * 6
    counting = Counting(store, monkeypatch)
    over = send("introspect", {"token": "x"}, auth=basic("caller0", "caller-secret"), ip="198.51.100.7")
    assert (over.status, over.json()["error"]) == (429, "temporarily_unavailable")
    assert counting.calls == []  # refused before the read ahead
    assert send("introspect", {"token": "x"}, auth=basic("caller0", "caller-secret"), ip="198.51.100.8").status \
        == 200


def test_warm_introspection_still_costs_one_round_trip(store, monkeypatch):
    s.add_client("rs", secret="rs-secret")
    _client, secret = s.add_client("svc")
    token = s.token("svc", secret)["access_token"]
    assert send("introspect", {"token": token}, auth=basic("rs", "rs-secret")).json()["active"] is True
    counting = Counting(store, monkeypatch)
    assert send("introspect", {"token": token}, auth=basic("rs", "rs-secret"), ip="192.0.2.30").json()["active"]
    assert counting.calls == ["get_many"]


def test_window_limiter_counts_per_key_and_forgets_the_oldest_keys():
    limiter = WindowLimiter(2, 10, max_keys=2)
    assert [limiter.hit("a", 100), limiter.hit("a", 101), limiter.hit("a", 102)] == [0, 0, 8]
    assert limiter.hit("b", 102) == 0
    assert limiter.hit("a", 110) == 0  # a new window
    assert limiter.hit("c", 110) == 0  # three keys: "b" (the oldest) is forgotten
    assert limiter.hit("b", 111) == 0 and limiter.hit("b", 111) == 0 and limiter.hit("b", 111) == 10
    assert WindowLimiter(0, 10).hit("x", 1) == 0  # 0: no limit


# --- the request's source address -----------------------------------------------------------------
def test_lambda_handler_sets_the_source_address_for_the_request_only():
    app = create_app(Protocol.OAUTH)

    @app.get("/where")
    def where():
        return json_response({"ip": context.source_ip.get()})

    handler = lambda_handler(app)
    event = {"version": "2.0", "routeKey": "GET /where", "rawPath": "/where", "rawQueryString": "",
             "headers": {}, "requestContext": {"requestId": "r1", "http": {"method": "GET", "path": "/where",
                                                                            "sourceIp": "2001:db8::7"}}}
    result = handler(event, LambdaContext())
    assert result["statusCode"] == 200 and result["body"] == '{"ip":"2001:db8::7"}'
    assert context.source_ip.get() == ""  # reset after the request


# --- API Gateway throttling ------------------------------------------------------------------------
THROTTLED = ("POST /api/oauth/token", "POST /api/oauth/introspect", "POST /api/oauth/revoke",
             "POST /api/oauth/login", "POST /api/oauth/device/code", "GET /device", "POST /device",
             "POST /iam/v2/oauth/token", "POST /iam/v2/oauth/device-code")


def test_the_http_api_throttles_every_route_and_the_credential_routes_tighter():
    api = template.load()["Resources"]["HttpApi"]["Properties"]
    default = api["DefaultRouteSettings"]
    assert default["ThrottlingBurstLimit"] > 0 and default["ThrottlingRateLimit"] > 0
    routes = api["RouteSettings"]
    assert set(THROTTLED) <= set(routes)
    existing = {f"{route.method} {route.path}" for route in template.routes()}
    assert set(routes) <= existing  # a setting for a route that does not exist fails the deployment
    for key in THROTTLED:
        assert 0 < routes[key]["ThrottlingBurstLimit"] <= default["ThrottlingBurstLimit"], key
        assert 0 < routes[key]["ThrottlingRateLimit"] <= default["ThrottlingRateLimit"], key
    assert routes["POST /api/oauth/login"]["ThrottlingRateLimit"] < routes["POST /api/oauth/token"][
        "ThrottlingRateLimit"]


def test_two_first_failures_at_once_both_count(monkeypatch):
    """The first failure of a window is a conditional Put: when another request started the window
    between our read and our write, ours is counted on it instead of replacing it."""
    from latchkey import ratelimit
    from latchkey.store import Put

    for _ in s.memory_services(monkeypatch):
        key = ratelimit.CounterKey("RACE#k", "CNT", "test_counter")
        real_read, raced = ratelimit.read, []

        def read(counter_key, now):
            found = real_read(counter_key, now)
            if not raced:  # another request's first failure lands between our read and our write
                raced.append(1)
                services.item_store().write(Put({"pk": "RACE#k", "sk": "CNT", "entity": "test_counter",
                                                 "failures": 1, "last_failure": now, "expires_at": now + 60}))
            return found

        monkeypatch.setattr(ratelimit, "read", read)
        after = ratelimit.record([key], window=60, now=1_000_000)
        assert after[key].failures == 2
        assert services.item_store().get("RACE#k", "CNT")["failures"] == 2
