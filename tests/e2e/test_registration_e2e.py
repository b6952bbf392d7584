"""Dynamic client registration (RFC 7591) and its management (RFC 7592) over HTTP, end to end.

- ``token`` mode (the default) on the full local stack in a subprocess (DynamoDB Local): the initial access
  token is a Latchkey access token issued in this process against the stack's own table and key
  (``stack.env`` + ``kek``, as the stack itself signs), so the test does not depend on the token endpoint.
- ``open`` mode on the in-process ``--store memory`` stack (``CLIENT_REGISTRATION=open``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.e2e.test_local_stack import start_stack
from tests.helpers import Answer, http_json

pytestmark = pytest.mark.e2e

APP_WRITE = "gov.user.oauth.app:write"


def call(method: str, url: str, body: Any = None, token: str | None = None) -> Answer:
    return http_json(method, url, body, token=token)


def assert_error(answer: Answer, status: int, error: str) -> None:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.json()["error"] == error
    assert answer.headers["cache-control"] == "no-store"
    if status in (401, 403):
        assert answer.headers["www-authenticate"].startswith("Bearer ")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("registration") / "state")
    yield running
    running.stop()


@pytest.fixture
def stack_services(stack, monkeypatch):
    """Latchkey's services in this process, pointed at the stack's table and kek."""
    from devstack.stack import DUMMY_AWS
    from latchkey import services

    env = stack.env
    values = {"STORE": "dynamodb", "DYNAMODB_ENDPOINT": env["DYNAMODB_ENDPOINT"], "TABLE_NAME": env["TABLE_NAME"],
              "ISSUER": env["ISSUER"], "AWS_REGION": "us-east-1",
              "LOCAL_KEK": (stack.state_dir / "kek").read_text().strip()}
    for name, value in {**DUMMY_AWS, **values}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KMS_KEY_ID", raising=False)
    services.reset()
    yield services
    services.reset()


def admin_token(services, scopes=(APP_WRITE,)) -> str:
    from latchkey import rfc9068

    issuer = services.settings().issuer
    return rfc9068.issue(services.key_ring(), issuer=issuer, alg="ES256", client_id="dev-admin", subject="dev-admin",
                         audience=issuer, scopes=scopes, ttl=300).token


METADATA = {
    "client_name": "e2e reporting tool",
    "client_uri": "https://tools.example.com",
    "redirect_uris": ["https://tools.example.com/callback"],
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "scope": "openid reports:read",
    "logo_uri": "https://tools.example.com/logo.png",
}


def test_discovery_advertises_the_registration_endpoint(stack):
    document = call("GET", f"{stack.url}/.well-known/openid-configuration").json()
    assert document["registration_endpoint"] == f"{stack.url}/api/oauth/register"


def test_registration_needs_an_initial_access_token(stack, stack_services):
    url = f"{stack.url}/api/oauth/register"
    assert_error(call("POST", url, METADATA), 401, "invalid_token")
    assert_error(call("POST", url, METADATA, token="not-a-token"), 401, "invalid_token")
    weak = admin_token(stack_services, scopes=("gov.user.oauth.app:read",))
    assert_error(call("POST", url, METADATA, token=weak), 403, "insufficient_scope")


def test_register_read_update_delete(stack, stack_services):
    token = admin_token(stack_services)
    created = call("POST", f"{stack.url}/api/oauth/register", METADATA, token=token)
    assert created.status == 201, created.body
    assert created.headers["content-type"] == "application/json"
    assert created.headers["cache-control"] == "no-store"
    info = created.json()
    client_id = info["client_id"]
    assert info["client_secret"].startswith("lk_cs_") and info["client_secret_expires_at"] == 0
    assert info["registration_client_uri"] == f"{stack.url}/api/oauth/register/{client_id}"
    assert info["response_types"] == ["code"] and "logo_uri" not in info

    # stored in DynamoDB Local on the app model, secrets only as keyed hashes
    from latchkey.crypto.secrets import verify_keyed_hash

    stored = stack_services.client_store().get(client_id)
    assert stored is not None and stored.name == "e2e reporting tool"
    item = json.dumps(stack_services.item_store().get(f"CLIENT#{client_id}", "CLIENT"))
    assert info["client_secret"] not in item and info["registration_access_token"] not in item
    assert verify_keyed_hash(stack_services.secret_hash_key(), info["client_secret"], stored.secret_hash)

    uri, rat = info["registration_client_uri"], info["registration_access_token"]
    read = call("GET", uri, token=rat)
    assert read.status == 200, read.body
    assert read.json() == {k: v for k, v in info.items() if k != "client_secret"}
    assert_error(call("GET", uri, token="lk_rat_wrong"), 401, "invalid_token")
    assert_error(call("GET", uri, token=token), 401, "invalid_token")  # an admin token is not this client's

    other = call("POST", f"{stack.url}/api/oauth/register", {"redirect_uris": ["https://other.example.com/cb"]},
                 token=token).json()
    assert_error(call("GET", uri, token=other["registration_access_token"]), 401, "invalid_token")

    replacement = {"client_id": client_id, "client_name": "renamed", "redirect_uris": ["https://tools.example.com/v2"],
                   "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_post"}
    updated = call("PUT", uri, replacement, token=rat)
    assert updated.status == 200, updated.body
    assert updated.json()["client_name"] == "renamed"
    assert "scope" not in updated.json() and "client_uri" not in updated.json()  # replaced, not augmented
    assert call("GET", uri, token=rat).json() == updated.json()
    assert_error(call("PUT", uri, {**replacement, "client_id": other["client_id"]}, token=rat), 400,
                 "invalid_request")
    assert_error(call("PUT", uri, {**replacement, "redirect_uris": ["http://evil.example.com/cb"]}, token=rat),
                 400, "invalid_redirect_uri")

    deleted = call("DELETE", uri, token=rat)
    assert (deleted.status, deleted.body) == (204, b"")
    assert_error(call("GET", uri, token=rat), 401, "invalid_token")
    assert stack_services.client_store().get(client_id) is None
    assert call("DELETE", other["registration_client_uri"], token=other["registration_access_token"]).status == 204


def test_open_registration_on_the_memory_stack(tmp_path, kafka_cluster, monkeypatch):
    from devstack.stack import Options, Stack

    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_cluster.bootstrap)
    monkeypatch.setenv("CLIENT_REGISTRATION", "open")
    monkeypatch.delenv("STORE", raising=False)
    options = Options(store="memory", port=0, state_dir=tmp_path / "state", topic_prefix=f"dcr{uuid.uuid4().hex[:8]}",
                      table_name="registration-memory")
    with Stack(options) as running:
        created = call("POST", f"{running.url}/api/oauth/register",
                       {"client_name": "native", "redirect_uris": ["http://127.0.0.1:8765/cb"],
                        "token_endpoint_auth_method": "none"})
        assert created.status == 201, created.body
        info = created.json()
        assert "client_secret" not in info  # a public client
        assert call("GET", info["registration_client_uri"], token=info["registration_access_token"]).status == 200
        refused = call("POST", f"{running.url}/api/oauth/register",
                       {"grant_types": ["client_credentials"], "scope": "gov.user.oauth.app:write"})
        assert_error(refused, 400, "invalid_client_metadata")
