"""Every function's handler, invoked with its events/ sample on the in-memory store, answers exactly."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
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
from latchkey.errors import NotFound
from latchkey.events import EventName, build_event, outbox_put
from latchkey.store.dynamodb import serialize
from tests.helpers import LambdaContext
from tests.helpers_asyncapi import validate_message

EVENTS = ROOT / "events"
ISSUER = "https://auth.example.com"
DISCOVERY = ("openid_configuration", "oauth_authorization_server", "gov_openid_configuration")


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
    monkeypatch.setenv("METRICS_DISABLED", "true")
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
    """Each sample is routed by its function's resolver (not its 404) and answered without a server error.
    A domain 404 (e.g. no app with the sample's id in the empty store) names what is missing."""
    from tests.unit.test_routes_in_step import sample_file

    directory = Path(route.code_uri).name
    event = json.loads((EVENTS / sample_file(route)).read_text(encoding="utf-8"))
    result = _invoke(directory, event)
    assert result["statusCode"] < 500, (directory, result)
    if result["statusCode"] == 404:
        body = json.loads(result["body"])
        assert body.get("message", body.get("error_description")) != NotFound.default_description, (directory, result)
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


# --- governor's app management (functions/gov_app_*) --------------------------------------------------
GOV_APP_ADMIN = ("gov_app_list", "gov_app_create", "gov_app_update", "gov_app_image_update", "gov_app_rotate",
                 "gov_app_delete")
SAMPLE_CLIENT = "0f8fad5bd9cb469fa16570867728950e"


def _admin_token(scopes=("gov.user.oauth.app:read", "gov.user.oauth.app:write")) -> str:
    from latchkey import rfc9068

    return rfc9068.issue(services.key_ring(), issuer=ISSUER, alg="ES256", client_id="dev-admin",
                         subject="dev-admin", audience=ISSUER, scopes=list(scopes), ttl=300).token


def _with_token(directory: str, token: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(_sample(directory))
    event["headers"]["authorization"] = f"Bearer {token or _admin_token()}"
    return event


def _sample_app() -> None:
    """The app the samples name, created directly in the (in-memory) store."""
    from latchkey import apps
    from latchkey.client_metadata import parse_metadata

    apps.create_from(parse_metadata({"name": "Example Shop", "url": "https://shop.example.com",
                                     "redirect_uri": "https://shop.example.com/oauth/callback"}),
                     client_id=SAMPLE_CLIENT)


@pytest.mark.parametrize("directory", GOV_APP_ADMIN)
def test_gov_app_admin_samples_without_a_token_are_401(rotated, directory):
    event = _sample(directory)
    assert "authorization" not in event["headers"]
    result = _invoke(directory, event)
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert result["headers"]["Cache-Control"] == "no-store"
    body = json.loads(result["body"])
    _check("GovernorError", body)
    assert body == {"message": "An access token is required.", "code": "invalid_token",
                    "request_id": event["requestContext"]["requestId"]}


def test_gov_app_create_sample(rotated):
    result = _invoke("gov_app_create", _with_token("gov_app_create"))
    assert result["statusCode"] == 201, result
    assert result["headers"]["Cache-Control"] == "no-store"
    body = json.loads(result["body"])
    _check("AppCredentials", body)
    app = json.loads(_invoke("gov_app_get", {**_sample("gov_app_get"),
                                             "rawPath": f"/api/oauth/app/id/{body['client_id']}"})["body"])
    _check("App", app)
    sent = json.loads(_sample("gov_app_create")["body"])
    assert {k: app[k] for k in sent} == sent


def test_gov_app_get_and_ids_samples(rotated):
    assert _invoke("gov_app_get")["statusCode"] == 404
    _sample_app()
    result = _invoke("gov_app_get")
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    _check("App", body)
    assert body["client_id"] == SAMPLE_CLIENT and body["name"] == "Example Shop" and body["logo"] == ""
    listed = json.loads(_invoke("gov_app_ids")["body"])
    _check("AppList", listed)
    assert listed == {"apps": [body]}  # the sample's second id does not exist


def test_gov_app_list_sample(rotated):
    _sample_app()
    result = _invoke("gov_app_list", _with_token("gov_app_list"))
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    _check("AppList", body)
    assert [a["client_id"] for a in body["apps"]] == [SAMPLE_CLIENT]


def test_gov_app_update_rotate_image_and_delete_samples(rotated):
    _sample_app()
    result = _invoke("gov_app_update", _with_token("gov_app_update"))
    assert (result["statusCode"], result.get("body") or "") == (204, "")
    assert json.loads(_invoke("gov_app_get")["body"])["name"] == "Example Shop (EU)"

    result = _invoke("gov_app_rotate", _with_token("gov_app_rotate"))
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["client_id"] == SAMPLE_CLIENT

    result = _invoke("gov_app_image_update", _with_token("gov_app_image_update"))
    assert result["statusCode"] == 204, result
    image = _invoke("gov_app_image_get", {**_sample("gov_app_image_get"), "headers": {
        k: v for k, v in _sample("gov_app_image_get")["headers"].items() if k != "if-none-match"}})
    assert image["statusCode"] == 200 and image["isBase64Encoded"] is True
    assert image["headers"]["Content-Type"] == "image/png"
    assert base64.b64decode(image["body"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads(_invoke("gov_app_get")["body"])["logo"].startswith("data:image/png;base64,")

    result = _invoke("gov_app_delete", _with_token("gov_app_delete"))
    assert result["statusCode"] == 204
    assert _invoke("gov_app_get")["statusCode"] == 404
    assert _invoke("gov_app_image_get")["statusCode"] == 404


# --- governor's user management (functions/gov_user_*) ------------------------------------------------
GOV_USER = ("gov_user_create", "gov_user_list", "gov_user_get", "gov_user_update", "gov_user_delete",
            "gov_user_revoke")
GOV_PLATFORM = ("gov_platform_put", "gov_platform_get", "gov_platform_list", "gov_platform_delete")
SAMPLE_USER = "7d793037a0760186574b0282f2f435e7"
USER_SCOPES = ("gov.user.oauth.user:read", "gov.user.oauth.user:write")


def _cheap_passwords() -> None:
    """scrypt at its lowest cost: the samples' passwords need no protection."""
    services.override(settings=services.settings().replace(password_hash_cost=10))


def _sample_user() -> None:
    """The user the samples name, created directly in the (in-memory) store."""
    from latchkey.users import User

    services.user_store().create(User(user_id=SAMPLE_USER, username="alice.smith", password_hash="$scrypt$x",
                                      name="Alice Smith", created_at=1767225600, updated_at=1767225600))


@pytest.mark.parametrize("directory", GOV_USER + GOV_PLATFORM)
def test_gov_user_and_platform_samples_without_a_token_are_401(rotated, directory):
    event = _sample(directory)
    assert "authorization" not in event["headers"]
    result = _invoke(directory, event)
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    body = json.loads(result["body"])
    _check("GovernorError", body)
    assert body == {"message": "An access token is required.", "code": "invalid_token",
                    "request_id": event["requestContext"]["requestId"]}


@pytest.mark.parametrize("directory", GOV_USER + GOV_PLATFORM)
def test_gov_user_and_platform_samples_with_an_app_admin_token_are_403(rotated, directory):
    result = _invoke(directory, _with_token(directory))  # gov.user.oauth.app:* only
    assert result["statusCode"] == 403
    _check("GovernorError", json.loads(result["body"]))


def test_gov_user_create_sample(rotated):
    _cheap_passwords()
    result = _invoke("gov_user_create", _with_token("gov_user_create", _admin_token(USER_SCOPES)))
    assert result["statusCode"] == 201, result
    assert result["headers"]["Cache-Control"] == "no-store"
    body = json.loads(result["body"])
    _check("UserCreated", body)
    event = {**_with_token("gov_user_get", _admin_token(USER_SCOPES)),
             "rawPath": f"/api/oauth/user/id/{body['userid']}"}
    user = json.loads(_invoke("gov_user_get", event)["body"])
    _check("User", user)
    sent = json.loads(_sample("gov_user_create")["body"])
    assert "password" not in user and user["status"] == "active"
    assert {k: user[k] for k in sent if k != "password"} == {k: v for k, v in sent.items() if k != "password"}
    again = _invoke("gov_user_create", _with_token("gov_user_create", _admin_token(USER_SCOPES)))
    assert again["statusCode"] == 409


def test_gov_user_get_list_update_revoke_delete_samples(rotated):
    _cheap_passwords()
    token = _admin_token(USER_SCOPES)
    missing = _invoke("gov_user_get", _with_token("gov_user_get", token))
    assert missing["statusCode"] == 404
    _check("GovernorError", json.loads(missing["body"]))
    _sample_user()

    result = _invoke("gov_user_get", _with_token("gov_user_get", token))
    assert result["statusCode"] == 200
    user = json.loads(result["body"])
    _check("User", user)
    assert (user["userid"], user["username"], user["name"]) == (SAMPLE_USER, "alice.smith", "Alice Smith")

    listed = _invoke("gov_user_list", _with_token("gov_user_list", token))
    assert listed["statusCode"] == 200
    body = json.loads(listed["body"])
    _check("UserList", body)
    assert body == {"users": [user]}

    result = _invoke("gov_user_update", _with_token("gov_user_update", token))
    assert (result["statusCode"], result.get("body") or "") == (204, "")
    after = json.loads(_invoke("gov_user_get", _with_token("gov_user_get", token))["body"])
    sent = json.loads(_sample("gov_user_update")["body"])
    assert {k: after[k] for k in sent} == sent

    result = _invoke("gov_user_revoke", _with_token("gov_user_revoke", token))
    assert (result["statusCode"], result.get("body") or "") == (204, "")
    assert services.user_store().get(SAMPLE_USER).generation == 1

    result = _invoke("gov_user_delete", _with_token("gov_user_delete", token))
    assert (result["statusCode"], result.get("body") or "") == (204, "")
    assert _invoke("gov_user_get", _with_token("gov_user_get", token))["statusCode"] == 404
    assert _invoke("gov_user_revoke", _with_token("gov_user_revoke", token))["statusCode"] == 404


# --- third-party login platform admin (functions/gov_platform_*) ---------------------------------------
PLATFORM_SCOPES = ("gov.user.oauth.platform:read", "gov.user.oauth.platform:write")


def test_gov_platform_put_get_list_delete_samples(rotated):
    from latchkey.platforms import secret_context

    token = _admin_token(PLATFORM_SCOPES)
    sent = json.loads(_sample("gov_platform_put")["body"])
    _check("PlatformConfig", sent)
    missing = _invoke("gov_platform_get", _with_token("gov_platform_get", token))
    assert missing["statusCode"] == 404
    _check("GovernorError", json.loads(missing["body"]))

    result = _invoke("gov_platform_put", _with_token("gov_platform_put", token))
    assert result["statusCode"] == 201, result
    assert result["headers"]["Cache-Control"] == "no-store"
    created = json.loads(result["body"])
    _check("Platform", created)
    assert {k: created[k] for k in sent if k != "client_secret"} == {k: v for k, v in sent.items()
                                                                      if k != "client_secret"}
    assert created["has_client_secret"] is True and sent["client_secret"] not in result["body"]
    [row] = [i for i in services.item_store()._items.values() if i["pk"] == "PLATFORM#example-sso"]
    assert sent["client_secret"] not in json.dumps(row)
    assert services.envelope().open(row["sealed_secret"], secret_context("example-sso")).decode() \
        == sent["client_secret"]

    result = _invoke("gov_platform_get", _with_token("gov_platform_get", token))
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == created
    listed = _invoke("gov_platform_list", _with_token("gov_platform_list", token))
    assert listed["statusCode"] == 200
    body = json.loads(listed["body"])
    _check("PlatformList", body)
    assert body == {"platforms": [created]}

    again = _invoke("gov_platform_put", _with_token("gov_platform_put", token))
    assert (again["statusCode"], again.get("body") or "") == (204, "")

    result = _invoke("gov_platform_delete", _with_token("gov_platform_delete", token))
    assert (result["statusCode"], result.get("body") or "") == (204, "")
    assert _invoke("gov_platform_get", _with_token("gov_platform_get", token))["statusCode"] == 404
    assert _invoke("gov_platform_delete", _with_token("gov_platform_delete", token))["statusCode"] == 404


# --- dynamic client registration (RFC 7591 / RFC 7592) ---------------------------------------------
def _registration_sample(directory: str, token: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(_sample(directory))
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    return event


def _seed_sample_registration() -> tuple[str, str]:
    """The client the register_* samples manage, stored with the samples' registration access token."""
    from latchkey import clock
    from latchkey.clients import Client
    from latchkey.crypto.secrets import keyed_hash, new_secret

    event = _sample("register_read")
    client_id = event["pathParameters"]["client_id"]
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    key = services.secret_hash_key()
    now = clock.now()
    services.client_store().create(Client(
        client_id=client_id, name="Example Reporting Tool", url="https://tools.example.com",
        redirect_uris=("https://tools.example.com/callback",), grant_types=("authorization_code", "refresh_token"),
        response_types=("code",), scope="openid profile", secret_hash=keyed_hash(key, new_secret("cs")),
        registration_access_token_hash=keyed_hash(key, token), created_at=now, updated_at=now))
    return client_id, token


def test_register_sample_needs_a_valid_initial_access_token(rotated):
    result = _invoke("register")  # the sample's token is not signed by this deployment
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    body = json.loads(result["body"])
    _check("OAuthError", body)
    assert body["error"] == "invalid_token"


def test_register_sample_with_an_admin_token_registers_the_client(rotated):
    from latchkey import rfc9068

    token = rfc9068.issue(services.key_ring(), issuer=ISSUER, alg="ES256", client_id="dev-admin",
                          subject="dev-admin", audience=ISSUER, scopes=["gov.user.oauth.app:write"], ttl=300).token
    event = _registration_sample("register", token)
    result = _invoke("register", event)
    assert result["statusCode"] == 201, result
    assert result["headers"]["Cache-Control"] == "no-store"
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    body = json.loads(result["body"])
    _check("ClientInformation", body)
    sent = json.loads(event["body"])
    assert {k: body[k] for k in ("client_name", "client_uri", "redirect_uris", "grant_types", "response_types",
                                 "token_endpoint_auth_method", "scope")} == {
        k: sent[k] for k in ("client_name", "client_uri", "redirect_uris", "grant_types", "response_types",
                             "token_endpoint_auth_method", "scope")}
    assert "logo_uri" not in body and "contacts" not in body  # not understood, so ignored (RFC 7591 §2)
    assert body["registration_client_uri"] == f"{ISSUER}/api/oauth/register/{body['client_id']}"


def test_register_read_update_delete_samples(rotated):
    client_id, token = _seed_sample_registration()
    read = _invoke("register_read")
    assert read["statusCode"] == 200, read
    body = json.loads(read["body"])
    _check("ClientInformation", body)
    assert (body["client_id"], body["registration_access_token"]) == (client_id, token)
    assert "client_secret" not in body and body["client_secret_expires_at"] == 0

    updated = _invoke("register_update")
    assert updated["statusCode"] == 200, updated
    body = json.loads(updated["body"])
    _check("ClientInformation", body)
    assert body["redirect_uris"] == json.loads(_sample("register_update")["body"])["redirect_uris"]

    deleted = _invoke("register_delete")
    assert (deleted["statusCode"], deleted.get("body") or "") == (204, "")
    assert services.client_store().get(client_id) is None
    assert _invoke("register_read")["statusCode"] == 401


# --- token, revocation, introspection (issue 3) ---------------------------------------------------------
def _seed_dev_admin() -> None:
    """The client ``make dev`` seeds (devstack/seed.py), which the token samples authenticate as."""
    from devstack.seed import ADMIN_SCOPES
    from latchkey.clients import Client
    from latchkey.crypto.secrets import keyed_hash

    services.client_store().create(Client(
        client_id="dev-admin", name="Latchkey dev admin", grant_types=("client_credentials",), scope=ADMIN_SCOPES,
        secret_hash=keyed_hash(services.secret_hash_key(), "dev-admin-secret"), created_at=1, updated_at=1))


def _check_oauth_response(path: str, status: int, instance: Any) -> None:
    pointer = (f"{_OPENAPI_URI}#/paths/{path.replace('/', '~1')}/post/responses/{status}"
               "/content/application~1json/schema")
    jsonschema.Draft202012Validator({"$ref": pointer}, registry=_registry).validate(instance)


def _form_with_token(directory: str, token: str) -> dict[str, Any]:
    from urllib.parse import parse_qsl, urlencode

    event = copy.deepcopy(_sample(directory))
    form = dict(parse_qsl(event["body"]))
    event["body"] = urlencode({**form, "token": token})
    return event


def test_token_sample_issues_a_client_credentials_token(rotated):
    from latchkey import rfc9068

    _seed_dev_admin()
    event = _sample("token")
    result = _invoke("token", event)
    assert result["statusCode"] == 200, result
    assert result["headers"]["Cache-Control"] == "no-store" and result["headers"]["Pragma"] == "no-cache"
    assert result["headers"]["Content-Type"] == "application/json"
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    body = json.loads(result["body"])
    _check_oauth_response("/api/oauth/token", 200, body)
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "gov.user.oauth.app:read")
    claims = rfc9068.verify(services.key_ring(), body["access_token"], issuer=ISSUER)
    assert (claims["client_id"], claims["sub"], claims["aud"]) == ("dev-admin", "dev-admin", ISSUER)


def test_token_sample_without_the_client_is_401_invalid_client(rotated):
    result = _invoke("token")
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"] == 'Basic realm="latchkey"'
    _check("OAuthError", json.loads(result["body"]))


def test_introspect_and_revoke_samples(rotated):
    _seed_dev_admin()
    token = json.loads(_invoke("token")["body"])["access_token"]

    placeholder = _invoke("introspect")  # the sample's own token was signed by no key of ours
    assert placeholder["statusCode"] == 200
    assert json.loads(placeholder["body"]) == {"active": False}
    assert placeholder["headers"]["Cache-Control"] == "no-store"

    active = _invoke("introspect", _form_with_token("introspect", token))
    assert active["statusCode"] == 200
    body = json.loads(active["body"])
    _check_oauth_response("/api/oauth/introspect", 200, body)
    assert body["active"] is True and body["client_id"] == "dev-admin"

    event = _form_with_token("revoke", token)
    revoked = _invoke("revoke", event)
    assert (revoked["statusCode"], revoked.get("body") or "") == (200, "")
    assert revoked["headers"]["Cache-Control"] == "no-store"
    assert revoked["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    assert json.loads(_invoke("introspect", _form_with_token("introspect", token))["body"]) == {"active": False}
    assert _invoke("revoke")["statusCode"] == 200  # the placeholder token: invalid, so 200 as well


# --- userinfo, governor's consent API and connections (userinfo, gov_auth_code, gov_connection_*) ----------
GOV_USER_ROUTES = ("gov_auth_code", "gov_connection_list", "gov_connection_get", "gov_connection_delete")
ACCOUNT_APP = "5a7e3c1b9d2f4e6a8b0c1d2e3f405162"  # the app whose user tokens call governor's user routes
CONNECTION_USER = "3c59dc048e8850243be8079a5c74d079"


def _connected_user() -> None:
    """A user, and the sample app (SAMPLE_CLIENT) and the account app registered for the code flow."""
    from latchkey.users import User

    services.user_store().create(User(user_id=CONNECTION_USER, username="carol", password_hash="$scrypt$x",
                                      name="Carol Baker", email="carol@example.com", email_verified=True,
                                      created_at=1767225600, updated_at=1767225600))
    from latchkey import apps
    from latchkey.client_metadata import parse_metadata

    code_flow = {"grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}
    apps.create_from(parse_metadata({"name": "Example Shop", "url": "https://shop.example.com",
                                     "redirect_uri": "https://shop.example.com/oauth/callback", **code_flow}),
                     client_id=SAMPLE_CLIENT)
    apps.create_from(parse_metadata({"name": "Account", "url": "https://account.example.com",
                                     "redirect_uri": "https://account.example.com/cb", **code_flow,
                                     "scope": "gov.user.oauth.authorize gov.user.oauth.connection:read "
                                              "gov.user.oauth.connection:write"}), client_id=ACCOUNT_APP)


def _user_token(client_id: str, scopes: tuple[str, ...]) -> str:
    """The user consents to ``client_id`` for ``scopes``; an access token of the resulting grant."""
    from latchkey import clock, user_tokens

    user = services.user_store().get(CONNECTION_USER)
    client = services.client_store().get(client_id)
    assert user is not None and client is not None
    now = clock.now()
    connection, put = services.connection_store().grant_op(user, client_id, scopes, auth_time=now, now=now)
    services.item_store().write(put)
    issued = user_tokens.issue(client=client, user=user, connection=connection, scopes=scopes, auth_time=now,
                               sid="")
    services.item_store().write(*issued.writes)
    return issued.response.access_token


def _account_token() -> str:
    return _user_token(ACCOUNT_APP, ("gov.user.oauth.authorize", "gov.user.oauth.connection:read",
                                     "gov.user.oauth.connection:write"))


@pytest.mark.parametrize("directory", GOV_USER_ROUTES)
def test_gov_user_route_samples_without_a_token_are_401(rotated, directory):
    event = _sample(directory)
    assert "authorization" not in event["headers"]
    result = _invoke(directory, event)
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    body = json.loads(result["body"])
    _check("GovernorError", body)
    assert body == {"message": "An access token is required.", "code": "invalid_token",
                    "request_id": event["requestContext"]["requestId"]}


@pytest.mark.parametrize("directory", GOV_USER_ROUTES)
def test_gov_user_route_samples_with_a_client_token_are_403(rotated, directory):
    token = _admin_token(("gov.user.oauth.authorize", "gov.user.oauth.connection:read",
                          "gov.user.oauth.connection:write"))  # a client's own token: no user behind it
    result = _invoke(directory, _with_token(directory, token))
    assert result["statusCode"] == 403
    body = json.loads(result["body"])
    _check("GovernorError", body)
    assert body["code"] == "forbidden"


@pytest.mark.parametrize("sample", ["userinfo", "userinfo.post"])
def test_userinfo_samples_with_the_placeholder_token_are_401(rotated, sample):
    event = json.loads((EVENTS / f"{sample}.json").read_text(encoding="utf-8"))
    result = _invoke("userinfo", event)
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert result["headers"]["Cache-Control"] == "no-store"
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    body = json.loads(result["body"])
    _check("OAuthError", body)
    assert body["error"] == "invalid_token"


def test_userinfo_samples_with_a_user_token(rotated):
    from urllib.parse import urlencode

    _connected_user()
    token = _user_token(SAMPLE_CLIENT, ("openid", "profile", "email"))
    event = copy.deepcopy(_sample("userinfo"))
    event["headers"]["authorization"] = f"Bearer {token}"
    result = _invoke("userinfo", event)
    assert result["statusCode"] == 200, result
    assert result["headers"]["Cache-Control"] == "no-store"
    assert result["headers"]["Content-Type"] == "application/json"
    body = json.loads(result["body"])
    _check("UserInfo", body)
    assert body == {"sub": CONNECTION_USER, "name": "Carol Baker", "preferred_username": "carol",
                    "updated_at": 1767225600, "email": "carol@example.com", "email_verified": True}

    posted = json.loads((EVENTS / "userinfo.post.json").read_text(encoding="utf-8"))
    posted["body"] = urlencode({"access_token": token})
    result = _invoke("userinfo", posted)
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"]) == body


def test_gov_auth_code_sample(rotated):
    _connected_user()
    result = _invoke("gov_auth_code", _with_token("gov_auth_code", _account_token()))
    assert result["statusCode"] == 200, result
    assert result["headers"]["Cache-Control"] == "no-store"
    body = json.loads(result["body"])
    _check("AuthCodeResponse", body)
    sent = json.loads(_sample("gov_auth_code")["body"])
    _check("AuthCodeRequest", sent)
    connection = services.connection_store().get(CONNECTION_USER, SAMPLE_CLIENT)
    assert connection is not None and connection.scope == "email openid profile"


def test_gov_connection_samples(rotated):
    _connected_user()
    shop_token = _user_token(SAMPLE_CLIENT, ("openid", "profile"))
    account = _account_token()

    listed = _invoke("gov_connection_list", _with_token("gov_connection_list", account))
    assert listed["statusCode"] == 200, listed
    body = json.loads(listed["body"])
    _check("ConnectionList", body)
    assert sorted(c["client_id"] for c in body["connections"]) == sorted([SAMPLE_CLIENT, ACCOUNT_APP])

    got = _invoke("gov_connection_get", _with_token("gov_connection_get", account))
    assert got["statusCode"] == 200, got
    one = json.loads(got["body"])
    _check("Connection", one)
    assert one in body["connections"] and one["scope"] == "openid profile"

    deleted = _invoke("gov_connection_delete", _with_token("gov_connection_delete", account))
    assert (deleted["statusCode"], deleted.get("body") or "") == (204, "")
    assert deleted["headers"]["Cache-Control"] == "no-store"
    missing = _invoke("gov_connection_get", _with_token("gov_connection_get", account))
    assert missing["statusCode"] == 404
    _check("GovernorError", json.loads(missing["body"]))
    again = _invoke("gov_connection_delete", _with_token("gov_connection_delete", account))
    assert again["statusCode"] == 404

    event = copy.deepcopy(_sample("userinfo"))
    event["headers"]["authorization"] = f"Bearer {shop_token}"
    assert _invoke("userinfo", event)["statusCode"] == 401  # the sample app's token died with the connection


# --- Tetrate Service Bridge ---------------------------------------------------------------------------
def test_tsb_token_sample_is_the_token_samples_grant_in_proto3_json(rotated):
    from latchkey import rfc9068

    assert json.loads(_invoke("tsb_token")["body"])["error"] == "INVALID_CLIENT"  # no client yet
    _seed_dev_admin()
    result = _invoke("tsb_token")
    assert result["statusCode"] == 200, result
    assert result["headers"]["Cache-Control"] == "no-store"
    body = json.loads(result["body"])
    _check("TsbGrantResponse", body)
    assert (body["tokenType"], body["expiresIn"], body["clientId"]) == ("Bearer", 3600, "dev-admin")
    claims = rfc9068.verify(services.key_ring(), body["accessToken"], issuer=ISSUER)
    assert claims["scope"] == "gov.user.oauth.app:read"


# --- device authorization (RFC 8628) -------------------------------------------------------------------
def test_device_authorization_sample(rotated):
    from latchkey.clients import Client

    result = _invoke("device_authorization")
    assert (result["statusCode"], json.loads(result["body"])["error"]) == (401, "invalid_client")  # no app yet
    services.client_store().create(Client(
        client_id="tv-player", name="TV player", grant_types=("urn:ietf:params:oauth:grant-type:device_code",),
        token_endpoint_auth_method="none", created_at=1, updated_at=1))
    result = _invoke("device_authorization")
    assert result["statusCode"] == 200, result
    assert result["headers"]["Cache-Control"] == "no-store"
    body = json.loads(result["body"])
    _check("DeviceAuthorizationResponse", body)
    assert body["verification_uri"] == f"{ISSUER}/device"


def test_device_page_samples(rotated):
    result = _invoke("device_page")  # the sample's session cookie is unknown: sign in first
    assert result["statusCode"] == 302
    assert result["headers"]["Location"].startswith(f"{ISSUER}/api/oauth/login?request=")
    assert result["headers"]["Content-Security-Policy"].startswith("default-src 'none'")
    result = _invoke("device_page", _sample("device_page.post"))  # its csrf_token is a placeholder
    assert result["statusCode"] == 403
    assert result["headers"]["Content-Type"].startswith("text/html")


# --- third-party login (platform_authorize, platform_callback) ------------------------------------------
@pytest.mark.parametrize("directory,text", [("platform_authorize", "This sign-in link has expired"),
                                            ("platform_callback", "This sign-in has expired")])
def test_platform_login_samples_answer_the_error_page(rotated, directory, text):
    """The samples name a pending request / upstream state the empty store does not hold: the HTML error
    page (400), never a redirect."""
    event = _sample(directory)
    result = _invoke(directory, event)
    assert result["statusCode"] == 400, result
    assert result["headers"]["Content-Type"].startswith("text/html")
    assert "Location" not in result["headers"]
    assert result["headers"]["Content-Security-Policy"].startswith("default-src 'none'")
    assert text in result["body"]
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
