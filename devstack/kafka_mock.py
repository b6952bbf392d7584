"""Kafka for the local stack: librdkafka's built-in mock cluster, or a real broker from ``KAFKA_BOOTSTRAP``.

The mock cluster lives inside a "holder" client of this process (``test.mock.num.brokers``); any other
librdkafka client, in this process or another one (``python -m devstack consume``, kcat), connects to
the bootstrap address it reports for as long as the holder lives. Topics are created on first use
(4 partitions each).
"""

from __future__ import annotations

import os
from typing import Any


class KafkaUnavailable(RuntimeError):
    pass


class KafkaMock:
    """``KafkaMock(brokers=1).start().bootstrap``; :meth:`stop` ends the cluster.

    When ``KAFKA_BOOTSTRAP`` is set in the environment (or ``bootstrap`` is given) that broker is used
    as is and nothing is started.
    """

    def __init__(self, brokers: int = 1, *, bootstrap: str | None = None) -> None:
        if brokers < 1:
            raise ValueError("the mock cluster needs at least one broker")
        self.brokers = brokers
        external = bootstrap if bootstrap is not None else os.environ.get("KAFKA_BOOTSTRAP", "")
        self.external = bool(external)
        self.bootstrap = external
        self._holder: Any = None

    def start(self, timeout: float = 10.0) -> KafkaMock:
        if self.external or self._holder is not None:
            return self
        from confluent_kafka import Producer

        # log_level 3 (errors only): the holder otherwise logs a notice about the replaced bootstrap.
        self._holder = Producer({"test.mock.num.brokers": self.brokers, "log_level": 3})
        metadata = self._holder.list_topics(timeout=timeout)
        if not metadata.brokers:
            self._holder = None
            raise KafkaUnavailable("librdkafka's mock cluster reported no brokers")
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in sorted(metadata.brokers.values(),
                                                                      key=lambda b: b.id))
        return self

    @property
    def running(self) -> bool:
        return self.external or self._holder is not None

    def stop(self) -> None:
        """Destroy the mock cluster (a real broker is left alone)."""
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.flush(0)
            del holder
        if not self.external:
            self.bootstrap = ""

    def __enter__(self) -> KafkaMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
