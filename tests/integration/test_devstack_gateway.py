"""The local API gateway: API Gateway HTTP API (payload 2.0) events in, API Gateway's response rules out.

A tiny handler module written to tmp_path echoes the event it received, so each test asserts exactly
what a Lambda behind API Gateway would see and what the HTTP client gets back.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import textwrap
import time

import pytest

from devstack import template
from devstack.gateway import MAX_BODY, Gateway, build_event, compile_routes, map_response, select

pytestmark = pytest.mark.integration

HANDLER = textwrap.dedent('''
    import base64, json

    def handler(event, context):
        mode = (event.get("queryStringParameters") or {}).get("mode")
        if mode == "raise":
            raise RuntimeError("boom: secret detail")
        if mode == "string":
            return "plain words"
        if mode == "dict":
            return {"hello": "world"}
        if mode == "binary":
            return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                    "body": base64.b64encode(bytes([0, 1, 255])).decode(), "isBase64Encoded": True}
        if mode == "cookies":
            return {"statusCode": 201, "headers": {"x-one": "1"}, "multiValueHeaders": {"x-multi": ["p", "q"]},
                    "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": "made"}
        if mode == "bad-status":
            return {"statusCode": "teapot"}
        if mode == "not-modified":
            return {"statusCode": 304, "headers": {"etag": '"x"'}, "body": "ignored"}
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"event": event, "context": {
                    "function_name": context.function_name, "memory": context.memory_limit_in_mb,
                    "arn": context.invoked_function_arn, "request_id": context.aws_request_id,
                    "remaining": context.get_remaining_time_in_millis()}})}
''')


@pytest.fixture
def gateway(tmp_path):
    (tmp_path / "app.py").write_text(HANDLER)
    routes = [
        template.Route("GET", "/items/{id}", "ItemFunction", tmp_path, "app.handler"),
        template.Route("GET", "/items/special", "SpecialFunction", tmp_path, "app.handler"),
        template.Route("POST", "/items", "CreateFunction", tmp_path, "app.handler"),
        template.Route("ANY", "/files/{proxy+}", "FilesFunction", tmp_path, "app.handler"),
        template.Route("GET", "/", "RootFunction", tmp_path, "app.handler"),
    ]
    with Gateway(routes, port=0, max_body=4096) as running:
        yield running


def request(gateway, method, path, body=None, headers=()):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers:
        connection.putheader(name, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def echoed(gateway, method, path, body=None, headers=()):
    response, data = request(gateway, method, path, body, headers)
    assert response.status == 200, data
    return json.loads(data)


def test_event_has_the_payload_2_0_shape(gateway):
    before = int(time.time() * 1000)
    answer = echoed(gateway, "GET", "/items/abc%20d?a=1&b=x%20y&a=2&empty=",
                    headers=[("X-Multi", "one"), ("X-Multi", "two"), ("Cookie", "c1=v1; c2=v2"),
                             ("User-Agent", "tests/1.0")])
    event, context = answer["event"], answer["context"]

    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/abc%20d"
    assert event["rawQueryString"] == "a=1&b=x%20y&a=2&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["pathParameters"] == {"id": "abc d"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "one,two"
    assert event["headers"]["user-agent"] == "tests/1.0"
    assert event["headers"]["host"] == f"127.0.0.1:{gateway.port}"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-forwarded-port"] == str(gateway.port)
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", event["headers"]["x-amzn-trace-id"])
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    assert "stageVariables" not in event

    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012"
    assert ctx["apiId"] == "devstack"
    assert ctx["domainName"] == f"127.0.0.1:{gateway.port}"
    assert ctx["domainPrefix"] == "127"
    assert ctx["http"] == {"method": "GET", "path": "/items/abc%20d", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "tests/1.0"}
    assert ctx["routeKey"] == "GET /items/{id}"
    assert ctx["stage"] == "$default"
    assert before <= ctx["timeEpoch"] <= int(time.time() * 1000)
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", ctx["time"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{14}==", ctx["requestId"])

    assert context["function_name"] == "ItemFunction"
    assert context["memory"] == 512  # template Globals apply to every function
    assert context["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:ItemFunction"
    assert re.fullmatch(r"[0-9a-f-]{36}", context["request_id"])
    assert 0 < context["remaining"] <= 15_000  # template Globals Timeout: 15 s


def test_no_query_no_cookies_means_the_keys_are_absent(gateway):
    event = echoed(gateway, "GET", "/items/1")["event"]
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert "cookies" not in event


def test_request_ids_are_unique_and_returned(gateway):
    first, _ = request(gateway, "GET", "/items/1")
    second, _ = request(gateway, "GET", "/items/1")
    assert first.getheader("apigw-requestid") != second.getheader("apigw-requestid")


@pytest.mark.parametrize(("content_type", "body", "expected_body", "encoded"), [
    ("application/json", b'{"a":1}', '{"a":1}', False),
    ("application/json; charset=utf-8", "{\"é\":1}".encode(), "{\"é\":1}", False),
    ("text/plain", b"hello", "hello", False),
    ("application/x-www-form-urlencoded", b"a=1&b=2", "a=1&b=2", False),
    ("application/octet-stream", b"\x00\x01\xff", base64.b64encode(b"\x00\x01\xff").decode(), True),
    ("image/png", b"PNG", base64.b64encode(b"PNG").decode(), True),
    (None, b"raw", base64.b64encode(b"raw").decode(), True),
])
def test_bodies_are_text_or_base64(gateway, content_type, body, expected_body, encoded):
    headers = [("Content-Type", content_type)] if content_type else []
    event = echoed(gateway, "POST", "/items", body=body, headers=headers)["event"]
    assert event["routeKey"] == "POST /items"
    assert event["body"] == expected_body
    assert event["isBase64Encoded"] is encoded
    assert event["headers"]["content-length"] == str(len(body))


def test_greedy_path_and_any_method(gateway):
    event = echoed(gateway, "DELETE", "/files/a/b%2Fc/d.txt")["event"]
    assert event["routeKey"] == "ANY /files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c/d.txt"}
    assert event["requestContext"]["http"]["method"] == "DELETE"


def test_exact_route_beats_path_parameter(gateway):
    event = echoed(gateway, "GET", "/items/special")["event"]
    assert event["routeKey"] == "GET /items/special"
    assert "pathParameters" not in event
    assert echoed(gateway, "GET", "/")["event"]["routeKey"] == "GET /"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nowhere"), ("POST", "/items/1"), ("GET", "/items"), ("GET", "/items/1/extra"), ("GET", "/files"),
    ("PUT", "/"),
])
def test_unknown_route_or_wrong_method_is_api_gateways_404(gateway, method, path):
    response, data = request(gateway, method, path, body=b"" if method != "GET" else None)
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(data) == {"message": "Not Found"}


def test_a_handler_that_raises_is_a_bare_500(gateway, capsys):
    response, data = request(gateway, "GET", "/items/1?mode=raise")
    assert response.status == 500
    assert json.loads(data) == {"message": "Internal Server Error"}
    assert b"boom" not in data
    assert "RuntimeError: boom: secret detail" in capsys.readouterr().err


def test_an_invalid_response_is_a_500(gateway):
    response, data = request(gateway, "GET", "/items/1?mode=bad-status")
    assert response.status == 500
    assert json.loads(data) == {"message": "Internal Server Error"}


def test_results_without_status_code_are_200_json(gateway):
    response, data = request(gateway, "GET", "/items/1?mode=string")
    assert (response.status, response.getheader("Content-Type"), data) == (200, "application/json", b"plain words")
    response, data = request(gateway, "GET", "/items/1?mode=dict")
    assert (response.status, response.getheader("Content-Type")) == (200, "application/json")
    assert json.loads(data) == {"hello": "world"}


def test_base64_response_bodies_are_decoded(gateway):
    response, data = request(gateway, "GET", "/items/1?mode=binary")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/octet-stream"
    assert data == bytes([0, 1, 255])
    assert response.getheader("Content-Length") == "3"


def test_cookies_and_multi_value_headers(gateway):
    response, data = request(gateway, "GET", "/items/1?mode=cookies")
    assert response.status == 201
    assert data == b"made"
    assert response.msg.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.msg.get_all("x-multi") == ["p", "q"]
    assert response.getheader("x-one") == "1"


def test_not_modified_has_no_body(gateway):
    response, data = request(gateway, "GET", "/items/1?mode=not-modified")
    assert (response.status, data, response.getheader("etag")) == (304, b"", '"x"')


def test_bodies_over_the_limit_are_413(gateway):
    response, data = request(gateway, "POST", "/items", body=b"x" * 4097, headers=[("Content-Type", "text/plain")])
    assert response.status == 413
    assert json.loads(data) == {"message": "Request Entity Too Large"}
    assert echoed(gateway, "POST", "/items", body=b"x" * 4096,
                  headers=[("Content-Type", "text/plain")])["event"]["body"] == "x" * 4096
    assert MAX_BODY == 10 * 1024 * 1024


def test_a_changed_handler_file_is_reloaded(gateway, tmp_path):
    assert request(gateway, "GET", "/items/1?mode=string")[1] == b"plain words"
    path = tmp_path / "app.py"
    path.write_text("def handler(event, context):\n    return 'new version'\n")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert request(gateway, "GET", "/items/1?mode=string")[1] == b"new version"


# --- pure functions ---------------------------------------------------------------------------------
def test_build_event_joins_and_splits_like_api_gateway():
    event = build_event(method="POST", raw_path="/x", raw_query="k=1&k=2", body=b"\x89PNG",
                        headers=[("Content-Type", "image/png"), ("Cookie", "a=b"), ("cookie", "c=d; e=f"),
                                 ("X-A", "1"), ("x-a", "2")],
                        route_key="POST /x", path_parameters={}, source_ip="10.0.0.1", request_id="rid",
                        now=1_700_000_000.25)
    assert event["cookies"] == ["a=b", "c=d", "e=f"]
    assert event["headers"] == {"content-type": "image/png", "x-a": "1,2"}
    assert event["queryStringParameters"] == {"k": "1,2"}
    assert event["body"] == base64.b64encode(b"\x89PNG").decode()
    assert event["isBase64Encoded"] is True
    assert event["requestContext"]["time"] == "14/Nov/2023:22:13:20 +0000"
    assert event["requestContext"]["timeEpoch"] == 1_700_000_000_250
    assert event["requestContext"]["requestId"] == "rid"
    assert "pathParameters" not in event


def test_map_response_rules():
    assert map_response({"statusCode": 204}) == (204, [], b"")
    assert map_response([1, 2]) == (200, [("Content-Type", "application/json")], b"[1, 2]")
    assert map_response({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True,
                         "cookies": ["s=1"]}) == (200, [("Set-Cookie", "s=1")], b"hi")


def test_every_template_route_resolves_to_its_function():
    routes = compile_routes(template.routes())
    assert routes, "the template has HttpApi routes"
    for route in template.routes():
        concrete = re.sub(r"\{[^}/]+\+\}", "a/b", re.sub(r"\{[^}/+]+\}", "x", route.path))
        found = select(routes, route.method, concrete)
        assert found is not None, route.path
        assert found[0].route_key == f"{route.method} {route.path}"
        assert found[0].function.function == route.function
        assert found[0].function.module_file.is_file()
