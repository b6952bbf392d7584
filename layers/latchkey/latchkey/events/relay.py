"""The event relay: DynamoDB Streams records of outbox rows → Kafka.

Runs in the relay function (Lambda event source mapping on the table's stream, filtered to outbox
INSERTs) and in the local stack. The Kafka client is not imported here: the caller passes a
:class:`Publisher` (``latchkey_kafka`` provides the confluent-kafka one), so API functions never load it.

Failure handling (ReportBatchItemFailures): the first record that was not acknowledged is reported and
Lambda retries the batch from it, so no event is lost; records before it are not sent again, records
after it may be (at-least-once, consumers de-duplicate on ``id``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..store import ENTITY
from ..store.dynamodb import deserialize
from . import OUTBOX_ENTITY, topic_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    sequence: str
    topic: str
    key: bytes
    value: bytes


class Publisher(Protocol):
    def publish(self, messages: Sequence[Outgoing], timeout: float) -> list[bool]:
        """Send every message; ``True`` per message that the cluster acknowledged within ``timeout``."""
        ...


class MalformedOutboxRow(Exception):
    pass


def outgoing(record: dict[str, Any], prefix: str) -> Outgoing | None:
    """The Kafka message for one stream record, or None when the record is not a new outbox row."""
    if record.get("eventName") != "INSERT":
        return None
    data = record.get("dynamodb", {})
    image = data.get("NewImage")
    if not image or image.get(ENTITY, {}).get("S") != OUTBOX_ENTITY:
        return None
    try:
        row = deserialize(image)
        return Outgoing(sequence=data["SequenceNumber"], topic=topic_name(row["topic"], prefix),
                        key=row["partition_key"].encode("utf-8"), value=row["message"].encode("utf-8"))
    except (KeyError, AttributeError, TypeError) as exc:
        raise MalformedOutboxRow(data.get("SequenceNumber", "?")) from exc


def relay(records: Sequence[dict[str, Any]], publisher: Publisher, *, prefix: str,
          timeout: float) -> dict[str, list[dict[str, str]]]:
    """Publish a stream batch; return Lambda's partial batch response."""
    messages: list[Outgoing] = []
    stop_at: str | None = None
    for record in records:
        try:
            message = outgoing(record, prefix)
        except MalformedOutboxRow as exc:
            # Never drop an event silently: stop here, retry, and let the DLQ keep it if it never heals.
            log.error("malformed outbox row at sequence %s", exc)
            stop_at = str(exc)
            break
        if message is not None:
            messages.append(message)
    delivered = publisher.publish(messages, timeout) if messages else []
    for message, ok in zip(messages, delivered, strict=True):
        if not ok:
            log.warning("kafka did not acknowledge sequence %s; the batch will be retried from it",
                        message.sequence)
            return _failed(message.sequence)
    return _failed(stop_at) if stop_at is not None else {"batchItemFailures": []}


def _failed(sequence: str) -> dict[str, list[dict[str, str]]]:
    return {"batchItemFailures": [{"itemIdentifier": sequence}]}
