"""Latchkey's local stack: DynamoDB Local, librdkafka's mock Kafka cluster, the event relay and a local
API gateway that invokes the real handlers with API Gateway HTTP API v2 events. ``make dev`` runs
``python -m devstack up``; the test suite starts the same parts from ``tests/conftest.py``.
"""
