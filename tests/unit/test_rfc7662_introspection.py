"""Token introspection (RFC 7662): authenticated callers only; active tokens described, everything else
just ``{"active": false}``."""

from __future__ import annotations

import time

import pytest

from latchkey import apps, rfc9068, services
from latchkey.crypto import jws
from latchkey.crypto import keys as keylib
from tests.unit import oauth_support as s
from tests.unit.oauth_support import ISSUER, basic, call

INACTIVE = {"active": False}


@pytest.fixture
def store(monkeypatch):
    yield from s.environment(monkeypatch)


@pytest.fixture
def app(store):
    _client, secret = s.add_client("app1", scope="read write")
    auth = {"Authorization": basic("app1", secret)}
    return auth, secret


def introspect(token, auth):
    answer = call("introspect", {"token": token}, headers=auth)
    assert answer.status == 200, answer.body
    s.assert_no_store(answer)
    assert answer.headers["Content-Type"] == "application/json"
    s.check_openapi("introspect", answer)
    return answer.json()


def issue(**overrides):
    args = {"issuer": ISSUER, "alg": "ES256", "client_id": "app1", "subject": "app1", "audience": ISSUER,
            "scopes": ["read"], "ttl": 600}
    args.update(overrides)
    return rfc9068.issue(services.key_ring(), **args)


def test_tokens_of_a_deleted_app_are_inactive_and_the_deletion_is_announced(store, app):
    auth, secret = app
    token = s.token("app1", secret)["access_token"]
    s.add_client("rs", secret="rs-secret")
    rs_auth = {"Authorization": basic("rs", "rs-secret")}
    assert introspect(token, rs_auth)["active"] is True
    apps.delete("app1")
    assert introspect(token, rs_auth) == INACTIVE
    revoked = [e for e in store.events() if e["name"] == "oauthTokenRevoked"]
    assert [(e["clientId"], e["userId"]) for e in revoked] == [("app1", "")]


def test_an_active_token_then_revoked_is_inactive(app):
    auth, secret = app
    token = s.token("app1", secret, scope="read")["access_token"]
    claims = rfc9068.verify(services.key_ring(), token, issuer=ISSUER)
    assert introspect(token, auth) == {
        "active": True, "token_type": "Bearer", "scope": "read", "client_id": "app1", "sub": "app1",
        "aud": ISSUER, "iss": ISSUER, "exp": claims["exp"], "iat": claims["iat"], "jti": claims["jti"]}
    assert call("revoke", {"token": token}, headers=auth).status == 200
    assert introspect(token, auth) == INACTIVE


def test_expired_is_inactive_even_within_the_verification_leeway(app):
    auth, _secret = app
    now = int(time.time())
    assert introspect(issue(ttl=60, now=now - 3600).token, auth) == INACTIVE
    assert introspect(issue(ttl=60, now=now - 65).token, auth) == INACTIVE  # exp 5 s ago


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "é" * 20, "x" * 5000,
                                   "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0."])
def test_malformed_is_inactive(app, token):
    auth, _secret = app
    assert introspect(token, auth) == INACTIVE


def test_a_foreign_issuer_is_inactive(app):
    auth, _secret = app
    assert introspect(issue(issuer="https://other.example").token, auth) == INACTIVE


def test_a_token_signed_by_an_unknown_key_is_inactive(app):
    auth, _secret = app
    stranger = keylib.generate("ES256")
    claims = {"iss": ISSUER, "sub": "app1", "aud": ISSUER, "exp": int(time.time()) + 600,
              "iat": int(time.time()), "jti": "x" * 32, "client_id": "app1", "scope": "read"}
    token = jws.sign(claims, key=stranger, kid=keylib.thumbprint(stranger.public_key()), alg="ES256",
                     typ="at+jwt")
    assert introspect(token, auth) == INACTIVE


def test_a_jwt_that_is_not_an_access_token_is_inactive(app):
    """RFC 9068 §4: typ must be at+jwt (an id_token signed by the same key is not an access token)."""
    auth, _secret = app
    key = services.key_ring().signing_key("ES256")
    claims = {"iss": ISSUER, "sub": "app1", "aud": "app1", "exp": int(time.time()) + 600,
              "iat": int(time.time()), "jti": "y" * 32, "client_id": "app1"}
    token = jws.sign(claims, key=key.private, kid=key.kid, alg="ES256", typ="JWT")
    assert introspect(token, auth) == INACTIVE


def test_a_token_of_another_client_is_described(app):
    """A resource server introspects the tokens its callers present, whoever they were issued to."""
    auth, _secret = app
    _other, secret = s.add_client("app2", scope="x")
    token = s.token("app2", secret)["access_token"]
    body = introspect(token, auth)
    assert body["active"] is True and body["client_id"] == "app2" and body["scope"] == "x"


def test_the_audience_of_a_resource_token(app):
    auth, secret = app
    token = s.token("app1", secret, resource="https://api.example.com")["access_token"]
    assert introspect(token, auth)["aud"] == "https://api.example.com"


# --- who may ask --------------------------------------------------------------------------------------------
def test_unauthenticated_is_401(app):
    _auth, secret = app
    token = s.token("app1", secret)["access_token"]
    answer = call("introspect", {"token": token})
    assert (answer.status, answer.error) == (401, "invalid_client")
    assert "WWW-Authenticate" not in answer.headers
    s.assert_no_store(answer)
    s.check_openapi("introspect", answer)


def test_a_wrong_secret_is_401_with_a_basic_challenge(app):
    _auth, secret = app
    token = s.token("app1", secret)["access_token"]
    answer = call("introspect", {"token": token}, headers={"Authorization": basic("app1", "nope")})
    assert (answer.status, answer.error) == (401, "invalid_client")
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="latchkey"'
    assert "active" not in answer.body


def test_a_public_client_may_not_introspect(app):
    _auth, secret = app
    token = s.token("app1", secret)["access_token"]
    s.add_client("spa", method="none", grant_types=())
    answer = call("introspect", {"token": token, "client_id": "spa"})
    assert (answer.status, answer.error) == (401, "invalid_client")


def test_client_secret_post_callers(store):
    s.add_client("app1")
    _client, secret = s.add_client("rs", method="client_secret_post")
    token = issue().token
    answer = call("introspect", {"token": token, "client_id": "rs", "client_secret": secret})
    assert answer.status == 200 and answer.json()["active"] is True


def test_private_key_jwt_callers_may_name_the_introspection_endpoint_as_audience(store):
    s.add_client("app1")
    private, jwk = s.key_pair("ES256")
    s.add_client("rs", method="private_key_jwt", jwks={"keys": [jwk]})
    client_assertion = s.assertion("rs", private, "ES256", jwk["kid"], audience=f"{ISSUER}/api/oauth/introspect")
    answer = call("introspect", {"token": issue().token, "client_assertion_type": s.JWT_BEARER,
                                 "client_assertion": client_assertion})
    assert answer.status == 200 and answer.json()["active"] is True


def test_a_bearer_access_token_may_authorize_the_call(app):
    _auth, secret = app
    caller = s.token("app1", secret)["access_token"]
    body = introspect(issue(scopes=["write"]).token, {"Authorization": f"Bearer {caller}"})
    assert body["active"] is True and body["scope"] == "write"


@pytest.mark.parametrize("caller", ["garbage", "expired", "revoked"])
def test_a_bad_bearer_token_is_401_invalid_token(app, caller):
    auth, secret = app
    if caller == "expired":
        caller = issue(ttl=60, now=int(time.time()) - 3600).token
    elif caller == "revoked":
        caller = s.token("app1", secret)["access_token"]
        assert call("revoke", {"token": caller}, headers=auth).status == 200
    answer = call("introspect", {"token": issue().token}, headers={"Authorization": f"Bearer {caller}"})
    assert (answer.status, answer.error) == (401, "invalid_token")
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    s.assert_no_store(answer)
    s.check_openapi("introspect", answer)


def test_token_is_required(app):
    auth, _secret = app
    answer = call("introspect", {"token_type_hint": "access_token"}, headers=auth)
    assert (answer.status, answer.error) == (400, "invalid_request")
    s.check_openapi("introspect", answer)


def test_a_repeated_parameter_is_invalid_request(app):
    auth, _secret = app
    answer = call("introspect", "token=a&token=b", headers=auth)
    assert (answer.status, answer.error) == (400, "invalid_request")
