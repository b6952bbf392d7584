"""Helpers shared by integration and e2e tests (import as ``from tests.helpers import consume``)."""

from __future__ import annotations

import json
import socket
import time
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
