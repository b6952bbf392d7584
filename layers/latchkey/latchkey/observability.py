"""Powertools Logger, Tracer and Metrics, created once per process.

Their constructors read configuration only (``POWERTOOLS_*`` variables); nothing here does I/O.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="latchkey")
tracer = Tracer(service="latchkey")
metrics = Metrics(namespace="Latchkey", service="latchkey")
