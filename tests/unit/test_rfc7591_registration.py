"""RFC 7591 dynamic client registration: ``POST /api/oauth/register`` through its function, in-process."""

from __future__ import annotations

import json
import re

import pytest

from latchkey import discovery, rfc8414, rfc9068, services
from latchkey.clients import Client
from latchkey.crypto.secrets import keyed_hash, verify_keyed_hash
from tests.registration_helpers import (
    APP_WRITE,
    ISSUER,
    WEB_APP,
    assert_oauth_error,
    check,
    configure,
    initial_access_token,
    invoke,
    registration_environment,
    stored_item,
)


@pytest.fixture(autouse=True)
def env(monkeypatch):
    yield from registration_environment(monkeypatch)


SECRET = re.compile(r"^lk_cs_[A-Za-z0-9_-]{43}$")
RAT = re.compile(r"^lk_rat_[A-Za-z0-9_-]{43}$")


def register(metadata=None, *, token: str | None = None):
    return invoke("register", body=WEB_APP if metadata is None else metadata,
                  token=initial_access_token() if token is None else token)


def error_of(answer):
    return answer.status, answer.body["error"]


# --- §3.2.1 the client information response ---------------------------------------------------------
def test_registration_answers_201_with_every_field():
    answer = register()
    assert answer.status == 201, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Pragma"] == "no-cache"
    body = answer.body
    check("ClientInformation", body)
    client_id = body["client_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", client_id)
    assert SECRET.match(body["client_secret"]) and RAT.match(body["registration_access_token"])
    assert body["client_secret_expires_at"] == 0
    assert body["client_id_issued_at"] == stored_item(client_id)["created_at"]
    assert body["registration_client_uri"] == f"{ISSUER}/api/oauth/register/{client_id}"
    assert {k: v for k, v in body.items() if k not in {"client_id", "client_secret", "client_id_issued_at",
                                                       "registration_access_token"}} == {
        "client_secret_expires_at": 0,
        "registration_client_uri": f"{ISSUER}/api/oauth/register/{client_id}",
        "client_name": "Example Reporting Tool",
        "client_uri": "https://tools.example.com",
        "redirect_uris": ["https://tools.example.com/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],  # §2 default, consistent with authorization_code (§2.1)
        "token_endpoint_auth_method": "client_secret_basic",  # §2 default
        "scope": "openid profile",
        "id_token_signed_response_alg": "RS256",
        "post_logout_redirect_uris": [],
    }


def test_the_client_is_stored_on_the_app_model_with_hashed_secrets_only():
    body = register().body
    item = stored_item(body["client_id"])
    raw = json.dumps(item)
    assert body["client_secret"] not in raw and body["registration_access_token"] not in raw
    key = services.secret_hash_key()
    assert verify_keyed_hash(key, body["client_secret"], item["secret_hash"])
    assert item["registration_access_token_hash"] == keyed_hash(key, body["registration_access_token"])
    client = Client.from_item(item)
    assert (client.name, client.url, client.redirect_uri) == ("Example Reporting Tool", "https://tools.example.com", "")
    assert client.redirect_uris == ("https://tools.example.com/callback",)
    assert client.scope == "openid profile" and not client.public
    assert services.client_store().get(body["client_id"]) == client


def test_every_registration_gets_its_own_id_and_secrets():
    first, second = register().body, register().body
    for name in ("client_id", "client_secret", "registration_access_token"):
        assert first[name] != second[name]


def test_defaults_per_section_2():
    body = register({"redirect_uris": ["https://app.example.com/cb"]}).body
    assert body["grant_types"] == ["authorization_code"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_name"] == body["client_id"]  # server-provisioned, and returned (§3.2.1)
    assert "scope" not in body and "client_uri" not in body


def test_a_public_client_gets_no_secret():
    answer = register({"redirect_uris": ["com.example.app:/callback"], "token_endpoint_auth_method": "none"})
    assert answer.status == 201, answer.body
    assert "client_secret" not in answer.body and "client_secret_expires_at" not in answer.body
    assert RAT.match(answer.body["registration_access_token"])
    assert stored_item(answer.body["client_id"])["secret_hash"] is None


def test_a_private_key_jwt_client_gets_no_secret():
    answer = register({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                       "jwks_uri": "https://tools.example.com/jwks.json"})
    assert answer.status == 201, answer.body
    assert "client_secret" not in answer.body
    assert answer.body["jwks_uri"] == "https://tools.example.com/jwks.json"
    assert answer.body["response_types"] == []  # no authorization_code, so no code response type


def test_a_client_credentials_client():
    answer = register({"client_name": "batch", "grant_types": ["client_credentials"],
                       "token_endpoint_auth_method": "client_secret_post", "scope": "reports:read"})
    assert answer.status == 201, answer.body
    assert (answer.body["redirect_uris"], answer.body["response_types"]) == ([], [])
    assert SECRET.match(answer.body["client_secret"])


def test_unknown_metadata_and_nulls_are_ignored():
    """§2: "The authorization server MUST ignore any client metadata sent by the client that it does not
    understand"; governor's own names are not RFC 7591 metadata either."""
    metadata = {**WEB_APP, "logo_uri": "https://tools.example.com/logo.png", "contacts": ["ops@example.com"],
                "tos_uri": "https://tools.example.com/tos", "software_statement": "eyJ...", "name": "governor name",
                "url": "notaurl", "access_token_ttl": 5, "client_secret": "chosen-by-me", "client_id": "chosen",
                "client_uri": None, "jwks": None, "x-custom": {"nested": True}}
    answer = register(metadata)
    assert answer.status == 201, answer.body
    body = answer.body
    assert body["client_name"] == "Example Reporting Tool" and "client_uri" not in body
    assert body["client_id"] != "chosen" and body["client_secret"] != "chosen-by-me"
    for name in ("logo_uri", "contacts", "tos_uri", "software_statement", "name", "url", "x-custom", "jwks"):
        assert name not in body
    assert Client.from_item(stored_item(body["client_id"])).access_token_ttl is None


# --- §3.2.2 errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("uris", [["https://app.example.com/cb#frag"], ["http://app.example.com/cb"],
                                  ["/relative"], ["not a uri"], []])
def test_invalid_redirect_uris(uris):
    answer = register({"redirect_uris": uris})
    assert_oauth_error(answer, 400, "invalid_redirect_uri")
    assert services.item_store().query("CLIENTS", index="gsi1") == []  # nothing written


def test_loopback_http_redirect_uris_are_allowed_for_native_apps():
    answer = register({"redirect_uris": ["http://127.0.0.1:8765/cb", "http://localhost/cb"],
                       "token_endpoint_auth_method": "none"})
    assert answer.status == 201, answer.body


@pytest.mark.parametrize("metadata,field", [
    ({"client_name": 5}, "client_name"),
    ({"client_name": ""}, "client_name"),
    ({"client_uri": "ftp://tools.example.com"}, "client_uri"),
    ({"redirect_uris": "https://tools.example.com/cb"}, "redirect_uris"),
    ({"redirect_uris": [5]}, "redirect_uris"),
    ({"grant_types": ["implicit"]}, "grant_types"),
    ({"grant_types": "client_credentials"}, "grant_types"),
    ({"response_types": ["token"]}, "response_types"),
    ({"grant_types": ["client_credentials"], "response_types": ["code"]}, "response_types"),
    ({"response_types": []}, "response_types"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"),
    ({"scope": "a\tb"}, "scope"),
    ({"scope": "openid gov.user.oauth.app:write"}, "scope"),
    ({"jwks_uri": "http://tools.example.com/jwks"}, "jwks_uri"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "body"),
    ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}, "body"),
    ({"id_token_signed_response_alg": "none"}, "id_token_signed_response_alg"),
])
def test_invalid_client_metadata(metadata, field):
    answer = register({**WEB_APP, **metadata})
    assert_oauth_error(answer, 400, "invalid_client_metadata")
    assert answer.body["error_description"].startswith(f"{field}:"), answer.body
    assert services.item_store().query("CLIENTS", index="gsi1") == []


@pytest.mark.parametrize("raw,content_type", [("[]", "application/json"), ("{", "application/json"),
                                              ("client_name=x", "application/x-www-form-urlencoded")])
def test_a_body_that_is_not_a_json_object_is_invalid_request(raw, content_type):
    answer = invoke("register", raw_body=raw, token=initial_access_token(),
                    headers={"content-type": content_type})
    assert_oauth_error(answer, 400, "invalid_request")


# --- who may register (§3: initial access token) -----------------------------------------------------
def test_token_mode_is_the_default_and_requires_an_initial_access_token():
    assert services.settings().client_registration == "token"
    answer = invoke("register", body=WEB_APP)
    assert_oauth_error(answer, 401, "invalid_token")
    assert services.item_store().query("CLIENTS", index="gsi1") == []


@pytest.mark.parametrize("token", ["not-a-jwt", "lk_rat_abc"])
def test_token_mode_refuses_a_bad_token(token):
    assert_oauth_error(invoke("register", body=WEB_APP, token=token), 401, "invalid_token")


def test_token_mode_refuses_a_foreign_or_expired_token():
    foreign = initial_access_token(issuer="https://elsewhere.example.com")
    expired = initial_access_token(now=1_000_000_000)
    for token in (foreign, expired):
        assert_oauth_error(invoke("register", body=WEB_APP, token=token), 401, "invalid_token")


def test_token_mode_refuses_a_revoked_token():
    issued = rfc9068.issue(services.key_ring(), issuer=ISSUER, alg="ES256", client_id="dev-admin",
                           subject="dev-admin", audience=ISSUER, scopes=[APP_WRITE], ttl=300)
    services.denylist().revoke(issued.jti, issued.claims["exp"])
    assert_oauth_error(invoke("register", body=WEB_APP, token=issued.token), 401, "invalid_token")


def test_token_mode_without_the_write_scope_is_403():
    answer = invoke("register", body=WEB_APP, token=initial_access_token(scopes=("gov.user.oauth.app:read",)))
    assert_oauth_error(answer, 403, "insufficient_scope")
    assert f'scope="{APP_WRITE}"' in answer.headers["WWW-Authenticate"]


def test_token_mode_checks_the_token_before_the_body():
    assert_oauth_error(invoke("register", raw_body="{", headers={"content-type": "application/json"}),
                       401, "invalid_token")


def test_open_mode_needs_no_token(env):
    configure(env, "open")
    answer = invoke("register", body=WEB_APP)
    assert answer.status == 201, answer.body
    assert services.client_store().get(answer.body["client_id"]) is not None
    # a token is not looked at either
    assert invoke("register", body=WEB_APP, token="garbage").status == 201


def test_open_mode_still_refuses_admin_scopes(env):
    configure(env, "open")
    answer = invoke("register", body={**WEB_APP, "scope": "gov.user.oauth.user:write"})
    assert_oauth_error(answer, 400, "invalid_client_metadata")


def test_off_mode_answers_404_even_with_a_valid_token(env):
    configure(env, "off")
    answer = invoke("register", body=WEB_APP, token=initial_access_token())
    assert_oauth_error(answer, 404, "not_found")
    assert services.item_store().query("CLIENTS", index="gsi1") == []


# --- RFC 8414 metadata ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,advertised", [("token", True), ("open", True), ("off", False)])
def test_registration_endpoint_is_advertised_unless_off(env, mode, advertised):
    configure(env, mode)
    document = discovery.metadata_document()
    assert rfc8414.metadata(services.settings()) == document
    if advertised:
        assert document["registration_endpoint"] == f"{ISSUER}/api/oauth/register"
    else:
        assert "registration_endpoint" not in document
