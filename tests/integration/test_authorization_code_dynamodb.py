"""The authorization code flow on DynamoDB Local: every conditional write of the flow as DynamoDB evaluates it.

The handlers run in-process behind the local gateway (``tests.flow_support``) against a fresh DynamoDB
Local table: the pending request, the session, the consent, the code consumed by one conditional update
(``attribute_not_exists(used_at)`` and an unexpired TTL), the refresh token rotation, the throttle
counters (``ADD``), the user's generation bump, and the grant check that reads user, app and connection
in one ``BatchGetItem``. The outbox rows go through the real relay to the Kafka mock cluster.
"""

from __future__ import annotations

import time

import pytest

from devstack.relay import Relay, StreamSource, relay_function
from latchkey import clock, revocation, services
from latchkey.store.dynamodb import DynamoItemStore
from tests.flow_support import Agent, add_app, add_user, basic, flow_stack, pkce_pair
from tests.helpers import consume
from tests.helpers_asyncapi import validate_message

pytestmark = pytest.mark.integration

REDIRECT = "https://app.example/cb"
PASSWORD = "a long test password"


@pytest.fixture
def base(monkeypatch, dynamodb_local, fresh_table, kafka_cluster):
    import latchkey_kafka

    prefix = f"flow{time.time_ns()}"
    monkeypatch.setattr(latchkey_kafka, "_publishers", {})
    for name, value in {"KAFKA_BOOTSTRAP": kafka_cluster.bootstrap, "KAFKA_AUTH": "plaintext",
                        "KAFKA_TOPIC_PREFIX": prefix, "KAFKA_FLUSH_TIMEOUT": "5", "LOGIN_SLOWDOWN_AFTER": "2",
                        "LOGIN_MAX_FAILURES": "3"}.items():
        monkeypatch.setenv(name, value)
    store = DynamoItemStore(dynamodb_local.client(), fresh_table)
    for url in flow_stack(monkeypatch, store=store):
        yield url, prefix
    latchkey_kafka.close_publishers()


def _code(agent: Agent, client_id: str, **params: str) -> dict[str, str]:
    return agent.authorize(client_id, "alice", PASSWORD, redirect_uri=REDIRECT, **params)


def test_public_pkce_flow_code_reuse_and_refresh_rotation_on_dynamodb(base, dynamodb_local, fresh_table,
                                                                      kafka_cluster, monkeypatch):
    url, prefix = base
    user = add_user("alice", PASSWORD, email="alice@example.com")
    client_id, _ = add_app(public=True)
    agent = Agent(url)
    verifier, challenge = pkce_pair()
    query = _code(agent, client_id, scope="openid email offline_access", state="st", nonce="nn",
                  code_challenge=challenge, code_challenge_method="S256")
    assert (query["state"], query["iss"]) == ("st", url)

    exchange = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
                "client_id": client_id, "code_verifier": verifier}
    first = agent.token(exchange)
    assert first.status == 200, first.text
    tokens = first.json()
    assert tokens["scope"] == "email offline_access openid"
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens)

    again = agent.token(exchange)  # the conditional update refuses the second use
    assert (again.status, again.json()["error"]) == (400, "invalid_grant")
    denied = services.item_store().get(f"REVOKED#{_jti(tokens['access_token'])}", "REVOKED")
    assert denied is not None  # the first use's access token is on the denylist
    refresh = agent.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                           "client_id": client_id})
    assert (refresh.status, refresh.json()["error"]) == (400, "invalid_grant")  # its family is revoked

    # a fresh code (consent is remembered: no consent page) gives a refresh token that rotates once
    verifier, challenge = pkce_pair()
    query = _code(agent, client_id, scope="openid offline_access", code_challenge=challenge,
                  code_challenge_method="S256")
    tokens = agent.token({**exchange, "code": query["code"], "code_verifier": verifier}).json()
    rotated = agent.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                           "client_id": client_id})
    assert rotated.status == 200, rotated.text
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    later = clock.now() + services.settings().refresh_token_reuse_grace  # a replay after the grace window
    monkeypatch.setattr(clock, "now", lambda: later)
    replay = agent.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                          "client_id": client_id})
    assert (replay.status, replay.json()["error"]) == (400, "invalid_grant")

    # revoking the user (one generation bump) ends the session: the next authorize asks for a login
    revocation.revoke_user(services.user_store().get(user.user_id))
    answer = agent.get(agent.authorize_url(client_id, redirect_uri=REDIRECT, scope="openid",
                                           code_challenge=challenge, code_challenge_method="S256"))
    assert answer.status == 302 and answer.location.startswith(f"{url}/api/oauth/login?")

    stream_arn = dynamodb_local.client().describe_table(TableName=fresh_table)["Table"]["LatestStreamArn"]
    relay = Relay(StreamSource(dynamodb_local.client("dynamodbstreams"), stream_arn), relay_function().invoke,
                  backoff=0.1)
    relay.drain(timeout=30)
    requests = consume(kafka_cluster.bootstrap, f"{prefix}.oauthRequest", count=3, timeout=10)
    assert [m.json()["name"] for m in requests] == ["oauthRequestAuthorized"] * 3
    generated = [m for m in consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=10, timeout=10)
                 if m.json()["name"] == "oauthTokenGenerated"]
    assert len(generated) == 3  # two code exchanges and one refresh
    for message in requests + generated:
        validate_message(message.value, key=message.key, topic=message.topic, prefix=prefix)
        assert message.json()["clientId"] == client_id
    assert {m.json()["userId"] for m in generated} == {user.user_id}
    assert {m.json()["payload"]["oauth"]["responseType"] for m in generated} == {"code"}


def test_confidential_flow_and_lockout_counters_on_dynamodb(base):
    url, _ = base
    add_user("alice", PASSWORD)
    client_id, secret = add_app()
    agent = Agent(url)
    start = agent.get(agent.authorize_url(client_id, redirect_uri=REDIRECT, scope="openid"))
    page = agent.get(start.location)
    for _ in range(2):
        assert agent.login(page, "alice", "wrong password").status == 401
    slowed = agent.login(page, "alice", PASSWORD)  # two failures: the next try must wait (LOGIN_SLOWDOWN_AFTER)
    assert slowed.status == 429 and int(slowed.headers["retry-after"]) >= 1
    time.sleep(int(slowed.headers["retry-after"]))
    assert agent.login(page, "alice", "wrong password").status == 401  # the third failure locks
    locked = agent.login(page, "alice", PASSWORD)
    assert locked.status == 429 and "Too many failed sign-in attempts" in locked.text

    other = Agent(url)  # another user (same address: the address limit is 50) is not affected
    user_b = add_user("bob", PASSWORD)
    query = other.authorize(client_id, "bob", PASSWORD, redirect_uri=REDIRECT, scope="openid profile", state="b")
    token = other.token({"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT},
                        authorization=basic(client_id, secret))
    assert token.status == 200, token.text
    assert services.connection_store().get(user_b.user_id, client_id).scope == "openid profile"


def _jti(token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["jti"]
