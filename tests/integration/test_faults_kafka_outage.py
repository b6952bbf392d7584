"""Kafka is down during a burst of token issuance, then comes back.

The token handler runs in-process against DynamoDB Local; the table's stream feeds the real relay
function through devstack's poller (StreamSource + ReportBatchItemFailures, as Lambda's event source
mapping does). While Kafka is "down" the relay's bootstrap is a closed port: every batch fails, is
reported, and is retried from the first unacknowledged record. No token request fails meanwhile (API
functions only write the outbox). Once the relay reaches the live cluster, every event arrives: counted
by event ``id`` on the topic, none is missing, and any duplicate is a byte-identical copy (at-least-once).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter, defaultdict

import pytest

from devstack.dynamodb_local import free_port
from devstack.relay import Relay, StreamSource, relay_function
from latchkey import services, signing
from latchkey.events import OUTBOX_ENTITY
from latchkey.store.dynamodb import DynamoItemStore
from tests.helpers import consume
from tests.unit import oauth_support as s

pytestmark = pytest.mark.integration

BURST = 40


@pytest.fixture
def outage_env(monkeypatch, dynamodb_local, fresh_table, kafka_cluster):
    import latchkey_kafka

    prefix = f"faults{time.time_ns()}"
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: Kafka is down
    monkeypatch.setattr(latchkey_kafka, "_publishers", {})
    for name, value in {"KAFKA_BOOTSTRAP": closed, "KAFKA_AUTH": "plaintext", "KAFKA_TOPIC_PREFIX": prefix,
                        "KAFKA_FLUSH_TIMEOUT": "1", "STORE": "dynamodb", "TABLE_NAME": fresh_table,
                        "ISSUER": s.ISSUER, "LOCAL_KEK": base64.b64encode(bytes(range(32))).decode("ascii"),
                        "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in ("KMS_KEY_ID", "ACCESS_TOKEN_ALG", "ACCESS_TOKEN_TTL", "NAMESPACE", "PARENT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    items = DynamoItemStore(dynamodb_local.client(), fresh_table)

    def use_services() -> None:
        services.reset()
        services.override(item_store=items)

    use_services()
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())

    def kafka_returns() -> None:
        monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_cluster.bootstrap)
        use_services()  # the relay re-reads its settings: the next batch goes to the live cluster

    yield prefix, kafka_returns
    latchkey_kafka.close_publishers()
    services.reset()


def outbox_ids(dynamodb_local, table: str) -> set[str]:
    pages = dynamodb_local.client().get_paginator("scan").paginate(
        TableName=table, FilterExpression="#e = :e", ExpressionAttributeNames={"#e": "entity"},
        ExpressionAttributeValues={":e": {"S": OUTBOX_ENTITY}}, ConsistentRead=True)
    return {json.loads(item["message"]["S"])["id"] for page in pages for item in page["Items"]}


def test_events_of_a_burst_during_a_kafka_outage_all_arrive_once_it_returns(dynamodb_local, fresh_table,
                                                                            kafka_cluster, outage_env):
    prefix, kafka_returns = outage_env
    stream_arn = dynamodb_local.client().describe_table(TableName=fresh_table)["Table"]["LatestStreamArn"]
    relay = Relay(StreamSource(dynamodb_local.client("dynamodbstreams"), stream_arn), relay_function().invoke,
                  backoff=0.05, max_backoff=0.2, batch_size=25)
    _client, secret = s.add_client("bursty", scope="read")
    auth = {"Authorization": s.basic("bursty", secret)}

    answers = []
    for number in range(BURST):  # the burst, with the relay trying (and failing) to publish in between
        answers.append(s.call("token", {"grant_type": "client_credentials"}, headers=auth))
        if number % 10 == 9:
            relay.step()
    assert [a.status for a in answers] == [200] * BURST  # Kafka being down fails no API request
    deadline = time.monotonic() + 30
    while relay.invocations < 4 and time.monotonic() < deadline:
        relay.step()
        time.sleep(0.05)
    assert relay.invocations >= 4 and relay.delivered == 0  # every attempt failed and nothing was skipped
    # the failed batch is held (the rest waits in the stream) and retried from its first record
    assert sum(len(lane.pending) for lane in relay.source.lanes()) == min(BURST, relay.batch_size)

    kafka_returns()
    relay.drain(timeout=60)
    assert relay.delivered == BURST

    expected = outbox_ids(dynamodb_local, fresh_table)
    assert len(expected) == BURST
    messages = consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=BURST, timeout=20)
    messages += consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=10 * BURST, timeout=1)[BURST:]
    copies: dict[str, set[bytes]] = defaultdict(set)
    for message in messages:
        copies[message.json()["id"]].add(message.value)
    assert set(copies) == expected  # none missing, nothing that was not committed
    assert all(len(values) == 1 for values in copies.values())  # a duplicate is the same event again
    counted = Counter(message.json()["id"] for message in messages)
    assert all(count >= 1 for count in counted.values())
    assert {m.key for m in messages} == {b"bursty"}
