"""The Kafka side of the event relay: a confluent-kafka (librdkafka) publisher.

Only the event relay function carries this layer; the API functions never import Kafka. In AWS the
relay authenticates to MSK with IAM (SASL/OAUTHBEARER with a token from
``aws-msk-iam-sasl-signer-python``); locally it speaks plaintext to librdkafka's mock cluster or to
the broker named by ``KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from latchkey.config import KafkaAuth, Settings
from latchkey.events.relay import Outgoing

_lock = threading.Lock()
_publishers: dict[tuple[str, str, str], KafkaPublisher] = {}


def msk_oauth_callback(region: str) -> Any:
    """confluent-kafka ``oauth_cb`` for MSK IAM. The signer returns its expiry in *milliseconds*;
    librdkafka wants seconds since the epoch."""

    def callback(_config: str) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return token, expiry_ms / 1000

    return callback


def producer_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        # Idempotent producer: retries never duplicate or reorder within a partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": int(settings.kafka_flush_timeout * 1000),
        "client.id": f"latchkey-relay-{settings.namespace}",
    }
    if settings.kafka_auth is KafkaAuth.IAM:
        config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
                       "oauth_cb": msk_oauth_callback(settings.aws_region)})
    return config


class KafkaPublisher:
    """Publishes a batch and reports, per message, whether the cluster acknowledged it."""

    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(config)
        self.fatal = False

    def publish(self, messages: Sequence[Outgoing], timeout: float) -> list[bool]:
        outcome: list[bool | None] = [None] * len(messages)

        def on_delivery(index: int) -> Any:
            def report(error: Any, _message: Any) -> None:
                outcome[index] = error is None
                if error is not None and error.fatal():
                    self.fatal = True
            return report

        for index, message in enumerate(messages):
            try:
                self._producer.produce(message.topic, key=message.key, value=message.value,
                                       on_delivery=on_delivery(index))
            except BufferError:
                self._producer.poll(1)
                try:
                    self._producer.produce(message.topic, key=message.key, value=message.value,
                                           on_delivery=on_delivery(index))
                except BufferError:
                    break  # the rest is retried with the batch
            self._producer.poll(0)
        self._producer.flush(timeout)
        return [bool(ok) for ok in outcome]

    def close(self, timeout: float) -> None:
        self._producer.flush(timeout)


def publisher(settings: Settings) -> KafkaPublisher:
    """One producer per configuration per process, re-created after a fatal (idempotence) error."""
    key = (settings.kafka_bootstrap, settings.kafka_auth.value, settings.aws_region)
    with _lock:
        found = _publishers.get(key)
        if found is None or found.fatal:
            found = _publishers[key] = KafkaPublisher(producer_config(settings))
        return found


def close_publishers(timeout: float = 1.0) -> None:
    """Flush and drop every cached producer (the local stack calls this when it stops)."""
    with _lock:
        found = list(_publishers.values())
        _publishers.clear()
    for publisher_ in found:
        publisher_.close(timeout)
