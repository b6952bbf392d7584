"""Token → introspect → revoke → introspect on DynamoDB Local, with the events read back from Kafka.

The token, introspection and revocation handlers run in-process against a fresh DynamoDB Local table
(conditional writes, transactions and TTL attributes as DynamoDB evaluates them); the table's stream feeds
the real relay function, and ``oauthTokenGenerated`` / ``oauthTokenRevoked`` arrive on the Kafka mock
cluster in the shape events/asyncapi.yaml documents.
"""

from __future__ import annotations

import base64
import time

import pytest

from devstack.relay import Relay, StreamSource, relay_function
from latchkey import rfc9068, services, signing
from latchkey.store.dynamodb import DynamoItemStore
from tests.helpers import consume
from tests.helpers_asyncapi import validate_message
from tests.unit import oauth_support as s

pytestmark = pytest.mark.integration


@pytest.fixture
def table_env(monkeypatch, dynamodb_local, fresh_table, kafka_cluster):
    import latchkey_kafka

    prefix = f"tokens{time.time_ns()}"
    monkeypatch.setattr(latchkey_kafka, "_publishers", {})
    for name, value in {"KAFKA_BOOTSTRAP": kafka_cluster.bootstrap, "KAFKA_AUTH": "plaintext",
                        "KAFKA_TOPIC_PREFIX": prefix, "KAFKA_FLUSH_TIMEOUT": "5", "STORE": "dynamodb",
                        "TABLE_NAME": fresh_table, "ISSUER": s.ISSUER,
                        "LOCAL_KEK": base64.b64encode(bytes(range(32))).decode("ascii"),
                        "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in ("KMS_KEY_ID", "ACCESS_TOKEN_ALG", "ACCESS_TOKEN_TTL", "NAMESPACE", "PARENT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    services.reset()
    services.override(item_store=DynamoItemStore(dynamodb_local.client(), fresh_table))
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    yield prefix
    latchkey_kafka.close_publishers()
    services.reset()


def test_token_introspect_revoke_introspect_with_events_on_kafka(dynamodb_local, fresh_table, kafka_cluster,
                                                                  table_env):
    prefix = table_env
    _client, secret = s.add_client("machine", scope="read write")
    auth = {"Authorization": s.basic("machine", secret)}

    issued = s.call("token", {"grant_type": "client_credentials", "scope": "read"}, headers=auth)
    assert issued.status == 200, issued.body
    token = issued.json()["access_token"]
    claims = rfc9068.verify(services.key_ring(), token, issuer=s.ISSUER)

    answer = s.call("introspect", {"token": token}, headers=auth)
    assert answer.status == 200 and answer.json()["active"] is True
    assert answer.json()["jti"] == claims["jti"]

    assert s.call("revoke", {"token": token}, headers=auth).status == 200
    row = services.item_store().get(f"REVOKED#{claims['jti']}", "REVOKED")
    assert row is not None and row["expires_at"] == claims["exp"]
    assert s.call("introspect", {"token": token}, headers=auth).json() == {"active": False}
    assert s.call("revoke", {"token": token}, headers=auth).status == 200  # again: nothing new

    stream_arn = dynamodb_local.client().describe_table(TableName=fresh_table)["Table"]["LatestStreamArn"]
    relay = Relay(StreamSource(dynamodb_local.client("dynamodbstreams"), stream_arn), relay_function().invoke,
                  backoff=0.1)
    relay.drain(timeout=20)
    assert relay.delivered == 2

    messages = consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=3, timeout=5)
    assert [m.json()["name"] for m in messages] == ["oauthTokenGenerated", "oauthTokenRevoked"]
    for message in messages:
        assert message.key == b"machine"  # a machine token: keyed by the client id
        value = message.json()
        assert (value["clientId"], value["userId"]) == ("machine", "")
        validate_message(message.value, key=message.key, topic=message.topic, prefix=prefix)
    assert messages[0].json()["payload"]["oauth"]["responseType"] == "token"


def test_private_key_jwt_replay_is_refused_by_dynamodb_conditions(table_env):
    private, jwk = s.key_pair("RS256")
    s.add_client("signer", method="private_key_jwt", jwks={"keys": [jwk]})
    assertion = s.assertion("signer", private, "RS256", jwk["kid"])
    form = {"grant_type": "client_credentials", "client_assertion_type": s.JWT_BEARER, "client_assertion": assertion}
    assert s.call("token", form).status == 200
    replay = s.call("token", form)
    assert (replay.status, replay.error) == (401, "invalid_client")
