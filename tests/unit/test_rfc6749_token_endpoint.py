"""The token endpoint pipeline (RFC 6749 §3.2, §5): parameter hygiene, the grant registry, no-store."""

from __future__ import annotations

import base64
import json

import pytest

from latchkey.rfc6749 import grants
from tests.unit import oauth_support as s
from tests.unit.oauth_support import basic, call

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def store(monkeypatch):
    yield from s.environment(monkeypatch)


@pytest.fixture
def app(store):
    client, secret = s.add_client("app1", scope="read write")
    return client, {"Authorization": basic("app1", secret)}


def test_success_is_the_rfc_6749_5_1_response_never_cached(app):
    _client, auth = app
    answer = call("token", CC, headers=auth)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    s.assert_no_store(answer)
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read write"
    s.check_openapi("token", answer)


def test_base64_encoded_bodies_are_read_too(app):
    _client, auth = app
    event = s.event("token", CC, headers=auth)
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    result = s.handler("token")(event, s.LambdaContext())
    assert result["statusCode"] == 200, result["body"]


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&grant_type=client_credentials",
    "grant_type=client_credentials&scope=read&scope=write",
    "grant_type=client_credentials&scope=read&scope=read",
])
def test_a_repeated_parameter_is_invalid_request(app, body):
    _client, auth = app
    answer = call("token", body, headers=auth)
    assert (answer.status, answer.error) == (400, "invalid_request")
    s.assert_no_store(answer)
    s.check_openapi("token", answer)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "multipart/form-data", None])
def test_the_body_must_be_form_encoded(app, content_type):
    _client, auth = app
    answer = call("token", "grant_type=client_credentials", headers=auth, content_type=content_type)
    assert (answer.status, answer.error) == (400, "invalid_request")
    s.assert_no_store(answer)


def test_content_type_parameters_are_allowed(app):
    _client, auth = app
    answer = call("token", CC, headers=auth, content_type="application/x-www-form-urlencoded; charset=UTF-8")
    assert answer.status == 200


@pytest.mark.parametrize("body", ["", "scope=read", "grant_type="])
def test_missing_grant_type_is_invalid_request(app, body):
    _client, auth = app
    answer = call("token", body, headers=auth)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert answer.json()["error_description"] == "The grant_type parameter is required."
    s.assert_no_store(answer)


@pytest.mark.parametrize("grant_type", ["password", "implicit", "AUTHORIZATION_CODE", "refresh-token",
                                        "urn:ietf:params:oauth:grant-type:saml2-bearer", "CLIENT_CREDENTIALS"])
def test_grant_types_not_in_the_registry_are_unsupported(app, grant_type):
    _client, auth = app
    answer = call("token", {"grant_type": grant_type}, headers=auth)
    assert (answer.status, answer.error) == (400, "unsupported_grant_type")
    s.assert_no_store(answer)
    s.check_openapi("token", answer)


def test_a_client_not_registered_for_the_grant_is_unauthorized_client(store):
    _client, secret = s.add_client("coder", grant_types=("authorization_code",))
    answer = call("token", CC, headers={"Authorization": basic("coder", secret)})
    assert (answer.status, answer.error) == (400, "unauthorized_client")
    s.assert_no_store(answer)
    assert store.events() == []


def test_a_public_client_may_not_use_client_credentials(store):
    s.add_client("spa", method="none")
    answer = call("token", {**CC, "client_id": "spa"})
    assert (answer.status, answer.error) == (400, "unauthorized_client")


def test_client_authentication_comes_before_the_grant(store):
    """An unauthenticated caller learns nothing about grants (node-oidc-provider's order)."""
    answer = call("token", {"grant_type": "password"})
    assert (answer.status, answer.error) == (401, "invalid_client")
    s.assert_no_store(answer)


def test_errors_are_never_cached_and_carry_the_request_id(store):
    answer = call("token", CC, headers={"Authorization": basic("nobody", "nothing")})
    assert answer.status == 401
    s.assert_no_store(answer)
    assert answer.json()["request_id"] == answer.headers["X-Request-Id"]
    s.check_openapi("token", answer)


def test_unknown_parameters_are_ignored(app):
    _client, auth = app
    answer = call("token", {**CC, "code": "abc", "redirect_uri": "https://x.example", "foo": "bar",
                            "username": "alice", "password": "pw"}, headers=auth)
    assert answer.status == 200
    assert answer.json()["scope"] == "read write"


def test_the_grant_sees_only_the_parameters_it_declares(store, monkeypatch):
    seen = {}

    def echo(request: grants.TokenRequest) -> grants.TokenResponse:
        seen.update(client=request.client.client_id, params=dict(request.params))
        return grants.TokenResponse(access_token="opaque", expires_in=60, extra={"note": "x"})

    grant = grants.Grant("urn:test:echo", echo, parameters=frozenset({"alpha", "beta"}), public_clients=True)
    monkeypatch.setitem(grants._registry, grant.grant_type, grant)
    _client, secret = s.add_client("echoer", method="client_secret_post", grant_types=("urn:test:echo",))
    answer = call("token", {"grant_type": "urn:test:echo", "alpha": "1", "gamma": "3", "scope": "read",
                            "client_id": "echoer", "client_secret": secret})
    assert answer.status == 200, answer.body
    assert seen == {"client": "echoer", "params": {"alpha": "1"}}
    assert answer.json() == {"access_token": "opaque", "token_type": "Bearer", "expires_in": 60, "note": "x"}


def test_registry_refuses_a_second_grant_for_the_same_type():
    existing = grants.get("client_credentials")
    assert existing is not None and existing in grants.registered()
    assert grants.register_grant(existing) is existing  # re-registering the same grant is harmless
    with pytest.raises(ValueError):
        grants.register_grant(grants.Grant("client_credentials", existing.handler))


def test_a_body_over_64_kib_is_refused(app):
    _client, auth = app
    answer = call("token", {**CC, "pad": "x" * (65 * 1024)}, headers=auth)
    assert (answer.status, answer.error) == (413, "invalid_request")
    s.assert_no_store(answer)


def test_other_paths_are_oauth_404s(app):
    event = s.event("token", CC)
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/oauth/token/extra"
    result = s.handler("token")(event, s.LambdaContext())
    assert result["statusCode"] == 404
    assert json.loads(result["body"])["error"] == "not_found"


def test_grant_modules_load_on_demand_and_are_declared_under_their_own_grant_type():
    import subprocess
    import sys

    code = ("import sys; from latchkey.rfc6749 import token_endpoint, grants;"
            "before = sorted(m for m in ('latchkey.rfc8628', 'latchkey.rfc8693', 'latchkey.interaction',"
            " 'latchkey.rfc6749.authorization_code') if m in sys.modules);"
            "grants.get('client_credentials');"
            "after = 'latchkey.rfc8628' in sys.modules;"
            "print(before, after, sorted(g.grant_type for g in grants.registered()),"
            " 'latchkey.rfc8628' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    assert out == ("[] False ['authorization_code', 'client_credentials', 'refresh_token', "
                   "'urn:ietf:params:oauth:grant-type:device_code', "
                   "'urn:ietf:params:oauth:grant-type:token-exchange'] True")
