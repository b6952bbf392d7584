"""The transactional outbox end to end on real parts: a state change and its event commit together in
DynamoDB Local, the table's stream feeds the real relay function, and the message that arrives on the
Kafka mock cluster (real Kafka protocol) matches events/asyncapi.yaml. A change that fails publishes
nothing."""

from __future__ import annotations

import time

import pytest

from devstack.relay import Relay, StreamSource, relay_function
from latchkey import services
from latchkey.clients import Client, ClientExists, ItemClientStore
from latchkey.events import EventName, build_event, outbox_put
from latchkey.store.dynamodb import DynamoItemStore
from tests.helpers import consume
from tests.helpers_asyncapi import validate_message

pytestmark = pytest.mark.integration


@pytest.fixture
def relay_env(monkeypatch, kafka_cluster):
    import latchkey_kafka

    prefix = f"pipeline{time.time_ns()}"
    monkeypatch.setattr(latchkey_kafka, "_publishers", {})
    for name, value in {"KAFKA_BOOTSTRAP": kafka_cluster.bootstrap, "KAFKA_AUTH": "plaintext",
                        "KAFKA_TOPIC_PREFIX": prefix, "KAFKA_FLUSH_TIMEOUT": "5",
                        "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    services.reset()
    yield prefix
    latchkey_kafka.close_publishers()
    services.reset()


def _client(client_id):
    return Client(client_id=client_id, name="Pipeline app", created_at=1, updated_at=1)


def test_committed_events_reach_kafka_in_the_asyncapi_shape_and_failed_changes_publish_nothing(
        dynamodb_local, fresh_table, kafka_cluster, relay_env):
    prefix = relay_env
    items = DynamoItemStore(dynamodb_local.client(), fresh_table)
    clients = ItemClientStore(items)
    committed = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace="ns", parent_namespace="parent",
                            client_id="app1", user_id="user-1", session_id="s1", response_type="code",
                            trace_id="trace-1")
    clients.create(_client("app1"), also=[outbox_put(committed, ttl=3600)])

    doomed = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace="ns", parent_namespace="parent",
                         client_id="app1", user_id="user-1")
    with pytest.raises(ClientExists):
        clients.create(_client("app1"), also=[outbox_put(doomed, ttl=3600)])
    assert items.get(f"EVENT#{doomed.id}", "EVENT") is None

    third_party = build_event(EventName.OAUTH_THIRD_PARTY_TOKEN_GENERATED, namespace="ns",
                              parent_namespace="parent", client_id="app1", platform_id="steam",
                              display_name="Steam")
    clients.replace(_client("app1").model_copy(update={"name": "Renamed"}),
                    also=[outbox_put(third_party, ttl=3600)])

    stream_arn = dynamodb_local.client().describe_table(TableName=fresh_table)["Table"]["LatestStreamArn"]
    relay = Relay(StreamSource(dynamodb_local.client("dynamodbstreams"), stream_arn), relay_function().invoke,
                  backoff=0.1)
    relay.drain(timeout=20)
    assert relay.delivered == 2

    [token] = consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=2, timeout=3)
    assert token.key == b"user-1"
    assert token.json() == committed.message
    validate_message(token.value, key=token.key, topic=token.topic, prefix=prefix)

    [login] = consume(kafka_cluster.bootstrap, f"{prefix}.oauthThirdPartyToken", count=1, timeout=5)
    assert login.key == b"app1"  # no user: keyed by client id
    assert login.json()["payload"]["oauthThirdParty"] == {"platformId": "steam", "displayName": "Steam"}
    validate_message(login.value, key=login.key, topic=login.topic, prefix=prefix)
