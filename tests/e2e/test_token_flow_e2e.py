"""The token flow over the local stack (``python -m devstack up`` in a subprocess): the seeded admin client
gets a client_credentials token over HTTP, the token verifies against the published JWKS with PyJWT alone,
introspection says active, revocation makes it inactive, and ``oauthTokenGenerated`` and
``oauthTokenRevoked`` arrive on the stack's Kafka."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from urllib.parse import quote_plus

import jwt
import pytest

from tests.e2e.test_local_stack import get, start_stack
from tests.helpers import Answer, consume, http_form, http_json
from tests.helpers_asyncapi import validate_message

pytestmark = pytest.mark.e2e

ADMIN_ID = os.environ.get("DEV_ADMIN_CLIENT_ID", "dev-admin")
ADMIN_SECRET = os.environ.get("DEV_ADMIN_CLIENT_SECRET", "dev-admin-secret")


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> Answer:
    return http_form(url, form, headers)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("token-stack") / "state")
    yield running
    running.stop()


def test_the_metadata_names_the_endpoints(stack):
    document = get(f"{stack.url}/.well-known/openid-configuration").json()
    assert document["token_endpoint"] == f"{stack.url}/api/oauth/token"
    assert document["revocation_endpoint"] == f"{stack.url}/api/oauth/revoke"
    assert document["introspection_endpoint"] == f"{stack.url}/api/oauth/introspect"
    assert document["grant_types_supported"] == ["authorization_code", "client_credentials", "refresh_token",
                                                 "urn:ietf:params:oauth:grant-type:device_code",
                                                 "urn:ietf:params:oauth:grant-type:token-exchange"]
    assert document["device_authorization_endpoint"] == f"{stack.url}/api/oauth/device/code"
    assert document["authorization_endpoint"] == f"{stack.url}/api/oauth/authorize"
    assert document["end_session_endpoint"] == f"{stack.url}/api/oauth/logout"
    assert document["response_types_supported"] == ["code"]


def test_client_credentials_token_verifies_is_introspected_revoked_and_announced(stack):
    auth = {"Authorization": basic(ADMIN_ID, ADMIN_SECRET)}
    answer = post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials",
                                                   "scope": "gov.user.oauth.app:read"}, auth)
    assert answer.status == 200, answer.body
    assert answer.headers["cache-control"] == "no-store" and answer.headers["pragma"] == "no-cache"
    body = answer.json()
    assert (body["token_type"], body["scope"]) == ("Bearer", "gov.user.oauth.app:read")
    token = body["access_token"]

    # verifies with nothing but the published JWK Set (RFC 9068 §4)
    jwks = jwt.PyJWKSet.from_dict(get(f"{stack.url}/api/oauth/jwks").json())
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=stack.url, issuer=stack.url,
                        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti", "client_id"]})
    assert (claims["sub"], claims["client_id"], claims["scope"]) == (ADMIN_ID, ADMIN_ID, "gov.user.oauth.app:read")

    active = post(f"{stack.url}/api/oauth/introspect", {"token": token}, auth)
    assert active.status == 200 and active.json()["active"] is True
    assert active.json()["jti"] == claims["jti"]

    revoked = post(f"{stack.url}/api/oauth/revoke", {"token": token}, auth)
    assert (revoked.status, revoked.body) == (200, b"")
    assert revoked.headers["cache-control"] == "no-store"

    inactive = post(f"{stack.url}/api/oauth/introspect", {"token": token}, auth)
    assert (inactive.status, inactive.json()) == (200, {"active": False})

    topic = f"{stack.prefix}.oauthToken"
    mine = []
    for message in consume(stack.env["KAFKA_BOOTSTRAP"], topic, count=2, timeout=30):
        value = message.json()
        if value["clientId"] == ADMIN_ID:
            mine.append(value["name"])
            assert message.key == ADMIN_ID.encode()
            validate_message(message.value, key=message.key, topic=message.topic, prefix=stack.prefix)
    assert mine == ["oauthTokenGenerated", "oauthTokenRevoked"]


def test_a_bad_secret_is_401_with_a_basic_challenge_over_http(stack):
    answer = post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials"},
                  {"Authorization": basic(ADMIN_ID, "wrong")})
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="latchkey"'
    assert answer.headers["cache-control"] == "no-store"
    body = json.loads(answer.body)
    assert (body["error"], body["request_id"]) == ("invalid_client", answer.headers["x-request-id"])


def send_json(method: str, url: str, body: dict, token: str) -> Answer:
    return http_json(method, url, body, token=token)


def test_admin_token_creates_an_app_whose_machine_token_lives_and_dies_over_http(stack):
    """Issue 3's whole chain: admin token → create app → its client_credentials token verifies against
    the JWKS → introspect active → revoke → inactive, both events on Kafka; rotate kills the old
    secret; delete kills the app."""
    admin = post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials",
                                                  "scope": "gov.user.oauth.app:write"},
                 {"Authorization": basic(ADMIN_ID, ADMIN_SECRET)}).json()["access_token"]
    created = send_json("POST", f"{stack.url}/api/oauth/app", {
        "name": "Billing service", "url": "https://billing.example", "redirect_uri": "",
        "grant_types": ["client_credentials"], "scope": "invoices:read invoices:write", "access_token_ttl": 600,
    }, admin)
    assert created.status == 201, created.body
    client_id, secret = created.json()["client_id"], created.json()["key"]
    auth = {"Authorization": basic(client_id, secret)}

    issued = post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials", "scope": "invoices:read",
                                                   "resource": "https://billing.example/api"}, auth)
    assert issued.status == 200, issued.body
    assert (issued.json()["expires_in"], issued.json()["scope"]) == (600, "invoices:read")
    token = issued.json()["access_token"]
    jwks = jwt.PyJWKSet.from_dict(get(f"{stack.url}/api/oauth/jwks").json())
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience="https://billing.example/api",
                        issuer=stack.url)
    assert (claims["client_id"], claims["sub"], header["typ"]) == (client_id, client_id, "at+jwt")

    assert post(f"{stack.url}/api/oauth/introspect", {"token": token}, auth).json()["active"] is True
    assert post(f"{stack.url}/api/oauth/revoke", {"token": token}, auth).status == 200
    assert post(f"{stack.url}/api/oauth/introspect", {"token": token}, auth).json() == {"active": False}

    names = []
    for message in consume(stack.env["KAFKA_BOOTSTRAP"], f"{stack.prefix}.oauthToken", count=10, timeout=20):
        if message.json()["clientId"] == client_id:
            validate_message(message.value, key=message.key, topic=message.topic, prefix=stack.prefix)
            assert message.key == client_id.encode()
            names.append(message.json()["name"])
    assert names == ["oauthTokenGenerated", "oauthTokenRevoked"]

    rotated = send_json("PUT", f"{stack.url}/api/oauth/app/id/{client_id}/rotate", {}, admin)
    assert rotated.status == 200 and rotated.json()["client_id"] == client_id
    old = post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials"}, auth)
    assert (old.status, old.json()["error"]) == (401, "invalid_client")
    new_auth = {"Authorization": basic(client_id, rotated.json()["key"])}
    assert post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials"}, new_auth).status == 200

    request = urllib.request.Request(f"{stack.url}/api/oauth/app/id/{client_id}", method="DELETE",
                                     headers={"Authorization": f"Bearer {admin}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    gone = post(f"{stack.url}/api/oauth/token", {"grant_type": "client_credentials"}, new_auth)
    assert (gone.status, gone.json()["error"]) == (401, "invalid_client")
