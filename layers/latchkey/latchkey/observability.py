"""Powertools Logger and Metrics, created once per process.

No Tracer: the X-Ray SDK adds about 160 ms to every cold start; the functions use Lambda's active
tracing (``Tracing: Active`` in template.yaml), which records each invocation without it.

Their constructors read configuration only (``POWERTOOLS_*`` variables); nothing here does I/O.
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="latchkey")
metrics = Metrics(namespace="Latchkey", service="latchkey")
