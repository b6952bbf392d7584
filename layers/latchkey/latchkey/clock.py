"""Time, in one place so tests can move it."""

import time
from datetime import UTC, datetime


def now() -> int:
    """Epoch seconds."""
    return int(time.time())


def rfc3339(epoch: float | None = None) -> str:
    """UTC RFC 3339 with fractional seconds (AccelByte's event timestamp format)."""
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
