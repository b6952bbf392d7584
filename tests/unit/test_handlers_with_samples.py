"""Every function's handler, invoked with its events/ sample on the in-memory store, answers exactly."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from devstack.template import ROOT, functions, routes
from latchkey import services, signing
from latchkey.events import EventName, build_event, outbox_put
from latchkey.store.dynamodb import serialize
from tests.helpers_asyncapi import validate_message

EVENTS = ROOT / "events"
ISSUER = "https://auth.example.com"
DISCOVERY = ("openid_configuration", "oauth_authorization_server", "gov_openid_configuration")


@dataclass(frozen=True)
class LambdaContext:
    function_name: str = "latchkey-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:latchkey-test"
    aws_request_id: str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def _directories() -> dict[str, str]:
    """Function logical id -> CodeUri directory name."""
    return {name: Path(res["Properties"]["CodeUri"]).name for name, res in functions().items()}


def _load_app(directory: str) -> ModuleType:
    """The function's handler module, loaded from its file under a unique name (every app is ``app``)."""
    resource = next(r for r in functions().values() if Path(r["Properties"]["CodeUri"]).name == directory)
    module_path, _, _handler = resource["Properties"]["Handler"].rpartition(".")
    path = ROOT / resource["Properties"]["CodeUri"] / (module_path.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(f"latchkey_samples_{directory}_{module_path}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _handler(module: ModuleType, directory: str):
    resource = next(r for r in functions().values() if Path(r["Properties"]["CodeUri"]).name == directory)
    return getattr(module, resource["Properties"]["Handler"].rpartition(".")[2])


def _sample(directory: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{directory}.json").read_text(encoding="utf-8"))


def _invoke(directory: str, event: dict[str, Any] | None = None) -> Any:
    module = _load_app(directory)
    return _handler(module, directory)(event if event is not None else _sample(directory), LambdaContext())


def _rotate() -> signing.RotationReport:
    return signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                          services.rotation_policy())


# --- openapi.yaml schemas, to check the bodies against the document ---------------------------------
_OPENAPI_URI = "urn:latchkey:openapi"
_registry = Registry().with_resource(_OPENAPI_URI, Resource.from_contents(
    yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8")), default_specification=DRAFT202012))


def _check(schema_name: str, instance: Any) -> None:
    jsonschema.Draft202012Validator({"$ref": f"{_OPENAPI_URI}#/components/schemas/{schema_name}"},
                                    registry=_registry).validate(instance)


# --- environment ------------------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("STORE", "memory")
    monkeypatch.setenv("LOCAL_KEK", base64.b64encode(bytes(range(32))).decode("ascii"))
    monkeypatch.setenv("ISSUER", ISSUER)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    for name in ("KMS_KEY_ID", "DYNAMODB_ENDPOINT", "KAFKA_TOPIC_PREFIX", "JWKS_MAX_AGE", "SIGNING_ALGS"):
        monkeypatch.delenv(name, raising=False)
    services.reset()
    yield monkeypatch
    services.reset()


@pytest.fixture
def rotated(env):
    report = _rotate()
    assert len(report.created) == 4 and len(report.activated) == 2
    return report


def test_every_non_http_function_is_exercised_here():
    """HTTP functions are all invoked by test_every_http_sample_reaches_its_route; others need a test."""
    http = {Path(r.code_uri).name for r in routes()}
    assert {*DISCOVERY, "jwks"} <= http
    assert set(_directories().values()) - http == {"rotate_keys", "event_relay"}


@pytest.mark.parametrize("route", routes(), ids=lambda r: r.function)
def test_every_http_sample_reaches_its_route(rotated, route):
    """Each sample is routed by its function's resolver (not 404) and answered without a server error."""
    directory = Path(route.code_uri).name
    event = _sample(directory)
    result = _invoke(directory, event)
    assert result["statusCode"] != 404 and result["statusCode"] < 500, (directory, result)
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]


# --- discovery ----------------------------------------------------------------------------------------
def test_discovery_functions_answer_the_same_document(rotated):
    bodies = []
    for directory in DISCOVERY:
        event = _sample(directory)
        result = _invoke(directory, event)
        assert result["statusCode"] == 200, directory
        assert result["headers"]["Content-Type"] == "application/json"
        assert result["headers"]["Cache-Control"] == "public, max-age=300"
        assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
        assert result["isBase64Encoded"] is False
        body = json.loads(result["body"])
        _check("Metadata", body)
        bodies.append(body)
    assert bodies[0] == bodies[1] == bodies[2]
    core = {
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/api/oauth/jwks",
        "response_types_supported": [],
        "grant_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    }
    # later features add members and grow the lists; the core members are there from the start
    for name, value in core.items():
        if isinstance(value, list):
            assert set(value) <= set(bodies[0][name]), name
        else:
            assert bodies[0][name] == value, name


def test_discovery_core_members(rotated):
    body = json.loads(_invoke("openid_configuration")["body"])
    assert body["issuer"] == ISSUER
    assert body["jwks_uri"] == f"{ISSUER}/api/oauth/jwks"
    assert body["subject_types_supported"] == ["public"]
    assert body["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]


@pytest.mark.parametrize("directory,schema", [("openid_configuration", "OAuthError"),
                                              ("oauth_authorization_server", "OAuthError"),
                                              ("gov_openid_configuration", "GovernorError"),
                                              ("jwks", "GovernorError")])
def test_unknown_path_answers_404_in_the_route_protocol(env, directory, schema):
    event = copy.deepcopy(_sample(directory))
    event["rawPath"] = event["requestContext"]["http"]["path"] = event["rawPath"] + "/nope"
    result = _invoke(directory, event)
    assert result["statusCode"] == 404
    assert result["headers"]["Cache-Control"] == "no-store"
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    body = json.loads(result["body"])
    _check(schema, body)
    assert body["request_id"] == event["requestContext"]["requestId"]


# --- JWKS ---------------------------------------------------------------------------------------------
def test_jwks_sample(rotated):
    event = _sample("jwks")
    result = _invoke("jwks", event)
    assert result["statusCode"] == 200
    headers = result["headers"]
    assert headers["Content-Type"] == "application/jwk-set+json"
    assert headers["Cache-Control"] == "public, max-age=3600"
    assert headers["ETag"].startswith('"') and headers["ETag"].endswith('"')
    assert headers["X-Request-Id"] == event["requestContext"]["requestId"]
    body = json.loads(result["body"])
    _check("JwkSet", body)
    assert len(body["keys"]) == 4
    assert sorted(k["alg"] for k in body["keys"]) == ["ES256", "ES256", "RS256", "RS256"]
    assert {k["kid"] for k in body["keys"]} == set(rotated.created)
    assert [k["kid"] for k in body["keys"][:2]] == rotated.activated  # current keys first (ES256, RS256)
    for key in body["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private members must never be published"


def test_jwks_if_none_match(rotated):
    first = _invoke("jwks")
    etag = first["headers"]["ETag"]
    for tag in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        event = copy.deepcopy(_sample("jwks"))
        event["headers"]["if-none-match"] = tag
        result = _invoke("jwks", event)
        assert result["statusCode"] == 304, tag
        assert not result.get("body")
        assert result["headers"]["ETag"] == etag
        assert result["headers"]["Cache-Control"] == "public, max-age=3600"
        assert "Content-Type" not in result["headers"]  # RFC 9110 §15.4.5
        assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    event = copy.deepcopy(_sample("jwks"))
    event["headers"]["if-none-match"] = '"0000"'
    result = _invoke("jwks", event)
    assert result["statusCode"] == 200
    assert result["body"] == first["body"]


# --- rotate_keys --------------------------------------------------------------------------------------
def test_rotate_keys_sample_bootstraps_then_is_idempotent(env):
    result = _invoke("rotate_keys")
    assert isinstance(result, dict)
    assert set(result) == {"created", "activated", "retired", "removed"}
    assert len(result["created"]) == 4 and len(result["activated"]) == 2
    assert result["retired"] == [] and result["removed"] == []
    assert set(result["activated"]) <= set(result["created"])
    assert _invoke("rotate_keys") == {"created": [], "activated": [], "retired": [], "removed": []}


def test_rotate_keys_after_a_rotation_reports_nothing_due(rotated):
    assert _invoke("rotate_keys") == {"created": [], "activated": [], "retired": [], "removed": []}


# --- event_relay --------------------------------------------------------------------------------------
class FakePublisher:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.published: list[Any] = []
        self.settings: list[Any] = []

    def factory(self, settings: Any) -> FakePublisher:
        self.settings.append(settings)
        return self

    def publish(self, messages, timeout):
        self.published.extend(messages)
        return [self.ok] * len(messages)


def _relay_with(env, ok: bool) -> tuple[Any, FakePublisher, dict[str, Any]]:
    env.setenv("KAFKA_TOPIC_PREFIX", "dev")
    services.reset()
    module = _load_app("event_relay")
    fake = FakePublisher(ok)
    env.setattr(module, "publisher", fake.factory)
    event = _sample("event_relay")
    return _handler(module, "event_relay")(event, LambdaContext()), fake, event


def test_event_relay_publishes_the_outbox_row(env):
    result, fake, event = _relay_with(env, ok=True)
    assert result == {"batchItemFailures": []}
    image = event["Records"][0]["dynamodb"]["NewImage"]
    assert len(fake.published) == 1
    sent = fake.published[0]
    assert sent.topic == "dev.oauthToken"
    assert sent.value == image["message"]["S"].encode("utf-8")
    assert sent.key == image["partition_key"]["S"].encode("utf-8")
    assert sent.sequence == event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert fake.settings[0].kafka_topic_prefix == "dev"
    validate_message(sent.value, key=sent.key, topic=sent.topic, prefix="dev")


def test_event_relay_reports_the_unacknowledged_record(env):
    result, fake, event = _relay_with(env, ok=False)
    assert len(fake.published) == 1
    sequence = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert result == {"batchItemFailures": [{"itemIdentifier": sequence}]}


def test_event_relay_sample_is_a_real_outbox_row():
    """The sample's NewImage is what outbox_put(build_event(...)) writes, as DynamoDB serializes it."""
    record = _sample("event_relay")["Records"][0]
    created = 1767225600
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace="latchkey", parent_namespace="",
                        client_id="0f8fad5bd9cb469fa16570867728950e",
                        user_id="7d793037a0760186574b0282f2f435e7",
                        session_id="c4ca4238a0b923820dcc509a6f75849b", response_type="code",
                        platform_id="", trace_id="1-6775a280-0a1b2c3d4e5f60718293a4b5",
                        timestamp=created + 0.123456, event_id="5f2b6c1e9a8d4e7fb3c0a1d2e3f40516")
    put = outbox_put(event, ttl=7 * 86400, now=created)
    image = serialize(put.item)
    assert record["dynamodb"]["NewImage"] == image
    assert record["dynamodb"]["Keys"] == {"pk": image["pk"], "sk": image["sk"]}
    assert record["dynamodb"]["ApproximateCreationDateTime"] == created
    validate_message(json.loads(image["message"]["S"]), key=image["partition_key"]["S"])
