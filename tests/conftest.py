"""Session-wide fixtures for tests that need the local infrastructure. Nothing starts unless a test asks.

Contract (other test modules rely on these names):

- ``dynamodb_local`` (session): a running DynamoDB Local, in memory. ``.endpoint`` is its URL;
  ``.client(service="dynamodb")`` is a boto3 client (``"dynamodbstreams"`` for its streams) with dummy
  credentials in us-east-1. Fails with a clear message when java or the jar is missing.
- ``fresh_table`` (function): the name of a new, uniquely named table built from ``template.yaml`` by
  :func:`devstack.dynamodb_local.create_table` (GSIs, stream, TTL) in ``dynamodb_local``; deleted after
  the test.
- ``kafka_cluster`` (session): librdkafka's mock cluster (or the broker in ``KAFKA_BOOTSTRAP``);
  ``.bootstrap`` is its ``host:port`` list.

Reading topics: ``tests.helpers.consume(bootstrap, topic, count, timeout)``.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory):
    from devstack.dynamodb_local import DynamoDBLocal

    local = DynamoDBLocal(log_path=tmp_path_factory.mktemp("dynamodb-local") / "dynamodb-local.log")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def fresh_table(dynamodb_local):
    from devstack.dynamodb_local import create_table, delete_table

    name = f"test-{uuid.uuid4().hex[:12]}"
    client = dynamodb_local.client()
    create_table(client, name)
    yield name
    delete_table(client, name)


@pytest.fixture(scope="session")
def kafka_cluster():
    from devstack.kafka_mock import KafkaMock

    cluster = KafkaMock().start()
    yield cluster
    cluster.stop()
