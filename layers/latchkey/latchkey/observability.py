"""Structured logs and CloudWatch metrics, created once per process, without Powertools.

Powertools' Logger and Metrics cost about 40 ms of every cold start (the package's import); what
Latchkey uses of them is small and kept here with the same output:

- :data:`logger`: one JSON object per line on stdout (``level``, ``message``, ``timestamp``,
  ``service``, ``location``, the keys added by :meth:`JsonLogger.append_keys` for the invocation, the
  record's ``extra`` and, for :meth:`~logging.Logger.exception`, the formatted ``exception``, which
  goes to the log only, never to a client). The level is ``LOG_LEVEL`` (default ``INFO``).
- :data:`metrics`: CloudWatch embedded metric format (EMF) objects on stdout, flushed at the end of
  each invocation by :meth:`EmfMetrics.log_metrics`, namespace ``METRICS_NAMESPACE`` (default
  ``Latchkey``), dimension ``service``; the first invocation of an instance also emits ``ColdStart``.
  ``METRICS_DISABLED=true`` turns them off (tests, the local stack).

Tracing is Lambda's active tracing (``Tracing: Active`` in template.yaml); no X-Ray SDK is loaded.
Nothing here does I/O at import.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

SERVICE = "latchkey"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _JsonFormatter(logging.Formatter):
    def __init__(self, keys: dict[str, Any]) -> None:
        super().__init__()
        self._keys = keys

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname, "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "service": SERVICE, "location": f"{record.funcName}:{record.lineno}", **self._keys}
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str, separators=(",", ":"))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted (Lambda's, or a test's capture)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class JsonLogger:
    """The few things the handlers use: log calls with ``extra``, per-invocation keys, a decorator."""

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}
        self._logger = logging.getLogger(SERVICE)
        self._logger.propagate = False
        for old in list(self._logger.handlers):
            self._logger.removeHandler(old)
        handler = _StdoutHandler()
        handler.setFormatter(_JsonFormatter(self._keys))
        self._logger.addHandler(handler)
        self._logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())

    def append_keys(self, **keys: Any) -> None:
        self._keys.update(keys)

    def clear_keys(self) -> None:
        self._keys.clear()

    def debug(self, message: str, **kwargs: Any) -> None:
        self._logger.debug(message, stacklevel=2, **kwargs)

    def info(self, message: str, **kwargs: Any) -> None:
        self._logger.info(message, stacklevel=2, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> None:
        self._logger.warning(message, stacklevel=2, **kwargs)

    def error(self, message: str, **kwargs: Any) -> None:
        self._logger.error(message, stacklevel=2, **kwargs)

    def exception(self, message: str, **kwargs: Any) -> None:
        self._logger.exception(message, stacklevel=2, **kwargs)

    def inject_lambda_context(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Start each invocation with fresh keys: the function and its request id."""

        @functools.wraps(function)
        def wrapper(event: Any, context: Any) -> Any:
            self.clear_keys()
            self.append_keys(function_name=getattr(context, "function_name", ""),
                             function_request_id=getattr(context, "aws_request_id", ""))
            return function(event, context)

        return wrapper


class EmfMetrics:
    """Counters flushed as one CloudWatch EMF object per invocation."""

    def __init__(self) -> None:
        self.namespace = os.environ.get("METRICS_NAMESPACE", "Latchkey")
        self._values: dict[str, tuple[str, float]] = {}
        self._cold = True

    def mark_cold(self) -> None:
        """The next invocation is an instance's first (a SnapStart restore)."""
        self._cold = True

    @property
    def disabled(self) -> bool:
        return os.environ.get("METRICS_DISABLED", "").lower() in ("1", "true")

    def add_metric(self, name: str, unit: str, value: float) -> None:
        previous = self._values.get(name, (unit, 0.0))[1]
        self._values[name] = (unit, previous + value)

    def _emit(self, values: dict[str, tuple[str, float]], dimensions: dict[str, str]) -> None:
        blob: dict[str, Any] = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": self.namespace, "Dimensions": [sorted(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in values.items()]}]},
            **dimensions, **{name: value for name, (_, value) in values.items()}}
        sys.stdout.write(json.dumps(blob, separators=(",", ":")) + "\n")

    def flush(self) -> dict[str, tuple[str, float]]:
        values, self._values = self._values, {}
        if values and not self.disabled:
            self._emit(values, {"service": SERVICE})
        return values

    def log_metrics(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Flush after each invocation (also when it raises); ``ColdStart`` on an instance's first."""

        @functools.wraps(function)
        def wrapper(event: Any, context: Any) -> Any:
            if self._cold:
                self._cold = False
                if not self.disabled:
                    self._emit({"ColdStart": ("Count", 1.0)},
                               {"service": SERVICE, "function_name": getattr(context, "function_name", "")})
            try:
                return function(event, context)
            finally:
                self.flush()

        return wrapper


logger = JsonLogger()
metrics = EmfMetrics()
