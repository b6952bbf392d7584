"""Per-request context (request id, trace id, source address), set by :mod:`latchkey.http` for each invocation."""

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="")
trace_id: ContextVar[str] = ContextVar("trace_id", default="")
source_ip: ContextVar[str] = ContextVar("source_ip", default="")  # requestContext.http.sourceIp (API Gateway)
