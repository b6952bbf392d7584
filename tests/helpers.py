"""Helpers shared by integration and e2e tests (import as ``from tests.helpers import consume``)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Consumed:
    """One Kafka message as read by :func:`consume`."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def json(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


def consume(bootstrap: str, topic: str, count: int = 1, timeout: float = 10.0) -> list[Consumed]:
    """Read ``topic`` from the beginning of every partition until ``count`` messages arrived or ``timeout``
    seconds passed; returns what was read (fewer than ``count`` on timeout), in arrival order.

    Partitions are assigned directly (no consumer group join); a topic that does not exist yet is
    waited for.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tests-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 3})
    found: list[Consumed] = []
    assigned: set[int] = set()
    deadline = time.monotonic() + timeout
    next_metadata = 0.0
    try:
        while len(found) < count and time.monotonic() < deadline:
            if time.monotonic() >= next_metadata:
                try:
                    topics = consumer.list_topics(topic, timeout=2).topics
                except KafkaException:
                    topics = {}
                meta = topics.get(topic)
                if meta is not None and meta.error is None:
                    new = [p for p in meta.partitions if p not in assigned]
                    if new:
                        consumer.incremental_assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in new])
                        assigned.update(new)
                next_metadata = time.monotonic() + 0.5
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            found.append(Consumed(topic=message.topic(), partition=message.partition(),
                                  offset=message.offset(), key=message.key(), value=message.value(),
                                  headers=list(message.headers() or [])))
    finally:
        consumer.close()
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the layer's services on the in-memory store ------------------------------------------------------
TEST_ISSUER = "https://auth.example.com"
TEST_KEK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # base64 of bytes(range(32))
_SERVICE_ENV = ("KMS_KEY_ID", "DYNAMODB_ENDPOINT", "SIGNING_ALGS", "CLIENT_REGISTRATION", "KAFKA_TOPIC_PREFIX",
                "JWKS_MAX_AGE", "ACCESS_TOKEN_TTL", "ACCESS_TOKEN_ALG", "NAMESPACE", "PARENT_NAMESPACE")


def memory_services(monkeypatch, *, store=None, admin_client: bool = False):
    """For a fixture to ``yield from``: Latchkey's services on an in-memory store with a local key, the
    test issuer and a bootstrapped key set; with ``admin_client`` also the ``dev-admin`` client that
    in-process admin tokens name."""
    from latchkey import services, signing
    from latchkey.apps import ADMIN_SCOPES
    from latchkey.clients import Client

    for name, value in {"STORE": "memory", "LOCAL_KEK": TEST_KEK, "ISSUER": TEST_ISSUER,
                        "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in _SERVICE_ENV:
        monkeypatch.delenv(name, raising=False)
    services.reset()
    if store is not None:
        services.override(item_store=store)
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    if admin_client:
        services.client_store().create(Client(client_id="dev-admin", name="Admin", scope=ADMIN_SCOPES,
                                              grant_types=("client_credentials",), created_at=1, updated_at=1))
    yield store
    services.reset()


# --- HTTP against the local stack ----------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)


def http(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 15) -> Answer:
    """One request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def http_json(method: str, url: str, body=None, *, token: str | None = None) -> Answer:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    return http(method, url, body=data, headers=headers)


def http_form(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> Answer:
    return http("POST", url, body=urllib.parse.urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


@dataclass(frozen=True)
class LambdaContext:
    """What handlers read from Lambda's context object."""

    function_name: str = "latchkey-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:latchkey-test"
    aws_request_id: str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
