"""One error hierarchy rendered per protocol; unexpected failures leak nothing; request ids everywhere."""

import json

import pytest

from latchkey import context
from latchkey.errors import InvalidClient, InvalidToken, NotFound, TooManyRequests
from latchkey.http import Protocol, create_app, json_response, lambda_handler
from latchkey.http import _trace_id as trace_id_of


class Ctx:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "lambda-req"


def _event(path, headers=None):
    return {"version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "rawQueryString": "",
            "headers": headers or {}, "isBase64Encoded": False,
            "requestContext": {"requestId": "req-123", "http": {"method": "GET", "path": path,
                                                                  "sourceIp": "203.0.113.9"}, "stage": "$default"}}


@pytest.fixture
def handlers():
    built = {}
    for protocol in Protocol:
        app = create_app(protocol)

        @app.get("/client")
        def _client():
            raise InvalidClient(detail="secret mismatch for app1", headers={"WWW-Authenticate": 'Basic realm="x"'})

        @app.get("/boom")
        def _boom():
            raise RuntimeError("database password is hunter2")

        @app.get("/token")
        def _token():
            raise InvalidToken()

        @app.get("/slow")
        def _slow():
            raise TooManyRequests(retry_after=7)

        @app.get("/ok")
        def _ok():
            return json_response({"trace": context.trace_id.get()})

        built[protocol] = lambda_handler(app)
    return built


def _call(handler, path, headers=None):
    result = handler(_event(path, headers), Ctx())
    return result["statusCode"], result["headers"], json.loads(result["body"]) if result.get("body") else None


def test_oauth_errors_are_rfc6749_json_with_no_store(handlers):
    status, headers, body = _call(handlers[Protocol.OAUTH], "/client")
    assert status == 401
    assert body == {"error": "invalid_client", "error_description": "Client authentication failed.",
                    "request_id": "req-123"}
    assert headers["Cache-Control"] == "no-store" and headers["WWW-Authenticate"] == 'Basic realm="x"'
    assert headers["X-Request-Id"] == "req-123"
    assert "secret mismatch" not in json.dumps(body)  # private detail stays in the log


def test_governor_errors_use_governors_shape(handlers):
    status, _, body = _call(handlers[Protocol.GOVERNOR], "/client")
    assert status == 401
    assert body == {"message": "Client authentication failed.", "code": "invalid_client", "request_id": "req-123"}


def test_unexpected_failure_is_server_error_without_stack_trace(handlers):
    status, headers, body = _call(handlers[Protocol.OAUTH], "/boom")
    assert status == 500
    assert body["error"] == "server_error"
    text = json.dumps(body)
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert headers["Cache-Control"] == "no-store"


def test_bearer_errors_carry_an_rfc6750_challenge(handlers):
    status, headers, body = _call(handlers[Protocol.OAUTH], "/token")
    assert (status, body["error"]) == (401, "invalid_token")
    assert headers["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')


def test_too_many_requests_carries_retry_after(handlers):
    status, headers, body = _call(handlers[Protocol.GOVERNOR], "/slow")
    assert (status, headers["Retry-After"], body["code"]) == (429, "7", "too_many_requests")


def test_unknown_route_is_404_in_the_protocols_shape(handlers):
    status, _, body = _call(handlers[Protocol.OAUTH], "/missing")
    assert (status, body["error"]) == (404, "not_found")
    assert _call(handlers[Protocol.GOVERNOR], "/missing")[2]["code"] == "not_found"
    assert NotFound.status == 404


def test_trace_id_comes_from_the_incoming_headers(handlers):
    assert _call(handlers[Protocol.OAUTH], "/ok", {"X-Ab-TraceID": "ab-trace"})[2] == {"trace": "ab-trace"}
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_id_of({"traceparent": traceparent}) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of({"x-amzn-trace-id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"}) == \
        "1-5759e988-bd862e3fe1be46a994272793"
    generated = trace_id_of({})
    assert len(generated) == 32 and generated != trace_id_of({})
