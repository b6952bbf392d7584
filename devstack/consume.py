"""Reading the local stack's Kafka topics (``python -m devstack consume``).

Partitions are assigned directly (no consumer group, so no rebalance wait) and topics that do not
exist yet are picked up as soon as the relay creates them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any


def all_topics(prefix: str) -> list[str]:
    """Every topic Latchkey publishes to, with the stack's prefix."""
    from latchkey.events import TOPICS, topic_name

    return sorted({topic_name(topic, prefix) for topic in TOPICS.values()})


def resolve_topics(requested: Iterable[str], prefix: str) -> list[str]:
    """``oauthToken`` or ``local.oauthToken`` both mean the prefixed topic; unknown names are used as is."""
    from latchkey.events import TOPICS, topic_name

    short = set(TOPICS.values())
    return sorted({topic_name(t, prefix) if t in short else t for t in requested})


def _decode(raw: bytes | None) -> Any:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def iter_messages(bootstrap: str, topics: Iterable[str], *, from_beginning: bool = True,
                  timeout: float | None = None, max_messages: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``{"topic", "partition", "offset", "timestamp", "key", "value"}`` (JSON values parsed)
    until ``max_messages`` were read or ``timeout`` seconds passed (forever when both are None)."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

    wanted = set(topics)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"devstack-consume-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 3})
    assigned: set[tuple[str, int]] = set()
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    deadline = None if timeout is None else time.monotonic() + timeout
    next_refresh = 0.0
    count = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            if time.monotonic() >= next_refresh:
                try:
                    metadata = consumer.list_topics(timeout=2)
                except KafkaException:
                    metadata = None
                if metadata is not None:
                    new = [TopicPartition(name, p, start) for name in wanted & set(metadata.topics)
                           for p in metadata.topics[name].partitions if (name, p) not in assigned]
                    if new:
                        consumer.incremental_assign(new)
                        assigned.update((tp.topic, tp.partition) for tp in new)
                next_refresh = time.monotonic() + 1.0
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            count += 1
            key = message.key()
            yield {"topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
                   "timestamp": message.timestamp()[1],
                   "key": None if key is None else key.decode("utf-8", "replace"),
                   "value": _decode(message.value())}
            if max_messages is not None and count >= max_messages:
                return
    finally:
        consumer.close()
