"""template.yaml, openapi.yaml and events/*.json describe the same routes and functions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devstack.gateway import is_text
from devstack.template import ROOT, functions, routes, stream_filter_patterns
from latchkey.errors import NotFound, ServerError
from latchkey.http.render import Protocol, render_error

OPENAPI = ROOT / "openapi.yaml"
EVENTS = ROOT / "events"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _openapi() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are used: {ref}"
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, item in doc["paths"].items()
            for method, op in item.items() if method in METHODS}


def _sample_name(resource: dict[str, Any]) -> str:
    return Path(resource["Properties"]["CodeUri"]).name + ".json"


def sample_file(route) -> str:
    """A function's first route has ``events/<dir>.json``; a further route (say the POST of a page that
    also answers GET) has ``events/<dir>.<method>.json``, so every route has a sample to invoke."""
    directory = Path(route.code_uri).name
    own = [r for r in routes() if r.function == route.function]
    return f"{directory}.json" if route == own[0] else f"{directory}.{route.method.lower()}.json"


def operation_id(route) -> str:
    """The function's logical id for its first route; ``<LogicalId><Method>`` (``LoginFunctionPost``) for
    a further one (OpenAPI operation ids are unique)."""
    own = [r for r in routes() if r.function == route.function]
    return route.function if route == own[0] else route.function + route.method.capitalize()


def _protocol(route) -> Protocol:
    source = route.module_file.read_text(encoding="utf-8")
    found = set(re.findall(r"create_app\(Protocol\.([A-Z]+)\)", source))
    assert len(found) == 1, f"{route.module_file} must create its app with exactly one Protocol"
    return Protocol[found.pop()]


# --- openapi.yaml <-> template.yaml ------------------------------------------------------------------
def test_every_template_route_is_documented_with_its_function():
    operations = _operations(_openapi())
    for route in routes():
        op = operations.get((route.method, route.path))
        assert op is not None, f"{route.method} {route.path} ({route.function}) is missing from openapi.yaml"
        assert op["operationId"] == operation_id(route)
        assert op.get("summary"), f"{route.function} needs a summary"


def test_openapi_documents_no_route_the_template_lacks():
    template_routes = {(r.method, r.path): operation_id(r) for r in routes()}
    doc = _openapi()
    for key, op in _operations(doc).items():
        assert key in template_routes, f"openapi.yaml documents {key}, which template.yaml does not route"
        assert op["operationId"] == template_routes[key]
    for path, item in doc["paths"].items():
        assert set(item) & METHODS, f"{path} has no operation"


def test_operation_ids_are_unique():
    ids = [op["operationId"] for op in _operations(_openapi()).values()]
    assert len(ids) == len(set(ids))


def test_error_responses_use_the_protocol_of_the_route():
    doc = _openapi()
    operations = _operations(doc)
    expected = {Protocol.OAUTH: ("application/json", "#/components/schemas/OAuthError"),
                Protocol.GOVERNOR: ("application/json", "#/components/schemas/GovernorError"),
                Protocol.PAGE: ("text/html", "#/components/schemas/HtmlPage"),
                Protocol.TETRATE: ("application/json", "#/components/schemas/TsbError"),
                Protocol.CONNECT: ("application/json", "#/components/schemas/ConnectError")}
    for route in routes():
        responses = operations[(route.method, route.path)]["responses"]
        assert "404" in responses, route.function
        media, schema = expected[_protocol(route)]
        for status, response in responses.items():
            if int(status) < 400:
                continue
            schema_ref = _resolve(doc, response)["content"][media]["schema"]["$ref"]
            assert schema_ref == schema, (route.function, status)


# OAuth protocol endpoints at governor's base path: their errors are RFC 6749 §5.2 (RFC 7009, RFC 7662,
# RFC 7591 §3.2.2, RFC 7592 and the UserInfo endpoint of OIDC Core §5.3 with RFC 6750 §3.1).
OAUTH_API_PATHS = {"/api/oauth/token", "/api/oauth/revoke", "/api/oauth/introspect",
                   "/api/oauth/register", "/api/oauth/register/{client_id}", "/api/oauth/userinfo",
                   "/api/oauth/device/code"}


# The hosted pages a person's browser visits: their errors are the HTML error page.
PAGE_PATHS = {"/api/oauth/authorize", "/api/oauth/login", "/api/oauth/consent", "/api/oauth/logout", "/device",
              "/api/oauth/platforms/{platformId}/authorize", "/api/oauth/platforms/{platformId}/callback"}


def test_well_known_routes_speak_oauth_and_api_routes_speak_governor():
    for route in routes():
        if route.path.startswith("/iam/v2/"):
            assert _protocol(route) is Protocol.TETRATE, route.function
        elif route.path.startswith("/mgmt.v1alpha1."):
            assert _protocol(route) is Protocol.CONNECT, route.function
        elif route.path in PAGE_PATHS:
            assert _protocol(route) is Protocol.PAGE, route.function
        elif route.path.startswith("/.well-known/") or route.path in OAUTH_API_PATHS:
            assert _protocol(route) is Protocol.OAUTH, route.function
        elif route.path.startswith("/api/"):
            assert _protocol(route) is Protocol.GOVERNOR, route.function


def test_every_response_documents_x_request_id():
    doc = _openapi()
    for (method, path), op in _operations(doc).items():
        for status, response in op["responses"].items():
            headers = _resolve(doc, response).get("headers", {})
            assert "X-Request-Id" in headers, f"{method} {path} {status}"


def test_error_schemas_match_render_error():
    doc = _openapi()
    schemas = {Protocol.OAUTH: doc["components"]["schemas"]["OAuthError"],
               Protocol.GOVERNOR: doc["components"]["schemas"]["GovernorError"]}
    assert set(schemas[Protocol.OAUTH]["required"]) == {"error", "error_description", "request_id"}
    assert set(schemas[Protocol.GOVERNOR]["required"]) == {"message", "code", "request_id"}
    for protocol, schema in schemas.items():
        for error in (NotFound(), ServerError()):
            response = render_error(protocol, error, "ExAmPlE1aDAEJ-Q=")
            jsonschema.Draft202012Validator(schema).validate(json.loads(response.body))
            other = schemas[Protocol.GOVERNOR if protocol is Protocol.OAUTH else Protocol.OAUTH]
            assert not jsonschema.Draft202012Validator(other).is_valid(json.loads(response.body))


# --- openapi.yaml is a valid OpenAPI 3.1 document --------------------------------------------------
# A minimal structural schema of our own (the project does not depend on an OpenAPI validator); the
# full check with openapi-spec-validator (a pinned dev dependency) runs below.
_RESPONSE = {"type": "object", "anyOf": [{"required": ["$ref"]}, {"required": ["description"]}],
             "properties": {
                 "description": {"type": "string"},
                 "headers": {"type": "object"},
                 "content": {"type": "object", "additionalProperties": {
                     "type": "object", "properties": {"schema": {"type": ["object", "boolean"]}}}}}}
_OPERATION = {
    "type": "object",
    "required": ["operationId", "summary", "responses"],
    "properties": {
        "operationId": {"type": "string", "minLength": 1},
        "summary": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "parameters": {"type": "array", "items": {
            "type": "object", "required": ["name", "in"],
            "properties": {"in": {"enum": ["query", "header", "path", "cookie"]},
                           "name": {"type": "string"}}}},
        "responses": {"type": "object", "minProperties": 1,
                      "propertyNames": {"pattern": "^([1-5][0-9]{2}|default)$"},
                      "additionalProperties": _RESPONSE},
    },
}
OPENAPI_31_MINIMAL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.[0-9]+$"},
        "jsonSchemaDialect": {"type": "string"},
        "info": {"type": "object", "required": ["title", "version"],
                 "properties": {"title": {"type": "string"}, "version": {"type": "string"}}},
        "servers": {"type": "array", "items": {"type": "object", "required": ["url"]}},
        "tags": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "security": {"type": "array"},
        "externalDocs": {"type": "object", "required": ["url"]},
        "webhooks": {"type": "object"},
        "paths": {"type": "object", "propertyNames": {"pattern": "^/"},
                  "additionalProperties": {"type": "object", "properties": {m: _OPERATION for m in METHODS}}},
        "components": {"type": "object", "properties": {
            "schemas": {"type": "object", "additionalProperties": {"type": ["object", "boolean"]}},
            "responses": {"type": "object", "additionalProperties": _RESPONSE},
            "headers": {"type": "object", "additionalProperties": {"type": "object", "required": ["schema"]}},
        }},
    },
    "patternProperties": {"^x-": {}},
    "additionalProperties": False,
}


def test_openapi_structure():
    jsonschema.Draft202012Validator(OPENAPI_31_MINIMAL).validate(_openapi())


def test_openapi_references_resolve_and_schemas_are_valid():
    doc = _openapi()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(doc, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)  # raises SchemaError naming the keyword


def test_openapi_examples_match_their_schemas():
    doc = _openapi()
    registry_doc = {"$id": "urn:latchkey:openapi", **doc}
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(registry_doc, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:latchkey:openapi", resource)
    checked = 0
    for name, schema in doc["components"]["schemas"].items():
        if "example" in schema:
            validator = jsonschema.Draft202012Validator(
                {"$ref": f"urn:latchkey:openapi#/components/schemas/{name}"}, registry=registry)
            validator.validate(schema["example"])
            checked += 1
    for name, response in doc["components"]["responses"].items():
        for media in response.get("content", {}).values():
            if "example" in media:
                jsonschema.Draft202012Validator({"$ref": "urn:latchkey:openapi" + media["schema"]["$ref"]},
                                                registry=registry).validate(media["example"])
                checked += 1
    assert checked >= 4


def test_openapi_with_openapi_spec_validator():
    import openapi_spec_validator  # a pinned dev dependency: the full OpenAPI 3.1 check always runs

    openapi_spec_validator.validate(_openapi())


# --- events/*.json <-> template.yaml -----------------------------------------------------------------
def test_every_function_has_a_sample_event_and_no_sample_is_stray():
    expected = {_sample_name(res) for res in functions().values()} | {sample_file(r) for r in routes()}
    present = {p.name for p in EVENTS.glob("*.json")}
    assert expected - present == set(), f"missing sample events: {sorted(expected - present)}"
    assert present - expected == set(), f"sample events for no function: {sorted(present - expected)}"
    for name in present:
        json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("route", routes(), ids=lambda r: r.function)
def test_http_sample_matches_its_route(route):
    event = json.loads((EVENTS / sample_file(route)).read_text(encoding="utf-8"))
    route_key = f"{route.method} {route.path}"
    assert event["version"] == "2.0"
    assert event["routeKey"] == route_key
    assert _path_matches(route.path, event["rawPath"], event.get("pathParameters") or {})
    # API Gateway base64-encodes bodies unless they are text (devstack.gateway.is_text does the same)
    assert event["isBase64Encoded"] is (bool(event.get("body")) and not is_text(event["headers"].get("content-type")))
    assert isinstance(event["rawQueryString"], str)
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert {"host", "user-agent", "x-amzn-trace-id", "x-forwarded-for"} <= set(headers)
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == route.method
    assert ctx["http"]["path"] == event["rawPath"]
    assert ctx["routeKey"] == route_key
    assert ctx["stage"] == "$default"
    assert ctx["domainName"] == headers["host"]
    assert ctx["domainPrefix"] == headers["host"].split(".")[0]
    assert ctx["http"]["userAgent"] == headers["user-agent"]
    assert ctx["http"]["sourceIp"] == headers["x-forwarded-for"].split(",")[0].strip()
    assert {"accountId", "apiId", "requestId", "time", "timeEpoch"} <= set(ctx)
    assert isinstance(ctx["timeEpoch"], int)


def _path_matches(template_path: str, raw_path: str, parameters: dict[str, str]) -> bool:
    """``raw_path`` is ``template_path`` with each ``{name}`` segment replaced by ``parameters[name]``
    (an HttpApi path variable matches one non-empty segment) and no other parameter is present."""
    pattern, names = [], []
    for segment in template_path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            names.append(segment[1:-1])
            pattern.append(r"([^/]+)")
        else:
            pattern.append(re.escape(segment))
    found = re.fullmatch("/".join(pattern), raw_path)
    return found is not None and parameters == dict(zip(names, found.groups(), strict=True))


def _matches(pattern: Any, value: Any) -> bool:
    """EventBridge/Lambda filter pattern matching, for the subset the template uses (values are lists)."""
    if isinstance(pattern, list):
        return value in pattern
    if not isinstance(value, dict):
        return False
    return all(key in value and _matches(sub, value[key]) for key, sub in pattern.items())


def test_non_http_samples_match_their_event_sources():
    for name, resource in functions().items():
        kinds = {e["Type"] for e in resource["Properties"]["Events"].values()}
        if "HttpApi" in kinds:
            continue
        event = json.loads((EVENTS / _sample_name(resource)).read_text(encoding="utf-8"))
        if kinds == {"ScheduleV2"}:
            assert event["detail-type"] == "Scheduled Event"
            assert event["source"] == "aws.scheduler"
            assert event["resources"][0].startswith("arn:aws:scheduler:")
        elif kinds == {"DynamoDB"}:
            assert event["Records"], name
            patterns = [json.loads(p) for p in stream_filter_patterns()]
            for record in event["Records"]:
                assert record["eventSource"] == "aws:dynamodb"
                assert record["eventVersion"] == "1.1"
                assert record["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
                assert ":table/" in record["eventSourceARN"] and "/stream/" in record["eventSourceARN"]
                assert all(_matches(p, record) for p in patterns), "the sample would be filtered out"
        else:
            pytest.fail(f"{name}: no sample check for event types {kinds}")
