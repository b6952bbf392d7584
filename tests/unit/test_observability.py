"""latchkey.observability: JSON log lines and CloudWatch EMF metrics on stdout."""

import json
from dataclasses import dataclass

from latchkey.observability import EmfMetrics, JsonLogger


@dataclass
class Context:
    function_name: str = "latchkey-token"
    aws_request_id: str = "req-1"


def lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_log_line_carries_level_message_invocation_keys_and_extra(capsys):
    logger = JsonLogger()

    @logger.inject_lambda_context
    def handler(event, context):
        logger.append_keys(request_id="abc")
        logger.info("request refused", extra={"error": "invalid_client"})
        return "ok"

    assert handler({}, Context()) == "ok"
    (entry,) = lines(capsys)
    assert entry["level"] == "INFO" and entry["message"] == "request refused"
    assert entry["service"] == "latchkey" and entry["error"] == "invalid_client"
    assert (entry["function_name"], entry["function_request_id"], entry["request_id"]) == (
        "latchkey-token", "req-1", "abc")
    assert entry["location"].startswith("handler:")
    assert entry["timestamp"].endswith("Z")


def test_keys_do_not_leak_into_the_next_invocation(capsys):
    logger = JsonLogger()

    @logger.inject_lambda_context
    def handler(event, context):
        if event.get("first"):
            logger.append_keys(user="u1")
        logger.warning("w")

    handler({"first": True}, Context())
    handler({}, Context(aws_request_id="req-2"))
    first, second = lines(capsys)
    assert first["user"] == "u1" and "user" not in second
    assert second["function_request_id"] == "req-2"


def test_an_exception_is_formatted_into_the_log_line(capsys):
    logger = JsonLogger()
    try:
        raise ValueError("secret detail")
    except ValueError:
        logger.exception("unexpected failure")
    (entry,) = lines(capsys)
    assert entry["level"] == "ERROR" and entry["exception_name"] == "ValueError"
    assert "Traceback" in entry["exception"] and "secret detail" in entry["exception"]


def test_metrics_are_one_emf_object_per_invocation_and_a_cold_start(capsys, monkeypatch):
    monkeypatch.delenv("METRICS_DISABLED", raising=False)
    metrics = EmfMetrics()

    @metrics.log_metrics
    def handler(event, context):
        metrics.add_metric(name="Http2xx", unit="Count", value=1)
        metrics.add_metric(name="Http2xx", unit="Count", value=1)

    handler({}, Context())
    handler({}, Context())
    cold, first, second = lines(capsys)
    assert cold["ColdStart"] == 1.0 and cold["function_name"] == "latchkey-token"
    assert first["Http2xx"] == 2.0 and second["Http2xx"] == 2.0
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive == {"Namespace": "Latchkey", "Dimensions": [["service"]],
                         "Metrics": [{"Name": "Http2xx", "Unit": "Count"}]}
    assert first["service"] == "latchkey" and isinstance(first["_aws"]["Timestamp"], int)


def test_metrics_flush_when_the_handler_raises_and_can_be_disabled(capsys, monkeypatch):
    monkeypatch.delenv("METRICS_DISABLED", raising=False)
    metrics = EmfMetrics()
    metrics._cold = False

    @metrics.log_metrics
    def handler(event, context):
        metrics.add_metric(name="Failures", unit="Count", value=3)
        raise RuntimeError("boom")

    try:
        handler({}, Context())
    except RuntimeError:
        pass
    (entry,) = lines(capsys)
    assert entry["Failures"] == 3.0
    monkeypatch.setenv("METRICS_DISABLED", "true")
    metrics.add_metric(name="Failures", unit="Count", value=1)
    assert metrics.flush() == {"Failures": ("Count", 1.0)}
    assert capsys.readouterr().out == ""
