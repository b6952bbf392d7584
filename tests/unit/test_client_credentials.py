"""The client credentials grant (RFC 6749 §4.4): scopes, audience (RFC 8707), the RFC 9068 token, its
lifetime, and the ``oauthTokenGenerated`` outbox row committed with it."""

from __future__ import annotations

import jwt
import pytest

from latchkey import rfc9068, services
from latchkey.events import OUTBOX_ENTITY
from latchkey.signing import KeyStatus
from latchkey.store import ENTITY, Check, Put
from tests.helpers_asyncapi import validate_message
from tests.unit import oauth_support as s
from tests.unit.oauth_support import ISSUER, basic, call

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def store(monkeypatch):
    yield from s.environment(monkeypatch)


@pytest.fixture
def app(store):
    _client, secret = s.add_client("app1", scope="read write admin:users")
    return {"Authorization": basic("app1", secret)}


def claims_of(answer) -> dict:
    return rfc9068.verify(services.key_ring(), answer.json()["access_token"], issuer=ISSUER)


# --- scope ----------------------------------------------------------------------------------------------
def test_a_subset_of_the_allowed_scopes(app):
    answer = call("token", {**CC, "scope": "write read"}, headers=app)
    assert answer.status == 200
    assert answer.json()["scope"] == "read write"
    assert claims_of(answer)["scope"] == "read write"


def test_without_scope_the_client_gets_its_full_allowed_scope(app):
    answer = call("token", CC, headers=app)
    assert answer.json()["scope"] == "admin:users read write"
    assert claims_of(answer)["scope"] == "admin:users read write"


@pytest.mark.parametrize("scope", ["read delete", "openid", "READ", "read  write", 'read "x"', "read\\x"])
def test_a_scope_the_client_may_not_have_is_invalid_scope(app, store, scope):
    answer = call("token", {**CC, "scope": scope}, headers=app)
    assert (answer.status, answer.error) == (400, "invalid_scope")
    s.assert_no_store(answer)
    s.check_openapi("token", answer)
    assert store.events() == []


def test_a_client_with_no_scopes_gets_a_token_without_scope(store):
    _client, secret = s.add_client("bare", scope="")
    answer = call("token", CC, headers={"Authorization": basic("bare", secret)})
    assert answer.status == 200
    assert "scope" not in answer.json()
    assert claims_of(answer)["scope"] == ""


# --- audience (RFC 8707) ----------------------------------------------------------------------------------
def test_without_resource_the_audience_is_the_issuer(app):
    assert claims_of(call("token", CC, headers=app))["aud"] == ISSUER


@pytest.mark.parametrize("resource", ["https://api.example.com/v1", "urn:example:resource", "https://x.example?q=1"])
def test_resource_becomes_the_audience(app, resource):
    answer = call("token", {**CC, "resource": resource}, headers=app)
    assert answer.status == 200, answer.body
    token = answer.json()["access_token"]
    assert rfc9068.verify(services.key_ring(), token, issuer=ISSUER, audience=resource)["aud"] == resource


@pytest.mark.parametrize("resource", ["/relative/path", "api.example.com", "https://api.example.com/#frag",
                                      "https://api.example.com/ space", "https:"])
def test_a_resource_that_is_not_an_absolute_uri_without_fragment_is_invalid_target(app, store, resource):
    answer = call("token", {**CC, "resource": resource}, headers=app)
    assert (answer.status, answer.error) == (400, "invalid_target")
    s.assert_no_store(answer)
    s.check_openapi("token", answer)
    assert store.events() == []


# --- the token ----------------------------------------------------------------------------------------
def test_the_token_is_an_rfc_9068_jwt_signed_by_the_current_es256_key(app):
    answer = call("token", {**CC, "scope": "read"}, headers=app)
    token = answer.json()["access_token"]
    header = jwt.get_unverified_header(token)
    current = services.key_ring().keyset().current("ES256")
    assert header == {"alg": "ES256", "kid": current.kid, "typ": "at+jwt"}
    assert current.status is KeyStatus.CURRENT
    claims = claims_of(answer)
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == claims["client_id"] == "app1"  # RFC 9068 §2.2: no resource owner
    assert claims["aud"] == ISSUER
    assert claims["exp"] - claims["iat"] == 3600 == answer.json()["expires_in"]
    assert len(claims["jti"]) == 32
    assert claims["scope"] == "read"
    # and by a verifier that only knows the published JWK Set
    jwks = {k["kid"]: k for k in services.key_ring().published_jwks()}
    public = jwt.PyJWK(jwks[header["kid"]]).key
    assert jwt.decode(token, public, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)["jti"] == claims["jti"]


def test_every_token_has_its_own_jti(app):
    first, second = (claims_of(call("token", CC, headers=app)) for _ in range(2))
    assert first["jti"] != second["jti"]


def test_rs256_when_configured(store, monkeypatch):
    monkeypatch.setenv("ACCESS_TOKEN_ALG", "RS256")
    services.reset()  # settings are read again; the same table (with its keys) stays
    services.override(item_store=store)
    _client, secret = s.add_client("app1")
    answer = call("token", CC, headers={"Authorization": basic("app1", secret)})
    assert answer.status == 200, answer.body
    assert jwt.get_unverified_header(answer.json()["access_token"])["alg"] == "RS256"


def test_the_per_app_lifetime(store):
    _client, secret = s.add_client("short", access_token_ttl=600)
    answer = call("token", CC, headers={"Authorization": basic("short", secret)})
    assert answer.json()["expires_in"] == 600
    claims = claims_of(answer)
    assert claims["exp"] - claims["iat"] == 600


def test_the_per_app_lifetime_is_capped_by_access_token_ttl(store):
    """Signing keys are retired on the promise that no token outlives ACCESS_TOKEN_TTL."""
    _client, secret = s.add_client("long", access_token_ttl=86400)
    answer = call("token", CC, headers={"Authorization": basic("long", secret)})
    assert answer.json()["expires_in"] == services.settings().access_token_ttl == 3600


# --- the event --------------------------------------------------------------------------------------------
def test_one_oauth_token_generated_row_is_written_with_the_token(app, store):
    before = len(store.writes)
    answer = call("token", CC, headers=app)
    assert answer.status == 200
    writes = store.writes[before:]
    assert len(writes) == 1 and len(writes[0]) == 1  # the app was read now: the outbox row is the write
    [op] = writes[0]
    assert isinstance(op, Put) and op.item[ENTITY] == OUTBOX_ENTITY
    assert call("token", CC, headers=app).status == 200
    # the app came from the instance's cache: the write checks that it is still the stored one
    op, guard = store.writes[-1]
    assert isinstance(guard, Check) and (guard.pk, guard.sk) == ("CLIENT#app1", "CLIENT")
    assert isinstance(op, Put) and op.item[ENTITY] == OUTBOX_ENTITY
    assert op.item["topic"] == "oauthToken"
    assert op.item["partition_key"] == "app1"  # no user: keyed by the client id
    _first, message = store.events()
    assert message["name"] == "oauthTokenGenerated"
    assert message["clientId"] == "app1"
    assert message["userId"] == ""
    assert message["namespace"] == "latchkey"
    assert message["payload"] == {"oauth": {"clientId": "app1", "responseType": "token", "platformId": ""}}
    assert op.item["expires_at"] - op.item["created_at"] == services.settings().event_ttl
    validate_message(message, key=op.item["partition_key"], topic=op.item["topic"])


def test_no_event_without_a_token_and_no_token_without_the_event(app, store, monkeypatch):
    def broken(*operations):
        raise RuntimeError("DynamoDB is down")

    monkeypatch.setattr(store, "write", broken)
    answer = call("token", CC, headers=app)
    assert (answer.status, answer.error) == (500, "server_error")
    assert "access_token" not in answer.body
    assert store.rows(OUTBOX_ENTITY) == []


def test_no_signing_key_is_temporarily_unavailable(monkeypatch):
    gen = s.environment(monkeypatch)
    next(gen)
    services.reset()
    services.override(item_store=s.RecordingStore())  # a fresh table: rotation has never run
    _client, secret = s.add_client("app1")
    answer = call("token", CC, headers={"Authorization": basic("app1", secret)})
    assert (answer.status, answer.error) == (503, "temporarily_unavailable")
    s.check_openapi("token", answer)
    gen.close()
