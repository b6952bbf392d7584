"""Per-request context (request id, trace id), set by :mod:`latchkey.http` for each invocation."""

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="")
trace_id: ContextVar[str] = ContextVar("trace_id", default="")
